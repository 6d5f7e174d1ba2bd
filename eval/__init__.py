"""Scoring describers against humans: metrics, the harness (protocol -> fit -> describe -> score), results.

    from eval import evaluate
    results = evaluate("constant", benchmark="synth", protocol="within-network", output="out/constant")
"""
from .harness import evaluate
from .protocols import Split, protocol_splits, protocols
from .results import read_descriptions, read_results, results_errors, validate_results

__all__ = ["Split", "evaluate", "protocol_splits", "protocols", "read_descriptions", "read_results",
           "results_errors", "validate_results"]
