"""Seed the leaderboard: run `milan-eval --submit` for every built-in describer, then validate and render.

    python -m leaderboard.seed                         # synth benchmark, within-network, all built-ins
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
from pathlib import Path


def _script(name: str, module: str) -> list[str]:
    """The console script `name` beside this interpreter, or `python -m module` where it is not installed."""
    script = Path(sys.executable).with_name(name)
    return [str(script)] if script.exists() else [sys.executable, "-m", module]


#: Describer arguments the paper used for a protocol; every other entry runs with the describer's
#: defaults. MILAN's within-network runs stop early with patience 10 instead of 4 (milan-method.md §6).
PAPER_ARGS: dict[tuple[str, str], str] = {("milan", "within-network"): "patience=10"}


def commands(describers: list[str], protocols: list[str], *, benchmark: str, scorer: str, device: str,
             root: str | None, seed: int, trials: int) -> list[list[str]]:
    """One `milan-eval ... --submit` command per describer and protocol."""
    out = []
    for name in describers:
        for protocol in protocols:
            cmd = [*_script("milan-eval", "eval.cli"), "--describer", name, "--benchmark", benchmark,
                   "--protocol", protocol, "--scorer", scorer, "--device", device, "--seed", str(seed), "--trials", str(trials),
                   "--submit", "--no-progress"]
            if (name, protocol) in PAPER_ARGS:
                cmd += ["--describer-args", PAPER_ARGS[name, protocol]]
            if root:
                cmd += ["--root", root]
            out.append(cmd)
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m leaderboard.seed", description=__doc__.splitlines()[0])
    p.add_argument("--describers", nargs="+", default=None,
                   help="registry names (default: every built-in describer)")
    p.add_argument("--protocols", nargs="+", default=["within-network"])
    p.add_argument("--benchmark", default="synth", choices=("synth", "milannotations"))
    p.add_argument("--scorer", default="offline", choices=("offline", "paper"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--root", default=None, help="built corpus folder (default: the cache)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--trials", type=int, default=1)
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    p.add_argument("--no-render", action="store_true", help="skip validation and rendering afterwards")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.describers is None:
        from baselines.registry import available_describers

        args.describers = available_describers()
    cmds = commands(args.describers, args.protocols, benchmark=args.benchmark, scorer=args.scorer,
                    device=args.device, root=args.root, seed=args.seed, trials=args.trials)
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
