"""MILAN: encoder math, decoding equivalences, checkpoints, released-layout loading, and that it learns."""
from __future__ import annotations

import collections
import sys
import types

import numpy as np
import pytest
import torch

from baselines.milan.backbones import load_backbone
from baselines.milan.checkpoint import load_checkpoint, save_checkpoint
from baselines.milan.decoder import DecoderConfig, ShowAttendTell, attention_penalty
from baselines.milan.decoding import _banned, beam_search, greedy, lm_logp, pmi_scores, rerank
from baselines.milan.encoder import PyramidEncoder, masked_pool, stack_features
from baselines.milan.lm import LanguageModel, LMConfig
from baselines.milan.model import MilanModel
from baselines.milan.released import load_released
from baselines.milan.selection import BEAMS, LAMS, select_decoding
from baselines.milan.train import corpus_bleu
from baselines.milan.vocab import Vocab, build_vocab, detokenize, tokenize
from baselines.registry import create_describer
from milannotations.contract import AnnotatedExemplars, Exemplars
from milannotations.errors import MilanError

torch.set_num_threads(1)


# ---------------------------------------------------------------------------------------------- encoder
def test_masked_pool_is_a_normalised_weighted_mean():
    feats = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    masks = torch.zeros(2, 1, 4, 4)
    masks[0, 0, 1, 2] = 1.0  # one cell at the feature resolution -> that cell's value
    masks[1, 0, :2, :2] = 1.0  # a 2x2 block -> mean of those four cells
    out = masked_pool(feats, masks)
    assert torch.allclose(out[0], feats[0, :, 1, 2])
    assert torch.allclose(out[1], feats[1, :, :2, :2].mean(dim=(-2, -1)))


def test_masked_pool_resizes_bilinearly_and_zero_mask_gives_zeros():
    feats = torch.randn(2, 5, 2, 2)
    masks = torch.zeros(2, 1, 8, 8, dtype=torch.bool)
    masks[0, 0, :, :4] = True  # left half of an 8x8 mask -> left column of a 2x2 map
    out = masked_pool(feats, masks)
    assert torch.allclose(out[0], feats[0, :, :, 0].mean(dim=-1), atol=1e-6)
    assert torch.equal(out[1], torch.zeros(5))
    # a full mask is the plain spatial mean
    full = masked_pool(feats, torch.ones(2, 1, 7, 7))
    assert torch.allclose(full, feats.mean(dim=(-2, -1)), atol=1e-6)


def test_pyramid_encoder_concatenates_stages_and_caches(tmp_path):
    backbone = load_backbone("resnet18-random")
    assert backbone.feature_size == 64 + 64 + 128 + 256 + 512
    enc = PyramidEncoder(backbone, cache_dir=tmp_path)
    g = torch.Generator().manual_seed(0)
    units = [Exemplars(f"c/l/{u}", "m", "d", "l", u, torch.randint(0, 256, (2, 3, 32, 32), generator=g,
                                                                     dtype=torch.uint8),
                       torch.rand(2, 1, 32, 32, generator=g) > 0.5) for u in range(3)]
    feats = enc.encode_units(iter(units), progress=False)
    assert [tuple(f.shape) for f in feats] == [(2, 1024)] * 3
    # the conv1 block of the vector is exactly masked_pool over the conv1 feature map
    x = enc._prepare(units[1].images)
    conv1 = backbone.module.conv1(x)
    assert torch.allclose(feats[1][:, :64], masked_pool(conv1, units[1].masks), atol=1e-5)
    assert len(list((tmp_path / backbone.signature).glob("*.safetensors"))) == 3
    again = PyramidEncoder(backbone, cache_dir=tmp_path)
    again.encode_images = None  # cached: the backbone must not run
    cached = again.encode_units(iter(units), progress=False)
    assert all(torch.equal(a, b) for a, b in zip(feats, cached))
    stacked = stack_features([torch.ones(2, 4), torch.zeros(3, 4)])
    assert stacked.shape == (2, 3, 4) and torch.equal(stacked[0], torch.ones(3, 4))


def test_imagenet_backbone_without_weights_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(MilanError, match="no ImageNet weights for resnet50"):
        load_backbone("resnet50")
    with pytest.raises(MilanError, match="unknown MILAN backbone"):
        load_backbone("vgg")


