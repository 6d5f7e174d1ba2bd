"""Pooled IoU between a unit's activation masks and concept masks: the score both dissection baselines use.

NetDissect scores a unit against a concept with one IoU over the whole
probe set: the sum over images of |unit AND concept| divided by the sum
over images of |unit OR concept| (not a mean of per-image IoUs). Here the
"probe set" is the unit's k exemplars, the only images a describer is
given, so the IoU is pooled over those k images.

Both originals rank by intersection / (union + 1e-10) (NetDissect-Lite's
`tally`, jayelm/compexp's `compute_iou`), and the 1e-10 decides ties: of
two equal ratios (1/2 and 2/4) the one with the larger union wins. The
describers rank by that quotient (`ranking_iou`) so their choices match
the originals', and report the exact ratio (`pooled_iou`).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import torch

from milannotations.contract import Exemplars
from milannotations.errors import MilanError

from .segmenters import Segmenter
from .segmenters.base import signature_ids

#: The originals' guard against an empty union; ranking by inter / (union + EPS) breaks their ties.
EPS = 1e-10


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
    0 and leaves every formula it joins unchanged or empty); image: int64 S,
    the exemplar each signature comes from (None when unknown), which
    NetDissect-Lite's per-category unit area needs.
    """

    unit: torch.Tensor
    masks: torch.Tensor
    index: torch.Tensor
    weight: torch.Tensor | None = None
    image: torch.Tensor | None = None

    def weights(self) -> torch.Tensor:
        if self.weight is None:
            return torch.ones(self.unit.shape[0], dtype=torch.float64)
        return self.weight.to(torch.float64)

    def with_all_concepts(self, n_concepts: int) -> "UnitConcepts":
        """The same pixels with one (possibly all-false) mask row per segmenter concept, index 0..n-1.

        The CompExp original extends formulas by every label of the
        vocabulary, absent ones included ("a or z" with z absent is a no-op
        that takes a beam slot), so its search is only reproduced over the
        whole vocabulary.
        """
        masks = torch.zeros(n_concepts, self.unit.shape[0], dtype=torch.bool)
        masks[self.index] = self.masks
        return replace(self, masks=masks, index=torch.arange(n_concepts))


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
    counting signatures is one `bincount` over the k x H x W pixels. Table
    rows are per image, so each signature also knows its exemplar.
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
    row_image = torch.zeros(table.shape[0], dtype=torch.int64)
    row_image[ids.reshape(-1)] = torch.arange(unit.k).repeat_interleave(ids[0].numel())
    return UnitConcepts(unit=(nz % 2).bool(), masks=sig[:, present].T.contiguous(), index=present,
                        weight=counts[nz].to(torch.float64), image=row_image[nz // 2])


def category_unit_area(uc: UnitConcepts, categories: Sequence[str]) -> torch.Tensor:
    """Per concept of `uc`, the unit's active area counted only on exemplars where its category is at an active pixel.

    NetDissect-Lite (`FeatureOperator.tally_job`, `tally_units_cat`) adds an
    image's active pixels to a category's unit area only when some label of
    that category lies under one of those pixels, because Broden's source
    datasets each annotate only some categories. `categories[i]` is the
    category of concept row i. Returns float64 C'.
    """
    if uc.image is None:
        raise MilanError("per-category unit area needs each pixel signature's exemplar (UnitConcepts.image)")
    names = sorted(set(categories))
    onehot = torch.zeros(len(names), len(categories), dtype=torch.float64)
    onehot[[names.index(c) for c in categories], torch.arange(len(categories))] = 1.0
    active = uc.unit.bool()
    k = int(uc.image.max()) + 1 if uc.image.numel() else 0
    img = uc.image[active]
    # categories labelled at each active signature -> any over the signatures of each image
    at_pixel = (onehot @ uc.masks[:, active].to(torch.float64)) > 0  # K x S_active
    present = torch.zeros(len(names), k, dtype=torch.float64)
    present.index_add_(1, img, at_pixel.to(torch.float64))
    active_area = torch.zeros(k, dtype=torch.float64).index_add_(0, img, uc.weights()[active])
    per_category = (present > 0).to(torch.float64) @ active_area  # K
    return per_category @ onehot


def overlaps(uc: UnitConcepts, unit_area: torch.Tensor | float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(|u AND c|, |u OR c|) for every concept row, float64, pooled over the exemplars.

    `unit_area` replaces |u| in the union (a number, or one per concept as
    from `category_unit_area`); by default it is the unit's whole area.
    """
    w = uc.weights()
    u = uc.unit.reshape(-1).to(torch.float64) * w
    m = uc.masks.reshape(uc.masks.shape[0], -1).to(torch.float64)
    inter = m @ u
    area = m @ w
    ua = u.sum() if unit_area is None else unit_area
    return inter, area + ua - inter


def exact_iou(inter: torch.Tensor, union: torch.Tensor) -> torch.Tensor:
    """inter / union, 0 where the union is empty."""
    return torch.where(union > 0, inter / union.clamp_min(1e-300), torch.zeros_like(union))


def ranking_iou(inter: torch.Tensor, union: torch.Tensor) -> torch.Tensor:
    """The originals' quotient inter / (union + 1e-10): rank by it so equal ratios go to the larger union."""
    return inter / (union + EPS)


def pooled_iou(unit_mask: torch.Tensor, concept_masks: torch.Tensor,
               weight: torch.Tensor | None = None) -> torch.Tensor:
    """IoU of one bool mask (N) with each of C bool masks (C x N), pooled over all N pixels.

    `weight` (N) counts how many pixels each column stands for (see
    `compress`). Computed as matrix-vector products: |u AND c| = c . (w u),
    |c| = c . w, |u OR c| = |u| + |c| - |u AND c|. Returns float64 C; 0 where
    the union is empty.
    """
    masks = concept_masks.reshape(concept_masks.shape[0], -1)
    uc = UnitConcepts(unit=unit_mask.reshape(-1), masks=masks, index=torch.arange(masks.shape[0]), weight=weight)
    return exact_iou(*overlaps(uc))
