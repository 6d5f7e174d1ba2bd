"""Validation of submissions: structure, coverage, data revision, and every number recomputed.

A submitted number is accepted only if it can be made again here from the
submitted `descriptions.csv` and the benchmark data, with the harness's own
code: its protocol splits and test-unit selection (`eval.protocols`,
`eval.splits`, re-exported by `eval`), its floors, and the metrics' `Scorer` under the scorer
configuration and seed the results name. Nothing about scoring is
re-implemented in this room; a mismatch beyond `tolerance` (absolute, on
values and on interval bounds) refuses the submission.

Every problem is reported, not only the first, each naming the submission
and the split, trial, metric or unit it concerns. Units of configs that the
describer was trained on (`trained_on`) are flagged: they are not held out.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

# Metrics from float32 model embeddings (the spec's `embeddings`): the sum order of a matrix product may
# differ between machines and thread counts, so they get `embedding_tolerance`; n-gram metrics are exact.
from eval import Floors, LabellerRecord, ParseReport, RecordError, ResultsRecord, Scores
from eval.metrics.spec import EMBEDDING_METRICS
from milannotations.errors import MilanError
from milannotations.load import expand_configs

from .submission import (DESCRIPTIONS, META, META_FIELDS, RESULTS, Submission, load_submission, submission_dir,
                         variant)

SECTIONS = ("metrics", "ceiling", "floor", "humans")  # "humans": synthetic splits only (truth metrics)
#: The normalized score is arithmetic on the claimed numbers; it must match them this closely.
ARITHMETIC_TOLERANCE = 1e-9
_SHOW = 5  # unit ids listed per problem before "and N more"


@dataclass(frozen=True)
class Problem:
    """One finding; `error` refuses the submission, `warning` is printed and shown on the page."""

    submission: str
    message: str
    level: str = "error"

    def __str__(self) -> str:
        tag = "error" if self.level == "error" else "warning"
        return f"{tag}: {self.submission}: {self.message}"


@dataclass
class Report:
    """What validation found for one submission."""

    name: str
    path: Path
    problems: list[Problem] = field(default_factory=list)
    checked: int = 0  # numbers compared against a recomputation
    units: int = 0  # distinct (split, unit) pairs described
    descriptions: int = 0  # rows of descriptions.csv (units x trials)

    @property
    def ok(self) -> bool:
        return not any(p.level == "error" for p in self.problems)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "error"]

    @property
    def summary(self) -> str:
        n_err = len(self.errors)
        n_warn = len(self.problems) - n_err
        return (f"{self.units} described units ({self.descriptions} descriptions), {self.checked} numbers "
                f"recomputed, {n_err} error(s), {n_warn} warning(s)")

    def error(self, message: str) -> None:
        self.problems.append(Problem(self.name, message, "error"))

    def warn(self, message: str) -> None:
        self.problems.append(Problem(self.name, message, "warning"))


def _listing(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_SHOW])
    return shown + (f" and {len(items) - _SHOW} more" if len(items) > _SHOW else "")


# --------------------------------------------------------------------------- recomputation state

class _Context:
    """Shared across submissions of one validation run: scorers and split data/floors/ceilings.

    Every describer of a benchmark, protocol and scorer is compared against
    the same floors and ceiling, so they are recomputed once per run.
    """

    def __init__(self, corpus_root, device: str) -> None:
        self.corpus_root = corpus_root
        self.device = device
        self._scorers: dict[tuple, Any] = {}
        self._truth: dict[int, Any] = {}
        self._splits: dict[tuple, Any] = {}
        self._refs: dict[tuple, dict] = {}
        self._faith: dict[tuple, Any] = {}

    def faith(self, labeller: LabellerRecord | None, seed: int):
        """The run's labeller (results.json `labeller`: its name and args), rebuilt as `milan-eval --labeller`
        built it; None for runs without one."""
        if labeller is None:
            return None
        from eval import build_run_faithfulness

        key = (*_labeller_key(labeller), seed)
        if key not in self._faith:
            self._faith[key] = build_run_faithfulness(labeller.name, dict(labeller.args), device=self.device,
                                                      seed=seed)
        return self._faith[key]

    def truth_scorer(self, seed: int):
        """The harness's truth scorer (synthetic splits); its probe sums are shared by every submission."""
        from eval.metrics.truth import TruthScorer

        if seed not in self._truth:
            self._truth[seed] = TruthScorer(seed=seed)
        return self._truth[seed]

    def scorer(self, name: str, seed: int):
        from eval.metrics import Scorer

        key = (name, seed)
        if key not in self._scorers:
            self._scorers[key] = Scorer(scorer=name, device=self.device, seed=seed)
        return self._scorers[key]

    def prepare(self, benchmark: str, protocol: str, splits: Sequence, limit, seed: int):
        """The harness's split data for `splits`, and the run revision it fingerprints (as `evaluate`)."""
        from eval import prepare_split, run_fingerprint

        key = (benchmark, protocol, tuple(splits), limit, seed)
        if key not in self._splits:
            h = run_fingerprint(benchmark, protocol)
            data = [prepare_split(s, self.corpus_root, limit, seed, h) for s in splits]
            self._splits[key] = (data, h.hexdigest())
        return self._splits[key]

    def references_side(self, sd, scorer_name: str, seed: int, labeller: LabellerRecord | None = None) -> dict:
        """Floors, best floor and ceiling of one split, made as the harness makes them."""
        from eval import reference_scores

        # the Split (frozen) names the train configs the floors are fit on; the revision, the test units
        key = (sd.split, sd.revision, scorer_name, seed, _labeller_key(labeller))
        if key not in self._refs:
            self._refs[key] = reference_scores(sd, self.scorer(scorer_name, seed), seed, self.truth_scorer(seed),
                                               self.faith(labeller, seed))
        return self._refs[key]


