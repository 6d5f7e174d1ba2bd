"""CLIP-Dissect (Oikarinen & Weng, ICLR 2023) on a unit's exemplars, with the original's soft-WPMI rule.

The original ranks every concept of a list for a unit by soft-WPMI between
CLIP's image-text similarities on a probe set and the unit's activations
there. Of the activations the rule uses only which probe images are the
unit's top ones and in what order (`baselines/clip/scoring.py`); our
describers are handed exactly that, the unit's k = 15 top exemplars, highest
first. So per unit:

1. CLIP sees each exemplar (`view="full"`: the whole image, as the original
   shows it probe images; `view="masked"`: the active region bright, the
   rest dimmed, cropped to the region, as annotators saw it; `view="auto"`,
   the default: masked for the synthetic CLIP, full for any other, see
   `_default_view`);
2. per exemplar, P(c | image) = softmax_c(a * cos(image, text(c))), a = 10;
3. log p(c | u) = sum over ranks i of log(1 + p_i (P(c | image_i) - 1) + 1e-7),
   rank weights p_i falling linearly from 0.998 towards 0.97;
4. score(u, c) = log p(c | u) - lam * log p(c), lam = 1, where the prior
   p(c) is the mean of p(c | u') over background units u' (below);
5. the description is the best concept, or its `top` best joined with "and".

The prior. The original averages p(c | u') over every unit u' of the
unit's layer, each with its own top images from the probe set. Here the
units a describer may look at besides the ones it describes are the
training units handed to `fit` (their exemplar pixels; never their
descriptions). So `prior="layer"` (default) averages over the training
units of the unit's own layer (same config and layer name), which under
the within-network protocol is 90% of the original's average, the unit
itself left out; where no training unit shares the layer (the
across-network protocols), it falls back to the average over all training
units, which `prior="pooled"` uses always. Without `fit` there is no
background and no contrast (score = log p(c | u)): contrasting with the
other units of the same `describe()` call would make a unit's description
depend on how callers batch units.

With `fit` on a layer's units and `view="full"`, the scores are the
original's, given the same top-15 images (tests/test_clip_dissect.py).
"""
from __future__ import annotations

import hashlib
import random
from collections import OrderedDict
from dataclasses import dataclass
from typing import Iterable, Sequence

import torch

from milannotations.contract import AnnotatedExemplars, DescriberMeta, Exemplars
from milannotations.errors import MilanError

from .clip.concepts import concept_set
from .clip.models import DEFAULT_ARCH, ClipModel, load_clip, open_clip_arch, open_clip_name
from .clip.regions import full_images, masked_regions
from .clip.scoring import A, LAM, MIN_PROB, P_END, P_START, log_prior, soft_log_p
from .registry import register_describer

CITATION = ("Oikarinen & Weng, CLIP-Dissect: Automatic Description of Neuron Representations in Deep "
            "Vision Networks, ICLR 2023")
VERSION = "2"  # v1: softmax(mean masked-region cosine / 0.02), rank ignored, ViT-B-32
VIEWS = ("auto", "full", "masked")
PRIORS = ("layer", "pooled")
SYNTH_PREFIX = "synth-"  # configs of the synthetic world; `model=auto` gives them the synthetic CLIP
_CACHE_IMAGES = 100_000  # whole-image embeddings kept per describer (units of a layer share exemplars)
# Concept embeddings of the process-wide CLIPs of `load_clip`, shared by the describers the harness builds
# per split and trial (20,000 terms take long on a CPU): (clip name, device, template, concepts) -> C x D.
_TEXT_CACHE: dict[tuple[str, str, str, tuple[str, ...]], torch.Tensor] = {}


@dataclass
class _Backend:
    """One CLIP with its concept list and (lazily) the concepts' text embeddings."""

    clip: ClipModel
    concepts: list[str]
    text: torch.Tensor | None = None
    shared: bool = False  # from `load_clip`: one instance per process, so its text embeddings can be shared


def _default_view(clip_name: str) -> str:
    """Whole images for a real CLIP, as the original shows them; masked regions for the synthetic CLIP.

    The synthetic CLIP learnt concept names from masked single-concept regions; the whole scenes it saw
    came with captions that name objects, colours and textures but never parts or edges, so on whole
    images it cannot name most of the world's concepts. On training units (never test units) the label
    appeared in one of the unit's annotations for 208 of 400 units masked, 55 of 400 full (docs/clip.md).
    """
    return "masked" if clip_name.startswith("synth") else "full"


