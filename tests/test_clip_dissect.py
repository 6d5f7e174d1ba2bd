"""CLIP-Dissect in exemplar form: contrast logic, the open_clip path, safe weights."""
from __future__ import annotations

import pickle

import pytest
import torch

from baselines.clip.models import OpenClip
from baselines.clip.regions import masked_regions
from baselines.clip_dissect import ClipDissect
from milannotations.contract import Exemplars
from milannotations.errors import MilanError

PALETTE = {"red": (1.0, 0.0, 0.0), "green": (0.0, 1.0, 0.0), "blue": (0.0, 0.0, 1.0), "gray": (0.5, 0.5, 0.5)}


class ColourClip:
    """A stand-in CLIP whose image embedding is the mean colour of the region."""

    name, image_size, trained_on = "colour", 8, ()

    def encode_images(self, images):
        return torch.nn.functional.normalize(images.mean(dim=(2, 3)) + 1e-3, dim=-1)

    def encode_texts(self, texts):
        return torch.nn.functional.normalize(torch.tensor([PALETTE[t] for t in texts]) + 1e-3, dim=-1)


def _unit(i: int, colour, background=(0.5, 0.5, 0.5), k: int = 3) -> Exemplars:
    img = torch.tensor(background).view(3, 1, 1).expand(3, 16, 16).clone()
    img[:, 4:12, 4:12] = torch.tensor(colour).view(3, 1, 1)
    masks = torch.zeros(k, 1, 16, 16, dtype=torch.bool)
    masks[:, :, 4:12, 4:12] = True
    return Exemplars(f"t/l/{i}", "m", "d", "l", i, (img * 255).to(torch.uint8).expand(k, 3, 16, 16).clone(), masks)


def _describer(**kw) -> ClipDissect:
    d = ClipDissect(clip=ColourClip(), concepts="broden", **kw)
    d.concepts = list(PALETTE)
    return d


def test_masked_regions_crop_to_the_mask():
    u = _unit(0, PALETTE["red"])
    r = masked_regions(u.images, u.masks, 8)
    assert r.shape == (3, 3, 8, 8)
    # the crop is mostly the red region; the dimmed margin around it stays dark
    assert r[:, 0].mean() > 0.5 and r[:, 1].mean() < 0.2 and r[:, 0, 4, 4].min() > 0.99


def test_each_unit_gets_its_region_colour():
    units = [_unit(0, PALETTE["red"]), _unit(1, PALETTE["green"]), _unit(2, PALETTE["blue"])]
    assert _describer().describe(units) == ["red", "green", "blue"]


def test_contrast_with_background_units_removes_what_every_unit_shares():
    # Without cropping every region is mostly gray background: plain similarity says "gray" for all,
    # the WPMI contrast against the training units' prior recovers each unit's own colour.
    units = [_unit(i, c) for i, c in enumerate([PALETTE["red"], PALETTE["green"], PALETTE["blue"]])]
    plain = _describer(lam=0.0)
    plain_out = []
    contrast = _describer(lam=1.0)
    import baselines.clip_dissect as cd

    orig = cd.masked_regions
    try:
        cd.masked_regions = lambda im, m, s: orig(im, m, s, crop=False, dim=1.0)
        plain_out = plain.describe(units)
        contrast.fit(units * 2)
        contrast_out = contrast.describe(units)
    finally:
        cd.masked_regions = orig
    assert plain_out == ["gray", "gray", "gray"]
    assert contrast_out == ["red", "green", "blue"]


def test_without_fit_a_units_description_does_not_depend_on_its_batch(monkeypatch):
    # Uncropped regions (as in the contrast test above), where contrast would change every answer:
    # contrasting with the other units of the call would give red/green/blue together, gray alone.
    import baselines.clip_dissect as cd

    orig = cd.masked_regions
    monkeypatch.setattr(cd, "masked_regions", lambda im, m, s: orig(im, m, s, crop=False, dim=1.0))
    units = [_unit(i, c) for i, c in enumerate([PALETTE["red"], PALETTE["green"], PALETTE["blue"]])]
    d = _describer(lam=1.0)
    assert d.describe(units) == [d.describe([u])[0] for u in units] == ["gray", "gray", "gray"]


def test_top_joins_best_concepts():
    d = _describer(top=2, lam=0.0)
    d.concepts = ["red", "green", "blue"]
    out = d.describe([_unit(0, (1.0, 0.0, 0.9))])
    assert set(out[0].split(" and ")) == {"red", "blue"}


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
    from baselines.clip.synth_clip import load_synth_clip

    small = dict(steps=4, pool_scenes=12, batch_size=16)
    a = load_synth_clip(cache_dir=tmp_path / "a", **small)
    b = load_synth_clip(cache_dir=tmp_path / "b", **small)
    for (ka, va), (kb, vb) in zip(a.net.state_dict().items(), b.net.state_dict().items()):
        assert ka == kb and torch.equal(va, vb), ka
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert [f.rsplit(".", 1)[1] for f in files] == ["json", "safetensors"]

    def no_training(*args, **kwargs):
        raise AssertionError("the cached synthetic CLIP was retrained")

    monkeypatch.setattr(synth_clip, "train_synth_clip", no_training)
    again = load_synth_clip(cache_dir=tmp_path / "a", **small)  # from the cache, no training
    x = torch.rand(2, 3, again.image_size, again.image_size)
    assert torch.allclose(again.encode_images(x), a.encode_images(x), atol=1e-6)
    t = again.encode_texts(["red circles", "a red circle", "blue"])
    assert t.shape[0] == 3 and torch.allclose(t.norm(dim=-1), torch.ones(3))
    assert torch.equal(again.tokenizer(["circles"]), again.tokenizer(["circle"]))  # plural folding
