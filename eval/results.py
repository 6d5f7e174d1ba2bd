"""The results files of a run: `results.json` and `descriptions.csv`, written atomically and checked.

`results.json` is a `ResultsRecord` (eval/records.py: every number with its interval and metric
signature, the floors and the human ceiling beside it, the data revision, the describer meta and the
environment), written as `record.to_dict()` and read back with `ResultsRecord.from_dict`, the one
check of the format; `descriptions.csv` holds every description the numbers were computed from.
"""
from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from milannotations.errors import MilanError
from milannotations.fsutil import atomic_write_text, staging_dir

from .records import FLOOR_DESCRIBERS, RESULTS_FILE, ResultsRecord, results_errors

DESCRIPTION_COLUMNS = ("unit_id", "layer", "unit", "description", "split", "trial")
DESCRIPTIONS_FILE = "descriptions.csv"
__all__ = ["DESCRIPTIONS_FILE", "DESCRIPTION_COLUMNS", "FLOOR_DESCRIBERS", "MAX_DESCRIPTION", "RESULTS_FILE",
           "descriptions_csv", "metric_names", "read_descriptions", "read_results", "results_errors",
           "validate_results", "write_descriptions", "write_run"]


def metric_names() -> tuple[str, ...]:
    """The metric names a results record accepts: the metric table's (eval.metrics.spec)."""
    from .metrics import METRIC_NAMES

    return tuple(METRIC_NAMES)


def validate_results(doc: Any, source: str = RESULTS_FILE) -> ResultsRecord:
    """The record of `doc`; a `MilanError` naming `source` and the first problems when it is not one."""
    return ResultsRecord.from_dict(doc, source)


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

def write_run(output: str | Path, record: ResultsRecord, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write results.json and descriptions.csv into `output`, both or neither.

    The record is checked as a reader will check it (`ResultsRecord.from_dict` on its JSON), so nothing
    is written that would not read back; the files are written in a staging folder beside `output`
    and moved in only once both are complete.
    """
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise MilanError(f"--output {output} exists and is not a folder")
    ResultsRecord.from_dict(record.to_dict(), RESULTS_FILE)
    with staging_dir(output.parent, prefix=f".staging-{output.name}-") as stage:
        (stage / RESULTS_FILE).write_text(record.to_json(), encoding="utf-8")
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


def read_results(folder: str | Path) -> ResultsRecord:
    """The record of a run folder's results.json (or of the file itself)."""
    path = Path(folder)
    if path.is_dir():
        path = path / RESULTS_FILE
    if not path.is_file():
        raise MilanError(f"{path} does not exist")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise MilanError(f"{path} is not JSON: {e}") from e
    return ResultsRecord.from_dict(doc, str(path))
