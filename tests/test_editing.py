"""The editing and audit experiments on the synthetic world, at test size (applications.editing, .audit).

MILAN is replaced by a describer that looks only at where a unit's exemplar masks fall (the corner
where the cue star is drawn), so these tests check the pipeline's logic in seconds; the real runs
with MILAN are benchmarks/bench_editing.py.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from applications import audit, editing, synth_task
from applications.ablate import UnitRef, correctness, matches_words, random_order
from milannotations.contract import DescriberMeta


class CornerDescriber:
    """'red stars' for a unit whose exemplar masks sit mostly in the star's corner, else 'striped shapes'
    or 'shapes' by unit parity (so the audit has something to count)."""

    meta = DescriberMeta(name="corner-test")

    def fit(self, train) -> None:
        pass

    def describe(self, units):
        out = []
        for u in units:
            m = u.masks.float()
            corner = m[..., :30, :30].sum() / m.sum().clamp_min(1)
            out.append("red stars" if corner > 0.5 else ("striped shapes" if u.unit % 2 else "shapes"))
        return out


@pytest.fixture(scope="module")
def seed_result():
    return editing.run_seed(0, CornerDescriber(), editing.EditSizes.quick())


def test_cue_words_come_from_the_lexicon_and_match_star_descriptions():
    assert "stars" in synth_task.CUE_WORDS and "star shapes" in synth_task.CUE_WORDS
    assert matches_words("Pointy stars on grass", synth_task.CUE_WORDS)
    assert not matches_words("red circles", synth_task.CUE_WORDS)
    assert "stripes" in synth_task.concept_words("striped")


def test_scenes_are_deterministic_and_cue_modes_do_what_they_say():
    a, la, ca = synth_task.render("test", 3, 0, "other")
    b, lb, cb = synth_task.render("test", 3, 0, "other")
    assert np.array_equal(a, b) and la == lb and ca == cb and ca != la and ca >= 0
    _, lt, ct = synth_task.render("test", 3, 0, "true")
    assert ct == lt
    assert synth_task.render("test", 3, 0, "none")[2] == -1
    half = synth_task.make_set("train", 200, 0, "half")
    with_cue = (half.cues >= 0)
    assert 0.35 < with_cue.float().mean() < 0.65 and bool((half.cues[with_cue] == half.labels[with_cue]).all())
    plain = synth_task.make_set("train", 40, 0, "none", drop_texture="striped")
    assert plain.images.shape == (40, 3, synth_task.IMAGE_SIZE, synth_task.IMAGE_SIZE)


def test_the_classifier_uses_the_cue(seed_result):
    b = seed_result.base
    # the true class's star helps, another class's star misleads: the shortcut was learned
    assert b["test_true_cue"]["value"] > b["test_no_cue"]["value"] > b["test_adversarial"]["value"]
    assert b["test_true_cue"]["value"] - b["test_adversarial"]["value"] > 0.3


def test_selected_units_are_exactly_those_described_with_a_cue_word(seed_result):
    r = seed_result
    named = sorted(UnitRef(k.split("/")[0], int(k.split("/")[1])) for k, d in r.descriptions.items()
                   if matches_words(d, synth_task.CUE_WORDS))
    assert r.cue_units == named and len(named) > 0
    assert r.units == sum(synth_task.WIDTHS)
    assert 0 <= r.k_star <= len(r.cue_units)
    assert r.curves["counts"][0] == 0 and r.curves["counts"][-1] == len(r.cue_units)
    # k* is chosen on validation scenes, where ablating nothing is one of the choices
    assert r.curves["cue units, least cost first"][0] == pytest.approx(r.base["test_adversarial"]["value"])


def test_random_ablation_is_deterministic_and_the_cached_path_equals_the_hooks():
    units = [UnitRef(layer, u) for layer, w in zip(synth_task.LAYERS, synth_task.WIDTHS) for u in range(w)]
    assert random_order(units, editing.sub_seed("edit-random", 0, 1)) == \
        random_order(units, editing.sub_seed("edit-random", 0, 1))
    data = synth_task.make_set("val", 64, 1, "other")
    torch.manual_seed(0)
    model = synth_task.TaskNet().eval()
    fast = editing.CachedEval(model, data)
    for pick in ([], units[:3], [units[20], units[100], units[239]], random_order(units, 5)[:40]):
        assert np.array_equal(fast(pick), correctness(model, data.inputs(), data.labels.numpy(), pick))


def test_audit_counts_units_named_by_the_concept():
    r = audit.run_seed(0, CornerDescriber(), audit.AuditSizes(train_scenes=300, probe_scenes=60, epochs=2))
    named = [k for k, d in r.descriptions["with"].items() if matches_words(d, synth_task.concept_words("striped"))]
    assert sorted(r.with_concept) == sorted(named)
    row = r.row()
    assert row["with_low"] <= row["with"] <= row["with_high"] and r.units == 240