def _default_concepts(clip_name: str) -> str:
    """The synthetic CLIP gets the synthetic world's own concept names; any other CLIP the original's
    kind of default list, the 20k most common English words (its data/20k.txt; ours from wordfreq)."""
    return "synth" if clip_name.startswith("synth") else "words"


@register_describer("clip-dissect")
class ClipDissect:
    """Label each unit with the concept of highest soft-WPMI over its ranked exemplars."""

    def __init__(self, model: str = "auto", pretrained: str | None = "openai",
                 concepts: str | Sequence[str] | None = None, top: int = 1, view: str = "auto",
                 prior: str = "layer", lam: float = LAM, a: float = A, p_start: float = P_START,
                 p_end: float = P_END, min_prob: float = MIN_PROB, template: str = "{}",
                 background_units: int | None = None, batch_size: int = 64, device: str = "cpu",
                 seed: int = 0, clip: ClipModel | None = None) -> None:
        """`model="auto"`: the synthetic CLIP on synthetic units, open_clip ViT-B/16 (the original's) on real ones.

        `background_units`: at most this many training units per layer enter the prior (a seeded
        sample); None uses them all, as the original uses all of a layer's units.
        """
        if top < 1:
            raise MilanError("clip-dissect: top must be at least 1")
        if view not in VIEWS:
            raise MilanError(f"clip-dissect: unknown view {view!r}; choose one of {', '.join(VIEWS)}")
        if prior not in PRIORS:
            raise MilanError(f"clip-dissect: unknown prior {prior!r}; choose {' or '.join(PRIORS)}")
        if not 0 < float(p_end) <= float(p_start) <= 1:
            raise MilanError("clip-dissect: rank weights need 0 < p_end <= p_start <= 1")
        if not float(min_prob) > 0 or not float(a) > 0:
            raise MilanError("clip-dissect: a and min_prob must be positive")
        if background_units is not None and int(background_units) < 1:
            raise MilanError("clip-dissect: background_units must be at least 1 (or none for all)")
        if int(batch_size) < 1:
            raise MilanError("clip-dissect: batch_size must be at least 1")
        self.model, self.pretrained, self.device = model, pretrained, device
        self._concepts_arg = concepts
        self.top, self.view, self.prior = int(top), view, prior
        self.lam, self.a, self.p_start, self.p_end, self.min_prob = (
            float(lam), float(a), float(p_start), float(p_end), float(min_prob))
        self.template, self.batch_size = template, int(batch_size)
        self.background_units = None if background_units is None else int(background_units)
        self.seed = int(seed)
        self._backends: dict[str, _Backend] = {}
        self._fixed = clip is not None or model != "auto"
        if clip is not None:
            self._backends["fixed"] = self._backend_for(clip)
        elif model != "auto":
            self._backends["fixed"] = self._backend_for(load_clip(model, pretrained, device), shared=True)
        self._priors: dict[tuple[str, str, str], torch.Tensor] = {}  # (backend, config, layer) -> log p(c)
        self._pooled: dict[str, torch.Tensor] = {}  # backend -> log p(c) over all background units
        self._image_cache: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self.fit_record: dict = {}
        self.meta = DescriberMeta(name="clip-dissect", version=VERSION, trained_on=(), citation=CITATION,
                                  reference=self._reference())

    # ------------------------------------------------------------------ configuration

    def _backend_for(self, clip: ClipModel, shared: bool = False) -> _Backend:
        spec = self._concepts_arg
        if spec is None or isinstance(spec, str):
            terms = list(concept_set(spec or _default_concepts(clip.name)))
        else:
            terms = list(dict.fromkeys(str(t) for t in spec))
        if not terms:
            raise MilanError("clip-dissect: the concept list is empty")
        return _Backend(clip, terms, shared=shared)

    def _reference(self) -> str:
        spec = self._concepts_arg
        given = None if spec is None else spec if isinstance(spec, str) else f"{len(spec)} given"
        if self._fixed:
            clip = self._backends["fixed"].clip.name
            concepts = given or _default_concepts(clip)
        else:
            from .clip.synth_clip import synth_clip_name

            clip = (f"{synth_clip_name()} on {SYNTH_PREFIX}* configs, "
                    f"{open_clip_name(DEFAULT_ARCH, self.pretrained)} otherwise")
            concepts = given or (f"{_default_concepts(synth_clip_name())} on {SYNTH_PREFIX}* configs, "
                                 f"{_default_concepts(open_clip_name(DEFAULT_ARCH, self.pretrained))} otherwise")
        bg = "all" if self.background_units is None else self.background_units
        if self.view != "auto":
            view = self.view
        elif self._fixed:
            view = _default_view(clip)
        else:
            view = f"{_default_view(synth_clip_name())} on {SYNTH_PREFIX}* configs, full otherwise"
        return (f"clip={clip}; concepts={concepts}; template={self.template!r}; view={view}; "
                f"scoring=soft_wpmi(a={self.a:g}, lam={self.lam:g}, p={self.p_start:g}..{self.p_end:g}, "
                f"min_prob={self.min_prob:g}); prior={self.prior} over fit units ({bg} per layer)")

    @property
    def concepts(self) -> list[str]:
        """The concept list (with `model="auto"`, the one for real units is loaded on first use)."""
        return self._backends["fixed"].concepts if self._fixed else self._backend("real").concepts

    def _view(self, backend: _Backend) -> str:
        return _default_view(backend.clip.name) if self.view == "auto" else self.view

    def _kind(self, unit: Exemplars) -> str:
        if self._fixed:
            return "fixed"
        return "synth" if unit.config.startswith(SYNTH_PREFIX) else "real"

    def _backend(self, kind: str) -> _Backend:
        if kind not in self._backends:  # model=auto: loaded when a unit of that kind first comes
            model = "synth" if kind == "synth" else open_clip_arch(DEFAULT_ARCH)
            self._backends[kind] = self._backend_for(load_clip(model, self.pretrained, self.device), shared=True)
        return self._backends[kind]

    def _text(self, backend: _Backend) -> torch.Tensor:
        if backend.text is None:
            key = (backend.clip.name, str(self.device), self.template, tuple(backend.concepts))
            text = _TEXT_CACHE.get(key) if backend.shared else None
            if text is None:
                text = backend.clip.encode_texts([self.template.format(c) for c in backend.concepts])
                if backend.shared:
                    _TEXT_CACHE[key] = text
            backend.text = text
        return backend.text

    # ------------------------------------------------------------------ scoring

    def _full(self, clip: ClipModel, images: torch.Tensor) -> torch.Tensor:
        return full_images(images, clip.image_size, mode=getattr(clip, "interpolation", "bicubic"))

    def _encode(self, clip: ClipModel, views: torch.Tensor) -> torch.Tensor:
        return torch.cat([clip.encode_images(views[i:i + self.batch_size])
                          for i in range(0, len(views), self.batch_size)])

    def _embed_full(self, clip: ClipModel, units: Sequence[Exemplars]) -> list[torch.Tensor]:
        """Whole-image embeddings, cached by pixel content: the units of a layer share many exemplars."""
        keys = [[(clip.name, tuple(img.shape), hashlib.blake2b(img.contiguous().numpy().tobytes(),
                                                              digest_size=16).digest())
                 for img in u.images] for u in units]
        missing: dict[tuple, tuple[int, int]] = {}
        for i, row in enumerate(keys):
            for j, key in enumerate(row):
                if key not in self._image_cache and key not in missing:
                    missing[key] = (i, j)
        todo = list(missing.items())
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start:start + self.batch_size]
            views = torch.cat([self._full(clip, units[i].images[j:j + 1]) for _, (i, j) in chunk])
            for (key, _), emb in zip(chunk, clip.encode_images(views)):
                self._image_cache[key] = emb
        out = [torch.stack([self._image_cache[key] for key in row]) for row in keys]
        for row in keys:  # most recently used last; the oldest go beyond the cap
            for key in row:
                self._image_cache.move_to_end(key)
        while len(self._image_cache) > _CACHE_IMAGES:
            self._image_cache.popitem(last=False)
        return out

    def unit_similarities(self, units: Sequence[Exemplars], kind: str | None = None) -> list[torch.Tensor]:
        """Per unit, its k x C cosine similarities between exemplar views (rank order) and concepts."""
        for u in units:
            if u.images.shape[0] == 0:
                raise MilanError(f"clip-dissect: unit {u.unit_id} has no exemplar pixels; join images first")
        if not units:
            return []
        backend = self._backend(kind or self._kind(units[0]))
        text = self._text(backend)
        if self._view(backend) == "full":
            embs = self._embed_full(backend.clip, units)
        else:
            embs, step = [], max(1, self.batch_size // max(1, units[0].images.shape[0]))
            for start in range(0, len(units), step):  # a batch's worth of regions in memory at a time
                views = [masked_regions(u.images, u.masks, backend.clip.image_size) for u in units[start:start + step]]
                flat = self._encode(backend.clip, torch.cat(views))
                embs += list(torch.split(flat, [len(v) for v in views]))
        return [e @ text.T for e in embs]

    def log_p(self, units: Sequence[Exemplars], kind: str | None = None) -> torch.Tensor:
        """U x C values of log p(c | u), the original's soft product over each unit's ranked exemplars."""
        sims = self.unit_similarities(units, kind)
        return torch.stack([soft_log_p(s, self.a, self.p_start, self.p_end, self.min_prob) for s in sims])

    def fit(self, train: Sequence[AnnotatedExemplars]) -> None:
        """The prior p(c) per layer of the training units, from their exemplar pixels; descriptions unused."""
        self._priors, self._pooled, self.fit_record = {}, {}, {}
        ids, layers = _ids_and_layers(train)
        groups: dict[tuple[str, str, str], list[int]] = {}
        for i, (uid, layer) in enumerate(zip(ids, layers)):
            config = uid.split("/", 1)[0]
            kind = "fixed" if self._fixed else ("synth" if config.startswith(SYNTH_PREFIX) else "real")
            groups.setdefault((kind, config, layer), []).append(i)
        pooled: dict[str, list[torch.Tensor]] = {}
        used: dict[str, int] = {}
        for key, idx in groups.items():
            if self.background_units is not None and len(idx) > self.background_units:
                rng = random.Random(f"{self.seed}:{key[1]}/{key[2]}")
                idx = sorted(rng.sample(idx, self.background_units))
            log_p = []
            for start in range(0, len(idx), self.batch_size):
                chunk = [u for u in (train[i] for i in idx[start:start + self.batch_size]) if u.images.shape[0]]
                if chunk:
                    log_p.append(self.log_p(chunk, key[0]))
            if log_p:
                group = torch.cat(log_p)
                self._priors[key] = log_prior(group)
                pooled.setdefault(key[0], []).append(group)
                used[f"{key[1]}/{key[2]}"] = int(group.shape[0])
        self._pooled = {kind: log_prior(torch.cat(groups_)) for kind, groups_ in pooled.items()}
        self.fit_record = {"background_units_per_layer": used}

    def _unit_prior(self, kind: str, unit: Exemplars) -> torch.Tensor | None:
        if self.prior == "layer":
            layer_prior = self._priors.get((kind, unit.config, unit.layer))
            if layer_prior is not None:
                return layer_prior
        return self._pooled.get(kind)

    def scores(self, units: Sequence[Exemplars]) -> list[torch.Tensor]:
        """Per unit, C soft-WPMI scores; each unit's depend on it and on what `fit` saw, never on its batch."""
        out: list[torch.Tensor | None] = [None] * len(units)
        by_kind: dict[str, list[int]] = {}
        for i, u in enumerate(units):
            by_kind.setdefault(self._kind(u), []).append(i)
        for kind, idx in by_kind.items():
            log_p = self.log_p([units[i] for i in idx], kind)
            for row, i in zip(log_p, idx):
                prior = self._unit_prior(kind, units[i])
                out[i] = row - self.lam * prior if prior is not None else row
        return out  # type: ignore[return-value]

    def describe(self, units: Sequence[Exemplars]) -> list[str]:
        if not len(units):
            return []
        units = list(units)
        texts = []
        for u, score in zip(units, self.scores(units)):
            concepts = self._backend(self._kind(u)).concepts
            best = score.topk(min(self.top, score.shape[0])).indices
            texts.append(" and ".join(concepts[j] for j in best.tolist()))
        return texts


def _ids_and_layers(train: Sequence[Exemplars]) -> tuple[list[str], list[str]]:
    """Unit ids and layer names, from text columns when the set has them (no pixels decoded)."""
    column = getattr(train, "column", None)
    if callable(column):
        try:
            return [str(x) for x in column("unit_id")], [str(x) for x in column("layer")]
        except (KeyError, ValueError, PermissionError):
            pass
    units: Iterable[Exemplars] = train
    pairs = [(u.unit_id, u.layer) for u in units]
    return [p[0] for p in pairs], [p[1] for p in pairs]
