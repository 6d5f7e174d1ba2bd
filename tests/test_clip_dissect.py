"""CLIP-Dissect in exemplar form: fidelity to the original's soft-WPMI, views, prior, the open_clip path."""
from __future__ import annotations

import pickle

import pytest
import torch

from baselines.clip.models import OpenClip, open_clip_arch
from baselines.clip.regions import full_images, masked_regions
from baselines.clip_dissect import ClipDissect
from milannotations.contract import AnnotatedExemplars, Exemplars
from milannotations.errors import MilanError

PALETTE = {"red": (1.0, 0.0, 0.0), "green": (0.0, 1.0, 0.0), "blue": (0.0, 0.0, 1.0), "gray": (0.5, 0.5, 0.5)}
ORIGINAL = "Trustworthy-ML-Lab/CLIP-dissect@21e7697feaea3bf7d7bc2d2cc8e4047d5f5fd502:similarity.py"


def original_soft_wpmi(clip_feats: torch.Tensor, target_feats: torch.Tensor, top_k: int = 100, a: float = 10,
                       lam: float = 1, min_prob: float = 1e-7, p_start: float = 0.998,
                       p_end: float = 0.97) -> torch.Tensor:
    """The original's rule, re-typed from Trustworthy-ML-Lab/CLIP-dissect@21e7697feaea3bf7d7bc2d2cc8e4047d5f5fd502
    :similarity.py, function `soft_wpmi` (same operations in the same order; no device moves, no tqdm).

    clip_feats: N x C cosine similarities of the probe images to the concepts; target_feats: N x U
    activations of a layer's units. Returns U x C scores; the label is the argmax over concepts.
    """
    probs = torch.nn.functional.softmax(a * clip_feats, dim=1)
    inds = torch.topk(target_feats, dim=0, k=top_k)[1]
    weights = p_start - (torch.arange(start=0, end=top_k) / top_k * (p_start - p_end)).unsqueeze(1)
    rows = []
    for unit in range(target_feats.shape[1]):
        gathered = probs.gather(0, inds[:, unit:unit + 1].expand(-1, probs.shape[1]))
        rows.append(torch.sum(torch.log(1 + weights * (gathered - 1) + min_prob), dim=0, keepdim=True))
    log_p = torch.cat(rows, dim=0)
    prior = torch.logsumexp(log_p, dim=0, keepdim=True) - torch.log(log_p.shape[0] * torch.ones([1]))
    return log_p - lam * prior


class LookupClip:
    """A stand-in CLIP with given embeddings: a probe image's index is written in its pixels (R + 256 G)."""

    name, image_size, trained_on = "lookup", 4, ()

    def __init__(self, image_emb: torch.Tensor, text_emb: dict[str, torch.Tensor]) -> None:
        self.image_emb, self.text_emb = image_emb, text_emb

    @staticmethod
    def pixels(index: torch.Tensor) -> torch.Tensor:
        """k probe indices -> k x 3 x 4 x 4 uint8 images carrying them."""
        rgb = torch.stack([index % 256, index // 256, torch.zeros_like(index)], dim=1).to(torch.uint8)
        return rgb[:, :, None, None].expand(-1, 3, 4, 4).clone()

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        px = torch.round(images[:, :, 0, 0] * 255).long()
        return self.image_emb[px[:, 0] + 256 * px[:, 1]]

    def encode_texts(self, texts):
        return torch.stack([self.text_emb[t] for t in texts])


def _probe_units(acts: torch.Tensor, k: int, layer: str = "l", first: int = 0) -> list[AnnotatedExemplars]:
    """Each unit's k top probe images by activation, highest first, as the exemplar contract hands them."""
    top = torch.topk(acts, k=k, dim=0).indices
    masks = torch.ones(k, 1, 4, 4, dtype=torch.bool)
    return [AnnotatedExemplars(f"net/{layer}/{u}", "net", "probe", layer, u, LookupClip.pixels(top[:, u - first]),
                               masks) for u in range(first, first + acts.shape[1])]


def _random_world(seed: int, n: int = 300, c: int = 40, d: int = 32):
    g = torch.Generator().manual_seed(seed)
    img = torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=-1)
    txt = torch.nn.functional.normalize(torch.randn(c, d, generator=g), dim=-1)
    names = [f"concept{j}" for j in range(c)]
    return img, txt, names, LookupClip(img, dict(zip(names, txt))), g


@pytest.mark.parametrize("seed", [0, 1])
def test_exemplar_form_reproduces_the_original_given_the_same_top_15_images(seed):
    """The claim: on a probe set with random CLIP similarities and random activations, our describer,
    fitted on the layer's units and shown their top-15 images whole (`view="full"`), gives the original
    `soft_wpmi(..., top_k=15)` scores and therefore the original's labels."""
    img, txt, names, clip, g = _random_world(seed)
    acts = torch.rand(img.shape[0], 24, generator=g)
    expected = original_soft_wpmi(img @ txt.T, acts, top_k=15)
    units = _probe_units(acts, 15)
    d = ClipDissect(clip=clip, concepts=names, view="full")  # defaults: the original's a, lam, rank weights, min_prob
    d.fit(units)
    got = torch.stack(d.scores(units))
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-6), (got - expected).abs().max()
    gaps = expected.topk(2, dim=1).values
    assert (gaps[:, 0] - gaps[:, 1]).min() > 1e-3  # labels are not decided by rounding
    assert d.describe(units) == [names[j] for j in expected.argmax(dim=1).tolist()]


