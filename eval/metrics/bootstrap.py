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

from eval.metrics.result import MetricScore


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


def summarize(spec, passes: list, counts: np.ndarray, signature: str):
    """One metric's `MetricScore` from its values in each pass (one pass for a describer, one per
    annotator slot for a human row), averaged over passes: a `mean` metric from per-unit values
    (bootstrap = `counts @ values / n`), a `corpus` metric from per-unit statistics through
    `spec.from_stats` (bootstrap = the statistics of each resample). Both scorers package with it."""
    if spec.kind == "corpus":  # e.g. sacrebleu's corpus BLEU, from its own summed statistics
        value = float(np.mean([spec.from_stats(np.asarray(p).sum(axis=0)) for p in passes]))
        reps = np.mean([spec.from_stats(counts @ np.asarray(p)) for p in passes], axis=0)
        return MetricScore(value, percentile_ci(reps), signature, None)
    per_unit = np.mean([np.asarray(p, dtype=np.float64) for p in passes], axis=0)
    return MetricScore(float(per_unit.mean()), percentile_ci(counts @ per_unit / len(per_unit)), signature,
                       per_unit.tolist())
