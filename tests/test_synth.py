"""The synthetic ground-truth world: scenes, known neurons, descriptions, build, load, backbone."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from milannotations.errors import MilanError
from milannotations.synth.catalog import SYNTH_CONFIGS
from milannotations.synth.scenes import IMAGE_SIZE

UNITS = 12  # two per kind at most; kind_counts guarantees one of each
POOL = 300  # scenes per domain in the fixture (the default build uses 600)


def _digest(folder: Path, config: str) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((folder / "data" / config).glob("*.parquet"))}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    from milannotations.synth.build import build_synth

    out = tmp_path_factory.mktemp("synth") / "corpus"
    build_synth(out, seed=0, units=UNITS, progress=False, pool_size=POOL)
    return out


def _rows(root: Path, config: str) -> list[dict]:
    import milannotations as mn

    ds = mn.load(config, root=root)
    return [r for split in ("train", "test") for r in ds[split]]


# ------------------------------------------------------------------------------------ scenes
def test_scenes_are_deterministic_and_masks_consistent():
    from milannotations.synth.scenes import (BACKGROUNDS, CONCEPT_INDEX, CONCEPTS, IMAGE_SIZE, caption_scene,
                                             render_scene, scene_concepts)

    a, b = render_scene("cluttered", 5, seed=3), render_scene("cluttered", 5, seed=3)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.concepts, b.concepts)
    assert not np.array_equal(render_scene("cluttered", 5, seed=4).image, a.image)
    assert a.image.shape == (3, IMAGE_SIZE, IMAGE_SIZE) and a.image.dtype == np.uint8
    assert a.concepts.shape == (len(CONCEPTS), IMAGE_SIZE, IMAGE_SIZE)
    assert np.array_equal(scene_concepts("synth-cluttered", 5, seed=3), a.concepts)
    for i in range(20):
        s = render_scene("plain", i)
        obj = s.concepts[CONCEPT_INDEX["object"]]
        for cat in ("shape", "colour", "texture"):
            names = [c.name for c in CONCEPTS if c.category == cat and c.name != "object"]
            union = s.concepts[[CONCEPT_INDEX[n] for n in names]]
            assert np.array_equal(union.any(0), obj)  # every object pixel has one shape, colour, texture
            assert union.sum(0).max() <= 1  # and only one
        bg = s.concepts[[CONCEPT_INDEX[n] for n in BACKGROUNDS]].any(0)
        assert np.array_equal(bg, ~obj)  # background is exactly what objects do not cover
        parts = s.concepts[[i for i, c in enumerate(CONCEPTS) if c.category == "part"]].any(0)
        assert not (parts & ~obj).any()
        assert 1 <= len(s.objects) <= 4
        caption = caption_scene(s)
        for o in s.objects:
            assert o.shape in caption and o.colour in caption


def test_concept_inventory_covers_the_brief():
    from milannotations.synth.scenes import CONCEPTS

    cats: dict[str, list[str]] = {}
    for c in CONCEPTS:
        cats.setdefault(c.category, []).append(c.name)
    assert {"circle", "square", "triangle", "star", "cross", "ring"} <= set(cats["shape"])
    assert len(cats["colour"]) >= 8
    assert set(cats["texture"]) == {"solid", "striped", "dotted", "checkered"}
    assert len(cats["background"]) >= 4
    assert "top edge of square" in cats["part"]


# ----------------------------------------------------------------------------------- neurons
def _input(masks: dict[str, np.ndarray]) -> torch.Tensor:
    from milannotations.synth.neurons import INPUT_CHANNELS, MAP_SIZE
    from milannotations.synth.scenes import CONCEPT_INDEX, CONCEPTS

    x = torch.zeros(1, INPUT_CHANNELS, MAP_SIZE, MAP_SIZE)
    for name, m in masks.items():
        x[0, CONCEPT_INDEX[name]] = torch.from_numpy(m.astype(np.float32))
    x[0, len(CONCEPTS)] = 1.0  # salience
    return x


def test_neuron_kinds_compute_their_formula():
    from milannotations.synth.neurons import MAP_SIZE, SynthNeurons, UnitSpec

    def box(y0, y1, x0, x1):
        m = np.zeros((MAP_SIZE, MAP_SIZE), bool)
        m[y0:y1, x0:x1] = True
        return m

    tri_top, sq_bottom = box(2, 8, 10, 16), box(18, 24, 10, 16)
    specs = [UnitSpec("relation", ("triangle", "square"), relation="above"),
             UnitSpec("relation", ("square", "triangle"), relation="above"),
             UnitSpec("relation", ("square", "triangle"), relation="below"),
             UnitSpec("and", ("red", "triangle")),
             UnitSpec("not", ("object", "red")),
             UnitSpec("or", ("triangle", "square")),
             UnitSpec("polysemantic", ("triangle", "sky"), gains=(1.0, 0.8))]
    model = SynthNeurons(specs).eval()
    x = _input({"triangle": tri_top, "square": sq_bottom, "red": tri_top, "object": tri_top | sq_bottom})
    with torch.no_grad():
        maps = model(x)[0]
    assert maps.shape == (len(specs), MAP_SIZE, MAP_SIZE)
    inside = lambda u, m: float(maps[u][torch.from_numpy(m)].mean())  # noqa: E731
    assert inside(0, tri_top) > 0.5 and inside(1, sq_bottom) < 0.1 and inside(2, sq_bottom) > 0.5
    assert inside(3, tri_top) > 0.5 and inside(3, sq_bottom) < 0.1
    assert inside(4, sq_bottom) > 0.5 and inside(4, tri_top) < 0.1
    assert inside(5, tri_top) > 0.5 and inside(5, sq_bottom) > 0.5
    assert inside(6, tri_top) > 0.5 and inside(6, sq_bottom) < 0.1
    assert float(maps.std()) > 0  # noisy, graded maps


def test_families_differ_but_hold_every_kind():
    from milannotations.synth.neurons import KINDS, kind_counts, sample_units

    for family in ("shallow", "deep"):
        counts = kind_counts(family, 200)
        assert sum(counts.values()) == 200 and all(counts[k] >= 1 for k in KINDS)
    assert kind_counts("shallow", 200)["concept"] > 2 * kind_counts("deep", 200)["concept"]
    units = sample_units("deep", "plain", 200, seed=0)
    assert units == sample_units("deep", "plain", 200, seed=0)
    assert units != sample_units("deep", "cluttered", 200, seed=0)  # each config draws its own units
    assert len({(u.kind, u.concepts, u.relation) for u in units}) == 200


# ------------------------------------------------------------------------------ descriptions
def test_descriptions_vary_and_are_deterministic():
    from milannotations.synth.descriptions import describe_unit
    from milannotations.synth.neurons import UnitSpec

    spec = UnitSpec("and", ("red", "circle"))
    texts = [describe_unit(spec, f"synth-deep-plain/units/{u}", seed=0) for u in range(60)]
    assert texts[7] == describe_unit(spec, "synth-deep-plain/units/7", seed=0)
    assert texts[7] != describe_unit(spec, "synth-deep-plain/units/7", seed=1) or \
        texts[8] != describe_unit(spec, "synth-deep-plain/units/8", seed=1)
    flat = [t for ts in texts for t in ts]
    assert all(len(ts) == 3 and t == t.lower() and t.strip() == t for ts in texts for t in ts)
    assert len(set(flat)) >= 15  # real variety
    assert any("round" in t for t in flat) and any("circles" in t for t in flat)  # synonyms
    assert any(t.startswith("circles") or "that are red" in t for t in flat)  # word order
    half = [t for t in flat if ("red" in t) != any(w in t for w in ("circle", "round", "disc", "ball"))]
    assert half  # some annotators name only one half of the conjunction


# ------------------------------------------------------------------------------------- build
def test_every_unit_is_complete_and_every_kind_present(built):
    from milannotations.synth.neurons import KINDS
    from milannotations.synth.scenes import CONCEPT_NAMES, IMAGE_SIZE

    for config in SYNTH_CONFIGS:
        rows = _rows(built, config)
        assert len(rows) == UNITS
        family, domain = config.split("-")[1:]
        kinds = set()
        for r in rows:
            assert r["model"] == f"synth-{family}" and r["dataset"] == f"synth-{domain}"
            assert len(r["images"]) == 15 and len(r["masks"]) == 15 and len(r["image_ids"]) == 15
            assert r["images"][0].size == (IMAGE_SIZE, IMAGE_SIZE)
            assert len(r["annotations"]) == 3 and all(r["annotations"])
            truth = json.loads(r["truth"])
            assert set(truth) == {"kind", "formula", "concepts"}
            assert all(c in CONCEPT_NAMES for c in truth["concepts"])
            kinds.add(truth["kind"])
            assert sum(int((np.asarray(m) > 0).sum()) for m in r["masks"]) > 0
        assert kinds == set(KINDS), config
    meta = json.loads((built / "meta" / "synth-deep-plain.json").read_text())
    assert meta["synthetic"] is True and "GENERATED" in meta["description"]
    card = (built / "README.md").read_text()
    assert "generated" in card.lower() and "synth-shallow-cluttered" in card
    splits = json.loads((built / "splits" / "synth-deep-plain.json").read_text())
    assert len(splits["test"]) == 2 and len(splits["train"]) == UNITS - 2


def test_single_concept_masks_overlap_true_pixels(built):
    from milannotations.synth.scenes import CONCEPT_INDEX, scene_concepts

    ious, controls = [], []
    for config in ("synth-shallow-plain", "synth-shallow-cluttered"):
        for r in _rows(built, config):
            truth = json.loads(r["truth"])
            if truth["kind"] != "concept":
                continue
            c = CONCEPT_INDEX[truth["concepts"][0]]
            other = (c + 7) % len(CONCEPT_INDEX)  # an unrelated concept, as a control
            inter = union = c_inter = c_union = 0
            for m, i in zip(r["masks"], r["image_ids"]):
                m = np.asarray(m) > 0
                truth_px = scene_concepts(r["dataset"], i)
                inter += (m & truth_px[c]).sum()
                union += (m | truth_px[c]).sum()
                c_inter += (m & truth_px[other]).sum()
                c_union += (m | truth_px[other]).sum()
            ious.append(inter / union)
            controls.append(c_inter / c_union)
    assert len(ious) >= 8
    assert np.mean(ious) > 0.45, ious  # measured 0.67 at 500 units (benchmarks/bench_synth.py)
    assert np.mean(ious) > 3 * np.mean(controls)


def test_same_seed_same_bytes(built, tmp_path):
    from milannotations.synth.build import build_synth

    config = "synth-deep-cluttered"
    again = build_synth(tmp_path / "again", seed=0, units=UNITS, configs=[config], progress=False, pool_size=POOL)
    assert _digest(again, config) == _digest(built, config)
    small = [build_synth(tmp_path / f"s{i}", seed=seed, units=UNITS, configs=[config], progress=False, pool_size=60)
             for i, seed in enumerate((1, 1, 2))]
    assert _digest(small[0], config) == _digest(small[1], config)
    assert _digest(small[0], config) != _digest(small[2], config)


def test_load_and_ensure_synth_build_once(tmp_path, monkeypatch):
    import milannotations as mn
    from milannotations.synth import build as b

    folder = b.ensure_synth(tmp_path / "cache", seed=0, units=6, progress=False, pool_size=60)
    stamp = (folder / "meta" / "synth-shallow-plain.json").stat().st_mtime_ns
    calls = []
    monkeypatch.setattr(b, "build_synth", lambda *a, **k: calls.append(a))
    assert b.ensure_synth(tmp_path / "cache", seed=0, units=6, pool_size=60) == folder and not calls  # reused
    assert (folder / "meta" / "synth-shallow-plain.json").stat().st_mtime_ns == stamp
    ds = mn.load("synth-shallow-plain", root=folder)
    assert set(ds) == {"train", "test"} and len(ds["train"]) + len(ds["test"]) == 6
    units = mn.UnitSet(ds["test"], annotated=True)
    assert units[0].images.shape == (15, 3, IMAGE_SIZE, IMAGE_SIZE) and len(units[0].annotations) == 3
    grouped = mn.load("synth-deep", root=folder, split="train")
    assert set(grouped["config"]) == {"synth-deep-plain", "synth-deep-cluttered"}


def test_ensure_synth_builds_only_what_is_asked_and_says_so(tmp_path, capsys):
    from milannotations.synth import build as b

    cache = tmp_path / "cache"
    folder = b.ensure_synth(cache, units=6, pool_size=40, configs=["synth-deep-plain"], progress=False)
    assert [c for c in SYNTH_CONFIGS if b._built(folder, c)] == ["synth-deep-plain"]
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "synth-deep-plain (6 units each)" in lines[0] and str(folder) in lines[0]
    assert re.search(r"about \d+ (s|min)", lines[0])
    assert b.ensure_synth(cache, units=6, pool_size=40, configs=["synth-deep-plain"]) == folder
    assert capsys.readouterr().err == ""  # built: reused, nothing said
    assert b.ensure_synth(cache, units=6, pool_size=40, progress=False) == folder  # no configs: all four
    assert all(b._built(folder, c) for c in SYNTH_CONFIGS)
    said = capsys.readouterr().err
    assert "synth-shallow-plain" in said and "synth-deep-plain" not in said
    # the estimate follows the measured per-config time: on one core one default config 14 + 4.5 s for its
    # pool, all four 4 x 14 + 2 x 4.5 s; on two workers half that plus the start
    assert b._estimate(["synth-deep-plain"], b.DEFAULT_UNITS, b.POOL_SIZE) == "about 18 s"
    assert b._estimate(list(SYNTH_CONFIGS), b.DEFAULT_UNITS, b.POOL_SIZE) == "about 65 s"
    assert b._estimate(list(SYNTH_CONFIGS), b.DEFAULT_UNITS, b.POOL_SIZE, workers=2) == "about 34 s"
    with pytest.raises(MilanError, match="unknown synthetic config"):
        b.ensure_synth(cache, configs=["synth-nope-plain"])


def test_cli_builds_one_config(tmp_path):
    from milannotations.cli import main

    assert main(["synth", "--out", str(tmp_path / "c"), "--units", "6", "--configs", "synth-deep-plain",
                 "--pool-size", "40", "--quiet"]) == 0
    assert (tmp_path / "c" / "data" / "synth-deep-plain").is_dir()
    assert main(["synth", "--out", str(tmp_path / "c"), "--units", "3", "--quiet"]) == 2  # too few units


def test_load_only_reads_and_prepare_builds_the_cached_world(tmp_path, monkeypatch, capsys):
    """`load()` of an unbuilt synthetic config is one error naming both ways to build it; `prepare`
    (and `milannotations synth` without --out) builds just those configs where `load()` reads."""
    import milannotations as mn
    from milannotations.cli import main
    from milannotations.synth import catalog

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(catalog, "DEFAULT_UNITS", 6)
    monkeypatch.setattr(catalog, "POOL_SIZE", 40)
    with pytest.raises(MilanError, match=r"not built in the cache.*milannotations synth --configs synth-deep-plain"
                                         r".*milannotations\.prepare\('synth-deep-plain'\)"):
        mn.load("synth-deep-plain")
    assert not (tmp_path / "milannotations" / "synth").exists()  # reading built nothing
    assert mn.prepare(["synth-deep-plain", "alexnet-imagenet"], progress=False) == catalog.default_world()
    assert len(mn.load("synth-deep-plain", split="train")) + len(mn.load("synth-deep-plain", split="test")) == 6
    with pytest.raises(MilanError, match="synth-deep-cluttered"):
        mn.load("synth-deep")  # the grouping's other config is still not built
    assert main(["synth", "--configs", "synth-deep-cluttered", "--quiet"]) == 0
    assert set(mn.load("synth-deep", split="train")["config"]) == {"synth-deep-plain", "synth-deep-cluttered"}
    capsys.readouterr()
    assert main(["synth", "--units", "9"]) == 2  # a world load() does not read: needs --out
    assert "--units" in capsys.readouterr().err


# ---------------------------------------------------------------------------------- backbone
def test_backbone_trains_deterministically_caches_and_feeds_a_net_config(tmp_path, monkeypatch):
    from milannotations.synth import backbone
    from milannotations.synth.backbone import load_synth_backbone
    from milannotations.synth.build import build_synth

    models = tmp_path / "models"
    model, spec = load_synth_backbone(cache_dir=models, steps=3, train_scenes=24, progress=False)
    assert spec.layers == ("layer1", "layer2", "layer3", "layer4") and spec.image_size == 112
    assert spec.trained_on == ("synth-plain", "synth-cluttered") and len(spec.mean) == 3
    files = sorted(p.name for p in models.iterdir())
    assert any(f.endswith(".safetensors") for f in files) and any(f.endswith(".json") for f in files)

    def no_training(*args, **kwargs):
        raise AssertionError("the cached backbone was retrained")

    with monkeypatch.context() as m:
        m.setattr(backbone, "train_backbone", no_training)
        again, spec2 = load_synth_backbone(cache_dir=models, steps=3, train_scenes=24)  # from the cache
    assert spec2 == spec
    for (k, v), (_, w) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(v, w), k
    from milannotations.synth.backbone import train_backbone

    fresh, _ = train_backbone(0, 3, progress=False, train_scenes=24)  # same seed -> same weights
    assert all(torch.equal(v, w) for v, w in zip(model.state_dict().values(), fresh.state_dict().values()))
    x = torch.zeros(2, 3, 112, 112)
    with torch.no_grad():
        assert model(x).shape == (2, len(spec.classes))
        assert model.layer4(model.layer3(model.layer2(model.layer1(model.stem(x))))).shape[1] == spec.feature_dims[-1]

    out = build_synth(tmp_path / "net", configs=["synth-net-plain"], pool_size=40, cache_dir=models,
                      backbone_steps=3, backbone_scenes=24, net_channels=2, progress=False)
    rows = _rows(out, "synth-net-plain")
    assert len(rows) == 8 and {r["layer"] for r in rows} == set(spec.layers)
    assert all(len(r["masks"]) == 15 and not r["annotations"] and r["truth"] is None for r in rows)
    meta = json.loads((out / "meta" / "synth-net-plain.json").read_text())
    assert meta["provenance"]["unannotated"] is True and meta["model"] == spec.name


def test_backbone_cache_key_follows_the_world_it_is_trained_on(monkeypatch, tmp_path):
    """A renderer change without a version bump must not serve weights trained on the old world."""
    from milannotations.synth import backbone

    before = backbone._paths(tmp_path, 0, 10, backbone.TRAIN_SCENES)
    real = backbone.render_scene

    def changed(domain, index, seed=0):
        s = real(domain, index, seed)
        s.image = s.image.copy()
        s.image[0, 0, 0] ^= 1
        return s

    monkeypatch.setattr(backbone, "render_scene", changed)
    after = backbone._paths(tmp_path, 0, 10, backbone.TRAIN_SCENES)
    assert before[0] != after[0] and before[1] != after[1]
    assert backbone._paths(tmp_path, 1, 10, backbone.TRAIN_SCENES)[0] != after[0]
