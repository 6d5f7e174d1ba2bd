"""The generalisation protocols of the paper, for the real and the synthetic corpus.

A protocol is a list of named splits; each names the configs a describer
is fit on and the configs it describes, and which HF split of them is used
(`"train"`/`"test"` for within-network, `None` = every unit of those configs,
the paper's cross-config protocol). See milannotations-format.md §10.
"""
from __future__ import annotations

from dataclasses import dataclass

from milannotations import REAL_GROUPINGS, resolve_configs
from milannotations.errors import MilanError
from milannotations.synth.catalog import SYNTH_CONFIGS, SYNTH_GROUPINGS

BENCHMARKS = ("synth", "milannotations")


@dataclass(frozen=True)
class Split:
    """One train -> test pairing of a protocol."""

    name: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    train_split: str | None = None  # HF split of the train configs; None = all units
    test_split: str | None = None

    def to_dict(self) -> dict:
        return {"name": self.name, "train": list(self.train), "test": list(self.test),
                "train_split": self.train_split or "all", "test_split": self.test_split or "all"}


def _within(configs: tuple[str, ...]) -> list[Split]:
    return [Split(c, (c,), (c,), "train", "test") for c in configs]


def _across(pairs: list[tuple[str, str]], groupings: dict[str, tuple[str, ...]]) -> list[Split]:
    def members(name: str) -> tuple[str, ...]:
        return groupings.get(name, (name,))

    return [Split(f"{a}->{b}", members(a), members(b)) for a, b in pairs]


def _both(a: str, b: str) -> list[tuple[str, str]]:
    return [(a, b), (b, a)]


_REAL_BASE = REAL_GROUPINGS["base"]


def _real_protocols() -> dict[str, list[Split]]:
    g = {**REAL_GROUPINGS}
    return {
        "within-network": _within(_REAL_BASE),
        "across-network": _across(_both("alexnet", "resnet152"), g),
        "across-dataset": _across(_both("imagenet", "places365"), g),
        "across-task": _across(_both("cls", "gen"), g),
        "across-arch": _across([("base", "dino_vits8-imagenet")], g),
        # not-X -> X (the training setup of the paper's Table 2), and X -> not-X as in its code.
        "leave-one-out": _across([p for c in _REAL_BASE for p in ((f"not-{c}", c), (c, f"not-{c}"))], g),
    }


def _synth_protocols() -> dict[str, list[Split]]:
    g = {**SYNTH_GROUPINGS}
    return {
        "within-network": _within(SYNTH_CONFIGS),
        "across-family": _across(_both("synth-shallow", "synth-deep"), g),
        "across-domain": _across(_both("synth-plain", "synth-cluttered"), g),
        "leave-one-out": _across([(f"not-{c}", c) for c in SYNTH_CONFIGS], g),
    }


def protocols(benchmark: str) -> dict[str, list[Split]]:
    """Protocol name -> its splits, for `benchmark` ("synth" or "milannotations")."""
    if benchmark == "synth":
        return _synth_protocols()
    if benchmark == "milannotations":
        return _real_protocols()
    raise MilanError(f"unknown benchmark {benchmark!r}; choose one of {', '.join(BENCHMARKS)}")


def protocol_splits(benchmark: str, protocol: str, configs: list[str] | tuple[str, ...] | None = None
                    ) -> list[Split]:
    """The splits of a protocol, restricted by `configs` when given.

    An entry of `configs` selects a split by its name (`alexnet->resnet152`)
    or by the configs it tests: a config or grouping name keeps every split
    whose test configs lie inside it (`--configs synth-shallow-plain` keeps
    `not-synth-shallow-plain->synth-shallow-plain` under leave-one-out).
    """
    table = protocols(benchmark)
    if protocol not in table:
        raise MilanError(f"benchmark {benchmark!r} has no protocol {protocol!r}; "
                         f"choose one of {', '.join(table)}")
    splits = table[protocol]
    if not configs:
        return splits
    keep: list[Split] = []
    for entry in configs:
        by_name = [s for s in splits if s.name == entry]
        if not by_name:
            try:
                members = set(resolve_configs(entry))
            except MilanError:
                members = set()
            by_name = [s for s in splits if members and set(s.test) <= members]
        if not by_name:
            raise MilanError(f"--configs {entry!r} selects no split of {benchmark} {protocol}; "
                             f"splits: {', '.join(s.name for s in splits)}")
        keep.extend(s for s in by_name if s not in keep)
    return [s for s in splits if s in keep]
