"""Streaming per-unit top-k of images by score, with an exact, order-independent merge.

Ties are broken by the smaller image id, so the result is a pure function of
the set of (score, id) pairs seen: chunking, sharding across processes and
merge order cannot change it. Dead units (all scores equal, e.g. 0 after a
ReLU) therefore get the k smallest ids, in every run.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class TopK:
    """values/ids: (units, k), best first; unfilled slots hold -inf and id -1."""

    values: torch.Tensor
    ids: torch.Tensor

    @classmethod
    def empty(cls, units: int, k: int) -> "TopK":
        return cls(torch.full((units, k), -torch.inf), torch.full((units, k), -1, dtype=torch.int64))

    @property
    def k(self) -> int:
        return self.values.shape[1]

    def update(self, scores: torch.Tensor, ids: torch.Tensor) -> None:
        """Offer a batch: scores (batch, units) and the batch's image ids (batch,)."""
        scores = scores.detach().float()
        if self.values.device != scores.device:  # live where the activations are (CPU or GPU)
            self.values, self.ids = self.values.to(scores.device), self.ids.to(scores.device)
        ids = ids.to(device=scores.device, dtype=torch.int64)
        cand_v = torch.cat([self.values, scores.T], dim=1)
        cand_i = torch.cat([self.ids, ids[None, :].expand(scores.shape[1], -1)], dim=1)
        self.values, self.ids = _best(cand_v, cand_i, self.k)

    def merge(self, other: "TopK") -> "TopK":
        """Fold another top-k of the same units and k into this one (exact)."""
        if other.values.shape != self.values.shape:
            raise ValueError(f"cannot merge top-k of shapes {tuple(self.values.shape)} and "
                             f"{tuple(other.values.shape)}")
        self.values, self.ids = _best(torch.cat([self.values.cpu(), other.values.cpu()], 1),
                                      torch.cat([self.ids.cpu(), other.ids.cpu()], 1), self.k)
        return self


def _best(values: torch.Tensor, ids: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k best (value desc, id asc) columns per row; empty slots (id -1) sort last."""
    values = torch.where(ids < 0, torch.full_like(values, -torch.inf), values)
    # Unfilled slots get a huge id so they lose every tie against real images.
    key_ids = torch.where(ids < 0, torch.full_like(ids, torch.iinfo(torch.int64).max), ids)
    order = torch.argsort(key_ids, dim=1, stable=True)
    values, ids, key_ids = values.gather(1, order), ids.gather(1, order), key_ids.gather(1, order)
    order = torch.argsort(values, dim=1, descending=True, stable=True)[:, :k]
    return values.gather(1, order), ids.gather(1, order)
