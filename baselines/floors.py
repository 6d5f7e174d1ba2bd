"""Trivial describers that every score is read against: `constant` and `random-unit`.

They look at no pixels. A method that does not beat them has learned nothing
about the units it describes: `constant` shows what the most common phrase of
the training set earns by itself, `random-unit` what a fluent description of
*some* unit earns (the language of the corpus, without the unit).
Both learn only from the training units given to `fit`.
"""
from __future__ import annotations

import random
from collections import Counter
from typing import Sequence

from milannotations.contract import AnnotatedExemplars, DescriberMeta, Exemplars
from milannotations.errors import MilanError

from .registry import register_describer


def _normalize(text: str) -> str:
    """The paper's normalisation (lower-case, strip periods and spaces), so paraphrases that
    differ only in case or a final period count as one description."""
    return str(text).lower().strip(". ")


def training_annotations(train: Sequence[AnnotatedExemplars]) -> list[list[str]]:
    """Descriptions per training unit; reads text columns only when given a `UnitSet`."""
    read = getattr(train, "annotations", None)
    if callable(read):  # milannotations.UnitSet: no image decoding
        return [list(a) for a in read()]
    return [list(u.annotations) for u in train]


@register_describer("constant")
class ConstantDescriber:
    """The same description for every unit.

    By default the most frequent (normalised) description of the training
    units, ties broken by alphabetical order; `text=...` fixes it instead and
    then `fit` is not needed.
    """

    def __init__(self, text: str | None = None) -> None:
        if text is not None and not str(text).strip():
            raise MilanError("constant describer: text must not be empty")
        self.text = None if text is None else str(text)
        self._fixed = text is not None
        self.meta = DescriberMeta(name="constant", version="1", trained_on=(),
                                  citation="", reference="floor: most frequent training description")

    @property
    def is_fitted(self) -> bool:
        return self.text is not None

    def fit(self, train: Sequence[AnnotatedExemplars]) -> None:
        if self._fixed:
            return
        counts = Counter(d for anns in training_annotations(train) for d in map(_normalize, anns) if d)
        if not counts:
            raise MilanError("constant describer: the training units carry no descriptions")
        top = max(counts.values())
        self.text = min(d for d, c in counts.items() if c == top)

    def describe(self, units: Sequence[Exemplars]) -> list[str]:
        if self.text is None:
            raise MilanError("constant describer: call fit() first or pass text=...")
        return [self.text] * len(units)


@register_describer("random-unit")
class RandomUnitDescriber:
    """For each unit, one description of a training unit drawn at random (seeded).

    The draw is uniform over training units, then over that unit's
    descriptions, so units with more annotations are not favoured.
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)
        self._pool: list[list[str]] = []
        self._rng = random.Random(self.seed)
        self.meta = DescriberMeta(name="random-unit", version="1", trained_on=(),
                                  citation="", reference="floor: a random training unit's description")

    @property
    def is_fitted(self) -> bool:
        return bool(self._pool)

    def fit(self, train: Sequence[AnnotatedExemplars]) -> None:
        self._pool = [[d for d in anns if str(d).strip()] for anns in training_annotations(train)]
        self._pool = [p for p in self._pool if p]
        if not self._pool:
            raise MilanError("random-unit describer: the training units carry no descriptions")
        self._rng = random.Random(self.seed)  # refitting restarts the same sequence

    def describe(self, units: Sequence[Exemplars]) -> list[str]:
        if not self._pool:
            raise MilanError("random-unit describer: call fit() first")
        out = []
        for _ in range(len(units)):
            anns = self._pool[self._rng.randrange(len(self._pool))]
            out.append(anns[self._rng.randrange(len(anns))])
        return out
