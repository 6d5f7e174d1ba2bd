"""MILAN+CLIP: rerank MILAN's beam candidates by CLIP similarity to the unit's exemplars.

The authors added this after the paper (`<group>+clip` checkpoints, never
evaluated there): beam search proposes descriptions, then each candidate is
scored by CLIP similarity with the unit's exemplar images. They mixed a
masked similarity (CLIP attention restricted to the mask) with an unmasked
one, `(1 - mix) * masked + mix * unmasked`, and their default `mix = 1`
used the unmasked image only. We keep the mixing knob but default to the
masked view (`mix = 0`): the exemplar with its active region bright and
the rest dimmed, cropped to the region, as annotators saw it and as our
CLIP-Dissect scores it, so the two CLIP-based describers look at the same
thing. Ties keep beam order.
"""
from __future__ import annotations

from typing import Sequence

import torch

from milannotations.contract import Exemplars

from ..clip.models import ClipModel
from ..clip.regions import masked_regions


def clip_similarity(clip: ClipModel, unit: Exemplars, texts: Sequence[str], mix: float = 0.0) -> torch.Tensor:
    """Mean over the unit's exemplars of cos(image view, text), one value per text."""
    if unit.images.shape[0] == 0:
        from milannotations.errors import MilanError

        raise MilanError(f"milan rerank=clip: unit {unit.unit_id} has no exemplar pixels; join images first")
    text = clip.encode_texts(list(texts))
    sim = torch.zeros(len(texts))
    if mix < 1:
        sim += (1 - mix) * (clip.encode_images(masked_regions(unit.images, unit.masks, clip.image_size))
                            @ text.T).mean(0)
    if mix > 0:
        full = masked_regions(unit.images, torch.ones_like(unit.masks), clip.image_size, crop=False, dim=1.0)
        sim += mix * (clip.encode_images(full) @ text.T).mean(0)
    return sim


def choose_by_clip(clip: ClipModel, units: Sequence[Exemplars], candidates: Sequence[Sequence[str]],
                   mix: float = 0.0) -> list[int]:
    """Index of the best candidate text per unit (first of equals)."""
    best = []
    for unit, texts in zip(units, candidates):
        if not texts:
            best.append(0)
            continue
        sim = clip_similarity(clip, unit, texts, mix)
        top = sim.max()
        best.append(int(torch.nonzero(sim >= top - 1e-7)[0]))
    return best
