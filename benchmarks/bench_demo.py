"""The `make demo` row of issue 18: MILAN within-network on the 4 synthetic configs, corpus cached, MILAN cold.

Runs `milan-eval --describer milan --describer-args patience=10,cache=<a fresh folder>` (the demo's
command, with MILAN's feature and training caches empty, so every split encodes and trains) in a
child process, and prints the wall time beside the 180 s goal, the harness's phases, and per split
the decoder's and LM's epochs with their seconds per epoch (from the trained checkpoints' histories).
`--compare` checks the run's descriptions.csv byte for byte against an earlier run's.

    nice .venv/bin/python benchmarks/bench_demo.py [--compare demo-out/milan/descriptions.csv] [--keep DIR]

The corpus is built first if it is not in the cache yet; that part is not timed (the goal says
"corpus cached"). Timings mean something only on a quiet machine: the load average is printed.
"""
from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL_S = 180.0
COMMAND = ["-m", "eval.cli", "--describer", "milan", "--no-progress"]


def _histories(cache: Path) -> list[dict]:
    """The trained checkpoints' training histories, oldest first (one per split)."""
    configs = sorted((cache / "trained").glob("*/config.json"), key=lambda p: p.stat().st_mtime)
    return [json.loads(p.read_text())["info"]["history"] for p in configs]


def demo_rows(compare: str | None = None, keep: str | None = None) -> list[str]:
    """Run the cold demo once; the lines to print (a table row first)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    build = "from milannotations.prepare import prepare; prepare(progress=False)"  # the corpus cached (untimed)
    subprocess.run([sys.executable, "-c", build], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    with tempfile.TemporaryDirectory(prefix="bench-demo-") as tmp:
        cache, out = Path(tmp) / "milan-cache", Path(keep or Path(tmp) / "out")
        if out.exists():
            shutil.rmtree(out)
        load = os.getloadavg()
        t = time.perf_counter()
        subprocess.run([sys.executable, *COMMAND, "--describer-args", f"patience=10,cache={cache}",
                        "--output", str(out)], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t
        results = json.loads((out / "results.json").read_text())
        lines = [f"| `make demo` (MILAN within-network, 4 configs, corpus cached, MILAN cold) | {wall:.0f} s | "
                 f"<= {GOAL_S:.0f} s |",
                 f"({os.cpu_count()} CPUs, load average {load[0]:.1f} before the run, "
                 f"{os.getloadavg()[0]:.1f} after; phases: " +
                 ", ".join(f"{k} {v:.1f} s" for k, v in results["timing"].items()) + ")"]
        for split, history in zip(results["splits"], _histories(cache)):
            fitted = split["fitted"][0]
            dec, lm = history["epoch_s"], history["lm_epoch_s"]
            lines.append(f"  {split['name']}: decoder {len(dec)} epochs x {sum(dec) / len(dec):.2f} s "
                         f"(best {fitted['best_epoch']}), LM {len(lm)} epochs x {sum(lm) / len(lm):.2f} s, "
                         f"chose beam {fitted['beam']}, lambda {fitted['lam']}")
        if compare:
            same = filecmp.cmp(out / "descriptions.csv", compare, shallow=False)
            lines.append(f"descriptions.csv {'byte-identical to' if same else 'DIFFERS from'} {compare}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--compare", help="an earlier run's descriptions.csv to compare byte for byte")
    ap.add_argument("--keep", help="write the run's results.json and descriptions.csv here")
    args = ap.parse_args()
    print("| figure | ours | goal |\n|---|---|---|")
    for line in demo_rows(args.compare, args.keep):
        print(line, flush=True)


if __name__ == "__main__":
    main()
