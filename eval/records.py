"""The results record: what a `milan-eval` run's `results.json` holds, as frozen typed records.

One definition serves the three places that used to spell it apart: the harness and the folder
benchmark build a `ResultsRecord` and write `to_dict()`; the leaderboard (validation, rescoring,
the page) reads files with `ResultsRecord.from_dict` and uses attributes. `from_dict` is the only
check of the format: it refuses a wrong type, a missing required field, an unknown field or an
unknown metric (names from the metric table, `eval.metrics.spec`) with a `RecordError`, one line
naming the file and the field path of every problem. `to_dict()` gives back the JSON the harness has
always written, key for key and in the same order, so files stay byte-identical.

Fields that older files lack (`batch_size`, `reference`, `oracle`, a split's `revision`, `humans`,
`parse`, ...) are optional: `None` means absent, and `to_dict()` leaves them out again, so an old
file reads and round-trips unchanged. What a describer or the machine puts in (describer `args`, a
split's `fitted` records, `environment`) is opaque JSON, copied in and out.

To add a field: a line in its record class, its check in that class's `_read`, its place in
`to_dict()`; then the code that fills it (eval/harness.py, eval/folder.py) and, if shown, the page.
"""
from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

from milannotations.errors import MilanError

from .metrics.spec import METRIC_NAMES

RESULTS_FILE = "results.json"
FLOOR_DESCRIBERS = ("constant", "random-unit")
BENCHMARKS = ("synth", "milannotations", "folder")
#: What `environment` must say at least (the rest depends on the machine and the version that wrote it).
ENVIRONMENT_KEYS = ("python", "torch", "milannotations", "bert_score", "sacrebleu", "git", "device")


class RecordError(MilanError):
    """A document that is not a valid results record; `errors` lists every problem, each naming its field
    path, and the message (one line) names the file and the first three."""

    def __init__(self, source: str, errors: Sequence[str]) -> None:
        self.source, self.errors = source, list(errors)
        more = f" (and {len(self.errors) - 3} more)" if len(self.errors) > 3 else ""
        super().__init__(f"{source} is not a valid results file: {'; '.join(self.errors[:3])}{more}")


# --------------------------------------------------------------------------- reading, with every problem named

_TYPE_NAMES = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}


