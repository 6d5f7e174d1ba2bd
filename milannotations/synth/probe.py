"""The probe set: fresh scenes on which a description is checked against what a unit does.

Exemplars show a unit at its 15 strongest scenes; a description that lists
what those scenes contain would look right there and nowhere else. The probe
set is `size` further scenes per domain, rendered from indices starting at
`PROBE_OFFSET` (2,000,000) with the world's seed: disjoint from the exemplar
pools (indices below the pool size), from the synthetic backbone's and
CLIP's training scenes (from 1,000,000, never 2,000,000 of them) and from
the synth segmenter's (another seed).

Everything is scored at the units' own resolution, the 28 x 28 cells of a
neuron map. A cell holds a concept when the concept covers at least half of
it. A description's formula is a function of a cell's concepts and of where
shapes lie around it ("above some square", within the units' reach), so
cells with the same such bits are interchangeable: the probe set is stored
as *atoms* (distinct bit rows, a few tens of thousands) with the atom of
every cell, and every sum a metric needs (activation, activation above the
unit's threshold, mask size) is a sum over atoms. Scoring any formula
against any unit is then a dot product over atoms instead of over the
hundreds of thousands of cells, and scoring a thousand units against a
thousand descriptions takes a matrix product of that size.

Caches (under `<cache>/probe/`, keyed by builder version, seed and size):
the atoms per domain, and per config the per-atom sums of every unit.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from ..fsutil import atomic_path
from ..paths import probe_dir
from .build import _unit_seed, parse_config
from .catalog import BUILDER_VERSION
from .formula import RELATIONS, Formula, evaluate
from .neurons import MAP_SIZE, SynthNeurons, _relation_field, neuron_input, sample_units
from .scenes import CONCEPT_INDEX, CONCEPTS, SHAPES, render_scene

#: First scene index of the probe set (exemplar pools use 0.., training sets 1,000,000..).
PROBE_OFFSET = 2_000_000
#: Probe scenes per domain. benchmarks/bench_truth.py: every mean it prints (truth, generic, specific,
#: constant, shuffled; Pearson, IoU, identification) is within 0.010 of its value on 2,000 scenes at 500
#: (0.022 at 250, 0.035 at 125), and a within-network run's truth scoring costs 46 s cold, 5 s cached.
PROBE_SIZE = 500
#: A cell holds a concept when the concept covers at least this share of it.
COVERAGE = 0.5
#: The corpus threshold: a unit is active on its top 1% of cells (the exemplar masks' quantile).
QUANTILE = 0.99
#: Shapes whose surroundings are stored per cell, so relations to them (and to unions of them) are exact.
RELATION_OBJECTS: tuple[str, ...] = ("object", *SHAPES)
PROBE_VERSION = "1"
_N_CONCEPTS = len(CONCEPTS)
_SCENES_PER_CHUNK = 25


def _cache_root(cache_dir: str | Path | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    return probe_dir()


def signature(size: int, seed: int) -> str:
    """What a probe-set number depends on, for metric signatures."""
    return (f"probe:synth@{PROBE_OFFSET}+{size},seed:{seed},world:v{BUILDER_VERSION},"
            f"cells:{MAP_SIZE}x{MAP_SIZE},cov>={COVERAGE}")


@functools.lru_cache(maxsize=2)
def render_inputs(domain: str, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(neuron inputs float16 [N, C, 28, 28], concept cells bool [N, 45, 28, 28]) of the probe scenes
    (kept for the two most recent domains: every config of a domain reads the same scenes)."""
    inputs = np.empty((size, _N_CONCEPTS + 4, MAP_SIZE, MAP_SIZE), np.float16)
    for i in range(size):
        inputs[i] = neuron_input(render_scene(domain, PROBE_OFFSET + i, seed))
    cells = inputs[:, :_N_CONCEPTS].astype(np.float32) >= COVERAGE
    return inputs, cells