def test_prior_is_per_layer_and_pooled_where_the_layer_was_not_seen():
    """Two layers in `fit`: a unit of a seen layer is scored as the original scores that layer alone;
    a unit of an unseen layer gets the prior of all background units (the original on their union)."""
    img, txt, names, clip, g = _random_world(2)
    acts_a, acts_b = torch.rand(img.shape[0], 10, generator=g), torch.rand(img.shape[0], 14, generator=g)
    units_a, units_b = _probe_units(acts_a, 15, "a"), _probe_units(acts_b, 15, "b", first=10)
    d = ClipDissect(clip=clip, concepts=names)
    d.fit(units_a + units_b)
    assert d.fit_record == {"background_units_per_layer": {"net/a": 10, "net/b": 14}}
    sims = img @ txt.T
    assert torch.allclose(torch.stack(d.scores(units_a)), original_soft_wpmi(sims, acts_a, top_k=15), atol=1e-4)
    assert torch.allclose(torch.stack(d.scores(units_b)), original_soft_wpmi(sims, acts_b, top_k=15), atol=1e-4)
    both = torch.cat([acts_a, acts_b], dim=1)
    unseen = [AnnotatedExemplars(u.unit_id.replace("/a/", "/c/"), u.model, u.dataset, "c", u.unit, u.images,
                                 u.masks) for u in units_a]
    pooled = original_soft_wpmi(sims, both, top_k=15)[:10]
    assert torch.allclose(torch.stack(d.scores(unseen)), pooled, atol=1e-4)
    d_pooled = ClipDissect(clip=clip, concepts=names, prior="pooled")
    d_pooled.fit(units_a + units_b)
    assert torch.allclose(torch.stack(d_pooled.scores(units_a)), pooled, atol=1e-4)


def test_rank_order_of_the_exemplars_matters():
    """The original weights a concept's absence most on the unit's best image. Concept a is missing from
    the top exemplar, b from the last, both otherwise alike: b wins, and reversing the order makes a win.
    (v1 averaged cosines over the exemplars and could not tell the two orders apart.)"""
    rows = torch.tensor([[0.0, 0.3, 0.3], [0.3, 0.0, 0.3], [0.3, 0.3, 0.0]])  # a missing, b missing, both
    emb = torch.cat([rows, (1 - rows.pow(2).sum(1, keepdim=True)).sqrt()], dim=1)  # cos(image, concept j) = rows[:, j]
    clip = LookupClip(emb, {n: torch.eye(4)[j] for j, n in enumerate("abc")})
    order = torch.tensor([0] + [2] * 13 + [1])
    masks = torch.ones(15, 1, 4, 4, dtype=torch.bool)
    forward = Exemplars("t/l/0", "m", "d", "l", 0, LookupClip.pixels(order), masks)
    backward = Exemplars("t/l/0", "m", "d", "l", 0, LookupClip.pixels(order.flip(0)), masks)
    d = ClipDissect(clip=clip, concepts=list("abc"))
    assert d.describe([forward, backward]) == ["b", "a"]


class ColourClip:
    """A stand-in CLIP whose image embedding is the mean colour of the region."""

    name, image_size, trained_on = "colour", 8, ()

    def encode_images(self, images):
        return torch.nn.functional.normalize(images.mean(dim=(2, 3)) + 1e-3, dim=-1)

    def encode_texts(self, texts):
        return torch.nn.functional.normalize(torch.tensor([PALETTE[t] for t in texts]) + 1e-3, dim=-1)


