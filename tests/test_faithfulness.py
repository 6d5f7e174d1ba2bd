"""Faithfulness metrics (eval/metrics/faithfulness.py) and labellers (baselines/labellers/).

The metric functions are checked against scikit-learn's definitions, then put through NeuronEval's
theoretical sanity checks (Oikarinen et al., ICML 2025, `Neuron_Eval@5538002:theoretical_sanity_check`:
the neuron equals the concept; *missing labels* keep each positive with probability 1/2, *extra labels*
add Bernoulli(p) positives with p = sum(c) / (|D| - sum(c)); a metric passes when its score drops by more
than 0.001 of its range), re-typed here: the ranked metrics pass both, the diagnostics fail the one the
metric table says.
"""
from __future__ import annotations

import numpy as np
import pytest

from eval.metrics import faithfulness as fm
from eval.metrics.spec import metric


def _perturb(c: np.ndarray, how: str, rng: np.random.Generator) -> np.ndarray:
    """NeuronEval's perturbations of a binary concept vector."""
    if how == "missing":
        return c & (rng.random(c.shape) < 0.5)
    p = c.sum() / (c.size - c.sum())
    return c | (rng.random(c.shape) < p)


def _drops(score, how: str, gamma: float, seeds: int = 20, n: int = 20000) -> float:
    """Share of seeds where score(neuron, perturbed concept) < score(neuron, concept) - 0.001."""
    hits = 0
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        c = rng.random(n) < gamma
        a = c + 1e-3 * rng.random(n)  # the neuron is the concept (ties broken, so top-alpha is exact)
        hits += score(a, _perturb(c, how, rng)) < score(a, c) - 1e-3
    return hits / seeds


PROBE_RANKED = ("probe_pearson", "probe_auprc", "probe_iou", "probe_f1")


@pytest.mark.parametrize("gamma", [0.1, 0.01])
@pytest.mark.parametrize("how", ["missing", "extra"])
@pytest.mark.parametrize("name", PROBE_RANKED)
def test_ranked_probe_metrics_pass_neuroneval_checks(name, how, gamma):
    def score(a, c):
        return float(fm.probe_values(a[None], c[None].astype(np.float64), alpha=float((a > 0.5).mean()))[name][0])

    assert _drops(score, how, gamma) >= 0.9
    assert not metric(name).diagnostic


@pytest.mark.parametrize("gamma", [0.001, 0.0005])
def test_cosy_auc_fails_missing_labels(gamma):
    """CoSy/INVERT's AUC barely penalises a too specific description (by about gamma/2, below the
    checks' 0.001 for rare concepts, as NeuronEval found): it is a diagnostic."""
    def score(a, c):
        return float(fm.probe_values(a[None], c[None].astype(np.float64), alpha=gamma)["probe_cosy_auc"][0])


    assert _drops(score, "missing", gamma, n=40000) < 0.5
    assert _drops(score, "extra", gamma, n=40000) >= 0.9
    assert metric("probe_cosy_auc").diagnostic and metric("probe_cosy_mad").diagnostic


@pytest.mark.parametrize("how", ["missing", "extra"])
def test_exemplar_iou_and_f1_pass_and_recall_fails_extra(how):
    """The exemplar metrics on pooled cells: IoU and F1 pass both checks, recall fails extra labels."""
    def overlap(a, c, which):
        mask = a > 0.5
        iou, f1 = fm.binary_overlap((mask & c).sum(), c.sum(), mask.sum())
        return {"iou": float(iou), "f1": float(f1), "recall": float((mask & c).sum() / mask.sum())}[which]

    for which in ("iou", "f1"):
        assert _drops(lambda a, c: overlap(a, c, which), how, 0.05) >= 0.9
    recall_drops = _drops(lambda a, c: overlap(a, c, "recall"), how, 0.05)
    assert (recall_drops >= 0.9) if how == "missing" else (recall_drops == 0.0)
    assert metric("exemplar_recall").diagnostic and not metric("exemplar_px_iou").diagnostic


def test_average_precision_and_auroc_match_scikit_learn():
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(0)
    scores = np.round(rng.random(300), 1)  # many ties: one threshold per distinct value
    targets = rng.random((4, 300)) < 0.2
    ap = fm.average_precision(scores, targets)
    for i in range(4):
        assert ap[i] == pytest.approx(average_precision_score(targets[i], scores), abs=1e-12)
        assert fm.auroc_rows(scores[None], targets[i:i + 1])[0] == pytest.approx(roc_auc_score(targets[i], scores))
    assert fm.average_precision(scores, np.zeros((1, 300), bool))[0] == 0.0


def test_top_alpha_is_neuroneval_binarisation():
    a = np.array([[5.0, 1.0, 3.0, 3.0, 0.0, 2.0, 4.0, 1.5, 0.5, 0.2]])
    assert fm.top_alpha(a, 0.2).tolist() == [[True, False, False, False, False, False, True, False, False, False]]
    assert fm.top_alpha(a, 0.3)[0].sum() == 4  # ceil(3) = 3, and the tie at the cut is kept
    assert fm.top_alpha(a, 0.0001)[0].sum() == 1


def test_choose_alpha_moves_from_the_default_only_on_evidence():
    """Validation units share their top 1% images (a hub every unit fires on most) and differ below
    it; their reference labels are their own top 10%. At alpha <= 1% every unit's active set is the
    hub, so descriptions cannot be told apart; from 2% on they can, and the tie among those goes to
    the one nearest NeuronEval's 0.005."""
    rng = np.random.default_rng(1)
    a = rng.random((12, 2000))
    a[:, :20] += 10 + rng.random((12, 20))
    labels = fm.top_alpha(a, 0.1).astype(np.float64)
    assert fm.choose_alpha(a, labels) == 0.02
    assert fm.choose_alpha(rng.random((6, 500)), np.zeros((6, 500))) == fm.DEFAULT_ALPHA  # no evidence
