"""CLIP-Dissect's soft-WPMI rule, written for a unit's ranked exemplars instead of a probe set.

The original (Oikarinen & Weng, ICLR 2023; `soft_wpmi` in
Trustworthy-ML-Lab/CLIP-dissect, similarity.py) works on a probe set of N
images and a layer of U units:

1. per image, CLIP's cosine similarities to the C concepts become a
   distribution over concepts, ``P(c | image) = softmax_c(a * cos)``, ``a = 10``;
2. per unit, its ``top_k`` most activating images, highest first, get rank
   weights ``p_i = p_start - (i / top_k) (p_start - p_end)``, i = 0..top_k-1
   (0.998 falling linearly towards 0.97), and
   ``log p(c | u) = sum_i log(1 + p_i (P(c | image_i) - 1) + min_prob)``,
   a soft product: each top image is "in the unit's example set" with
   probability p_i, and absent concepts are penalised most on the best images;
3. the prior is the mean over the layer's U units,
   ``log p(c) = logsumexp_u log p(c | u) - log U``;
4. ``score(u, c) = log p(c | u) - lam * log p(c)``, ``lam = 1``; the label is the argmax.

Steps 2 and 4 need only the unit's top images in rank order, which is
exactly what an `Exemplars` holds (k = 15, highest first). So with
``top_k = k`` these functions compute the original's numbers; the
fidelity test in tests/test_clip_dissect.py checks that against a
re-typing of the original. What the exemplar setting changes is who the
layer's units are in step 3: see `baselines/clip_dissect.py`.
"""
from __future__ import annotations

import torch

# The original's defaults (soft_wpmi's keyword arguments).
A = 10.0
LAM = 1.0
P_START = 0.998
P_END = 0.97
MIN_PROB = 1e-7


def rank_weights(k: int, p_start: float = P_START, p_end: float = P_END) -> torch.Tensor:
    """k weights, rank 0 first: p_start - (i / k) * (p_start - p_end), in float32 as the original."""
    return p_start - torch.arange(k, dtype=torch.float32) / k * (p_start - p_end)


def soft_log_p(sims: torch.Tensor, a: float = A, p_start: float = P_START, p_end: float = P_END,
               min_prob: float = MIN_PROB) -> torch.Tensor:
    """log p(c | u) from a unit's k x C cosine similarities, rows in rank order (best first) -> C values.

    The per-image softmax runs over concepts, so it needs the whole concept set
    in one call; the rank weights need the rows in the unit's exemplar order.
    """
    probs = torch.softmax(a * sims.float(), dim=-1)
    w = rank_weights(sims.shape[0], p_start, p_end).unsqueeze(1)
    return torch.log(1 + w * (probs - 1) + min_prob).sum(dim=0)


def log_prior(log_p: torch.Tensor) -> torch.Tensor:
    """log of the mean over units of p(c | u), from U x C values of log p(c | u) (logsumexp, no underflow)."""
    return torch.logsumexp(log_p, dim=0) - torch.log(torch.tensor(float(log_p.shape[0])))
