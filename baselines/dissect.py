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
from .segmenters.base import signature_ids


@dataclass(frozen=True)
class UnitConcepts:
    """A unit's activation mask and its exemplars' concept masks, compressed to distinct pixel kinds.

    Pooled IoU only counts pixels, and two pixels with the same concepts and
    the same unit activity count alike, so the k x H x W pixels are grouped
    by their signature (which present concepts, whether the unit is active)
    and every formula is evaluated on the few hundred distinct signatures,
    each weighted by how many pixels have it. This is exact and makes beam
    search cost independent of image size.

    unit: bool S; masks: bool C' x S; weight: float S (pixel counts, all 1
    for uncompressed input); index: C' indices into the segmenter's concepts
    (only concepts present in some exemplar pixel: an absent concept has IoU
    0 and leaves every formula it joins unchanged or empty).
    """

    unit: torch.Tensor
    masks: torch.Tensor
    index: torch.Tensor
    weight: torch.Tensor | None = None

    def weights(self) -> torch.Tensor:
        if self.weight is None:
            return torch.ones(self.unit.shape[0], dtype=torch.float64)
        return self.weight.to(torch.float64)


def compress(unit: torch.Tensor, masks: torch.Tensor, index: torch.Tensor) -> UnitConcepts:
    """Group pixels (columns) by signature: bool unit N and masks C x N -> weighted distinct signatures."""
    rows = torch.cat([unit.reshape(1, -1), masks], dim=0)  # (1 + C) x N
    _, rep, counts = signature_ids(rows)
    sig = rows[:, rep]
    return UnitConcepts(unit=sig[0], masks=sig[1:], index=index, weight=counts.to(torch.float64))


def unit_concepts(unit: Exemplars, segmenter: Segmenter) -> UnitConcepts:
    """Segment a unit's exemplars and compress them to weighted pixel signatures for IoU arithmetic.

    Uses the segmenter's per-image packing: a pixel's signature is (its
    image's concept-signature row, whether the unit is active there), so
    counting signatures is one `bincount` over the k x H x W pixels.
    """
    if unit.k == 0:
        raise MilanError(f"unit {unit.unit_id} has no exemplars")
    ids, table = segmenter.segment_unit_packed(unit)
    if ids.shape != (unit.k, *unit.masks.shape[-2:]):
        raise MilanError(f"unit {unit.unit_id}: segmenter {segmenter.name} returned masks of shape "
                         f"{tuple(ids.shape)}, expected {unit.k} x {tuple(unit.masks.shape[-2:])}")
    key = ids.reshape(-1) * 2 + unit.masks.reshape(-1).to(torch.int64)
    counts = torch.bincount(key, minlength=2 * table.shape[0])
    nz = counts.nonzero().flatten()
    sig = table[nz // 2]  # S x C
    present = sig.any(dim=0).nonzero().flatten()
    return UnitConcepts(unit=(nz % 2).bool(), masks=sig[:, present].T.contiguous(), index=present,
                        weight=counts[nz].to(torch.float64))


def pooled_iou(unit_mask: torch.Tensor, concept_masks: torch.Tensor,
               weight: torch.Tensor | None = None) -> torch.Tensor:
    """IoU of one bool mask (N) with each of C bool masks (C x N), pooled over all N pixels.

    `weight` (N) counts how many pixels each column stands for (see
    `compress`). Computed as matrix-vector products: |u AND c| = c . (w u),
    |c| = c . w, |u OR c| = |u| + |c| - |u AND c|. Returns float64 C; 0 where
    the union is empty.
    """
    w = torch.ones(unit_mask.numel(), dtype=torch.float64) if weight is None else weight.to(torch.float64)
    u = unit_mask.reshape(-1).to(torch.float64) * w
    m = concept_masks.reshape(concept_masks.shape[0], -1).to(torch.float64)
    inter = m @ u
    area = m @ w
    union = area + u.sum() - inter
    return torch.where(union > 0, inter / union.clamp_min(1), torch.zeros_like(union))
