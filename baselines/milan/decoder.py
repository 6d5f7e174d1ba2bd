"""MILAN's description decoder p(d | E): Show-Attend-Tell over a unit's exemplars.

Where an image captioner attends over the grid cells of one image, MILAN
attends over the k exemplar vectors of one unit: at each word the decoder
asks which of the unit's top images best supports the next word. The
doubly stochastic penalty pushes the attention, summed over the words of a
description, towards one per exemplar, so no exemplar is ignored throughout.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .unrolled import StepWeight, dropout_masks, packing

#: The paper's longest description, in tokens with <stop>.
MAX_LENGTH = 15


@dataclass(frozen=True)
class DecoderConfig:
    """Sizes of the decoder; the defaults are the paper's."""

    vocab_size: int
    feature_size: int
    embedding_size: int = 128
    hidden_size: int = 512
    attention_size: int | None = None  # None: min(hidden_size, feature_size)
    dropout: float = 0.5
    length: int = MAX_LENGTH  # maximum tokens per description, <stop> included

    def to_dict(self) -> dict:
        return asdict(self)


class AdditiveAttention(nn.Module):
    """Bahdanau attention: softmax_j w . tanh(W_q h + W_k e_j) over the exemplars."""

    def __init__(self, query_size: int, key_size: int, hidden_size: int) -> None:
        super().__init__()
        self.query = nn.Linear(query_size, hidden_size)
        self.key = nn.Linear(key_size, hidden_size)
        self.score = nn.Linear(hidden_size, 1)

    def forward(self, query: torch.Tensor, projected_keys: torch.Tensor) -> torch.Tensor:
        """query (B, Hq), projected_keys = self.key(keys) (B, k, A) -> weights (B, k)."""
        hidden = torch.tanh(self.query(query).unsqueeze(1) + projected_keys)
        return torch.softmax(self.score(hidden).squeeze(-1), dim=-1)


class ShowAttendTell(nn.Module):
    """The decoder. `step` advances one word; `forward` is teacher forcing for training."""

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        self.config = config
        d, h = config.feature_size, config.hidden_size
        a = config.attention_size or min(h, d)
        self.init_h = nn.Linear(d, h)
        self.init_c = nn.Linear(d, h)
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_size)
        self.attention = AdditiveAttention(h, d, a)
        self.gate = nn.Linear(h, d)
        self.cell = nn.LSTMCell(config.embedding_size + d, h)
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(h, config.vocab_size)

    def start(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, k, D) features -> initial (h, c) from their mean, and the projected attention keys."""
        mean = features.mean(dim=1)
        return torch.tanh(self.init_h(mean)), torch.tanh(self.init_c(mean)), self.attention.key(features)

    def step(self, features: torch.Tensor, keys: torch.Tensor, tokens: torch.Tensor,
             h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One word: previous tokens (B,) -> (log-probs (B, V), attention (B, k), h, c).

        Attention and gate read the previous hidden state; the output reads the new one.
        """
        alpha = self.attention(h, keys)
        context = torch.sigmoid(self.gate(h)) * torch.bmm(alpha.unsqueeze(1), features).squeeze(1)
        h, c = self.cell(torch.cat([self.embedding(tokens), context], dim=-1), (h, c))
        return F.log_softmax(self.out(self.dropout(h)), dim=-1), alpha, h, c

    def forward(self, features: torch.Tensor, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing: inputs (B, T) starting with <start> -> log-probs (B, T, V), attention (B, T, k)."""
        h, c, keys = self.start(features)
        logps, alphas = [], []
        for t in range(inputs.shape[1]):
            logp, alpha, h, c = self.step(features, keys, inputs[:, t], h, c)
            logps.append(logp)
            alphas.append(alpha)
        return torch.stack(logps, dim=1), torch.stack(alphas, dim=1)

    def training_loss(self, features: torch.Tensor, targets: torch.Tensor, start: int, pad: int,
                      attention_weight: float) -> torch.Tensor:
        """The training objective of a batch: mean NLL of its real tokens + `attention_weight` * penalty.

        The same value as teacher forcing with `forward` (inputs: <start>, then the targets shifted),
        `nll_loss(ignore_index=pad)` and `attention_penalty` over real steps, computed faster: step t
        runs only the rows whose description is still going (`packing`; padding is about half of a
        batch of synthetic descriptions), and the products that do not feed the recurrence (the
        embedding's share of the LSTM input, the output layer) run once for all tokens. The three
        products of the previous hidden state (LSTM, attention query, gate) are one matrix product,
        and the weight gradients of the per-step products are one product each (`StepWeight`).
        In training mode it draws one (B, H) dropout mask per padded step in batch-row order, as
        `forward` does, so both use the same dropout draws. Weights and `step` (decoding) are those
        of `nn.LSTMCell` and the attention modules; only this computation of the loss differs.
        """
        b, k = features.shape[:2]
        e, hid = self.config.embedding_size, self.config.hidden_size
        counts, order, rows, steps = packing(targets, pad)
        # step t's (B, H) mask, drawn as forward's dropout draws it at step t (one draw per step)
        masks = [dropout_masks((b, hid), self.dropout.p, features.device) for _ in range(targets.shape[1])] \
            if self.training else [None] * targets.shape[1]
        feats, sorted_targets = features[order], targets[order]
        inputs = torch.cat([sorted_targets.new_full((b, 1), start), sorted_targets[:, :-1]], dim=1)
        cell, query, gate = self.cell, self.attention.query, self.gate
        # both LSTM biases go with the input product, computed once for all tokens: (N, 4H)
        x = F.linear(self.embedding(inputs[rows, steps]), cell.weight_ih[:, :e], cell.bias_ih + cell.bias_hh)
        w_prev = StepWeight(torch.cat([cell.weight_hh, query.weight, gate.weight]))
        w_context = StepWeight(cell.weight_ih[:, e:])
        split = [4 * hid, query.out_features, gate.out_features]
        h, c, keys = self.start(feats)
        hidden, alphas = [], []
        for t, (x_t, n) in enumerate(zip(x.split(counts), counts)):  # split, not slices: one cheap backward
            h, c = h[:n], c[:n]
            prev, q, g = w_prev(h).split(split, dim=1)
            q, g = q + query.bias, g + gate.bias
            alpha = torch.softmax(self.attention.score(torch.tanh(q.unsqueeze(1) + keys[:n])).squeeze(-1), dim=-1)
            context = torch.sigmoid(g) * torch.bmm(alpha.unsqueeze(1), feats[:n]).squeeze(1)
            i, f, cand, o = (x_t + w_context(context) + prev).chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(cand)
            h = torch.sigmoid(o) * torch.tanh(c)
            hidden.append(h if masks[t] is None else h * masks[t][order[:n]])
            alphas.append(alpha)
        nll = F.cross_entropy(self.out(torch.cat(hidden)), sorted_targets[rows, steps])
        total = features.new_zeros(b, k).index_add(0, rows, torch.cat(alphas))
        return nll + attention_weight * _penalty(total)


def attention_penalty(alphas: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Doubly stochastic regulariser mean_{b,j} (1 - sum_t alpha_{b,t,j})^2 over real (non-pad) steps."""
    return _penalty((alphas * valid.unsqueeze(-1).to(alphas.dtype)).sum(dim=1))


def _penalty(total: torch.Tensor) -> torch.Tensor:
    """mean_{b,j} (1 - total_{b,j})^2 of each row's attention summed over its real steps (B, k)."""
    return ((1.0 - total) ** 2).mean()
