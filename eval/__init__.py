"""Scoring describers against humans: metrics, the harness (protocol -> fit -> describe -> score), results
(`ResultsRecord`: results.json as typed records).

    from eval import evaluate
    results = evaluate("constant", benchmark="synth", protocol="within-network", output="out/constant")

The names below are the room's public surface; the leaderboard recomputes submissions with them
(`prepare_split`, `run_fingerprint`, `reference_scores`, `method_scores`, ...), never with a
module's private helpers.
"""
from .environment import environment
from .faithful import RunFaithfulness, build_run_faithfulness, describer_uses
from .folder import evaluate_folder
from .harness import evaluate
from .protocols import Split, protocol_splits, protocols
from .records import (DescriberRecord, Floors, LabellerRecord, ParseReport, ProbeRecord, RecordError, ResultsRecord,
                      Score, Scores, SplitRecord, Timing)
from .results import read_descriptions, read_results, results_errors, validate_results
from .scoring import (best_floor, mean_over_trials, method_scores, normalized_scores, normalized_value, parse_report,
                      reference_scores, score_dict)
from .splits import SplitData, TruthUnits, limit_indices, prepare_split, run_fingerprint

__all__ = ["DescriberRecord", "Floors", "LabellerRecord", "ParseReport", "ProbeRecord", "RecordError", "ResultsRecord",
           "RunFaithfulness", "Score", "Scores", "Split", "SplitData", "SplitRecord", "Timing", "TruthUnits",
           "best_floor", "build_run_faithfulness",
           "describer_uses", "environment", "evaluate", "evaluate_folder", "limit_indices",
           "mean_over_trials", "method_scores", "normalized_scores", "normalized_value", "parse_report",
           "prepare_split", "protocol_splits", "protocols", "read_descriptions", "read_results",
           "reference_scores", "results_errors", "run_fingerprint", "score_dict", "validate_results"]