def _unit(i: int, colour, background=(0.5, 0.5, 0.5), k: int = 3, config: str = "t") -> Exemplars:
    img = torch.tensor(background).view(3, 1, 1).expand(3, 16, 16).clone()
    img[:, 4:12, 4:12] = torch.tensor(colour).view(3, 1, 1)
    masks = torch.zeros(k, 1, 16, 16, dtype=torch.bool)
    masks[:, :, 4:12, 4:12] = True
    return Exemplars(f"{config}/l/{i}", "m", "d", "l", i, (img * 255).to(torch.uint8).expand(k, 3, 16, 16).clone(),
                     masks)


def _describer(**kw) -> ClipDissect:
    return ClipDissect(clip=ColourClip(), concepts=list(PALETTE), **kw)


def _colour_units() -> list[Exemplars]:
    return [_unit(i, c) for i, c in enumerate([PALETTE["red"], PALETTE["green"], PALETTE["blue"]])]


def test_views():
    u = _unit(0, PALETTE["red"])
    r = masked_regions(u.images, u.masks, 8)
    assert r.shape == (3, 3, 8, 8)
    # the crop is mostly the red region; the dimmed margin around it stays dark
    assert r[:, 0].mean() > 0.5 and r[:, 1].mean() < 0.2 and r[:, 0, 4, 4].min() > 0.99
    # full view: shorter side to the model's size, then the central square, as CLIP's preprocessing does
    wide = torch.zeros(1, 3, 16, 32, dtype=torch.uint8)
    wide[:, 0, :, :8], wide[:, 1, :, 8:24], wide[:, 2, :, 24:] = 255, 255, 255
    f = full_images(wide, 8)
    assert f.shape == (1, 3, 8, 8) and f[0, 1, :, 1:7].min() > 0.95 and f[0, 0].max() < 0.3


def test_masked_view_sees_each_units_region_colour():
    assert _describer(view="masked").describe(_colour_units()) == ["red", "green", "blue"]


def test_full_view_needs_the_contrast_with_background_units():
    # Whole images are mostly gray: the plain soft product says "gray" for every unit; the prior over the
    # layer's units seen in fit (pixels only) removes what they share and recovers each unit's own colour.
    units = _colour_units()
    assert _describer(lam=0.0).describe(units) == ["gray", "gray", "gray"]
    contrast = _describer()
    contrast.fit(units * 2)
    assert contrast.describe(units) == ["red", "green", "blue"]


def test_a_units_description_does_not_depend_on_its_batch():
    # Without fit there is no contrast: contrasting with the other units of the call would give
    # red/green/blue together, gray alone. After fit the prior is fixed, so batching is irrelevant too.
    units = _colour_units()
    d = _describer()
    assert d.describe(units) == [d.describe([u])[0] for u in units] == ["gray", "gray", "gray"]
    d.fit(units)
    assert d.describe(units) == [d.describe([u])[0] for u in units] == ["red", "green", "blue"]


def test_top_joins_best_concepts():
    d = ClipDissect(clip=ColourClip(), concepts=["red", "green", "blue"], top=2, view="masked")
    out = d.describe([_unit(0, (1.0, 0.0, 0.9))])
    assert set(out[0].split(" and ")) == {"red", "blue"}


def test_defaults_and_meta(monkeypatch):
    import baselines.clip_dissect as cd

    loaded = []

    def fake_load(model, pretrained, device):
        loaded.append((model, pretrained))
        return ColourClip()

    monkeypatch.setattr(cd, "load_clip", fake_load)
    d = ClipDissect(concepts=list(PALETTE))  # model=auto: nothing loaded until units come
    assert loaded == []
    assert d.meta.version == "2"
    ref = d.meta.reference
    assert "view=masked on synth-* configs, full otherwise" in ref
    assert "scoring=soft_wpmi(a=10, lam=1, p=0.998..0.97, min_prob=1e-07)" in ref
    assert "synth-clip-v" in ref and "open_clip:ViT-B-16:openai" in ref
    d.describe([_unit(0, PALETTE["red"], config="synth-objects-plain"), _unit(1, PALETTE["red"], config="alexnet")])
    assert loaded == [("synth", "openai"), ("ViT-B-16", "openai")]  # the synthetic CLIP, the original's ViT-B/16
    assert OpenClip.__dataclass_fields__["arch"].default == "ViT-B-16" and open_clip_arch("ViT-B/16") == "ViT-B-16"
    assert "view=masked" in ClipDissect(clip=ColourClip(), concepts=list(PALETTE), view="masked").meta.reference


