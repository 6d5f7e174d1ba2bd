"""The segmenter interface: images in, per-pixel multi-label concept masks out.

NetDissect and Compositional Explanations only need to know, for every
exemplar pixel, which concepts are there. Everything that answers that
question (the synthetic world's own ground truth, a network trained on
synthetic scenes, an ADE20K segmentation model plus a colour classifier)
sits behind `Segmenter`, so the two describers never know which one they
were given.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections import OrderedDict
from typing import Sequence

import torch
import torch.nn.functional as F

from milannotations.contract import Exemplars

#: Concept categories. Modifiers (colours, textures) read as adjectives in
#: phrases ("red circles"); everything else reads as a noun.
MODIFIER_CATEGORIES = frozenset({"colour", "texture"})


class Segmenter(ABC):
    """Maps exemplar images to bool concept masks (B x C x H x W), one channel per concept.

    Subclasses set `name`, `concepts` (plain-word names, lowercase) and
    `categories` (one per concept: "shape", "colour", "texture",
    "background", "part", "object", ...), and implement `segment`.
    `upper_bound` is True for segmenters that read ground truth instead of
    looking at pixels; results obtained with them are not a method's score.
    """

    name: str = "segmenter"
    concepts: list[str]
    categories: list[str]
    upper_bound: bool = False
    #: What the segmenter itself was trained on (documentation, not units seen).
    trained_on: str = ""
    citation: str = ""

    def __init__(self, cache_bytes: int = 256 * 2**20) -> None:
        # Units of a layer share exemplar images, so per-image results are
        # cached (LRU, bounded by bytes) keyed by (dataset, image id, size).
        self._cache: OrderedDict[tuple, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self._cache_bytes = cache_bytes
        self._cached = 0

    @abstractmethod
    def segment(self, images: torch.Tensor, *, dataset: str | None = None,
                image_ids: Sequence[int] | None = None, unit_id: str = "") -> torch.Tensor:
        """bool B x C x H x W concept masks for uint8 images B x 3 x H x W.

        `dataset` and `image_ids` say where the images come from; segmenters
        that read ground truth use them instead of the pixels. `unit_id`
        only serves error messages.
        """

    def describe_concept(self, index: int) -> str:
        """The concept name in plain words (underscores and dashes become spaces)."""
        return self.concepts[index].replace("_", " ").replace("-", " ").strip()

    def segment_unit(self, unit: Exemplars) -> torch.Tensor:
        """bool k x C x h x w concept masks of a unit's exemplars at its masks' resolution."""
        ids, table = self.segment_unit_packed(unit)
        return table[ids].permute(0, 3, 1, 2)

    def segment_unit_packed(self, unit: Exemplars) -> tuple[torch.Tensor, torch.Tensor]:
        """The unit's concept masks as (ids int64 k x h x w, table bool S x C): pixel -> row of `table`.

        Each image is packed once (`pack`) and cached by (dataset, image id,
        size) when the unit carries image ids; units of a layer share images.
        """
        k = unit.k
        h, w = unit.masks.shape[-2:]
        ids = list(unit.image_ids) if len(unit.image_ids) == k else None
        packed: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * k
        missing = list(range(k))
        if ids is not None:
            missing = []
            for j, i in enumerate(ids):
                key = (unit.dataset, int(i), h, w)
                if key in self._cache:
                    self._cache.move_to_end(key)
                    packed[j] = self._cache[key]
                else:
                    missing.append(j)
        if missing:
            fresh = self._resize(self._segment_unit_images(unit, missing), h, w)
            for j, m in zip(missing, fresh):
                packed[j] = pack(m)
                if ids is not None:
                    self._remember((unit.dataset, int(ids[j]), h, w), packed[j])
        offsets, total = [], 0
        for p in packed:
            offsets.append(total)
            total += p[1].shape[0]
        all_ids = torch.stack([p[0] + off for p, off in zip(packed, offsets)])
        table = torch.cat([p[1] for p in packed])
        return all_ids, table

    def _segment_unit_images(self, unit: Exemplars, rows: Sequence[int]) -> torch.Tensor:
        rows = list(rows)
        images = unit.images[rows] if unit.images.shape[0] else unit.images
        ids = [unit.image_ids[j] for j in rows] if unit.image_ids else None
        return self.segment(images, dataset=unit.dataset, image_ids=ids, unit_id=unit.unit_id)

    def _remember(self, key: tuple, packed: tuple[torch.Tensor, torch.Tensor]) -> None:
        size = packed[0].numel() * 8 + packed[1].numel()
        if size > self._cache_bytes:
            return
        self._cache[key] = packed
        self._cached += size
        while self._cached > self._cache_bytes:
            _, (old_ids, old_table) = self._cache.popitem(last=False)
            self._cached -= old_ids.numel() * 8 + old_table.numel()

    @staticmethod
    def _resize(masks: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """Nearest-neighbour resize of bool masks to the unit's mask size (a no-op when equal)."""
        if masks.shape[-2:] == (h, w):
            return masks
        return F.interpolate(masks.to(torch.uint8), size=(h, w), mode="nearest").bool()


def signature_ids(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Group the columns of a bool R x N matrix by their content.

    Returns (inverse N: group of each column, rep S: one column index per
    group, counts S). Blocks of 52 rows become one exact integer per column
    (a float64 dot product with powers of two); blocks are combined through
    their ranks, so any number of rows works.
    """
    key = None
    for start in range(0, rows.shape[0], 52):
        chunk = rows[start:start + 52].to(torch.float64)
        word = (torch.pow(2.0, torch.arange(chunk.shape[0], dtype=torch.float64)) @ chunk).to(torch.int64)
        if key is None:
            key = word
        else:
            _, a = torch.unique(key, return_inverse=True)
            _, b = torch.unique(word, return_inverse=True)
            key = a * (int(b.max()) + 1) + b
    if key is None:
        key = torch.zeros(rows.shape[1], dtype=torch.int64)
    _, inverse, counts = torch.unique(key, return_inverse=True, return_counts=True)
    rep = torch.empty(counts.shape[0], dtype=torch.int64).scatter_(0, inverse, torch.arange(key.shape[0]))
    return inverse, rep, counts


def pack(masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """bool C x h x w concept masks of one image -> (ids int64 h x w, table bool S x C), masks == table[ids]."""
    c, h, w = masks.shape
    flat = masks.reshape(c, -1)
    inverse, rep, _ = signature_ids(flat)
    return inverse.reshape(h, w), flat[:, rep].T.contiguous()
