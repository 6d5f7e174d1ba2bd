"""Truth-metric benchmark: how big the probe set must be, what truth scoring costs, and the sanity checks.

Prints
1. per probe size (scenes per domain), on `--units` units of each of the four configs: the mean
   pixel Pearson and IoU of the truth, of a generic and a specific version of it, of a constant
   ("object") and of shuffled truths; the share of units whose truth beats its generic and its
   specific version; the truth's identification top-1; and the largest change of any of these
   means against the largest size, with the seconds the probe sums took (cold, no cache);
2. the cost truth scoring adds to one within-network run (4 configs x 50 test units, the default
   probe size): cold (empty probe cache) and warm, for the describer, both floors, the truth
   ceiling and the three annotators;
3. the sanity checks of docs/truth.md on every unit of the four default configs at the default
   probe size: truth > generic and truth > specific, per metric.

    nice .venv/bin/python benchmarks/bench_truth.py [--units 100] [--sizes 125,250,500,1000,2000]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eval.metrics.truth import TruthScorer  # noqa: E402
from milannotations.synth.catalog import SYNTH_CONFIGS  # noqa: E402
from milannotations.synth.formula import concept, from_truth, generic, specific, text  # noqa: E402
from milannotations.synth.neurons import sample_units  # noqa: E402
from milannotations.synth.probe import PROBE_SIZE  # noqa: E402

UNITS_PER_CONFIG = 500  # the default build


def _variants(truths):
    fs = [from_truth(t) for t in truths]
    return {"truth": [text(f) for f in fs], "generic": [text(generic(f)) for f in fs],
            "specific": [text(specific(f)) for f in fs], "constant": [text(concept("object"))] * len(fs),
            "shuffled": [text(f) for f in fs[1:] + fs[:1]]}


def _split(configs, picks):
    """configs, units, truths and world of `picks` units per config (evenly spaced)."""
    cs, us, ts = [], [], []
    for c in configs:
        _, family, domain = c.split("-")
        specs = sample_units(family, domain, UNITS_PER_CONFIG, 0)
        for u in np.linspace(0, UNITS_PER_CONFIG - 1, picks).astype(int):
            cs.append(c)
            us.append(int(u))
            ts.append(specs[u].truth())
    return cs, us, ts, {c: (0, UNITS_PER_CONFIG) for c in configs}


def probe_sizes(units: int, sizes: list[int]) -> None:
    print(f"\n1. probe size: {units} units of each of {len(SYNTH_CONFIGS)} configs (identification within config)")
    rows = {}
    for size in sizes:
        t = time.perf_counter()
        with tempfile.TemporaryDirectory() as d:
            ts = TruthScorer(probe_size=size, cache_dir=d)
            out = {}
            for config in SYNTH_CONFIGS:
                cs, us, tr, world = _split([config], units)
                ctx = ts.context(cs, us, tr, world)
                vals = {k: ts.per_unit(ctx, v) for k, v in _variants(tr).items()}
                for m in ("truth_px_pearson", "truth_px_iou"):
                    for k, v in vals.items():
                        out.setdefault(f"{m}:{k}", []).append(v[m].mean())
                    for k in ("generic", "specific"):
                        out.setdefault(f"{m}:truth>{k}", []).append(np.mean(vals["truth"][m] > vals[k][m]))
                out.setdefault("ident_top1:truth", []).append(vals["truth"]["truth_ident_top1"].mean())
        rows[size] = ({k: float(np.mean(v)) for k, v in out.items()}, time.perf_counter() - t)
    ref = rows[max(sizes)][0]
    keys = list(ref)
    print(f"{'metric':34s}" + "".join(f"{s:>9d}" for s in sizes))
    for k in keys:
        print(f"{k:34s}" + "".join(f"{rows[s][0][k]:9.3f}" for s in sizes))
    print(f"{'max |change| vs ' + str(max(sizes)):34s}"
          + "".join(f"{max(abs(rows[s][0][k] - ref[k]) for k in keys):9.3f}" for s in sizes))
    print(f"{'seconds (render + sums, cold)':34s}" + "".join(f"{rows[s][1]:9.1f}" for s in sizes))


def run_cost() -> None:
    print(f"\n2. cost added to one within-network run (4 configs x 50 test units, probe {PROBE_SIZE})")
    cs, us, tr, world = _split(SYNTH_CONFIGS, 50)
    refs = [[v[i] for v in _variants(tr).values()][:3] for i in range(len(tr))]
    with tempfile.TemporaryDirectory() as d:
        for label in ("cold", "warm"):
            ts = TruthScorer(cache_dir=d)  # a fresh process would start with an empty memo, as here
            t = time.perf_counter()
            for config in SYNTH_CONFIGS:
                idx = [i for i, c in enumerate(cs) if c == config]
                ctx = ts.context([cs[i] for i in idx], [us[i] for i in idx], [tr[i] for i in idx], world)
                for texts in (_variants([tr[i] for i in idx]).values()):  # describer + 2 floors + shuffled...
                    ts.score(ctx, texts)
                ts.ceiling(ctx)
                ts.humans(ctx, [refs[i] for i in idx])
            print(f"   {label}: {time.perf_counter() - t:.1f} s")


def sanity() -> None:
    print(f"\n3. sanity: truth beats its generic / specific version, all {UNITS_PER_CONFIG} units per config, "
          f"probe {PROBE_SIZE}")
    ts = TruthScorer()
    for config in SYNTH_CONFIGS:
        cs, us, tr, world = _split([config], UNITS_PER_CONFIG)
        ctx = ts.context(cs, us, tr, world)
        vals = {k: ts.per_unit(ctx, v) for k, v in _variants(tr).items()}
        cells = []
        for m in ("truth_px_pearson", "truth_px_iou", "truth_concept_f1"):
            g = np.mean(vals["truth"][m] > vals["generic"][m])
            s = np.mean(vals["truth"][m] > vals["specific"][m])
            cells.append(f"{m} {100 * g:.1f}% / {100 * s:.1f}%")
        print(f"   {config:22s} " + "; ".join(cells))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", type=int, default=100)
    ap.add_argument("--sizes", default="125,250,500,1000,2000")
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: sizes,cost,sanity")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    if "sizes" not in skip:
        probe_sizes(args.units, [int(s) for s in args.sizes.split(",")])
    if "cost" not in skip:
        run_cost()
    if "sanity" not in skip:
        sanity()


if __name__ == "__main__":
    main()