@functools.lru_cache(maxsize=2)
def probe_images(domain: str, size: int, seed: int) -> np.ndarray:
    """uint8 [N, 3, 112, 112] pictures of the probe scenes, read-only (kept for the two most recent
    domains: every split and the alpha step of a run read the same scenes)."""
    images = np.stack([render_scene(domain, PROBE_OFFSET + i, seed).image for i in range(size)])
    images.flags.writeable = False
    return images


def cell_bits(cells: np.ndarray) -> np.ndarray:
    """bool [N, 45 + 4 x 7, 28, 28]: each cell's concepts, then whether some of each relation object
    lies above / below / left / right of it within the units' reach (`neurons._relation_field`)."""
    c = torch.from_numpy(cells)
    idx = [CONCEPT_INDEX[s] for s in RELATION_OBJECTS]
    objs = c[:, idx].float().reshape(-1, MAP_SIZE, MAP_SIZE)
    fields = [(_relation_field(objs, r) > 0).reshape(c.shape[0], len(idx), MAP_SIZE, MAP_SIZE)
              for r in RELATIONS]
    return torch.cat([c, *fields], dim=1).numpy()


def _relation_column(rel: str, obj: str) -> int:
    return _N_CONCEPTS + RELATIONS.index(rel) * len(RELATION_OBJECTS) + RELATION_OBJECTS.index(obj)


class _AtomLookup:
    """`formula.Lookup` over atoms: a formula's mask is a bool vector with one entry per atom."""

    def __init__(self, bits: np.ndarray):
        self.bits = bits

    def concept(self, name: str) -> np.ndarray:
        return self.bits[:, CONCEPT_INDEX[name]]

    def nothing(self) -> np.ndarray:
        return np.zeros(len(self.bits), bool)

    def relation(self, rel: str, obj: Formula) -> np.ndarray:
        names = _union_names(obj)
        if names is None:
            raise ValueError(f"relations are stored only to shapes and unions of them, not to {obj}")
        out = self.nothing()
        for n in names:
            out |= self.bits[:, _relation_column(rel, n)]
        return out


class CellLookup(_AtomLookup):
    """`formula.Lookup` over cells: `bits` is `cell_bits` output [N, B, h, w], a mask is bool [N, h, w].
    The faithfulness oracle evaluates a parsed description on any synthetic scenes with it."""

    def nothing(self) -> np.ndarray:
        return np.zeros((self.bits.shape[0], *self.bits.shape[2:]), bool)


def scene_cells(domain: str, indices: Iterable[int], seed: int = 0) -> np.ndarray:
    """bool [N, 45, 28, 28]: which concepts cover at least `COVERAGE` of each cell of the given scenes
    (the same cell rule as the probe set and the units' own inputs)."""
    out = [neuron_input(render_scene(domain, int(i), seed))[:_N_CONCEPTS] >= COVERAGE for i in indices]
    return np.stack(out) if out else np.zeros((0, _N_CONCEPTS, MAP_SIZE, MAP_SIZE), bool)


def _union_names(f: Formula) -> list[str] | None:
    """The relation objects a union of shapes names (None if `f` is not such a union)."""
    if f.op == "concept" and f.name in RELATION_OBJECTS:
        return [f.name]
    if f.op == "or" and all(a.op == "concept" and a.name in RELATION_OBJECTS for a in f.args):
        return [a.name for a in f.args]
    return None


