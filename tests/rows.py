"""Unit rows for tiny test corpora (shared by conftest's fixtures and the tests that write their own)."""
from __future__ import annotations

import numpy as np


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
