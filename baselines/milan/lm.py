"""The language model p(d) that PMI decoding divides out.

Without it the decoder favours descriptions that are likely for *any* unit
("the same pattern"); subtracting lambda * log p(d) rewards descriptions that
are likely for *this* unit's exemplars specifically.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class LMConfig:
    """Sizes of the LM; the defaults are the paper's."""

    vocab_size: int
    embedding_size: int = 128
    hidden_size: int = 512
    layers: int = 2
    dropout: float = 0.5

    def to_dict(self) -> dict:
        return asdict(self)


class LanguageModel(nn.Module):
    """Embedding -> multi-layer LSTM -> log-softmax over the shared vocabulary."""

    def __init__(self, config: LMConfig, pad_index: int) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_size, padding_idx=pad_index)
        self.lstm = nn.LSTM(config.embedding_size, config.hidden_size, num_layers=config.layers,
                            dropout=config.dropout if config.layers > 1 else 0.0, batch_first=True)
        self.out = nn.Linear(config.hidden_size, config.vocab_size)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """inputs (B, T) starting with <start> -> next-token log-probs (B, T, V)."""
        hidden, _ = self.lstm(self.embedding(inputs))
        return F.log_softmax(self.out(hidden), dim=-1)

    @torch.no_grad()
    def sequence_logp(self, targets: torch.Tensor, start: int, pad: int) -> torch.Tensor:
        """Summed log p of each target row (B, T) (words then <stop>, right-padded with `pad`)."""
        inputs = torch.cat([targets.new_full((targets.shape[0], 1), start), targets[:, :-1]], dim=1)
        logp = self(inputs).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        return (logp * (targets != pad)).sum(dim=1)
