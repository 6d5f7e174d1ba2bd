"""Truth metrics on the synthetic world: sanity checks of the metrics themselves, and the harness's use of them.

Three layers, as docs/truth.md describes them:
- NeuronEval's theoretical missing- and extra-label checks on the metric implementations (a metric
  that ignores missing or extra labels is caught by the same check);
- on the default synthetic world, the truth formula beats a more generic and a more specific version
  of itself, shuffled truths fall to the floor and unparseable text scores 0;
- end to end: `evaluate` on a small real build gives a constant describer exactly chance on
  identification, a describer that reads the truth the ceiling, NetDissect with the oracle segmenter
  near it, and `validate` recomputes every truth number.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from eval.metrics.truth import TruthScorer, concept_prf, iou_from_sums, pearson_from_sums
from milannotations.synth.catalog import SYNTH_CONFIGS
from milannotations.synth.formula import concept, from_truth, generic, specific, text
from milannotations.synth.neurons import sample_units

SMALL_PROBE = 100  # scenes per domain in these tests (the default is benchmarked in bench_truth.py)
RUN_CONFIG = "synth-deep-plain"  # the end-to-end runs: one within-network split


# ----------------------------------------------------------------- NeuronEval's theoretical checks

def _pearson(a, c):
    return float(pearson_from_sums(a.sum(), (a * a).sum(), (a * c).sum(), c.sum(), len(a)))


def _iou_top(a, c, alpha):
    k = math.ceil(alpha * len(a))
    active = a >= np.sort(a)[-k]
    return float(iou_from_sums((active & (c > 0)).sum(), active.sum(), c.sum()))


def _recall(a, c, alpha):  # P(concept | unit active): blind to extra labels
    k = math.ceil(alpha * len(a))
    active = a >= np.sort(a)[-k]
    return float((active & (c > 0)).sum() / active.sum())


def _precision(a, c, alpha):  # P(unit active | concept): blind to missing labels
    k = math.ceil(alpha * len(a))
    active = a >= np.sort(a)[-k]
    return float((active & (c > 0)).sum() / max(c.sum(), 1))


def _decrease_rate(metric, test: str, gamma: float, seeds: int = 100, n: int = 100_000) -> float:
    """Share of seeds where perturbing a perfect concept lowers the metric by more than 0.001
    (Neuron_Eval@5538002 theoretical_sanity_check.ipynb: neuron := concept; missing = keep each
    positive with p 0.5; extra = add Bernoulli(sum c / (n - sum c)) positives, doubling them)."""
    drops = 0
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        c = (rng.random(n) < gamma).astype(np.float64)
        if c.sum() == 0:
            continue
        a = c + 1e-9 * rng.random(n)  # the neuron is the concept (ties broken, as float maps never tie)
        if test == "missing":
            c2 = c * (rng.random(n) < 0.5)
        else:
            p = c.sum() / (n - c.sum())
            c2 = np.minimum(1.0, c + (rng.random(n) < p))
        drops += metric(a, c2) < metric(a, c) - 1e-3
    return drops / seeds


@pytest.mark.parametrize("gamma", [0.1, 0.01])
@pytest.mark.parametrize("test", ["missing", "extra"])
def test_pearson_and_iou_pass_neuroneval_checks_and_the_check_catches_blind_metrics(test, gamma):
    assert _decrease_rate(_pearson, test, gamma) >= 0.99
    assert _decrease_rate(lambda a, c: _iou_top(a, c, gamma), test, gamma) >= 0.99
    # the same check fails a metric that ignores missing (precision) or extra (recall) labels
    blind = _recall if test == "extra" else _precision
    assert _decrease_rate(lambda a, c: blind(a, c, gamma), test, gamma, seeds=30) < 0.5


def test_concept_precision_and_recall_are_blind_to_one_direction_hence_diagnostics():
    from eval.metrics.spec import metric

    truth = frozenset({"red", "circle"})
    assert concept_prf(frozenset({"circle"}), truth)[0] == 1.0  # too generic: precision does not drop
    assert concept_prf(truth | {"striped"}, truth)[1] == 1.0  # too specific: recall does not drop
    f1 = concept_prf(truth, truth)[2]
    assert concept_prf(frozenset({"circle"}), truth)[2] < f1 and concept_prf(truth | {"striped"}, truth)[2] < f1
    assert metric("truth_concept_precision").diagnostic and metric("truth_concept_recall").diagnostic
    assert not any(metric(m).diagnostic for m in ("truth_px_pearson", "truth_concept_f1", "truth_ident_top1",
                                                   "truth_exact"))


# ----------------------------------------------------------------- the default world

@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Truth scores of every unit of the four default configs (500 units, seed 0) on a small probe set."""
    cache = tmp_path_factory.mktemp("probe")
    ts = TruthScorer(probe_size=SMALL_PROBE, cache_dir=cache)
    out = {}
    for config in SYNTH_CONFIGS:
        _, family, domain = config.split("-")
        specs = sample_units(family, domain, 500, 0)
        truths = [s.truth() for s in specs]
        ctx = ts.context([config] * 500, list(range(500)), truths, {config: (0, 500)})
        fs = [from_truth(t) for t in truths]
        texts = {"truth": [text(f) for f in fs], "generic": [text(generic(f)) for f in fs],
                 "specific": [text(specific(f)) for f in fs], "shuffled": [text(f) for f in fs[7:] + fs[:7]],
                 "constant": ["objects"] * 500, "unparseable": ["a flux capacitor"] * 500}
        out[config] = {k: ts.per_unit(ctx, v) for k, v in texts.items()}
    return out


