"""The oracle labeller: the synthetic world's parser and true concept masks. Exact, not a method.

A description is parsed into the world's formula language
(`milannotations.synth.parse`) and evaluated on each scene's true concept
cells, with the same cell rule (coverage >= 0.5 of a 4 x 4 px cell) and the
same relation reach as the truth metrics; so on synthetic units exemplar and
probe-set faithfulness with this labeller measure the description itself,
with no labelling error. It reads scenes by (dataset, image id) and cannot
run on real images.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from milannotations.errors import MilanError

from .base import ImageBatch, Labelled, Labeller


class _OracleLabelled(Labelled):
    def __init__(self, bits: np.ndarray, size: tuple[int, int]):
        from milannotations.synth.probe import CellLookup

        self._lookup = CellLookup(bits)
        self._size = size
        self._memo: dict[str, np.ndarray] = {}

    def _one(self, text: str) -> np.ndarray:
        from milannotations.synth.formula import evaluate
        from milannotations.synth.parse import parse

        formula = parse(str(text)).formula
        if formula.key not in self._memo:
            m = evaluate(formula, self._lookup).astype(np.float32)  # N x 28 x 28
            present = m.reshape(len(m), -1).max(axis=1) if m.size else np.zeros(len(m), np.float32)
            if m.shape[-2:] != self._size and m.size:
                t = torch.from_numpy(m)[:, None]
                smaller = self._size[0] < m.shape[-2]  # coarser cells: covered at least half, as the cell rule
                t = (F.adaptive_avg_pool2d(t, self._size) >= 0.5).float() if smaller else \
                    F.interpolate(t, size=self._size, mode="nearest")
                m = t[:, 0].numpy()
            self._memo[formula.key] = (m, present)
        return self._memo[formula.key]

    def maps(self, texts: Sequence[str]) -> np.ndarray:
        n = self._lookup.bits.shape[0]
        if not texts:
            return np.zeros((0, n, *self._size), np.float32)
        return np.stack([self._one(t)[0] for t in texts])

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """1 where the description holds on some cell of the scene (at the world's 28 x 28 cells)."""
        n = self._lookup.bits.shape[0]
        return np.stack([self._one(t)[1] for t in texts]) if texts else np.zeros((0, n), np.float32)


class OracleLabeller(Labeller):
    """Parsed description evaluated on true concept cells of synthetic scenes (seed: the world's seed)."""

    name = "oracle"
    exact = True

    def __init__(self, seed: int = 0) -> None:
        from milannotations.synth.parse import PARSER_VERSION

        self.seed = int(seed)
        self.model = f"synth-parser-v{PARSER_VERSION}+true-masks"
        self.uses = frozenset({"segmenter:oracle", "synth:truth"})

    def label(self, batch: ImageBatch, size: tuple[int, int]) -> Labelled:
        from milannotations.synth.probe import cell_bits, scene_cells
        from milannotations.synth.scenes import DOMAINS

        domains = {f"synth-{d}": d for d in DOMAINS}
        if batch.dataset not in domains:
            raise MilanError(f"the oracle labeller only labels synthetic scenes (dataset one of "
                             f"{', '.join(domains)}), not {batch.dataset!r}; use --labeller clip or segmenter")
        if batch.image_ids is None or len(batch.image_ids) != len(batch):
            raise MilanError("the oracle labeller needs the image id of every image (the scene index)")
        cells = scene_cells(domains[batch.dataset], batch.image_ids, self.seed)
        return _OracleLabelled(cell_bits(cells), tuple(size))
