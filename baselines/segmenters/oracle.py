"""The oracle segmenter: the synthetic world's TRUE concept masks. An upper bound, not a method.

On the synthetic corpus every exemplar is scene `image_id` of the domain
named by the unit's `dataset` ("synth-plain"), and the scene's per-pixel
ground truth is known (`milannotations.synth.scenes.scene_concepts`). A
dissection baseline run on these masks shows what NetDissect or
Compositional Explanations could do with a perfect segmenter; their scores
with it must be reported as an upper bound, never as the method's score.
It cannot run on real units, which have no ground-truth masks.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from milannotations.errors import MilanError

from .base import Segmenter


class OracleSegmenter(Segmenter):
    """True concept masks of synthetic scenes, looked up by (dataset, image id); pixels are ignored.

    seed: the scene seed the synthetic corpus was built with (`build_synth(seed=...)`).
    """

    name = "oracle"
    upper_bound = True
    trained_on = "nothing: reads the synthetic world's ground-truth masks (UPPER BOUND)"
    citation = "oracle segmenter (synthetic ground truth; upper bound)"

    def __init__(self, seed: int = 0, cache_bytes: int = 256 * 2**20) -> None:
        super().__init__(cache_bytes=cache_bytes)
        from milannotations.synth import scenes

        self._scenes = scenes
        self.seed = int(seed)
        self.concepts = [c.name for c in scenes.CONCEPTS]
        self.categories = [c.category for c in scenes.CONCEPTS]

    def segment(self, images: torch.Tensor, *, dataset: str | None = None,
                image_ids: Sequence[int] | None = None, unit_id: str = "") -> torch.Tensor:
        where = f"unit {unit_id}" if unit_id else "these images"
        domains = tuple(f"synth-{d}" for d in self._scenes.DOMAINS)
        if dataset not in domains:
            raise MilanError(
                f"the oracle segmenter only works on synthetic units (dataset one of {', '.join(domains)}); "
                f"{where} comes from dataset {dataset!r}. Use segmenter=ade20k for real images.")
        if image_ids is None:
            raise MilanError(f"{where} carries no image_ids; the oracle segmenter looks scenes up by id")
        masks = [self._scenes.scene_concepts(dataset, int(i), seed=self.seed) for i in image_ids]
        if not masks:
            return torch.zeros(0, len(self.concepts), 0, 0, dtype=torch.bool)
        out = torch.from_numpy(np.stack(masks))
        if images.shape[0] and images.shape[-2:] != out.shape[-2:]:
            out = self._resize(out, *images.shape[-2:])
        return out
