"""What every `evaluate` module here shares: the input schema and a per-process scorer cache.

Imported absolutely (`eval.metrics.modules.common`), like the metric code, because `evaluate`
copies each module file into its own cache before importing it.
"""
from __future__ import annotations

import datasets
import evaluate

from eval.metrics.scorer import Scorer

#: One prediction per unit, scored against that unit's list of references.
TEXT_FEATURES = datasets.Features(
    {"predictions": datasets.Value("string"), "references": datasets.Sequence(datasets.Value("string"))})

_SCORERS: dict[tuple, Scorer] = {}


def text_metric_info(description: str, inputs: str, citation: str = "") -> evaluate.MetricInfo:
    """`MetricInfo` for a metric over (prediction, references) pairs."""
    return evaluate.MetricInfo(description=description, citation=citation, inputs_description=inputs,
                               features=TEXT_FEATURES)


def cached_scorer(config_name: str | None, device: str, **kwargs) -> Scorer:
    """The `Scorer` for a module's config ('paper' or 'offline', the default), loaded once per process,
    so repeated `compute()` calls do not reload the embedding model."""
    name = config_name if config_name in ("paper", "offline") else "offline"
    key = (name, device, tuple(sorted(kwargs.items())))
    if key not in _SCORERS:
        _SCORERS[key] = Scorer(name, device=device, **kwargs)
    return _SCORERS[key]
