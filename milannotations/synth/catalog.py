"""Names of the synthetic world: configs, groupings and which are which.

A *family* is a distribution over neuron kinds (the analogue of an
architecture), a *domain* a scene style (the analogue of a training set).
"""
from __future__ import annotations

from pathlib import Path

from ..paths import synth_dir

FAMILIES = ("shallow", "deep")
DOMAINS = ("plain", "cluttered")
SYNTH_CONFIGS: tuple[str, ...] = tuple(f"synth-{f}-{d}" for f in FAMILIES for d in DOMAINS)
#: Unannotated configs: exemplars of the synthetic backbone's own (trained) units.
SYNTH_NET_CONFIGS: tuple[str, ...] = tuple(f"synth-net-{d}" for d in DOMAINS)

SYNTH_GROUPINGS: dict[str, tuple[str, ...]] = {
    "synth-base": SYNTH_CONFIGS,
    **{f"synth-{f}": tuple(c for c in SYNTH_CONFIGS if c.startswith(f"synth-{f}-")) for f in FAMILIES},
    **{f"synth-{d}": tuple(c for c in SYNTH_CONFIGS if c.endswith(f"-{d}")) for d in DOMAINS},
    **{f"not-{c}": tuple(x for x in SYNTH_CONFIGS if x != c) for c in SYNTH_CONFIGS},
}


def is_synth(name: str) -> bool:
    """True for a synthetic config or grouping name."""
    return name in SYNTH_CONFIGS or name in SYNTH_NET_CONFIGS or name in SYNTH_GROUPINGS


#: Bump whenever scenes, neurons, descriptions or the build change their output; keys the cache.
BUILDER_VERSION = "2"
#: Scenes per domain that exemplars are drawn from (the "probe set").
POOL_SIZE = 600
#: Units per annotated config. 500 gives 50 test units per within-network split (the 90/10 split),
#: enough for 95% intervals to separate a describer from the floors; at 200 (20 test units) a
#: BERTScore interval spanned about 0.2 and an MRR interval about 0.35.
DEFAULT_UNITS = 500


def cache_key(seed: int, units: int, pool_size: int = POOL_SIZE) -> str:
    """Folder name of a cached build: everything that changes its bytes."""
    return f"v{BUILDER_VERSION}-seed{seed}-units{units}-pool{pool_size}"


def default_world() -> Path:
    """The cached default world (seed 0, DEFAULT_UNITS units, POOL_SIZE scenes) that `load()` reads
    and `milannotations.prepare()` / `milannotations synth` without `--output` build."""
    return synth_dir() / cache_key(0, DEFAULT_UNITS, POOL_SIZE)
