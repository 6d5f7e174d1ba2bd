"""The synthetic ground-truth world: procedural scenes, neurons with known selectivity,
generated descriptions, a backbone trained on the scenes, and the corpus builder.

    from milannotations.synth import build_synth, render_scene, load_synth_backbone
    build_synth("out/", seed=0, units=500)     # four annotated configs
    scene = render_scene("plain", 7)            # image + a mask per concept

Names are imported lazily, so reading the catalog (`milannotations.load`)
does not pay for torch-heavy modules.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "CONCEPTS": "scenes", "CONCEPT_NAMES": "scenes", "Scene": "scenes", "render_scene": "scenes",
    "scene_concepts": "scenes", "caption_scene": "scenes", "IMAGE_SIZE": "scenes",
    "UnitSpec": "neurons", "SynthNeurons": "neurons", "sample_units": "neurons",
    "describe_unit": "descriptions",
    "build_synth": "build", "ensure_synth": "build", "ScenePool": "build",
    "BackboneSpec": "backbone", "load_synth_backbone": "backbone",
    "SYNTH_CONFIGS": "catalog", "SYNTH_NET_CONFIGS": "catalog", "SYNTH_GROUPINGS": "catalog",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