def _labeller_key(labeller: LabellerRecord | None) -> tuple[str, str]:
    """What rebuilds a labeller: its name and args (not what it shares with one describer)."""
    return ("", "") if labeller is None else (labeller.name, json.dumps(dict(labeller.args), sort_keys=True))


# --------------------------------------------------------------------------- checks

def _check_meta(rep: Report, sub: Submission) -> None:
    meta, d, r = sub.meta, sub.results.describer, sub.results
    for key, typ in META_FIELDS.items():
        if key not in meta:
            rep.error(f"{META}: missing {key!r}")
        elif not isinstance(meta[key], typ):
            rep.error(f"{META}: {key!r} must be {typ.__name__}, got {type(meta[key]).__name__}")
    if rep.errors:
        return
    if meta["name"] != d.name:
        rep.error(f"{META}: name {meta['name']!r} differs from the describer of {RESULTS} ({d.name!r})")
    if meta["version"] != d.version:
        rep.error(f"{META}: version {meta['version']!r} differs from {RESULTS} ({d.version!r})")
    if sorted(map(str, meta["trained_on"])) != sorted(d.trained_on):
        rep.error(f"{META}: trained_on {meta['trained_on']} differs from {RESULTS} describer.trained_on "
                  f"{list(d.trained_on)}")
    if any(not isinstance(a, str) for a in meta["authors"]):
        rep.error(f"{META}: authors must be a list of strings")
    expected = submission_dir(d.name, r.benchmark, r.protocol, root=".", variant=variant(r))
    want = (expected.parent.name, expected.name)
    have = (sub.path.parent.name, sub.path.name)
    if have != want:
        rep.error(f"folder {have[0]}/{have[1]} should be {want[0]}/{want[1]} for describer {d.name!r}, "
                  f"benchmark {r.benchmark!r}, protocol {r.protocol!r}")
    if not d.reproducible:
        rep.warn("the describer is marked not reproducible (e.g. API-backed); its descriptions were "
                 "rescored, not regenerated")


def _check_protocol(rep: Report, r: ResultsRecord) -> list | None:
    """The harness's Split objects for the results' splits, in the results' order; None on error."""
    from eval import protocol_splits

    before = len(rep.errors)
    try:
        table = {s.name: s for s in protocol_splits(r.benchmark, r.protocol)}
    except MilanError as e:
        rep.error(str(e))
        return None
    out = []
    for s in r.splits:
        spec = table.get(s.name)
        if spec is None:
            rep.error(f"split {s.name!r} is not a split of {r.benchmark} {r.protocol} "
                      f"(splits: {', '.join(table)})")
            continue
        if list(s.train) != list(spec.train) or list(s.test) != list(spec.test):
            rep.error(f"split {s.name!r}: train/test configs {list(s.train)} -> {list(s.test)} differ from the "
                      f"protocol's {list(spec.train)} -> {list(spec.test)}")
            continue
        out.append(spec)
    names = [s.name for s in r.splits]
    missing = [n for n in table if n not in names]
    if missing:
        rep.error(f"does not cover split(s) {', '.join(missing)} of {r.benchmark} {r.protocol}: a "
                  "leaderboard submission runs the whole protocol (no --configs)")
    order = [n for n in table if n in names]
    if names != order:
        rep.error(f"splits are not in the protocol's order ({', '.join(order)})")
    return out if len(rep.errors) == before else None


