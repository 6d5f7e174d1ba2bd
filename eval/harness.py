"""`evaluate()`: protocol -> fit -> describe -> score, with floors and the human ceiling beside every number.

The harness is the only code that reads the descriptions of the units under
test; describers get those units as `Exemplars` (pixels, masks, names),
never annotations or `truth`. Whatever a describer returns is checked before
anything is scored, and a run writes its files only once it has succeeded.
Test units are sharded by `torch.distributed` rank when a process group is
initialised; rank 0 gathers the descriptions, scores them and writes.

This module holds the run itself (setup, the fit/describe loop, rank 0's scoring and writing);
what it runs lives beside it: `splits` (loading a split, `--limit`, the data fingerprint),
`describing` (batches, output checks, fit), `scoring` (scores, floors, ceiling, normalisation),
`environment` and `distributed` (rank and gather).
"""
from __future__ import annotations

import datetime as _dt
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from baselines.registry import Runtime, build_describer, recorded_args
from milannotations.load import expand_configs
from milannotations.contract import Describer
from milannotations.errors import MilanError

from .describing import describe_batches, fit_describer, fit_record, seed_everything
from .distributed import gather, process_group
from .environment import environment
from .faithful import build_run_faithfulness, describer_uses
from .metrics.truth import TruthScorer
from .protocols import protocol_splits
from .records import (DescriberRecord, Floors, LabellerRecord, ParseReport, ResultsRecord, Scores, SplitRecord,
                      Timing)
from .results import write_run
from .scoring import method_scores, normalized_scores, normalized_value, parse_report, reference_scores
from .splits import SplitData, prepare_split, run_fingerprint

__all__ = ["evaluate", "normalized_value"]  # normalized_value: leaderboard/render.py imports it from here


def evaluate(describer: str | Describer, *, benchmark: str = "synth", protocol: str = "within-network",
             configs: Sequence[str] | None = None, root: str | Path | None = None, scorer: str = "offline",
             limit: int | None = None, trials: int = 1, seed: int = 0, device: str = "cpu",
             output: str | Path | None = None, describer_args: Mapping[str, Any] | None = None,
             batch_size: int = 32, progress: bool = True, labeller: str | None = None,
             labeller_args: Mapping[str, Any] | None = None) -> dict:
    """Score a describer on a protocol's splits against humans, with floors and the ceiling beside it.

    `describer` is a registry name (built-in, entry point, `module:attr`,
    `file.py:attr`, built by `baselines.registry.build_describer` with
    `describer_args` and, where its constructor names them and `describer_args`
    does not set them, `device`, the trial's seed (`seed` + trial) and
    `progress=False`) or a ready instance. A describer named by string is built
    fresh for every split and trial, so nothing learned on one split leaks into
    another; an instance is re-fit. Only `device` of those is recorded among the
    args: the results carry `seed` and `trials`, and progress cannot change a description.
    `labeller` (`oracle`, `clip`, `segmenter`, or module:attr; built with `labeller_args`) adds
    exemplar faithfulness to every split (eval/faithful.py); none by default, so runs without one
    carry the agreement and truth metrics only.
    Returns the results dict and, with `output`, writes `results.json` and
    `descriptions.csv` there (both or neither).
    """
    t_start = time.perf_counter()
    if trials < 1:
        raise MilanError(f"--trials must be at least 1, got {trials}")
    if limit is not None and limit < 1:
        raise MilanError(f"--limit must be at least 1, got {limit}")
    if batch_size < 1:
        raise MilanError(f"batch size must be at least 1, got {batch_size}")
    splits = protocol_splits(benchmark, protocol, configs)
    dist, rank, world = process_group()
    show = progress and rank == 0
    # One factory for every describer (baselines.registry): a name is built fresh per split and trial
    # with what its constructor takes of the runtime (device, the trial's seed, progress); an instance
    # is checked and re-fit. The args recorded are the given ones plus the device it took.
    runtime = Runtime(device=device, seed=seed, progress=show)

    def make(trial_seed: int) -> Describer:
        return build_describer(describer, describer_args, replace(runtime, seed=trial_seed))

    first = make(seed)
    recorded = recorded_args(describer, describer_args, runtime)
    meta = first.meta
    name = getattr(meta, "name", None) or str(describer)
    trained_on = expand_configs(tuple(getattr(meta, "trained_on", ())))
    timing = {"load_s": 0.0, "fit_s": 0.0, "describe_s": 0.0, "score_s": 0.0}
    uses: set[str] = set()  # the models the describer relied on (the labeller must not be one of them)

    # Rank 0 builds the scorer (loading its BERTScore model) before anything is fitted, so a missing
    # model fails the run at once rather than after every describer has run.
    scorer_obj = faith = None
    error: str | None = None
    if rank == 0:
        from .metrics import Scorer

        try:
            scorer_obj = Scorer(scorer=scorer, device=device, seed=seed, progress=show)
            faith = build_run_faithfulness(labeller, labeller_args, device=device, seed=seed)
        except MilanError as e:
            error = str(e)
    if dist is not None:
        error = next((e for e in gather(dist, error, world) if e), None)
    if error is not None:
        raise MilanError(error)

    # Phase 1, every rank: fit, describe this rank's shard, gather. Errors travel with the gather,
    # so one failing rank cannot leave the others waiting.
    revision_h = run_fingerprint(benchmark, protocol)
    data: list[SplitData] = []
    pending = first
    for split in splits:
        t = time.perf_counter()
        try:
            sd = prepare_split(split, root, limit, seed, revision_h)  # builds the synthetic corpus on first use
        except MilanError as e:
            error = str(e)
        timing["load_s"] += time.perf_counter() - t
        if error is None:
            for trial in range(trials):
                shard = list(range(rank, len(sd.test_ids), world))
                try:
                    seed_everything(seed + trial)
                    d, pending = (pending if pending is not None else make(seed + trial)), None
                    t = time.perf_counter()
                    fit_describer(d, name, sd.train, split)
                    timing["fit_s"] += time.perf_counter() - t
                    sd.fitted.append(fit_record(d))
                    uses |= describer_uses(d)
                    t = time.perf_counter()
                    texts = describe_batches(d, name, sd.test, sd.test_ids, shard, batch_size, show,
                                      f"{split.name} trial {trial}" if trials > 1 else split.name)
                    uses |= describer_uses(d)  # backends some describers pick while describing
                    timing["describe_s"] += time.perf_counter() - t
                    payload: tuple = ("ok", shard, texts)
                except MilanError as e:
                    payload = ("error", str(e))
                gathered = gather(dist, payload, world)
                errs = [p[1] for p in gathered if p[0] == "error"]
                if errs:
                    error = errs[0]
                    break
                merged: list[str | None] = [None] * len(sd.test_ids)
                for _, idx, texts in gathered:
                    for i, text in zip(idx, texts):
                        merged[i] = text
                sd.descriptions.append(merged)  # type: ignore[arg-type]
            data.append(sd)
        if dist is not None:  # every rank stops at the same split when any of them failed
            flags = gather(dist, error, world)
            error = next((e for e in flags if e), None)
        if error is not None:
            break
    if error is not None:
        raise MilanError(error)

    # Phase 2, rank 0: floors, scores, ceiling, files. The outcome is broadcast to every rank.
    outcome: tuple = ("ok", None)
    if rank == 0:
        try:
            truth_scorer = TruthScorer(seed=seed, progress=show) if any(sd.truth for sd in data) else None
            results = _score_and_write(
                data, scorer_obj, truth_scorer, name=name, meta=meta, trained_on=trained_on, benchmark=benchmark,
                protocol=protocol, scorer=scorer, limit=limit, trials=trials, seed=seed, device=device,
                output=output, describer_args=recorded, batch_size=batch_size,
                revision=revision_h.hexdigest(), timing=timing, t_start=t_start, world=world,
                faith=faith, uses=uses)
            outcome = ("ok", results)
        except MilanError as e:
            outcome = ("error", str(e))
    if dist is not None:
        box = [outcome]
        dist.broadcast_object_list(box, src=0)
        outcome = box[0]
    if outcome[0] == "error":
        raise MilanError(outcome[1])
    return outcome[1]