# ---------------------------------------------------------------------------------------------- vocab
def test_vocab_tokenizes_and_orders_by_frequency():
    assert tokenize("Dogs' noses, and cat's EYES.") == ["dogs", "'", "noses", ",", "and", "cat's", "eyes", "."]
    vocab = build_vocab(["red car", "red sky", "a red car"])
    assert vocab.words == ("red", "car", "sky", "a")
    assert vocab.tokens[-4:] == ("<start>", "<stop>", "<pad>", "<unk>")
    assert vocab.index("red boat", 15) == [0, vocab.unk, vocab.stop]
    assert vocab.decode([0, 1, vocab.stop, 2]) == "Red car"
    assert detokenize(["dogs", ",", "cats", "'s", "eyes"]) == "Dogs, cats's eyes"


# ---------------------------------------------------------------------------------------------- decoding
def _tiny_model(seed: int = 0, vocab_words=("red", "blue", "sky", "car", "the", "and")) -> MilanModel:
    torch.manual_seed(seed)
    vocab = Vocab(tuple(vocab_words))
    dec = ShowAttendTell(DecoderConfig(len(vocab), feature_size=12, embedding_size=8, hidden_size=16, length=6))
    lm = LanguageModel(LMConfig(len(vocab), embedding_size=8, hidden_size=16), vocab.pad)
    return MilanModel(vocab, dec.eval(), lm.eval(), "resnet18-random")


def test_teacher_forcing_matches_stepwise_decoding_and_penalty():
    model = _tiny_model()
    feats = torch.randn(3, 4, 12)
    greedy_out = greedy(model.decoder, feats, model.vocab, 6)
    inputs = torch.full((3, 1), model.vocab.start)
    logp, alphas = model.decoder(feats, inputs)
    assert torch.allclose(alphas.sum(-1), torch.ones(3, 1))
    first = logp[:, 0].argmax(-1).tolist()
    assert all(c.ids for c in greedy_out)  # <stop> is banned as the first token: never empty
    assert [c.ids[0] for c in greedy_out] == first
    # the whole greedy sequence: teacher-forcing its ids reproduces them (argmax under greedy's mask)
    # and their summed log-probs are the candidate's score
    vocab = model.vocab
    for i, c in enumerate(greedy_out):
        targets = list(c.ids) + ([vocab.stop] if c.finished else [])
        assert c.finished or len(targets) == 6  # unfinished only when the length ran out
        inputs = torch.tensor([[vocab.start] + targets[:-1]])
        with torch.no_grad():
            logp_i, _ = model.decoder(feats[i : i + 1], inputs)
        for t, target in enumerate(targets):
            masked = logp_i[0, t] + _banned(vocab, t == 0, logp_i.device)
            assert int(masked.argmax()) == target, (i, t)
        total = float(sum(logp_i[0, t, target] for t, target in enumerate(targets)))
        assert total == pytest.approx(c.score, abs=1e-5)
    # penalty: uniform attention over 4 exemplars for 4 steps sums to exactly 1 per exemplar
    assert float(attention_penalty(torch.full((1, 4, 4), 0.25), torch.ones(1, 4, dtype=torch.bool))) == 0.0
    assert float(attention_penalty(torch.full((1, 2, 4), 0.25), torch.ones(1, 2, dtype=torch.bool))) == 0.25


def test_greedy_equals_beam_of_one():
    model = _tiny_model(1)
    feats = torch.randn(5, 4, 12)
    g = greedy(model.decoder, feats, model.vocab, 6)
    b = beam_search(model.decoder, feats, model.vocab, 6, beam=1)
    assert [c.ids for c in g] == [cands[0].ids for cands in b]
    assert np.allclose([c.score for c in g], [cands[0].score for cands in b], atol=1e-5)


def test_beam_is_sorted_and_batched_equals_per_unit():
    model = _tiny_model(2)
    feats = torch.randn(4, 4, 12)
    batched = beam_search(model.decoder, feats, model.vocab, 6, beam=7)
    for i in range(4):
        single = beam_search(model.decoder, feats[i: i + 1], model.vocab, 6, beam=7)[0]
        assert [c.ids for c in single] == [c.ids for c in batched[i]]
        assert np.allclose([c.score for c in single], [c.score for c in batched[i]], atol=1e-5)
        scores = [c.score for c in batched[i]]
        assert scores == sorted(scores, reverse=True) and len(set(c.ids for c in batched[i])) == len(scores)
    # the beam's best is at least as likely as the greedy description
    g = greedy(model.decoder, feats, model.vocab, 6)
    assert all(b[0].score >= gg.score - 1e-5 for b, gg in zip(batched, g))


