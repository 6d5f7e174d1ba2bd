"""CIDEr-D (Vedantam et al., CVPR 2015), the variant of the COCO caption evaluation code.

For n = 1..4, each sentence becomes a tf-idf vector of its n-grams, with document frequencies counted
over the test units' references (an n-gram counts once per unit) and idf = log(N_units) - log(max(1, df)).
The similarity of a prediction to one reference is, per n, sum(min(v_pred, v_ref) * v_ref) (clipping
prevents gaming by repetition) divided by the two vector norms, times a gaussian length penalty
exp(-(l_pred - l_ref)^2 / (2 * 6^2)); it is averaged over n and over the unit's references and
multiplied by 10. As in the reference implementation the "length" is the number of bigrams.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from eval.metrics.tokenize import words

N_MAX = 4
SIGMA = 6.0
SIGNATURE = "cider_d|n:4|sigma:6|clip:yes|x10|df:test-refs|agg:mean-ref,mean-units|tok:lower-alnum|norm:lower,strip-dot-space"


def ngram_counts(text: str, n_max: int = N_MAX) -> Counter:
    """Counts of all n-grams (tuples), 1 <= n <= n_max."""
    toks = words(text)
    return Counter(tuple(toks[i : i + n]) for n in range(1, n_max + 1) for i in range(len(toks) - n + 1))


def _vector(counts: Counter, df: Counter, log_n: float) -> tuple[list[dict], list[float], int]:
    vec: list[dict] = [{} for _ in range(N_MAX)]
    norm = [0.0] * N_MAX
    length = 0
    for gram, tf in counts.items():
        n = len(gram) - 1
        weight = float(tf) * (log_n - math.log(max(1.0, df[gram])))
        vec[n][gram] = weight
        norm[n] += weight * weight
        if n == 1:
            length += tf
    return vec, [math.sqrt(x) for x in norm], length


def _sim(hyp, ref) -> float:
    (vh, nh, lh), (vr, nr, lr) = hyp, ref
    penalty = math.exp(-((lh - lr) ** 2) / (2 * SIGMA**2))
    total = 0.0
    for n in range(N_MAX):
        val = sum(min(w, vr[n][g]) * vr[n][g] for g, w in vh[n].items() if g in vr[n])
        if nh[n] != 0 and nr[n] != 0:
            val /= nh[n] * nr[n]
        total += val * penalty
    return total


def cider_d_per_unit(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> list[float]:
    """CIDEr-D of each prediction against its unit's references (x10 scale); the metric is their mean."""
    ref_counts = [[ngram_counts(r) for r in refs] for refs in references]
    df: Counter = Counter()
    for counts in ref_counts:
        df.update(set().union(*counts))
    log_n = math.log(float(len(references)))
    scores = []
    for pred, counts in zip(predictions, ref_counts):
        hyp = _vector(ngram_counts(pred), df, log_n)
        sims = [_sim(hyp, _vector(c, df, log_n)) for c in counts]
        scores.append(10.0 * sum(sims) / N_MAX / len(sims))
    return scores
