"""Shared fixtures: tiny corpora written through the one writer."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def make_rows(n_units: int = 6, k: int = 3, size: int = 16, seed: int = 0, layers=("conv1", "4"),
              images: bool = True):
    """Unit rows with random pixels, blocky masks and three descriptions each."""
    from milannotations.writer import UnitRow

    rng = np.random.default_rng(seed)
    words = ["dog", "cat", "sky", "water", "grass", "road", "car", "tree"]
    rows = []
    for li, layer in enumerate(layers):
        for u in range(n_units):
            masks = np.zeros((k, 1, size, size), bool)
            for j in range(k):
                y, x = rng.integers(0, size // 2, 2)
                masks[j, 0, y:y + size // 2, x:x + size // 2] = True
            w = words[(u + li) % len(words)]
            rows.append(UnitRow(
                layer=layer, unit=u,
                images=rng.integers(0, 256, (k, 3, size, size), dtype=np.uint8) if images else None,
                masks=masks, image_ids=rng.integers(0, 1000, k).tolist(),
                annotations=[f"{w}", f"a {w}", f"{w}s and more"],
            ))
    return rows


@pytest.fixture
def tiny_corpus(tmp_path: Path):
    """A built folder with one config `tiny-net` (two layers, one digit-named)."""
    from milannotations.splits import assign_splits
    from milannotations.writer import ConfigMeta, write_config

    rows = make_rows()
    split_of = assign_splits(f"tiny-net/{r.layer}/{r.unit}" for r in rows)
    out = tmp_path / "milannotations"
    write_config(out, ConfigMeta("tiny-net", "tinynet", "noise"), rows, split_of)
    return out, rows