class _Reader:
    """Collects the problems of one document while its records are read; `done` raises them together."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def fail(self, path: str, message: str) -> None:
        self.errors.append(f"{path}: {message}")

    def done(self, source: str) -> None:
        if self.errors:
            raise RecordError(source, self.errors)

    @classmethod
    def read(cls, record: type, value: Any, source: str, *args: Any) -> Any:
        """`record._read(reader, value, *args)` checked whole: the record, or every problem at once."""
        r = cls()
        out = record._read(r, value, *args)
        r.done(source)
        return out

    def _wrong(self, path: str, expected: str, value: Any) -> None:
        self.fail(path, f"expected {expected}, got {type(value).__name__} {value!r:.60}")

    def obj(self, value: Any, path: str, required: Sequence[str], optional: Sequence[str] = ()) -> dict | None:
        """`value` as an object with `required` keys and no key outside `required` and `optional`."""
        if not isinstance(value, dict):
            self._wrong(path, "object", value)
            return None
        for key in required:
            if key not in value:
                self.fail(path, f"missing {key!r}")
        known = (*required, *optional)
        for key in value:
            if key not in known:
                self.fail(path, f"unknown field {key!r}; known: {', '.join(known)}")
        return value

    def string(self, value: Any, path: str, nonempty: bool = False) -> str:
        if not isinstance(value, str):
            self._wrong(path, "string", value)
            return ""
        if nonempty and not value:
            self.fail(path, "must not be empty")
        return value

    def hex64(self, value: Any, path: str) -> str:
        s = self.string(value, path)
        if isinstance(value, str) and (len(s) != 64 or any(c not in "0123456789abcdef" for c in s)):
            self.fail(path, "expected 64 lowercase hex digits")
        return s

    def integer(self, value: Any, path: str, minimum: int | None = None, nullable: bool = False) -> int | None:
        if value is None and nullable:
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            self._wrong(path, "integer or null" if nullable else "integer", value)
            return 0
        if minimum is not None and value < minimum:
            self.fail(path, f"{value} is below {minimum}")
        return value

    def number(self, value: Any, path: str, nullable: bool = False) -> float | None:
        """A finite number (an int stays an int, so the file is written back as it was read)."""
        if value is None and nullable:
            return None
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            self._wrong(path, "number or null" if nullable else "number", value)
            return None
        return value

    def boolean(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            self._wrong(path, "boolean", value)
            return False
        return value

    def array(self, value: Any, path: str, min_items: int = 0, max_items: int | None = None) -> list:
        if not isinstance(value, list):
            self._wrong(path, "array", value)
            return []
        if len(value) < min_items or (max_items is not None and len(value) > max_items):
            self.fail(path, f"has {len(value)} items")
        return value

    def strings(self, value: Any, path: str, min_items: int = 0) -> tuple[str, ...]:
        return tuple(self.string(x, f"{path}[{i}]") for i, x in enumerate(self.array(value, path, min_items)))

    def json_object(self, value: Any, path: str) -> dict:
        """Opaque JSON (a describer's args, the environment): an object, copied."""
        if not isinstance(value, dict):
            self._wrong(path, "object", value)
            return {}
        return copy.deepcopy(value)

    def enum(self, value: Any, path: str, allowed: Sequence[str]) -> str:
        if value not in allowed:
            self.fail(path, f"{value!r} is not one of {list(allowed)}")
        return value if isinstance(value, str) else ""


def _opt(d: Mapping, key: str, read, *args, **kwargs):
    """`read(d[key], ...)` when `key` is there, else None (an optional field left out)."""
    return read(d[key], *args, **kwargs) if key in d else None


def _add(out: dict, key: str, value: Any) -> None:
    """Put an optional field in `out` only when it is set."""
    if value is not None:
        out[key] = value


# --------------------------------------------------------------------------- scores

@dataclass(frozen=True)
class Score:
    """One metric's number: its value, the 95% interval, the signature that says how it was computed;
    `trial_values` (a describer's scores over several trials) and `describer` (which floor is the best
    floor) only where the harness writes them."""

    value: float | None  # None only in `normalized`, where the ceiling does not clear the floor
    ci95: tuple[float | None, float | None]
    signature: str
    trial_values: tuple[float, ...] | None = None
    describer: str | None = None

    def to_dict(self) -> dict:
        out = {"value": self.value, "ci95": list(self.ci95), "signature": self.signature}
        _add(out, "trial_values", None if self.trial_values is None else list(self.trial_values))
        _add(out, "describer", self.describer)
        return out

    @classmethod
    def _read(cls, r: _Reader, value: Any, path: str, section: str) -> Score:
        floor, metrics = section == "floor", section == "metrics"
        d = r.obj(value, path, ("value", "ci95", "signature", *(("describer",) if floor else ())),
                  ("trial_values",) if metrics else ()) or {}
        value = r.number(d["value"], f"{path}.value", nullable=section == "normalized") if "value" in d else None
        ci = r.array(d["ci95"], f"{path}.ci95", 2, 2) if "ci95" in d else []
        trials = None
        if "trial_values" in d:
            trials = tuple(r.number(x, f"{path}.trial_values[{i}]")
                           for i, x in enumerate(r.array(d["trial_values"], f"{path}.trial_values")))
        return cls(value=value,
                   ci95=tuple(r.number(x, f"{path}.ci95[{i}]", nullable=True) for i, x in enumerate(ci)),
                   signature=r.string(d.get("signature", "?"), f"{path}.signature", nonempty=True),
                   trial_values=trials,
                   describer=_opt(d, "describer", r.enum, f"{path}.describer", FLOOR_DESCRIBERS))


@dataclass(frozen=True)
class Scores(Mapping[str, Score]):
    """One section's scores (a split's `metrics`, `ceiling`, a floor, ...): metric name -> `Score`, in
    the order written; only metrics of the metric table."""

    pairs: tuple[tuple[str, Score], ...] = ()
    _index: dict = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", dict(self.pairs))

    def __getitem__(self, metric: str) -> Score:
        return self._index[metric]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self.pairs)

    def __len__(self) -> int:
        return len(self.pairs)

    def value(self, metric: str) -> float | None:
        """The metric's value; None where the section has no such metric (or its value is null)."""
        s = self._index.get(metric)
        return None if s is None else s.value

    def ci95(self, metric: str) -> tuple[float | None, float | None] | None:
        s = self._index.get(metric)
        return None if s is None else s.ci95

    def to_dict(self) -> dict:
        return {name: s.to_dict() for name, s in self.pairs}

    @classmethod
    def from_dict(cls, value: Any, section: str = "metrics", source: str = RESULTS_FILE) -> Scores:
        """Scores from their JSON (the scorer's output, or a file's section); `section` says which
        optional parts a score may have (`metrics`: trial values; `floor`: the floor's name; `normalized`:
        null values)."""
        return _Reader.read(cls, value, source, section, section)

    @classmethod
    def _read(cls, r: _Reader, value: Any, path: str, section: str) -> Scores:
        if not isinstance(value, dict):
            r._wrong(path, "object", value)
            return cls()
        if not value:
            r.fail(path, "is empty")
        for name in value:
            if name not in METRIC_NAMES:
                r.fail(path, f"unknown metric {name!r}; known: {', '.join(METRIC_NAMES)}")
        return cls(tuple((name, Score._read(r, v, f"{path}.{name}", section)) for name, v in value.items()))