def _score_and_write(data: list[SplitData], scorer_obj, truth_scorer, *, name: str, meta, trained_on: set[str],
                     benchmark: str, protocol: str, scorer: str, limit, trials: int, seed: int, device: str,
                     output, describer_args, batch_size: int, revision: str, timing: dict, t_start: float,
                     world: int, faith=None, uses: set[str] = frozenset()) -> dict:
    """Rank 0's phase 2: floors, the describer's scores and the ceiling with `scorer_obj` (the `Scorer`
    built before phase 1) and, on synthetic splits, `truth_scorer`; then the record (eval/records.py), its
    files, and its JSON, which `evaluate` returns."""
    split_records, rows = [], []
    for sd in data:
        t = time.perf_counter()
        reference = reference_scores(sd, scorer_obj, seed, truth_scorer, faith)
        method = method_scores(scorer_obj, sd, sd.descriptions, truth_scorer, faith)
        parsed = parse_report(sd, sd.descriptions)
        timing["score_s"] += time.perf_counter() - t
        spec = sd.split.to_dict()  # name, train and test configs, and their HF splits
        split_records.append(SplitRecord(
            name=spec["name"], train=tuple(spec["train"]), test=tuple(spec["test"]),
            train_split=spec["train_split"], test_split=spec["test_split"],
            n_units=len(sd.test_ids), held_out=not (trained_on & set(sd.split.test)), revision=sd.revision,
            metrics=Scores.from_dict(method, "metrics"), floors=Floors.from_dict(reference["floors"]),
            floor=Scores.from_dict(reference["floor"], "floor"),
            ceiling=Scores.from_dict(reference["ceiling"], "ceiling"),
            normalized=Scores.from_dict(normalized_scores(method, reference["floor"], reference["ceiling"]),
                                        "normalized"),
            humans=Scores.from_dict(reference["humans"], "humans") if "humans" in reference else None,
            parse=ParseReport.from_dict(parsed) if parsed is not None else None,
            fitted=tuple(sd.fitted) if any(sd.fitted) else None))
        for trial, texts in enumerate(sd.descriptions):
            rows.extend({"unit_id": uid, "layer": layer, "unit": unit, "description": text,
                         "split": sd.split.name, "trial": trial}
                        for uid, layer, unit, text in zip(sd.test_ids, sd.layers, sd.units, texts))
    timing["total_s"] = time.perf_counter() - t_start
    record = ResultsRecord(
        benchmark=benchmark, revision=revision, protocol=protocol, scorer=scorer, seed=seed, trials=trials,
        # a limit that cut no split (>= every split's size) is a complete run: recorded as none
        limit=limit if any(sd.limited for sd in data) else None, batch_size=batch_size,
        describer=DescriberRecord.of(meta, describer_args, name=name), splits=tuple(split_records),
        labeller=LabellerRecord.from_dict(faith.record(uses)) if faith is not None else None,
        environment=environment(device, world), timing=Timing.of(timing),
        date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    if output is not None:
        write_run(output, record, rows)
    return record.to_dict()