@dataclass
class ProbeAtoms:
    """One domain's probe set as atoms (see the module docstring)."""

    domain: str
    seed: int
    size: int
    bits: np.ndarray  # bool [n_atoms, n_bits]
    atom_of: np.ndarray  # int32 [N * 28 * 28]: the atom of every cell, scene-major
    counts: np.ndarray  # int64 [n_atoms]: cells per atom

    @property
    def cells(self) -> int:
        return int(self.atom_of.shape[0])

    def masks(self, formulas: Iterable[Formula]) -> np.ndarray:
        """float32 [n_atoms, F]: 1 where formula f holds on the atom."""
        look = _AtomLookup(self.bits)
        cols = [np.asarray(evaluate(f, look), bool) for f in formulas]
        if not cols:
            return np.zeros((len(self.bits), 0), np.float32)
        return np.stack(cols, axis=1).astype(np.float32)


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def probe_atoms(domain: str, seed: int = 0, size: int = PROBE_SIZE, *, cache_dir=None,
                inputs: np.ndarray | None = None) -> ProbeAtoms:
    """The atoms of a domain's probe set, from the cache or rendered once (a few seconds per 500 scenes)."""
    folder = _cache_root(cache_dir)
    name = f"atoms-{domain}-seed{seed}-n{size}-{_key(PROBE_VERSION, BUILDER_VERSION)}.npz"
    path = folder / name
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            return ProbeAtoms(domain, seed, size, z["bits"], z["atom_of"], z["counts"])
    if inputs is None:
        inputs, cells = render_inputs(domain, size, seed)
    else:
        cells = inputs[:, :_N_CONCEPTS].astype(np.float32) >= COVERAGE
    bits = cell_bits(cells)  # N, B, h, w
    rows = np.packbits(bits.transpose(0, 2, 3, 1).reshape(-1, bits.shape[1]), axis=1)
    packed, atom_of, counts = np.unique(rows, axis=0, return_inverse=True, return_counts=True)
    atoms = ProbeAtoms(domain, seed, size, np.unpackbits(packed, axis=1, count=bits.shape[1]).astype(bool),
                       atom_of.reshape(-1).astype(np.int32), counts.astype(np.int64))
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, bits=atoms.bits, atom_of=atoms.atom_of, counts=atoms.counts)
    return atoms


@dataclass
class UnitStats:
    """Units of one config on its domain's probe set, as sums over atoms.

    For unit u: `total[u]` = sum of its activations over all cells, `squares[u]` the
    sum of squares, `atom_sum[u, a]` the sum over the cells of atom a, and
    `atom_active[u, a]` how many of its active cells (its top 1%, `active` cells
    per unit) fall in atom a. Pearson and IoU against any formula follow.
    """

    config: str
    indices: np.ndarray  # int64 [U]: the units' indices in the config
    total: np.ndarray  # float64 [U]
    squares: np.ndarray  # float64 [U]
    atom_sum: np.ndarray  # float32 [U, n_atoms]
    atom_active: np.ndarray  # float32 [U, n_atoms]
    active: int  # active cells per unit: ceil(1% of the probe cells)
    threshold: np.ndarray  # float32 [U]: the smallest active value


def config_units(config: str, seed: int, units: int) -> SynthNeurons:
    """The synthetic units of a built config, rebuilt exactly as the builder made them."""
    family, domain = parse_config(config)
    return SynthNeurons(sample_units(family, domain, units, seed), seed=_unit_seed(seed, config)).eval()


_FIELDS = ("indices", "total", "squares", "atom_sum", "atom_active", "threshold")


