"""NetDissect and Compositional Explanations on the synthetic corpus: speed and recovery of the true concepts.

    python benchmarks/bench_dissect.py                       # oracle segmenter, the four synth configs
    python benchmarks/bench_dissect.py --segmenter synth --segmenter-args steps=600 --threads 1
    python benchmarks/bench_dissect.py --root /path/to/built/synth --configs synth-shallow-plain
    python benchmarks/bench_dissect.py --category-restriction --length-penalty 0.02 --check-original 100

Prints, per config: seconds to describe every unit (both splits) with each
describer, NetDissect's accuracy on single-concept units (label == the true
concept), and Compositional Explanations' exact-formula recovery (up to
order) per formula kind. Truth is read from the corpus by this script, never
by the describers. `--check-original N` also runs the re-typed original
CompExp search (tests/test_dissect.py) on the raw pixels of the first N
units of each config and counts how often its best formula is ours.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import torch

import milannotations as mn
from baselines.compexp import CompExp, formula_from_truth
from baselines.netdissect import NetDissect
from milannotations.synth.catalog import SYNTH_CONFIGS


def check_original(ce: CompExp, units: list) -> tuple[int, int]:
    """(units whose best formula equals the re-typed original's, units checked), on raw exemplar pixels."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.test_dissect import _as_original_text, _original_compexp

    same = 0
    for u in units:
        masks = ce.segmenter.segment_unit(u).permute(1, 0, 2, 3).reshape(len(ce.segmenter.concepts), -1).numpy()
        want = _original_compexp(u.masks.reshape(-1).numpy().astype(bool), masks, ce.beam_size, ce.max_length,
                                 penalty=1.0 - ce.length_penalty)
        ex = ce.explain(u)
        same += want[0][0] == _as_original_text(ex.formula) if want else ex.iou == 0.0
    return same, len(units)


def run(config: str, root: str | None, segmenter: str, limit: int | None, seg_args: dict,
        nd_args: dict | None = None, ce_args: dict | None = None, check: int = 0) -> dict:
    ds = mn.load(config, root=root)
    ds = mn.concatenate([ds["train"], ds["test"]])
    if limit:
        ds = ds.select(range(min(limit, len(ds))))
    truths = [json.loads(t) for t in ds["truth"]]
    units = list(mn.UnitSet(ds))
    nd = NetDissect(segmenter=segmenter, **(nd_args or {}), **seg_args)
    # its own segmenter: each timing starts with a cold cache
    ce = CompExp(segmenter=segmenter, **(ce_args or {}), **seg_args)
    concepts = nd.segmenter.concepts

    t, c = time.perf_counter(), time.process_time()
    labels = [nd.explain(u) for u in units]
    nd_s, nd_cpu = time.perf_counter() - t, time.process_time() - c
    t, c = time.perf_counter(), time.process_time()
    expl = [ce.explain(u) for u in units]
    ce_s, ce_cpu = time.perf_counter() - t, time.process_time() - c

    hits: dict[str, list[bool]] = defaultdict(list)
    nd_hits = []
    for truth, label, ex in zip(truths, labels, expl):
        want = formula_from_truth(truth, concepts)
        if truth["kind"] == "concept":
            nd_hits.append(label.concept == truth["concepts"][0])
        if want is not None:
            hits[truth["kind"]].append(ex.formula.key() == want.key())
    return {
        "config": config, "units": len(units), "netdissect_s": nd_s, "compexp_s": ce_s,
        "netdissect_cpu": nd_cpu, "compexp_cpu": ce_cpu,
        "netdissect_single_acc": sum(nd_hits) / max(1, len(nd_hits)), "n_single": len(nd_hits),
        "compexp_recovery": {k: (sum(v) / len(v), len(v)) for k, v in sorted(hits.items())},
        "kinds": dict(Counter(t["kind"] for t in truths)),
        "examples": [(t["formula"], lab.text, ex.text) for t, lab, ex in list(zip(truths, labels, expl))[:6]],
        "original": check_original(ce, units[:check]) if check else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=None, help="built corpus folder (default: the synthetic cache)")
    ap.add_argument("--configs", nargs="*", default=list(SYNTH_CONFIGS))
    ap.add_argument("--segmenter", default="oracle", choices=["oracle", "synth"])
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--segmenter-args", default="", help="k=v,... for the segmenter, e.g. steps=600")
    ap.add_argument("--length-penalty", type=float, default=None, help="CompExp length_penalty (default: its own)")
    ap.add_argument("--category-restriction", action="store_true", help="NetDissect-Lite's per-category unit area")
    ap.add_argument("--check-original", type=int, default=0, metavar="N",
                    help="compare CompExp with the re-typed original on the first N units of each config")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from baselines.registry import parse_describer_args

    seg_args: dict = parse_describer_args(args.segmenter_args)
    pooled: dict[str, list[float]] = defaultdict(lambda: [0, 0])
    nd_all = [0, 0]
    orig_all = [0, 0]
    ce_args = {} if args.length_penalty is None else {"length_penalty": args.length_penalty}
    nd_args = {"category_restriction": True} if args.category_restriction else {}
    for config in args.configs:
        r = run(config, args.root, args.segmenter, args.limit, seg_args, nd_args, ce_args, args.check_original)
        print(f"{config}: {r['units']} units; wall: netdissect {r['netdissect_s']:.1f}s, compexp "
              f"{r['compexp_s']:.1f}s; CPU: netdissect {r['netdissect_cpu']:.1f}s, compexp {r['compexp_cpu']:.1f}s "
              f"(segmenter={args.segmenter}, {args.threads} threads, each with a cold segmenter cache)")
        print(f"  netdissect: true concept on {r['netdissect_single_acc']:.1%} of {r['n_single']} single-concept units")
        for kind, (acc, n) in r["compexp_recovery"].items():
            print(f"  compexp: true formula (up to order) on {acc:.1%} of {n} '{kind}' units")
            pooled[kind][0] += acc * n
            pooled[kind][1] += n
        nd_all[0] += r["netdissect_single_acc"] * r["n_single"]
        nd_all[1] += r["n_single"]
        if r["original"]:
            print(f"  compexp: the original's best formula on {r['original'][0]} of {r['original'][1]} units")
            orig_all = [a + b for a, b in zip(orig_all, r["original"])]
        for truth, nd_text, ce_text in r["examples"]:
            print(f"    truth {truth!r:40} netdissect {nd_text!r:22} compexp {ce_text!r}")
    print(f"ALL: netdissect single-concept accuracy {nd_all[0] / max(1, nd_all[1]):.1%} (n={nd_all[1]})")
    for kind, (s, n) in sorted(pooled.items()):
        print(f"ALL: compexp '{kind}' recovery {s / max(1, n):.1%} (n={n})")
    if orig_all[1]:
        print(f"ALL: compexp == the original's best formula on {orig_all[0]} of {orig_all[1]} units")


if __name__ == "__main__":
    main()
