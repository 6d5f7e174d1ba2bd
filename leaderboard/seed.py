"""Seed the leaderboard: run `milan-eval --submit` for every built-in describer, then validate and render.

    python -m leaderboard.seed                         # synth benchmark: every BOARD entry on every protocol
    python -m leaderboard.seed --protocols within-network across-domain --describers constant milan
    python -m leaderboard.seed --dry-run               # print the commands only

Numbers are never typed: each submission is whatever `milan-eval` wrote,
and `milan-leaderboard validate` recomputes all of them; the page is rendered
only when every submission validates. A describer that cannot run here (e.g. it needs weights that are
not installed) is reported and skipped; the exit status says whether every
run and every validation succeeded. The body is `leaderboard.seeding.seed_board`, callable from Python;
this module only parses the flags.
"""
from __future__ import annotations

import argparse
import subprocess  # noqa: F401 - `seed.subprocess.run` is the runner seeding.seed_board calls (tests patch it)
import sys

from milannotations.cli import add_common_flags

from .seeding import (BOARD, PAPER_ARGS, PROTOCOLS, TRIALS, BoardEntry, SeedResult, commands,  # noqa: F401
                      seed_board, submission_of)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m leaderboard.seed", description=__doc__.splitlines()[0])
    p.add_argument("--describers", nargs="+", default=None,
                   help="registry names: only the board entries of these describers (default: all of BOARD)")
    p.add_argument("--protocols", nargs="+", default=list(PROTOCOLS))
    p.add_argument("--benchmark", default="synth", choices=("synth", "milannotations"))
    p.add_argument("--scorer", default="offline", choices=("offline", "paper"))
    p.add_argument("--root", default=None, help="built corpus folder (default: the cache)")
    add_common_flags(p, progress=False, device="", seed="")
    p.add_argument("--trials", type=int, default=None, help="trials for every protocol (default: TRIALS)")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    p.add_argument("--skip-existing", action="store_true",
                   help="leave out entries whose submission exists (resume an interrupted seeding)")
    p.add_argument("--no-render", action="store_true", help="skip validation and rendering afterwards")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    entries = [e for e in BOARD if args.describers is None or e.describer in args.describers]
    unknown = sorted(set(args.describers or ()) - {e.describer for e in BOARD})
    if unknown:
        print(f"python -m leaderboard.seed: no board entry for {', '.join(unknown)}; the board has "
              f"{', '.join(dict.fromkeys(e.describer for e in BOARD))}", file=sys.stderr)
        return 2
    result = seed_board(entries, args.protocols, benchmark=args.benchmark, scorer=args.scorer,
                        device=args.device, root=args.root, seed=args.seed, trials=args.trials,
                        skip_existing=args.skip_existing, dry_run=args.dry_run, render=not args.no_render)
    if args.dry_run or args.no_render:
        return 0
    if result.validate_rc:
        print("validation failed: the page is not rendered", file=sys.stderr)
    for f in result.failed:
        print(f"FAILED: {f}", file=sys.stderr)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
