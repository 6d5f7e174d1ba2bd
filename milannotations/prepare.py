"""`prepare()`: the explicit build step before `load()` reads a synthetic config from the cache.

`load()` only reads. The synthetic corpus is built here, once per config, into the cached default
world (`milannotations.synth.catalog.default_world()`); `milan-eval`, `milan-describe` and
`milannotations synth` (without `--output`) call it, so first use still works from an empty cache.
The real corpus has its own steps (`milannotations download`, then `build`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from .load import resolve_configs
from .paths import synth_dir
from .synth import catalog
from .synth.catalog import SYNTH_CONFIGS, SYNTH_NET_CONFIGS, default_world


def synth_configs(names: str | Iterable[str]) -> list[str]:
    """The synthetic configs among config or grouping `names`, in order, each once."""
    names = [names] if isinstance(names, str) else list(names)
    synth = {*SYNTH_CONFIGS, *SYNTH_NET_CONFIGS}
    return list(dict.fromkeys(c for n in names for c in resolve_configs(n) if c in synth))


def prepare(names: str | Iterable[str] | None = None, *, progress: bool = True, workers: int | None = None) -> Path:
    """Build the synthetic configs among `names` (config or grouping names; default: the four annotated
    ones) into the cache where `load()` finds them, skipping those already built; returns the folder.

    Real config names are passed over (they come from `milannotations download` + `build`); an unknown
    name is a MilanError. Building says on stderr which configs, where and roughly how long, first.
    `workers` processes build them (default: every core this process may use); the bytes are the same.
    """
    # The builder (scenes, neurons, backbone training) is imported only when something may be built.
    from .synth.build import ensure_synth

    wanted = list(SYNTH_CONFIGS) if names is None else synth_configs(names)
    if not wanted:
        return default_world()
    # the default world's settings, read when called (default_world() names the same folder)
    return ensure_synth(synth_dir(), seed=0, units=catalog.DEFAULT_UNITS, pool_size=catalog.POOL_SIZE,
                        configs=wanted, progress=progress, workers=workers)
