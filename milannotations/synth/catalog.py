"""Names of the synthetic world: configs, groupings and which are which.

A *family* is a distribution over neuron kinds (the analogue of an
architecture), a *domain* a scene style (the analogue of a training set).
"""
from __future__ import annotations

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
