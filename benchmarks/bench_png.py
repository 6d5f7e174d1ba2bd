"""PNG settings for the corpus writer: encode time and size per zlib level and strategy.

    nice .venv/bin/python benchmarks/bench_png.py [--photo PATH.jpg] [--n 60]

Pillow's PNG encoder (adaptive row filters) at zlib levels 0-9 with the default strategy, and at
level 1 with the RLE and Huffman-only strategies, on four kinds of 224 x 224 content: the random
pixels of the benchmark fixture (incompressible: the worst case), crops of a photograph (what the
real corpus holds; pass any JPEG with --photo), synthetic cluttered scenes upscaled to 224 px, and
the fixture's masks (mode L, 0/255). Time is CPU milliseconds per image on one core (process time,
so a busy machine inflates it less than wall time). Every setting decodes to the same pixels; this
only trades size against time. docs/corpus.md ("PNG settings") carries the table.
"""
from __future__ import annotations

import argparse
import io
import sys
import time
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_PHOTO = Path("/root/.rustup/toolchains/stable-x86_64-unknown-linux-gnu/share/doc/rust/html/"
                     "embedded-book/assets/f3.jpg")
SETTINGS = [(0, zlib.Z_DEFAULT_STRATEGY), (1, zlib.Z_DEFAULT_STRATEGY), (3, zlib.Z_DEFAULT_STRATEGY),
            (6, zlib.Z_DEFAULT_STRATEGY), (9, zlib.Z_DEFAULT_STRATEGY), (1, zlib.Z_RLE), (1, zlib.Z_HUFFMAN_ONLY)]
NAMES = {zlib.Z_DEFAULT_STRATEGY: "default", zlib.Z_RLE: "RLE", zlib.Z_HUFFMAN_ONLY: "huffman"}


def contents(n: int, photo: Path | None) -> dict[str, list[np.ndarray]]:
    from PIL import Image

    from milannotations.synth.scenes import render_scene
    from tests.original_format import LayerSpec, default_images, default_masks

    spec = LayerSpec("conv1", 8, k=15, height=224, width=224)
    units = -(-n // 15)
    out = {"random pixels (fixture)": [im for u in range(units) for im in default_images(0)(spec, u)][:n]}
    if photo is not None and photo.is_file():
        pic = np.asarray(Image.open(photo).convert("RGB"))
        rng = np.random.default_rng(0)
        crops = []
        for _ in range(n):
            y, x = int(rng.integers(0, pic.shape[0] - 224)), int(rng.integers(0, pic.shape[1] - 224))
            crops.append(np.ascontiguousarray(pic[y:y + 224, x:x + 224].transpose(2, 0, 1)))
        out[f"photo crops ({photo.name})"] = crops
    out["synthetic cluttered scenes, 224 px"] = [
        np.asarray(Image.fromarray(render_scene("cluttered", i).image.transpose(1, 2, 0)).resize(
            (224, 224), Image.BILINEAR)).transpose(2, 0, 1) for i in range(n)]
    out["masks (fixture)"] = [(m[0] > 0).astype(np.uint8) * 255
                              for u in range(units) for m in default_masks(0)(spec, u)][:n]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photo", type=Path, default=DEFAULT_PHOTO, help="a JPEG to crop 224 px tiles from")
    ap.add_argument("--n", type=int, default=60, help="images per content kind")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    from PIL import Image

    from milannotations.writer import Encoding, encode_png

    print("| content | setting | CPU ms / image | KiB / image | vs level 6 (time, size) |")
    print("|---|---|---|---|---|")
    for name, arrays in contents(args.n, args.photo).items():
        rows = []
        for level, strategy in SETTINGS:
            enc = Encoding(png_level=level, png_strategy=strategy)
            best = float("inf")
            for _ in range(args.repeats):
                c = time.process_time()
                blobs = [encode_png(a, enc) for a in arrays]
                best = min(best, (time.process_time() - c) / len(arrays))
            for a, b in zip(arrays[:3], blobs[:3]):  # same pixels back
                back = np.asarray(Image.open(io.BytesIO(b)))
                assert np.array_equal(back, a.transpose(1, 2, 0) if a.ndim == 3 else a)
            rows.append((f"level {level}, {NAMES[strategy]}", best * 1000, sum(map(len, blobs)) / len(blobs) / 1024))
        base = next(r for r in rows if r[0] == "level 6, default")
        for label, ms, kib in rows:
            print(f"| {name} | {label} | {ms:.2f} | {kib:.1f} | {ms / base[1]:.2f}x, {kib / base[2]:.3f}x |")


if __name__ == "__main__":
    main()
