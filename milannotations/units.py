"""Views of unit records: as `Exemplars` tensors for describers, as a PIL grid for people.

Decoding is the cost of reading a unit (15 RGB PNGs at 224 px are ~3/4 of it), so `UnitSet` and
`to_exemplars` decode the masks at once (small, and `k` needs them) and the images only when a
describer first reads `.images`: a pass over ids, masks or annotations never inflates pixels.
"""
from __future__ import annotations

import functools
import io
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, Sequence, overload

import numpy as np
import torch
from PIL import Image as PILImage

from .contract import AnnotatedExemplars, Exemplars
from .table import UnitTable

_EXEMPLAR_COLUMNS = ("unit_id", "model", "dataset", "layer", "unit", "images", "masks", "image_ids")

# PIL releases the GIL while it inflates a PNG, so a unit's images decode in parallel threads. The pool
# starts on first use (importing starts no thread) and is replaced in a forked child, whose copy of
# the parent's pool has no threads and would never run a task.
_POOL: ThreadPoolExecutor | None = None
_POOL_PID = 0
_POOL_LOCK = threading.Lock()
_POOL_WORKERS = max(1, min(4, os.cpu_count() or 1))


def _pool() -> ThreadPoolExecutor | None:
    global _POOL, _POOL_PID
    if _POOL_WORKERS == 1:
        return None
    if _POOL is None or _POOL_PID != os.getpid():
        with _POOL_LOCK:
            if _POOL is None or _POOL_PID != os.getpid():
                _POOL, _POOL_PID = ThreadPoolExecutor(_POOL_WORKERS, thread_name_prefix="milan-png"), os.getpid()
    return _POOL


def _image(cell) -> PILImage.Image:
    if isinstance(cell, PILImage.Image):
        return cell
    if isinstance(cell, dict):
        return PILImage.open(io.BytesIO(cell["bytes"])) if cell.get("bytes") else PILImage.open(cell["path"])
    raise TypeError(f"cannot decode image cell of type {type(cell).__name__}")


def _decode(cell, mode: str) -> np.ndarray:
    img = _image(cell)
    return np.asarray(img if img.mode == mode else img.convert(mode))


def _rgb_chw(cell) -> np.ndarray:
    return _decode(cell, "RGB").transpose(2, 0, 1)


def decode_masks(cells: Sequence) -> torch.Tensor:
    """k x 1 x H x W bool from PNG mask cells (255 = active), into one preallocated array."""
    if not cells:
        return torch.zeros(0, 1, 0, 0, dtype=torch.bool)
    first = _decode(cells[0], "L")
    out = np.empty((len(cells), 1, *first.shape), dtype=bool)
    np.greater(first, 127, out=out[0, 0])
    for j in range(1, len(cells)):
        np.greater(_decode(cells[j], "L"), 127, out=out[j, 0])
    return torch.from_numpy(out)


