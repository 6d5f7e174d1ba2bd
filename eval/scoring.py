"""Scores: a split's describer scores, floors, ceiling and normalised scores, as results.json holds them.

Every metric of a description per test unit (agreement, and truth on synthetic splits), averaged
over trials; the floors every describer is read against; the best floor; the ceiling; and
(describer - best floor) / (ceiling - best floor). The leaderboard recomputes submitted numbers
with these same functions.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from baselines.registry import Runtime, build_describer

from .describing import describe_batches
from .results import FLOOR_DESCRIBERS
from .splits import SplitData


def score_dict(scores: Mapping[str, Any]) -> dict[str, dict]:
    """`Scorer` output as the JSON of results.json."""
    out = {}
    for metric, s in scores.items():
        d = s.to_dict() if hasattr(s, "to_dict") else dict(s)
        out[metric] = {"value": float(d["value"]), "ci95": [float(x) for x in d["ci95"]],
                       "signature": str(d["signature"])}
    return out


def mean_over_trials(per_trial: list[dict[str, dict]]) -> dict[str, dict]:
    """Average values and interval bounds over trials; per-trial values are kept when there are several."""
    out = {}
    for metric in per_trial[0]:
        rows = [t[metric] for t in per_trial]
        entry = {"value": float(np.mean([r["value"] for r in rows])),
                 "ci95": [float(np.mean([r["ci95"][0] for r in rows])), float(np.mean([r["ci95"][1] for r in rows]))],
                 "signature": rows[0]["signature"]}
        if len(rows) > 1:
            entry["trial_values"] = [r["value"] for r in rows]
        out[metric] = entry
    return out


def best_floor(floors: Mapping[str, Mapping[str, dict]]) -> dict[str, dict]:
    """Per metric, the higher of the floors (the first floor wins a tie)."""
    out = {}
    for metric in next(iter(floors.values())):
        name = max(FLOOR_DESCRIBERS, key=lambda f: (floors[f][metric]["value"], -FLOOR_DESCRIBERS.index(f)))
        out[metric] = {**{k: floors[name][metric][k] for k in ("value", "ci95", "signature")}, "describer": name}
    return out


def normalized_value(value: float | None, floor: float | None, ceiling: float | None) -> float | None:
    """(value - floor) / (ceiling - floor); None where a number is missing or the ceiling does not clear
    the floor (by more than 1e-12). The leaderboard page normalizes its reference rows with it too."""
    if value is None or floor is None or ceiling is None or ceiling - floor <= 1e-12:
        return None
    return (value - floor) / (ceiling - floor)


def normalized_scores(method: Mapping[str, dict], floor: Mapping[str, dict], ceiling: Mapping[str, dict]
                      ) -> dict[str, dict]:
    """(method - best floor) / (ceiling - best floor); null where the ceiling does not clear the floor."""
    out = {}
    for metric, m in method.items():
        f, c = floor[metric]["value"], ceiling[metric]["value"]
        value = normalized_value(m["value"], f, c)
        if value is None:
            out[metric] = {"value": None, "ci95": [None, None],
                           "signature": f"{m['signature']}|normalized:ceiling<=floor"}
            continue
        out[metric] = {"value": value, "ci95": [normalized_value(x, f, c) for x in m["ci95"]],
                       "signature": f"{m['signature']}|normalized"}
    return out


def _scores(scorer, truth_scorer, sd: SplitData, texts: Sequence[str], faith=None) -> dict[str, dict]:
    """Every metric of one description per test unit: agreement, truth on synthetic splits, and
    exemplar faithfulness when the run has a labeller (`faith`: eval.faithful.RunFaithfulness)."""
    groups = sd.truth.groups if sd.truth is not None else None
    out = score_dict(scorer.score(list(texts), sd.references, revision=sd.revision, groups=groups))
    if sd.truth is not None and truth_scorer is not None:
        out.update(score_dict(truth_scorer.score(sd.truth.context(truth_scorer), list(texts))))
    if faith is not None:
        out.update(score_dict(faith.score(sd, texts)))
    return out


def reference_scores(sd: SplitData, scorer, seed: int, truth_scorer=None, faith=None) -> dict:
    """The rows every describer of a split is read against: both floors (fit on the split's training
    units), the best floor per metric, and the ceiling: the annotators' leave-one-out agreement, and on
    synthetic splits the truth formula for truth metrics, with the annotators' own descriptions
    scored by truth beside it (`humans`). The leaderboard recomputes them with this same function."""
    floors = {}
    for fname in FLOOR_DESCRIBERS:
        floor = build_describer(fname, runtime=Runtime(seed=seed))  # random-unit takes the seed, constant none
        floor.fit(sd.train)
        texts = describe_batches(floor, fname, sd.test, sd.test_ids, list(range(len(sd.test_ids))), 4096, False, fname)
        floors[fname] = _scores(scorer, truth_scorer, sd, texts, faith)
    groups = sd.truth.groups if sd.truth is not None else None
    ceiling = score_dict(scorer.ceiling(sd.references, revision=sd.revision, groups=groups))
    out = {"floors": floors, "floor": best_floor(floors), "ceiling": ceiling}
    if sd.truth is not None and truth_scorer is not None:
        ctx = sd.truth.context(truth_scorer)
        ceiling.update(score_dict(truth_scorer.ceiling(ctx)))
        out["humans"] = score_dict(truth_scorer.humans(ctx, sd.references))
    if faith is not None:
        ceiling.update(score_dict(faith.ceiling(sd)))
        out.setdefault("humans", {}).update(score_dict(faith.humans(sd)))
    return out


def method_scores(scorer, sd: SplitData, descriptions: Sequence[Sequence[str]], truth_scorer=None, faith=None
                  ) -> dict[str, dict]:
    """A describer's scores on one split: every trial's descriptions scored, then averaged over trials.
    The leaderboard recomputes submitted numbers with this same function."""
    return mean_over_trials([_scores(scorer, truth_scorer, sd, texts, faith) for texts in descriptions])


def parse_report(sd: SplitData, descriptions: Sequence[Sequence[str]]) -> dict | None:
    """How many of a synthetic split's descriptions (all trials) the truth parser understood."""
    if sd.truth is None:
        return None
    from eval.metrics.truth import parse_report as report

    return report(descriptions)
