"""The results files of a run: `results.json` and `descriptions.csv`, written atomically and checked.

`results.json` carries every number with its interval and metric signature,
the floors and the human ceiling beside it, the data revision, the describer
meta and the environment; `descriptions.csv` holds every description the
numbers were computed from. `validate_results` checks a results document
against `RESULTS_SCHEMA` (a subset of JSON Schema, checked here without a
dependency); the leaderboard reuses it for submissions.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from milannotations.errors import MilanError
from milannotations.fsutil import atomic_write_text, staging_dir

DESCRIPTION_COLUMNS = ("unit_id", "layer", "unit", "description", "split", "trial")
RESULTS_FILE = "results.json"
DESCRIPTIONS_FILE = "descriptions.csv"
FLOOR_DESCRIBERS = ("constant", "random-unit")


def metric_names() -> tuple[str, ...]:
    from .metrics import METRIC_NAMES

    return tuple(METRIC_NAMES)


# --------------------------------------------------------------------------- schema

_NUM = {"type": "number"}
_CI = {"type": "array", "items": {"type": ["number", "null"]}, "minItems": 2, "maxItems": 2}
_SCORE = {"type": "object", "required": ["value", "ci95", "signature"],
          "properties": {"value": _NUM, "ci95": _CI, "signature": {"type": "string", "minLength": 1}}}
_NORMALIZED_SCORE = {**_SCORE, "properties": {**_SCORE["properties"], "value": {"type": ["number", "null"]}}}
_FLOOR_SCORE = {**_SCORE, "required": _SCORE["required"] + ["describer"],
                "properties": {**_SCORE["properties"], "describer": {"enum": list(FLOOR_DESCRIBERS)}}}


def _metric_map(score_schema: dict) -> dict:
    return {"type": "object", "metrics": True, "additionalProperties": score_schema, "minProperties": 1}


_SPLIT = {
    "type": "object",
    "required": ["name", "train", "test", "n_units", "held_out", "metrics", "floors", "floor", "ceiling",
                 "normalized"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "train": {"type": "array", "items": {"type": "string"}},
        "test": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "n_units": {"type": "integer", "minimum": 1},
        "held_out": {"type": "boolean"},
        "metrics": _metric_map(_SCORE),
        "floors": {"type": "object", "required": list(FLOOR_DESCRIBERS),
                   "properties": {f: _metric_map(_SCORE) for f in FLOOR_DESCRIBERS}},
        "floor": _metric_map(_FLOOR_SCORE),
        "ceiling": _metric_map(_SCORE),
        "normalized": _metric_map(_NORMALIZED_SCORE),
        # synthetic splits: the annotators' descriptions scored by truth, and the parser's coverage
        "humans": _metric_map(_SCORE),
        "parse": {"type": "object", "required": ["parser", "descriptions", "parsed", "unparsed_examples"],
                  "properties": {"parser": {"type": "string"}, "descriptions": {"type": "integer"},
                                 "parsed": {"type": "integer"},
                                 "unparsed_examples": {"type": "array", "items": {"type": "string"}}}},
    },
}

RESULTS_SCHEMA: dict = {
    "type": "object",
    "required": ["benchmark", "revision", "protocol", "scorer", "seed", "trials", "limit", "describer",
                 "splits", "environment", "timing", "date"],
    "properties": {
        "benchmark": {"enum": ["synth", "milannotations", "folder"]},
        "revision": {"type": "string", "pattern_hex": 64},
        "protocol": {"type": "string", "minLength": 1},
        "scorer": {"type": "string", "minLength": 1},
        "seed": {"type": "integer"},
        "trials": {"type": "integer", "minimum": 1},
        "limit": {"type": ["integer", "null"]},
        "describer": {"type": "object", "required": ["name", "version", "trained_on", "args", "citation",
                                                     "reproducible"],
                      "properties": {"name": {"type": "string", "minLength": 1}, "version": {"type": "string"},
                                     "trained_on": {"type": "array", "items": {"type": "string"}},
                                     "args": {"type": "object"}, "citation": {"type": "string"},
                                     "reproducible": {"type": "boolean"}, "oracle": {"type": "boolean"}}},
        "splits": {"type": "array", "items": _SPLIT, "minItems": 1},
        "environment": {"type": "object", "required": ["python", "torch", "milannotations", "bert_score",
                                                       "sacrebleu", "git", "device"]},
        "timing": {"type": "object", "required": ["fit_s", "describe_s", "score_s", "total_s"],
                   "additionalProperties": _NUM},
        "date": {"type": "string", "minLength": 10},
    },
}

_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def _is_type(value: Any, name: str) -> bool:
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return isinstance(value, _TYPES[name])


def _check(value: Any, schema: dict, path: str, errors: list[str], known_metrics: tuple[str, ...]) -> None:
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else types
        if not any(_is_type(value, t) for t in names):
            errors.append(f"{path}: expected {' or '.join(names)}, got {type(value).__name__} {value!r:.60}")
            return
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            errors.append(f"{path}: must not be empty")
        if "pattern_hex" in schema and (len(value) != schema["pattern_hex"]
                                        or any(c not in "0123456789abcdef" for c in value)):
            errors.append(f"{path}: expected {schema['pattern_hex']} lowercase hex digits")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and "minimum" in schema:
        if value < schema["minimum"]:
            errors.append(f"{path}: {value} is below {schema['minimum']}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", math.inf):
            errors.append(f"{path}: has {len(value)} items")
        if "items" in schema:
            for i, item in enumerate(value):
                _check(item, schema["items"], f"{path}[{i}]", errors, known_metrics)
    if isinstance(value, dict):
        for key in schema.get("required", ()):
            if key not in value:
                errors.append(f"{path}: missing {key!r}")
        if len(value) < schema.get("minProperties", 0):
            errors.append(f"{path}: is empty")
        props = schema.get("properties", {})
        for key, item in value.items():
            if schema.get("metrics") and key not in known_metrics:
                errors.append(f"{path}: unknown metric {key!r}; known: {', '.join(known_metrics)}")
            if key in props:
                _check(item, props[key], f"{path}.{key}", errors, known_metrics)
            elif "additionalProperties" in schema:
                _check(item, schema["additionalProperties"], f"{path}.{key}", errors, known_metrics)


def results_errors(doc: Any) -> list[str]:
    """Every way `doc` departs from the results format (empty when valid)."""
    errors: list[str] = []
    known = metric_names()
    _check(doc, RESULTS_SCHEMA, "results", errors, known)
    if errors:
        return errors
    for i, split in enumerate(doc["splits"]):
        where = f"results.splits[{i}] ({split['name']})"
        names = set(split["metrics"])
        for section in ("ceiling", "floor", "normalized"):
            if set(split[section]) != names:
                errors.append(f"{where}.{section}: metrics {sorted(split[section])} differ from {sorted(names)}")
        for f in FLOOR_DESCRIBERS:
            if set(split["floors"][f]) != names:
                errors.append(f"{where}.floors.{f}: metrics differ from {sorted(names)}")
    seen = [s["name"] for s in doc["splits"]]
    if len(set(seen)) != len(seen):
        errors.append("results.splits: split names repeat")
    return errors


def validate_results(doc: Any, source: str = RESULTS_FILE) -> None:
    """Raise `MilanError` naming the first problems when `doc` is not a valid results document."""
    errors = results_errors(doc)
    if errors:
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        raise MilanError(f"{source} is not a valid results file: {'; '.join(errors[:3])}{more}")


# --------------------------------------------------------------------------- descriptions.csv

def descriptions_csv(rows: Iterable[Mapping[str, Any]]) -> str:
    """The CSV text of description rows (columns `DESCRIPTION_COLUMNS`)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=DESCRIPTION_COLUMNS, lineterminator="\n", extrasaction="raise")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row[k] for k in DESCRIPTION_COLUMNS})
    return buf.getvalue()


