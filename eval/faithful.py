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
    """One labeller for a run: per split, the exemplar context (labelled once) and the scores."""

    def __init__(self, labeller, n_boot: int = 1000, seed: int = 0):
        from .metrics.faithfulness import FaithfulnessScorer

        self.labeller = labeller
        self.scorer = FaithfulnessScorer(labeller, n_boot=n_boot, seed=seed)
        self._contexts: dict[tuple[str, str], Any] = {}

    def context(self, sd: SplitData):
        key = (sd.split.name, sd.revision)
        if key not in self._contexts:
            groups = sd.truth.groups if sd.truth is not None else None
            self._contexts[key] = self.scorer.exemplar_context(list(sd.test), groups)
        return self._contexts[key]

    def score(self, sd: SplitData, texts) -> dict:
        return self.scorer.score_exemplars(self.context(sd), list(texts))

    def ceiling(self, sd: SplitData) -> dict:
        """The truth formulas on synthetic splits, else the annotators' mean (the best known text)."""
        if sd.truth is not None:
            from milannotations.synth.formula import from_truth, text

            truths = [text(from_truth(t)) for t in sd.truth.truths]
            return self.scorer.score_exemplars(self.context(sd), truths, "|ceiling:truth-formula")
        return self.humans(sd)

    def humans(self, sd: SplitData) -> dict:
        return self.scorer.humans_exemplars(self.context(sd), sd.references)

    def record(self, uses: Iterable[str]) -> dict:
        """What results.json says about the labeller, and the models it shares with the describer."""
        from baselines.labellers import shared_models

        shared = shared_models(sorted(uses), self.labeller)
        return {"name": self.labeller.name, "model": self.labeller.model, "exact": bool(self.labeller.exact),
                "same_model": shared}


def build_run_faithfulness(spec: str | None, args: Mapping[str, Any] | None, *, device: str, seed: int,
                           n_boot: int = 1000) -> RunFaithfulness | None:
    if spec in (None, "", "none"):
        return None
    from baselines.labellers import build_labeller

    # the labeller's seed is the synthetic world's (the oracle reads scenes of the default world, seed 0,
    # unless its args say otherwise); the run's seed drives the bootstrap, as for the other scorers
    return RunFaithfulness(build_labeller(spec, args, device=device, seed=0), n_boot=n_boot, seed=seed)
