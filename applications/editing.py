"""The paper's editing experiment, end to end on the synthetic world (offline, CPU).

Paper (section 5): a ResNet18 trained on ten ImageNet classes, half of whose
training images carry the class name as text, is fooled by test images that
carry other text; MILAN describes every unit, the units described as text
are ablated "least important first" and test accuracy rises (58.8% -> 63.7%
with 13 units), while ablating the same number of units ranked without their
descriptions does not help.

Here (`synth_task`): the class is the main object's shape, the cue a star in
the corner whose colour names the class, on half the training scenes.
Validation and test scenes carry *another* class's star (the adversarial
shift), on disjoint scene indices. Per seed:

1. train the classifier (and, for reference, one trained without any cue);
2. exemplars of all 240 units on held-out training-distribution scenes
   (`milannotations.exemplars`, 15 per unit, top-1% masks);
3. a describer (MILAN trained on the synthetic corpus) describes every unit;
4. cue units = those whose description names a star (`CUE_WORDS`);
5. every unit's single-unit accuracy cost on the validation scenes; the cue
   units are ablated least cost first, and the number ablated, k*, is the one
   with the best validation accuracy;
6. test accuracy at k*, against k* random units (several seeded draws) and
   against all units ordered by the same cost (its own count chosen on
   validation too, and at k*).

Nothing is chosen on test scenes.
"""
from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from milannotations.contract import Describer, Exemplars

from .ablate import (UnitRef, least_cost_first, random_order, select_by_words, single_unit_costs, wilson)
from .synth_task import CUE_WORDS, IMAGE_SIZE, LAYERS, ProbeSet, TaskNet, TaskSet, make_set, trained_classifier

T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


@dataclass(frozen=True)
class EditSizes:
    """Sizes of one run; `quick()` is the test-sized variant."""

    train_scenes: int = 1600
    probe_scenes: int = 300
    val_scenes: int = 300
    test_scenes: int = 600
    epochs: int = 6
    random_draws: int = 10
    reference: bool = True  # also train the no-cue model (the paper's 80.8% row)

    @classmethod
    def quick(cls) -> "EditSizes":
        return cls(train_scenes=600, probe_scenes=120, val_scenes=100, test_scenes=120, epochs=4,
                   random_draws=3, reference=False)