@dataclass(frozen=True)
class Floors:
    """The two floors every describer of a split is read against, each scored like the describer."""

    constant: Scores
    random_unit: Scores

    def items(self) -> tuple[tuple[str, Scores], ...]:
        """(floor describer name, its scores), in `FLOOR_DESCRIBERS` order."""
        return (("constant", self.constant), ("random-unit", self.random_unit))

    def __getitem__(self, name: str) -> Scores:
        return dict(self.items())[name]

    def to_dict(self) -> dict:
        return {name: s.to_dict() for name, s in self.items()}

    @classmethod
    def from_dict(cls, value: Any, source: str = RESULTS_FILE) -> Floors:
        return _Reader.read(cls, value, source, "floors")

    @classmethod
    def _read(cls, r: _Reader, value: Any, path: str) -> Floors:
        d = r.obj(value, path, FLOOR_DESCRIBERS) or {}
        return cls(*(Scores._read(r, d[f], f"{path}.{f}", "floors") if f in d else Scores()
                     for f in FLOOR_DESCRIBERS))


# --------------------------------------------------------------------------- a split

@dataclass(frozen=True)
class ParseReport:
    """How many of a synthetic split's descriptions (all trials) the truth parser read as a formula."""

    parser: str
    descriptions: int
    parsed: int
    unparsed_examples: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"parser": self.parser, "descriptions": self.descriptions, "parsed": self.parsed,
                "unparsed_examples": list(self.unparsed_examples)}

    @classmethod
    def from_dict(cls, value: Any, source: str = RESULTS_FILE) -> ParseReport:
        return _Reader.read(cls, value, source, "parse")

    @classmethod
    def _read(cls, r: _Reader, value: Any, path: str) -> ParseReport:
        d = r.obj(value, path, ("parser", "descriptions", "parsed", "unparsed_examples")) or {}
        return cls(r.string(d.get("parser", ""), f"{path}.parser"),
                   r.integer(d.get("descriptions", 0), f"{path}.descriptions"),
                   r.integer(d.get("parsed", 0), f"{path}.parsed"),
                   r.strings(d.get("unparsed_examples", []), f"{path}.unparsed_examples"))


