"""Worker processes for the builders: how many, how they start, results in submission order.

Both builders (`build`: zips -> parquet, `synth.build`: the synthetic world) cut their work into
independent tasks whose results are written in a fixed order, so the bytes never depend on the number
of workers. Processes, not threads: PNG encoding, numpy and torch work all need a core each.

Workers start with `forkserver` (or `spawn` where there is none): forking a parent whose torch or
OpenMP threads already run is unsafe. Each worker runs torch (if it imports it) on one intra-op thread,
so the cores are the workers'. Results are consumed in order with at most `window` tasks in flight,
which bounds memory whatever the size of the input.
"""
from __future__ import annotations

import collections
import multiprocessing
import os
from pathlib import Path
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, Callable, Iterable, Iterator, Sequence


def default_workers() -> int:
    """The cores this process may run on (its affinity mask, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def resolve_workers(workers: int | None) -> int:
    """`None` -> every core; otherwise at least 1."""
    from .errors import MilanError

    if workers is None:
        return default_workers()
    if int(workers) < 1:
        raise MilanError(f"--workers must be at least 1, got {workers}")
    return int(workers)


def _context(preload: Sequence[str]):
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" not in methods:
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    # The server imports these once and every worker forks from it, instead of each importing them
    # (torch, pyarrow: seconds each). Only the first pool of a process starts the server.
    ctx.set_forkserver_preload(list(preload))
    return ctx


def _start_worker(init: Callable[..., None] | None, args: Sequence[Any]) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")
    import sys

    if "torch" in sys.modules:  # a preloaded torch: keep it to one thread
        sys.modules["torch"].set_num_threads(1)
    if init is not None:
        init(*args)


def executor(workers: int, init: Callable[..., None] | None = None, args: Sequence[Any] = (), *,
             preload: Sequence[str] = ()) -> ProcessPoolExecutor:
    """A process pool of `workers` processes, each set up by `init(*args)` once (e.g. to open inputs);
    `preload` names modules the forkserver imports before forking workers."""
    return ProcessPoolExecutor(max_workers=workers, mp_context=_context(preload), initializer=_start_worker,
                               initargs=(init, tuple(args)))


def ordered(pool: ProcessPoolExecutor, fn: Callable[[Any], Any], tasks: Iterable[Any], window: int) -> Iterator[Any]:
    """`fn(task)` for every task, run on `pool`, yielded in task order with at most `window` in flight.

    The first failing task (in order) raises its exception here; tasks not yet started are cancelled.
    """
    it = iter(tasks)
    pending: collections.deque[Future] = collections.deque()
    try:
        for task in it:
            pending.append(pool.submit(fn, task))
            if len(pending) >= window:
                break
        while pending:
            result = pending.popleft().result()
            for task in it:
                pending.append(pool.submit(fn, task))
                break
            yield result
    finally:
        for f in pending:
            f.cancel()


def worker_cpu_seconds() -> float:
    """CPU seconds used so far by this process's finished worker processes (for benchmarks).

    Workers are children of the forkserver, not of this process, so `RUSAGE_CHILDREN` misses them;
    the server's own and its reaped children's times are read from /proc (Linux; 0 elsewhere).
    """
    try:
        from multiprocessing import forkserver

        pid = forkserver._forkserver._forkserver_pid  # type: ignore[attr-defined]
        if not pid:
            return 0.0
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime stime cutime cstime
    except (ImportError, AttributeError, OSError, ValueError, IndexError):
        return 0.0
