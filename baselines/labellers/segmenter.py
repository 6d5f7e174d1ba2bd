"""The segmenter labeller: any segmenter of `baselines.segmenters` plus a text -> class mapper.

Where a description names classes the segmenter knows, its concept map is
(OR of the named nouns, or every pixel when it names none) AND (every named
modifier); see `textmap` for the mapping and its limits. The segmenter runs
once per image batch; every description of a split reuses its masks.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch.nn.functional as F

from .base import ImageBatch, Labelled, Labeller
from .textmap import SIMILARITY_FLOOR, TextMapper


class _SegmentedLabelled(Labelled):
    def __init__(self, masks: np.ndarray, mapper: TextMapper):
        self._masks = masks  # N x C x h x w bool
        self._mapper = mapper

    def maps(self, texts: Sequence[str]) -> np.ndarray:
        n, _, h, w = self._masks.shape
        out = np.zeros((len(texts), n, h, w), np.float32)
        for t, text in enumerate(texts):
            m = self._mapper.map(str(text))
            if not m.nouns and not m.modifiers:
                continue  # nothing recognised: the empty map, as the oracle gives unparseable text
            where = self._masks[:, list(m.nouns)].any(axis=1) if m.nouns else np.ones((n, h, w), bool)
            for j in m.modifiers:
                where = where & self._masks[:, j]
            out[t] = where
        return out


class SegmenterLabeller(Labeller):
    """segmenter: a `baselines.segmenters` name (`synth`, `ade20k`, `oracle`) or instance; embed: also map
    words by sentence-embedding similarity (floor `floor`, fixed a priori)."""

    name = "segmenter"

    def __init__(self, segmenter="synth", embed: bool = True, floor: float = SIMILARITY_FLOOR,
                 device: str = "cpu", **segmenter_args) -> None:
        from baselines.segmenters import MODIFIER_CATEGORIES, create_segmenter

        self.segmenter = create_segmenter(segmenter, device=device, **segmenter_args)
        names = [self.segmenter.describe_concept(i) for i in range(len(self.segmenter.concepts))]
        self.mapper = TextMapper(names, [c in MODIFIER_CATEGORIES for c in self.segmenter.categories],
                                 embed=embed, floor=floor)
        self.exact = bool(self.segmenter.upper_bound)
        self.model = f"{self.segmenter.name}+{self.mapper.signature}"
        self.uses = frozenset({f"segmenter:{self.segmenter.name}"})

    def label(self, batch: ImageBatch, size: tuple[int, int]) -> Labelled:
        ids = list(batch.image_ids) if batch.image_ids is not None else None
        masks = []
        for start in range(0, len(batch), 64):
            x = batch.images[start:start + 64]
            m = self.segmenter.segment(x, dataset=batch.dataset,
                                       image_ids=ids[start:start + 64] if ids is not None else None)
            if m.shape[-2:] != tuple(size):  # area share >= 1/2, the cell rule of the truth metrics
                m = F.adaptive_avg_pool2d(m.float(), size) >= 0.5 if m.shape[-1] >= size[-1] else \
                    F.interpolate(m.float(), size=size, mode="nearest") >= 0.5
            masks.append(m.numpy().astype(bool))
        c = len(self.segmenter.concepts)
        arr = np.concatenate(masks) if masks else np.zeros((0, c, *size), bool)
        return _SegmentedLabelled(arr, self.mapper)