def _check_held_out(rep: Report, r: ResultsRecord) -> None:
    trained = expand_configs(r.describer.trained_on)
    for s in r.splits:
        seen = sorted(trained & set(s.test))
        if seen:
            rep.warn(f"split {s.name!r}: the describer was trained on {', '.join(seen)}, which this split "
                     f"tests; its {s.n_units} units are not held out")
            if s.held_out:
                rep.error(f"split {s.name!r} claims held_out=true but trained_on includes {', '.join(seen)}")
        elif not s.held_out:
            rep.error(f"split {s.name!r} claims held_out=false but trained_on {list(r.describer.trained_on)} "
                      "does not overlap its test configs")


def _rows_by_split(rep: Report, rows: list[dict], r: ResultsRecord) -> dict[tuple[str, int], list[dict]]:
    names = [s.name for s in r.splits]
    trials = r.trials
    out: dict[tuple[str, int], list[dict]] = {}
    stray_split: Counter = Counter()
    stray_trial: Counter = Counter()
    for line, row in enumerate(rows, start=2):
        if row["split"] not in names:
            stray_split[row["split"]] += 1
            continue
        if not 0 <= row["trial"] < trials:
            stray_trial[(row["split"], row["trial"])] += 1
            continue
        desc = row.get("description")
        if desc is None or not str(desc).strip():
            rep.error(f"{DESCRIPTIONS}:{line}: unit {row['unit_id']} (split {row['split']!r}, trial "
                      f"{row['trial']}) has an empty description")
        out.setdefault((row["split"], row["trial"]), []).append(row)
    for name, n in stray_split.items():
        rep.error(f"{DESCRIPTIONS}: {n} row(s) name split {name!r}, which is not in {RESULTS} "
                  f"(splits: {', '.join(names)})")
    for (name, t), n in stray_trial.items():
        rep.error(f"{DESCRIPTIONS}: {n} row(s) of split {name!r} have trial {t}, outside 0..{trials - 1}")
    return out


def _check_coverage(rep: Report, sd, rows: list[dict], trial: int) -> list[str] | None:
    """The trial's descriptions in test-unit order, or None when units are missing, repeated or stray."""
    name = sd.split.name
    where = f"split {name!r}, trial {trial}"
    expected = {uid: (layer, unit) for uid, layer, unit in zip(sd.test_ids, sd.layers, sd.units)}
    counts = Counter(row["unit_id"] for row in rows)
    missing = [u for u in sd.test_ids if counts[u] == 0]
    repeated = [f"{u} ({c} times)" for u, c in counts.items() if c > 1 and u in expected]
    stray = [u for u in counts if u not in expected]
    ok = True
    if missing:
        rep.error(f"{where}: {len(missing)} test unit(s) not described: {_listing(missing)}")
        ok = False
    if repeated:
        rep.error(f"{where}: unit(s) described more than once: {_listing(repeated)}")
        ok = False
    if stray:
        rep.error(f"{where}: {len(stray)} described unit(s) are not test units of this split: {_listing(stray)}")
        ok = False
    wrong = [row["unit_id"] for row in rows if row["unit_id"] in expected
             and (str(row["layer"]), int(row["unit"])) != (str(expected[row["unit_id"]][0]),
                                                          int(expected[row["unit_id"]][1]))]
    if wrong:
        rep.error(f"{where}: layer/unit columns do not match unit_id for {_listing(wrong)}")
        ok = False
    if not ok:
        return None
    text = {row["unit_id"]: row["description"] for row in rows}
    return [text[u] for u in sd.test_ids]


def _close(a: Any, b: Any, tol: float) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return abs(float(a) - float(b)) <= tol


