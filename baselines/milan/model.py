"""A trained MILAN: vocabulary, decoder, LM and the name of the backbone its features come from."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from milannotations.errors import MilanError

from .decoder import ShowAttendTell
from .decoding import STRATEGIES, Candidate, beam_search, greedy, rerank
from .lm import LanguageModel
from .vocab import Vocab


@dataclass
class MilanModel:
    """Everything needed to describe units from their encoded exemplars."""

    vocab: Vocab
    decoder: ShowAttendTell
    lm: LanguageModel | None
    backbone: str
    backbone_signature: str = ""
    trained_on: tuple[str, ...] = ()
    info: dict = field(default_factory=dict)  # training settings and history, kept in checkpoints

    def decode(self, features: torch.Tensor, strategy: str = "rerank", beam: int = 50, lam: float = 0.2,
               chunk: int = 32) -> list[Candidate]:
        """One chosen candidate per unit of (N, k, D) features; beam search runs `chunk` units at a time."""
        if strategy not in STRATEGIES:
            raise MilanError(f"unknown MILAN strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
        if strategy == "rerank" and self.lm is None:
            raise MilanError("strategy=rerank needs a language model; this checkpoint has none")
        length = self.decoder.config.length
        features = self._on_decoder(features)
        out: list[Candidate] = []
        for i in range(0, features.shape[0], chunk):
            part = features[i: i + chunk]
            if strategy == "greedy":
                out.extend(greedy(self.decoder, part, self.vocab, length))
                continue
            beams = beam_search(self.decoder, part, self.vocab, length, beam)
            if strategy == "beam":
                out.extend(b[0] for b in beams)
            else:
                out.extend(rerank(beams, self.lm, self.vocab, lam, length))
        return out

    def candidates(self, features: torch.Tensor, beam: int = 50, chunk: int = 32) -> list[list[Candidate]]:
        """Every finished beam-search candidate per unit, best first (for external rerankers)."""
        features = self._on_decoder(features)
        out: list[list[Candidate]] = []
        for i in range(0, features.shape[0], chunk):
            out.extend(beam_search(self.decoder, features[i: i + chunk], self.vocab, self.decoder.config.length, beam))
        return out

    def _on_decoder(self, features: torch.Tensor) -> torch.Tensor:
        """`features` on the decoder's device, refused with a clear message if their size does not match."""
        if features.shape[-1] != self.decoder.config.feature_size:
            raise MilanError(f"features have size {features.shape[-1]} but the decoder expects "
                             f"{self.decoder.config.feature_size} (backbone {self.backbone})")
        return features.to(next(self.decoder.parameters()).device)

    def to(self, device: str) -> "MilanModel":
        self.decoder.to(device)
        if self.lm is not None:
            self.lm.to(device)
        return self

    def describe(self, features: torch.Tensor, **kwargs) -> list[str]:
        return [self.vocab.decode(c.ids) for c in self.decode(features, **kwargs)]
