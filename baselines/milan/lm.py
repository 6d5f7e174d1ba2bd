"""The language model p(d) that PMI decoding divides out.

Without it the decoder favours descriptions that are likely for *any* unit
("the same pattern"); subtracting lambda * log p(d) rewards descriptions that
are likely for *this* unit's exemplars specifically.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

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

    def training_loss(self, targets: torch.Tensor, start: int, pad: int) -> torch.Tensor:
        """Mean NLL of the real tokens of right-padded `targets` (B, T) under teacher forcing.

        The value `nll_loss(self(inputs), targets, ignore_index=pad)` has, computed on real tokens
        only (`unrolled.packing`: padding is about half of a batch of synthetic descriptions): each
        layer's input product runs once over all real tokens, its recurrence only over the rows
        still inside their description, and its recurrent weight's gradient is one product
        (`unrolled.StepWeight`). The LSTM is unrolled by hand with `nn.LSTM`'s own weights
        and gate order (i, f, g, o); between layers it draws the one time-major (T, B, H) dropout
        mask that `nn.LSTM` draws in training, so both use the same dropout draws.
        """
        from .unrolled import StepWeight, dropout_masks, packing

        b, t_max = targets.shape
        hid = self.config.hidden_size
        counts, order, rows, steps = packing(targets, pad)
        sorted_targets = targets[order]
        inputs = torch.cat([sorted_targets.new_full((b, 1), start), sorted_targets[:, :-1]], dim=1)
        layer_input = self.embedding(inputs[rows, steps])  # (N, E), step-major like every output below
        for layer in range(self.config.layers):
            w_ih, w_hh, b_ih, b_hh = (getattr(self.lstm, f"{name}_l{layer}")
                                      for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
            x = F.linear(layer_input, w_ih, b_ih + b_hh)  # both biases with the input product, once
            recurrent = StepWeight(w_hh)
            h = c = x.new_zeros(b, hid)
            outputs = []
            for x_t, n in zip(x.split(counts), counts):  # split, not slices: one cheap backward for all steps
                i, f, cand, o = (x_t + recurrent(h[:n])).chunk(4, dim=1)
                c = torch.sigmoid(f) * c[:n] + torch.sigmoid(i) * torch.tanh(cand)
                h = torch.sigmoid(o) * torch.tanh(c)
                outputs.append(h)
            layer_input = torch.cat(outputs)
            if self.training and layer < self.config.layers - 1:
                mask = dropout_masks((t_max, b, hid), self.lstm.dropout, targets.device)
                if mask is not None:
                    layer_input = layer_input * mask[steps, order[rows]]
        return F.cross_entropy(self.out(layer_input), sorted_targets[rows, steps])

    @torch.no_grad()
    def rows_logp(self, rows: Sequence[Sequence[int]], start: int) -> list[float]:
        """Summed log p of each row of token ids (each read after <start>), as teacher forcing gives it.

        Beam candidates share most of their prefixes (a beam extends the same few hypotheses, and the
        selection's ten widths search the same units), and an LSTM's distribution after a prefix does
        not depend on what follows it. So the rows are read as a prefix tree, one batched LSTM step
        per depth over the distinct prefixes of that length: on the selection's 12,375 candidates
        of 45 units that is a small fraction of the padded rows' tokens. The same values as running
        each row through `forward`, up to float rounding (`tests/test_milan.py`).
        """
        if not rows:
            return []
        layers, hid = self.config.layers, self.config.hidden_size
        weights = [tuple(getattr(self.lstm, f"{n}_l{i}") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
                   for i in range(layers)]
        device = self.out.weight.device
        # node ids per depth: depth 0 is the empty prefix; a node's input is its prefix's last token
        nodes: list[dict[tuple[int, ...], int]] = [{(): 0}]
        for row in rows:
            for t in range(1, len(row)):
                if len(nodes) <= t:
                    nodes.append({})
                nodes[t].setdefault(tuple(row[:t]), len(nodes[t]))
        state = [(torch.zeros(1, hid, device=device), torch.zeros(1, hid, device=device)) for _ in range(layers)]
        logps: list[torch.Tensor] = []
        for t, level in enumerate(nodes):
            prefixes = list(level)
            tokens = torch.tensor([p[-1] if p else start for p in prefixes], device=device)
            parents = torch.tensor([nodes[t - 1][p[:-1]] if p else 0 for p in prefixes], device=device)
            x = self.embedding(tokens)
            new_state = []
            for (w_ih, w_hh, b_ih, b_hh), (h, c) in zip(weights, state):
                h, c = h[parents], c[parents]
                i, f, cand, o = (F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh)).chunk(4, dim=1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(cand)
                h = torch.sigmoid(o) * torch.tanh(c)
                new_state.append((h, c))
                x = h
            state = new_state
            logps.append(F.log_softmax(self.out(x), dim=-1))
        totals = torch.zeros(len(rows), dtype=torch.float64, device=device)
        for t, (level, logp) in enumerate(zip(nodes, logps)):
            picked = [(r, level[tuple(row[:t])], row[t]) for r, row in enumerate(rows) if len(row) > t]
            if picked:
                r, node, token = (torch.tensor(col, device=device) for col in zip(*picked))
                totals.index_add_(0, r, logp[node, token].double())
        return totals.float().tolist()