#: Longest description accepted (characters); Python's csv module refuses fields above its own limit.
MAX_DESCRIPTION = 1 << 20


def read_descriptions(path: str | Path) -> list[dict]:
    """Rows of a descriptions.csv, with `unit` and `trial` as ints; refuses a wrong header.

    Every way a file can be unreadable is one MilanError naming the file (and the line where there is
    one): bytes that are not UTF-8, a byte-order mark (written by some spreadsheet tools; the format is
    plain UTF-8), fields longer than `MAX_DESCRIPTION`, malformed CSV.
    """
    path = Path(path)
    if not path.is_file():
        raise MilanError(f"{path} does not exist")
    raw = path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        raise MilanError(f"{path}: starts with a UTF-8 byte-order mark; save it as plain UTF-8 without BOM")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise MilanError(f"{path}:{line}: not UTF-8 (byte {raw[e.start]:#04x} at offset {e.start})") from None
    old = csv.field_size_limit()
    csv.field_size_limit(2**31 - 1)  # our own limit below names the line; csv's would not
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        header = tuple(reader.fieldnames or ())
        if header[:4] != DESCRIPTION_COLUMNS[:4]:
            raise MilanError(f"{path}: header must start with {','.join(DESCRIPTION_COLUMNS[:4])}, "
                             f"got {','.join(header)}")
        rows = []
        for line, row in enumerate(reader, start=2):
            if len(row.get("description") or "") > MAX_DESCRIPTION:
                raise MilanError(f"{path}:{line}: description longer than {MAX_DESCRIPTION} characters")
            try:
                row["unit"] = int(row["unit"])
                row["trial"] = int(row.get("trial") or 0)
            except (TypeError, ValueError) as e:
                raise MilanError(f"{path}:{line}: unit and trial must be integers ({e})") from None
            row.setdefault("split", "")
            rows.append(row)
    except csv.Error as e:
        where = f":{reader.line_num}" if reader.line_num else ""
        raise MilanError(f"{path}{where}: not a readable CSV file ({e})") from None
    finally:
        csv.field_size_limit(old)
    return rows


# --------------------------------------------------------------------------- files

def write_run(output: str | Path, results: Mapping, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write results.json and descriptions.csv into `output`, both or neither.

    The files are written in a staging folder beside `output` and moved in
    only once both are complete and the results validate.
    """
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise MilanError(f"--output {output} exists and is not a folder")
    validate_results(results)
    with staging_dir(output.parent, prefix=f".staging-{output.name}-") as stage:
        (stage / RESULTS_FILE).write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n",
                                          encoding="utf-8")
        (stage / DESCRIPTIONS_FILE).write_text(descriptions_csv(rows), encoding="utf-8")
        output.mkdir(parents=True, exist_ok=True)
        # descriptions first: a results.json is never beside stale descriptions of another run
        os.replace(stage / DESCRIPTIONS_FILE, output / DESCRIPTIONS_FILE)
        os.replace(stage / RESULTS_FILE, output / RESULTS_FILE)
    return output


def write_descriptions(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write one descriptions.csv atomically (milan-describe)."""
    path = Path(path)
    atomic_write_text(path, descriptions_csv(rows))
    return path


def read_results(folder: str | Path) -> dict:
    """results.json of a run folder (or the file itself), validated."""
    path = Path(folder)
    if path.is_dir():
        path = path / RESULTS_FILE
    if not path.is_file():
        raise MilanError(f"{path} does not exist")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise MilanError(f"{path} is not JSON: {e}") from e
    validate_results(doc, str(path))
    return doc