def decode_images(cells: Sequence, hw: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """k x 3 x H x W uint8 (contiguous) from PNG image cells; `hw` sizes the empty result."""
    if not cells:
        return torch.zeros(0, 3, *hw, dtype=torch.uint8)
    pool = _pool() if len(cells) > 1 else None
    decoded = pool.map(_rgb_chw, cells) if pool is not None else map(_rgb_chw, cells)
    first = next(decoded)
    out = np.empty((len(cells), *first.shape), dtype=np.uint8)
    out[0] = first
    for j, arr in enumerate(decoded, start=1):
        out[j] = arr
    return torch.from_numpy(out)


def _table_images(table: UnitTable, i: int, hw: tuple[int, int]) -> torch.Tensor:
    """Row `i`'s images, read from its table and decoded: what a unit from a `UnitSet` loads on first `.images`."""
    return decode_images(table.raw_row(i, ("images",))["images"] or [], hw)


def to_exemplars(row: dict, *, annotated: bool = False, images_from=None) -> Exemplars:
    """A unit record (decoded or raw image cells) as uint8 images and bool masks.

    With `annotated=True` the result carries the descriptions (training units
    only); `truth` is never carried. Masks are decoded now, images on first access of `.images`
    (from the row's cells, or by `images_from(hw)` where the row was read without them).
    """
    fields = dict(unit_id=row["unit_id"], model=row["model"], dataset=row["dataset"],
                  layer=str(row["layer"]), unit=int(row["unit"]), masks=decode_masks(row["masks"]),
                  image_ids=tuple(int(i) for i in row.get("image_ids") or ()))
    if annotated:
        fields["annotations"] = tuple(row.get("annotations") or ())
    cls = AnnotatedExemplars if annotated else Exemplars
    unit = cls.__new__(cls)  # every field but `images`, set as the frozen dataclass's __init__ sets them
    for k, v in fields.items():
        object.__setattr__(unit, k, v)
    hw = tuple(fields["masks"].shape[-2:])
    # `Exemplars.__getattr__` decodes on first read of `.images`; partials of module functions pickle
    loader = (functools.partial(images_from, hw) if images_from is not None
              else functools.partial(decode_images, list(row.get("images") or ()), hw))
    object.__setattr__(unit, "_images_from", loader)
    return unit


class UnitSet(Sequence[Exemplars]):
    """A lazy sequence of units over a `UnitTable` (what `load()` gives) or a `datasets.Dataset`.

    `annotated=True` yields `AnnotatedExemplars` (for `Describer.fit`),
    otherwise plain `Exemplars` (for `Describer.describe`). `annotations()`
    and `unit_ids` read text columns only, without touching pixels; a unit's
    images are decoded when a describer first reads them.
    """

    def __init__(self, dataset, *, annotated: bool = False) -> None:
        ds = dataset
        if not isinstance(ds, UnitTable):
            from datasets import Image, Sequence as HFSequence

            for col in ("images", "masks"):
                if col in ds.column_names:
                    ds = ds.cast_column(col, HFSequence(Image(decode=False)))
        self._ds = ds.remove_columns([c for c in ("truth",) if c in ds.column_names]) if not annotated else ds
        self.annotated = annotated
        # From a UnitTable the images column is read only when a unit's `.images` is first touched.
        self._read = tuple(c for c in (*_EXEMPLAR_COLUMNS, *(("annotations",) if annotated else ()))
                           if c in self._ds.column_names and not (c == "images" and isinstance(ds, UnitTable)))

    def __len__(self) -> int:
        return len(self._ds)

    @overload
    def __getitem__(self, i: int) -> Exemplars: ...
    @overload
    def __getitem__(self, i: slice) -> list[Exemplars]: ...

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if isinstance(self._ds, UnitTable):
            return self._unit(int(i), self._ds.raw_row(int(i), self._read))
        return to_exemplars(self._ds[int(i)], annotated=self.annotated)

    def _unit(self, i: int, row: dict) -> Exemplars:
        images = functools.partial(_table_images, self._ds, i) if "images" in self._ds.column_names else None
        return to_exemplars(row, annotated=self.annotated, images_from=images)

    def __iter__(self) -> Iterator[Exemplars]:
        if isinstance(self._ds, UnitTable):
            for i, row in enumerate(self._ds.iter_raw(self._read)):
                yield self._unit(i, row)
            return
        for row in self._ds:
            yield to_exemplars(row, annotated=self.annotated)

    @property
    def unit_ids(self) -> list[str]:
        return list(self._ds["unit_id"])

    @property
    def configs(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self._ds["config"]))

    def annotations(self) -> list[list[str]]:
        """Descriptions per unit, text only (available on annotated sets only)."""
        if not self.annotated:
            raise PermissionError("annotations of units under description are not visible to describers")
        return [list(a) for a in self._ds["annotations"]]

    def column(self, name: str) -> list:
        if name in ("annotations", "truth") and not self.annotated:
            raise PermissionError(f"{name} of units under description are not visible to describers")
        return list(self._ds[name])

    def select(self, indices) -> "UnitSet":
        return UnitSet(self._ds.select(list(indices)), annotated=self.annotated)

    @property
    def dataset(self):
        return self._ds


def unit_grid(unit: Exemplars, columns: int = 5, size: int = 112, dim: float = 0.25) -> PILImage.Image:
    """The unit's exemplars as one picture: active regions at full brightness, the rest dimmed.

    This is how MTurk annotators saw the units (dimmed to 25%).
    """
    k = unit.k
    rows = max(1, -(-k // columns))
    grid = PILImage.new("RGB", (columns * size, rows * size), "white")
    for j in range(k):
        mask = unit.masks[j, 0].numpy()
        if unit.images.shape[0]:
            img = unit.images[j].permute(1, 2, 0).numpy().astype(np.float32)
        else:
            img = np.full(mask.shape + (3,), 200, dtype=np.float32)
        shown = np.where(mask[..., None], img, img * dim).clip(0, 255).astype(np.uint8)
        tile = PILImage.fromarray(shown).resize((size, size), PILImage.NEAREST)
        grid.paste(tile, ((j % columns) * size, (j // columns) * size))
    return grid