def test_rerank_with_lambda_zero_is_beam_best_and_lambda_moves_the_choice():
    model = _tiny_model(3)
    feats = torch.randn(6, 4, 12)
    beams = beam_search(model.decoder, feats, model.vocab, 6, beam=10)
    assert [c.ids for c in rerank(beams, model.lm, model.vocab, 0.0)] == [b[0].ids for b in beams]
    lam = 0.7
    chosen = rerank(beams, model.lm, model.vocab, lam)
    for cands, pick in zip(beams, chosen):
        pmi = pmi_scores(cands, model.lm, model.vocab, lam)
        assert pmi[cands.index(pick)] == pytest.approx(max(pmi))
    # the PMI score is exactly log p(d|E) - lam * log p_LM(d), with p_LM summed over words and <stop>
    cand = beams[0][0]
    ids = list(cand.ids) + [model.vocab.stop]
    inputs = torch.tensor([[model.vocab.start] + ids[:-1]])
    lp = model.lm(inputs)[0].gather(-1, torch.tensor(ids).unsqueeze(-1)).sum()
    expected = cand.score - lam * float(lp.detach())
    assert pmi_scores([cand], model.lm, model.vocab, lam)[0] == pytest.approx(expected, abs=1e-4)


def _original_lm_reduce(lm: LanguageModel, vocab: Vocab, ids: list[int], width: int) -> float:
    """The original's sequence log-probability, re-typed from
    evandez/neuron-descriptions@19c4d58f849d82be8ad23cd3bd47908a0eacd8ed:src/milan/lms.py,
    `LanguageModel.forward(inputs, reduce=True)`: `inputs` is <start> then the beam's tokens, padded with
    <stop> to `width` columns (AllenNLP keeps emitting the end token); mask index m scores inputs[m + 1];
    for every <stop> at position j of `inputs`, masks[j + 1:] = 0, so the position after the first <stop>
    still counts."""
    tokens = (ids + [vocab.stop] * width)[:width]
    inputs = torch.tensor([[vocab.start] + tokens])
    with torch.no_grad():
        lps = lm(inputs)
    masks = torch.ones(1, inputs.shape[1] - 1)
    for j in (inputs[0] == vocab.stop).nonzero().flatten().tolist():
        masks[0, j + 1:] = 0
    picked = lps[0, :-1].gather(-1, inputs[0, 1:].unsqueeze(-1)).squeeze(-1)
    return float((picked * masks[0]).sum())


def test_lm_logp_is_the_originals_rule_with_the_token_after_stop():
    model = _tiny_model(4)
    length = model.decoder.config.length
    beams = beam_search(model.decoder, torch.randn(5, 4, 12), model.vocab, length, beam=6)
    cands = [c for row in beams for c in row]
    assert any(c.finished and len(c.ids) + 1 < length for c in cands)
    ours = lm_logp(cands, model.lm, model.vocab, length)
    for cand, value in zip(cands, ours):
        ids = list(cand.ids) + ([model.vocab.stop] if cand.finished else [])
        assert value == pytest.approx(_original_lm_reduce(model.lm, model.vocab, ids, length), abs=1e-5)
    # without `length` the extra term is left out: p(d) of the words and one <stop> only
    plain = lm_logp(cands, model.lm, model.vocab)
    assert any(abs(a - b) > 1e-4 for a, b in zip(ours, plain))


def test_select_decoding_is_the_grids_best_by_validation_bleu():
    model = _tiny_model(5)
    feats = torch.randn(6, 4, 12)
    refs = [["red sky", "the red car"], ["blue car", "blue sky"], ["the sky"], ["red and blue"],
            ["car"], ["the blue car"]]
    beams, lams = (2, 4, 6), (0.05, 0.2, 0.6)
    chosen = select_decoding(model, feats, refs, "rerank", beams=beams, lams=lams)
    table = {(b, lam): corpus_bleu(model.describe(feats, strategy="rerank", beam=b, lam=lam), refs)
             for b in beams for lam in lams}
    assert chosen.score == pytest.approx(max(table.values()))
    assert table[chosen.beam, chosen.lam] == pytest.approx(chosen.score)
    assert chosen.n_validation == 6 and chosen.strategy == "rerank"
    beam_only = select_decoding(model, feats, refs, "beam", beams=beams)
    assert beam_only.lam == 0.0 and beam_only.score == pytest.approx(
        max(corpus_bleu(model.describe(feats, strategy="beam", beam=b), refs) for b in beams))
    assert BEAMS == tuple(range(5, 55, 5)) and LAMS[0] == 0.05 and LAMS[-1] == 0.75 and len(LAMS) == 15


