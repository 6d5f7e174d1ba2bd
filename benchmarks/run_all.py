"""Run every benchmark script with its defaults, one after another (`make bench`).

    python benchmarks/run_all.py                      # all of them
    python benchmarks/run_all.py scoring milan        # only bench_scoring.py and bench_milan.py

Each script prints its own figures; this runner adds the wall time per script
and exits non-zero if any script failed, after running the rest. Scripts run
in separate processes so one's memory peak or thread settings do not leak
into the next one's figures.
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def scripts(names: list[str]) -> list[Path]:
    """bench_<name>.py for each name (all of them when none is given), in name order."""
    found = {p.stem.removeprefix("bench_"): p for p in sorted(HERE.glob("bench_*.py"))}
    unknown = [n for n in names if n not in found]
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {', '.join(unknown)}; have: {', '.join(found)}")
    return [found[n] for n in (names or list(found))]


def main(argv: list[str] | None = None) -> int:
    failed = []
    for script in scripts(list(sys.argv[1:] if argv is None else argv)):
        print(f"\n=== {script.name}", flush=True)
        t = time.perf_counter()
        rc = subprocess.run([sys.executable, str(script)], check=False).returncode
        print(f"=== {script.name}: exit {rc} after {time.perf_counter() - t:.0f} s", flush=True)
        if rc:
            failed.append(script.name)
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
