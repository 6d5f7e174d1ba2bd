"""Agreement rank vs truth rank of every board describer on every synthetic config (docs/truth.md).

Reads the validated within-network submissions of the leaderboard (each config is its own split),
ranks describers per config by normalized BERTScore (agreement) and by normalized pixel Pearson
(truth), prints the Markdown table docs/truth.md shows with Kendall's tau between the two rankings
per config, and draws both scores against each other (docs/truth_vs_agreement.png).

    .venv/bin/python benchmarks/truth_vs_agreement.py [--submissions leaderboard/submissions] [--plot PATH]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

AGREE, TRUTH = "bertscore_f1", "truth_px_pearson"


def kendall_tau(a: list[float], b: list[float]) -> float:
    """Kendall's tau-b of two score lists (ties counted as in scipy's default)."""
    n = len(a)
    conc = disc = ta = tb = 0
    for i in range(n):
        for j in range(i + 1, n):
            da, db = np.sign(a[i] - a[j]), np.sign(b[i] - b[j])
            if da == 0 and db == 0:
                continue
            if da == 0:
                ta += 1
            elif db == 0:
                tb += 1
            elif da == db:
                conc += 1
            else:
                disc += 1
    denom = np.sqrt((conc + disc + ta) * (conc + disc + tb))
    return float((conc - disc) / denom) if denom else float("nan")


def ranks(values: list[float]) -> list[int]:
    order = sorted(range(len(values)), key=lambda i: -values[i])
    out = [0] * len(values)
    for r, i in enumerate(order, 1):
        out[i] = r
    return out


def load(submissions: Path) -> tuple[dict, dict]:
    """{label: {config: (agree_norm, truth_norm, truth_raw, oracle)}} and the reference rows per config."""
    rows: dict[str, dict] = {}
    refs: dict[str, dict] = {}
    for path in sorted(submissions.glob("*/synth-within-network/results.json")):
        r = json.loads(path.read_text())
        label = path.parent.parent.name
        args = r["describer"].get("args", {})
        oracle = bool(r["describer"].get("oracle", args.get("segmenter") == "oracle"))
        for s in r["splits"]:
            if TRUTH not in s["metrics"]:
                raise SystemExit(f"{path}: no truth metrics; run `milan-leaderboard rescore` first")
            config = s["test"][0]
            rows.setdefault(label, {})[config] = (s["normalized"][AGREE]["value"], s["normalized"][TRUTH]["value"],
                                                  s["metrics"][TRUTH]["value"], oracle)
            refs[config] = {"truth formula": s["ceiling"][TRUTH]["value"], "annotators": s["humans"][TRUTH]["value"],
                            "annotators_norm": (s["humans"][TRUTH]["value"] - s["floor"][TRUTH]["value"])
                            / (s["ceiling"][TRUTH]["value"] - s["floor"][TRUTH]["value"])}
    return rows, refs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--submissions", default=str(ROOT / "leaderboard" / "submissions"))
    ap.add_argument("--plot", default=str(ROOT / "docs" / "truth_vs_agreement.png"))
    args = ap.parse_args()
    rows, refs = load(Path(args.submissions))
    configs = sorted({c for v in rows.values() for c in v})
    labels = sorted(rows)
    print("| describer | " + " | ".join(f"{c} agreement (rank) | {c} truth (rank)" for c in configs) + " |")
    print("|---|" + "---|---|" * len(configs))
    per_config = {c: ([rows[lab][c][0] for lab in labels], [rows[lab][c][1] for lab in labels]) for c in configs}
    rk = {c: (ranks(a), ranks(t)) for c, (a, t) in per_config.items()}
    for i, lab in enumerate(labels):
        cells = []
        for c in configs:
            a, t, _, oracle = rows[lab][c]
            cells += [f"{a:.2f} ({rk[c][0][i]})", f"{t:.2f} ({rk[c][1][i]})"]
        print(f"| {lab}{' (oracle)' if rows[lab][configs[0]][3] else ''} | " + " | ".join(cells) + " |")
    print("| *annotators, scored by truth* | " + " | ".join(f" | {refs[c]['annotators_norm']:.2f}" for c in configs)
          + " |")
    print()
    for c in configs:
        a, t = per_config[c]
        keep = [i for i, lab in enumerate(labels) if not rows[lab][c][3]]
        print(f"- {c}: Kendall tau(agreement, truth) = {kendall_tau(a, t):.2f} over {len(labels)} describers, "
              f"{kendall_tau([a[i] for i in keep], [t[i] for i in keep]):.2f} without the oracle rows; "
              f"truth formula's raw pixel Pearson {refs[c]['truth formula']:.3f}, annotators' "
              f"{refs[c]['annotators']:.3f}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(configs), figsize=(4.2 * len(configs), 4.2), sharey=True)
    for ax, c in zip(np.atleast_1d(axes), configs):
        a, t = per_config[c]
        for i, lab in enumerate(labels):
            oracle = rows[lab][c][3]
            ax.scatter(a[i], t[i], marker="s" if oracle else "o", facecolors="none" if oracle else "C0",
                       edgecolors="C0")
            ax.annotate(lab, (a[i], t[i]), fontsize=6, xytext=(3, 2), textcoords="offset points")
        ax.axhline(1, color="grey", lw=0.5, ls="--")
        ax.axvline(1, color="grey", lw=0.5, ls="--")
        ax.set_title(f"{c}\ntau = {kendall_tau(a, t):.2f}", fontsize=9)
        ax.set_xlabel("agreement: normalized BERTScore")
    np.atleast_1d(axes)[0].set_ylabel("truth: normalized pixel Pearson")
    fig.tight_layout()
    fig.savefig(args.plot, dpi=120)
    print(f"\nwrote {args.plot}")


if __name__ == "__main__":
    main()