def unit_stats(config: str, seed: int, units: int, indices: Sequence[int] | None = None,
               size: int = PROBE_SIZE, *, cache_dir=None, progress: bool = False) -> UnitStats:
    """`UnitStats` of units `indices` (default all) of `config` (built with `seed`, `units`), cached.

    One pass over the probe scenes: the maps of a chunk of scenes are summed
    per atom and merged into each unit's running top-k cells (values and
    cells), so the active cells are known exactly at the end without a
    second pass or the whole map in memory.
    """
    _, domain = parse_config(config)
    idx = np.arange(units) if indices is None else np.asarray(sorted(set(int(i) for i in indices)), np.int64)
    folder = _cache_root(cache_dir)
    key = _key(PROBE_VERSION, BUILDER_VERSION, idx.tolist())
    path = folder / f"units-{config}-seed{seed}-units{units}-n{size}-{key}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            arrays = {f: z[f] for f in _FIELDS}
        return UnitStats(config, active=int(active_cells(size)), **arrays)
    inputs, _ = render_inputs(domain, size, seed)
    atoms = probe_atoms(domain, seed, size, cache_dir=cache_dir, inputs=inputs)
    layer = config_units(config, seed, units).units.select(idx.tolist()).eval()
    n_units, n_atoms = len(idx), len(atoms.counts)
    per = MAP_SIZE * MAP_SIZE
    k = active_cells(size)
    total = np.zeros(n_units)
    squares = np.zeros(n_units)
    atom_sum = np.zeros((n_units, n_atoms), np.float64)
    top_v = torch.empty((n_units, 0))
    top_i = torch.empty((n_units, 0), dtype=torch.long)
    from tqdm.auto import tqdm

    for start in tqdm(range(0, size, _SCENES_PER_CHUNK), desc=f"probe activations of {config}", unit="chunk",
                      disable=not progress, leave=False):
        stop = min(size, start + _SCENES_PER_CHUNK)
        with torch.no_grad():
            m = layer(torch.from_numpy(inputs[start:stop].astype(np.float32)))  # B, U, h, w
        m = m.permute(1, 0, 2, 3).reshape(n_units, -1)
        md = m.double()
        total += md.sum(1).numpy()
        squares += (md * md).sum(1).numpy()
        _add_by_atom(atom_sum, m.numpy(), atoms.atom_of[start * per: stop * per])
        cells = torch.arange(start * per, stop * per).expand(n_units, -1)
        both_v, both_i = torch.cat([top_v, m], 1), torch.cat([top_i, cells], 1)
        top_v, pos = torch.topk(both_v, min(k, both_v.shape[1]), dim=1)
        top_i = torch.gather(both_i, 1, pos)
    atom_active = np.zeros((n_units, n_atoms), np.float64)
    rows = np.repeat(np.arange(n_units), top_i.shape[1])
    np.add.at(atom_active, (rows, atoms.atom_of[top_i.numpy().reshape(-1)]), 1.0)
    stats = UnitStats(config, idx, total, squares, atom_sum.astype(np.float32), atom_active.astype(np.float32),
                      k, top_v[:, -1].numpy().astype(np.float32))
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **{f: getattr(stats, f) for f in _FIELDS})
    return stats


def active_cells(size: int) -> int:
    """Active cells per unit on a probe set of `size` scenes: its top 1% (NeuronEval's top-alpha rule)."""
    return math.ceil(round((1 - QUANTILE) * size * MAP_SIZE * MAP_SIZE, 6))


def _add_by_atom(out: np.ndarray, values: np.ndarray, atom_of: np.ndarray) -> None:
    """out[:, a] += sum of values[:, cells of atom a] (cells sorted by atom, then one reduceat)."""
    order = np.argsort(atom_of, kind="stable")
    sorted_atoms = atom_of[order]
    starts = np.flatnonzero(np.r_[True, sorted_atoms[1:] != sorted_atoms[:-1]])
    sums = np.add.reduceat(values[:, order].astype(np.float64), starts, axis=1)
    out[:, sorted_atoms[starts]] += sums


def probe_image_max(config: str, seed: int, units: int, indices: Sequence[int], size: int = PROBE_SIZE
                    ) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """What a probe-set faithfulness metric needs of synthetic units, as a user's recorded folder holds
    it: the probe scenes (uint8 [size, 3, 112, 112]), each unit's spatial-max activation on each scene
    (float32 [size, len(indices)], in `indices` order) and the scenes' indices (their image ids)."""
    _, domain = parse_config(config)
    inputs, _ = render_inputs(domain, size, seed)
    layer = config_units(config, seed, units).units.select([int(i) for i in indices]).eval()
    out = np.empty((size, len(indices)), np.float32)
    for start in range(0, size, _SCENES_PER_CHUNK):
        stop = min(size, start + _SCENES_PER_CHUNK)
        with torch.no_grad():
            m = layer(torch.from_numpy(inputs[start:stop].astype(np.float32)))  # B, U, h, w
        out[start:stop] = m.amax(dim=(2, 3)).numpy()
    ids = [PROBE_OFFSET + i for i in range(size)]
    return probe_images(domain, size, seed).copy(), out, ids
