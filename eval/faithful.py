"""Faithfulness in a run: which labeller scores the descriptions, its context per split, and whether
the describer is being scored by its own model.

`milan-eval --labeller NAME` adds exemplar faithfulness (eval/metrics/faithfulness.py) to every split:
the describer, both floors, the ceiling (the truth formula on synthetic splits, else the annotators)
and the annotators' own descriptions (`humans`) are all scored through the same labeller. A describer
that relies on the labeller's own model (NetDissect with the segmenter that labels, CLIP-Dissect with
the CLIP that labels) is flattered by agreeing with itself: the split records `same_model` and the CLI
says so.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np

from .splits import SplitData


def describer_uses(describer: Any) -> set[str]:
    """The models a describer relies on, spelled as labellers spell theirs (`segmenter:<name>`,
    `clip:<name>`): its own `uses` when it declares one, else what its segmenter and CLIP backends say."""
    declared = getattr(describer, "uses", None)
    if declared is not None:
        return {str(x) for x in declared}
    out: set[str] = set()
    seg = getattr(describer, "segmenter", None)
    if getattr(seg, "name", None):
        out.add(f"segmenter:{seg.name}")
    clips = [getattr(b, "clip", None) for b in getattr(describer, "_backends", {}).values()]
    clips.append(getattr(describer, "_clip", None))
    out |= {f"clip:{c.name}" for c in clips if getattr(c, "name", None)}
    if getattr(getattr(describer, "meta", None), "oracle", False):
        out.add("synth:truth")
    return out


class RunFaithfulness:
    """One labeller for a run: per split, the exemplar context (labelled once) and, on synthetic
    splits, the probe-set context (the world's probe scenes, labelled once per domain), and the scores."""

    def __init__(self, labeller, n_boot: int = 1000, seed: int = 0, probe_size: int | None = None,
                 args: Mapping[str, Any] | None = None):
        from .metrics.faithfulness import FaithfulnessScorer

        self.labeller, self.args = labeller, dict(args or {})
        self.scorer = FaithfulnessScorer(labeller, n_boot=n_boot, seed=seed)
        self.seed, self.probe_size = seed, probe_size
        self._contexts: dict[tuple[str, str], Any] = {}
        self._probes: dict[tuple[str, str], Any] = {}
        self._scenes: dict[tuple, Any] = {}

    def context(self, sd: SplitData):
        key = (sd.split.name, sd.revision)
        if key not in self._contexts:
            groups = sd.truth.groups if sd.truth is not None else None
            self._contexts[key] = self.scorer.exemplar_context(list(sd.test), groups)
        return self._contexts[key]

    # ------------------------------------------------------------------ synthetic probe set
    def _probe_parts(self, sd: SplitData):
        """Per probe domain of a synthetic split: (unit positions, ProbeContext)."""
        key = (sd.split.name, sd.revision)
        if key in self._probes:
            return self._probes[key]
        from milannotations.synth.build import parse_config
        from milannotations.synth.probe import PROBE_SIZE, signature

        size = int(self.probe_size or PROBE_SIZE)
        t = sd.truth
        world = {c: (seed, n) for c, seed, n in t.world}
        alpha, how = self._alpha(sd, size, world)
        parts = []
        by_domain: dict[str, list[int]] = {}
        for i, c in enumerate(t.configs):
            by_domain.setdefault(parse_config(c)[1], []).append(i)
        for domain, pos in by_domain.items():
            acts, images, ids = [], None, None
            for config in dict.fromkeys(t.configs[i] for i in pos):
                mine = [i for i in pos if t.configs[i] == config]
                seed, n = world[config]
                images, a, ids = self._scene_images(config, seed, n, [t.units[i] for i in mine], size)
                acts.append((mine, a))
            order = [i for mine, _ in acts for i in mine]
            a = np.concatenate([x for _, x in acts], axis=1)
            groups = np.asarray(t.groups)[order]
            ctx = self.scorer.probe_context(a, images, [f"synth-{domain}"] * len(ids), ids, alpha=alpha,
                                            alpha_how=how, probe=signature(size, world[t.configs[pos[0]]][0]),
                                            groups=groups, labelled=self._labelled(domain, images, ids))
            parts.append((order, ctx))
        self._probes[key] = parts
        return parts

    def _scene_images(self, config, seed, n, units, size):
        import torch

        from milannotations.synth.probe import probe_image_max

        images, a, ids = probe_image_max(config, seed, n, units, size)
        return torch.from_numpy(images), a, ids

    def _labelled(self, domain: str, images, ids):
        key = ("labelled", domain, len(ids))
        if key not in self._scenes:
            from .metrics.faithfulness import label_images

            self._scenes[key] = label_images(self.labeller, images, [f"synth-{domain}"] * len(ids), ids,
                                             (self.scorer.resolution,) * 2)
        return self._scenes[key]

    def _alpha(self, sd: SplitData, size: int, world) -> tuple[float, str]:
        """alpha on (at most 100, seeded) validation units: the split's training units, their annotations
        as reference descriptions (NeuronEval's `find_best_alpha`; never the test units or their truth)."""
        from milannotations.synth.build import parse_config

        from .metrics.faithfulness import DEFAULT_ALPHA, choose_alpha

        ids = sd.train.unit_ids
        ids = list(ids() if callable(ids) else ids)
        anns = sd.train.annotations()
        cand = [(uid, a[0]) for uid, a in zip(ids, anns) if a and uid.split("/", 1)[0] in world]
        domains = {parse_config(uid.split("/", 1)[0])[1] for uid, _ in cand}
        if len(cand) < 2 or len(domains) != 1:
            return DEFAULT_ALPHA, "fixed:neuroneval-hidden-layer"
        rng = np.random.default_rng(self.seed)
        cand = [cand[i] for i in sorted(rng.permutation(len(cand))[:100])]
        acts, texts = [], []
        images = scene_ids = None
        for config in dict.fromkeys(uid.split("/", 1)[0] for uid, _ in cand):
            mine = [(uid, t) for uid, t in cand if uid.split("/", 1)[0] == config]
            seed, n = world[config]
            images, a, scene_ids = self._scene_images(config, seed, n, [int(uid.rsplit("/", 1)[1]) for uid, _ in mine],
                                                      size)
            acts.append(a)
            texts += [t for _, t in mine]
        labelled = self._labelled(domains.pop(), images, scene_ids)
        distinct = list(dict.fromkeys(texts))
        scores = labelled.scores(distinct)
        col = {x: j for j, x in enumerate(distinct)}
        alpha = choose_alpha(np.concatenate(acts, axis=1).T, scores[[col[x] for x in texts]])
        return alpha, f"val:{len(cand)}-train-units"

    def _probe_values(self, sd: SplitData, texts) -> dict[str, np.ndarray] | None:
        if sd.truth is None:
            return None
        texts = list(texts)
        parts = self._probe_parts(sd)
        out: dict[str, np.ndarray] = {}
        for order, ctx in parts:
            vals = self.scorer.probe_per_unit(ctx, [texts[i] for i in order])
            for k, v in vals.items():
                out.setdefault(k, np.zeros(len(texts)))[order] = v
        return out

    def _probe_signature(self, sd: SplitData) -> str:
        return self._probe_parts(sd)[0][1].signature

    # ------------------------------------------------------------------ scores
    def _all(self, sd: SplitData, passes: list[list[str]], suffix: str = "") -> dict:
        from .metrics.faithfulness import EXEMPLAR_METRICS, PROBE_METRICS

        ctx = self.context(sd)
        out = self.scorer.summarize_passes(EXEMPLAR_METRICS, [self.scorer.exemplar_per_unit(ctx, p) for p in passes],
                                           ctx.signature + suffix)
        if sd.truth is not None:
            out.update(self.scorer.summarize_passes(PROBE_METRICS, [self._probe_values(sd, p) for p in passes],
                                                    self._probe_signature(sd) + suffix))
        return out

    def score(self, sd: SplitData, texts) -> dict:
        return self._all(sd, [list(texts)])

    def ceiling(self, sd: SplitData) -> dict:
        """The truth formulas on synthetic splits, else the annotators' mean (the best known text)."""
        if sd.truth is not None:
            from milannotations.synth.formula import from_truth, text

            return self._all(sd, [[text(from_truth(t)) for t in sd.truth.truths]], "|ceiling:truth-formula")
        return self.humans(sd)

    def humans(self, sd: SplitData) -> dict:
        k = min(len(r) for r in sd.references)
        return self._all(sd, [[r[a] for r in sd.references] for a in range(k)], f"|humans:annotators:{k}")

    def record(self, uses: Iterable[str]) -> dict:
        """What results.json says about the labeller, and the models it shares with the describer."""
        from baselines.labellers import shared_models

        shared = shared_models(sorted(uses), self.labeller)
        return {"name": self.labeller.name, "args": self.args, "model": self.labeller.model,
                "exact": bool(self.labeller.exact), "same_model": shared}

def build_run_faithfulness(spec: str | None, args: Mapping[str, Any] | None, *, device: str, seed: int,
                           n_boot: int = 1000) -> RunFaithfulness | None:
    if spec in (None, "", "none"):
        return None
    from baselines.labellers import build_labeller

    # the labeller's seed is the synthetic world's (the oracle reads scenes of the default world, seed 0,
    # unless its args say otherwise); the run's seed drives the bootstrap, as for the other scorers
    return RunFaithfulness(build_labeller(spec, args, device=device, seed=0), n_boot=n_boot, seed=seed,
                           args={k: v for k, v in dict(args or {}).items() if k != "device"})
