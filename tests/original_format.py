"""Fixtures in the EXACT original MILANNOTATIONS release format, and the original loader's semantics.

Not a test module: a helper other tests and benchmarks import. It writes zips
laid out like `scripts/export_milannotations.py` of the original release made
them (reference: /work/shared/reference/milannotations-format.md, sections 2-6):

    annotations.csv            header `layer,unit,summary`, one row per description
    <layer>/masks.npy          uint8 {0,1}, shape (n_units, k, 1, H, W)
    <layer>/ids.csv            no header, n_units rows x k comma-separated integers
    <layer>/images.npy         uint8 RGB channels-first (n_units, k, 3, H, W), only where shipped

Arrays are written through `np.lib.format.open_memmap` one unit at a time, so a
fixture of the benchmark's size (1,000 units x 15 x 224 px, ~2.3 GB of images)
never sits in memory. Content is a pure function of (seed, layer, unit), so a
test can recompute what it wrote (`OriginalFixture.masks(...)` etc.) instead
of holding it.

`original_samples(zip)` re-implements what the original
`AnnotatedTopImagesDataset(annotation_count=3)` returns, independently of
`milannotations.build`, as the oracle for conversion tests.

`make_imagefolder(...)` writes a tiny ImageNet-val-like ImageFolder
(`<root>/<wnid>/<file>.JPEG`) for re-join tests.
"""
from __future__ import annotations

import collections
import csv
import io
import random
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np


@dataclass(frozen=True)
class LayerSpec:
    """One layer directory of an original zip.

    name: directory name, exactly as in the release (may be all digits, e.g. "0").
    images: whether `images.npy` ships for this layer (False for ImageNet configs).
    """

    name: str
    n_units: int
    k: int = 15
    height: int = 224
    width: int = 224
    images: bool = True


MasksFn = Callable[[LayerSpec, int], np.ndarray]   # -> (k, 1, H, W) uint8 {0,1}
ImagesFn = Callable[[LayerSpec, int], np.ndarray]  # -> (k, 3, H, W) uint8
IdsFn = Callable[[LayerSpec, int], Sequence[int]]  # -> k ints


@dataclass
class OriginalFixture:
    """What `make_original_zip` wrote: enough to recompute every array and CSV row."""

    path: Path
    layers: tuple[LayerSpec, ...]
    rows: list[tuple[str, int, str]]  # annotations.csv rows, in file order
    seed: int
    masks_fn: MasksFn
    images_fn: ImagesFn
    ids_fn: IdsFn
    npy_bytes: int = 0  # total size of the .npy members (uncompressed)

    def layer(self, name: str) -> LayerSpec:
        return next(spec for spec in self.layers if spec.name == name)

    def masks(self, layer: str, unit: int) -> np.ndarray:
        return self.masks_fn(self.layer(layer), unit)

    def images(self, layer: str, unit: int) -> np.ndarray | None:
        spec = self.layer(layer)
        return self.images_fn(spec, unit) if spec.images else None

    def ids(self, layer: str, unit: int) -> list[int]:
        return [int(i) for i in self.ids_fn(self.layer(layer), unit)]


def _rng(seed: int, spec: LayerSpec, unit: int, salt: str) -> np.random.Generator:
    key = f"{seed}:{spec.name}:{unit}:{salt}".encode()
    return np.random.default_rng(int.from_bytes(__import__("hashlib").sha256(key).digest()[:8], "little"))