def mean_interval(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean and 95% t-interval over seeds (the interval is the mean itself for one seed)."""
    v = np.asarray(values, float)
    m = float(v.mean())
    if len(v) < 2:
        return m, m, m
    half = T975.get(len(v) - 1, 1.96) * float(v.std(ddof=1)) / math.sqrt(len(v))
    return m, m - half, m + half


def sub_seed(*parts) -> int:
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:4], "little")


# ---------------------------------------------------------------------------- describing a classifier
def unit_exemplars(model: TaskNet, probe: TaskSet, config: str, *, k: int = 15) -> list[Exemplars]:
    """Every unit's top-k probe scenes (112 px) and top-1% masks, as the describer contract's Exemplars."""
    from milannotations.exemplars import compute_exemplars, exemplar_maps, masks_from_maps

    dataset = ProbeSet(probe)
    layers = list(LAYERS)
    stats = compute_exemplars(model, layers, dataset, k=k, quantile=0.99, progress=False)
    maps, _images = exemplar_maps(model, layers, dataset, stats, progress=False)
    thresholds = stats.thresholds
    out = []
    for layer in layers:
        ids = stats.top_ids[layer]
        for u in range(stats.units(layer)):
            valid = [(slot, int(i)) for slot, i in enumerate(ids[u].tolist()) if i >= 0]
            slots = [s for s, _ in valid]
            images = probe.images[[i for _, i in valid]]
            masks = masks_from_maps(maps[layer][u, slots], thresholds[layer][u], (IMAGE_SIZE, IMAGE_SIZE))
            out.append(Exemplars(unit_id=f"{config}/{layer}/{u}", model="synth-tasknet", dataset="synth-task",
                                 layer=layer, unit=u, images=images, masks=masks,
                                 image_ids=tuple(i for _, i in valid)))
    return out


def describe_model(model: TaskNet, probe: TaskSet, describer: Describer, config: str) -> dict[UnitRef, str]:
    units = unit_exemplars(model, probe, config)
    texts = describer.describe(units)
    return {UnitRef(u.layer, u.unit): t for u, t in zip(units, texts)}


# ---------------------------------------------------------------------------- fast, exact ablation
class CachedEval:
    """Per-image correctness of a TaskNet with units zeroed, reusing the activations below them.

    Equivalent to `ablate.correctness` with forward hooks (tests check it), but a
    single-unit ablation of conv4 only reruns conv4's successors, which makes
    the 240 single-unit costs cheap.
    """

    def __init__(self, model: TaskNet, data: TaskSet) -> None:
        self.model, self.labels = model, data.labels.numpy()
        self.layer_index = {name: i for i, name in enumerate(LAYERS)}
        self.cache: list[torch.Tensor] = []
        with torch.no_grad():
            h = data.inputs()
            for block in model.blocks():
                h = block(h)
                self.cache.append(h)
            self.base = model.forward_from(len(LAYERS) - 1, h).argmax(1).numpy() == self.labels

    def __call__(self, units: Sequence[UnitRef]) -> np.ndarray:
        if not units:
            return self.base
        by_layer: dict[int, list[int]] = {}
        for u in units:
            by_layer.setdefault(self.layer_index[u.layer], []).append(u.unit)
        start = min(by_layer)
        blocks = self.model.blocks()
        with torch.no_grad():
            h = self.cache[start].clone()
            h[:, by_layer[start]] = 0
            for i in range(start + 1, len(blocks)):
                h = blocks[i](h)
                if i in by_layer:
                    h = h.clone()
                    h[:, by_layer[i]] = 0
            pred = self.model.fc(h.mean(dim=(2, 3))).argmax(1).numpy()
        return pred == self.labels


# ---------------------------------------------------------------------------- one seed
@dataclass
class SeedResult:
    seed: int
    units: int
    cue_units: list[UnitRef]
    k_star: int
    base: dict  # accuracies (Wilson dicts) of the unedited model
    edited: dict  # test accuracy with the k* cue units ablated
    random: dict  # mean test accuracy over draws of k* random units, and each draw
    cost_same_k: dict  # all units by validation cost, first k*
    cost_tuned: dict  # all units by validation cost, count chosen on validation
    k_cost: int
    reference: dict | None  # the model trained without the cue, on the adversarial test scenes
    curves: dict = field(default_factory=dict)  # test accuracy vs count per ordering
    descriptions: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)

    def summary_row(self) -> dict:
        return {"seed": self.seed, "units": self.units, "cue_units": len(self.cue_units), "k_star": self.k_star,
                "test_unedited": self.base["test_adversarial"]["value"], "test_edited": self.edited["value"],
                "test_random": self.random["value"], "test_cost_same_k": self.cost_same_k["value"],
                "test_cost_tuned": self.cost_tuned["value"], "k_cost": self.k_cost,
                "test_no_cue_model": self.reference["value"] if self.reference else None}


def _acc(c: np.ndarray) -> dict:
    return wilson(int(np.sum(c)), len(c)).to_dict()


def grid(n: int, points: int) -> list[int]:
    """0..n in at most `points` + 1 evenly spaced counts, always with 0 and n."""
    return sorted({int(round(n * i / points)) for i in range(points + 1)}) if n > points else list(range(n + 1))


def best_count(evaluate: Callable[[Sequence[UnitRef]], np.ndarray], order: Sequence[UnitRef],
               counts: Sequence[int]) -> tuple[int, list[float]]:
    """The count with the highest accuracy (first of ties, so the fewest units) and every count's accuracy."""
    accs = [float(np.mean(evaluate(list(order[:n])))) for n in counts]
    return int(counts[int(np.argmax(accs))]), accs


def run_seed(seed: int, describer: Describer, sizes: EditSizes = EditSizes(), *,
             cue_words: Sequence[str] = CUE_WORDS, log: Callable[[str], None] = lambda s: None) -> SeedResult:
    t = {"start": time.perf_counter()}
    probe = make_set("probe", sizes.probe_scenes, seed, "half")
    val = make_set("val", sizes.val_scenes, seed, "other")
    test = make_set("test", sizes.test_scenes, seed, "other")
    test_true = make_set("test", sizes.test_scenes, seed, "true")
    test_none = make_set("test", sizes.test_scenes, seed, "none")
    t["render"] = time.perf_counter()
    model, info = trained_classifier(sizes.train_scenes, seed, "half", epochs=sizes.epochs)
    reference = None
    if sizes.reference:
        clean, _ = trained_classifier(sizes.train_scenes, seed, "none", epochs=sizes.epochs)
        reference = _acc(CachedEval(clean, test)(()))
    t["train"] = time.perf_counter()
    descriptions = describe_model(model, probe, describer, f"synth-task-seed{seed}")
    t["describe"] = time.perf_counter()
    all_units = sorted(descriptions)
    cue = select_by_words(descriptions, cue_words)
    val_eval, test_eval = CachedEval(model, val), CachedEval(model, test)
    costs = single_unit_costs(val_eval, all_units)
    cue_order = least_cost_first(cue, costs)
    k_star, _ = best_count(val_eval, cue_order, list(range(len(cue_order) + 1)))
    cost_order = least_cost_first(all_units, costs)
    k_cost, _ = best_count(val_eval, cost_order, grid(len(cost_order), 60))
    draws = [random_order(all_units, sub_seed("edit-random", seed, r)) for r in range(sizes.random_draws)]
    random_accs = [float(np.mean(test_eval(d[:k_star]))) for d in draws]
    counts = grid(len(cue_order), 12)
    curves = {
        "counts": counts,
        "cue units, least cost first": [float(np.mean(test_eval(cue_order[:n]))) for n in counts],
        "random units (mean of 3 draws)": [float(np.mean([np.mean(test_eval(d[:n])) for d in draws[:3]]))
                                           for n in counts],
        "all units, least cost first": [float(np.mean(test_eval(cost_order[:n]))) for n in counts],
    }
    t["ablate"] = time.perf_counter()
    base = {"test_adversarial": _acc(test_eval(())), "val_adversarial": _acc(val_eval(())),
            "test_true_cue": _acc(CachedEval(model, test_true)(())), "test_no_cue": _acc(CachedEval(model, test_none)(()))}
    seconds = {"render": t["render"] - t["start"], "train": t["train"] - t["render"],
               "describe": t["describe"] - t["train"], "ablate": t["ablate"] - t["describe"]}
    log(f"seed {seed}: {len(cue)}/{len(all_units)} cue units, k*={k_star}, test {base['test_adversarial']['value']:.3f}"
        f" -> {np.mean(test_eval(cue_order[:k_star])):.3f} (random {np.mean(random_accs):.3f}, cost-ranked "
        f"{np.mean(test_eval(cost_order[:k_star])):.3f}); " + ", ".join(f"{k} {v:.0f}s" for k, v in seconds.items()))
    n_test = len(test)
    rmean = float(np.mean(random_accs))
    return SeedResult(
        seed=seed, units=len(all_units), cue_units=cue, k_star=k_star, base=base,
        edited=_acc(test_eval(cue_order[:k_star])),
        random={**wilson(int(round(rmean * n_test)), n_test).to_dict(), "value": rmean, "draws": random_accs},
        cost_same_k=_acc(test_eval(cost_order[:k_star])), cost_tuned=_acc(test_eval(cost_order[:k_cost])),
        k_cost=k_cost, reference=reference, curves=curves,
        descriptions={str(u): d for u, d in descriptions.items()}, seconds={**seconds, "train_info": info})


def summarize(results: Sequence[SeedResult]) -> dict[str, tuple[float, float, float]]:
    """Mean and 95% t-interval over seeds of each accuracy and count."""
    rows = [r.summary_row() for r in results]
    keys = [k for k in rows[0] if k != "seed" and all(r[k] is not None for r in rows)]
    out = {k: mean_interval([r[k] for r in rows]) for k in keys}
    out["edited_minus_unedited"] = mean_interval([r["test_edited"] - r["test_unedited"] for r in rows])
    out["edited_minus_random"] = mean_interval([r["test_edited"] - r["test_random"] for r in rows])
    out["edited_minus_cost_same_k"] = mean_interval([r["test_edited"] - r["test_cost_same_k"] for r in rows])
    return out
