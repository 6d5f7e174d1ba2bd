"""Seed the leaderboard: run `milan-eval --submit` for every built-in describer, then validate and render.

    python -m leaderboard.seed                         # synth benchmark: every BOARD entry on every protocol
    python -m leaderboard.seed --protocols within-network across-domain --describers constant milan
    python -m leaderboard.seed --dry-run               # print the commands only

Numbers are never typed: each submission is whatever `milan-eval` wrote,
and `milan-leaderboard validate` recomputes all of them; the page is rendered
only when every submission validates. A describer that cannot run here (e.g. it needs weights that are
not installed) is reported and skipped; the exit status says whether every
run and every validation succeeded.
"""
from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from milannotations.cli import add_common_flags

from .submission import SUBMISSIONS_ROOT


def _script(name: str, module: str) -> list[str]:
    """The console script `name` beside this interpreter, or `python -m module` where it is not installed."""
    script = Path(sys.executable).with_name(name)
    return [str(script)] if script.exists() else [sys.executable, "-m", module]


@dataclass(frozen=True)
class BoardEntry:
    """One row of the board: a built-in describer with the arguments that make it this variant."""

    describer: str
    args: str = ""  # --describer-args, e.g. "segmenter=synth"
    seeded: bool = False  # draws on its seed (learned, or sampling): trials differ, so TRIALS applies

    def trials(self, protocol: str) -> int:
        """The paper's trials for `protocol` for a seeded describer; 1 for a deterministic one, whose
        trials would all give the same descriptions (the harness reseeds nothing it reads)."""
        return TRIALS.get(protocol, 1) if self.seeded else 1

    def args_for(self, protocol: str) -> str:
        """This entry's arguments plus the paper's settings for `protocol` (`PAPER_ARGS`)."""
        extra = PAPER_ARGS.get((self.describer, protocol), "")
        return ",".join(a for a in (self.args, extra) if a)


#: Every built-in describer the board shows, in the variants the benchmark compares: MILAN as the
#: paper decodes it, its no-PMI ablation and MILAN+CLIP; the dissection baselines with the trained
#: synthetic segmenter and, as upper bounds, with the oracle's true masks; CLIP-Dissect; the floors.
BOARD: tuple[BoardEntry, ...] = (
    BoardEntry("constant"), BoardEntry("random-unit", seeded=True),
    BoardEntry("netdissect", "segmenter=synth"), BoardEntry("compexp", "segmenter=synth"),
    BoardEntry("netdissect", "segmenter=oracle"), BoardEntry("compexp", "segmenter=oracle"),
    BoardEntry("clip-dissect"),
    BoardEntry("milan", seeded=True), BoardEntry("milan", "strategy=greedy", seeded=True),
    BoardEntry("milan", "rerank=clip", seeded=True),
)
#: Every protocol of the synthetic benchmark.
PROTOCOLS = ("within-network", "across-family", "across-domain", "leave-one-out")
#: Describer arguments the paper used for a protocol; every other entry runs with the describer's
#: defaults. MILAN's within-network runs stop early with patience 10 instead of 4 (milan-method.md §6).
PAPER_ARGS: dict[tuple[str, str], str] = {("milan", "within-network"): "patience=10"}
#: Trials per protocol for seeded entries: the paper's 5 for within-network (each retrains a learned
#: describer with another seed, so the board shows their spread), 1 elsewhere.
TRIALS: dict[str, int] = {"within-network": 5}


def submission_of(entry: BoardEntry, benchmark: str, protocol: str) -> Path:
    """The folder `milan-eval --submit` writes this entry's run on `protocol` to."""
    from baselines.registry import parse_describer_args

    from .submission import submission_dir, variant

    args = parse_describer_args(entry.args_for(protocol))
    return submission_dir(entry.describer, benchmark, protocol, variant=variant({"describer": {"args": args}}))


def commands(entries: Sequence[BoardEntry], protocols: Sequence[str], *, benchmark: str, scorer: str,
             device: str, root: str | None, seed: int, trials: int | None,
             skip_existing: bool = False) -> list[list[str]]:
    """One `milan-eval ... --submit` command per board entry and protocol (by protocol, so the cheap
    protocols of every entry come before the expensive ones of any)."""
    out = []
    for protocol in protocols:
        for entry in entries:
            if skip_existing and (submission_of(entry, benchmark, protocol) / "results.json").is_file():
                continue
            n = trials if trials is not None else entry.trials(protocol)
            cmd = [*_script("milan-eval", "eval.cli"), "--describer", entry.describer, "--benchmark", benchmark,
                   "--protocol", protocol, "--scorer", scorer, "--device", device, "--seed", str(seed),
                   "--trials", str(n), "--submit", "--submissions", str(SUBMISSIONS_ROOT), "--overwrite",
                   "--no-progress"]
            if entry.args_for(protocol):
                cmd += ["--describer-args", entry.args_for(protocol)]
            if root:
                cmd += ["--root", root]
            out.append(cmd)
    return out


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
    cmds = commands(entries, args.protocols, benchmark=args.benchmark, scorer=args.scorer,
                    device=args.device, root=args.root, seed=args.seed, trials=args.trials,
                    skip_existing=args.skip_existing)
    failed = []
    for cmd in cmds:
        print("$ " + shlex.join(cmd), flush=True)
        if args.dry_run:
            continue
        t = time.perf_counter()
        rc = subprocess.run(cmd, check=False).returncode
        print(f"  -> exit {rc} after {time.perf_counter() - t:.0f}s", flush=True)
        if rc != 0:
            failed.append(shlex.join(cmd))
    if args.dry_run or args.no_render:
        return 0
    leaderboard = _script("milan-leaderboard", "leaderboard.cli")
    validate = [*leaderboard, "validate"] + (["--root", args.root] if args.root else [])
    print("$ " + shlex.join(validate), flush=True)
    rc_validate = subprocess.run(validate, check=False).returncode
    rc_render = 0
    if rc_validate == 0:
        render = [*leaderboard, "render"]
        print("$ " + shlex.join(render), flush=True)
        rc_render = subprocess.run(render, check=False).returncode
    else:
        print("validation failed: the page is not rendered", file=sys.stderr)
    for f in failed:
        print(f"FAILED: {f}", file=sys.stderr)
    return 1 if failed or rc_validate or rc_render else 0


if __name__ == "__main__":
    sys.exit(main())
