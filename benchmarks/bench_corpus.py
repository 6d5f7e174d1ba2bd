"""Corpus benchmark: converting an original-format zip, then loading and iterating it.

Prints
- conversion throughput (MB of .npy per second, extraction + validation + PNG encoding + parquet),
- peak RSS of the converting process (goal: < 1.5 GB for 1,000 units x 15 x 224 px),
- the reading rows of issue 18, ours beside the goal, each in fresh processes (`reading_rows`):
  `import milannotations` (time, RSS), `load()` -> first unit cold (fresh HF cache) and warm,
  peak RSS iterating the config above the imports it needs (cold / warm, and over a quarter of
  the units to show it is flat), units per second through `milannotations.UnitSet` (masks only,
  and with every image decoded too), and the `datasets` path (`as_dataset=True`) for comparison,
- with `--demo`, the `make demo` row (`benchmarks/bench_demo.py`).

The fixture (exact original format, random pixels: the worst case for PNG) is written to a
temporary folder, stored uncompressed to keep fixture creation short. Conversion and loads run in
child processes so each figure belongs to the process that did the work.

    nice .venv/bin/python benchmarks/bench_corpus.py [--units 1000] [--k 15] [--size 224]
    nice .venv/bin/python benchmarks/bench_corpus.py --read-root DIR [--config NAME]   # reading rows only
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_conversion import PEAK_MB  # noqa: E402 - after the path above

CONFIG = "alexnet-places365"

CONVERT = PEAK_MB + """
import json, sys, time
from milannotations.build import build
t = time.perf_counter()
build(sys.argv[1], sys.argv[2], ["{config}"], progress=False)
dt = time.perf_counter() - t
print(json.dumps({{"seconds": dt, "maxrss_kb": peak_mb() * 1024}}))
"""

# ------------------------------------------------------------------------------ reading rows
HEAVY = ("torch", "datasets", "transformers", "open_clip", "torchvision", "pyarrow.parquet")

IMPORT = PEAK_MB + """
import json, sys, time
t, c = time.perf_counter(), time.process_time()
import milannotations
dt, dc = time.perf_counter() - t, time.process_time() - c
print(json.dumps({"import_s": dt, "cpu_s": dc, "rss_mb": peak_mb(),
                  "heavy": sorted(m for m in %r if m in sys.modules)}))
""" % (HEAVY,)

# The clock starts after the imports a reader needs (torch, numpy, PIL through UnitSet; pyarrow), as
# the figure did when `import milannotations` imported them all; their cost is printed apart.
FIRST = """
import json, sys, time
t, c = time.perf_counter(), time.process_time()
import milannotations as mn
import milannotations.units, pyarrow.parquet
if sys.argv[3] == "datasets":
    import datasets
imports_s, imports_cpu = time.perf_counter() - t, time.process_time() - c
t, c = time.perf_counter(), time.process_time()
ds = mn.load(sys.argv[2], split="train", root=sys.argv[1], as_dataset=sys.argv[3] == "datasets")
unit = mn.UnitSet(ds, annotated=True)[0]
pixels = int(unit.images.shape[0]) + int(unit.masks.shape[0])
print(json.dumps({"load_to_first_unit_s": time.perf_counter() - t, "cpu_s": time.process_time() - c,
                  "imports_s": imports_s, "imports_cpu_s": imports_cpu, "exemplars": pixels}))
"""

# The imports a reading pass needs are those of `UnitSet` (torch, numpy, PIL) and pyarrow; the RSS
# after them is the floor that the iteration's peak is measured against.
ITER = PEAK_MB + """
import json, sys, time
import milannotations as mn
import torch, pyarrow.parquet, PIL.Image, numpy
from milannotations import UnitSet
if sys.argv[3] == "datasets":
    import datasets
base = peak_mb()
images = sys.argv[4] == "images"
frac = float(sys.argv[5])
n = px = 0
t, c = time.perf_counter(), time.process_time()
for split in ("train", "test"):
    units = UnitSet(mn.load(sys.argv[2], split=split, root=sys.argv[1], as_dataset=sys.argv[3] == "datasets"),
                    annotated=True)
    stop = max(1, round(len(units) * frac))
    for i, unit in enumerate(units):
        if i >= stop:
            break
        px += int(unit.masks.shape[0]) + (int(unit.images.shape[0]) if images else 0)  # no tensor maths timed
        n += 1