def _compare(rep: Report, split: str, section: str, claimed: Scores, recomputed: Scores, tolerance: float,
             embedding_tolerance: float, how: str = "recomputed") -> None:
    """Claimed vs recomputed scores of one section; every difference is one problem naming the metric."""
    for metric in sorted(set(claimed) | set(recomputed)):
        where = f"split {split!r}, {section}.{metric}"
        tol = max(tolerance, embedding_tolerance) if metric in EMBEDDING_METRICS else tolerance
        if metric not in recomputed:
            rep.error(f"{where}: claimed but not produced by the scorer")
            continue
        if metric not in claimed:
            rep.error(f"{where}: missing (the scorer produces it)")
            continue
        c, r = claimed[metric], recomputed[metric]
        if c.signature != r.signature:
            rep.error(f"{where}: signature {c.signature!r} is not the scorer's {r.signature!r} "
                      "(unknown metric configuration or library version)")
        rep.checked += 1
        if not _close(c.value, r.value, tol):
            rep.error(f"{where}: claimed {c.value!r} but {how} {r.value!r} (tolerance {tol:g})")
        cc, rc = list(c.ci95), list(r.ci95)
        if not all(_close(x, y, tol) for x, y in zip(cc, rc)):
            rep.error(f"{where}: claimed 95% interval {cc} but {how} {rc} (same seed; tolerance {tol:g})")
        if r.describer is not None and c.describer != r.describer:
            rep.error(f"{where}: best floor claimed {c.describer!r} but recomputed {r.describer!r}")
        if r.trial_values is not None or c.trial_values is not None:
            tv_c, tv_r = list(c.trial_values or []), list(r.trial_values or [])
            if len(tv_c) != len(tv_r) or not all(_close(x, y, tol) for x, y in zip(tv_c, tv_r)):
                rep.error(f"{where}: per-trial values {tv_c} differ from recomputed {tv_r}")


# --------------------------------------------------------------------------- entry points

