"""Every unit's activation on every probe image: recorded beside an exemplar config, and read back.

Exemplars show only where a unit fires most; probe-set faithfulness
(NeuronEval's Pearson / AUPRC / IoU at top-alpha, CoSy's AUC) needs the
unit's activation on *every* probe image, including the ones where it is
silent. `milannotations exemplars --record-activations` stores them in the
config's data folder, so they travel with it:

    <out>/data/<config>/probe/meta.json
    <out>/data/<config>/probe/<layer>.max.npy     float16 [n_images, n_units]: spatial max
    <out>/data/<config>/probe/<layer>.mean.npy    float16 [n_images, n_units]: spatial mean

Row i is `meta["files"][i]` (relative to `meta["folder"]`; unreadable images
are left out). A "/" in a layer name becomes "__" in the file name
(`layer_filename`); dots stay. Values beyond float16's range (+-65504) are
clamped to it.

Recording is streamed and sharded: the probe images are cut into the same
fixed chunks of consecutive ids as the exemplar pass, rank r of a torchrun
job takes chunks r, r + world, ..., and each finished chunk is a folder of
`np.lib.format.open_memmap` files filled batch by batch (renamed into place
when complete, so a killed run resumes at the first missing chunk). After a
barrier rank 0 merges the chunk folders into the final arrays block by block
(`merge_probe_shards`); nothing holds all activations in memory.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import MilanError

PROBE_VERSION = 1
POOLS = ("max", "mean")
DTYPE = "float16"
_F16_MAX = float(np.finfo(np.float16).max)
_META_KEYS = ("version", "folder", "files", "sha256", "same_as_exemplars", "resize", "crop", "normalize",
              "layers", "dtype", "pool")


def layer_filename(layer: str) -> str:
    """The file-name stem of a layer: "/" (unsafe in a file name) becomes "__"; dots are kept."""
    return layer.replace("/", "__")


def files_digest(pairs: Sequence[tuple[str, int]]) -> str:
    """sha256 (hex) of `json.dumps([[relative_path, size], ...])` (default separators, UTF-8)."""
    return hashlib.sha256(json.dumps([[str(p), int(s)] for p, s in pairs]).encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------- reading
@dataclass(frozen=True)
class ProbeActivations:
    """The probe activations of one config (see the module docstring for the layout).

    `files[i]` is the absolute path of the image of row i; `activations(layer, pool)`
    is a memory-mapped float16 array [n_images, n_units] (read-only);
    `images(indices)` reloads images with the recording's Resize + CenterCrop.
    """

    probe_dir: Path  # <config data folder>/probe
    files: tuple[Path, ...]
    meta: dict
    image_folder: Path | None = None  # where the images are read from (meta["folder"] unless overridden)

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(self.meta["layers"])

    def __len__(self) -> int:
        return len(self.files)

    def rows_of(self, image_ids: Sequence[int]) -> np.ndarray:
        """Row of each image id (the probe folder's id order, as exemplar `image_ids` when
        `same_as_exemplars`); -1 for an id with no row (an unreadable image)."""
        recorded = np.asarray(self.meta.get("ids", range(len(self.files))), dtype=np.int64)
        want = np.asarray(list(image_ids), dtype=np.int64)
        pos = np.searchsorted(recorded, want)
        found = (pos < len(recorded)) & (recorded[np.minimum(pos, len(recorded) - 1)] == want)
        return np.where(found, pos, -1)

    def path(self, layer: str, pool: str = "max") -> Path:
        if layer not in self.meta["layers"]:
            raise MilanError(f"{self.probe_dir}: no probe activations of layer {layer!r}; "
                             f"recorded layers: {', '.join(self.meta['layers'])}")
        if pool not in POOLS:
            raise MilanError(f"pool {pool!r}: recorded pools are {', '.join(POOLS)}")
        return self.probe_dir / f"{layer_filename(layer)}.{pool}.npy"

    def activations(self, layer: str, pool: str = "max") -> np.ndarray:
        """float16 [n_images, n_units], memory-mapped (nothing is read until used)."""
        path = self.path(layer, pool)
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as e:
            raise MilanError(f"{path}: not a readable probe activation file ({str(e).splitlines()[0]}); "
                             "record the config again") from None
        expected = (len(self.files), int(self.meta["layers"][layer]))
        if arr.dtype != np.float16 or arr.shape != expected:
            raise MilanError(f"{path}: holds {arr.dtype} {arr.shape}, but {self.probe_dir / 'meta.json'} "
                             f"says float16 {expected}; record the config again")
        return arr

    def _relocate_hint(self) -> str:
        return ("if the probe folder moved, pass its new location: "
                "load_probe(config_dir, folder=NEW_PROBE_FOLDER)")

    def _missing(self, path: Path) -> MilanError:
        root = self.image_folder if self.image_folder is not None else Path(self.meta["folder"])
        if not root.is_dir():
            return MilanError(f"probe image folder {root} no longer exists (needed for {path}); "
                              f"{self._relocate_hint()}")
        return MilanError(f"probe image {path} is missing; {self._relocate_hint()}")

    def images(self, indices: Sequence[int]) -> "torch.Tensor":  # noqa: F821
        """uint8 [n, 3, crop, crop] of rows `indices`: Resize + CenterCrop as recorded, not normalised."""
        import torch
        from PIL import Image

        from .images import default_transform

        transform = default_transform(int(self.meta["resize"]), int(self.meta["crop"]))
        sizes = self.meta.get("sizes")
        out = []
        for i in indices:
            i = int(i)
            if not 0 <= i < len(self.files):
                raise MilanError(f"probe image index {i} out of range (0..{len(self.files) - 1})")
            path = self.files[i]
            if not path.is_file():
                raise self._missing(path)
            if sizes is not None and path.stat().st_size != int(sizes[i]):
                raise MilanError(f"probe image {path} changed since recording ({path.stat().st_size} bytes, "
                                 f"recorded {sizes[i]}); {self._relocate_hint()}, or record again")
            try:
                with Image.open(path) as im:
                    out.append(transform(im.convert("RGB")))
            except OSError as e:
                raise MilanError(f"cannot read probe image {path}: {e}") from None
        if not out:
            crop = int(self.meta["crop"])
            return torch.empty(0, 3, crop, crop, dtype=torch.uint8)
        return torch.stack(out)

    def check(self) -> None:
        """Verify that the probe folder still holds the recorded files (sha256 of [path, size] pairs)."""
        rels = self.meta["files"]
        pairs = []
        for rel, path in zip(rels, self.files):
            if not path.is_file():
                raise self._missing(path)
            pairs.append((rel, path.stat().st_size))
        if files_digest(pairs) != self.meta["sha256"]:
            sizes = self.meta.get("sizes") or []
            changed = next((p for (_r, s), p, old in zip(pairs, self.files, sizes) if s != old), None)
            what = f"probe image {changed} changed size" if changed else "the probe files differ"
            raise MilanError(f"{self.probe_dir / 'meta.json'}: {what} since recording (sha256 mismatch); "
                             f"{self._relocate_hint()}, or record again")


def load_probe(config_dir: Path, folder: Path | None = None) -> ProbeActivations | None:
    """The probe activations stored with a config (its data folder `<out>/data/<config>`), or None.

    `folder` overrides the recorded probe image folder (when it moved).
    """
    probe = Path(config_dir) / "probe"
    meta_path = probe / "meta.json"
    if not probe.is_dir():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise MilanError(f"{meta_path}: not a readable probe record ({e}); record the config again") from None
    missing = [k for k in _META_KEYS if not isinstance(meta, dict) or k not in meta]
    if missing:
        raise MilanError(f"{meta_path}: missing {', '.join(missing)}; record the config again")
    if meta["version"] != PROBE_VERSION:
        raise MilanError(f"{meta_path}: probe format version {meta['version']}, this package reads "
                         f"{PROBE_VERSION}; upgrade milannotations or record again")
    root = Path(folder) if folder is not None else Path(meta["folder"])
    files = tuple((root / rel).absolute() for rel in meta["files"])
    return ProbeActivations(probe, files, meta, root.absolute())


# ---------------------------------------------------------------------------- recording
def probe_spans(n: int, chunk_size: int) -> list[tuple[int, int]]:
    """The fixed chunks [start, stop) of consecutive ids the recording is cut into."""
    return [(s, min(n, s + chunk_size)) for s in range(0, n, chunk_size)]


def chunk_dir(work: Path, span: tuple[int, int]) -> Path:
    return work / f"probe-{span[0]:09d}-{span[1]:09d}"


def chunk_complete(folder: Path, layers: Sequence[str], span: tuple[int, int]) -> bool:
    if not (folder / "ok.npy").is_file():
        return False
    try:
        ok = np.load(folder / "ok.npy", allow_pickle=False)
        if ok.shape != (span[1] - span[0],):
            return False
        for layer in layers:
            for pool in POOLS:
                arr = np.load(folder / f"{layer_filename(layer)}.{pool}.npy", mmap_mode="r", allow_pickle=False)
                if arr.shape[0] != len(ok) or arr.dtype != np.float16:
                    return False
    except (OSError, ValueError):  # a damaged chunk is recomputed, never trusted
        return False
    return True


def pooled(m: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor"]:  # noqa: F821
    """(batch, units) spatial max and mean of a (batch, units, h, w) map, as float16 (clamped to its range)."""
    import torch

    m = m.float()
    mx = m.amax(dim=(2, 3)).clamp_(-_F16_MAX, _F16_MAX).to(torch.float16)
    mean = m.mean(dim=(2, 3)).clamp_(-_F16_MAX, _F16_MAX).to(torch.float16)
    return mx, mean


class ChunkWriter:
    """One chunk's memmap files, filled batch by batch; `finish()` renames the folder into place.

    `units` per layer may be left None: the files are then opened at the first batch, with the
    shape its maps have (the first pass of `compute_exemplars` learns the shapes that way too).
    """

    def __init__(self, work: Path, span: tuple[int, int], layers: Sequence[str],
                 units: dict[str, int] | None = None) -> None:
        self.work, self.span, self.layers = Path(work), span, list(layers)
        self.work.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=".probe-chunk-", dir=self.work))
        self.ok = np.zeros(span[1] - span[0], dtype=bool)
        self.arrays: dict[tuple[str, str], np.ndarray] = {}
        if units is not None:
            self._open(units)

    @property
    def opened(self) -> bool:
        return bool(self.arrays)

    def _open(self, units: dict[str, int]) -> None:
        n = len(self.ok)
        self.arrays = {(layer, pool): np.lib.format.open_memmap(
            self.tmp / f"{layer_filename(layer)}.{pool}.npy", mode="w+", dtype=np.float16, shape=(n, units[layer]))
            for layer in self.layers for pool in POOLS}

    def add(self, ids: "torch.Tensor", maps: dict) -> None:  # noqa: F821
        if not self.arrays:
            self._open({layer: int(maps[layer].shape[1]) for layer in self.layers})
        rows = ids.cpu().numpy() - self.span[0]
        for layer in self.layers:
            mx, mean = pooled(maps[layer])
            if mx.shape[1] != self.arrays[(layer, "max")].shape[1]:
                raise MilanError(f"layer {layer!r}: {mx.shape[1]} units on the probe images, "
                                 f"{self.arrays[(layer, 'max')].shape[1]} expected")
            self.arrays[(layer, "max")][rows] = mx.cpu().numpy()
            self.arrays[(layer, "mean")][rows] = mean.cpu().numpy()
        self.ok[rows] = True

    def finish(self, units: dict[str, int] | None = None) -> Path:
        """Close the files and rename the chunk into place; `units` is needed only when no batch came."""
        if not self.arrays:
            if units is None:
                raise MilanError(f"probe chunk {self.span}: no readable image, so its unit counts are unknown")
            self._open(units)
        for arr in self.arrays.values():
            arr.flush()
        self.arrays.clear()
        np.save(self.tmp / "ok.npy", self.ok, allow_pickle=False)
        dest = chunk_dir(self.work, self.span)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(self.tmp, dest)
        return dest

    def abort(self) -> None:
        self.arrays.clear()
        shutil.rmtree(self.tmp, ignore_errors=True)


def merge_probe_shards(work: Path, spans: Sequence[tuple[int, int]], layers: Sequence[str], dest: Path
                       ) -> tuple[np.ndarray, dict[str, int]]:
    """Merge the chunk folders of `spans` into `dest/<layer>.<pool>.npy` (readable rows only, in id order).

    Returns (the ids of the readable images, in row order; units per layer). Copies one chunk at a
    time, so memory is bounded by a chunk. `dest` must not exist yet; it is created here.
    """
    work, dest = Path(work), Path(dest)
    layers = list(dict.fromkeys(layers))
    folders = [chunk_dir(work, s) for s in spans]
    for folder, span in zip(folders, spans):
        if not chunk_complete(folder, layers, span):
            raise MilanError(f"probe chunk {folder} is missing or incomplete; run the command again to resume")
    oks = [np.load(f / "ok.npy", allow_pickle=False) for f in folders]
    ids = np.concatenate([np.arange(a, b, dtype=np.int64)[ok] for (a, b), ok in zip(spans, oks)]) \
        if spans else np.zeros(0, dtype=np.int64)
    units = {}
    for layer in layers:
        units[layer] = int(np.load(folders[0] / f"{layer_filename(layer)}.max.npy", mmap_mode="r").shape[1])
    dest.mkdir(parents=True)
    for layer in layers:
        for pool in POOLS:
            name = f"{layer_filename(layer)}.{pool}.npy"
            out = np.lib.format.open_memmap(dest / name, mode="w+", dtype=np.float16, shape=(len(ids), units[layer]))
            row = 0
            for folder, ok in zip(folders, oks):
                src = np.load(folder / name, mmap_mode="r", allow_pickle=False)
                if src.shape[1] != units[layer]:
                    raise MilanError(f"{folder / name}: {src.shape[1]} units, {units[layer]} in the other chunks")
                block = np.asarray(src[ok])
                out[row:row + len(block)] = block
                row += len(block)
            out.flush()
            del out
    return ids, units


def probe_meta(root: Path, files: Sequence[Path], ids: Sequence[int], *, same_as_exemplars: bool, resize: int,
               crop: int, normalize: str, units: dict[str, int]) -> dict:
    """The `meta.json` record of recorded probe rows `files` (under `root`; `ids`: their image ids)."""
    root = Path(root).resolve()
    rels = [Path(f).resolve().relative_to(root).as_posix() for f in files]
    sizes = [Path(f).stat().st_size for f in files]
    return {"version": PROBE_VERSION, "folder": str(root), "files": rels, "sizes": sizes,
            "ids": [int(i) for i in ids],
            "sha256": files_digest(list(zip(rels, sizes))), "same_as_exemplars": bool(same_as_exemplars),
            "resize": int(resize), "crop": int(crop), "normalize": normalize,
            "layers": {layer: int(u) for layer, u in units.items()}, "dtype": DTYPE, "pool": list(POOLS)}


def build_probe_folder(work: Path, spans, layers, dest: Path, root: Path, files: Sequence[Path], **meta_kw
                       ) -> tuple[int, int]:
    """Merge the chunks into `dest` (a new folder) and write its meta.json; returns (rows, skipped)."""
    ids, units = merge_probe_shards(work, spans, layers, dest)
    if len(ids) == 0:
        raise MilanError(f"none of the {len(files)} probe images in {root} could be read")
    meta = probe_meta(root, [files[i] for i in ids.tolist()], ids.tolist(), units=units, **meta_kw)
    (Path(dest) / "meta.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    return len(ids), len(files) - len(ids)
