"""Reading and encoding units of an extracted original zip: the work `build` hands to worker processes.

Kept apart from `build.py` so that a worker imports only numpy, Pillow, pyarrow and the writer, not
what the parent needs to plan a build (the dataset card's `datasets`, the ImageNet join's torchvision);
an `ImageSource` to join pixels from brings its own imports when one is used.
"""
from __future__ import annotations

import mmap
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from .errors import MilanError
from .original import AnnotatedUnit, OriginalRelease
from .writer import ConfigMeta, Encoding, UnitRow, encode_row

if TYPE_CHECKING:
    from .imagejoin import ImageSource

_MARGIN = 4 << 20


def _release_pages(arr: np.ndarray, index: int) -> None:
    """Drop the pages of `arr[index]` from this process's resident set (they stay in the page cache).

    Reading a memory-mapped array touches its pages, which then count as
    resident until unmapped; releasing each unit after use keeps peak RSS at
    one unit instead of the whole file. Best effort: a no-op where madvise or
    the private numpy attribute is unavailable.
    """
    mm = getattr(arr, "_mmap", None)
    if mm is None or not hasattr(mm, "madvise") or not hasattr(mmap, "MADV_DONTNEED"):
        return
    try:
        base = getattr(arr, "_milan_base", None)
        if base is None:
            base = np.frombuffer(mm, np.uint8).ctypes.data
            arr._milan_base = base
        item = arr[index]
        # Page faults also map already-cached neighbour pages ("fault-around", 64 KiB by default), so
        # release a margin on both sides too; unmapping pages of other units costs nothing.
        start = max(0, item.ctypes.data - base - _MARGIN)
        end = min(len(mm), item.ctypes.data - base + item.nbytes + _MARGIN)
        start -= start % mmap.PAGESIZE
        mm.madvise(mmap.MADV_DONTNEED, start, end - start)
    except (AttributeError, ValueError, OSError):
        return


def _read_unit(arr: np.ndarray, index: int) -> np.ndarray:
    out = np.array(arr[index])
    _release_pages(arr, index)
    return out


class UnitEncoder:
    """Reads kept units of an extracted release and encodes them into parquet records.

    Picklable (folder paths, ids and the image source, not arrays), so each worker process gets one
    and opens the arrays memory-mapped itself; the same object does the work in-process with
    `workers=1`. Validation of unit contents (mask values) happens here, per unit, in unit order.
    """

    def __init__(self, release: OriginalRelease, meta: ConfigMeta, src: ImageSource | None,
                 encoding: Encoding, threads: bool) -> None:
        self.root, self.zip_label, self.meta, self.src = release.root, release.zip_label, meta, src
        self.encoding, self.threads = encoding, threads
        self.layers = {name: (lf.images is not None, lf.size, lf.ids) for name, lf in release.layers.items()}
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_arrays": {}}

    def _open(self, layer: str) -> tuple[np.ndarray, np.ndarray | None]:
        if layer not in self._arrays:
            d = Path(self.root) / layer
            masks = np.load(d / "masks.npy", mmap_mode="r", allow_pickle=False)
            images = np.load(d / "images.npy", mmap_mode="r", allow_pickle=False) if self.layers[layer][0] else None
            self._arrays[layer] = (masks, images)
        return self._arrays[layer]

    def row(self, u: AnnotatedUnit) -> UnitRow:
        shipped, size, ids_of = self.layers[u.layer]
        masks_arr, images_arr = self._open(u.layer)
        where = f"{self.zip_label}: {u.layer}/masks.npy, unit {u.unit}"
        masks = _read_unit(masks_arr, u.unit)
        if masks.dtype != np.bool_ and masks.size and masks.max() > 1:
            raise MilanError(f"{where}: mask values must be 0 or 1, found {int(masks.max())}")
        ids = ids_of[u.unit].tolist()
        if images_arr is not None:
            images = _read_unit(images_arr, u.unit)
        elif self.src is not None:
            images = self.src.unit_images(ids, size, f"{self.zip_label}: {u.layer}/ids.csv, unit {u.unit}")
        else:
            images = None
        return UnitRow(layer=u.layer, unit=u.unit, images=images, masks=masks.astype(bool), image_ids=ids,
                       annotations=list(u.annotations))

    def __call__(self, units: Sequence[AnnotatedUnit]) -> list[dict]:
        return [encode_row(self.meta, self.row(u), self.encoding, threads=self.threads) for u in units]


_WORKER_ENCODER: UnitEncoder | None = None


def worker_init(encoder: UnitEncoder) -> None:
    global _WORKER_ENCODER
    _WORKER_ENCODER = encoder


def worker_encode(units: Sequence[AnnotatedUnit]) -> list[dict]:
    assert _WORKER_ENCODER is not None, "worker started without its encoder"
    return _WORKER_ENCODER(units)
