"""Conversion rows of issue 18: `milannotations build` (original zip -> parquet) on every core.

    nice .venv/bin/python benchmarks/bench_conversion.py [--units 300] [--k 15] [--size 224] [--layers 1]

Writes an original-format fixture (random pixels, stored uncompressed, as in the issue's 300-unit,
903 MB measurement), converts it in fresh child processes with 1 worker and with every core, and
prints the conversion row (MB of .npy per wall second, ours beside the goal) and the scaling row
(1 vs N workers), each with CPU seconds of the parent and of its worker processes: on a shared
machine wall seconds depend on the neighbours, CPU seconds on the work. It checks that both outputs
are byte-identical. `benchmarks/bench_corpus.py` prints the same rows (`conversion_rows`).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONFIG = "alexnet-places365"
BASELINE_MB_S = 10.8  # the figure for the one-process converter (300-unit fixture, 2 cores)

# A child's own peak RSS in MB, for the figures' child processes. Linux carries ru_maxrss across
# fork and exec (a child starts at its parent's resident size, e.g. the ~900 MB of a freshly made
# fixture); VmHWM belongs to the process's own address space, which exec replaces.
PEAK_MB = """
import resource
def peak_mb():
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""

CONVERT = PEAK_MB + """
import json, os, sys, time
if __name__ == "__main__":
    from milannotations.build import build
    from milannotations.parallel import worker_cpu_seconds
    t, c = time.perf_counter(), time.process_time()
    build(sys.argv[1], sys.argv[2], [sys.argv[3]], progress=False, workers=int(sys.argv[4]))
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    time.sleep(0.3)  # let the forkserver reap the workers
    print(json.dumps({"seconds": wall, "cpu_parent": cpu, "cpu_workers": worker_cpu_seconds(),
                      "maxrss_kb": peak_mb() * 1024,
                      "load": os.getloadavg()[0]}))
"""


def convert(zips: Path, out: Path, workers: int, env: dict) -> dict:
    """One conversion in a fresh process; its wall and CPU seconds (parent and workers)."""
    # in a folder of its own: the script's folder comes first on sys.path, and a built corpus folder
    # named `milannotations` beside it would shadow the package
    script = out.parent / "scripts" / f"convert-{out.name}.py"
    script.parent.mkdir(exist_ok=True)
    script.write_text(CONVERT)
    done = subprocess.run([sys.executable, str(script), str(zips), str(out), CONFIG, str(workers)], env=env,
                          cwd=ROOT, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((folder / "data").rglob("*.parquet"))}


def conversion_rows(zips: Path, npy_bytes: int, tmp: Path, env: dict, workers: int | None = None) -> list[str]:
    """Issue 18's conversion row and the 1 vs N workers scaling row, as Markdown table lines."""
    from milannotations.parallel import default_workers

    workers = workers or default_workers()
    runs = {}
    for w in dict.fromkeys((1, workers)):
        runs[w] = convert(zips, tmp / f"built-w{w}", w, env)
    mb = npy_bytes / 1e6

    def fig(r: dict) -> str:
        cpu = r["cpu_parent"] + r["cpu_workers"]
        return (f"{mb / r['seconds']:.1f} MB/s ({r['seconds']:.1f} s wall; CPU {r['cpu_parent']:.1f} s parent + "
                f"{r['cpu_workers']:.1f} s workers = {mb / cpu:.1f} MB per CPU second; load {r['load']:.1f})")

    same = _digest(tmp / "built-w1") == _digest(tmp / f"built-w{workers}")
    best = runs[workers]
    lines = [f"| conversion (`build`, {workers} workers) | {fig(best)}, "
             f"{mb / best['seconds'] / BASELINE_MB_S:.1f}x the issue's {BASELINE_MB_S} MB/s; peak RSS of the "
             f"parent {best['maxrss_kb'] / 1024:.0f} MB | >= {4 * BASELINE_MB_S:.1f} MB/s on 2 cores |"]
    if workers != 1:
        lines.append(f"| conversion scaling, 1 vs {workers} workers | {fig(runs[1])} vs {mb / best['seconds']:.1f} MB/s: "
                     f"{runs[1]['seconds'] / best['seconds']:.2f}x; parquet byte-identical: {'yes' if same else 'NO'} "
                     f"| near-linear in cores, identical bytes |")
    return lines


def make_fixture(tmp: Path, units: int, k: int, size: int, layers: int):
    from tests.original_format import LayerSpec, make_original_zip

    per = -(-units // layers)
    specs, left = [], units
    for i in range(layers):
        n = min(per, left)
        left -= n
        specs.append(LayerSpec(f"conv{i + 1}", n, k=k, height=size, width=size))
    return make_original_zip(tmp / "zips" / f"{CONFIG}.zip", specs, compression=zipfile.ZIP_STORED)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", type=int, default=300)
    ap.add_argument("--k", type=int, default=15)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--workers", type=int, default=None, help="the N of the scaling row (default: every core)")
    ap.add_argument("--tmp", help="scratch folder (default: system temp); needs ~3x the .npy size")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-conversion-", dir=args.tmp) as tmp:
        tmp = Path(tmp)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
               "HF_HOME": str(tmp / "hf"), "XDG_CACHE_HOME": str(tmp / "cache")}
        t = time.perf_counter()
        fx = make_fixture(tmp, args.units, args.k, args.size, args.layers)
        print(f"fixture: {args.units} units x {args.k} x {args.size}px, {fx.npy_bytes / 1e6:.0f} MB of .npy "
              f"(made in {time.perf_counter() - t:.0f} s); cores {os.cpu_count()}, load {os.getloadavg()[0]:.1f}")
        print("| figure | ours | goal |\n|---|---|---|")
        for line in conversion_rows(tmp / "zips", fx.npy_bytes, tmp, env, args.workers):
            print(line)


if __name__ == "__main__":
    main()
