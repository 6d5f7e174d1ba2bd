"""CLIP-Dissect (Oikarinen & Weng, ICLR 2023), adapted to the exemplar contract.

The original scores every concept by soft-WPMI between a unit's activations
over a whole probe set and CLIP's image-text similarities on that set. Our
describers see only a unit's k exemplars with masks, so we adapt it:

1. each exemplar is shown to CLIP as annotators saw it (mask region bright,
   the rest dimmed, cropped to the region): k region embeddings;
2. s(u, c) = mean over the k regions of cos(region, text(c));
   p(c | u) = softmax_c(s(u, c) / T);
3. specificity by contrast with other units, the WPMI idea:
   score(u, c) = log p(c | u) - lam * log p(c), where p(c) is the mean of
   p(c | u') over background units u' (the training units' exemplars seen
   in `fit` -- pixels only, never their descriptions -- or, without `fit`,
   the units being described);
4. the description is the best concept, or its `top` best joined with "and".
"""
from __future__ import annotations

import random
from typing import Sequence

import torch

from milannotations.contract import AnnotatedExemplars, DescriberMeta, Exemplars
from milannotations.errors import MilanError

from .clip.concepts import concept_set
from .clip.models import ClipModel, load_clip
from .clip.regions import masked_regions
from .registry import register_describer

CITATION = ("Oikarinen & Weng, CLIP-Dissect: Automatic Description of Neuron Representations in Deep "
            "Vision Networks, ICLR 2023")


@register_describer("clip-dissect")
class ClipDissect:
    """Label each unit with the concept its masked exemplars match best, relative to other units."""

    def __init__(self, model: str = "synth", pretrained: str | None = "openai", concepts: str | None = None,
                 top: int = 1, lam: float = 1.0, temperature: float = 0.02, template: str = "{}",
                 background_units: int = 200, batch_size: int = 64, device: str = "cpu", seed: int = 0,
                 clip: ClipModel | None = None) -> None:
        if top < 1:
            raise MilanError("clip-dissect: top must be at least 1")
        self.clip = clip if clip is not None else load_clip(model, pretrained, device)
        self.concepts = list(concept_set(concepts or ("synth" if model == "synth" else "broden")))
        self.top, self.lam, self.temperature = int(top), float(lam), float(temperature)
        self.template, self.batch_size = template, int(batch_size)
        self.background_units, self.seed = int(background_units), int(seed)
        self._text: torch.Tensor | None = None
        self._log_prior: torch.Tensor | None = None
        self.meta = DescriberMeta(name="clip-dissect", version="1", trained_on=(), citation=CITATION,
                                  reference=f"clip={self.clip.name}; concepts={concepts or 'default'}")

    def _text_embeddings(self) -> torch.Tensor:
        if self._text is None:
            self._text = self.clip.encode_texts([self.template.format(c) for c in self.concepts])
        return self._text

    def unit_concept_similarity(self, units: Sequence[Exemplars]) -> torch.Tensor:
        """U x C mean cosine similarity between each unit's masked regions and each concept."""
        text = self._text_embeddings()
        regions, owner = [], []
        for i, u in enumerate(units):
            if u.images.shape[0] == 0:
                raise MilanError(f"clip-dissect: unit {u.unit_id} has no exemplar pixels; join images first")
            regions.append(masked_regions(u.images, u.masks, self.clip.image_size))
            owner += [i] * u.images.shape[0]
        flat = torch.cat(regions)
        emb = torch.cat([self.clip.encode_images(flat[i:i + self.batch_size])
                         for i in range(0, len(flat), self.batch_size)])
        sims = emb @ text.T
        owner_t = torch.tensor(owner)
        out = torch.zeros(len(units), text.shape[0])
        out.index_add_(0, owner_t, sims)
        return out / torch.bincount(owner_t, minlength=len(units)).clamp(min=1)[:, None]

    def _log_p(self, sim: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(sim / self.temperature, dim=-1)

    def fit(self, train: Sequence[AnnotatedExemplars]) -> None:
        """Estimate p(c) from the exemplars of (a seeded sample of) training units; descriptions unused."""
        idx = list(range(len(train)))
        random.Random(self.seed).shuffle(idx)
        sample = [train[i] for i in sorted(idx[:self.background_units])]
        sample = [u for u in sample if u.images.shape[0]]
        if sample:
            self._log_prior = self._prior(self._log_p(self.unit_concept_similarity(sample)))

    @staticmethod
    def _prior(log_p: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(log_p, dim=0) - torch.log(torch.tensor(float(log_p.shape[0])))

    def describe(self, units: Sequence[Exemplars]) -> list[str]:
        if not len(units):
            return []
        log_p = self._log_p(self.unit_concept_similarity(units))
        # Without fit there is no background to contrast with. Contrasting with the other units of
        # this call would make a unit's description depend on how callers batch units.
        score = log_p - self.lam * self._log_prior if self._log_prior is not None else log_p
        best = score.topk(min(self.top, score.shape[1]), dim=-1).indices
        return [" and ".join(self.concepts[j] for j in row.tolist()) for row in best]
