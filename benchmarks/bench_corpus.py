"""Corpus benchmark: converting an original-format zip, then loading and iterating it.

Prints
- conversion throughput (MB of .npy per second, extraction + validation + PNG encoding + parquet),
- peak RSS of the converting process (goal: < 1.5 GB for 1,000 units x 15 x 224 px),
- time from `milannotations.load()` to the first unit, cold (fresh HF cache: includes datasets'
  parquet -> arrow preparation) and warm (cache present; goal < 1 s), each in a fresh process,
- units per second iterating the whole config through `milannotations.UnitSet`.

The fixture (exact original format, random pixels: the worst case for PNG) is written to a
temporary folder, stored uncompressed to keep fixture creation short. Conversion and loads run in
child processes so each figure belongs to the process that did the work.

    nice .venv/bin/python benchmarks/bench_corpus.py [--units 1000] [--k 15] [--size 224]
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONFIG = "alexnet-places365"

CONVERT = """
import json, resource, sys, time
from milannotations.build import build
t = time.perf_counter()
build(sys.argv[1], sys.argv[2], ["{config}"], progress=False)
dt = time.perf_counter() - t
print(json.dumps({{"seconds": dt, "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}}))
"""

FIRST_UNIT = """
import json, sys, time
t0 = time.perf_counter()
import milannotations as mn
t1 = time.perf_counter()
if sys.argv[2] == "streaming":
    row = next(iter(mn.load("{config}", split="train", root=sys.argv[1], streaming=True)))
    unit = mn.to_exemplars(row, annotated=True)
else:
    unit = mn.UnitSet(mn.load("{config}", split="train", root=sys.argv[1]), annotated=True)[0]
t2 = time.perf_counter()
assert unit.masks.shape[0] > 0
print(json.dumps({{"import_s": t1 - t0, "load_to_first_unit_s": t2 - t1}}))
"""

ITERATE = """
import json, sys, time
import milannotations as mn
n = 0
t = time.perf_counter()
for split in ("train", "test"):
    for unit in mn.UnitSet(mn.load("{config}", split=split, root=sys.argv[1])):
        n += int(unit.images.shape[0] > 0)
dt = time.perf_counter() - t
print(json.dumps({{"units": n, "seconds": dt}}))
"""


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
    args = ap.parse_args()

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
        built = str(tmp / "milannotations")
        stream = _child(FIRST_UNIT.format(config=CONFIG), built, "streaming", env=env)
        cold = _child(FIRST_UNIT.format(config=CONFIG), built, "map", env=env)
        warm = _child(FIRST_UNIT.format(config=CONFIG), built, "map", env=env)
        print(f"load() -> first unit: cold {cold['load_to_first_unit_s']:.2f} s (fresh HF cache: datasets "
              f"copies parquet -> arrow once), warm {warm['load_to_first_unit_s']:.2f} s (goal < 1 s), "
              f"cold with streaming=True {stream['load_to_first_unit_s']:.2f} s; "
              f"`import milannotations` {warm['import_s']:.2f} s")

        it = _child(ITERATE.format(config=CONFIG), str(tmp / "milannotations"), env=env)
        print(f"iterate whole config via UnitSet: {it['units']} units in {it['seconds']:.1f} s = "
              f"{it['units'] / it['seconds']:.1f} units/s (decoding {args.k} images + {args.k} masks per unit)")


if __name__ == "__main__":
    main()
