"""Split preparation: a protocol split's units loaded as the harness uses them.

The train view (for `fit`), the test view without hidden columns (what describers see), the
references, the test-unit selection of `--limit` and the data fingerprint (`revision`) that
results.json records and the leaderboard recomputes with these same functions.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Sequence

from milannotations import UnitSet, concatenate, load, prepare
from milannotations.errors import MilanError

from .protocols import Split

_HIDDEN = ("annotations", "truth")  # columns of units under test that describers never see


def _load_configs(configs: Sequence[str], split: str | None, root) -> Any:
    """The units of `configs` (one HF split, or all units when `split` is None), in config order."""
    if root is None:  # load() only reads: the synthetic ones are built into the cache first, once
        prepare(configs)
    parts = []
    for config in configs:
        ds = load(config, split=split, root=root)
        if split is None:
            ds = concatenate([ds[s] for s in ("train", "test") if s in ds])
        parts.append(ds)
    return parts[0] if len(parts) == 1 else concatenate(parts)


def limit_indices(unit_ids: list[str], limit: int | None, seed: int) -> list[int]:
    """Indices of at most `limit` units, chosen by a seeded hash of their ids (order independent)."""
    if limit is None or limit >= len(unit_ids):
        return list(range(len(unit_ids)))

    def key(i: int) -> bytes:
        return hashlib.sha256(f"milan-eval-limit:{seed}:{unit_ids[i]}".encode()).digest()

    return sorted(sorted(range(len(unit_ids)), key=key)[:limit])


def _fingerprint(h: "hashlib._Hash", tag: str, unit_ids: list[str], annotations: list[list[str]]) -> None:
    h.update(f"\x1e{tag}\x1e".encode())
    for uid, anns in zip(unit_ids, annotations):
        h.update(uid.encode())
        h.update(b"\x1f")
        h.update("\x1d".join(anns).encode())
        h.update(b"\x1e")



@dataclass(frozen=True)
class TruthUnits:
    """What truth scoring needs of a synthetic split's test units (hidden from describers): each unit's
    config, index and truth, the build (seed, units) of each config, and which units share a truth."""

    configs: tuple[str, ...]
    units: tuple[int, ...]
    truths: tuple[str, ...]
    world: tuple[tuple[str, int, int], ...]  # (config, seed, units)

    @property
    def groups(self) -> list[int]:
        """Per unit, the index of its truth among the split's distinct truths (duplicates tie)."""
        first = {t: g for g, t in enumerate(dict.fromkeys(self.truths))}
        return [first[t] for t in self.truths]

    def context(self, truth_scorer):
        return truth_scorer.context(self.configs, self.units, self.truths,
                                    {c: (seed, n) for c, seed, n in self.world})


def _truth_units(test_ds, root) -> TruthUnits | None:
    """The test units' truths when every one has a synthetic truth (else None: agreement only)."""
    from milannotations.synth.build import world_of

    if "truth" not in test_ds.column_names:
        return None
    truths = [str(t or "") for t in test_ds["truth"]]
    if not all(truths):
        return None
    configs = [str(c) for c in test_ds["config"]]
    built = {c: world_of(c, root) for c in dict.fromkeys(configs)}
    if any(w is None for w in built.values()):
        return None  # synthetic-like rows not made by milannotations.synth: no world to check them in
    world = tuple((c, *w) for c, w in built.items())  # type: ignore[misc]
    return TruthUnits(tuple(configs), tuple(int(u) for u in test_ds["unit"]), tuple(truths), world)


@dataclass
class SplitData:
    """One split's units: the train view for `fit`, the hidden-column-free test view, the references."""

    split: Split
    train: UnitSet
    test: UnitSet
    test_ids: list[str]
    layers: list[str]
    units: list[int]
    references: list[list[str]]
    revision: str
    truth: TruthUnits | None = None  # synthetic splits: what truth scoring needs
    descriptions: list[list[str]] = field(default_factory=list)  # per trial
    fitted: list[dict] = field(default_factory=list)  # per trial: what the describer's fit decided
    limited: bool = False  # --limit left some of this split's test units out


def run_fingerprint(benchmark: str, protocol: str) -> "hashlib._Hash":
    """The start of a run's data revision: `prepare_split` adds each split's units to it, and its
    hexdigest is results.json's `revision`. The leaderboard recomputes it with this function."""
    return hashlib.sha256(f"{benchmark}\x1e{protocol}".encode())


def prepare_split(split: Split, root, limit: int | None, seed: int, h) -> SplitData:
    """Load one split's units as the harness uses them, adding its data to the run fingerprint `h`."""
    train_ds = _load_configs(split.train, split.train_split, root)
    test_ds = _load_configs(split.test, split.test_split, root)
    keep = limit_indices(list(test_ds["unit_id"]), limit, seed)
    limited = len(keep) != len(test_ds)
    if limited:
        test_ds = test_ds.select(keep)
    if len(test_ds) == 0:
        raise MilanError(f"split {split.name}: no test units in {', '.join(split.test)}")
    test_ids = list(test_ds["unit_id"])
    references = [list(a) for a in test_ds["annotations"]]
    for uid, refs in zip(test_ids, references):
        if not refs:
            raise MilanError(f"unit {uid} has no descriptions to score against; "
                             "describe unannotated units with milan-describe")
    train_ids = list(train_ds["unit_id"])
    train_anns = [list(a) for a in train_ds["annotations"]]
    _fingerprint(h, f"{split.name}/train", train_ids, train_anns)
    _fingerprint(h, f"{split.name}/test", test_ids, references)
    test_h = hashlib.sha256()
    _fingerprint(test_h, "test", test_ids, references)
    hidden = [c for c in _HIDDEN if c in test_ds.column_names]
    truth = _truth_units(test_ds, root)
    return SplitData(
        split=split,
        train=UnitSet(train_ds.remove_columns([c for c in ("truth",) if c in train_ds.column_names]),
                      annotated=True),
        test=UnitSet(test_ds.remove_columns(hidden)),
        test_ids=test_ids, layers=[str(x) for x in test_ds["layer"]], units=[int(x) for x in test_ds["unit"]],
        references=references, revision=test_h.hexdigest(), truth=truth, limited=limited,
    )
