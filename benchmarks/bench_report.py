"""How long `milan-report`'s report step takes once descriptions exist, and how heavy the page is.

    nice python benchmarks/bench_report.py --units 1000 --k 15 --size 224
    nice python benchmarks/bench_report.py --units 1000 --page-units 5000 --workers 1,2,4

Part 1 (`--units`): an exemplar corpus of N units (4 layers, k exemplars of `--size` pixels each,
with masks) and a descriptions.csv; `applications.report.build_report` is timed end to end (read,
thumbnails, page, rename), once per `--workers` value. The corpus is written straight in the
corpus layout (`data/<config>/*.parquet` + `meta/<config>.json`, the columns the report reads)
from a pool of `--pool` distinct PNG images shared among the units, so setting it up does not
take longer than the thing measured; every unit's images are still decoded, resized, dimmed and
encoded separately, as for a real corpus.

Part 2 (`--page-units`): a descriptions-only report of M units (no thumbnails): build time, the
size of index.html, and, where `chromium` is on PATH, the wall time of headless Chromium loading
the page and running its script (`--dump-dom`, against a 10-unit page as the baseline of starting
Chromium), and the number of cards in the DOM afterwards (one page of them, not M).
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WORDS = ["dog faces", "blue sky", "text and letters", "wheels of cars", "grass", "striped fabric", "water",
         "human faces", "windows of buildings", "red objects", "round shapes", "fur", "trees", "the sea"]


def _images(pool: int, size: int, seed: int) -> tuple[list[bytes], list[bytes]]:
    """`pool` PNG images with some structure (upsampled noise, like a photo's PNG size) and blob masks."""
    import torch
    import torch.nn.functional as F

    from milannotations.writer import encode_png

    g = torch.Generator().manual_seed(seed)
    low = torch.rand(pool, 3, max(2, size // 8), max(2, size // 8), generator=g)
    imgs = F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    imgs = (imgs * 200 + torch.rand(pool, 3, size, size, generator=g) * 55).clamp(0, 255).to(torch.uint8).numpy()
    blobs = F.interpolate(torch.rand(pool, 1, 7, 7, generator=g), size=(size, size), mode="bilinear",
                          align_corners=False)[:, 0].numpy()
    masks = (blobs > np.quantile(blobs, 0.8, axis=(1, 2), keepdims=True)).astype(np.uint8) * 255
    return [encode_png(a) for a in imgs], [encode_png(m) for m in masks]


def write_corpus(folder: Path, units: int, k: int, size: int, pool: int, seed: int = 0,
                 shared_ids: int = 0) -> tuple[Path, Path]:
    """An exemplar corpus of `units` units over 4 layers, and its descriptions.csv.

    Image ids are distinct for every (unit, slot) unless `shared_ids` > 0, when they are drawn from
    that many (as in a real corpus, where an image is a top image of several units); an id's bytes
    are always the same image."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from eval.results import descriptions_csv

    images, masks = _images(pool, size, seed)
    rng = np.random.default_rng(seed)
    layers = ["layer1", "layer2", "layer3", "layer4"]
    per = [units // 4 + (i < units % 4) for i in range(4)]
    rows, descs = [], []
    for layer, n in zip(layers, per):
        for u in range(n):
            ids = rng.integers(0, shared_ids, size=k) if shared_ids else np.arange(len(rows) * k, (len(rows) + 1) * k)
            pick = ids % pool
            uid = f"bench/{layer}/{u}"
            rows.append({"unit_id": uid, "config": "bench", "model": "benchnet", "dataset": "noise", "layer": layer,
                         "unit": u, "images": [{"bytes": images[i], "path": None} for i in pick],
                         "masks": [{"bytes": masks[i], "path": None} for i in pick],
                         "image_ids": [int(i) for i in ids], "annotations": [], "truth": None})
            a, b = rng.choice(len(WORDS), size=2, replace=False)
            descs.append({"unit_id": uid, "layer": layer, "unit": u, "description": f"{WORDS[a]} and {WORDS[b]}",
                          "split": "", "trial": 0})
    data = folder / "data" / "bench"
    data.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), data / "train-00000-of-00001.parquet", row_group_size=64)
    (folder / "meta").mkdir()
    (folder / "meta" / "bench.json").write_text(json.dumps({
        "config": "bench", "files": {"train": ["train-00000-of-00001.parquet"]},
        "provenance": {"exemplars": {"layers": layers, "k": k}}}))
    csv_path = folder / "descriptions.csv"
    csv_path.write_text(descriptions_csv(descs), encoding="utf-8")
    return folder, csv_path


def _chromium_seconds(url: str, profile: Path) -> tuple[float, str]:
    exe = shutil.which("chromium")
    t = time.perf_counter()
    out = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                          "--disable-background-networking", f"--user-data-dir={profile}",
                          "--virtual-time-budget=1000", "--dump-dom", url], capture_output=True, text=True, timeout=300)
    return time.perf_counter() - t, out.stdout


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--units", type=int, default=1000)
    p.add_argument("--k", type=int, default=15)
    p.add_argument("--size", type=int, default=224, help="exemplar image size in pixels")
    p.add_argument("--tile", type=int, default=64)
    p.add_argument("--pool", type=int, default=256, help="distinct PNG payloads shared among the units")
    p.add_argument("--shared-ids", type=int, default=0,
                   help="draw image ids from this many (0: every exemplar its own image, no tile reuse)")
    p.add_argument("--workers", default="0", help="comma-separated thread counts (0: the report's default)")
    p.add_argument("--page-units", type=int, default=5000, help="units of the descriptions-only page (0: skip)")
    p.add_argument("--keep", type=Path, default=None, help="write the corpus and reports here and keep them")
    args = p.parse_args(argv)

    import os

    from applications.report import build_report

    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")

    base = args.keep or Path(tempfile.mkdtemp(prefix="bench-report-"))
    base.mkdir(parents=True, exist_ok=True)
    try:
        t = time.perf_counter()
        corpus, csv_path = write_corpus(base / "corpus", args.units, args.k, args.size, args.pool,
                                        shared_ids=args.shared_ids)
        setup = time.perf_counter() - t
        size_mb = sum(f.stat().st_size for f in corpus.rglob("*.parquet")) / 2**20
        ids = f"ids from {args.shared_ids}" if args.shared_ids else "every exemplar a distinct image"
        print(f"corpus: {args.units} units x {args.k} exemplars of {args.size}px ({ids}; {size_mb:.0f} MiB "
              f"parquet), set up in {setup:.1f} s")
        print(f"{'workers':>8} {'read s':>8} {'thumbs s':>9} {'page s':>7} {'total s':>8} {'CPU s':>7} "
              f"{'thumbs MiB':>11}")
        for w in [int(x) for x in args.workers.split(",")]:
            out = base / f"report-w{w}"
            cpu = time.process_time()  # all threads of this process
            stats = build_report(out, descriptions=csv_path, exemplars=corpus, tile=args.tile, workers=w or None)
            cpu = time.process_time() - cpu
            s = stats.seconds
            mib = sum(f.stat().st_size for f in (out / "thumbs").iterdir()) / 2**20
            print(f"{w or 'default':>8} {s['read']:8.2f} {s['thumbnails']:9.2f} {s['page']:7.2f} {s['total']:8.2f} "
                  f"{cpu:7.2f} {mib:11.1f}")
            assert stats.units == args.units and stats.thumbnails == args.units
        if args.page_units:
            from eval.results import descriptions_csv

            big = base / "page.csv"
            rng = np.random.default_rng(1)
            big.write_text(descriptions_csv(
                {"unit_id": f"big/layer{u % 8}/{u}", "layer": f"layer{u % 8}", "unit": u,
                 "description": " and ".join(WORDS[i] for i in rng.choice(len(WORDS), 2, replace=False)),
                 "split": "", "trial": 0} for u in range(args.page_units)), encoding="utf-8")
            stats = build_report(base / "page", descriptions=big)
            kib = stats.path.stat().st_size / 1024
            print(f"page: {args.page_units} units, descriptions only: built in {stats.seconds['total']:.2f} s, "
                  f"index.html {kib:.0f} KiB")
            if shutil.which("chromium"):
                small = base / "small.csv"
                small.write_text(descriptions_csv({"unit_id": f"s/l/{u}", "layer": "l", "unit": u,
                                                   "description": "x", "split": "", "trial": 0} for u in range(10)))
                tiny = build_report(base / "small", descriptions=small)
                t0, _ = _chromium_seconds(tiny.path.resolve().as_uri(), base / "prof0")
                t1, dom = _chromium_seconds(stats.path.resolve().as_uri(), base / "prof1")
                cards = len(re.findall(r'<article class="card"', dom))
                ready = '<body data-ready="1">' in dom
                print(f"chromium --dump-dom: {t1:.2f} s for {args.page_units} units vs {t0:.2f} s for 10 "
                      f"(script ran: {ready}); {cards} cards in the DOM")
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
