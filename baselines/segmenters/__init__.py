"""Segmenters: images in, per-pixel concept masks out, behind one interface.

    from baselines.segmenters import create_segmenter
    seg = create_segmenter("oracle")          # synthetic corpus only: true masks, an UPPER BOUND
    seg = create_segmenter("synth")           # small network trained on synthetic scenes
    seg = create_segmenter("ade20k", model="/path/to/segformer")   # real images, offline
"""
from __future__ import annotations

from typing import Any, Callable

from milannotations.errors import MilanError

from .ade20k import ADE20K_CLASSES, DEFAULT_ADE20K_MODEL, ADE20KSegmenter, load_ade20k_model
from .base import MODIFIER_CATEGORIES, Segmenter
from .colours import COLOUR_NAMES, colour_index, colour_masks


def _oracle(**kw: Any) -> Segmenter:
    from .oracle import OracleSegmenter

    return OracleSegmenter(**kw)


def _synth(**kw: Any) -> Segmenter:
    from .synth import SynthSegmenter

    return SynthSegmenter(**kw)


SEGMENTERS: dict[str, Callable[..., Segmenter]] = {"oracle": _oracle, "synth": _synth, "ade20k": ADE20KSegmenter}


def create_segmenter(name: str | Segmenter, device: str | None = None, **args: Any) -> Segmenter:
    """A segmenter by name (`oracle`, `synth`, `ade20k`) with its constructor arguments.

    `device` reaches the segmenters that run a network (synth, ade20k); the
    oracle runs none. A ready `Segmenter` instance is returned as is.
    """
    if device is not None and name in ("synth", "ade20k"):
        args["device"] = device
    if isinstance(name, Segmenter):
        if args:
            raise MilanError(f"segmenter instance {name.name!r} takes no arguments, got {sorted(args)}")
        return name
    if name not in SEGMENTERS:
        raise MilanError(f"unknown segmenter {name!r}; choose one of {', '.join(SEGMENTERS)}")
    try:
        return SEGMENTERS[name](**args)
    except TypeError as e:
        raise MilanError(f"segmenter {name!r} does not accept arguments {sorted(args)}: {e}") from e


__all__ = ["ADE20K_CLASSES", "ADE20KSegmenter", "COLOUR_NAMES", "DEFAULT_ADE20K_MODEL", "MODIFIER_CATEGORIES",
           "SEGMENTERS", "Segmenter", "colour_index", "colour_masks", "create_segmenter", "load_ade20k_model"]
