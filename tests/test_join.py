"""Re-joining ImageNet pixels: ImageFolder order, Resize(256)+CenterCrop(224) alignment, refusals."""
from __future__ import annotations

import json
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image, ImageDraw

from milannotations.cli import main as cli
from milannotations.imagejoin import CROP_NOTE, LEGACY_NOTE, ImageSource
from milannotations.units import to_exemplars
from tests.original_format import LayerSpec, make_imagefolder, make_original_zip

SIZE = 28  # mask H = W; the crop pipeline scales the short side to 32 (= 28 * 256 / 224)
IMG_W, IMG_H = 96, 64  # non-square sources: the squash and the crop disagree
N_CLASSES, PER_CLASS = 2, 6
N_IMAGES = N_CLASSES * PER_CLASS
K = 4
BOX = 8


def _box(image_id: int) -> tuple[int, int]:
    """Top-left (x, y) in mask coordinates of the object in image `image_id`; off-centre on purpose."""
    return [(0, 2), (18, 0), (2, 18), (20, 20), (10, 4), (0, 12)][image_id % 6]


def _draw(image_id: int) -> Image.Image:
    """A blue image with one red square that lands on the mask box after Resize(32)+CenterCrop(28)."""
    img = Image.new("RGB", (IMG_W, IMG_H), (0, 0, 200))
    x, y = _box(image_id)
    scale = IMG_H / 32  # Resize(32) on the short side
    left, top = (IMG_W / scale - SIZE) / 2, (32 - SIZE) / 2
    x0, y0 = (x + left) * scale, (y + top) * scale
    ImageDraw.Draw(img).rectangle([x0, y0, x0 + BOX * scale - 1, y0 + BOX * scale - 1], fill=(230, 0, 0))
    return img


def _ids(spec: LayerSpec, unit: int) -> list[int]:
    off = 0 if spec.name == "conv1" else 5
    return [(unit * spec.k + j + off) % N_IMAGES for j in range(spec.k)]


def _masks(spec: LayerSpec, unit: int) -> np.ndarray:
    out = np.zeros((spec.k, 1, SIZE, SIZE), np.uint8)
    for j, i in enumerate(_ids(spec, unit)):
        x, y = _box(i)
        out[j, 0, y + 1:y + BOX - 1, x + 1:x + BOX - 1] = 1  # a margin absorbs resampling at the edges
    return out


LAYERS = [LayerSpec("conv1", 3, k=K, height=SIZE, width=SIZE, images=False),
          LayerSpec("conv2", 2, k=K, height=SIZE, width=SIZE, images=False)]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("join")
    make_imagefolder(tmp / "val", N_CLASSES, PER_CLASS, _draw, ext=".png")
    fx = make_original_zip(tmp / "zips" / "alexnet-imagenet.zip", LAYERS, masks_fn=_masks, ids_fn=_ids)
    return tmp, fx


def _red_inside(row: dict) -> float:
    ex = to_exemplars(row)
    img = ex.images.numpy().astype(int)
    red = (img[:, 0] > 150) & (img[:, 2] < 100)
    m = ex.masks.numpy()[:, 0]
    return float(red[m].mean())


def _build(world, name: str, *extra: str) -> Path:
    tmp, _ = world
    out = tmp / name / f"corpus-{name}"  # distinct names: datasets caches a local folder by its name
    assert cli(["build", "--zip-dir", str(tmp / "zips"), "--out", str(out), "--no-progress", *extra]) == 0
    return out


def test_imagefolder_order_is_torchvision_order(world):
    from torchvision.datasets import ImageFolder

    tmp, _ = world
    src = ImageSource(tmp / "val")
    assert [str(p) for p in src.files] == [p for p, _ in ImageFolder(str(tmp / "val")).samples]
    assert len(src) == N_IMAGES


