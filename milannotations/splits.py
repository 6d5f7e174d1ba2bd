"""The within-network train/test split, drawn once with a fixed seed and published.

The paper's split was random, unseeded and never released. Ours ranks units
by a keyed hash of their id, so it does not depend on row order or on which
other units exist: adding a unit never moves another one across the split.
"""
from __future__ import annotations

import hashlib
import math
from typing import Iterable

SPLIT_SEED = 0
TEST_FRACTION = 0.1


def _key(unit_id: str, seed: int) -> bytes:
    return hashlib.sha256(f"milannotations-split:{seed}:{unit_id}".encode()).digest()


def assign_splits(unit_ids: Iterable[str], seed: int = SPLIT_SEED,
                  test_fraction: float = TEST_FRACTION) -> dict[str, str]:
    """Map each unit id to "train" or "test"; the test share is ceil(fraction * n)."""
    ids = list(dict.fromkeys(unit_ids))
    if not ids:
        return {}
    n_test = min(len(ids), max(1, math.ceil(test_fraction * len(ids)))) if len(ids) > 1 else 0
    ranked = sorted(ids, key=lambda u: _key(u, seed))
    test = set(ranked[:n_test])
    return {u: ("test" if u in test else "train") for u in ids}


def sample_holdout(unit_ids: Iterable[str], fraction: float, seed: int) -> set[str]:
    """A seeded subset (e.g. the validation tenth of a training set), order independent."""
    ids = list(dict.fromkeys(unit_ids))
    n = min(len(ids) - 1, max(1, round(fraction * len(ids)))) if len(ids) > 1 else 0
    return set(sorted(ids, key=lambda u: _key(u, seed + 7919))[:n])


def validation_split(train_ids: Iterable[str], fraction: float = 0.1, seed: int = 0) -> tuple[list[str], list[str]]:
    """(fit ids, validation ids) drawn from a *training* split, both in their original order.

    The one way a describer holds units out for early stopping or for choosing
    a default: every tuned setting is chosen on these units, never on test
    units or their truth. Seeded and order independent (`sample_holdout`).
    """
    ids = list(dict.fromkeys(train_ids))
    held = sample_holdout(ids, fraction, seed) if fraction > 0 else set()
    return [u for u in ids if u not in held], [u for u in ids if u in held]