@dataclass(frozen=True)
class ProbeRecord:
    """A folder benchmark split's probe set: its size and the activation quantile alpha, and how it was
    chosen (on validation units, or NeuronEval's fixed value)."""

    images: int
    alpha: float
    alpha_chosen: str
    same_as_exemplars: bool

    def to_dict(self) -> dict:
        return {"images": self.images, "alpha": self.alpha, "alpha_chosen": self.alpha_chosen,
                "same_as_exemplars": self.same_as_exemplars}

    @classmethod
    def _read(cls, r: _Reader, value: Any, path: str) -> ProbeRecord:
        d = r.obj(value, path, ("images", "alpha", "alpha_chosen", "same_as_exemplars")) or {}
        return cls(r.integer(d.get("images", 0), f"{path}.images", minimum=0),
                   r.number(d.get("alpha", 0.0), f"{path}.alpha"),
                   r.string(d.get("alpha_chosen", ""), f"{path}.alpha_chosen"),
                   r.boolean(d.get("same_as_exemplars", False), f"{path}.same_as_exemplars"))


@dataclass(frozen=True)
class SplitRecord:
    """One split of a run: its train and test configs, the describer's scores beside the floors, the best
    floor, the ceiling and the normalized scores; on synthetic splits the annotators scored by truth
    (`humans`) and the parser's coverage (`parse`); what the describer's fit decided (`fitted`, one
    record per trial); on a folder benchmark the probe set (`probe`)."""

    name: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    n_units: int
    held_out: bool
    metrics: Scores
    floors: Floors
    floor: Scores
    ceiling: Scores
    normalized: Scores
    train_split: str | None = None
    test_split: str | None = None
    revision: str | None = None
    humans: Scores | None = None
    parse: ParseReport | None = None
    fitted: tuple[dict, ...] | None = None
    probe: ProbeRecord | None = None

    def to_dict(self) -> dict:
        out: dict = {"name": self.name, "train": list(self.train), "test": list(self.test)}
        _add(out, "train_split", self.train_split)
        _add(out, "test_split", self.test_split)
        out.update(n_units=self.n_units, held_out=self.held_out)
        _add(out, "revision", self.revision)
        out.update(metrics=self.metrics.to_dict(), floors=self.floors.to_dict(), floor=self.floor.to_dict(),
                   ceiling=self.ceiling.to_dict(), normalized=self.normalized.to_dict())
        _add(out, "humans", None if self.humans is None else self.humans.to_dict())
        _add(out, "parse", None if self.parse is None else self.parse.to_dict())
        _add(out, "fitted", None if self.fitted is None else copy.deepcopy(list(self.fitted)))
        _add(out, "probe", None if self.probe is None else self.probe.to_dict())
        return out

    _REQUIRED = ("name", "train", "test", "n_units", "held_out", "metrics", "floors", "floor", "ceiling",
                 "normalized")
    _OPTIONAL = ("train_split", "test_split", "revision", "humans", "parse", "fitted", "probe")

    @classmethod
    def _read(cls, r: _Reader, value: Any, path: str) -> SplitRecord:
        d = r.obj(value, path, cls._REQUIRED, cls._OPTIONAL) or {}

        def scores(key: str) -> Scores:
            return Scores._read(r, d[key], f"{path}.{key}", key) if key in d else Scores()

        fitted = _opt(d, "fitted", lambda v: tuple(r.json_object(x, f"{path}.fitted[{i}]")
                                                   for i, x in enumerate(r.array(v, f"{path}.fitted"))))
        return cls(
            name=r.string(d.get("name", ""), f"{path}.name", nonempty=True),
            train=r.strings(d.get("train", []), f"{path}.train"),
            test=r.strings(d.get("test", []), f"{path}.test", min_items=1) if "test" in d else (),
            n_units=r.integer(d.get("n_units", 1), f"{path}.n_units", minimum=1),
            held_out=r.boolean(d.get("held_out", False), f"{path}.held_out"),
            metrics=scores("metrics"),
            floors=Floors._read(r, d["floors"], f"{path}.floors") if "floors" in d else Floors(Scores(), Scores()),
            floor=scores("floor"), ceiling=scores("ceiling"), normalized=scores("normalized"),
            train_split=_opt(d, "train_split", r.string, f"{path}.train_split"),
            test_split=_opt(d, "test_split", r.string, f"{path}.test_split"),
            revision=_opt(d, "revision", r.hex64, f"{path}.revision"),
            humans=_opt(d, "humans", lambda v: Scores._read(r, v, f"{path}.humans", "humans")),
            parse=_opt(d, "parse", lambda v: ParseReport._read(r, v, f"{path}.parse")),
            fitted=fitted,
            probe=_opt(d, "probe", lambda v: ProbeRecord._read(r, v, f"{path}.probe")),
        )

    def _check_sections(self, r: _Reader, where: str) -> None:
        """Every section names the describer's metrics, no more and no fewer."""
        names = set(self.metrics)
        for section in ("ceiling", "floor", "normalized"):
            have = set(getattr(self, section))
            if have != names:
                r.fail(f"{where}.{section}", f"metrics {sorted(have)} differ from {sorted(names)}")
        for f, scores in self.floors.items():
            if set(scores) != names:
                r.fail(f"{where}.floors.{f}", f"metrics differ from {sorted(names)}")