def test_crop_join_aligns_masks_with_objects(world):
    from torchvision import transforms

    tmp, fx = world
    out = _build(world, "crop", "--imagenet", str(tmp / "val"))
    meta = json.loads((out / "meta" / "alexnet-imagenet.json").read_text())
    assert meta["provenance"]["images"] == CROP_NOTE
    ds = datasets.load_dataset(str(out), "alexnet-imagenet")
    rows = [r for s in ("train", "test") for r in ds[s]]
    assert len(rows) == 5
    files = sorted((tmp / "val").rglob("*.png"))
    ref = transforms.Compose([transforms.Resize(32), transforms.CenterCrop(SIZE)])
    for row in rows:
        assert _red_inside(row) > 0.99  # every masked pixel is on the object
        ex = to_exemplars(row)
        for j, i in enumerate(row["image_ids"]):
            want = np.asarray(ref(Image.open(files[i]).convert("RGB"))).transpose(2, 0, 1)
            assert np.array_equal(ex.images[j].numpy(), want)
        assert row["image_ids"] == fx.ids(row["layer"], row["unit"])


def test_legacy_squash_is_misaligned(world):
    tmp, _ = world
    out = _build(world, "legacy", "--imagenet", str(tmp / "val"), "--legacy-resize")
    meta = json.loads((out / "meta" / "alexnet-imagenet.json").read_text())
    assert meta["provenance"]["images"] == LEGACY_NOTE
    ds = datasets.load_dataset(str(out), "alexnet-imagenet")
    fractions = [_red_inside(r) for s in ("train", "test") for r in ds[s]]
    assert max(fractions) < 0.8 and np.mean(fractions) < 0.6


def test_join_later_equals_join_while_building(world, capsys):
    tmp, _ = world
    joined = _build(world, "crop2", "--imagenet", str(tmp / "val"))
    plain = _build(world, "plain")
    before = json.loads((plain / "meta" / "alexnet-imagenet.json").read_text())
    assert before["provenance"]["images"] == "not shipped: run milannotations join"
    splits_before = (plain / "splits" / "alexnet-imagenet.json").read_text()
    assert cli(["join", "--imagenet", str(tmp / "val"), "--out", str(plain), "--no-progress"]) == 0
    after = json.loads((plain / "meta" / "alexnet-imagenet.json").read_text())
    assert after["provenance"]["images"] == CROP_NOTE
    assert after["provenance"]["zip_sha256"] == before["provenance"]["zip_sha256"]
    assert (plain / "splits" / "alexnet-imagenet.json").read_text() == splits_before
    a = datasets.load_dataset(str(plain), "alexnet-imagenet")
    b = datasets.load_dataset(str(joined), "alexnet-imagenet")
    for s in ("train", "test"):
        assert a[s]["unit_id"] == b[s]["unit_id"]
        for ra, rb in zip(a[s], b[s]):
            ea, eb = to_exemplars(ra, annotated=True), to_exemplars(rb, annotated=True)
            assert np.array_equal(ea.images.numpy(), eb.images.numpy()) and ea.images.shape[0] == K
            assert np.array_equal(ea.masks.numpy(), eb.masks.numpy())
            assert ea.annotations == eb.annotations
    # Nothing left to join now.
    assert cli(["join", "--imagenet", str(tmp / "val"), "--out", str(plain)]) == 2
    assert "no config needs joining" in capsys.readouterr().err


def test_ids_beyond_the_folder_are_refused(world, tmp_path, capsys):
    tmp, _ = world
    small = tmp_path / "small"
    make_imagefolder(small, 1, 3, _draw, ext=".png")
    out = tmp_path / "corpus-refused"
    rc = cli(["build", "--zip-dir", str(tmp / "zips"), "--out", str(out), "--imagenet", str(small), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "unit" in err and "beyond the 3 images" in err and "ids.csv" in err
    assert not out.exists()
    # join on an existing folder: refused before any config is touched
    plain = _build(world, "plain2")
    snapshot = {p: p.read_bytes() for p in plain.rglob("*") if p.is_file()}
    rc = cli(["join", "--imagenet", str(small), "--out", str(plain)])
    err = capsys.readouterr().err
    assert rc == 2 and "alexnet-imagenet: unit alexnet-imagenet/" in err and "beyond the 3 images" in err
    assert {p: p.read_bytes() for p in plain.rglob("*") if p.is_file()} == snapshot


def test_empty_or_missing_imagefolder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert cli(["join", "--imagenet", str(tmp_path / "empty"), "--out", str(tmp_path)]) == 2
    assert "ImageFolder" in capsys.readouterr().err
    assert cli(["join", "--imagenet", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    assert "not a folder" in capsys.readouterr().err
