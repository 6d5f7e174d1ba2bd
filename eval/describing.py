"""Describing units: a describer's batches, the checks on what it returns, `fit` and its record.

Describers get the units under test as `Exemplars` (pixels, masks, names) through a lazy view,
never annotations or `truth`. Whatever a describer returns is checked before anything is scored,
and any failure of its code becomes one `MilanError` naming the describer and the unit.
"""
from __future__ import annotations

import json
import random
from typing import Any, Sequence

import numpy as np
import torch

from milannotations import UnitSet
from milannotations.contract import Describer, Exemplars
from milannotations.errors import MilanError

from .protocols import Split


class _Batch(Sequence[Exemplars]):
    """A lazy window on the units under test: `Exemplars` decoded on access, nothing else exposed."""

    def __init__(self, units: UnitSet, indices: Sequence[int]) -> None:
        self._units, self._indices = units, list(indices)

    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return self._units[self._indices[i]]

    def __iter__(self):
        for i in self._indices:
            yield self._units[i]



def _check_output(name: str, out: Any, batch: list[str]) -> list[str]:
    """The batch's descriptions, or a MilanError naming the describer and the offending unit."""
    if out is None or isinstance(out, (str, bytes)) or not hasattr(out, "__len__"):
        raise MilanError(f"describer {name!r} returned {type(out).__name__} instead of a list of "
                         f"{len(batch)} descriptions (units {batch[0]} .. {batch[-1]})")
    out = list(out)
    if len(out) != len(batch):
        raise MilanError(f"describer {name!r} returned {len(out)} descriptions for {len(batch)} units "
                         f"(units {batch[0]} .. {batch[-1]})")
    for uid, text in zip(batch, out):
        if text is None:
            raise MilanError(f"describer {name!r} returned None for unit {uid}")
        if not isinstance(text, str):
            raise MilanError(f"describer {name!r} returned {type(text).__name__} {text!r:.40} for unit {uid}; "
                             "descriptions must be str")
        if not text.strip():
            raise MilanError(f"describer {name!r} returned an empty description for unit {uid}")
    return out


def describe_batches(describer: Describer, name: str, units: UnitSet, ids: list[str], indices: list[int],
              batch_size: int, progress: bool, desc: str) -> list[str]:
    """Describe `units[indices]` in batches; a failing batch is retried unit by unit to name the unit."""
    from tqdm.auto import tqdm

    out: list[str] = []
    bar = tqdm(total=len(indices), desc=desc, unit="unit", disable=not progress, leave=False)
    try:
        for start in range(0, len(indices), batch_size):
            chunk = indices[start:start + batch_size]
            batch_ids = [ids[i] for i in chunk]
            try:
                result = describer.describe(_Batch(units, chunk))
            except Exception as e:  # noqa: BLE001 - any failure of user code becomes one clear error
                culprit = _first_failing(describer, units, chunk, ids) if len(chunk) > 1 else batch_ids[0]
                where = f"unit {culprit}" if culprit else f"units {batch_ids[0]} .. {batch_ids[-1]}"
                raise MilanError(f"describer {name!r} raised {type(e).__name__}: {e} while describing "
                                 f"{where}") from e
            out.extend(_check_output(name, result, batch_ids))
            bar.update(len(chunk))
    finally:
        bar.close()
    return out


def _first_failing(describer: Describer, units: UnitSet, chunk: list[int], ids: list[str]) -> str | None:
    for i in chunk:
        try:
            describer.describe(_Batch(units, [i]))
        except Exception:  # noqa: BLE001
            return ids[i]
    return None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def fit_describer(describer: Describer, name: str, train: UnitSet, split: Split) -> None:
    fit = getattr(describer, "fit", None)
    if fit is None:
        return
    try:
        fit(train)
    except MilanError as e:
        raise MilanError(f"describer {name!r} could not fit on {split.name}: {e}") from e
    except Exception as e:  # noqa: BLE001
        raise MilanError(f"describer {name!r} raised {type(e).__name__}: {e} in fit on {split.name}") from e


def fit_record(describer: Describer) -> dict:
    """A describer's account of what `fit` decided (e.g. MILAN's early-stopping epoch and the decoding
    settings it chose on validation units), JSON-safe; {} for describers that keep none."""
    record = getattr(describer, "fit_record", None)
    return json.loads(json.dumps(record, default=repr)) if isinstance(record, dict) else {}
