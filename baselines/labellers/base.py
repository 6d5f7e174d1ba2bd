"""The labeller contract: a description and some images in, where on those images the description holds.

Faithfulness asks whether a description says what a unit does. The unit's side
is known (its exemplar masks, or its activations on a probe set); the
description's side needs a *labeller* that turns free text into concept maps
on the same images. NeuronEval (Oikarinen et al., ICML 2025) calls this the
concept vector c_t; where it comes from (ground truth, a segmenter, calibrated
CLIP) is a choice every score must name, so every labeller carries a `model`
signature, and the models it relies on (`uses`), so a run can tell when a
describer is scored by its own model.

Labelling is split in two steps because every description of a split is
checked on the same images: `label(images)` does the per-image work once
(segment, encode), and `Labelled.maps(texts)` is cheap per text.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch


@dataclass(frozen=True)
class ImageBatch:
    """Images to label: uint8 N x 3 x H x W, and where they come from (`dataset`, `image_ids`), which
    the oracle labeller of the synthetic world reads instead of the pixels."""

    images: torch.Tensor
    dataset: str | None = None
    image_ids: tuple[int, ...] | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])


class Labelled(ABC):
    """The images of one `Labeller.label` call, ready for any number of descriptions."""

    @abstractmethod
    def maps(self, texts: Sequence[str]) -> np.ndarray:
        """float32 T x N x h x w in [0, 1]: how much each text holds at each cell of each image
        (0.5 and above counts as "holds" where a binary mask is needed)."""

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """float32 T x N: how much each text holds on each whole image (default: the maps' maximum)."""
        m = self.maps(texts)
        return m.reshape(m.shape[0], m.shape[1], -1).max(axis=2) if m.size else np.zeros(m.shape[:2], np.float32)


class Labeller(ABC):
    """Turns (description, images) into concept maps and image scores.

    Subclasses set `name` (registry name), `model` (a signature naming the exact model and version,
    written into every metric signature) and `uses` (the models it relies on, in the spelling
    describers use: `segmenter:<name>`, `clip:<signature>`), and implement `label`.
    """

    name: str = "labeller"
    model: str = ""
    uses: frozenset[str] = frozenset()
    #: True when the labeller reads ground truth (the synthetic oracle): exact, not a method.
    exact: bool = False

    @abstractmethod
    def label(self, batch: ImageBatch, size: tuple[int, int]) -> Labelled:
        """Do the per-image work for `batch`; maps come out at `size` (h, w)."""

    @property
    def signature(self) -> str:
        return f"labeller:{self.name}({self.model})"


def shared_models(describer_uses: Sequence[str], labeller: Labeller) -> list[str]:
    """The models a describer and a labeller both rely on: a describer scored by its own model is
    flattered (it agrees with itself), so the run says so and marks the row."""
    return sorted(set(describer_uses) & set(labeller.uses))
