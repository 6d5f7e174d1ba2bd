"""How far to trust a labeller: on synthetic units, does its faithfulness rank describers as the truth does?

For every describer on the leaderboard's synth within-network protocol, its submitted descriptions
(trial 0) are scored through each labeller (`oracle`, exact; `clip` with the synthetic CLIP;
`segmenter` with the synthetic segmenter) by exemplar faithfulness (exemplar_px_iou) and by probe-set
faithfulness on the world's probe scenes (probe_pearson), means over the four splits; the describers'
ranking by each is compared with their ranking by the exact truth metric truth_px_pearson (Kendall's
tau). The annotators' and the truth formula's rows are printed beside them.

    python benchmarks/faithfulness_vs_truth.py [--labellers oracle,clip,segmenter]
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LABELLERS = {"oracle": {}, "clip": {"model": "synth"}, "segmenter": {"segmenter": "synth"}}
METRICS = ("exemplar_px_iou", "probe_pearson")


def _descriptions(path: Path) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if int(row["trial"]) == 0:
                out.setdefault(row["split"], {})[row["unit_id"]] = row["description"]
    return out


def main() -> None:
    from scipy.stats import kendalltau

    from eval import prepare_split, run_fingerprint
    from eval.faithful import build_run_faithfulness
    from eval.protocols import protocol_splits

    p = argparse.ArgumentParser()
    p.add_argument("--labellers", default=",".join(LABELLERS))
    args = p.parse_args()
    subs = sorted((ROOT / "leaderboard" / "submissions").glob("*/synth-within-network/descriptions.csv"))
    names = [s.parent.parent.name for s in subs]
    texts = {n: _descriptions(s) for n, s in zip(names, subs)}
    truth = {}
    for n, s in zip(names, subs):
        res = json.loads((s.parent / "results.json").read_text())
        truth[n] = float(np.mean([sp["metrics"]["truth_px_pearson"]["value"] for sp in res["splits"]]))
    splits = protocol_splits("synth", "within-network")
    data = [prepare_split(sp, None, None, 0, run_fingerprint("synth", "within-network")) for sp in splits]
    table: dict[str, dict[str, float]] = {}
    humans: dict[str, float] = {}
    ceiling: dict[str, float] = {}
    for lab in args.labellers.split(","):
        t = time.perf_counter()
        faith = build_run_faithfulness(lab, LABELLERS[lab], device="cpu", seed=0, n_boot=200)
        per = {(n, m): [] for n in names for m in METRICS}
        hum = {m: [] for m in METRICS}
        ceil = {m: [] for m in METRICS}
        for sd in data:
            for n in names:
                d = [texts[n][sd.split.name][u] for u in sd.test_ids]
                got = faith.score(sd, d)
                for m in METRICS:
                    per[n, m].append(got[m].value)
            h, c = faith.humans(sd), faith.ceiling(sd)
            for m in METRICS:
                hum[m].append(h[m].value)
                ceil[m].append(c[m].value)
        for m in METRICS:
            table[f"{m} ({lab})"] = {n: float(np.mean(per[n, m])) for n in names}
            humans[f"{m} ({lab})"], ceiling[f"{m} ({lab})"] = float(np.mean(hum[m])), float(np.mean(ceil[m]))
        print(f"{lab}: {time.perf_counter() - t:.0f} s", file=sys.stderr)
    labs = list(table)
    print("| describer | truth_px_pearson | " + " | ".join(labs) + " |")
    print("|---|---|" + "---|" * len(labs))
    for n in sorted(names, key=lambda n: -truth[n]):
        print(f"| {n} | {truth[n]:.3f} | " + " | ".join(f"{table[l][n]:.3f}" for l in labs) + " |")
    print("| annotators | | " + " | ".join(f"{humans[l]:.3f}" for l in labs) + " |")
    print("| truth formula (ceiling) | | " + " | ".join(f"{ceiling[l]:.3f}" for l in labs) + " |")
    print()
    print("| metric (labeller) | Kendall tau vs truth_px_pearson (describers) | tau vs the same metric, oracle |")
    print("|---|---|---|")
    for l in labs:
        tau_t = kendalltau([truth[n] for n in names], [table[l][n] for n in names]).statistic
        oracle = l.split(" (")[0] + " (oracle)"
        tau_o = kendalltau([table[oracle][n] for n in names], [table[l][n] for n in names]).statistic \
            if oracle in table else float("nan")
        print(f"| {l} | {tau_t:.2f} | {tau_o:.2f} |")


if __name__ == "__main__":
    main()
