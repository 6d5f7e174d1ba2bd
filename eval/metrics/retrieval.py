"""Retrieval: can a unit be picked out of the test set by its description?

For each test unit i, every test unit j is ranked by sim(i, j) = max over j's human descriptions of the
BERTScore F between i's predicted description and that description. A description that names what is
specific to its unit ranks the right unit first; a description that fits every unit equally ("depiction",
the most frequent training description) ranks it at random, whatever its BERTScore against humans.

Ties are resolved by their expected value under a uniformly random order: when the correct unit ties
with t units (itself included) and g units score strictly higher, top-1 is 1/t if g = 0 (else 0) and the
reciprocal rank is the mean of 1/r over r = g+1..g+t. Hence a constant describer, whose similarity row
is the same for every unit, scores exactly chance: top-1 = 1/n and MRR = H_n / n.
"""

from __future__ import annotations

import numpy as np

SIGNATURE_TEMPLATE = "retrieval_{kind}|sim:bertscore-f({bert})|agg:max-ref|gallery:test-units|ties:expected"


def unit_similarity(pair_f: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """n x n similarity from n x n_refs pair scores: max over each unit's reference columns."""
    return np.maximum.reduceat(pair_f, offsets[:-1], axis=1)


def tie_groups(sim: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """`sim` with every column replaced by the mean of its group's columns (units whose truth is the same
    formula): such units cannot be told apart by any description, so they tie exactly in every row and
    count at their expected value. None: no groups (real units), `sim` unchanged."""
    if groups is None:
        return np.asarray(sim, dtype=np.float64)
    groups = np.asarray(groups)
    ids, inverse, sizes = np.unique(groups, return_inverse=True, return_counts=True)
    member = np.zeros((len(groups), len(ids)))
    member[np.arange(len(groups)), inverse] = 1.0 / sizes[inverse]
    return (np.asarray(sim, dtype=np.float64) @ member)[:, inverse]


def retrieval_per_unit(sim: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-unit top-1 hit (expected value under ties) and reciprocal rank, from an n x n similarity matrix."""
    sim = np.asarray(sim, dtype=np.float64)
    own = np.diag(sim)[:, None]
    higher = (sim > own).sum(axis=1)
    tied = (sim == own).sum(axis=1)  # >= 1: the unit itself
    top1 = np.where(higher == 0, 1.0 / tied, 0.0)
    # mean of 1/r for r in (higher, higher + tied]: (H(higher + tied) - H(higher)) / tied
    harmonic = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, sim.shape[1] + 1))])
    rr = (harmonic[higher + tied] - harmonic[higher]) / tied
    return top1, rr


def chance(n: int) -> tuple[float, float]:
    """(top-1, MRR) of a describer that ranks units at random among n."""
    return 1.0 / n, float(np.sum(1.0 / np.arange(1, n + 1)) / n)
