"""`milan-leaderboard`: submit runs, validate submissions (recomputing every score) and render the page.

    milan-leaderboard submit RUN_DIR [--submissions DIR] [--overwrite]   # a milan-eval --output folder
    milan-leaderboard validate [PATH ...]      # default: every submission; exit 1 if any is refused
    milan-leaderboard rescore [PATH ...]       # rewrite their numbers from descriptions.csv (metric changes)
    milan-leaderboard render [--submissions DIR] [--output DIR]

`validate` and `rescore` write what they found into the validation record
(`validated.json` beside the submissions folder: each submission's file hashes
and outcome); `render` publishes only submissions whose files still match a
valid entry there, and names the others.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from milannotations.cli import OneLineParser, add_common_flags, run
from milannotations.errors import MilanError


def submissions_dir(given: str | None) -> Path:
    """Where `submit` writes: `--submissions`, else `leaderboard/submissions` under the current folder (a
    leaderboard checkout); never the installed package's own folder."""
    if given is not None:
        return Path(given)
    here = Path.cwd() / "leaderboard" / "submissions"
    if not here.is_dir():
        raise MilanError(f"no leaderboard/submissions under {Path.cwd()}; run from your leaderboard checkout "
                         "or pass --submissions DIR")
    return here


def _submit(args: argparse.Namespace) -> int:
    """Copy a milan-eval output folder into the submissions, byte for byte. An existing submission is
    refused unless --overwrite, which keeps its authors and link unless new ones are given."""
    from eval import ResultsRecord
    from milannotations.fsutil import check_output_dir

    from .submission import META, RESULTS, submission_dir, variant, write_submission

    run_dir = Path(args.run_dir)
    if not (run_dir / RESULTS).is_file():
        raise MilanError(f"{run_dir}: no {RESULTS}; give the folder `milan-eval --output DIR` wrote")
    subs = check_output_dir(submissions_dir(args.submissions), "--submissions")
    authors, link = args.author, args.link
    try:
        results = ResultsRecord.from_dict(json.loads((run_dir / RESULTS).read_text(encoding="utf-8")))
        dest = submission_dir(results.describer.name, results.benchmark, results.protocol, subs, variant(results))
    except (ValueError, MilanError):
        dest = None  # write_submission names what is wrong with the results
    if dest is not None and dest.exists():
        if not args.overwrite:
            raise MilanError(f"submission {dest} already exists; pass --overwrite to replace it")
        try:
            old = json.loads((dest / META).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = {}
        if authors is None and isinstance(old.get("authors"), list):
            authors = old["authors"]
        if link is None and isinstance(old.get("link"), str) and old["link"]:
            link = old["link"]
    dest = write_submission(run_dir, root=subs, authors=authors or (), link=link, overwrite=args.overwrite)
    print(f"submitted to {dest}; check it with `milan-leaderboard validate {dest}`")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from .submission import SUBMISSIONS_ROOT, file_hashes, find_submissions
    from .validate import validate_paths

    if args.no_progress:
        from milannotations.commands import quiet_libraries

        quiet_libraries()
    from milannotations.dist import check_device

    check_device(args.device)
    paths = [Path(p) for p in args.paths]
    missing = [str(p) for p in paths if not p.is_dir()]
    if missing:  # a typo is bad input, not a refused submission (and it must not write a record anywhere)
        raise MilanError(f"{', '.join(missing)}: no such submission folder")
    if args.submissions is not None and not Path(args.submissions).is_dir():
        raise MilanError(f"--submissions {args.submissions}: no such folder")
    if not paths:
        paths = find_submissions(args.submissions or SUBMISSIONS_ROOT)
        if not paths:
            print(f"milan-leaderboard: no submissions under {args.submissions or SUBMISSIONS_ROOT}",
                  file=sys.stderr)
            return 0
    else:
        expanded = []
        for p in paths:  # a folder of submissions validates each one inside it
            inner = find_submissions(p) if p.is_dir() and not (p / "results.json").exists() else []
            expanded.extend(inner or [p])
        paths = expanded
    rescore = args.command == "rescore"
    before = {p: file_hashes(p) for p in paths}
    reports = validate_paths(paths, corpus_root=args.root, tolerance=args.tolerance,
                             embedding_tolerance=args.embedding_tolerance, recompute=not args.no_recompute,
                             device=args.device, rescore=rescore)
    if not rescore:  # what was checked must be what is there
        for path, rep in zip(paths, reports):
            if file_hashes(path) != before[path]:
                rep.error("files changed while being validated; validate again")
    if not args.no_recompute:  # a check that recomputed nothing validates nothing: the record is left alone
        _record(args, paths, reports, "rescore" if rescore else "validate")
    refused = 0
    for rep in reports:
        for pr in rep.problems:
            print(str(pr), file=sys.stderr if pr.level == "error" else sys.stdout)
        status = ("rescored" if args.command == "rescore" else "ok") if rep.ok else "REFUSED"
        refused += not rep.ok
        print(f"{status}: {rep.name} ({rep.summary})")
    print(f"{len(reports) - refused} of {len(reports)} submissions valid")
    return 1 if refused else 0


def _record(args: argparse.Namespace, paths, reports, mode: str) -> None:
    """Write each report into its validation record: the files' hashes (a rescored submission's after its
    results.json was rewritten) and the outcome."""
    from .submission import file_hashes, record_entry, record_key, record_path_of, write_record

    by_record: dict[Path, dict[str, dict]] = {}
    for path, rep in zip(paths, reports):
        record = Path(args.record) if args.record else record_path_of(path)
        by_record.setdefault(record, {})[record_key(path, record)] = record_entry(
            valid=rep.ok, hashes=file_hashes(path), mode=mode, summary=rep.summary,
            errors=[str(pr) for pr in rep.errors])
    for record, entries in by_record.items():
        try:
            write_record(record, entries)
        except OSError as e:
            print(f"milan-leaderboard: cannot write the validation record {record}: {e}", file=sys.stderr)
            continue
        print(f"validation record: {record} ({len(entries)} submission(s))")


def _render(args: argparse.Namespace) -> int:
    from milannotations.fsutil import check_output_dir

    from .render import render

    if args.submissions is not None and not Path(args.submissions).is_dir():
        raise MilanError(f"--submissions {args.submissions}: no such folder")
    if args.output is not None:
        check_output_dir(Path(args.output), "--output")  # before anything is read or rendered
    md, page = render(args.submissions, args.output, record=args.record)
    print(f"wrote {md} and {page}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="milan-leaderboard", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("submit", help="copy a milan-eval --output folder into the submissions folder")
    s.add_argument("run_dir", metavar="RUN_DIR", help="the folder `milan-eval --output` wrote")
    s.add_argument("--submissions", default=None, metavar="DIR",
                   help="submissions folder to write into (default: leaderboard/submissions under the current "
                        "folder, which must exist)")
    s.add_argument("--overwrite", action="store_true",
                   help="replace an existing submission of this describer, benchmark and protocol (its "
                        "authors and link are kept unless --author/--link are given)")
    s.add_argument("--author", action="append", default=None, metavar="NAME", help="an author (repeatable)")
    s.add_argument("--link", default=None, help="paper or code URL (default: the describer's reference)")
    s.set_defaults(func=_submit)
    v = sub.add_parser("validate", help="check submissions and recompute every score from descriptions.csv")
    _submission_args(v)
    v.add_argument("--tolerance", type=float, default=1e-6,
                   help="largest accepted absolute difference between claimed and recomputed numbers "
                        "(values and interval bounds)")
    v.add_argument("--embedding-tolerance", type=float, default=1e-5,
                   help="the same for BERTScore and retrieval, whose float32 embeddings may differ in the "
                        "last bits between machines and thread counts")
    v.add_argument("--no-recompute", action="store_true",
                   help="check structure, units and revision only; skip rescoring (not for CI)")
    v.set_defaults(func=_validate)
    rs = sub.add_parser("rescore", help="recompute every score from descriptions.csv and write it into "
                                        "results.json (after a metric's definition changed)")
    _submission_args(rs)
    rs.set_defaults(func=_validate, tolerance=0.0, embedding_tolerance=0.0, no_recompute=False)
    r = sub.add_parser("render", help="write README.md and index.html from the submissions")
    r.add_argument("--submissions", default=None, help="submissions folder (default: leaderboard/submissions)")
    add_common_flags(r, output="output folder (default: leaderboard/)", progress=False)
    r.add_argument("--record", default=None,
                   help="validation record to publish from (default: validated.json beside the submissions "
                        "folder); submissions without a valid entry matching their files are left out")
    r.set_defaults(func=_render)
    return parser


def _submission_args(v: argparse.ArgumentParser) -> None:
    """Which submissions, and the data and device to recompute them with (validate and rescore)."""
    v.add_argument("paths", nargs="*", help="submission folders (default: all under --submissions)")
    v.add_argument("--submissions", default=None, help="submissions folder (default: leaderboard/submissions)")
    v.add_argument("--root", default=None, help="corpus folder or Hub id the benchmark data is loaded from "
                                                "(default: the milannotations cache)")
    add_common_flags(v, device="", progress="no progress bars (the libraries' bars too)")
    v.add_argument("--record", default=None,
                   help="validation record to write the outcome and file hashes into (default: validated.json "
                        "beside each submission's submissions folder, e.g. leaderboard/validated.json)")


def main(argv: list[str] | None = None) -> int:
    return run(argv, build_parser())


if __name__ == "__main__":
    sys.exit(main())