SEMANTIC = ("truth_px_pearson", "truth_px_iou", "truth_concept_f1", "truth_concept_precision",
            "truth_concept_recall")


@pytest.mark.parametrize("config", SYNTH_CONFIGS)
def test_truth_beats_its_generic_and_specific_versions_on_95_percent_of_units(world, config):
    v = world[config]
    for m in ("truth_px_pearson", "truth_concept_f1"):
        assert np.mean(v["truth"][m] > v["generic"][m]) >= 0.95, m
        assert np.mean(v["truth"][m] > v["specific"][m]) >= 0.95, m


def test_a_metric_failing_the_semantic_check_anywhere_is_a_diagnostic(world):
    """The flag in the metric table is what the check finds: ranked metrics pass on every config."""
    from eval.metrics.spec import metric

    for m in SEMANTIC:
        worst = min(min(np.mean(v["truth"][m] > v["generic"][m]), np.mean(v["truth"][m] > v["specific"][m]))
                    for v in world.values())
        assert metric(m).diagnostic == (worst < 0.95), (m, worst)


@pytest.mark.parametrize("config", SYNTH_CONFIGS)
def test_shuffled_truths_fall_to_the_floor_and_unparseable_text_scores_zero(world, config):
    v = world[config]
    n = 500
    for m in ("truth_px_pearson", "truth_px_iou", "truth_ident_top1"):
        top, floor, shuffled = v["truth"][m].mean(), v["constant"][m].mean(), v["shuffled"][m].mean()
        assert top > floor + 0.2
        assert (shuffled - floor) / (top - floor) < 0.15, m  # at the floor, far below the truth
    for m in ("truth_px_pearson", "truth_px_iou", "truth_concept_f1", "truth_exact"):
        assert np.all(v["unparseable"][m] == 0.0)
    # a constant (and the empty formula) identifies at exactly chance: 1/n and H_n/n
    harmonic = float(np.sum(1.0 / np.arange(1, n + 1)))
    for k in ("constant", "unparseable"):
        assert v[k]["truth_ident_top1"].mean() == pytest.approx(1 / n, abs=1e-12)
        assert v[k]["truth_ident_mrr"].mean() == pytest.approx(harmonic / n, abs=1e-12)


def test_truth_scores_one_on_its_own_normalised_metrics_and_exact_match(world):
    v = world["synth-deep-plain"]["truth"]
    assert v["truth_exact"].mean() == 1.0 and v["truth_concept_f1"].mean() == 1.0
    np.testing.assert_array_equal(v["truth_px_pearson_norm"][:, 0], v["truth_px_pearson_norm"][:, 1])


def test_duplicate_truths_tie_in_identification_and_text_retrieval():
    from eval.metrics.retrieval import retrieval_per_unit, tie_groups

    sim = np.array([[0.9, 0.8, 0.1], [0.7, 0.95, 0.2], [0.1, 0.3, 0.99]])
    top1, rr = retrieval_per_unit(sim)
    assert top1.tolist() == [1.0, 1.0, 1.0]
    # units 0 and 1 share a truth: no description can tell them apart, so each is a coin flip between them
    top1, rr = retrieval_per_unit(tie_groups(sim, np.array([0, 0, 1])))
    assert top1.tolist() == [0.5, 0.5, 1.0] and rr.tolist() == [0.75, 0.75, 1.0]