def test_fit_chooses_decoding_on_validation_units_and_records_it(tmp_path, monkeypatch):
    import baselines.milan.describer as describer_mod
    from milannotations.splits import validation_split

    units = _colour_units(n_per=5, k=2)
    seen = {}
    real = describer_mod.select_decoding

    def spy(model, features, references, strategy, **kw):
        seen["n"], seen["refs"] = features.shape[0], references
        return real(model, features, references, strategy, beams=(2, 3), lams=(0.1, 0.3))

    monkeypatch.setattr(describer_mod, "select_decoding", spy)
    args = dict(backbone="resnet18-random", epochs=2, hidden=16, embedding=8, batch_size=8,
                cache=str(tmp_path / "cache"), progress=False, seed=0)
    d = create_describer("milan", **args)
    d.fit(units)
    _, val = validation_split([u.unit_id for u in units], 0.1, 0)
    by_id = {u.unit_id: list(u.annotations) for u in units}
    assert seen["n"] == len(val) and seen["refs"] == [by_id[u] for u in val]
    record = d.fit_record
    assert (record["beam"], record["lam"]) == (d.beam, d.lam) == (record["selection"]["beam"],
                                                                   record["selection"]["lam"])
    assert d.beam in (2, 3) and d.lam in (0.1, 0.3)
    # the choice travels with the checkpoint; an explicit beam or lam turns the search off
    path = save_checkpoint(d.model, tmp_path / "ckpt")
    again = create_describer("milan", checkpoint=str(path), cache=False, progress=False)
    assert (again.beam, again.lam) == (d.beam, d.lam)
    # a second describer with other decoding settings reuses the cached training: nothing is retrained
    seen.clear()

    def no_training(*a, **k):
        raise AssertionError("trained again")

    monkeypatch.setattr(describer_mod, "fit_both", no_training)
    fixed = create_describer("milan", beam=4, **args)
    fixed.fit(units)
    assert not seen and (fixed.beam, fixed.lam) == (4, 0.2) and fixed.fit_record["selection"] is None
    assert record["cached"] is False and fixed.fit_record["cached"] is True
    for strategy in ("greedy", "beam"):
        assert d.model.describe(d.encode(units), strategy=strategy, beam=4) == \
            fixed.model.describe(fixed.encode(units), strategy=strategy, beam=4)
    # another seed is another training
    with pytest.raises(AssertionError, match="trained again"):
        create_describer("milan", **{**args, "seed": 1}).fit(units)


# ---------------------------------------------------------------------------------------------- training
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "yellow": (230, 220, 20)}
PHRASES = {"red": "a red fire truck here", "green": "green grass in a field", "blue": "the blue sky above us",
           "yellow": "a yellow banana peel"}


