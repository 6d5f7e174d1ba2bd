"""Original-format zips -> built folder: the original loader's semantics, exact pixels, refusals."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import datasets
import numpy as np
import pytest

import milannotations as mn
from milannotations.build import DINO_ERRATA, build
from milannotations.cli import main as cli
from milannotations.download import sha256_file
from milannotations.units import UnitSet, to_exemplars
from tests.original_format import LayerSpec, make_original_zip, npy_bytes, original_samples, rewrite_zip

# resnet152-places365: digit-named layers ("0", "4", "10" sorts before "4" as a string), images shipped,
# units with 2 (dropped), 4 (cut to 3) and 0 descriptions, CSV rows not sorted.
PLACES_LAYERS = [LayerSpec("0", 5, k=4, height=16, width=16), LayerSpec("4", 6, k=3, height=20, width=20),
                 LayerSpec("10", 3, k=5, height=16, width=16)]
PLACES_COUNTS = {("0", 1): 2, ("4", 2): 4, ("10", 0): 0, ("4", 5): 5}
# alexnet-imagenet: no images.npy anywhere (ImageNet pixels never ship).
IMAGENET_LAYERS = [LayerSpec("conv1", 4, k=3, height=16, width=16, images=False),
                   LayerSpec("conv2", 3, k=3, height=16, width=16, images=False)]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("build")
    zips = tmp / "zips"
    places = make_original_zip(zips / "resnet152-places365.zip", PLACES_LAYERS, descriptions=PLACES_COUNTS, seed=1)
    imagenet = make_original_zip(zips / "alexnet-imagenet.zip", IMAGENET_LAYERS,
                                 descriptions={("conv1", 3): 1}, seed=2)
    out = tmp / "corpus-test-build"  # datasets caches local folders by name: keep it unique
    assert cli(["build", "--zip-dir", str(zips), "--out", str(out), "--no-progress"]) == 0
    return out, {"resnet152-places365": places, "alexnet-imagenet": imagenet}


@pytest.mark.parametrize("via", ["load_dataset", "milannotations.load"])
@pytest.mark.parametrize("config", ["resnet152-places365", "alexnet-imagenet"])
def test_rows_match_the_original_loader(built, config, via):
    out, fixtures = built
    fx = fixtures[config]
    expected = original_samples(fx.path)
    ds = datasets.load_dataset(str(out), config) if via == "load_dataset" else mn.load(config, root=out)
    rows = {r["unit_id"]: r for s in ("train", "test") for r in ds[s]}
    assert len(rows) == len(expected)
    for s in expected:
        row = rows.pop(f"{config}/{s.layer}/{s.unit}")
        assert row["layer"] == s.layer and isinstance(row["layer"], str)
        assert row["unit"] == s.unit
        assert tuple(row["annotations"]) == s.annotations
        assert row["image_ids"] == s.ids
        ex = to_exemplars(row)
        assert np.array_equal(ex.masks.numpy(), s.masks.astype(bool))
        if s.images is None:
            assert ex.images.shape[0] == 0
        else:
            assert np.array_equal(ex.images.numpy(), s.images)
    assert not rows


def test_semantics_drop_cut_digits_and_order(built):
    out, fixtures = built
    ds = mn.load("resnet152-places365", root=out)
    ids = set(ds["train"]["unit_id"]) | set(ds["test"]["unit_id"])
    assert "resnet152-places365/0/1" not in ids  # 2 descriptions: dropped
    assert "resnet152-places365/10/0" not in ids  # none
    assert len(ids) == 5 + 6 + 3 - 2
    by_id = {r["unit_id"]: r for s in ("train", "test") for r in ds[s]}
    four = [t for (l, u, t) in fixtures["resnet152-places365"].rows if (l, u) == ("4", 2)]
    assert len(four) == 4 and by_id["resnet152-places365/4/2"]["annotations"] == four[:3]
    # Within each split, stored order is the order of first appearance in annotations.csv.
    first_seen = list(dict.fromkeys(f"resnet152-places365/{l}/{u}" for l, u, _ in fixtures["resnet152-places365"].rows))
    for split in ("train", "test"):
        stored = ds[split]["unit_id"]
        assert stored == [u for u in first_seen if u in set(stored)]
    splits = json.loads((out / "splits" / "resnet152-places365.json").read_text())
    assert sorted(splits["test"]) == sorted(ds["test"]["unit_id"]) and len(splits["test"]) == 2


def test_provenance_and_card(built):
    out, fixtures = built
    meta = json.loads((out / "meta" / "alexnet-imagenet.json").read_text())
    prov = meta["provenance"]
    assert prov["images"] == "not shipped: run milannotations join"
    assert prov["zip_sha256"] == sha256_file(fixtures["alexnet-imagenet"].path)[0]
    assert prov["source"] == "alexnet-imagenet.zip" and prov["unannotated"] is False
    assert prov["units_in_zip"] == 7 and prov["units_kept"] == 6
    assert prov["checksum"].startswith(("no manifest entry", "DIFFERS"))  # fixture bytes are not the release
    assert json.loads((out / "meta" / "resnet152-places365.json").read_text())["provenance"]["images"] == "shipped"
    card = (out / "README.md").read_text()
    assert "config_name: alexnet-imagenet" in card and "config_name: resnet152-places365" in card


def test_load_dataset_by_name_from_parent_folder(built, monkeypatch, tmp_path):
    import shutil

    built_out, fixtures = built
    out = tmp_path / "milannotations"
    shutil.copytree(built_out, out)
    assert not (out / "milannotations.py").exists()
    monkeypatch.chdir(tmp_path)
    ds = datasets.load_dataset("milannotations", "resnet152-places365", split="test")
    units = UnitSet(ds, annotated=True)
    ref = {(s.layer, s.unit): s for s in original_samples(fixtures["resnet152-places365"].path)}
    for u in units:
        s = ref[(u.layer, u.unit)]
        assert u.annotations == s.annotations
        assert np.array_equal(u.masks.numpy(), s.masks.astype(bool))
        assert np.array_equal(u.images.numpy(), s.images)


def test_dino_carries_errata(tmp_path):
    zips = tmp_path / "zips"
    make_original_zip(zips / "dino_vits8-imagenet.zip",
                      [LayerSpec("blocks.0.mlp.fc1", 3, k=3, height=16, width=16, images=False),
                       LayerSpec("blocks.10.mlp.fc1", 3, k=3, height=16, width=16, images=False)])
    build(zips, tmp_path / "out", progress=False)
    prov = json.loads((tmp_path / "out" / "meta" / "dino_vits8-imagenet.json").read_text())["provenance"]
    assert prov["errata"] == DINO_ERRATA and "one 8-pixel patch" in prov["errata"]


# ---------------------------------------------------------------- bad input
SMALL = [LayerSpec("conv1", 3, k=3, height=16, width=16), LayerSpec("conv2", 2, k=3, height=16, width=16)]


def _corrupt_member(src: Path, dst: Path) -> None:
    data = bytearray(src.read_bytes())
    with zipfile.ZipFile(src) as zf:
        info = zf.getinfo("conv1/masks.npy")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    for i in range(start + 20, start + 40):
        data[i] ^= 0xFF
    dst.write_bytes(bytes(data))


BAD = {
    "truncated": (lambda s, d: d.write_bytes(s.read_bytes()[: len(s.read_bytes()) // 2]), ["alexnet-places365.zip", "truncated"]),
    "corrupt-member": (_corrupt_member, ["alexnet-places365.zip", "conv1/masks.npy"]),
    "zip-slip": (lambda s, d: rewrite_zip(s, d, add={"../evil.txt": b"x"}), ["../evil.txt", "escapes"]),
    "absolute-member": (lambda s, d: rewrite_zip(s, d, add={"/tmp/evil.txt": b"x"}), ["/tmp/evil.txt"]),
    "missing-layer-file": (lambda s, d: rewrite_zip(s, d, replace={"conv2/masks.npy": None}), ["conv2/masks.npy", "missing"]),
    "missing-images-where-shipped": (lambda s, d: rewrite_zip(s, d, replace={"conv2/images.npy": None}),
                                     ["conv2/images.npy", "missing"]),
    "wrong-rank": (lambda s, d: rewrite_zip(s, d, replace={"conv1/masks.npy": npy_bytes(np.zeros((3, 3, 16, 16), np.uint8))}),
                   ["conv1/masks.npy", "5-D"]),
    "shape-disagree": (lambda s, d: rewrite_zip(s, d, replace={"conv1/images.npy": npy_bytes(np.zeros((3, 3, 3, 8, 8), np.uint8))}),
                       ["conv1", "height/width"]),
    "ids-shape": (lambda s, d: rewrite_zip(s, d, replace={"conv2/ids.csv": b"1,2,3\n"}), ["conv2/ids.csv", "units"]),
    "pickled-npy": (lambda s, d: rewrite_zip(s, d, replace={"conv1/masks.npy": npy_bytes(np.array([{"a": 1}], dtype=object))}),
                    ["conv1/masks.npy"]),
    "mask-values": (lambda s, d: rewrite_zip(s, d, replace={"conv1/masks.npy": npy_bytes(np.full((3, 3, 1, 16, 16), 7, np.uint8))}),
                    ["conv1/masks.npy", "unit"]),
    "missing-column": (lambda s, d: rewrite_zip(s, d, replace={"annotations.csv": b"layer,unit,text\nconv1,0,a\n"}),
                       ["annotations.csv", "summary"]),
    "unknown-layer": (lambda s, d: rewrite_zip(s, d, replace={"annotations.csv": b"layer,unit,summary\nconv9,0,a\n"}),
                      ["annotations.csv", "'conv9'"]),
    "unknown-unit": (lambda s, d: rewrite_zip(s, d, replace={"annotations.csv": b"layer,unit,summary\nconv2,0,a\nconv2,0,b\nconv2,0,c\nconv2,7,a\n"}),
                     ["annotations.csv", "unit 7", "'conv2'"]),
    "undecodable-text": (lambda s, d: rewrite_zip(s, d, replace={"annotations.csv": "layer,unit,summary\nconv1,0,caf\u00e9\n".encode("latin-1")}),
                         ["annotations.csv", "line 2", "UTF-8"]),
}


@pytest.fixture(scope="module")
def good_zip(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("good")
    return make_original_zip(tmp / "alexnet-places365.zip", SMALL).path


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_refused_and_leaves_nothing(case, good_zip, tmp_path, capsys):
    make, needles = BAD[case]
    zips = tmp_path / "zips"
    zips.mkdir()
    make(good_zip, zips / "alexnet-places365.zip")
    out = tmp_path / "out"
    rc = cli(["build", "--zip-dir", str(zips), "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    for needle in needles:
        assert needle in err, (needle, err)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["zips"]  # no staging left behind
    assert not (tmp_path.parent / "evil.txt").exists() and not Path("/tmp/evil.txt").exists()


def test_multi_config_build_is_all_or_nothing(good_zip, tmp_path, capsys):
    zips = tmp_path / "zips"
    zips.mkdir()
    (zips / "alexnet-imagenet.zip").write_bytes(good_zip.read_bytes())  # fine (images shipped anyway)
    rewrite_zip(good_zip, zips / "alexnet-places365.zip", replace={"conv2/ids.csv": b"1,2\n4,5\n"})
    out = tmp_path / "out"
    # a previous good build of another config must survive a failing run untouched
    build(zips, out, ["alexnet-imagenet"], progress=False)
    before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    rc = cli(["build", "--zip-dir", str(zips), "--out", str(out), "--no-progress",
              "alexnet-imagenet", "alexnet-places365"])
    assert rc == 2 and "conv2/ids.csv" in capsys.readouterr().err
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == before
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())


def test_missing_zip_and_unknown_config(tmp_path, capsys):
    (tmp_path / "zips").mkdir()
    assert cli(["build", "--zip-dir", str(tmp_path / "zips"), "--out", str(tmp_path / "o"), "alexnet-imagenet"]) == 2
    assert "alexnet-imagenet.zip" in capsys.readouterr().err
    assert cli(["build", "--zip-dir", str(tmp_path / "zips"), "--out", str(tmp_path / "o"), "vgg-nothing"]) == 2
    assert "unknown config" in capsys.readouterr().err


# ---------------------------------------------------------------- push / info
class FakeApi:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    def create_repo(self, **kw):
        self.calls.append(("create_repo", kw))

    def upload_folder(self, **kw):
        self.calls.append(("upload_folder", kw))
        return type("Info", (), {"commit_url": "https://huggingface.co/datasets/me/milannotations/commit/abc"})()


def test_push_uploads_a_built_folder(built, monkeypatch, capsys):
    import huggingface_hub

    out, _ = built
    api = FakeApi()
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda *a, **k: api)
    assert cli(["push", "--repo-id", "me/milannotations", "--folder", str(out), "--private"]) == 0
    (name1, create), (name2, upload) = api.calls
    assert name1 == "create_repo" and create == {"repo_id": "me/milannotations", "repo_type": "dataset",
                                                 "private": True, "exist_ok": True}
    assert name2 == "upload_folder" and upload["folder_path"] == str(out)
    assert upload["repo_id"] == "me/milannotations" and upload["repo_type"] == "dataset"
    # what huggingface_hub would actually leave out of the upload: build leftovers, never the data
    from huggingface_hub.utils import filter_repo_objects

    files = ["data/alexnet-imagenet/train-00000.parquet", "README.md", ".staging-x/data/a.parquet",
             ".exemplars-work/m/0a1b/chunk-00000.safetensors"]
    assert list(filter_repo_objects(files, ignore_patterns=upload["ignore_patterns"])) == files[:2]
    assert "me/milannotations" in capsys.readouterr().out


def test_push_refuses_what_is_not_a_built_corpus(built, tmp_path, monkeypatch, capsys):
    import huggingface_hub

    from milannotations.commands.push import push

    api = FakeApi()
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda *a, **k: api)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("hi")
    assert cli(["push", "--repo-id", "me/milannotations", "--folder", str(tmp_path / "junk")]) == 2
    assert "not a built corpus" in capsys.readouterr().err
    assert cli(["push", "--repo-id", "milannotations", "--folder", str(built[0])]) == 2
    assert "NAMESPACE/NAME" in capsys.readouterr().err
    # joined ImageNet pixels may not be redistributed
    out = tmp_path / "joined"
    import shutil

    shutil.copytree(built[0], out)
    meta_path = out / "meta" / "alexnet-imagenet.json"
    meta = json.loads(meta_path.read_text())
    meta["provenance"]["images"] = "joined from ImageNet val (Resize256+CenterCrop224)"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(mn.MilanError, match="redistribution"):
        push(out, "me/milannotations", api=api)
    meta["provenance"]["images"] = "shipped for some layers, others joined from ImageNet val (Resize256+CenterCrop224)"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(mn.MilanError, match="redistribution"):
        push(out, "me/milannotations", api=api)
    push(out, "me/milannotations", api=api, allow_joined_images=True)
    (out / "milannotations.py").write_text("")
    with pytest.raises(mn.MilanError, match="milannotations.py"):
        push(out, "me/milannotations", api=api, allow_joined_images=True)
    assert [c for c, _ in api.calls] == ["create_repo", "upload_folder"]  # only the allowed push went out


def test_info_lists_units_per_split(built, capsys, tmp_path):
    out, _ = built
    assert cli(["info", "--root", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    row = next(line.split() for line in lines if line.strip().startswith("resnet152-places365"))
    assert row[1:4] == ["10", "2", "12"] and row[4] == "shipped"
    row = next(line.split() for line in lines if line.strip().startswith("alexnet-imagenet"))
    assert row[1:4] == ["5", "1", "6"] and "not shipped" in " ".join(row)
    assert cli(["info", "--root", str(tmp_path)]) == 2


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs Linux /proc")
def test_units_read_from_mmap_do_not_stay_resident(tmp_path):
    """Streaming a config must not accumulate the memory-mapped file in the process's RSS."""
    import random
    import shutil

    from milannotations.build import _read_unit

    src = tmp_path / "src.npy"
    np.save(src, np.ones((64, 8, 1, 64, 64), np.uint8))  # 2 MiB of units
    path = tmp_path / "masks.npy"
    with open(src, "rb") as s, open(path, "wb") as d:  # written like extraction writes (page cache, large folios)
        shutil.copyfileobj(s, d, 1 << 20)
    arr = np.load(path, mmap_mode="r")
    order = list(range(64))
    random.Random(0).shuffle(order)
    total = sum(int(_read_unit(arr, i).sum()) for i in order)
    assert total == arr.size

    def resident_kb() -> int:
        kb, current = 0, None
        for line in Path("/proc/self/smaps").read_text().splitlines():
            if line[:1] in "0123456789abcdef" and "-" in line.split()[0]:
                current = line.split()[-1]
            elif line.startswith("Rss:") and current == str(path):
                kb += int(line.split()[1])
        return kb

    assert resident_kb() <= 64  # at most a few pages of 2 MiB