def validate_submission(path: str | Path, *, corpus_root: str | Path | None = None, tolerance: float = 1e-6,
                        embedding_tolerance: float = 1e-5, recompute: bool = True, device: str = "cpu",
                        rescore: bool = False, _ctx: _Context | None = None) -> Report:
    """Every problem of one submission folder (see the module docstring for what is checked).

    With `rescore`, the recomputed numbers replace the claimed ones instead of being compared with
    them: every check but the comparison still runs, and results.json is rewritten (atomically, all
    splits or none) only when they all pass. This is how submissions follow a change of a metric's
    definition without rerunning their describers: the descriptions are the submission.
    """
    from eval import method_scores, normalized_scores, parse_report, read_descriptions

    path = Path(path)
    rep = Report(f"{path.parent.name}/{path.name}", path)
    ctx = _ctx or _Context(corpus_root, device)
    try:
        sub = load_submission(path)
    except RecordError as e:  # results.json is not a results record: every field at fault, one problem each
        for msg in e.errors:
            rep.error(f"{RESULTS}: {msg}")
        return rep
    except MilanError as e:
        rep.error(str(e))
        return rep
    r = sub.results
    _check_meta(rep, sub)
    _check_held_out(rep, r)
    try:
        rows = read_descriptions(sub.descriptions_path)
    except MilanError as e:
        rep.error(str(e))
        return rep
    rep.units = len({(row["split"], row["unit_id"]) for row in rows})
    rep.descriptions = len(rows)
    by_split = _rows_by_split(rep, rows, r)
    specs = _check_protocol(rep, r)
    if specs is None:
        return rep
    if r.limit is not None:
        rep.warn(f"partial run (--limit {r.limit}): ranked only beside runs on the same units (revision)")
    try:
        data, revision = ctx.prepare(r.benchmark, r.protocol, specs, r.limit, r.seed)
    except MilanError as e:
        rep.error(f"cannot load the {r.benchmark} data to check against: {e}")
        return rep
    if revision != r.revision:
        rep.error(f"data revision {r.revision[:16]}... is not the benchmark data's {revision[:16]}... "
                  "(made on other data, another --limit or another --seed)")
    texts: dict[str, list[list[str]]] = {}
    for sd, claimed in zip(data, r.splits):
        if claimed.revision is not None and claimed.revision != sd.revision:
            rep.error(f"split {sd.split.name!r}: revision {claimed.revision[:16]}... is not the test "
                      f"units' {sd.revision[:16]}...")
        n_units_ok = claimed.n_units == len(sd.test_ids)
        if not n_units_ok:
            rep.error(f"split {sd.split.name!r}: n_units is {claimed.n_units} but the split has "
                      f"{len(sd.test_ids)} test units")
        per_trial = [_check_coverage(rep, sd, by_split.get((sd.split.name, t), []), t) for t in range(r.trials)]
        if n_units_ok and all(p is not None for p in per_trial):
            texts[sd.split.name] = per_trial  # type: ignore[assignment]
    if not recompute or not rep.ok:
        if not recompute:
            rep.warn("numbers were not recomputed (--no-recompute)")
        return rep
    try:
        scorer = ctx.scorer(r.scorer, r.seed)
    except MilanError as e:
        rep.error(f"scorer {r.scorer!r} is not available here: {e}")
        return rep
    rescored = []
    for sd, claimed in zip(data, r.splits):
        name = sd.split.name
        try:
            method = method_scores(scorer, sd, texts[name], ctx.truth_scorer(r.seed), ctx.faith(r.labeller, r.seed))
            side = ctx.references_side(sd, r.scorer, r.seed, r.labeller)
            # the recomputation as records, section by section, as the harness writes them
            recomputed = {"metrics": Scores.from_dict(method, "metrics"),
                          "ceiling": Scores.from_dict(side["ceiling"], "ceiling"),
                          "floor": Scores.from_dict(side["floor"], "floor"),
                          "humans": Scores.from_dict(side["humans"], "humans") if "humans" in side else None}
            floors = Floors.from_dict(side["floors"])
        except MilanError as e:
            rep.error(f"split {name!r}: cannot rescore: {e}")
            continue
        parsed = parse_report(sd, texts[name])
        parse = ParseReport.from_dict(parsed) if parsed is not None else None
        if rescore:
            normalized = normalized_scores(method, side["floor"], side["ceiling"])
            rescored.append(replace(claimed, **{k: v for k, v in recomputed.items() if v is not None}, floors=floors,
                                    normalized=Scores.from_dict(normalized, "normalized"),
                                    parse=parse if parse is not None else claimed.parse))
            continue
        for section in SECTIONS:
            mine, theirs = getattr(claimed, section), recomputed[section]
            if mine is not None or theirs is not None:
                _compare(rep, name, section, mine or Scores(), theirs or Scores(), tolerance, embedding_tolerance)
        if parse != claimed.parse:
            rep.error(f"split {name!r}: parse report {_json_of(claimed.parse)!r} is not the parser's {parsed!r}")
        for fname, scores in floors.items():
            _compare(rep, name, f"floors.{fname}", claimed.floors[fname], scores, tolerance, embedding_tolerance)
        # normalized = arithmetic on the claimed numbers just checked, so it is held to float precision
        normalized = normalized_scores(claimed.metrics.to_dict(), claimed.floor.to_dict(), claimed.ceiling.to_dict())
        _compare(rep, name, "normalized", claimed.normalized, Scores.from_dict(normalized, "normalized"),
                 ARITHMETIC_TOLERANCE, 0.0, how="the claimed metric, floor and ceiling give")
    if rescore and rep.ok:
        from milannotations.fsutil import atomic_write_text

        atomic_write_text(path / RESULTS, replace(r, splits=tuple(rescored)).to_json())
    return rep


def _json_of(record) -> dict | None:
    """A record's JSON, for messages that quote what a file says."""
    return None if record is None else record.to_dict()


def validate_paths(paths: Sequence[str | Path], *, corpus_root: str | Path | None = None, tolerance: float = 1e-6,
                   embedding_tolerance: float = 1e-5, recompute: bool = True, device: str = "cpu",
                   rescore: bool = False) -> list[Report]:
    """Validate (or rescore) many submissions, sharing floors and ceilings between those on the same data."""
    ctx = _Context(corpus_root, device)
    reports = []
    for p in paths:
        try:
            reports.append(validate_submission(p, corpus_root=corpus_root, tolerance=tolerance,
                                               embedding_tolerance=embedding_tolerance, recompute=recompute,
                                               device=device, rescore=rescore, _ctx=ctx))
        except Exception as e:  # noqa: BLE001 - one broken submission must not stop the others' validation
            rep = Report(f"{Path(p).parent.name}/{Path(p).name}", Path(p))
            rep.error(f"cannot be validated: {type(e).__name__}: {e}")
            reports.append(rep)
    return reports


__all__ = ["Problem", "Report", "validate_paths", "validate_submission"]
