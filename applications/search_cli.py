"""`milan-search`: the units whose descriptions match a query, as ids another command can take.

    milan-search --descriptions descriptions.csv "dog faces" --limit 10
    milan-search --descriptions descriptions.csv "dog faces" --limit 10 --ids-only > dog_units.txt
    milan-search --descriptions descriptions.csv --words dog,dogs,puppy --output dog_units.txt

A query ranks units by sentence-embedding similarity (`applications.search.search`); `--words`
selects units whose description contains one of the words (`select_by_words`), in file order.
`--output` writes the result: `.json` (list of objects), `.csv` (rank,unit_id,score,description),
any other name one unit id per line, the format of `milan-ablate --units-file`.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path
from typing import Sequence

from milannotations.cli import OneLineParser, add_common_flags, run
from milannotations.errors import MilanError
from milannotations.fsutil import atomic_write_text, check_output_file

from .search import EMBEDDING, Hit, load_units, search, select_by_words


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="milan-search", description=__doc__.splitlines()[0],
                      epilog="Embedding: " + EMBEDDING)
    p.add_argument("query", nargs="?", default=None, help="what the units should be described as, e.g. 'dog faces'")
    p.add_argument("--descriptions", required=True, metavar="CSV",
                   help="descriptions.csv (unit_id,layer,unit,description) from milan-describe, or a milan-report folder")
    p.add_argument("--words", default=None, metavar="W1,W2,...",
                   help="instead of a query: units whose description contains any of these whole words "
                        "(case-insensitive)")
    p.add_argument("--all-words", action="store_true", help="with --words: every word must occur")
    p.add_argument("--ids-only", action="store_true", help="print only unit ids, one per line")
    add_common_flags(p, output="write the result to FILE (.json, .csv, else one unit id per line)",
                     output_metavar="FILE", output_aliases=(), device="where the sentence model runs",
                     limit="at most N units (default: all)")
    p.set_defaults(func=_command)
    return p


def _rows(hits: list[Hit]) -> list[dict]:
    return [{"rank": i + 1, "unit_id": h.unit_id, "score": None if h.score is None else round(h.score, 6),
             "description": h.description}
            for i, h in enumerate(hits)]


def _format(hits: list[Hit], suffix: str) -> str:
    if suffix == ".json":
        return json.dumps(_rows(hits), indent=1, ensure_ascii=False) + "\n"
    if suffix == ".csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=["rank", "unit_id", "score", "description"], lineterminator="\n")
        w.writeheader()
        w.writerows(_rows(hits))
        return buf.getvalue()
    return "".join(f"{h.unit_id}\n" for h in hits)


def _command(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise MilanError(f"--limit must be at least 1, got {args.limit}")
    if (args.query is None) == (args.words is None):
        raise MilanError("give either a query or --words, not both and not neither")
    if args.all_words and args.words is None:
        raise MilanError("--all-words goes with --words")
    if args.output is not None:
        check_output_file(args.output)
    if args.no_progress:
        from milannotations.commands import quiet_libraries

        quiet_libraries()
    if args.device != "cpu":
        from milannotations.dist import check_device

        check_device(args.device)
    if args.words is not None:
        units = {u.unit_id: u for u in load_units(args.descriptions)}
        ids = select_by_words([u._asdict() for u in units.values()], args.words, require_all=args.all_words)
        hits = [Hit(u, None, units[u].description) for u in ids][: args.limit]  # a rule: no score
    else:
        hits = search(args.descriptions, args.query, k=args.limit, device=args.device,
                      progress=not args.no_progress)
    if args.output is not None:
        out = Path(args.output)
        atomic_write_text(out, _format(hits, out.suffix.lower()))
        print(f"wrote {len(hits)} units to {out}", file=sys.stderr)
    elif args.ids_only:
        sys.stdout.write(_format(hits, ""))
    else:
        for i, h in enumerate(hits):
            score = "" if h.score is None else f"{h.score:7.4f}  "
            print(f"{i + 1:4d}  {score}{h.unit_id}  {h.description}")
    if not hits:
        print("no unit matches", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Console script `milan-search`."""
    return run(list(argv) if argv is not None else None, build_parser())


if __name__ == "__main__":
    sys.exit(main())