def default_masks(seed: int = 0) -> MasksFn:
    """Blocky random masks: one rectangle per exemplar, values {0,1}."""

    def fn(spec: LayerSpec, unit: int) -> np.ndarray:
        rng = _rng(seed, spec, unit, "masks")
        out = np.zeros((spec.k, 1, spec.height, spec.width), np.uint8)
        for j in range(spec.k):
            h = int(rng.integers(1, spec.height // 2 + 1))
            w = int(rng.integers(1, spec.width // 2 + 1))
            y = int(rng.integers(0, spec.height - h + 1))
            x = int(rng.integers(0, spec.width - w + 1))
            out[j, 0, y:y + h, x:x + w] = 1
        return out

    return fn


def default_images(seed: int = 0) -> ImagesFn:
    """Random pixels (cheap, incompressible: a worst case for PNG size)."""

    def fn(spec: LayerSpec, unit: int) -> np.ndarray:
        rng = _rng(seed, spec, unit, "images")
        return rng.integers(0, 256, (spec.k, 3, spec.height, spec.width), dtype=np.uint8)

    return fn


def default_ids(seed: int = 0, n_source: int = 50_000) -> IdsFn:
    """Distinct ids per unit in [0, n_source)."""

    def fn(spec: LayerSpec, unit: int) -> list[int]:
        rng = _rng(seed, spec, unit, "ids")
        return rng.choice(n_source, size=spec.k, replace=n_source < spec.k).tolist()

    return fn


def description(layer: str, unit: int, j: int) -> str:
    """The j-th description written for a unit; distinct per (layer, unit, j)."""
    words = ("dog faces", "blue sky", "text", "wheels", "grass", "stripes", "water", "café signs")
    return f"{words[(unit + j) % len(words)]} in {layer} #{unit}.{j}"


def make_original_zip(
    path: str | Path,
    layers: Sequence[LayerSpec],
    *,
    descriptions: Mapping[tuple[str, int], int] | Callable[[str, int], int] | None = None,
    shuffle_rows: bool = True,
    seed: int = 0,
    masks_fn: MasksFn | None = None,
    images_fn: ImagesFn | None = None,
    ids_fn: IdsFn | None = None,
    summary_fn: Callable[[str, int, int], str] = description,
    extra_rows: Sequence[tuple[str, str, str]] = (),
    compression: int = zipfile.ZIP_DEFLATED,
) -> OriginalFixture:
    """Write an original-format zip at `path` and return how to recompute its content.

    descriptions: how many annotation rows each (layer, unit) gets (default 3;
        0 = unannotated, 2 = dropped by the original loader, 4 = first 3 kept).
    shuffle_rows: write annotations.csv rows in a seeded random order (the
        release is not sorted; the loader's row order is first appearance).
    extra_rows: raw (layer, unit, summary) rows appended verbatim (e.g. to name
        a layer or unit that does not exist).
    compression: zipfile.ZIP_DEFLATED like `shutil.make_archive`, or ZIP_STORED.
    """
    path = Path(path)
    masks_fn = masks_fn or default_masks(seed)
    images_fn = images_fn or default_images(seed)
    ids_fn = ids_fn or default_ids(seed)
    if descriptions is None:
        count = lambda layer, unit: 3  # noqa: E731
    elif callable(descriptions):
        count = descriptions
    else:
        table = dict(descriptions)
        count = lambda layer, unit: table.get((layer, unit), 3)  # noqa: E731

    rows: list[tuple[str, int, str]] = []
    for spec in layers:
        for unit in range(spec.n_units):
            rows += [(spec.name, unit, summary_fn(spec.name, unit, j)) for j in range(count(spec.name, unit))]
    if shuffle_rows:
        # Shuffle, but keep each unit's own descriptions in their relative order so
        # "first 3 in CSV order" is checkable: shuffle which unit comes next.
        rng = random.Random(seed)
        order = list(range(len(rows)))
        rng.shuffle(order)
        keys = [(r[0], r[1]) for r in rows]
        per_unit: dict[tuple[str, int], collections.deque] = collections.defaultdict(collections.deque)
        for r in rows:
            per_unit[(r[0], r[1])].append(r)
        rows = [per_unit[keys[i]].popleft() for i in order]

    npy_bytes = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="origzip-", dir=path.parent) as tmp:
        root = Path(tmp)
        with open(root / "annotations.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["layer", "unit", "summary"])
            for layer, unit, summary in rows:
                w.writerow([layer, unit, summary])
            for raw in extra_rows:
                w.writerow(list(raw))
        for spec in layers:
            d = root / spec.name
            d.mkdir()
            shape = (spec.n_units, spec.k)
            masks = np.lib.format.open_memmap(d / "masks.npy", mode="w+", dtype=np.uint8,
                                              shape=shape + (1, spec.height, spec.width))
            images = (np.lib.format.open_memmap(d / "images.npy", mode="w+", dtype=np.uint8,
                                                shape=shape + (3, spec.height, spec.width))
                      if spec.images else None)
            with open(d / "ids.csv", "w", newline="") as f:
                w = csv.writer(f)
                for unit in range(spec.n_units):
                    masks[unit] = masks_fn(spec, unit)
                    if images is not None:
                        images[unit] = images_fn(spec, unit)
                    w.writerow([int(i) for i in ids_fn(spec, unit)])
            masks.flush()
            npy_bytes += masks.nbytes
            del masks
            if images is not None:
                images.flush()
                npy_bytes += images.nbytes
                del images
        tmp_zip = root / "out.zip"
        with zipfile.ZipFile(tmp_zip, "w", compression=compression) as zf:
            zf.write(root / "annotations.csv", "annotations.csv")
            for spec in layers:
                for name in ("masks.npy", "ids.csv", "images.npy"):
                    p = root / spec.name / name
                    if p.exists():
                        zf.write(p, f"{spec.name}/{name}")
        shutil.move(str(tmp_zip), path)
    return OriginalFixture(path=path, layers=tuple(layers), rows=rows + [(a, b, c) for a, b, c in extra_rows],
                           seed=seed, masks_fn=masks_fn, images_fn=images_fn, ids_fn=ids_fn, npy_bytes=npy_bytes)


@dataclass
class OriginalSample:
    """One sample as the original loader returns it (arrays as stored, uint8)."""

    layer: str
    unit: int
    annotations: tuple[str, ...]
    masks: np.ndarray
    images: np.ndarray | None
    ids: list[int] = field(default_factory=list)


def original_samples(zip_path: str | Path, annotation_count: int = 3) -> list[OriginalSample]:
    """What the original `AnnotatedTopImagesDataset(root, annotation_count=3)` yields, in order.

    Written from the original semantics (reference section 6), independently
    of `milannotations.build`: rows grouped by (layer, unit) in order of first
    appearance; a layer made of digits becomes an int key (and is looked up
    again as its string); groups with fewer than `annotation_count` rows are
    dropped, longer ones keep the first rows. Only for trusted test fixtures.
    """
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(zip_path) as zf:
            zf.extractall(tmp)
        root = Path(tmp)
        with open(root / "annotations.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        groups: dict[tuple, list[str]] = collections.defaultdict(list)
        for row in rows:
            layer = int(row["layer"]) if row["layer"].isdigit() else row["layer"]
            groups[layer, int(row["unit"])].append(row["summary"])
        out = []
        for (layer, unit), texts in groups.items():
            if len(texts) < annotation_count:
                continue
            d = root / str(layer)
            masks = np.load(d / "masks.npy")[unit]
            images = np.load(d / "images.npy")[unit] if (d / "images.npy").exists() else None
            ids = list(csv.reader(io.StringIO((d / "ids.csv").read_text())))[unit]
            out.append(OriginalSample(str(layer), unit, tuple(texts[:annotation_count]), masks.copy(),
                                      None if images is None else images.copy(), [int(i) for i in ids]))
        return out


def make_imagefolder(root: str | Path, n_classes: int, per_class: int,
                     draw: Callable[[int], "PIL.Image.Image"], ext: str = ".JPEG") -> list[Path]:  # noqa: F821
    """A val ImageFolder `<root>/n000000NN/ILSVRC2012_val_XXXXXXXX<ext>`; returns files in id order.

    `draw(i)` makes image id i (its position in sorted ImageFolder order). Use
    ext=".png" for lossless pixels when a test compares exact values.
    """
    root = Path(root)
    files = []
    for c in range(n_classes):
        d = root / f"n{c:08d}"
        d.mkdir(parents=True, exist_ok=True)
        for j in range(per_class):
            i = c * per_class + j
            p = d / f"ILSVRC2012_val_{i:08d}{ext}"
            img = draw(i)
            img.save(p, quality=95) if ext.lower() in (".jpeg", ".jpg") else img.save(p)
            files.append(p)
    return files


def rewrite_zip(src: str | Path, dst: str | Path, *, replace: Mapping[str, bytes | None] = (),
                add: Mapping[str, bytes] = (), compression: int = zipfile.ZIP_DEFLATED) -> Path:
    """Copy an original zip with members replaced (bytes), removed (None) or added (raw names,
    so `../evil` or `/abs` can be written): for building bad inputs."""
    replace, add = dict(replace), dict(add)
    dst = Path(dst)
    tmp = dst.with_name(dst.name + ".tmp")
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(tmp, "w", compression=compression) as zout:
        for info in zin.infolist():
            if info.filename in replace:
                data = replace[info.filename]
                if data is not None:
                    zout.writestr(info.filename, data)
                continue
            zout.writestr(info.filename, zin.read(info.filename))
        for name, data in add.items():
            zout.writestr(zipfile.ZipInfo(name), data)
    tmp.replace(dst)
    return dst


def npy_bytes(array: np.ndarray) -> bytes:
    """An array serialised as a .npy member."""
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    return buf.getvalue()
