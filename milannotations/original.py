"""Reading one original MILANNOTATIONS zip safely, with the original loader's semantics.

The release zips (reference: milannotations-format.md, sections 2-6) hold
`annotations.csv` and per layer `masks.npy`, `ids.csv` and, where licences
allow, `images.npy`. This module

- extracts a zip into a folder, refusing members that would land outside it
  (zip-slip), links, and truncated or corrupt archives;
- opens the arrays memory-mapped (`np.load(mmap_mode="r")`, never pickles), so
  a 9 GB config is read unit by unit;
- validates shapes the way the original `TopImagesDataset` did, and more
  (ids shape, column names, referenced layers/units, text encoding);
- groups annotations exactly as `AnnotatedTopImagesDataset(annotation_count=3)`:
  by (layer, unit) in order of first appearance in annotations.csv, dropping
  units with fewer than 3 descriptions and keeping the first 3 of the others.

Every problem raises one `MilanError` naming the file and the layer or unit.
"""
from __future__ import annotations

import collections
import csv
import io
import shutil
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from .errors import MilanError
from .schema import ANNOTATION_COUNT

ANNOTATIONS_FILE = "annotations.csv"
COLUMNS = ("layer", "unit", "summary")
_CHUNK = 1 << 20


def _member_target(dest: Path, name: str, zip_label: str) -> Path | None:
    """Where member `name` extracts to, or an error if it escapes `dest`; None for folders."""
    if "\\" in name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise MilanError(f"{zip_label}: member {name!r} has an absolute or non-portable path; refusing to extract")
    parts = PurePosixPath(name).parts
    if any(p == ".." for p in parts):
        raise MilanError(f"{zip_label}: member {name!r} escapes the extraction folder; refusing to extract")
    if name.endswith("/"):
        return None
    target = (dest / Path(*parts)).resolve()
    if not target.is_relative_to(dest.resolve()):
        raise MilanError(f"{zip_label}: member {name!r} escapes the extraction folder; refusing to extract")
    return target


def safe_extract(zip_path: Path, dest: Path) -> list[str]:
    """Extract `zip_path` into the existing folder `dest`; return the member names.

    Refuses absolute paths, `..` components and symbolic links before writing
    anything, and turns truncation or CRC failures into a `MilanError`.
    """
    zip_path, dest = Path(zip_path), Path(dest)
    label = zip_path.name
    try:
        zf = zipfile.ZipFile(zip_path)
    except FileNotFoundError:
        raise MilanError(f"{zip_path}: zip not found; run `milannotations download`") from None
    except (zipfile.BadZipFile, EOFError, OSError) as e:
        raise MilanError(f"{zip_path}: not a readable zip (truncated or corrupt: {e}); "
                         "delete it and download again") from None
    with zf:
        infos = zf.infolist()
        targets = []
        for info in infos:
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise MilanError(f"{label}: member {info.filename!r} is a symbolic link; refusing to extract")
            targets.append(_member_target(dest, info.filename, label))
        for info, target in zip(infos, targets):
            if target is None:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zf.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, _CHUNK)
            except (zipfile.BadZipFile, zlib.error, EOFError) as e:
                raise MilanError(f"{label}: member {info.filename!r} is corrupt ({e}); "
                                 "delete the zip and download again") from None
        return [i.filename for i in infos]


