"""Text normalisation and input validation shared by every metric.

The paper lowercases predictions and references and strips runs of periods and spaces from both ends
(`.lower().strip('. ')`), nothing else. Every metric here applies exactly that, so a number computed by
one metric is always computed on the same strings as the others.
"""

from __future__ import annotations

from collections.abc import Sequence

from milannotations.errors import MilanError


def normalize(text: str) -> str:
    """The paper's normalisation: lowercase, then strip '.' and ' ' runs at both ends."""
    return text.lower().strip(". ")


def validate(predictions: Sequence[str], references: Sequence[Sequence[str]], *, min_refs: int = 1) -> None:
    """Refuse malformed input with a message naming the unit, instead of scoring garbage.

    Checks: same number of predictions and reference lists, predictions are strings, every unit has at
    least `min_refs` references and every reference is a string.
    """
    if isinstance(predictions, str) or not isinstance(predictions, Sequence):
        raise MilanError(f"predictions must be a list of strings, got {type(predictions).__name__}")
    if isinstance(references, str) or not isinstance(references, Sequence):
        raise MilanError(f"references must be a list of lists of strings, got {type(references).__name__}")
    if len(predictions) != len(references):
        raise MilanError(
            f"{len(predictions)} predictions but {len(references)} reference lists; they must be one per unit"
        )
    if len(predictions) == 0:
        raise MilanError("nothing to score: 0 units")
    for i, (pred, refs) in enumerate(zip(predictions, references)):
        if not isinstance(pred, str):
            raise MilanError(f"prediction of unit {i} is {type(pred).__name__}, not a string")
        if isinstance(refs, str) or not isinstance(refs, Sequence):
            raise MilanError(f"references of unit {i} must be a list of strings, got {type(refs).__name__}")
        if len(refs) < min_refs:
            raise MilanError(f"unit {i} has {len(refs)} references; at least {min_refs} needed")
        for j, ref in enumerate(refs):
            if not isinstance(ref, str):
                raise MilanError(f"reference {j} of unit {i} is {type(ref).__name__}, not a string")


def normalized_inputs(
    predictions: Sequence[str], references: Sequence[Sequence[str]], *, min_refs: int = 1
) -> tuple[list[str], list[list[str]]]:
    """Validate, then normalise both sides (see `normalize`)."""
    validate(predictions, references, min_refs=min_refs)
    return [normalize(p) for p in predictions], [[normalize(r) for r in refs] for refs in references]
