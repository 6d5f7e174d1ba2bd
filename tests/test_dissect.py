"""NetDissect and Compositional Explanations: IoU and beam search on hand-made masks, the three segmenters."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest
import torch

from baselines import create_describer
from baselines.compexp import CompExp, Formula, beam_search, formula_from_truth, render_phrase
from baselines.dissect import UnitConcepts, compress, pooled_iou
from baselines.netdissect import NetDissect
from baselines.segmenters import COLOUR_NAMES, Segmenter, colour_index, create_segmenter
from milannotations import Exemplars, MilanError
from milannotations.synth.scenes import IMAGE_SIZE


class TableSegmenter(Segmenter):
    """Hand-made concept masks looked up by image id."""

    name = "table"

    def __init__(self, concepts, categories, table):
        super().__init__()
        self.concepts, self.categories, self.table = list(concepts), list(categories), table

    def segment(self, images, *, dataset=None, image_ids=None, unit_id=""):
        return torch.stack([self.table[int(i)] for i in image_ids])


def _unit(masks: torch.Tensor, ids: Sequence[int], dataset: str = "hand") -> Exemplars:
    k, _, h, w = masks.shape
    return Exemplars(unit_id=f"hand/l/{ids[0]}", model="m", dataset=dataset, layer="l", unit=0,
                     images=torch.zeros(0, 3, h, w, dtype=torch.uint8), masks=masks.bool(), image_ids=tuple(ids))


def test_pooled_iou_sums_intersections_and_unions_over_exemplars():
    # exemplar 0: unit 4 px, concept covers them plus 4 more -> I=4, U=8
    # exemplar 1: unit 2 px, concept absent                 -> I=0, U=2
    unit = torch.zeros(2, 1, 4, 4, dtype=torch.bool)
    unit[0, 0, 0, :] = True
    unit[1, 0, 3, :2] = True
    concept = torch.zeros(2, 1, 4, 4, dtype=torch.bool)
    concept[0, 0, :2, :] = True
    iou = pooled_iou(unit.reshape(-1), concept.permute(1, 0, 2, 3).reshape(1, -1))
    assert iou.tolist() == pytest.approx([0.4])  # 4 / 10, not the per-image mean 0.25


def test_compressing_pixels_to_signatures_keeps_every_iou():
    g = torch.Generator().manual_seed(1)
    C, N = 70, 4000  # > 62 concepts: signatures span two 64-bit words
    masks = torch.rand(C, N, generator=g) < 0.05
    unit = torch.rand(N, generator=g) < 0.3
    uc = compress(unit, masks, torch.arange(C))
    assert uc.masks.shape[1] < N and float(uc.weights().sum()) == N
    assert torch.allclose(pooled_iou(uc.unit, uc.masks, uc.weight), pooled_iou(unit, masks))
    f = Formula(3, (("or", 65), ("and not", 9)))
    assert float(pooled_iou(uc.unit, f.mask(uc.masks)[None], uc.weight)[0]) == pytest.approx(
        float(pooled_iou(unit, f.mask(masks)[None])[0]))


def _hand_world():
    """Three 8x8 images; concepts: red (left half), circle (top half), blue (right half), grass (bottom row)."""
    h = w = 8
    red = torch.zeros(h, w, dtype=torch.bool); red[:, :4] = True
    circle = torch.zeros(h, w, dtype=torch.bool); circle[:4, :] = True
    blue = ~red
    grass = torch.zeros(h, w, dtype=torch.bool); grass[7, :] = True
    table = {i: torch.stack([red, circle, blue, grass]) for i in range(3)}
    seg = TableSegmenter(["red", "circle", "blue", "grass"], ["colour", "shape", "colour", "background"], table)
    return seg, red, circle, blue, grass


def test_netdissect_labels_best_concept_and_keeps_labels_below_threshold():
    seg, red, circle, blue, grass = _hand_world()
    masks = torch.stack([circle, circle, circle])[:, None]
    nd = NetDissect(segmenter=seg)
    label = nd.explain(_unit(masks, [0, 1, 2]))
    assert (label.concept, label.iou, label.above_threshold) == ("circle", 1.0, True)
    assert nd.describe([_unit(masks, [0, 1, 2])]) == ["circle"]
    # A weak unit: one pixel of grass -> pooled IoU 1/24 (grass has 8 px in each of 3 images),
    # below a 0.5 threshold, yet still labelled (as the MILAN paper's baseline kept such labels).
    weak = torch.zeros(3, 1, 8, 8, dtype=torch.bool); weak[0, 0, 7, 0] = True
    label = NetDissect(segmenter=seg, threshold=0.5).explain(_unit(weak, [0, 1, 2]))
    assert label.concept == "grass" and label.iou == pytest.approx(1 / 24)
    assert label.above_threshold is False


def test_beam_search_recovers_and_or_andnot_formulas_on_random_masks():
    g = torch.Generator().manual_seed(0)
    C, N = 12, 3 * 32 * 32
    masks = torch.rand(C, N, generator=g) < 0.35
    idx = torch.arange(C)
    cases = {
        Formula(3, (("and", 7),)): masks[3] & masks[7],
        Formula(2, (("or", 5),)): masks[2] | masks[5],
        Formula(1, (("and not", 4),)): masks[1] & ~masks[4],
        Formula(3, (("and", 7), ("and not", 11))): masks[3] & masks[7] & ~masks[11],
    }
    for truth, unit in cases.items():
        found = beam_search(UnitConcepts(unit, masks, idx), max_length=3, beam_size=5)
        best, iou = found[0]
        assert best.key() == truth.key() and iou == pytest.approx(1.0), (truth, found[:2])
    # Exhaustive check of the vectorised IoU: every length-2 AND formula's score matches explicit masks.
    unit = masks[0] | (masks[1] & masks[2])
    found = beam_search(UnitConcepts(unit, masks, idx), max_length=2, beam_size=100)
    for f, iou in found:
        assert iou == pytest.approx(float(pooled_iou(unit, f.mask(masks)[None])[0]))


def test_formula_identity_is_up_to_order_and_text_renders():
    names = ["red", "circle", "blue", "grass", "striped", "chest of drawers"]
    cats = ["colour", "shape", "colour", "background", "texture", "object"]
    a = Formula(0, (("and", 1),))
    assert a.key() == Formula(1, (("and", 0),)).key()
    assert Formula(0, (("and", 1), ("and not", 2))).key() == Formula(1, (("and not", 2), ("and", 0))).key()
    assert Formula(0, (("or", 1), ("and", 2))).key() != Formula(0, (("and", 2), ("or", 1))).key()
    assert a.render(names) == "red and circle"
    assert render_phrase(a, names, cats) == "red circles"
    assert render_phrase(Formula(4, (("and", 1), ("and", 3))), names, cats) == "striped circles on grass"
    assert render_phrase(Formula(1, (("or", 5),)), names, cats) == "circles or chests of drawers"
    assert render_phrase(Formula(1, (("and not", 2),)), names, cats) == "circles that are not blue"
    assert render_phrase(Formula(3), names, cats) == "grass"  # backgrounds are not pluralised
    assert render_phrase(Formula(4, (("and not", 1),)), names, cats) == "striped things without circles"
    # ((circle or grass) and red): AND distributes over the groups formed so far.
    assert render_phrase(Formula(1, (("or", 3), ("and", 0))), names, cats) == "red circles or red grass"


def test_compexp_describer_text_modes_on_hand_world():
    seg, red, circle, blue, grass = _hand_world()
    masks = torch.stack([red & circle] * 3)[:, None]
    unit = _unit(masks, [0, 1, 2])
    assert CompExp(segmenter=seg).describe([unit]) == ["red and circle"]
    assert CompExp(segmenter=seg, text="phrase").describe([unit]) == ["red circles"]
    assert CompExp(segmenter=seg, max_length=1).describe([unit]) in (["red"], ["circle"])
    with pytest.raises(MilanError, match="text"):
        CompExp(segmenter=seg, text="poem")


def test_colour_classifier_names_prototypes_and_synthetic_colours():
    from milannotations.synth.scenes import COLOURS

    named = {"red": (210, 30, 30), "blue": (35, 75, 210), "grey": (128, 128, 128), "white": (255, 255, 255)}
    named.update(COLOURS)
    img = torch.tensor([list(v) for v in named.values()], dtype=torch.uint8).T.reshape(1, 3, 1, -1)
    got = [COLOUR_NAMES[i] for i in colour_index(img).flatten().tolist()]
    assert got == list(named)


def test_oracle_refuses_real_units_and_unknown_segmenters():
    masks = torch.ones(2, 1, 4, 4, dtype=torch.bool)
    real = _unit(masks, [0, 1], dataset="imagenet")
    with pytest.raises(MilanError, match="oracle segmenter only works on synthetic units.*imagenet"):
        create_describer("netdissect", segmenter="oracle").describe([real])
    with pytest.raises(MilanError, match="unknown segmenter"):
        create_describer("compexp", segmenter="broden")


# --------------------------------------------------------------------- ade20k

def _tiny_segformer(path: Path) -> Path:
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    torch.manual_seed(0)
    cfg = SegformerConfig(num_labels=150, hidden_sizes=[8, 16, 24, 32], decoder_hidden_size=32,
                          num_attention_heads=[1, 1, 1, 1], depths=[1, 1, 1, 1])
    SegformerForSemanticSegmentation(cfg).save_pretrained(path)
    return path


def _colour_block_images(spec, unit):
    """Left half red, right half blue; the unit is active on the red half."""
    img = np.zeros((spec.k, 3, spec.height, spec.width), np.uint8)
    img[:, :, :, : spec.width // 2] = np.array([215, 25, 30], np.uint8)[None, :, None, None]
    img[:, :, :, spec.width // 2:] = np.array([30, 70, 215], np.uint8)[None, :, None, None]
    return img


def _left_half_masks(spec, unit):
    m = np.zeros((spec.k, 1, spec.height, spec.width), np.uint8)
    m[:, :, :, : spec.width // 2] = 1
    return m


def test_ade20k_path_runs_a_random_weight_segformer_on_original_format_exemplars(tmp_path):
    from tests.original_format import LayerSpec, make_original_zip, original_samples

    model_dir = _tiny_segformer(tmp_path / "segformer")
    fx = make_original_zip(tmp_path / "alexnet-places365.zip", [LayerSpec("conv5", n_units=2, k=3, height=32, width=32)],
                           images_fn=_colour_block_images, masks_fn=_left_half_masks)
    units = [Exemplars(unit_id=f"alexnet-places365/{s.layer}/{s.unit}", model="alexnet", dataset="places365",
                       layer=s.layer, unit=s.unit, images=torch.from_numpy(s.images),
                       masks=torch.from_numpy(s.masks).bool(), image_ids=tuple(s.ids))
             for s in original_samples(fx.path)]
    assert len(units) == 2 and units[0].images.shape == (3, 3, 32, 32)

    seg = create_segmenter("ade20k", model=str(model_dir), input_size=64)
    assert len(seg.concepts) == 150 + 11 and seg.concepts[:3] == ["wall", "building", "sky"]
    out = seg.segment(units[0].images)
    assert out.shape == (3, 161, 32, 32) and out.dtype == torch.bool
    assert (out[:, :150].sum(1) == 1).all() and (out[:, 150:].sum(1) == 1).all()  # one class, one colour per pixel
    assert out[:, 150 + COLOUR_NAMES.index("red"), :, :16].all()

    nd = create_describer("netdissect", segmenter="ade20k", model=str(model_dir), input_size=64)
    assert nd.describe(units) == ["red", "red"]
    assert nd.explain(units[0]).iou == pytest.approx(1.0)
    ce = create_describer("compexp", segmenter="ade20k", model=str(model_dir), input_size=64)
    assert ce.describe(units) == ["red", "red"]
    assert "segmenter=ade20k" in nd.meta.reference and "Bau" in nd.meta.citation


def test_ade20k_absent_model_is_a_clear_error(tmp_path):
    with pytest.raises(MilanError, match="does not exist"):
        create_describer("netdissect", segmenter="ade20k", model=str(tmp_path / "missing"))
    with pytest.raises(MilanError, match="not available offline"):
        create_describer("netdissect", segmenter="ade20k")  # hub id, empty offline cache in tests


# --------------------------------------------------------------------- synthetic world

@pytest.fixture(scope="module")
def small_synth(tmp_path_factory):
    """A small deep-family build (many compositional units) over a small scene pool."""
    from milannotations.synth.build import build_synth

    out = tmp_path_factory.mktemp("synth")
    build_synth(out, seed=0, units=30, configs=["synth-deep-plain"], pool_size=120, progress=False)
    import milannotations as mn

    ds = mn.load("synth-deep-plain", split="train", root=out)
    truths = [json.loads(t) for t in ds["truth"]]
    return list(mn.UnitSet(ds)), truths


def test_oracle_recovers_true_concepts_and_formulas_on_a_small_build(small_synth):
    units, truths = small_synth
    nd = create_describer("netdissect", segmenter="oracle")
    ce = create_describer("compexp", segmenter=nd.segmenter)  # share the per-image cache
    concepts = nd.segmenter.concepts
    single = [(u, t) for u, t in zip(units, truths) if t["kind"] == "concept"]
    conj = [(u, t) for u, t in zip(units, truths) if t["kind"] == "and"]
    assert single and conj
    nd_ok = [nd.explain(u).concept == t["concepts"][0] for u, t in single]
    ce_ok = [ce.explain(u).formula.key() == formula_from_truth(t, concepts).key() for u, t in conj]
    assert sum(nd_ok) / len(nd_ok) >= 0.8, nd_ok
    assert sum(ce_ok) / len(ce_ok) >= 0.6, ce_ok
    assert "ORACLE" in nd.meta.reference and "upper bound" in nd.meta.reference


def test_synth_segmenter_trains_once_caches_safetensors_and_segments(small_synth, tmp_path, monkeypatch):
    import baselines.segmenters.synth as synth_segmenter

    units, _ = small_synth
    seg = create_segmenter("synth", steps=3, width=8, cache_dir=tmp_path, progress=False)
    files = list(tmp_path.glob("*.safetensors"))
    assert len(files) == 1 and seg.path == files[0]

    def no_training(*args, **kwargs):
        raise AssertionError("the cached segmenter was retrained")

    monkeypatch.setattr(synth_segmenter, "train_segnet", no_training)
    again = create_segmenter("synth", steps=3, width=8, cache_dir=tmp_path, progress=False)  # read, not retrained
    for (k, a), (_, b) in zip(seg.net.state_dict().items(), again.net.state_dict().items()):
        assert torch.equal(a, b), k
    out = seg.segment_unit(units[0])
    assert out.shape == (units[0].k, len(seg.concepts), IMAGE_SIZE, IMAGE_SIZE) and out.dtype == torch.bool
    text = create_describer("netdissect", segmenter=seg).describe(units[:2])
    assert all(t in seg.concepts for t in text)
