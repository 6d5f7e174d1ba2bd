"""Scoring throughput: our cached BERTScore vs a plain `bert_score` call on the same (prediction, reference) pairs.

Scenario of the harness: the references of a test set were embedded once (disk cache, keyed by scorer
signature + data revision) and a new describer is scored. Pairs = units x 3 references.

    nice python benchmarks/bench_scoring.py [--units 300] [--threads 1] [--repeats 3] [--scenario both]

Throughput rows (--scenario throughput):
  bert_score.score            one plain call (loads the model, embeds predictions and references)
  BERTScorer.score (warm)     bert_score with the model already loaded
  Scorer.bertscore (cached)   a fresh Scorer, references from the disk cache: embeds only predictions
  Scorer.score (all metrics)  everything incl. BLEU/ROUGE/CIDEr, retrieval (n x 3n) and 1000 bootstraps
Times are the best of --repeats; "incl. load" rows include loading the model.

Long descriptions (--scenario long): `Scorer.score` (all metrics, cached references, warm model) on
--long-units units whose predictions are short except two of more than 512 word pieces (truncated to
the model's 512), with length bucketing (the default) and with `bucket=False`, i.e. fixed-size batches
padded to their longest sentence as before bucketing; the all-short case is the reference. The two
results are checked to agree to 1e-6.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

ADJ = ["red", "blue", "striped", "round", "furry", "dark", "shiny", "green", "wooden", "white", "small", "tall"]
NOUN = ["dog", "sky", "grass", "car", "wheel", "face", "text", "water", "building", "tree", "window", "road", "cat"]
TEMPLATES = ["{a} {n}", "{a} {n}s", "the {n} of a {n2}", "{a} and {a2} {n}", "{n}s next to {n2}s", "a {a} {n} on the {n2}",
             "parts of {n}s", "{a} textures", "top of the {n}", "{n} edges and {a} {n2}"]


def sentence(rng: random.Random) -> str:
    return rng.choice(TEMPLATES).format(a=rng.choice(ADJ), a2=rng.choice(ADJ), n=rng.choice(NOUN), n2=rng.choice(NOUN))


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def long_description(rng: random.Random) -> str:
    """A description of well over 512 word pieces (about 680 here)."""
    return " and ".join(sentence(rng) for _ in range(140))


def long_scenario(args: argparse.Namespace, cache_dir: str) -> None:
    """Before/after figure for two over-long descriptions among short ones (see module docstring)."""
    import numpy as np

    from eval.metrics import Scorer

    rng = random.Random(1)
    refs = [[sentence(rng) for _ in range(3)] for _ in range(args.long_units)]
    short = [sentence(rng) for _ in range(args.long_units)]
    long_preds = list(short)
    long_idx = (len(short) // 3, 2 * len(short) // 3)
    for i in long_idx:
        long_preds[i] = long_description(rng)
    scorers = {b: Scorer(args.scorer, cache_dir=cache_dir, progress=False, bucket=b) for b in (True, False)}
    tokenizer = scorers[True].encoder.tokenizer
    n_pieces = [len(tokenizer(long_preds[i], verbose=False)["input_ids"]) for i in long_idx]
    scorers[True].score(short, refs, revision="bench-long")  # writes the reference cache

    def timed(scorer, preds: list[str]) -> tuple[float, dict]:
        def run() -> dict:
            scorer.encoder._memo.clear()  # references from the disk cache, predictions embedded anew
            return scorer.score(preds, refs, revision="bench-long")

        out = {}
        sec = best(lambda: out.update(run()), args.repeats)
        return sec, out

    rows = [("all short (bucketed)",) + timed(scorers[True], short),
            ("two long, bucket=False (before)",) + timed(scorers[False], long_preds),
            ("two long, bucketed (after)",) + timed(scorers[True], long_preds)]
    before, after = rows[1][2], rows[2][2]
    for name in before:
        if before[name].per_unit is not None:
            assert np.allclose(before[name].per_unit, after[name].per_unit, atol=1e-6), name
    print(f"long descriptions: units={args.long_units}, two predictions of {n_pieces} word pieces "
          f"(truncated to {tokenizer.model_max_length})")
    print(f"{'Scorer.score (all metrics, cached refs)':46s} {'seconds':>8s}")
    for name, sec, _ in rows:
        print(f"{name:46s} {sec:8.3f}")
    print(f"bucketing speed-up with two long descriptions: {rows[1][1] / rows[2][1]:.1f}x "
          f"(all-short reference {rows[0][1]:.3f} s); results agree to 1e-6")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--units", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scorer", default="offline")
    parser.add_argument("--scenario", choices=("throughput", "long", "both"), default="both")
    parser.add_argument("--long-units", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.scenario in ("long", "both"):
        long_scenario(args, tempfile.mkdtemp(prefix="bench-scoring-long-"))
        if args.scenario == "long":
            return

    import bert_score

    from eval.metrics import Scorer

    rng = random.Random(0)
    refs = [[sentence(rng) for _ in range(3)] for _ in range(args.units)]
    preds = [sentence(rng) for _ in range(args.units)]
    norm_refs = [[r.lower().strip(". ") for r in u] for u in refs]
    norm_preds = [p.lower().strip(". ") for p in preds]
    flat = [r for u in norm_refs for r in u]
    pairs = 3 * args.units
    cache_dir = tempfile.mkdtemp(prefix="bench-scoring-")

    warm = Scorer(args.scorer, cache_dir=cache_dir, progress=False)
    model = warm.config.model
    warm.bertscore(preds, refs, revision="bench")  # writes the reference cache

    rows = []
    t = best(lambda: bert_score.score(norm_preds, norm_refs, model_type=model, num_layers=warm.config.num_layers,
                                      idf=True, batch_size=64, nthreads=0, device="cpu", use_fast_tokenizer=True), args.repeats)
    rows.append(("bert_score.score (incl. load)", t))
    ref_scorer = bert_score.BERTScorer(model_type=model, num_layers=warm.config.num_layers, idf=True, idf_sents=flat,
                                       use_fast_tokenizer=True, nthreads=0, device="cpu")
    t = best(lambda: ref_scorer.score(norm_preds, norm_refs, batch_size=64), args.repeats)
    rows.append(("BERTScorer.score (warm model)", t))

    def ours_with_load():
        from eval.metrics import bertscore as bertscore_module

        bertscore_module._LOADED.clear()  # load the model again, as a new process would
        Scorer(args.scorer, cache_dir=cache_dir, progress=False).bertscore(preds, refs, revision="bench")

    rows.append(("Scorer.bertscore (cached refs, incl. load)", best(ours_with_load, args.repeats)))

    def ours_warm():
        warm.encoder._memo.clear()  # loaded model, nothing in memory: as a new process with the disk cache
        before = warm.encoder.sentences_encoded
        warm.bertscore(preds, refs, revision="bench")
        assert warm.encoder.sentences_encoded - before == len(set(norm_preds) - set(flat)), "references re-embedded"

    rows.append(("Scorer.bertscore (cached refs, warm model)", best(ours_warm, args.repeats)))
    full = Scorer(args.scorer, cache_dir=cache_dir, progress=False)
    rows.append(("Scorer.score (all metrics, cached refs)", best(lambda: full.score(preds, refs, revision="bench"), 1)))

    print(f"scorer={warm.config.signature}")
    print(f"units={args.units} pairs={pairs} torch_threads={args.threads} torch={torch.__version__}")
    print(f"{'method':46s} {'seconds':>8s} {'pairs/s':>9s}")
    for name, sec in rows:
        print(f"{name:46s} {sec:8.3f} {pairs / sec:9.1f}")
    print(f"speed-up, cached vs plain bert_score.score (both incl. load): {rows[0][1] / rows[2][1]:.2f}x")
    print(f"speed-up, cached vs BERTScorer.score (both warm model):        {rows[1][1] / rows[3][1]:.2f}x")


if __name__ == "__main__":
    main()