dt, dc = time.perf_counter() - t, time.process_time() - c
peak = peak_mb()
print(json.dumps({"units": n, "seconds": dt, "cpu_s": dc, "base_mb": base, "peak_mb": peak}))
"""


def _median(values: list[float]) -> float:
    v = sorted(values)
    return v[len(v) // 2]


def _fresh_env(env: dict, tmp: Path, tag: str) -> dict:
    """`env` with a new, empty HF cache (what "cold" means in the issue)."""
    hf = tmp / f"hf-{tag}"
    hf.mkdir(parents=True, exist_ok=True)
    return {**env, "HF_HOME": str(hf), "HF_DATASETS_CACHE": str(hf / "datasets")}


def reading_rows(built: str, config: str, env: dict, tmp: Path, *, repeats: int = 3,
                 with_datasets: bool = True) -> Iterator[str]:
    """The reading rows of issue 18's table, ours beside the goal (fresh processes; medians of `repeats`),
    each yielded as soon as it is measured."""
    imps = [_child(IMPORT, env=env) for _ in range(repeats)]
    imp_s, imp_mb = _median([r["import_s"] for r in imps]), _median([r["rss_mb"] for r in imps])
    imp_c = _median([r["cpu_s"] for r in imps])
    yield (f"| `import milannotations` | {imp_s:.2f} s ({imp_c:.2f} s CPU), {imp_mb:.0f} MB RSS; heavy modules loaded: "
           f"{', '.join(imps[0]['heavy']) or 'none'} | <= 0.5 s and <= 150 MB |")

    cold = [_child(FIRST, built, config, "table", env=_fresh_env(env, tmp, f"cold{i}")) for i in range(repeats)]
    warm_env = _fresh_env(env, tmp, "warm")
    _child(FIRST, built, config, "table", env=warm_env)
    warm = [_child(FIRST, built, config, "table", env=warm_env) for _ in range(repeats)]
    first = lambda rs, k: _median([r[k] for r in rs])  # noqa: E731
    yield (f"| `load()` -> first unit (images decoded), cold (fresh HF cache) / warm | "
           f"{first(cold, 'load_to_first_unit_s'):.2f} s / {first(warm, 'load_to_first_unit_s'):.2f} s "
           f"({first(cold, 'cpu_s'):.2f} / {first(warm, 'cpu_s'):.2f} s CPU), after the imports a reader needs "
           f"(torch, numpy, PIL, pyarrow: {first(cold, 'imports_s'):.1f} s, {first(cold, 'imports_cpu_s'):.1f} s CPU) "
           f"| <= 1 s at any config size |")

    def it(kind: str, what: str, frac: float, tag: str) -> dict:
        return _child(ITER, built, config, kind, what, str(frac), env=_fresh_env(env, tmp, tag) if tag else warm_env)

    full_cold = it("table", "images", 1.0, "itercold")
    full_warm = it("table", "images", 1.0, "")
    quarter = it("table", "images", 0.25, "")
    above = lambda r: r["peak_mb"] - r["base_mb"]  # noqa: E731
    yield (f"| peak RSS iterating the config (every image decoded), cold / warm | "
           f"{full_cold['peak_mb']:.0f} / {full_warm['peak_mb']:.0f} MB, of which imports "
           f"{full_warm['base_mb']:.0f} MB: {above(full_cold):.0f} / {above(full_warm):.0f} MB above them; "
           f"{above(quarter):.0f} MB over the first quarter of the units ({quarter['units']}) | "
           f"<= 200 MB above the imports it needs, flat in the number of units |")
    masks = [it("table", "masks", 1.0, "") for _ in range(repeats)]
    images = [it("table", "images", 1.0, "") for _ in range(repeats)]
    ups = lambda r: r["units"] / r["seconds"]  # noqa: E731
    upc = lambda r: r["units"] / r["cpu_s"]  # noqa: E731
    yield (f"| iterating via `UnitSet` ({full_warm['units']} units) | "
           f"{_median([ups(r) for r in masks]):.0f} units/s ({_median([upc(r) for r in masks]):.0f} per CPU-s) "
           f"reading masks (images lazy); {_median([ups(r) for r in images]):.0f} units/s "
           f"({_median([upc(r) for r in images]):.0f} per CPU-s) decoding every image too | "
           f">= 100 units/s on 2 cores |")
    if with_datasets:
        ds_cold = _child(FIRST, built, config, "datasets", env=_fresh_env(env, tmp, "dscold"))
        ds_it = it("datasets", "images", 1.0, "dsiter")
        yield (f"| for comparison: `as_dataset=True` (the `datasets` path) | first unit cold "
               f"{ds_cold['load_to_first_unit_s']:.2f} s ({ds_cold['cpu_s']:.2f} s CPU); iterating "
               f"{ups(ds_it):.0f} units/s ({upc(ds_it):.0f} per CPU-s), peak RSS "
               f"{ds_it['peak_mb']:.0f} MB ({above(ds_it):.0f} MB above its imports) | |")


def print_reading_rows(built: str, config: str, env: dict, tmp: Path, **kw) -> None:
    load1, load5, _ = os.getloadavg()
    print(f"reading rows for {config} in {built} ({os.cpu_count()} CPUs, load average {load1:.1f} / {load5:.1f}: "
          "wall times on a shared machine are noisy; CPU seconds are this process's own, all its threads)")
    print("| figure | ours | goal |\n|---|---|---|")
    for line in reading_rows(built, config, env, tmp, **kw):
        print(line, flush=True)


def _child(code: str, *args: str, env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, check=True, capture_output=True, text=True,
                         cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", type=int, default=1000)
    ap.add_argument("--k", type=int, default=15)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--convert-only", action="store_true", help="skip the load and iteration figures")
    ap.add_argument("--tmp", help="scratch folder (default: system temp); needs ~4x the .npy size")
    ap.add_argument("--read-root", help="an already built folder: print only the reading rows for --config there")
    ap.add_argument("--config", default=CONFIG, help="config read with --read-root")
    ap.add_argument("--no-datasets", action="store_true", help="skip the as_dataset=True comparison row")
    ap.add_argument("--repeats", type=int, default=3, help="fresh processes per reading figure (median)")
    ap.add_argument("--demo", action="store_true",
                    help="also the `make demo` row (benchmarks/bench_demo.py: MILAN cold, about 3 min)")
    args = ap.parse_args()
    if args.demo:
        from benchmarks.bench_demo import demo_rows

        print("| figure | ours | goal |\n|---|---|---|")
        for line in demo_rows():
            print(line, flush=True)
    if args.read_root:
        with tempfile.TemporaryDirectory(prefix="bench-read-", dir=args.tmp) as tmp:
            env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                   "XDG_CACHE_HOME": str(Path(tmp) / "cache"), "TOKENIZERS_PARALLELISM": "false"}
            print_reading_rows(str(Path(args.read_root).resolve()), args.config, env, Path(tmp),
                               with_datasets=not args.no_datasets, repeats=args.repeats)
        return

    from tests.original_format import LayerSpec, make_original_zip

    per = -(-args.units // args.layers)
    specs = []
    left = args.units
    for i in range(args.layers):
        n = min(per, left)
        left -= n
        specs.append(LayerSpec(f"conv{i + 1}", n, k=args.k, height=args.size, width=args.size))
    with tempfile.TemporaryDirectory(prefix="bench-corpus-", dir=args.tmp) as tmp:
        tmp = Path(tmp)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
               "HF_HOME": str(tmp / "hf"), "XDG_CACHE_HOME": str(tmp / "cache"), "TOKENIZERS_PARALLELISM": "false"}
        t = time.perf_counter()
        fx = make_original_zip(tmp / "zips" / f"{CONFIG}.zip", specs, compression=zipfile.ZIP_STORED)
        print(f"fixture: {args.units} units x {args.k} x {args.size}px in {len(specs)} layers, "
              f"{fx.npy_bytes / 1e6:.0f} MB of .npy, zip {fx.path.stat().st_size / 1e6:.0f} MB "
              f"(made in {time.perf_counter() - t:.0f} s)")

        conv = _child(CONVERT.format(config=CONFIG), str(tmp / "zips"), str(tmp / "milannotations"), env=env)
        parquet = sum(p.stat().st_size for p in (tmp / "milannotations" / "data").rglob("*.parquet"))
        print(f"conversion: {conv['seconds']:.1f} s, {fx.npy_bytes / 1e6 / conv['seconds']:.1f} MB/s of .npy, "
              f"parquet {parquet / 1e6:.0f} MB")
        print(f"peak RSS of the converting process: {conv['maxrss_kb'] / 1024:.0f} MB (goal < 1536 MB)")
        # the conversion and 1 vs N workers scaling rows of issue 18 (benchmarks/bench_conversion.py)
        from benchmarks.bench_conversion import conversion_rows

        for line in conversion_rows(tmp / "zips", fx.npy_bytes, tmp, env):
            print(line)

        if args.convert_only:
            return
        print_reading_rows(str(tmp / "milannotations"), CONFIG, env, tmp, with_datasets=not args.no_datasets,
                           repeats=args.repeats)


if __name__ == "__main__":
    main()