def _colour_units(n_per: int = 6, k: int = 3, size: int = 32) -> list[AnnotatedExemplars]:
    """Units whose masked regions have one colour; their descriptions name it (learnable)."""
    rng = np.random.default_rng(0)
    units = []
    for c, (name, rgb) in enumerate(COLOURS.items()):
        for u in range(n_per):
            imgs = rng.integers(0, 256, (k, 3, size, size)).astype(np.uint8)
            masks = np.zeros((k, 1, size, size), bool)
            for j in range(k):
                y, x = rng.integers(0, size // 2, 2)
                masks[j, 0, y:y + size // 2, x:x + size // 2] = True
                imgs[j, :, y:y + size // 2, x:x + size // 2] = np.array(rgb, np.uint8)[:, None, None]
            p = PHRASES[name]
            units.append(AnnotatedExemplars(f"colours/l{c}/{u}", "m", "d", f"l{c}", u, torch.from_numpy(imgs),
                                            torch.from_numpy(masks), annotations=(p, p, p)))
    return units


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    units = _colour_units()
    d = create_describer("milan", backbone="resnet18-random", epochs=30, patience=30, hidden=64, embedding=32,
                         batch_size=8,
                         beam=5, cache=str(tmp_path_factory.mktemp("cache")), progress=False, seed=0,
                         save=str(tmp_path_factory.mktemp("ckpt") / "milan-colours"))
    d.fit(units)
    return d, units


def test_fit_learns_the_descriptions(trained):
    d, units = trained
    refs = [list(u.annotations) for u in units]
    for strategy in ("greedy", "rerank"):
        d.strategy = strategy
        preds = d.describe([Exemplars(**{f: getattr(u, f) for f in ("unit_id", "model", "dataset", "layer",
                                                                      "unit", "images", "masks")}) for u in units])
        bleu = corpus_bleu(preds, refs)
        assert bleu > 80, (strategy, bleu, preds)
    assert d.meta.trained_on == ("colours",)
    assert d.model.info["history"]["decoder_epochs"] >= 1


def test_checkpoint_reloads_and_describes_the_same(trained, tmp_path):
    d, units = trained
    d.strategy = "rerank"
    before = d.describe(units)
    path = save_checkpoint(d.model, tmp_path / "ckpt")
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors"]
    again = create_describer("milan", checkpoint=str(path), beam=5, cache=False, progress=False)
    again.fit(units[:1])  # a loaded checkpoint is kept, not retrained
    assert again.describe(units) == before
    assert again.meta.trained_on == ("colours",)
    assert load_checkpoint(d.save_path).vocab == d.model.vocab  # save= wrote it after fit


def test_describer_args_are_checked():
    with pytest.raises(MilanError, match="strategy"):
        create_describer("milan", strategy="sample")
    with pytest.raises(MilanError, match="before fit"):
        create_describer("milan", cache=False).describe(_colour_units(1)[:1])


# ---------------------------------------------------------------------------------------------- released .pth
def _write_released_layout(model: MilanModel, path) -> None:
    """A file laid out like the original `Decoder.save` output, including its pickled spaCy Config."""
    from baselines.milan.released import DECODER_KEYS, LM_KEYS

    config_mod = types.ModuleType("thinc.config")

    class Config(dict):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self.is_interpolated = True

    Config.__module__ = "thinc.config"
    Config.__qualname__ = "Config"
    config_mod.Config = Config
    sys.modules.update({"thinc": types.ModuleType("thinc"), "thinc.config": config_mod})
    try:
        inverse = {v: k for k, v in DECODER_KEYS.items()}
        state = collections.OrderedDict((inverse[k], v) for k, v in model.decoder.state_dict().items())
        inv_lm = {v: k for k, v in LM_KEYS.items()}
        state.update((f"lm.{inv_lm.get(k, k)}", v) for k, v in model.lm.state_dict().items())
        state["encoder.featurizer.conv1.weight"] = torch.zeros(1)
        tokenizer = {"properties": {"nlp": (Config({"nlp": {"lang": "en"}}), b"spacy-bytes"), "lemmatize": False},
                     "children": {}}
        vocab = {"properties": {"tokens": model.vocab.words}, "children": {}}
        indexer = {"properties": {"vocab": vocab, "tokenize": tokenizer, "start": True, "stop": True, "pad": True,
                                  "unk": True, "length": None, "unique": frozenset(model.vocab.words)},
                   "children": {}}
        payload = {"properties": {"indexer": indexer, "encoder": {"properties": {"config": "resnet101"},
                                                                  "children": {}},
                                  "lm": {"properties": {"indexer": indexer, "embedding_size": 8, "hidden_size": 16,
                                                        "layers": 2, "dropout": 0.5}, "children": {}},
                                  "embedding_size": 8, "hidden_size": 16, "attention_hidden_size": None,
                                  "dropout": 0.5, "length": 6, "strategy": "rerank", "temperature": 0.2,
                                  "beam_size": 50},
                   "children": {}, "state_dict": state}
        torch.save(payload, path)
    finally:
        del sys.modules["thinc.config"], sys.modules["thinc"]


def test_released_layout_loads_safely_and_decodes_identically(tmp_path):
    model = _tiny_model(4)
    path = tmp_path / "milan-base.pth"
    _write_released_layout(model, path)
    with pytest.raises(Exception):  # a plain weights-only load refuses the pickled Config class
        torch.load(path, weights_only=True)
    loaded = load_released(path)
    assert loaded.vocab == model.vocab and loaded.backbone == "resnet101"
    assert loaded.decoder.config.feature_size == 12 and loaded.decoder.config.length == 6
    assert "alexnet-imagenet" in loaded.trained_on  # milan-base saw the base networks
    feats = torch.randn(3, 4, 12)
    for strategy in ("greedy", "rerank"):
        assert loaded.describe(feats, strategy=strategy, beam=5) == model.describe(feats, strategy=strategy, beam=5)
    assert load_checkpoint(path).vocab == model.vocab  # checkpoint= accepts a .pth too


def test_released_file_with_code_is_refused(tmp_path):
    path = tmp_path / "milan-evil.pth"
    import os

    torch.save({"properties": {"x": os.system}, "state_dict": {}}, path)  # a reference to callable code
    with pytest.raises(MilanError, match="cannot be loaded safely"):
        load_released(path)
    with pytest.raises(MilanError, match="does not exist"):
        load_released(tmp_path / "missing.pth")


def test_no_strategy_returns_an_empty_description():
    model = _tiny_model(5)
    with torch.no_grad():  # make <stop> by far the likeliest first token
        model.decoder.out.bias[model.vocab.stop] = 50.0
    feats = torch.randn(3, 4, 12)
    for strategy in ("greedy", "beam", "rerank"):
        assert all(text for text in model.describe(feats, strategy=strategy, beam=5)), strategy


class _WordClip:
    """A stand-in CLIP: a text scores by how many letters 'e' it has; images are ignored."""

    name, image_size, trained_on = "letters", 8, ()

    def encode_images(self, images):
        return torch.ones(images.shape[0], 1)

    def encode_texts(self, texts):
        return torch.tensor([[float(t.count("e"))] for t in texts])


def test_rerank_clip_picks_the_beam_candidate_clip_prefers(trained):
    d, units = trained
    clip_d = create_describer("milan", checkpoint=d.save_path, beam=5, cache=False, progress=False,
                              rerank="clip")
    clip_d._clip = _WordClip()
    chosen = clip_d.describe(units[:4])
    feats = clip_d.encode(units[:4])
    for text, cands in zip(chosen, clip_d.model.candidates(feats, beam=5)):
        texts = [clip_d.model.vocab.decode(c.ids) for c in cands if c.ids]
        assert text in texts and text.count("e") == max(t.count("e") for t in texts)
    with pytest.raises(MilanError, match="rerank=clip needs beam"):
        create_describer("milan", rerank="clip", strategy="greedy")


def test_same_seed_same_descriptions_whatever_the_cache_state_and_threads(tmp_path):
    """What could differ between two machines of one kind: a cold or a partly warm feature cache (so
    other batch compositions in the backbone) and the thread count. None of it may change a description."""
    units = _colour_units(n_per=4, k=2)
    args = dict(backbone="resnet18-random", epochs=3, hidden=16, embedding=8, batch_size=8, progress=False,
                seed=3, beam=3)
    cold = create_describer("milan", cache=str(tmp_path / "cold"), **args)
    cold.fit(units)
    reference = cold.describe(units)
    # warm a second cache with every third unit alone, so the rest are encoded in other batches
    warm_dir = tmp_path / "warm"
    warm = create_describer("milan", cache=str(warm_dir), **args)
    warm.encode(units[::3])
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        warm.fit(units)
        assert warm.fit_record["cached"] is False  # trained, not read back from the first cache
        assert warm.describe(units) == reference
    finally:
        torch.set_num_threads(threads)


# ------------------------------------------------------------------------ training side by side

def _tiny_training():
    from baselines.milan.train import TrainConfig

    gen = torch.Generator().manual_seed(5)
    words = ("red", "blue", "sky", "car", "the", "and", "big")
    anns = [[" ".join(words[int(j)] for j in torch.randint(0, len(words), (int(n),), generator=gen))
             for n in torch.randint(1, 5, (3,), generator=gen)] for _ in range(12)]
    vocab = build_vocab(a for x in anns for a in x)
    feats = torch.randn(12, 3, 10, generator=gen)
    dcfg = DecoderConfig(vocab_size=len(vocab), feature_size=10, embedding_size=8, hidden_size=16)
    lcfg = LMConfig(vocab_size=len(vocab), embedding_size=8, hidden_size=16)
    config = TrainConfig(max_epochs=3, lm_max_epochs=3, batch_size=8, lm_batch_size=8, seed=2)
    return anns, feats, [f"u{i}" for i in range(12)], vocab, lcfg, dcfg, config


def test_parallel_fit_is_the_sequential_fit():
    """The LM trained in its own process next to the decoder gives bitwise the weights and history of
    the LM then the decoder in this process, whatever the caller's thread count (both train on one
    thread), and the global RNG and thread count are left as they were."""
    anns, feats, ids, vocab, lcfg, dcfg, config = _tiny_training()
    runs = []
    threads = torch.get_num_threads()
    try:
        for parallel, caller_threads in ((False, 2), (True, 2), (False, 1)):
            torch.set_num_threads(caller_threads)
            runs.append(_fit_both_run(anns, feats, ids, vocab, lcfg, dcfg, config, parallel))
            assert torch.get_num_threads() == caller_threads  # restored after training
    finally:
        torch.set_num_threads(threads)
    from baselines.milan.train import fitting

    torch.set_num_threads(2)
    try:
        with fitting("cpu", seed=0):  # what both trainings run in, whatever the caller's count
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    one_thread = runs.pop()[0]
    (seq, h_seq, l_seq), (par, h_par, l_par) = runs
    assert all(torch.equal(seq[k], one_thread[k]) for k in seq)
    assert seq.keys() == par.keys() and all(torch.equal(seq[k], par[k]) for k in seq)
    assert (h_seq.lm_epochs, h_seq.lm_val_loss, h_seq.val_bleu, h_seq.train_loss, h_seq.best_epoch) == \
           (h_par.lm_epochs, h_par.lm_val_loss, h_par.val_bleu, h_par.train_loss, h_par.best_epoch)
    assert h_par.lm_epochs == 3 and len(h_par.lm_epoch_s) == 3  # the child's history came back
    assert len(l_seq) == len(l_par) == 1 and "LM alongside" in l_par[0] and "then the LM" in l_seq[0]


def test_lm_run_started_early_is_stopped_when_not_joined():
    """An LM started before the features (the describer does this) is stopped and its folder removed when
    the run is left without joining it (e.g. the trained weights were in the cache)."""
    import os

    from baselines.milan.train import start_lm

    anns, _, _, vocab, lcfg, dcfg, config = _tiny_training()
    with start_lm(anns, vocab, lcfg, dcfg.length, config, progress=False, parallel=True) as run:
        child, work = run._child, run._work.name
        assert child.poll() is None and os.path.isdir(work)
    assert child.poll() is not None and not os.path.exists(work)


def _fit_both_run(anns, feats, ids, vocab, lcfg, dcfg, config, parallel: bool):
    """One `fit_both`: its weights, history and announced lines; it leaves the global RNG alone."""
    from baselines.milan.train import History, fit_both

    history, lines = History(), []
    state = torch.random.get_rng_state()
    with torch.random.fork_rng(devices=[]):
        lm, decoder = fit_both(anns, feats, ids, vocab, lcfg, dcfg, config, history, progress=False,
                               parallel=parallel, announce=lines.append)
    assert torch.equal(torch.random.get_rng_state(), state)
    weights = {**{f"lm.{k}": v for k, v in lm.state_dict().items()},
               **{f"decoder.{k}": v for k, v in decoder.state_dict().items()}}
    assert not lm.training and not decoder.training
    return weights, history, lines


def test_parallel_fit_reports_the_lm_process_failure():
    from dataclasses import replace

    from baselines.milan import train

    anns, feats, ids, vocab, lcfg, dcfg, config = _tiny_training()
    broken = replace(lcfg, vocab_size=1)  # <pad> outside the LM's embedding: its process fails building it
    with pytest.raises(RuntimeError, match=r"training the LM failed \(exit code 1\): AssertionError: Padding_idx"):
        train.fit_both(anns, feats, ids, vocab, broken, dcfg, config, train.History(), progress=False, parallel=True)


def test_training_estimate_line():
    from baselines.milan.train import History, TrainConfig, estimate_line

    history = History(epoch_s=[2.0])
    line = estimate_line(history, TrainConfig(max_epochs=100, lm_max_epochs=100, patience=10, lm_patience=10), 450,
                         side_by_side=True)
    assert line == ("milan: training on 450 units, 2.0 s/epoch, the LM alongside in a second process: about 56 s "
                    "(28 epochs; early stopping ends it after 11-100: 22-200 s)")
    short = estimate_line(history, TrainConfig(max_epochs=5, lm_max_epochs=5, patience=10, lm_patience=10), 450,
                          side_by_side=False)
    assert "then the LM" in short and "about 20 s" in short and "after 10-10" in short


def _padded_batch(vocab, anns, n: int = 8):
    from baselines.milan.train import _pad

    rows = [vocab.index(a, 6) for x in anns for a in x][:n]
    return _pad(rows, vocab.pad)


def _grads(module) -> dict:
    return {k: p.grad.clone() for k, p in module.named_parameters() if p.grad is not None}


def test_dropout_masks_are_f_dropouts_draws():
    from baselines.milan.unrolled import dropout_masks

    x = torch.randn(5, 7)
    torch.manual_seed(3)
    expected = torch.nn.functional.dropout(x, 0.5, training=True)
    torch.manual_seed(3)
    assert torch.equal(x * dropout_masks((5, 7), 0.5, x.device), expected)
    assert dropout_masks((5, 7), 0.0, x.device) is None


def test_decoder_training_loss_is_teacher_forcing_on_real_tokens():
    """The packed training loss equals `forward` + nll_loss(ignore pad) + attention penalty, with the same
    dropout draws (train mode, same seed: same value, same gradients, the RNG left in the same state)."""
    anns, feats, _, vocab, _, dcfg, _ = _tiny_training()
    torch.manual_seed(0)
    decoder = ShowAttendTell(dcfg).train()
    targets = _padded_batch(vocab, anns)
    assert (targets == vocab.pad).any()  # a batch with padding
    batch_feats = feats[: targets.shape[0]]

    def reference():
        inputs = torch.cat([torch.full_like(targets[:, :1], vocab.start), targets[:, :-1]], dim=1)
        logp, alphas = decoder(batch_feats, inputs)
        nll = torch.nn.functional.nll_loss(logp.transpose(1, 2), targets, ignore_index=vocab.pad)
        return nll + 0.7 * attention_penalty(alphas, targets != vocab.pad)

    _assert_same_loss_and_gradients(decoder, reference,
                                    lambda: decoder.training_loss(batch_feats, targets, vocab.start, vocab.pad, 0.7))


def _assert_same_loss_and_gradients(module, reference, packed, seed: int = 11) -> None:
    """Both loss functions, from the same RNG state, give the same value and gradients and leave the RNG in
    the same state (the same dropout draws)."""
    results = []
    for loss_fn in (reference, packed):
        module.zero_grad()
        torch.manual_seed(seed)
        loss = loss_fn()
        loss.backward()
        results.append((loss.item(), _grads(module), torch.rand(1)))
    (ref_loss, ref_grads, ref_next), (loss, grads, nxt) = results
    assert loss == pytest.approx(ref_loss, rel=1e-6)
    assert ref_grads.keys() == grads.keys()
    for k in grads:
        assert torch.allclose(grads[k], ref_grads[k], rtol=1e-4, atol=1e-7), k
    assert torch.equal(nxt, ref_next)


def test_lm_training_loss_is_the_lstm_loss_on_real_tokens():
    anns, _, _, vocab, lcfg, _, _ = _tiny_training()
    torch.manual_seed(0)
    lm = LanguageModel(lcfg, vocab.pad).train()
    targets = _padded_batch(vocab, anns)

    def reference():
        inputs = torch.cat([torch.full_like(targets[:, :1], vocab.start), targets[:, :-1]], dim=1)
        return torch.nn.functional.nll_loss(lm(inputs).transpose(1, 2), targets, ignore_index=vocab.pad)

    _assert_same_loss_and_gradients(lm, reference, lambda: lm.training_loss(targets, vocab.start, vocab.pad), seed=12)


class _ReadableDescriptions(list):
    """Units whose descriptions can be read without their pixels, as a `UnitSet`'s can."""

    def annotations(self) -> list[list[str]]:
        return [list(u.annotations) for u in self]


def test_fit_starts_the_lm_before_encoding_and_trains_the_same(tmp_path, monkeypatch):
    """Given a UnitSet-like training set, the LM's process starts before the features are encoded; the
    weights and the chosen decoding are those of a fit on a plain list (where it starts after)."""
    import baselines.milan.describer as describer_mod
    import baselines.milan.train as train_mod

    units = _colour_units(n_per=3, k=2)
    events = []
    real_start, real_encode = train_mod.start_lm, describer_mod.MilanDescriber.encode
    for module in (describer_mod, train_mod):
        monkeypatch.setattr(module, "start_lm", lambda *a, **k: events.append("lm") or real_start(*a, **k))
    monkeypatch.setattr(describer_mod.MilanDescriber, "encode",
                        lambda self, u: events.append("encode") or real_encode(self, u))
    fits = []
    for train in (list(units), _ReadableDescriptions(units)):
        events.clear()
        d = create_describer("milan", backbone="resnet18-random", epochs=2, hidden=16, embedding=8, batch_size=8,
                             cache=False, progress=False, seed=0)
        d.fit(train)
        fits.append((d, list(events)))
    (plain, plain_events), (early, early_events) = fits
    assert plain_events == ["encode", "lm"] and early_events == ["lm", "encode"]
    a, b = plain.model, early.model
    for part in ("decoder", "lm"):
        sa, sb = getattr(a, part).state_dict(), getattr(b, part).state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa), part
    assert plain.fit_record == early.fit_record
