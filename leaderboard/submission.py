"""A submission: one describer's results on one benchmark and protocol, as a folder.

    leaderboard/submissions/<describer>/<benchmark>-<protocol>/
        results.json       as `milan-eval` writes it
        descriptions.csv   as `milan-eval` writes it: every number is recomputed from it
        meta.json          who made the describer and where to read about it

Submitters never type a number: `milan-eval ... --submit` (or
`write_submission`) copies the harness's own files, and
`milan-leaderboard validate` recomputes every score from
`descriptions.csv` before a submission is accepted.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from eval import ResultsRecord
from milannotations.errors import MilanError
from milannotations.fsutil import replace_path, staging_dir

#: Where submissions live in the repository (the leaderboard is rebuilt from this folder).
SUBMISSIONS_ROOT = Path(__file__).resolve().parent / "submissions"
RESULTS = "results.json"
DESCRIPTIONS = "descriptions.csv"
META = "meta.json"
FILES = (RESULTS, DESCRIPTIONS, META)
#: The validation record `milan-leaderboard validate` writes beside the submissions folder.
RECORD = "validated.json"
ORACLE_NOTE = "oracle segmenter: upper bound"
#: meta.json keys and their JSON types.
META_FIELDS: dict[str, type | tuple[type, ...]] = {
    "name": str, "version": str, "authors": list, "link": str, "trained_on": list,
}

_SLUG = re.compile(r"[^A-Za-z0-9._+-]+")


def slug(name: str) -> str:
    """A describer or protocol name as one safe folder name (no separators, no dot-only names)."""
    s = _SLUG.sub("_", str(name)).strip("._")
    if not s:
        raise MilanError(f"cannot make a folder name out of {name!r}")
    return s


#: Describer arguments that cannot change a description, so they do not make a variant.
_NOT_VARIANT = frozenset({"device", "progress"})


def args_variant(args: Mapping[str, Any]) -> str:
    """The describer arguments that make a run a variant of its describer ("strategy=greedy"), sorted;
    "" for the defaults. Two runs of one describer with other arguments are two board entries."""
    return ", ".join(f"{k}={args[k]}" for k in sorted(args) if k not in _NOT_VARIANT)


def variant(results: ResultsRecord) -> str:
    """The variant of a run (`args_variant` of its describer's arguments)."""
    return args_variant(results.describer.args)


def submission_dir(describer: str, benchmark: str, protocol: str, root: str | Path | None = None,
                   variant: str = "") -> Path:
    """`<root>/<describer>[+<variant>]/<benchmark>-<protocol>`, every part sanitised."""
    base = Path(root) if root is not None else SUBMISSIONS_ROOT
    name = describer + ("+" + variant.replace(", ", "+").replace("=", "-") if variant else "")
    return base / slug(name) / f"{slug(benchmark)}-{slug(protocol)}"


@dataclass(frozen=True)
class Submission:
    """A submission folder read from disk: its results record (read, so well-formed; its numbers not yet
    recomputed) and its meta.json (JSON syntax only; validation checks its fields)."""

    path: Path
    results: ResultsRecord
    meta: dict

    @property
    def name(self) -> str:
        """How messages name it: `<describer>/<benchmark>-<protocol>`."""
        return f"{self.path.parent.name}/{self.path.name}"

    @property
    def describer(self) -> str:
        return str(self.meta.get("name") or self.results.describer.name)

    @property
    def label(self) -> str:
        """How the board names it: the describer, and its arguments when they are not the defaults."""
        v = variant(self.results)
        return f"{self.describer} ({v})" if v else self.describer

    @property
    def oracle(self) -> bool:
        """Whether the describer saw the world's true masks: an upper bound (`ResultsRecord.oracle`)."""
        return self.results.oracle

    @property
    def note(self) -> str:
        """A caveat readers must see beside the name (an oracle segmenter is an upper bound, not a method)."""
        return ORACLE_NOTE if self.oracle else ""

    @property
    def descriptions_path(self) -> Path:
        return self.path / DESCRIPTIONS


def _read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MilanError(f"{path}: missing {what}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise MilanError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise MilanError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def load_submission(path: str | Path) -> Submission:
    """Read a submission folder; a missing file or bad JSON is a MilanError naming the file, a results.json
    that is not a results record an `eval.RecordError` naming the file and every field at fault."""
    p = Path(path)
    if not p.is_dir():
        raise MilanError(f"submission {p} is not a folder")
    missing = [f for f in FILES if not (p / f).is_file()]
    if missing:
        raise MilanError(f"{p}: missing {', '.join(missing)}")
    results = ResultsRecord.from_dict(_read_json(p / RESULTS, RESULTS), str(p / RESULTS))
    return Submission(p, results, _read_json(p / META, META))


def find_submissions(root: str | Path | None = None) -> list[Path]:
    """Every `<describer>/<benchmark>-<protocol>` folder under `root`, sorted.

    A folder counts when it holds any of the submission files, so a half-made
    submission is found (and refused by validation) instead of being skipped.
    """
    base = Path(root) if root is not None else SUBMISSIONS_ROOT
    if not base.is_dir():
        return []
    found = {f.parent for name in FILES for f in base.glob(f"*/*/{name}")}
    return sorted(p for p in found if not p.name.startswith(".") and not p.parent.name.startswith("."))


def _url_or_empty(text: Any) -> str:
    """A describer's `reference` is a link only when it is one (built-ins put prose there)."""
    t = str(text or "").strip()
    return t if re.match(r"^https?://\S+$", t) else ""


def make_meta(results: ResultsRecord, *, authors: Sequence[str] = (), link: str | None = None) -> dict:
    """meta.json from the results' describer record plus what only the submitter knows.

    `name`, `version` and `trained_on` are the describer's own (validation refuses any other)."""
    d = results.describer
    return {
        "name": d.name,
        "version": d.version,
        "authors": [str(a) for a in authors],
        "link": str(link if link is not None else _url_or_empty(d.reference)),
        "citation": d.citation,
        "trained_on": list(d.trained_on),
        "submitted": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
    }


def write_submission(source: str | Path | Mapping[str, Any], *, descriptions: str | Path | None = None,
                     authors: Sequence[str] = (), link: str | None = None, root: str | Path | None = None,
                     overwrite: bool = True) -> Path:
    """Copy a milan-eval output into `<root>/<describer>/<benchmark>-<protocol>/`, atomically.

    `source` is either an output folder holding `results.json` and
    `descriptions.csv`, or the results dict itself, in which case
    `descriptions` names the CSV the harness wrote beside it. Either must be a
    results record (`eval.ResultsRecord`). The copy is byte-for-byte (results
    are re-serialised only when given as a dict), so validation sees exactly
    what the harness produced.
    """
    if isinstance(source, Mapping):
        if descriptions is None:
            raise MilanError("write_submission: give descriptions= (the descriptions.csv of this run) "
                             "when passing a results dict")
        results = ResultsRecord.from_dict(dict(source), "results")
        results_text = json.dumps(results.to_dict(), indent=2, sort_keys=False) + "\n"
        csv_path = Path(descriptions)
    else:
        folder = Path(source)
        results = ResultsRecord.from_dict(_read_json(folder / RESULTS, RESULTS), str(folder / RESULTS))
        results_text = (folder / RESULTS).read_text(encoding="utf-8")
        csv_path = Path(descriptions) if descriptions is not None else folder / DESCRIPTIONS
    if not csv_path.is_file():
        raise MilanError(f"{csv_path}: missing {DESCRIPTIONS}; run milan-eval with --output first")
    dest = submission_dir(results.describer.name, results.benchmark, results.protocol, root, variant(results))
    if dest.exists() and not overwrite:
        raise MilanError(f"submission {dest} already exists; pass overwrite=True to replace it")
    meta = make_meta(results, authors=authors, link=link)
    with staging_dir(dest.parent) as tmp:
        (tmp / RESULTS).write_text(results_text, encoding="utf-8")
        shutil.copyfile(csv_path, tmp / DESCRIPTIONS)
        (tmp / META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        replace_path(tmp, dest)  # the staging folder becomes the submission in one rename
    return dest


def submit(output_dir: str | Path, results: Mapping[str, Any], *, root: str | Path | None = None,
           authors: Sequence[str] = (), link: str | None = None) -> Path:
    """Submit a run from its results dict and the `output_dir` holding its descriptions.csv; returns the
    submission folder. results.json is re-serialised from `results` (`milan-eval --submit` instead copies
    the output folder byte for byte with `write_submission(output_dir)`)."""
    return write_submission(results, descriptions=Path(output_dir) / DESCRIPTIONS, root=root,
                            authors=authors, link=link)


# --------------------------------------------------------------------------- validation record

def file_hashes(path: str | Path) -> dict[str, str]:
    """sha256 of each submission file present in folder `path` (missing files are left out)."""
    out = {}
    for name in FILES:
        f = Path(path) / name
        if f.is_file():
            out[name] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def record_path(root: str | Path | None = None) -> Path:
    """Where the validation record of the submissions under `root` lives: beside that folder
    (`leaderboard/validated.json` for the repository's `leaderboard/submissions`)."""
    base = Path(root) if root is not None else SUBMISSIONS_ROOT
    return base.resolve().parent / RECORD


def record_path_of(submission: str | Path) -> Path:
    """The record a submission folder `<root>/<describer>/<benchmark>-<protocol>` is validated into."""
    return record_path(Path(submission).resolve().parent.parent)


def record_key(submission: str | Path, record: str | Path) -> str:
    """A submission's key in `record`: its folder relative to the record's folder (posix), so the record
    stays true when the checkout moves; an absolute path when the folder lies elsewhere."""
    p, base = Path(submission).resolve(), Path(record).resolve().parent
    try:
        return p.relative_to(base).as_posix()
    except ValueError:
        return p.as_posix()


def read_record(record: str | Path) -> dict[str, dict]:
    """The entries of a validation record ({} when there is none); a damaged record is a MilanError."""
    path = Path(record)
    if not path.is_file():
        return {}
    doc = _read_json(path, RECORD)
    entries = doc.get("submissions")
    if doc.get("format") != 1 or not isinstance(entries, dict):
        raise MilanError(f"{path}: not a validation record (expected format 1 with a 'submissions' object)")
    return {str(k): v for k, v in entries.items() if isinstance(v, dict)}


def write_record(record: str | Path, entries: Mapping[str, dict]) -> Path:
    """Merge `entries` (key -> entry) into the record at `record`, atomically; other entries are kept."""
    from milannotations.fsutil import atomic_write_text

    path = Path(record)
    try:
        merged = read_record(path)
    except MilanError:
        merged = {}  # a damaged record is replaced: it validated nothing
    merged.update(entries)
    doc = {"format": 1,
           "about": "written by `milan-leaderboard validate`/`rescore`: the sha256 of each submission's files "
                    "when every number was recomputed, and the outcome; `render` publishes a submission only "
                    "when its files still have these hashes and the outcome is valid",
           "submissions": dict(sorted(merged.items()))}
    atomic_write_text(path, json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    return path


def record_entry(*, valid: bool, hashes: Mapping[str, str], mode: str, summary: str = "",
                 errors: Iterable[str] = ()) -> dict:
    """One submission's line of the record."""
    return {"outcome": "valid" if valid else "refused", "mode": mode, "recomputed": True,
            "files": dict(hashes), "summary": summary, "errors": list(errors)[:5],
            "date": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()}


def record_status(submission: str | Path, entries: Mapping[str, dict], record: str | Path) -> str | None:
    """None when `submission` has a valid record entry whose hashes are its files' hashes now; otherwise
    why it must not be published."""
    entry = entries.get(record_key(submission, record))
    if entry is None:
        return "not validated (no entry in the validation record)"
    if entry.get("outcome") != "valid" or entry.get("recomputed") is not True:
        errs = "; ".join(str(e) for e in entry.get("errors") or [])
        return "refused by validation" + (f" ({errs})" if errs else "")
    now = file_hashes(submission)
    changed = [f for f in FILES if now.get(f) != (entry.get("files") or {}).get(f)]
    if changed:
        return f"changed since validation ({', '.join(changed)})"
    return None
