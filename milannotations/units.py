"""Views of unit records: as `Exemplars` tensors for describers, as a PIL grid for people."""
from __future__ import annotations

import io
from typing import Iterator, Sequence, overload

import numpy as np
import torch
from PIL import Image as PILImage

from .contract import AnnotatedExemplars, Exemplars


def _decode(cell, mode: str) -> np.ndarray:
    if isinstance(cell, PILImage.Image):
        img = cell
    elif isinstance(cell, dict):
        img = PILImage.open(io.BytesIO(cell["bytes"])) if cell.get("bytes") else PILImage.open(cell["path"])
    else:
        raise TypeError(f"cannot decode image cell of type {type(cell).__name__}")
    return np.asarray(img.convert(mode))


def to_exemplars(row: dict, *, annotated: bool = False) -> Exemplars:
    """A unit record (decoded or raw image cells) as uint8 images and bool masks.

    With `annotated=True` the result carries the descriptions (training units
    only); `truth` is never carried.
    """
    masks = [_decode(c, "L") for c in row["masks"]]
    m = torch.from_numpy(np.stack(masks)[:, None] > 127) if masks else torch.zeros(0, 1, 0, 0, dtype=torch.bool)
    if row["images"]:
        imgs = torch.from_numpy(np.stack([_decode(c, "RGB") for c in row["images"]]).transpose(0, 3, 1, 2).copy())
    else:
        h, w = m.shape[-2:]
        imgs = torch.zeros(0, 3, h, w, dtype=torch.uint8)
    fields = dict(unit_id=row["unit_id"], model=row["model"], dataset=row["dataset"],
                  layer=str(row["layer"]), unit=int(row["unit"]), images=imgs, masks=m,
                  image_ids=tuple(int(i) for i in row.get("image_ids") or ()))
    if annotated:
        return AnnotatedExemplars(**fields, annotations=tuple(row.get("annotations") or ()))
    return Exemplars(**fields)


class UnitSet(Sequence[Exemplars]):
    """A lazy sequence of units over a `datasets.Dataset`; images are decoded on access.

    `annotated=True` yields `AnnotatedExemplars` (for `Describer.fit`),
    otherwise plain `Exemplars` (for `Describer.describe`). `annotations()`
    and `unit_ids` read text columns only, without touching pixels.
    """

    def __init__(self, dataset, *, annotated: bool = False) -> None:
        from datasets import Image, Sequence as HFSequence

        ds = dataset
        for col in ("images", "masks"):
            if col in ds.column_names:
                ds = ds.cast_column(col, HFSequence(Image(decode=False)))
        self._ds = ds.remove_columns([c for c in ("truth",) if c in ds.column_names]) if not annotated else ds
        self.annotated = annotated

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
        return to_exemplars(self._ds[int(i)], annotated=self.annotated)

    def __iter__(self) -> Iterator[Exemplars]:
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
