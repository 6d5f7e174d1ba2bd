"""ROUGE-L: F1 of the longest common subsequence of words, best reference per unit.

Per unit the prediction is compared with each reference and the best F1 is kept (the same
max-over-references rule as the paper's BERTScore); the metric is the mean over units, in [0, 1].
This differs from the paper's `rouge` package, which averaged over all (prediction, reference) pairs;
the signature says `agg:max-ref` so the two are never confused.
"""

from __future__ import annotations

from collections.abc import Sequence

from eval.metrics.tokenize import words

SIGNATURE = "rouge_l|f1|beta:1|agg:max-ref,mean-units|tok:lower-alnum|norm:lower,strip-dot-space"


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence (O(len(a)*len(b)) dynamic programme, one row kept)."""
    if not a or not b:
        return 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l_f1(prediction: str, reference: str) -> float:
    """F1 of LCS precision (over prediction words) and recall (over reference words); 0 if either is empty."""
    p, r = words(prediction), words(reference)
    lcs = lcs_length(p, r)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(p), lcs / len(r)
    return 2 * precision * recall / (precision + recall)


def rouge_l_per_unit(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> list[float]:
    """Best ROUGE-L F1 over each unit's references."""
    return [max(rouge_l_f1(pred, ref) for ref in refs) for pred, refs in zip(predictions, references)]
