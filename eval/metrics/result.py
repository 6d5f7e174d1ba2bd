"""The value type every metric returns (the metric names come from `eval.metrics.spec`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from eval.metrics.spec import METRIC_NAMES  # noqa: F401  (re-exported: the names come from the one table)


@dataclass(frozen=True)
class MetricScore:
    """One number with its 95% bootstrap interval and the signature that says how it was made.

    `per_unit` holds the per-unit contributions when the metric is a mean over units (None for corpus
    metrics such as BLEU, whose per-unit values do not average to the corpus value).
    """

    value: float
    ci95: tuple[float, float]
    signature: str
    per_unit: list[float] | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        """JSON form used in results.json: value, ci95 as a list, signature."""
        return {"value": float(self.value), "ci95": [float(self.ci95[0]), float(self.ci95[1])], "signature": self.signature}
