"""Percentile bootstrap over units, vectorised in numpy.

A resample is represented by how many times each unit is drawn (a multinomial count vector), so the
mean of per-unit values is one matrix product and a corpus metric is recomputed exactly from summed
sufficient statistics (`counts @ stats`), without materialising n_boot x n_units x k arrays.

All metrics of one `Scorer.score` call use the same seed, hence the same resampled test sets. Only the
units are resampled: quantities computed from the whole test set (BERTScore idf weights, CIDEr document
frequencies, the retrieval gallery) stay fixed.
"""

from __future__ import annotations

import numpy as np


def resample_counts(n_units: int, n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """n_boot x n_units draw counts of a with-replacement resample of the units; deterministic per seed."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_units, np.full(n_units, 1.0 / n_units), size=n_boot).astype(np.float64)


def percentile_ci(samples: np.ndarray) -> tuple[float, float]:
    """2.5th and 97.5th percentiles of bootstrap replicates."""
    lo, hi = np.percentile(np.asarray(samples, dtype=np.float64), [2.5, 97.5])
    return float(lo), float(hi)


def mean_replicates(per_unit, n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """Bootstrap replicates of the mean of per-unit values (n_boot,)."""
    values = np.asarray(per_unit, dtype=np.float64)
    return resample_counts(len(values), n_boot, seed) @ values / len(values)


def mean_ci(per_unit, n_boot: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the mean of per-unit values."""
    return percentile_ci(mean_replicates(per_unit, n_boot, seed))
