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
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from tqdm.auto import tqdm

from milannotations.contract import AnnotatedExemplars, DescriberMeta, Exemplars

from .dissect import pooled_iou, unit_concepts
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
    """

    def __init__(self, segmenter: str | Segmenter = "oracle", threshold: float = DEFAULT_IOU_THRESHOLD,
                 progress: bool = False, device: str | None = None, **segmenter_args: Any) -> None:
        self.segmenter = create_segmenter(segmenter, device=device, **segmenter_args)
        self.threshold = float(threshold)
        self.progress = progress
        self.meta = DescriberMeta(
            name="netdissect", version="1", trained_on=(),
            citation=NETDISSECT_CITATION + ("" if not self.segmenter.citation
                                            else f"; segmenter: {self.segmenter.citation}"),
            reference=segmenter_reference(self.segmenter) + f"; IoU threshold {self.threshold}",
        )

    def fit(self, train: Sequence[AnnotatedExemplars]) -> None:
        """NetDissect learns nothing from descriptions."""

    def explain(self, unit: Exemplars) -> ConceptLabel:
        """The best concept of one unit with its IoU."""
        uc = unit_concepts(unit, self.segmenter)
        if uc.masks.shape[0] == 0:
            # No concept anywhere in the exemplars: fall back to the first concept, IoU 0.
            return ConceptLabel(self.segmenter.concepts[0], self.segmenter.describe_concept(0), 0.0, False)
        iou = pooled_iou(uc.unit, uc.masks, uc.weight)
        # Ties (e.g. an inactive unit, all IoU 0) go to the larger concept, then to the earlier one.
        area = uc.masks.to(torch.float64) @ uc.weights()
        best = int(max(range(len(iou)), key=lambda i: (float(iou[i]), float(area[i]), -i)))
        c = int(uc.index[best])
        value = float(iou[best])
        return ConceptLabel(self.segmenter.concepts[c], self.segmenter.describe_concept(c), value,
                            value >= self.threshold)

    def describe(self, units: Sequence[Exemplars]) -> list[str]:
        return [self.explain(u).text for u in tqdm(units, desc="netdissect", disable=not self.progress)]