@dataclass
class LayerFiles:
    """One layer directory, memory-mapped. `images` is None where pixels were not shipped."""

    name: str
    masks: np.ndarray  # (n_units, k, 1, H, W) uint8, memory-mapped
    ids: np.ndarray  # (n_units, k) int64
    images: np.ndarray | None  # (n_units, k, 3, H, W) uint8, memory-mapped

    @property
    def n_units(self) -> int:
        return int(self.masks.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        return int(self.masks.shape[3]), int(self.masks.shape[4])


@dataclass(frozen=True)
class AnnotatedUnit:
    """A unit the original loader keeps: layer (always a string), unit, its first 3 descriptions."""

    layer: str
    unit: int
    annotations: tuple[str, ...]


def _load_npy(path: Path, label: str) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise MilanError(f"{label}: cannot read as a .npy array ({e})") from None


def _decode_text(path: Path, label: str) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise MilanError(f"{label}: line {line} is not valid UTF-8 text ({e.reason})") from None


def read_ids(path: Path, label: str, shape: tuple[int, int]) -> np.ndarray:
    """`ids.csv`: no header, one row per unit, k integers (integral floats are accepted)."""
    text = _decode_text(path, label)
    rows = [r for r in csv.reader(io.StringIO(text)) if r and any(c.strip() for c in r)]
    out = np.empty((len(rows), shape[1] if rows else 0), np.int64)
    for i, row in enumerate(rows):
        if len(row) != shape[1]:
            raise MilanError(f"{label}: unit {i} has {len(row)} ids, expected k={shape[1]} as in masks.npy")
        for j, cell in enumerate(row):
            try:
                value = int(cell)
            except ValueError:
                try:
                    f = float(cell)
                except ValueError:
                    f = float("nan")
                if not f.is_integer():
                    raise MilanError(f"{label}: unit {i}, column {j}: {cell!r} is not an integer id") from None
                value = int(f)
            if value < 0:
                raise MilanError(f"{label}: unit {i}, column {j}: negative id {value}")
            out[i, j] = value
    if out.shape != shape:
        raise MilanError(f"{label}: {out.shape[0]} rows of ids for {shape[0]} units in masks.npy "
                         f"(ids must be n_units x k = {shape[0]} x {shape[1]})")
    return out


def open_layer(root: Path, layer: str, zip_label: str) -> LayerFiles:
    """Open and validate one layer directory of an extracted zip."""
    d = Path(root) / layer
    where = f"{zip_label}: {layer}"
    for required in ("masks.npy", "ids.csv"):
        if not (d / required).is_file():
            raise MilanError(f"{where}/{required} is missing (layer {layer!r})")
    masks = _load_npy(d / "masks.npy", f"{where}/masks.npy")
    images = _load_npy(d / "images.npy", f"{where}/images.npy") if (d / "images.npy").is_file() else None
    for name, arr, channels in (("masks", masks, 1), ("images", images, 3)):
        if arr is None:
            continue
        if arr.ndim != 5:
            raise MilanError(f"{where}/{name}.npy must be 5-D (n_units, k, C, H, W), got {arr.ndim}-D {arr.shape}")
        if arr.dtype not in (np.uint8, np.bool_):
            raise MilanError(f"{where}/{name}.npy must be uint8, got {arr.dtype}")
        if arr.shape[2] != channels:
            raise MilanError(f"{where}/{name}.npy must have {channels} channel(s), got shape {arr.shape}")
    if images is not None:
        if images.shape[:2] != masks.shape[:2]:
            raise MilanError(f"{where}: images.npy {images.shape} and masks.npy {masks.shape} disagree in "
                             "number of units / exemplars")
        if images.shape[3:] != masks.shape[3:]:
            raise MilanError(f"{where}: images.npy {images.shape} and masks.npy {masks.shape} disagree in height/width")
    ids = read_ids(d / "ids.csv", f"{where}/ids.csv", (int(masks.shape[0]), int(masks.shape[1])))
    return LayerFiles(layer, masks, ids, images)


def canonical_layer(value: str) -> str:
    """The layer name the original loader looks up: digit names go through int (`"04"` -> `"4"`)."""
    return str(int(value)) if value.isdigit() and value.isascii() else value


def read_annotation_groups(path: Path, label: str) -> dict[tuple[str, int], list[str]]:
    """Every (layer, unit) of `annotations.csv` with its descriptions, in order of first appearance."""
    if not Path(path).is_file():
        raise MilanError(f"{label} is missing")
    text = _decode_text(Path(path), label)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or ())]
    if missing:
        raise MilanError(f"{label}: missing column(s) {', '.join(missing)}; expected header "
                         f"{','.join(COLUMNS)}, got {','.join(reader.fieldnames or ()) or 'nothing'}")
    groups: dict[tuple[str, int], list[str]] = collections.OrderedDict()
    try:
        for row in reader:
            line = reader.line_num
            layer_raw, unit_raw, summary = row.get("layer"), row.get("unit"), row.get("summary")
            if layer_raw is None or unit_raw is None or summary is None:
                raise MilanError(f"{label}: line {line} has too few fields")
            try:
                unit = int(unit_raw)
            except ValueError:
                raise MilanError(f"{label}: line {line}, layer {layer_raw!r}: unit {unit_raw!r} is not an integer") from None
            if unit < 0:
                raise MilanError(f"{label}: line {line}, layer {layer_raw!r}: negative unit {unit}")
            groups.setdefault((canonical_layer(layer_raw), unit), []).append(summary)
    except csv.Error as e:
        raise MilanError(f"{label}: malformed CSV near line {reader.line_num} ({e})") from None
    return groups


def keep_annotated(groups: dict[tuple[str, int], list[str]], count: int = ANNOTATION_COUNT) -> list[AnnotatedUnit]:
    """Drop groups with fewer than `count` descriptions, cut the others to their first `count`."""
    return [AnnotatedUnit(layer, unit, tuple(texts[:count]))
            for (layer, unit), texts in groups.items() if len(texts) >= count]


@dataclass
class OriginalRelease:
    """An extracted, validated zip: its layers (memory-mapped) and the units the loader keeps."""

    root: Path
    zip_label: str
    layers: dict[str, LayerFiles]
    units: list[AnnotatedUnit]

    def images_status(self) -> str:
        """"all", "none" or "some": which layers ship `images.npy`."""
        flags = [lf.images is not None for lf in self.layers.values()]
        return "all" if all(flags) else ("none" if not any(flags) else "some")


def open_release(root: Path, zip_label: str, count: int = ANNOTATION_COUNT) -> OriginalRelease:
    """Validate an extracted zip folder: every layer directory, then every kept unit's reference."""
    root = Path(root)
    groups = read_annotation_groups(root / ANNOTATIONS_FILE, f"{zip_label}: {ANNOTATIONS_FILE}")
    names = sorted(p.name for p in root.iterdir() if p.is_dir())  # the original sorts as strings
    if not names:
        raise MilanError(f"{zip_label}: no layer directories")
    layers = {name: open_layer(root, name, zip_label) for name in names}
    # Every row must point at real data, also rows of units the loader then drops.
    for layer, unit in groups:
        lf = layers.get(layer)
        if lf is None:
            raise MilanError(f"{zip_label}: {ANNOTATIONS_FILE} names layer {layer!r} (unit {unit}), "
                             f"which has no directory; layers: {', '.join(names)}")
        if unit >= lf.n_units:
            raise MilanError(f"{zip_label}: {ANNOTATIONS_FILE} names unit {unit} of layer {layer!r}, "
                             f"which has only {lf.n_units} units in {layer}/masks.npy")
    return OriginalRelease(root, zip_label, layers, keep_annotated(groups, count))
