"""Training losses of recurrences computed on real tokens only, with the draws of the padded computation.

MILAN's decoder and LM are trained on batches of right-padded descriptions; about half of a
synthetic batch is padding. Their `training_loss` methods unroll the recurrence by hand over the
rows still inside their description (`packing`), draw dropout exactly as the padded computation
(`dropout_masks`), and let each weight used at every step get its gradient from one matrix product
(`StepWeight`). The value and gradients are those of the padded computation up to float rounding;
`tests/test_milan.py` checks both against it.
"""
from __future__ import annotations

import torch
from torch.autograd import Function


def packing(targets: torch.Tensor, pad: int) -> tuple[list[int], torch.Tensor, torch.Tensor, torch.Tensor]:
    """How a right-padded batch (B, T) is read token by token without its padding.

    Rows are sorted by length, longest first (stable, so ties keep batch order); step t then covers
    the first `counts[t]` sorted rows. Returns `counts`, `order` (sorted position -> batch row) and
    the (row, step) of every real token in step-major order (`rows`, `steps`, both (N,)): the order
    in which a step loop produces them, so per-step outputs concatenated line up with
    `targets[order][rows, steps]`.
    """
    lengths = (targets != pad).sum(dim=1)
    order = torch.argsort(lengths, descending=True, stable=True)
    sorted_lengths = lengths[order]
    steps_t = torch.arange(targets.shape[1], device=targets.device)
    counts = [n for n in (sorted_lengths.unsqueeze(0) > steps_t.unsqueeze(1)).sum(1).tolist() if n > 0]
    dev = targets.device
    rows = torch.cat([torch.arange(n, device=dev) for n in counts]) if counts else \
        torch.zeros(0, dtype=torch.long, device=dev)
    steps = torch.cat([torch.full((n,), t, device=dev) for t, n in enumerate(counts)]) if counts else rows
    return counts, order, rows, steps


def dropout_masks(shape: tuple[int, ...], p: float, device: torch.device) -> torch.Tensor | None:
    """The scaled keep-mask `nn.Dropout(p)` would multiply a tensor of `shape` by in training.

    `F.dropout` on CPU is `x * bernoulli(1 - p) / (1 - p)` drawn from the global generator
    (ATen `_dropout_impl`); drawing the same mask here, for the full padded shape and in the same
    order, lets the packed training losses skip padding and still use exactly the dropout draws of
    the padded step-by-step computation (`tests/test_milan.py` checks it against `F.dropout`).
    On CUDA, `F.dropout` is a fused kernel with its own draws: there the masks have the same
    distribution, not the same numbers. None means no dropout (p = 0 draws nothing, as `F.dropout` does).
    """
    if p <= 0:
        return None
    if p >= 1:
        return torch.zeros(shape, device=device)
    return torch.empty(shape, device=device).bernoulli_(1 - p).div_(1 - p)


class _Gathered(Function):
    """The weight as the steps see it; its backward forms the whole gradient from the steps' records."""

    @staticmethod
    def forward(ctx, weight: torch.Tensor, records: list) -> torch.Tensor:  # noqa: D102
        ctx.records = records
        return weight.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # noqa: D102
        records, ctx.records = ctx.records, None
        if not records:
            return grad, None
        grads, inputs = zip(*records)
        records.clear()
        return grad + torch.cat(grads).t() @ torch.cat(inputs), None


class _StepProduct(Function):
    """x @ weight.T whose backward gives the input's gradient and records (grad, x) for the weight."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, records: list) -> torch.Tensor:  # noqa: D102
        ctx.save_for_backward(x, weight)
        ctx.records = records
        return x @ weight.t()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # noqa: D102
        x, weight = ctx.saved_tensors
        ctx.records.append((grad, x))
        return grad @ weight, None, None


class StepWeight:
    """A weight multiplied at every step of a recurrence, `StepWeight(w)(x) == x @ w.T`.

    Autograd would form x_t^T g_t at each step, a thin product (the step's rows are its inner
    size), and add it into the weight's gradient. Here each step's backward keeps (g_t, x_t) and
    the weight's backward, which autograd runs after every step's, forms cat(g)^T cat(x) once: the
    same sum as one well-shaped product (what fused RNN kernels do), about a quarter faster on
    MILAN's decoder steps. One object per forward pass; no double backward.
    """

    def __init__(self, weight: torch.Tensor) -> None:
        self._records: list = []
        self._weight = _Gathered.apply(weight, self._records) if weight.requires_grad else weight

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not self._weight.requires_grad:
            return x @ self._weight.t()
        return _StepProduct.apply(x, self._weight, self._records)
