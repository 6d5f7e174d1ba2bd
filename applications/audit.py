"""The paper's audit, reproduced on the synthetic world: how many units are about a concept that the
training data had, against a model whose training data had it removed.

Paper (section 5): twelve torchvision CNNs trained on ImageNet and on
face-blurred ImageNet; units whose MILAN description names a face, head,
nose, eyes or mouth: 213 with faces, 142 blurred.

Here both models are `synth_task.TaskNet` shape classifiers trained on the
same scenes except that for the "without" model every object that would have
been striped is drawn in a flat colour (`drop_texture`, the analogue of
blurring a face: the object stays, its pattern goes). Exemplars of both come
from the same probe scenes, which do contain stripes; the describer describes
every unit; a unit counts when its description names stripes in any of the
world's words for them (`concept_words`). Counts are reported per seed with
a Wilson interval over units, and as a mean over seeds with a t-interval.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from milannotations.contract import Describer

from .ablate import select_by_words, wilson
from .editing import describe_model, mean_interval
from .synth_task import concept_words, make_set, trained_classifier


@dataclass(frozen=True)
class AuditSizes:
    train_scenes: int = 1600
    probe_scenes: int = 300
    epochs: int = 6
    concept: str = "striped"

    @classmethod
    def quick(cls) -> "AuditSizes":
        return cls(train_scenes=600, probe_scenes=120, epochs=4)


@dataclass
class AuditSeed:
    seed: int
    units: int
    with_concept: list[str]  # unit names counted in the model trained with the concept
    without_concept: list[str]
    descriptions: dict = field(default_factory=dict)
    seconds: float = 0.0

    def row(self) -> dict:
        w, wo = wilson(len(self.with_concept), self.units), wilson(len(self.without_concept), self.units)
        return {"seed": self.seed, "units": self.units,
                "with": len(self.with_concept), "with_low": w.low * self.units, "with_high": w.high * self.units,
                "without": len(self.without_concept), "without_low": wo.low * self.units,
                "without_high": wo.high * self.units}


def run_seed(seed: int, describer: Describer, sizes: AuditSizes = AuditSizes(), *,
             words: Sequence[str] | None = None, log: Callable[[str], None] = lambda s: None) -> AuditSeed:
    t0 = time.perf_counter()
    words = tuple(words or concept_words(sizes.concept))
    probe = make_set("probe", sizes.probe_scenes, seed, "none")
    counted, descriptions = {}, {}
    for arm, drop in (("with", None), ("without", sizes.concept)):
        model, _ = trained_classifier(sizes.train_scenes, seed, "none", drop_texture=drop, epochs=sizes.epochs)
        desc = describe_model(model, probe, describer, f"synth-audit-{arm}-seed{seed}")
        counted[arm] = [str(u) for u in select_by_words(desc, words)]
        descriptions[arm] = {str(u): d for u, d in desc.items()}
        units = len(desc)
    result = AuditSeed(seed, units, counted["with"], counted["without"], descriptions, time.perf_counter() - t0)
    log(f"audit seed {seed}: {len(counted['with'])} vs {len(counted['without'])} of {units} units name "
        f"{sizes.concept} ({result.seconds:.0f}s)")
    return result


def summarize(results: Sequence[AuditSeed]) -> dict[str, tuple[float, float, float]]:
    return {"with": mean_interval([len(r.with_concept) for r in results]),
            "without": mean_interval([len(r.without_concept) for r in results]),
            "difference": mean_interval([len(r.with_concept) - len(r.without_concept) for r in results])}
