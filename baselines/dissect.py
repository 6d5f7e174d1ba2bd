"""Pooled IoU between a unit's activation masks and concept masks: the score both dissection baselines use.

NetDissect scores a unit against a concept with one IoU over the whole
probe set: the sum over images of |unit AND concept| divided by the sum
over images of |unit OR concept| (not a mean of per-image IoUs). Here the
"probe set" is the unit's k exemplars, the only images a describer is
given, so the IoU is pooled over those k images.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from milannotations.contract import Exemplars
from milannotations.errors import MilanError

from .segmenters import Segmenter


@dataclass(frozen=True)
class UnitConcepts:
    """A unit's activation mask and the concept masks of its exemplars, flattened over (k, H, W).

    Only concepts present in at least one exemplar pixel are kept: an absent
    concept has IoU 0 and leaves every formula it joins unchanged or empty.
    unit: bool N; masks: bool C' x N; index: C' indices into the segmenter's concepts.
    """

    unit: torch.Tensor
    masks: torch.Tensor
    index: torch.Tensor

    @property
    def unit_area(self) -> int:
        return int(self.unit.sum())


def unit_concepts(unit: Exemplars, segmenter: Segmenter) -> UnitConcepts:
    """Segment a unit's exemplars and flatten masks for IoU arithmetic."""
    if unit.k == 0:
        raise MilanError(f"unit {unit.unit_id} has no exemplars")
    concepts = segmenter.segment_unit(unit)  # k x C x h x w
    k, c = concepts.shape[:2]
    if concepts.shape[-2:] != unit.masks.shape[-2:] or k != unit.k:
        raise MilanError(f"unit {unit.unit_id}: segmenter {segmenter.name} returned masks of shape "
                         f"{tuple(concepts.shape)}, expected {unit.k} x C x {tuple(unit.masks.shape[-2:])}")
    flat = concepts.permute(1, 0, 2, 3).reshape(c, -1)
    present = flat.any(dim=1).nonzero().flatten()
    return UnitConcepts(unit=unit.masks.reshape(-1).bool(), masks=flat[present], index=present)


def pooled_iou(unit_mask: torch.Tensor, concept_masks: torch.Tensor) -> torch.Tensor:
    """IoU of one bool mask (N) with each of C bool masks (C x N), pooled over all N pixels.

    Computed as a matrix-vector product: |u AND c| = c . u, |u OR c| = |u| + |c| - |u AND c|.
    Returns float64 C; 0 where the union is empty.
    """
    u = unit_mask.reshape(-1).to(torch.float32)
    m = concept_masks.reshape(concept_masks.shape[0], -1)
    inter = (m.to(torch.float32) @ u).double()
    area = m.sum(dim=1).double()
    union = area + u.sum().double() - inter
    return torch.where(union > 0, inter / union.clamp_min(1), torch.zeros_like(union))