# --------------------------------------------------------------------------- the run

@dataclass(frozen=True)
class DescriberRecord:
    """Who described the units: the describer's meta, the arguments it was built with (opaque JSON),
    and whether it reads the answer (`oracle`: a reference row on the board, never ranked)."""

    name: str
    version: str
    trained_on: tuple[str, ...]
    args: Mapping[str, Any]
    citation: str
    reproducible: bool
    reference: str | None = None
    oracle: bool | None = None  # None: a file written before the field existed

    def to_dict(self) -> dict:
        out = {"name": self.name, "version": self.version, "trained_on": list(self.trained_on),
               "args": copy.deepcopy(dict(self.args)), "citation": self.citation}
        _add(out, "reference", self.reference)
        out["reproducible"] = self.reproducible
        _add(out, "oracle", self.oracle)
        return out

    @classmethod
    def of(cls, meta: Any, args: Mapping[str, Any] | None, name: str | None = None) -> DescriberRecord:
        """The record of a describer from its meta (`DescriberMeta`; anything without `to_dict` is named
        `name` and has the defaults) and the arguments it was built with, made JSON-safe (`repr` of what
        JSON cannot hold)."""
        d = meta.to_dict() if hasattr(meta, "to_dict") else {}
        return cls(name=name if name is not None else str(d["name"]), version=str(d.get("version", "0")),
                   trained_on=tuple(str(x) for x in d.get("trained_on", ())),
                   args=json.loads(json.dumps(dict(args or {}), default=repr)),
                   citation=str(d.get("citation", "")), reproducible=bool(d.get("reproducible", True)),
                   reference=str(d.get("reference", "")), oracle=bool(d.get("oracle", False)))

    @classmethod
    def _read(cls, r: _Reader, value: Any, path: str) -> DescriberRecord:
        d = r.obj(value, path, ("name", "version", "trained_on", "args", "citation", "reproducible"),
                  ("reference", "oracle")) or {}
        return cls(name=r.string(d.get("name", "?"), f"{path}.name", nonempty=True),
                   version=r.string(d.get("version", ""), f"{path}.version"),
                   trained_on=r.strings(d.get("trained_on", []), f"{path}.trained_on"),
                   args=r.json_object(d.get("args", {}), f"{path}.args"),
                   citation=r.string(d.get("citation", ""), f"{path}.citation"),
                   reproducible=r.boolean(d.get("reproducible", True), f"{path}.reproducible"),
                   reference=_opt(d, "reference", r.string, f"{path}.reference"),
                   oracle=_opt(d, "oracle", r.boolean, f"{path}.oracle"))


@dataclass(frozen=True)
class LabellerRecord:
    """The labeller faithfulness was scored through (`--labeller`), as validation rebuilds it, and the
    models it shares with the describer."""

    name: str
    args: Mapping[str, Any]
    model: str
    exact: bool
    same_model: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"name": self.name, "args": copy.deepcopy(dict(self.args)), "model": self.model,
                "exact": self.exact, "same_model": list(self.same_model)}

    @classmethod
    def from_dict(cls, value: Any, source: str = RESULTS_FILE) -> LabellerRecord:
        return _Reader.read(cls, value, source, "labeller")

    @classmethod
    def _read(cls, r: _Reader, value: Any, path: str) -> LabellerRecord:
        d = r.obj(value, path, ("name", "args", "model", "exact", "same_model")) or {}
        return cls(r.string(d.get("name", "?"), f"{path}.name", nonempty=True),
                   r.json_object(d.get("args", {}), f"{path}.args"),
                   r.string(d.get("model", ""), f"{path}.model"),
                   r.boolean(d.get("exact", False), f"{path}.exact"),
                   r.strings(d.get("same_model", []), f"{path}.same_model"))


