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
        self._cache: OrderedDict[tuple, torch.Tensor] = OrderedDict()
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
        """bool k x C x h x w concept masks of a unit's exemplars at its masks' resolution.

        Per-image results are cached when the unit carries image ids.
        """
        k = unit.k
        h, w = unit.masks.shape[-2:]
        ids = list(unit.image_ids) if len(unit.image_ids) == k else None
        if ids is None:
            return self._resize(self._segment_unit_images(unit, range(k)), h, w)
        out: list[torch.Tensor | None] = [None] * k
        missing = []
        for j, i in enumerate(ids):
            key = (unit.dataset, int(i), h, w)
            if key in self._cache:
                self._cache.move_to_end(key)
                out[j] = self._cache[key]
            else:
                missing.append(j)
        if missing:
            fresh = self._resize(self._segment_unit_images(unit, missing), h, w)
            for j, m in zip(missing, fresh):
                out[j] = m
                self._remember((unit.dataset, int(ids[j]), h, w), m)
        return torch.stack(out)  # type: ignore[arg-type]

    def _segment_unit_images(self, unit: Exemplars, rows: Sequence[int]) -> torch.Tensor:
        rows = list(rows)
        images = unit.images[rows] if unit.images.shape[0] else unit.images
        ids = [unit.image_ids[j] for j in rows] if unit.image_ids else None
        return self.segment(images, dataset=unit.dataset, image_ids=ids, unit_id=unit.unit_id)

    def _remember(self, key: tuple, masks: torch.Tensor) -> None:
        size = masks.numel()
        if size > self._cache_bytes:
            return
        self._cache[key] = masks
        self._cached += size
        while self._cached > self._cache_bytes:
            _, old = self._cache.popitem(last=False)
            self._cached -= old.numel()

    @staticmethod
    def _resize(masks: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """Nearest-neighbour resize of bool masks to the unit's mask size (a no-op when equal)."""
        if masks.shape[-2:] == (h, w):
            return masks
        return F.interpolate(masks.to(torch.uint8), size=(h, w), mode="nearest").bool()