def test_probe_scenes_are_disjoint_from_pools_and_training_sets():
    from baselines.clip.synth_clip import SynthClipConfig
    from milannotations.synth import backbone
    from milannotations.synth.build import POOL_SIZE
    from milannotations.synth.probe import PROBE_OFFSET

    # exemplar pools: 0 .. pool size; backbone and CLIP training: 1,000,000 .. (the segmenter: another seed)
    assert POOL_SIZE < backbone.TRAIN_OFFSET
    assert backbone.TRAIN_OFFSET + backbone.TRAIN_SCENES + backbone.VAL_SCENES < PROBE_OFFSET
    assert 1_000_000 + SynthClipConfig().pool_scenes < PROBE_OFFSET


def test_selected_units_are_the_same_units():
    import torch

    from milannotations.synth.neurons import INPUT_CHANNELS
    from milannotations.synth.probe import config_units

    model = config_units("synth-shallow-cluttered", 0, 500)
    x = torch.rand(3, INPUT_CHANNELS, 28, 28)
    picked = [4, 99, 311]
    assert torch.equal(model(x)[:, picked], model.units.select(picked)(x))


# ----------------------------------------------------------------- end to end

class TruthReader:
    """A test describer that reads each unit's truth from the corpus files (out of band, by unit id)
    and states it: the truth ceiling as a describer."""

    def __init__(self, root):
        import milannotations as mn
        from milannotations.contract import DescriberMeta

        self.meta = DescriberMeta(name="truth-reader", version="1", oracle=True)
        self.truth = {}
        for config in [RUN_CONFIG]:
            ds = mn.load(config, root=root)
            for split in ("train", "test"):
                self.truth.update(zip(ds[split]["unit_id"], ds[split]["truth"]))

    def fit(self, train) -> None:
        pass

    def describe(self, units) -> list[str]:
        return [text(from_truth(self.truth[u.unit_id])) for u in units]


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    from milannotations.synth.build import build_synth

    return build_synth(tmp_path_factory.mktemp("synth") / "corpus", seed=0, units=60, pool_size=100,
                       progress=False)


@pytest.fixture(scope="module")
def runs(synth_root, tmp_path_factory):
    from eval import evaluate

    out = {}
    for name, describer, args, configs in (
            ("constant", "constant", None, None),  # the whole protocol: a submission the leaderboard validates
            ("truth", TruthReader(synth_root), None, [RUN_CONFIG]),
            ("netdissect", "netdissect", {"segmenter": "oracle"}, [RUN_CONFIG])):
        folder = tmp_path_factory.mktemp(f"run-{name}")
        out[name] = (evaluate(describer, root=synth_root, configs=configs, describer_args=args, output=folder,
                              progress=False), folder)
    return out


def test_constant_identifies_at_exactly_chance_and_truth_reaches_the_ceiling(runs):
    for split in runs["constant"][0]["splits"]:
        n = split["n_units"]
        assert split["metrics"]["truth_ident_top1"]["value"] == pytest.approx(1 / n, abs=1e-12)
        assert split["metrics"]["truth_ident_mrr"]["value"] == pytest.approx(np.sum(1 / np.arange(1, n + 1)) / n,
                                                                              abs=1e-12)
        assert split["parse"]["parsed"] == split["parse"]["descriptions"] == n
        assert set(split["humans"]) == {m for m in split["metrics"] if m.startswith("truth_")}
    for split in runs["truth"][0]["splits"]:
        for m, score in split["metrics"].items():
            if m.startswith("truth_"):
                assert score["value"] == pytest.approx(split["ceiling"][m]["value"], abs=1e-12), m
        assert split["metrics"]["truth_exact"]["value"] == 1.0
        assert split["ceiling"]["truth_px_pearson"]["signature"].endswith("ceiling:truth-formula")
    assert runs["netdissect"][0]["describer"]["oracle"] is True
    ratio = np.mean([s["metrics"]["truth_px_pearson_norm"]["value"] for s in runs["netdissect"][0]["splits"]])
    floor = np.mean([s["floor"]["truth_px_pearson_norm"]["value"] for s in runs["netdissect"][0]["splits"]])
    assert ratio > 0.6 and ratio > floor + 0.3  # the oracle segmenter names most units' truth


def test_validate_recomputes_every_truth_number(runs, synth_root, tmp_path):
    from leaderboard.submission import write_submission
    from leaderboard.validate import validate_submission

    sub = write_submission(runs["constant"][1], root=tmp_path / "subs")
    rep = validate_submission(sub, corpus_root=synth_root)
    assert rep.ok, [str(p) for p in rep.problems]
    results = json.loads((sub / "results.json").read_text())
    results["splits"][0]["metrics"]["truth_px_iou"]["value"] += 0.01
    (sub / "results.json").write_text(json.dumps(results))
    rep = validate_submission(sub, corpus_root=synth_root)
    assert any("metrics.truth_px_iou" in str(p) for p in rep.errors)