def test_default_view_is_full_for_a_real_clip_and_masked_for_the_synthetic_one():
    class SynthNamed(ColourClip):
        name = "synth-clip-test"

    units = _colour_units()
    real, synth = _describer(), ClipDissect(clip=SynthNamed(), concepts=list(PALETTE))
    assert "view=full;" in real.meta.reference and "view=masked;" in synth.meta.reference
    assert real.describe(units) == _describer(view="full").describe(units) == ["gray"] * 3
    assert synth.describe(units) == _describer(view="masked").describe(units) == ["red", "green", "blue"]


@pytest.mark.parametrize("kw, match", [({"view": "crop"}, "unknown view"), ({"prior": "call"}, "unknown prior"),
                                       ({"p_start": 0.9, "p_end": 0.95}, "rank weights"), ({"top": 0}, "top"),
                                       ({"background_units": 0}, "background_units")])
def test_bad_arguments_fail_in_one_line(kw, match):
    with pytest.raises(MilanError, match=match) as e:
        ClipDissect(clip=ColourClip(), concepts=list(PALETTE), **kw)
    assert "\n" not in str(e.value)


def test_background_units_sample_per_layer():
    units = [_unit(i, c) for i, c in enumerate([PALETTE["red"], PALETTE["green"], PALETTE["blue"]] * 3)]
    d = _describer(background_units=4)
    d.fit(units)
    assert d.fit_record == {"background_units_per_layer": {"t/l": 4}}


def test_open_clip_random_weights_runs_and_named_weights_fail_clearly(tmp_path):
    d = ClipDissect(model="ViT-S-32", pretrained="none", concepts="broden")
    out = d.describe([_unit(0, PALETTE["red"]), _unit(1, PALETTE["blue"])])
    assert len(out) == 2 and all(o in d.concepts for o in out)
    with pytest.raises(MilanError, match="not available locally"):
        OpenClip("ViT-B-32", pretrained="laion400m_e31")
    with pytest.raises(MilanError, match="no pretrained tag"):
        OpenClip("ViT-S-32", pretrained="openai")


def test_weights_file_is_loaded_safely(tmp_path):
    from safetensors.torch import save_file

    ref = OpenClip("ViT-S-32", pretrained="none")
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in ref.model.state_dict().items()}, str(path))
    loaded = OpenClip("ViT-S-32", pretrained=str(path))
    x = torch.rand(1, 3, loaded.image_size, loaded.image_size)
    assert torch.allclose(loaded.encode_images(x), ref.encode_images(x), atol=1e-5)
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as f:
        pickle.dump({"obj": object()}, f)
    with pytest.raises(MilanError, match="refusing to unpickle"):
        OpenClip("ViT-S-32", pretrained=str(evil))


def test_synth_clip_is_deterministic_and_cached(tmp_path, monkeypatch):
    import baselines.clip.synth_clip as synth_clip
    from baselines.clip.synth_clip import load_synth_clip, synth_clip_name

    small = dict(steps=4, pool_scenes=12, batch_size=16)
    a = load_synth_clip(cache_dir=tmp_path / "a", **small)
    b = load_synth_clip(cache_dir=tmp_path / "b", **small)
    for (ka, va), (kb, vb) in zip(a.net.state_dict().items(), b.net.state_dict().items()):
        assert ka == kb and torch.equal(va, vb), ka
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert [f.rsplit(".", 1)[1] for f in files] == ["json", "safetensors"]
    assert files[0] == f"{synth_clip_name(a.cfg)}.json" == f"{a.name}.json"  # the name meta records, unloaded

    def no_training(*args, **kwargs):
        raise AssertionError("the cached synthetic CLIP was retrained")

    monkeypatch.setattr(synth_clip, "train_synth_clip", no_training)
    again = load_synth_clip(cache_dir=tmp_path / "a", **small)  # from the cache, no training
    x = torch.rand(2, 3, again.image_size, again.image_size)
    assert torch.allclose(again.encode_images(x), a.encode_images(x), atol=1e-6)
    t = again.encode_texts(["red circles", "a red circle", "blue"])
    assert t.shape[0] == 3 and torch.allclose(t.norm(dim=-1), torch.ones(3))
    assert torch.equal(again.tokenizer(["circles"]), again.tokenizer(["circle"]))  # plural folding
