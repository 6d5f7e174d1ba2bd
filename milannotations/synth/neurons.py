"""Synthetic neurons with known selectivity, as a torch module the exemplar code can hook.

A unit is a formula over concept masks: one concept, a conjunction ("red
and circle"), a disjunction ("circle or star"), a negation ("object and not
blue"), a spatial relation ("triangle above square") or a polysemantic mix
of two unrelated concepts. `SynthNeurons` evaluates every unit on a batch
of *neuron inputs* (concept coverage maps at stride `STRIDE`, plus a
salience map and noise fields, see `neuron_input`) and its submodule
`units` returns B x U x h x w activation maps, so the exemplar engine treats
it exactly like a layer of a real network (forward hook on "units").

Maps are graded and noisy on purpose: a unit responds more to large,
salient instances than to small or faint ones, edges are soft, and every
map carries multiplicative and additive noise, so the top-1% threshold and
the top-15 ranking behave as they do for trained units.

A *family* is a distribution over unit kinds (the analogue of an
architecture): `shallow` favours single concepts (colour, texture, part,
background), `deep` favours compositions; every kind occurs in every family.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .formula import RELATIONS  # one list of the spatial relations, shared with descriptions' formulas
from .scenes import BACKGROUNDS, COLOURS, CONCEPT_INDEX, CONCEPTS, IMAGE_SIZE, PARTS, SHAPES, TEXTURES, Scene

#: Neuron maps are computed at IMAGE_SIZE / STRIDE = 28 x 28, like a stride-4 conv stage.
STRIDE = 4
MAP_SIZE = IMAGE_SIZE // STRIDE
N_NOISE = 3
#: Channels of a neuron input: concept coverages, then salience, then noise fields.
INPUT_CHANNELS = len(CONCEPTS) + 1 + N_NOISE
KINDS = ("concept", "and", "or", "not", "relation", "polysemantic")

#: Share of each kind per family (every kind gets at least one unit when units >= len(KINDS)).
FAMILY_KINDS: dict[str, dict[str, float]] = {
    "shallow": {"concept": 0.60, "and": 0.10, "or": 0.08, "not": 0.07, "relation": 0.07, "polysemantic": 0.08},
    "deep": {"concept": 0.15, "and": 0.25, "or": 0.18, "not": 0.14, "relation": 0.16, "polysemantic": 0.12},
}
#: Which categories a single-concept unit is drawn from, per family.
FAMILY_CONCEPT_CATEGORIES: dict[str, dict[str, float]] = {
    "shallow": {"colour": 0.3, "texture": 0.25, "part": 0.2, "background": 0.2, "shape": 0.05},
    "deep": {"shape": 0.55, "part": 0.2, "background": 0.15, "colour": 0.05, "texture": 0.05},
}


@dataclass(frozen=True)
class UnitSpec:
    """One synthetic unit: its kind, the concepts it reads (in order) and its formula.

    `relation` is set for relation units; `gains` weighs the two halves of a
    polysemantic unit (one facet usually dominates, as in real units).
    """

    kind: str
    concepts: tuple[str, ...]
    relation: str | None = None
    gains: tuple[float, float] = (1.0, 1.0)

    @property
    def formula(self) -> str:
        c = self.concepts
        if self.kind == "concept":
            return c[0]
        if self.kind == "and":
            return f"{c[0]} and {c[1]}"
        if self.kind in ("or", "polysemantic"):
            return f"{c[0]} or {c[1]}"
        if self.kind == "not":
            return f"{c[0]} and not {c[1]}"
        if self.kind == "relation":
            return f"{c[0]} {self.relation} {c[1]}"
        raise ValueError(self.kind)

    def truth(self) -> str:
        """The `truth` field: JSON with kind, formula and concepts (stable key order)."""
        return json.dumps({"kind": self.kind, "formula": self.formula, "concepts": list(self.concepts)})


def _noise_rng(domain: str, index: int, seed: int) -> np.random.Generator:
    digest = hashlib.sha256(f"synth-noise:{seed}:{domain}:{index}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def neuron_input(scene: Scene) -> np.ndarray:
    """float32 [INPUT_CHANNELS, MAP_SIZE, MAP_SIZE]: what synthetic neurons see of a scene.

    Concept masks are area-averaged over STRIDE x STRIDE blocks (coverage in
    [0, 1]); the salience map likewise; the noise fields are smoothed
    Gaussian noise drawn from (domain, index, seed), so a scene's activations
    never depend on which batch it was in.
    """
    c = scene.concepts.reshape(len(CONCEPTS), MAP_SIZE, STRIDE, MAP_SIZE, STRIDE).mean(axis=(2, 4))
    s = scene.salience.reshape(MAP_SIZE, STRIDE, MAP_SIZE, STRIDE).mean(axis=(1, 3))
    rng = _noise_rng(scene.domain, scene.index, scene.seed)
    noise = rng.standard_normal((N_NOISE, MAP_SIZE + 2, MAP_SIZE + 2)).astype(np.float32)
    # 3x3 box smoothing, rescaled back to unit variance
    sm = sum(noise[:, i:i + MAP_SIZE, j:j + MAP_SIZE] for i in range(3) for j in range(3)) / 3.0
    return np.concatenate([c.astype(np.float32), s[None].astype(np.float32), sm], axis=0)


def _below(m: torch.Tensor, reach: int) -> torch.Tensor:
    """For each cell, the max of `m` strictly below it within +-reach columns (B x h x w)."""
    wide = F.max_pool1d(m.reshape(-1, 1, m.shape[-1]), 2 * reach + 1, 1, reach).reshape(m.shape)
    flipped = torch.flip(wide, dims=[1])
    cm = torch.cummax(flipped, dim=1).values
    cm = torch.flip(cm, dims=[1])
    return F.pad(cm[:, 1:, :], (0, 0, 0, 1))


def _relation_field(m: torch.Tensor, relation: str, reach: int = 5) -> torch.Tensor:
    """Where a cell stands in `relation` to some mass of `m` ("above" = some of m lies below it)."""
    if relation == "above":
        return _below(m, reach)
    if relation == "below":
        return torch.flip(_below(torch.flip(m, dims=[1]), reach), dims=[1])
    if relation == "left of":
        return _below(m.transpose(1, 2), reach).transpose(1, 2)
    if relation == "right of":
        t = torch.flip(m.transpose(1, 2), dims=[1])
        return torch.flip(_below(t, reach), dims=[1]).transpose(1, 2)
    raise ValueError(f"unknown relation {relation!r}")


class UnitMaps(nn.Module):
    """The hooked layer: neuron inputs (B x INPUT_CHANNELS x h x w) -> unit maps (B x U x h x w).

    Units are evaluated kind by kind on gathered channels (one tensor op per
    kind, not per unit), which keeps 800 units over a thousand scenes fast.
    """

    def __init__(self, specs: list[UnitSpec], seed: int = 0, noise: float = 0.1, floor_noise: float = 0.02):
        super().__init__()
        self.specs = list(specs)
        g = torch.Generator().manual_seed(int(seed))
        mix = torch.randn(len(specs), 2, N_NOISE, generator=g)
        self.register_buffer("noise_mix", mix / mix.norm(dim=-1, keepdim=True))
        first = [CONCEPT_INDEX[s.concepts[0]] for s in self.specs]
        second = [CONCEPT_INDEX[s.concepts[-1]] for s in self.specs]
        self.register_buffer("first", torch.tensor(first, dtype=torch.long))
        self.register_buffer("second", torch.tensor(second, dtype=torch.long))
        self.register_buffer("gains", torch.tensor([s.gains for s in self.specs], dtype=torch.float32))
        self.groups: dict[tuple[str, str | None], torch.Tensor] = {}
        for u, s in enumerate(self.specs):
            self.groups.setdefault((s.kind, s.relation), []).append(u)  # type: ignore[arg-type]
        self.groups = {k: torch.tensor(v, dtype=torch.long) for k, v in self.groups.items()}
        self.noise, self.floor_noise = noise, floor_noise

    def select(self, indices: Sequence[int]) -> "UnitMaps":
        """The same units at `indices` only (same noise, same maps): cheap maps of a few units of a config."""
        idx = torch.as_tensor(list(indices), dtype=torch.long)
        out = UnitMaps([self.specs[int(i)] for i in idx], noise=self.noise, floor_noise=self.floor_noise)
        for name in ("noise_mix", "first", "second", "gains"):
            getattr(out, name).copy_(getattr(self, name)[idx])
        return out

    @staticmethod
    def _sharpen(cov: torch.Tensor) -> torch.Tensor:
        """Soft threshold of block coverage: cells an instance barely touches stay silent."""
        return ((cov - 0.2) / 0.6).clamp(0.0, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        n_c = len(CONCEPTS)
        cov, sal, noise = self._sharpen(x[:, :n_c]), x[:, n_c], x[:, n_c + 1:]
        # Larger instances drive a unit harder; nothing leaks outside the instance.
        cov = cov * (0.6 + 0.4 * F.avg_pool2d(cov, 3, 1, 1))
        a, b = cov[:, self.first], cov[:, self.second]
        f = torch.empty_like(a)
        for (kind, relation), idx in self.groups.items():
            ai, bi = a[:, idx], b[:, idx]
            if kind == "concept":
                out = ai
            elif kind == "and":
                out = ai * bi
            elif kind == "or":
                out = torch.maximum(ai, bi)
            elif kind == "polysemantic":
                g = self.gains[idx]
                out = torch.maximum(g[:, 0, None, None] * ai, g[:, 1, None, None] * bi)
            elif kind == "not":
                out = ai * (1 - bi)
            elif kind == "relation":
                bs = bi.reshape(-1, *bi.shape[-2:])
                out = ai * _relation_field(bs, relation).reshape(bi.shape).clamp(max=1.0)
            else:
                raise ValueError(kind)
            f[:, idx] = out
        mult = torch.einsum("uk,bkhw->buhw", self.noise_mix[:, 0], noise)
        add = torch.einsum("uk,bkhw->buhw", self.noise_mix[:, 1], noise)
        return f * sal[:, None] * (1 + self.noise * mult) + self.floor_noise * add


class SynthNeurons(nn.Module):
    """A 'network' whose only layer, `units`, holds the synthetic units of one config."""

    layer_name = "units"

    def __init__(self, specs: list[UnitSpec], seed: int = 0):
        super().__init__()
        self.units = UnitMaps(specs, seed=seed)

    @property
    def specs(self) -> list[UnitSpec]:
        return self.units.specs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.units(x)


def _names(category: str) -> list[str]:
    if category == "shape":
        return list(SHAPES)
    if category == "colour":
        return list(COLOURS)
    if category == "texture":
        return list(TEXTURES)
    if category == "background":
        return list(BACKGROUNDS)
    if category == "part":
        return [f"{p} of {s}" for s in SHAPES for p in PARTS]
    raise ValueError(category)


def _pick(rng: np.random.Generator, weights: dict[str, float]) -> str:
    keys = list(weights)
    p = np.array([weights[k] for k in keys], float)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def _sample_spec(kind: str, family: str, rng: np.random.Generator) -> UnitSpec:
    if kind == "concept":
        cat = _pick(rng, FAMILY_CONCEPT_CATEGORIES[family])
        return UnitSpec("concept", (str(rng.choice(_names(cat))),))
    if kind == "and":
        pair = _pick(rng, {"colour-shape": 0.5, "texture-shape": 0.3, "colour-texture": 0.2})
        c1, c2 = pair.split("-")
        return UnitSpec("and", (str(rng.choice(_names(c1))), str(rng.choice(_names(c2)))))
    if kind == "or":
        cat = _pick(rng, {"shape": 0.5, "colour": 0.2, "texture": 0.1, "background": 0.2})
        a, b = rng.choice(_names(cat), 2, replace=False)
        return UnitSpec("or", (str(a), str(b)))
    if kind == "not":
        what = _pick(rng, {"object-colour": 0.5, "shape-colour": 0.3, "shape-texture": 0.2})
        c1, c2 = what.split("-")
        first = "object" if c1 == "object" else str(rng.choice(_names(c1)))
        return UnitSpec("not", (first, str(rng.choice(_names(c2)))))
    if kind == "relation":
        a, b = rng.choice(SHAPES, 2, replace=False)
        return UnitSpec("relation", (str(a), str(b)), relation=str(rng.choice(RELATIONS)))
    if kind == "polysemantic":
        c1, c2 = rng.choice(["shape", "colour", "texture", "background"], 2, replace=False)
        g = (1.0, float(np.round(rng.uniform(0.75, 1.0), 3)))
        if rng.random() < 0.5:
            g = g[::-1]
        return UnitSpec("polysemantic", (str(rng.choice(_names(c1))), str(rng.choice(_names(c2)))), gains=g)
    raise ValueError(kind)


def kind_counts(family: str, n: int) -> dict[str, int]:
    """How many units of each kind a config of `n` units gets: the family's shares, at least one each."""
    shares = FAMILY_KINDS[family]
    if n < len(KINDS):
        raise ValueError(f"a synthetic config needs at least {len(KINDS)} units (one per kind), got {n}")
    raw = {k: shares[k] * n for k in KINDS}
    counts = {k: max(1, int(np.floor(v))) for k, v in raw.items()}
    while sum(counts.values()) > n:  # take from the largest
        k = max(counts, key=lambda x: counts[x])
        counts[k] -= 1
    order = sorted(KINDS, key=lambda k: -(raw[k] - np.floor(raw[k])))
    i = 0
    while sum(counts.values()) < n:
        counts[order[i % len(order)]] += 1
        i += 1
    return counts


def sample_units(family: str, domain: str, n: int, seed: int = 0) -> list[UnitSpec]:
    """The `n` units of config synth-<family>-<domain>, distinct where possible, in shuffled order.

    Each config draws its own units (like two networks trained on different
    data), so across-domain protocols do not test on units seen in training.
    """
    if family not in FAMILY_KINDS:
        raise ValueError(f"unknown synthetic family {family!r}; known: {', '.join(FAMILY_KINDS)}")
    digest = hashlib.sha256(f"synth-units:{seed}:{family}:{domain}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    specs: list[UnitSpec] = []
    seen: set[tuple] = set()
    for kind, count in kind_counts(family, n).items():
        for _ in range(count):
            for _attempt in range(50):
                spec = _sample_spec(kind, family, rng)
                key = (spec.kind, spec.concepts, spec.relation)
                if key not in seen:
                    break
            seen.add(key)
            specs.append(spec)
    order = rng.permutation(len(specs))
    return [specs[i] for i in order]
