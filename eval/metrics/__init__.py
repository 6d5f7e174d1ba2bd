"""Metrics of the describer benchmark: BERTScore (paper / offline), BLEU, ROUGE-L, CIDEr-D, retrieval.

`Scorer` is the one entry point the harness uses; every number comes back as a `MetricScore` with a
95% bootstrap interval over units and the signature that says exactly how it was computed.
"""

from eval.metrics.result import MetricScore
from eval.metrics.scorer import Scorer
from eval.metrics.spec import HEADLINE, METRIC_NAMES, METRICS, MetricSpec, metric

__all__ = ["HEADLINE", "METRICS", "METRIC_NAMES", "MetricScore", "MetricSpec", "Scorer", "metric"]