@dataclass(frozen=True)
class Timing:
    """Seconds spent per phase (rounded to ms); `load_s` is absent from files written before it."""

    fit_s: float
    describe_s: float
    score_s: float
    total_s: float
    load_s: float | None = None

    def to_dict(self) -> dict:
        out: dict = {}
        _add(out, "load_s", self.load_s)
        out.update(fit_s=self.fit_s, describe_s=self.describe_s, score_s=self.score_s, total_s=self.total_s)
        return out

    @classmethod
    def of(cls, seconds: Mapping[str, float]) -> Timing:
        """From the harness's running totals, rounded to milliseconds as results.json has them."""
        rounded = {k: round(v, 3) for k, v in seconds.items()}
        return cls(**rounded)

    @classmethod
    def _read(cls, r: _Reader, value: Any, path: str) -> Timing:
        d = r.obj(value, path, ("fit_s", "describe_s", "score_s", "total_s"), ("load_s",)) or {}
        return cls(*(r.number(d.get(k, 0.0), f"{path}.{k}") for k in ("fit_s", "describe_s", "score_s", "total_s")),
                   load_s=_opt(d, "load_s", r.number, f"{path}.load_s"))


@dataclass(frozen=True)
class ResultsRecord:
    """A run's results.json: what was run (benchmark, data revision, protocol, scorer, seed, trials,
    limit), by whom (`describer`), through what (`labeller`, when faithfulness was scored), every
    split's numbers, the machine (`environment`, opaque JSON with at least `ENVIRONMENT_KEYS`), the
    time it took and when. A folder benchmark (`benchmark="folder"`) also names its folder
    (`benchmark_path`)."""

    benchmark: str
    revision: str
    protocol: str
    scorer: str
    seed: int
    trials: int
    limit: int | None
    describer: DescriberRecord
    splits: tuple[SplitRecord, ...]
    environment: Mapping[str, Any]
    timing: Timing
    date: str
    batch_size: int | None = None
    labeller: LabellerRecord | None = None
    benchmark_path: str | None = None

    def to_dict(self) -> dict:
        out: dict = {"benchmark": self.benchmark}
        _add(out, "benchmark_path", self.benchmark_path)
        out.update(revision=self.revision, protocol=self.protocol, scorer=self.scorer, seed=self.seed,
                   trials=self.trials, limit=self.limit)
        _add(out, "batch_size", self.batch_size)
        out["describer"] = self.describer.to_dict()
        labeller = None if self.labeller is None else self.labeller.to_dict()
        # a folder run has always written its labeller before the splits, a harness run after them
        if self.benchmark == "folder":
            _add(out, "labeller", labeller)
        out["splits"] = [s.to_dict() for s in self.splits]
        if self.benchmark != "folder":
            _add(out, "labeller", labeller)
        out.update(environment=copy.deepcopy(dict(self.environment)), timing=self.timing.to_dict(), date=self.date)
        return out

    def to_json(self) -> str:
        """The text of results.json: `to_dict()` as the harness has always serialised it."""
        return json.dumps(self.to_dict(), indent=1, ensure_ascii=False) + "\n"

    @property
    def oracle(self) -> bool:
        """Whether the describer saw the world's true masks (an oracle segmenter): an upper bound, shown as a
        reference row, never ranked. `describer.oracle` says so; files written before that field
        existed fall back to the run's arguments (`segmenter=oracle`)."""
        if self.describer.oracle is not None:
            return self.describer.oracle
        return str(self.describer.args.get("segmenter", "")) == "oracle"

    _REQUIRED = ("benchmark", "revision", "protocol", "scorer", "seed", "trials", "limit", "describer", "splits",
                 "environment", "timing", "date")
    _OPTIONAL = ("benchmark_path", "batch_size", "labeller")

    @classmethod
    def from_dict(cls, doc: Any, source: str = RESULTS_FILE) -> ResultsRecord:
        """The record of a results document; a `RecordError` (a `MilanError`) naming `source` and the field
        path of every problem when it is not one."""
        return _Reader.read(cls, doc, source, "results")

    @classmethod
    def _read(cls, r: _Reader, doc: Any, path: str) -> ResultsRecord:
        d = r.obj(doc, path, cls._REQUIRED, cls._OPTIONAL)
        if d is None:
            return None  # type: ignore[return-value]  # the reader holds the error
        # read in the file's order, so the problems are listed in it
        benchmark = r.enum(d["benchmark"], f"{path}.benchmark", BENCHMARKS) if "benchmark" in d else ""
        benchmark_path = _opt(d, "benchmark_path", r.string, f"{path}.benchmark_path", nonempty=True)
        if "benchmark" in d and (benchmark == "folder") != (benchmark_path is not None or "benchmark_path" in d):
            r.fail(path, "benchmark_path goes with benchmark 'folder', and only with it")
        revision = r.hex64(d["revision"], f"{path}.revision") if "revision" in d else ""
        protocol = r.string(d.get("protocol", ""), f"{path}.protocol", nonempty="protocol" in d)
        scorer = r.string(d.get("scorer", ""), f"{path}.scorer", nonempty="scorer" in d)
        seed = r.integer(d.get("seed", 0), f"{path}.seed")
        trials = r.integer(d.get("trials", 1), f"{path}.trials", minimum=1)
        limit = r.integer(d.get("limit"), f"{path}.limit", nullable=True)
        batch_size = _opt(d, "batch_size", r.integer, f"{path}.batch_size", minimum=1)
        describer = DescriberRecord._read(r, d.get("describer", {}), f"{path}.describer")
        labeller = _opt(d, "labeller", lambda v: LabellerRecord._read(r, v, f"{path}.labeller"))
        splits = tuple(SplitRecord._read(r, s, f"{path}.splits[{i}]")
                       for i, s in enumerate(r.array(d.get("splits", []), f"{path}.splits", min_items=1)))
        environment = r.json_object(d.get("environment", {}), f"{path}.environment")
        if isinstance(d.get("environment"), dict):
            for key in ENVIRONMENT_KEYS:
                if key not in environment:
                    r.fail(f"{path}.environment", f"missing {key!r}")
        timing = Timing._read(r, d.get("timing", {}), f"{path}.timing")
        date = r.string(d.get("date", ""), f"{path}.date")
        if isinstance(d.get("date"), str) and len(date) < 10:
            r.fail(f"{path}.date", f"expected an ISO 8601 date, got {date!r}")
        record = cls(benchmark=benchmark, revision=revision, protocol=protocol, scorer=scorer, seed=seed,
                     trials=trials, limit=limit, describer=describer, splits=splits, environment=environment,
                     timing=timing, date=date, batch_size=batch_size, labeller=labeller,
                     benchmark_path=benchmark_path)
        if not r.errors:  # the checks across fields, on a record whose fields all read
            for i, s in enumerate(record.splits):
                s._check_sections(r, f"{path}.splits[{i}] ({s.name})")
            names = [s.name for s in record.splits]
            if len(set(names)) != len(names):
                r.fail(f"{path}.splits", "split names repeat")
        return record


def results_errors(doc: Any) -> list[str]:
    """Every way `doc` departs from the results record (empty when it is one)."""
    try:
        ResultsRecord.from_dict(doc)
    except RecordError as e:
        return e.errors
    return []


__all__ = ["BENCHMARKS", "DescriberRecord", "ENVIRONMENT_KEYS", "FLOOR_DESCRIBERS", "Floors", "LabellerRecord",
           "ParseReport", "ProbeRecord", "RESULTS_FILE", "RecordError", "ResultsRecord", "Score",
           "Scores", "SplitRecord", "Timing", "results_errors"]
