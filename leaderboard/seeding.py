"""Seeding the leaderboard from Python: every board entry through `milan-eval --submit`, then validate, render.

    from leaderboard.seeding import BOARD, seed_board
    result = seed_board([e for e in BOARD if e.describer == "constant"], ["within-network"])
    result.ok, result.failed                       # every run and the validation succeeded? which runs did not

`python -m leaderboard.seed` (`leaderboard/seed.py`) only parses its flags
and calls `seed_board`. Each run is a `milan-eval` subprocess, as on the
command line: one run's crash, memory or process-wide caches cannot touch
another's, so a seeded board is the set of runs anyone can repeat one by one.
Numbers are never typed: each submission is whatever `milan-eval` wrote, and
validation recomputes all of them.
"""
from __future__ import annotations

import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

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

    from .submission import args_variant, submission_dir

    args = parse_describer_args(entry.args_for(protocol))
    return submission_dir(entry.describer, benchmark, protocol, variant=args_variant(args))


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


@dataclass
class SeedResult:
    """What `seed_board` did: the commands, which failed, and the exit status of validation and rendering."""

    commands: list[list[str]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # the failed runs' command lines
    validate_rc: int | None = None  # None: not run (a dry run, or render=False)
    render_rc: int | None = None  # None: not run (also when validation failed)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.validate_rc and not self.render_rc


def _run(cmd: list[str]) -> int:
    return subprocess.run(cmd, check=False).returncode


def seed_board(entries: Sequence[BoardEntry] = BOARD, protocols: Sequence[str] = PROTOCOLS, *,
               benchmark: str = "synth", scorer: str = "offline", device: str = "cpu", root: str | None = None,
               seed: int = 0, trials: int | None = None, skip_existing: bool = False, dry_run: bool = False,
               render: bool = True, log: Callable[[str], None] | None = None,
               run: Callable[[list[str]], int] = _run) -> SeedResult:
    """Run `milan-eval --submit` for every entry and protocol, then validate and (only if that passes) render.

    `log` gets each command line and its exit status (default: print to
    stdout); `run` runs one command and returns its exit status (default: a
    subprocess). A dry run only logs the commands; `render=False` stops after
    the runs.
    """
    say = log or (lambda line: print(line, flush=True))
    result = SeedResult(commands(entries, protocols, benchmark=benchmark, scorer=scorer, device=device, root=root,
                                 seed=seed, trials=trials, skip_existing=skip_existing))
    for cmd in result.commands:
        say("$ " + shlex.join(cmd))
        if dry_run:
            continue
        t = time.perf_counter()
        rc = run(cmd)
        say(f"  -> exit {rc} after {time.perf_counter() - t:.0f}s")
        if rc != 0:
            result.failed.append(shlex.join(cmd))
    if dry_run or not render:
        return result
    leaderboard = _script("milan-leaderboard", "leaderboard.cli")
    validate = [*leaderboard, "validate"] + (["--root", root] if root else [])
    say("$ " + shlex.join(validate))
    result.validate_rc = run(validate)
    if result.validate_rc == 0:
        render_cmd = [*leaderboard, "render"]
        say("$ " + shlex.join(render_cmd))
        result.render_rc = run(render_cmd)
    return result
