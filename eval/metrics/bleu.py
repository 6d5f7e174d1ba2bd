"""Corpus BLEU as the paper computed it, with exact per-unit sufficient statistics for the bootstrap.

The paper called `sacrebleu.corpus_bleu(preds, list(zip(*refs)))`: 13a tokenisation, mixed case (the
text is already lowercased), exponential smoothing, no effective order, one reference *stream* per
annotator. `zip` silently truncates every unit to the smallest reference count, and sacrebleu 2.x
truncates unequal streams too, so ragged reference lists are refused here instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sacrebleu.metrics import BLEU

from milannotations.errors import MilanError

MAX_ORDER = 4


def make_bleu() -> BLEU:
    """The paper's sacrebleu configuration (sacrebleu defaults)."""
    return BLEU(tokenize="13a", smooth_method="exp", lowercase=False, effective_order=False)


def reference_streams(references: Sequence[Sequence[str]]) -> list[list[str]]:
    """Transpose per-unit reference lists into sacrebleu's one-stream-per-annotator layout.

    Raises MilanError naming the first unit whose reference count differs from unit 0's.
    """
    n_refs = len(references[0])
    for i, refs in enumerate(references):
        if len(refs) != n_refs:
            raise MilanError(
                f"BLEU needs the same number of references for every unit: unit 0 has {n_refs}, "
                f"unit {i} has {len(refs)} (ragged references are refused, never truncated)"
            )
    return [list(stream) for stream in zip(*references)]


def bleu_stats(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> np.ndarray:
    """Per-unit sufficient statistics from sacrebleu itself: units x (2 + 2*4).

    Columns: hypothesis length, closest reference length, matches for n=1..4, totals for n=1..4.
    Their column sums give sacrebleu's corpus BLEU exactly (`bleu_from_stats`).
    """
    streams = reference_streams(references)
    stats = make_bleu()._extract_corpus_statistics(list(predictions), streams)
    return np.asarray(stats, dtype=np.float64).reshape(len(predictions), 2 + 2 * MAX_ORDER)


def bleu_from_stats(sums: np.ndarray) -> np.ndarray:
    """sacrebleu's `compute_bleu` (exp smoothing, no effective order), vectorised over leading axes.

    Mirrors sacrebleu: 0 when nothing matches or some order has no n-grams at all; an order with zero
    matches gets precision 100 / (2^k * total) where k counts zero-match orders so far.
    """
    sums = np.asarray(sums, dtype=np.float64)
    sys_len, ref_len = sums[..., 0], sums[..., 1]
    correct = sums[..., 2 : 2 + MAX_ORDER]
    total = sums[..., 2 + MAX_ORDER :]
    with np.errstate(divide="ignore", invalid="ignore"):
        bp = np.where(sys_len >= ref_len, 1.0, np.where(sys_len > 0, np.exp(1.0 - ref_len / np.maximum(sys_len, 1e-300)), 0.0))
        zero = correct == 0
        smooth = np.power(2.0, np.cumsum(zero, axis=-1))
        precision = np.where(zero, 100.0 / (smooth * total), 100.0 * correct / total)
        log_p = np.log(precision).mean(axis=-1)
        score = bp * np.exp(log_p)
    dead = (~np.any(correct > 0, axis=-1)) | np.any(total == 0, axis=-1)
    return np.where(dead, 0.0, score)


def corpus_bleu(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Corpus BLEU (0-100) computed by sacrebleu on the transposed reference streams."""
    return float(make_bleu().corpus_score(list(predictions), reference_streams(references)).score)


def bleu_signature(n_refs: int) -> str:
    """sacrebleu's own signature string, e.g. `nrefs:3|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0`."""
    bleu = make_bleu()
    bleu.num_refs = n_refs  # what sacrebleu records after scoring n_refs streams
    return bleu.get_signature().format()
