"""A tiny synthetic-like corpus for the harness tests, written through the one writer.

Four configs named like the synthetic ones (so every synth protocol runs on
it), each with units whose three descriptions paraphrase one concept: the
humans agree, so the ceiling clears the floors. Image colour encodes the
concept, so a describer that looks at pixels can do better than the floors.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from milannotations.synth.catalog import SYNTH_CONFIGS

CONCEPTS = ["red circles", "blue squares", "green stripes", "yellow dots", "purple triangles",
            "orange grass", "white clouds", "black wheels"]
COLOURS = [(220, 30, 30), (30, 30, 220), (30, 200, 30), (230, 230, 20), (150, 40, 170), (250, 140, 0),
           (250, 250, 250), (10, 10, 10)]
TEMPLATES = ["bright {} on the left", "bright {} on the left side", "bright {} at the left"]


def concept_of(image) -> str:
    """What a pixel-reading describer can recover: the concept whose colour the first exemplar shows."""
    rgb = np.asarray(image, dtype=float).reshape(3, -1).mean(axis=1)
    return CONCEPTS[int(np.argmin([np.sum((rgb - np.array(c)) ** 2) for c in COLOURS]))]


def write_eval_corpus(out: Path, n_units: int = 24, n_test: int = 8, k: int = 2, size: int = 8,
                      configs=SYNTH_CONFIGS) -> Path:
    """Write `configs` under `out`; the first `n_test` units of each config form its test split."""
    from milannotations.writer import ConfigMeta, UnitRow, write_config

    for ci, config in enumerate(configs):
        family, domain = config.split("-")[1:3]
        rows, split_of = [], {}
        for u in range(n_units):
            c = (u * 3 + ci) % len(CONCEPTS)
            img = np.empty((k, 3, size, size), np.uint8)
            img[:] = np.array(COLOURS[c], np.uint8)[None, :, None, None]
            masks = np.zeros((k, 1, size, size), bool)
            masks[:, :, : size // 2] = True
            layer = "layer1" if u % 2 else "layer2"
            rows.append(UnitRow(layer=layer, unit=u, images=img, masks=masks, image_ids=list(range(k)),
                                annotations=[t.format(CONCEPTS[c]) for t in TEMPLATES],
                                truth=f'{{"kind": "single", "formula": "{CONCEPTS[c]}"}}'))
            split_of[f"{config}/{layer}/{u}"] = "test" if u < n_test else "train"
        write_config(out, ConfigMeta(config, f"synth-{family}", f"synth-{domain}", synthetic=True), rows, split_of)
    return out
