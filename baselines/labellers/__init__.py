"""Labellers: free text + images -> where the text holds (see `base` for the contract).

Built in: `oracle` (the synthetic world's parser and true masks; exact),
`clip` (calibrated image-text similarity; the synthetic CLIP offline, open_clip
with the user's weights), `segmenter` (a segmenter of `baselines.segmenters`
plus a text -> class mapper). `build_labeller(spec, args, device=, seed=)` is
the one way to make one, from a name, a `module:attr` / `file.py:attr`
reference, or an instance.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping

from milannotations.errors import MilanError

from .base import ImageBatch, Labelled, Labeller, shared_models


def _oracle(**kw: Any) -> Labeller:
    from .oracle import OracleLabeller

    return OracleLabeller(**kw)


def _clip(**kw: Any) -> Labeller:
    from .clip import ClipLabeller

    return ClipLabeller(**kw)


def _segmenter(**kw: Any) -> Labeller:
    from .segmenter import SegmenterLabeller

    return SegmenterLabeller(**kw)


LABELLERS: dict[str, Callable[..., Labeller]] = {"oracle": _oracle, "clip": _clip, "segmenter": _segmenter}
_TAKES = {"oracle": ("seed",), "clip": ("device",), "segmenter": ("device",)}


def build_labeller(spec: "str | Labeller", args: Mapping[str, Any] | None = None, *, device: str = "cpu",
                   seed: int = 0) -> Labeller:
    """A labeller by registry name or `module:attr` / `file.py:attr`, built with `args`; the run's
    `device` and world `seed` reach the ones that take them unless `args` sets them."""
    args = dict(args or {})
    if isinstance(spec, Labeller):
        if args:
            raise MilanError(f"labeller instance {spec.name!r} takes no arguments, got {sorted(args)}")
        return spec
    if spec in LABELLERS:
        runtime = {"device": device, "seed": seed}
        for k in _TAKES[spec]:
            args.setdefault(k, runtime[k])
        factory = LABELLERS[spec]
    elif ":" in str(spec):
        from baselines.registry import resolve_describer  # the same module:attr / file.py:attr rules

        factory = resolve_describer(str(spec))
        params = inspect.signature(factory).parameters
        for k, v in (("device", device), ("seed", seed)):
            if k in params:
                args.setdefault(k, v)
    else:
        raise MilanError(f"unknown labeller {spec!r}; choose one of {', '.join(LABELLERS)} or give module:attr")
    try:
        out = factory(**args)
    except TypeError as e:
        raise MilanError(f"labeller {spec!r} does not accept arguments {sorted(args)}: {e}") from e
    if not isinstance(out, Labeller):
        raise MilanError(f"labeller {spec!r} built a {type(out).__name__}, not a baselines.labellers.Labeller")
    return out


__all__ = ["ImageBatch", "LABELLERS", "Labelled", "Labeller", "build_labeller", "shared_models"]
