"""Network Dissection (Bau et al., CVPR 2017) as a describer: the best-overlapping concept, in plain words.

For each unit, every concept's masks on the unit's k exemplars are compared
with the unit's activation masks by one IoU pooled over the k images
(`baselines.dissect.pooled_iou`), and the unit is labelled with the concept
of highest IoU. NetDissect calls a unit "interpretable" only above an IoU
cut-off (0.04). As in the MILAN paper's baseline, which kept one label per
unit also below the cut-off, the best concept is returned either way;
`explain()` reports whether it cleared the threshold.

Differences from the original, by necessity: IoU is pooled over the unit's
k exemplars (a describer sees nothing else), not over the whole probe
dataset, and concepts come from one of the segmenters in
`baselines.segmenters` (Broden is no longer downloadable).

By choice: NetDissect-Lite counts the unit's area, for a concept's union,
only on images where the concept's category is labelled at one of the
unit's active pixels (`FeatureOperator.tally_job`), because each of
Broden's source datasets annotates only some categories. Every segmenter
here labels every category on every image, so by default the union uses
the unit's whole area, the paper's definition; `category_restriction=True`
gives NetDissect-Lite's rule.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from tqdm.auto import tqdm

from milannotations.contract import AnnotatedExemplars, DescriberMeta, Exemplars

from .dissect import category_unit_area, exact_iou, overlaps, ranking_iou, unit_concepts
from .registry import register_describer
from .segmenters import Segmenter, create_segmenter

NETDISSECT_CITATION = ("Bau, Zhou, Khosla, Oliva, Torralba. Network Dissection: Quantifying Interpretability of "
                       "Deep Visual Representations. CVPR 2017")
DEFAULT_IOU_THRESHOLD = 0.04


@dataclass(frozen=True)
class ConceptLabel:
    """A unit's NetDissect label: the concept, its pooled IoU, and whether it clears the threshold."""

    concept: str
    text: str
    iou: float
    above_threshold: bool


def segmenter_reference(segmenter: Segmenter) -> str:
    """How results made with this segmenter must be read (shown in results files)."""
    text = f"segmenter={segmenter.name}"
    if segmenter.upper_bound:
        text += (" (ORACLE: the synthetic world's true concept masks; an upper bound on what the method can "
                 "do, not a real segmenter)")
    elif segmenter.trained_on:
        text += f" (segmenter trained on {segmenter.trained_on})"
    return text


@register_describer("netdissect")
class NetDissect:
    """Label each unit with the single concept whose masks best overlap its exemplar masks.

    segmenter: `oracle` (synthetic corpus only, an upper bound), `synth` or
    `ade20k`; `device` and other keyword arguments go to the segmenter (e.g. `model=`
    for ade20k, `seed=` for oracle). threshold: NetDissect's IoU cut-off.
    category_restriction: count the unit's area per concept category as
    NetDissect-Lite does (see the module docstring); off by default.
    """

    def __init__(self, segmenter: str | Segmenter = "oracle", threshold: float = DEFAULT_IOU_THRESHOLD,
                 category_restriction: bool = False, progress: bool = False, device: str | None = None,
                 **segmenter_args: Any) -> None:
        self.segmenter = create_segmenter(segmenter, device=device, **segmenter_args)
        self.threshold = float(threshold)
        self.category_restriction = bool(category_restriction)
        self.progress = progress
        self.meta = DescriberMeta(
            oracle=bool(self.segmenter.upper_bound), name="netdissect", version="1", trained_on=(),
            citation=NETDISSECT_CITATION + ("" if not self.segmenter.citation
                                            else f"; segmenter: {self.segmenter.citation}"),
            reference=segmenter_reference(self.segmenter) + f"; IoU threshold {self.threshold}"
                      + ("; unit area per category (NetDissect-Lite)" if self.category_restriction else ""),
        )

    def fit(self, train: Sequence[AnnotatedExemplars]) -> None:
        """NetDissect learns nothing from descriptions."""

    def _overlaps(self, unit: Exemplars) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(concept indices, |c|, |u AND c|, |u OR c|) for the concepts present in the unit's exemplars."""
        uc = unit_concepts(unit, self.segmenter)
        ua = None
        if self.category_restriction:
            ua = category_unit_area(uc, [self.segmenter.categories[int(i)] for i in uc.index])
        inter, union = overlaps(uc, ua)
        return uc.index, uc.masks.to(torch.float64) @ uc.weights(), inter, union

    def concept_ious(self, unit: Exemplars) -> torch.Tensor:
        """Pooled IoU of the unit with every segmenter concept (float64, 0 for absent concepts)."""
        index, _, inter, union = self._overlaps(unit)
        out = torch.zeros(len(self.segmenter.concepts), dtype=torch.float64)
        out[index] = exact_iou(inter, union)
        return out

    def explain(self, unit: Exemplars) -> ConceptLabel:
        """The best concept of one unit with its IoU.

        Ranked by inter / (union + 1e-10) as the original, so of equal
        ratios the larger union wins; exact ties (e.g. an inactive unit, all
        IoU 0) go to the larger concept, then to the earlier one, where
        NetDissect-Lite takes the first label of the highest-ranked category.
        """
        index, area, inter, union = self._overlaps(unit)
        if index.numel() == 0:
            # No concept anywhere in the exemplars: fall back to the first concept, IoU 0.
            return ConceptLabel(self.segmenter.concepts[0], self.segmenter.describe_concept(0), 0.0, False)
        key = ranking_iou(inter, union)
        best = int(max(range(len(key)), key=lambda i: (float(key[i]), float(area[i]), -i)))
        c = int(index[best])
        value = float(exact_iou(inter[best:best + 1], union[best:best + 1])[0])
        return ConceptLabel(self.segmenter.concepts[c], self.segmenter.describe_concept(c), value,
                            value >= self.threshold)

    def describe(self, units: Sequence[Exemplars]) -> list[str]:
        return [self.explain(u).text for u in tqdm(units, desc="netdissect", disable=not self.progress)]
