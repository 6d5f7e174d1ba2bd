"""Benchmark of the synthetic world: backbone training time, default build time, mask IoU.

    nice .venv/bin/python benchmarks/bench_synth.py [--units N] [--steps N] [--skip-backbone]
    nice .venv/bin/python benchmarks/bench_synth.py --rows [--units N] [--workers N]   # issue 18's rows only

Prints wall and CPU seconds (the machine may be shared: CPU seconds of this
process say what the work costs, wall seconds what a user waits), the
backbone's validation micro-F1, and the mean IoU between single-concept
units' exemplar masks and the true pixels of their concept (per category),
computed from the written parquet through `milannotations.load`.

`--rows` prints issue 18's synthetic rows instead: the four annotated configs and the one config a
first `load` builds, each in a fresh process on every core (ours beside the goal), and the scaling
row (one config, 1 vs N workers), with CPU seconds of the parent and of its worker processes.
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
from collections import defaultdict
from pathlib import Path

import numpy as np


def _timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def concept_iou(root: Path, configs) -> dict[str, dict[str, float]]:
    """Mean IoU (pooled over a unit's 15 exemplars) of single-concept units, per config and category."""
    import milannotations as mn
    from milannotations.synth.scenes import CONCEPT_INDEX, CONCEPTS, scene_concepts

    result = {}
    for config in configs:
        per_cat: dict[str, list[float]] = defaultdict(list)
        for row in _rows(mn, config, root):
            truth = json.loads(row["truth"])
            if truth["kind"] != "concept":
                continue
            c = CONCEPT_INDEX[truth["concepts"][0]]
            inter = union = 0
            for mask, image_id in zip(row["masks"], row["image_ids"]):
                m = np.asarray(mask) > 0
                g = scene_concepts(row["dataset"], image_id)[c]
                inter += int((m & g).sum())
                union += int((m | g).sum())
            per_cat[CONCEPTS[c].category].append(inter / max(union, 1))
        allv = [v for vs in per_cat.values() for v in vs]
        result[config] = {"all": float(np.mean(allv)), "n": len(allv),
                          **{k: round(float(np.mean(v)), 3) for k, v in sorted(per_cat.items())}}
    return result


def _rows(mn, config, root):
    ds = mn.load(config, root=root)
    for split in ("train", "test"):
        yield from ds[split]


BUILD = """
import json, os, sys, time
if __name__ == "__main__":
    from milannotations.parallel import worker_cpu_seconds
    from milannotations.synth.build import build_synth
    t, c = time.perf_counter(), time.process_time()
    build_synth(sys.argv[1], units=int(sys.argv[2]), configs=sys.argv[4].split(","), workers=int(sys.argv[3]),
                progress=False)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    time.sleep(0.3)  # let the forkserver reap the workers
    print(json.dumps({"seconds": wall, "cpu_parent": cpu, "cpu_workers": worker_cpu_seconds(),
                      "load": os.getloadavg()[0]}))
"""


def _build(out: Path, units: int, workers: int, configs) -> dict:
    """One synthetic build in a fresh process (imports and worker start-up included, as a user waits)."""
    script = out.parent / f"build-{out.name}.py"
    script.write_text(BUILD)
    done = subprocess.run([sys.executable, str(script), str(out), str(units), str(workers), ",".join(configs)],
                          check=True, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    return json.loads(done.stdout.strip().splitlines()[-1])


def _fig(r: dict) -> str:
    return (f"{r['seconds']:.1f} s wall (CPU {r['cpu_parent']:.1f} s parent + {r['cpu_workers']:.1f} s workers; "
            f"load {r['load']:.1f})")


def _parquet_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def synth_rows(tmp: Path, units: int, workers: int | None = None):
    """Issue 18's synthetic rows, yielded as measured: the first load's one config on N workers and on
    one (the scaling row, with a byte comparison), then all four configs on N workers."""
    from milannotations.parallel import default_workers
    from milannotations.synth.catalog import SYNTH_CONFIGS

    workers = workers or default_workers()
    one = SYNTH_CONFIGS[0]
    first = _build(tmp / "first", units, workers, [one])
    yield f"| the one config a first load builds ({one}, {units} units, {workers} workers) | {_fig(first)} | <= 30 s |"
    if workers != 1:
        serial = _build(tmp / "serial", units, 1, [one])
        same = _parquet_digest(tmp / "serial") == _parquet_digest(tmp / "first")
        yield (f"| synthetic scaling ({one}), 1 vs {workers} workers | {_fig(serial)} vs "
               f"{first['seconds']:.1f} s: {serial['seconds'] / first['seconds']:.2f}x; files byte-identical: "
               f"{'yes' if same else 'NO'} | both cores, same bytes |")
    four = _build(tmp / "four", units, workers, SYNTH_CONFIGS)
    yield (f"| synthetic build, {len(SYNTH_CONFIGS)} configs x {units} units, {workers} workers | {_fig(four)} "
           f"| <= 90 s (500 units) |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", type=int, default=None, help="units per config (default: the builder's)")
    ap.add_argument("--steps", type=int, default=None, help="backbone steps (default: module default)")
    ap.add_argument("--skip-backbone", action="store_true")
    ap.add_argument("--net", action="store_true", help="also time the synth-net-plain config")
    ap.add_argument("--rows", action="store_true", help="only issue 18's rows (build times, 1 vs N workers)")
    ap.add_argument("--workers", type=int, default=None, help="processes of the --rows builds (default: every core)")
    args = ap.parse_args()
    if args.rows:
        from milannotations.synth.catalog import DEFAULT_UNITS

        print(f"cores {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
        with tempfile.TemporaryDirectory() as tmp:
            print("| figure | ours | goal |\n|---|---|---|")
            for line in synth_rows(Path(tmp), args.units or DEFAULT_UNITS, args.workers):
                print(line, flush=True)
        return

    import torch

    from milannotations.synth import build as b
    from milannotations.synth.catalog import SYNTH_CONFIGS

    args.units = args.units or b.DEFAULT_UNITS

    print(f"cores {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}, torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if not args.skip_backbone:
            from milannotations.synth.backbone import load_synth_backbone

            (_, spec), w, c = _timed(lambda: load_synth_backbone(cache_dir=tmp / "models", steps=args.steps,
                                                                 progress=False))
            print(f"backbone: {spec.steps} steps, train wall {w:.1f} s, cpu {c:.1f} s; metrics {spec.metrics}")
        _, w, c = _timed(lambda: b.build_synth(tmp / "a", units=args.units, progress=False))
        print(f"default build ({len(SYNTH_CONFIGS)} configs x {args.units} units, pool {b.POOL_SIZE}, "
              f"k=15): wall {w:.1f} s, cpu {c:.1f} s")
        if args.net and not args.skip_backbone:
            _, w, c = _timed(lambda: b.build_synth(tmp / "a", configs=["synth-net-plain"], progress=False,
                                                   cache_dir=tmp / "models", backbone_steps=args.steps))
            print(f"synth-net-plain build (backbone cached): wall {w:.1f} s, cpu {c:.1f} s")
        size = sum(p.stat().st_size for p in (tmp / "a").rglob("*.parquet"))
        print(f"parquet size {size / 1e6:.1f} MB")
        ious, w, _ = _timed(lambda: concept_iou(tmp / "a", SYNTH_CONFIGS))
        for config, r in ious.items():
            print(f"mask IoU of single-concept units, {config}: {r}")
        print(f"mean over configs: {np.mean([r['all'] for r in ious.values()]):.3f} "
              f"(IoU pass {w:.1f} s)")


if __name__ == "__main__":
    main()
