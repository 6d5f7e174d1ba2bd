"""Exemplars: top-k, thresholds and masks against brute force on a random-weight ResNet-18."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image
from torch import nn

from milannotations.cli import main as cli_main
from milannotations.errors import MilanError
from milannotations.exemplars import (ImageFolderDataset, QuantileSketch, compute_exemplars, default_transform,
                                      write_exemplar_config)
from milannotations.exemplars.models import IMAGENET_MEAN, IMAGENET_STD, load_model
from milannotations.exemplars.quantile import DEFAULT_BINS
from milannotations.writer import ConfigMeta

N_IMAGES, SIZE, K, LAYERS = 40, 64, 5, ("layer1", "layer4")
REPO = Path(__file__).resolve().parents[1]


def _smooth_images(n: int, size: int, seed: int) -> np.ndarray:
    """Random images with blobs (smoother than noise, so maps have structure)."""
    rng = np.random.default_rng(seed)
    low = rng.integers(0, 256, (n, 3, size // 8, size // 8)).astype(np.float32)
    up = F.interpolate(torch.from_numpy(low), size=(size, size), mode="bilinear", align_corners=False)
    noise = rng.normal(0, 20, up.shape).astype(np.float32)
    return np.clip(up.numpy() + noise, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A weights file, a class-folder of PNGs and a config written by the CLI."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("exemplars")
    torch.manual_seed(1)
    model = torchvision.models.resnet18().eval()
    from safetensors.torch import save_file

    weights = root / "rn18.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    images = _smooth_images(N_IMAGES, SIZE, seed=0)
    folder = root / "probe"
    for i, im in enumerate(images):  # two classes: ids follow ImageFolder order (class, then file)
        d = folder / ("cats" if i < N_IMAGES // 2 else "dogs")
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(im.transpose(1, 2, 0)).save(d / f"img{i:03d}.png")
    out = root / "corpus"
    args = ["exemplars", "--model", "torchvision:resnet18", "--weights", str(weights), "--images", str(folder),
            "--layers", ",".join(LAYERS), "--name", "rn18-probe", "--out", str(out), "--k", str(K),
            "--resize", str(SIZE), "--crop", str(SIZE), "--batch-size", "16", "--no-progress"]
    assert cli_main(args) == 0
    return {"root": root, "weights": weights, "images": images, "folder": folder, "out": out, "args": args,
            "model": model}


def _brute_force_maps(model: nn.Module, images: np.ndarray, layers) -> dict[str, torch.Tensor]:
    """Full activation maps, one image at a time, with plain hooks (independent of the package)."""
    maps: dict[str, list[torch.Tensor]] = {layer: [] for layer in layers}
    grabbed = {}
    handles = [model.get_submodule(layer).register_forward_hook(
        lambda _m, _i, o, layer=layer: grabbed.__setitem__(layer, o)) for layer in layers]
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    with torch.no_grad():
        for im in images:
            x = (torch.from_numpy(im).float() / 255 - mean) / std
            model(x[None])
            for layer in layers:
                maps[layer].append(grabbed[layer][0])
    for h in handles:
        h.remove()
    return {layer: torch.stack(v) for layer, v in maps.items()}


def _brute_top(scores: torch.Tensor, k: int) -> torch.Tensor:
    """(images, units) -> (units, k) ids by score desc, then id asc."""
    out = []
    for u in range(scores.shape[1]):
        out.append(sorted(range(scores.shape[0]), key=lambda i: (-float(scores[i, u]), i))[:k])
    return torch.tensor(out)


def test_topk_and_masks_match_brute_force(world):
    ours = ImageFolderDataset(world["folder"]).files
    assert [Path(p) for p, _ in torchvision.datasets.ImageFolder(str(world["folder"])).samples] == ours
    ds = datasets.load_dataset(str(world["out"]), "rn18-probe")
    rows = {r["unit_id"]: r for split in ds.values() for r in split}
    maps = _brute_force_maps(world["model"], world["images"], LAYERS)
    ious = []
    for layer in LAYERS:
        full = maps[layer]
        top = _brute_top(full.amax(dim=(2, 3)), K)
        exact_thr = torch.quantile(full.transpose(0, 1).reshape(full.shape[1], -1).double(), 0.99, dim=1)
        for u in range(full.shape[1]):
            row = rows[f"rn18-probe/{layer}/{u}"]
            assert row["image_ids"] == top[u].tolist(), (layer, u)
            for j, i in enumerate(row["image_ids"]):
                assert np.array_equal(np.asarray(row["images"][j]).transpose(2, 0, 1), world["images"][i])
                exact = (F.interpolate(full[i, u][None, None], size=(SIZE, SIZE), mode="bilinear",
                                       align_corners=False)[0, 0].double() > exact_thr[u]).numpy()
                got = np.asarray(row["masks"][j]) > 0
                union = (exact | got).sum()
                ious.append(1.0 if union == 0 else (exact & got).sum() / union)
    assert np.mean(ious) >= 0.99, np.mean(ious)  # with the lattice sketch masks are essentially exact
    meta = json.loads((world["out"] / "meta" / "rn18-probe.json").read_text())
    assert meta["provenance"]["unannotated"] is True
    assert not (world["out"] / ".exemplars-work" / "rn18-probe").exists()  # cleaned after success


def test_thresholds_within_stated_bound(world):
    model = load_model("torchvision:resnet18", str(world["weights"])).module
    data = [torch.from_numpy(im) for im in world["images"]]
    stats = compute_exemplars(model, LAYERS, data, k=K, batch_size=7, progress=False,
                              normalize=(IMAGENET_MEAN, IMAGENET_STD))
    maps = _brute_force_maps(world["model"], world["images"], LAYERS)
    for layer in LAYERS:
        full = maps[layer].transpose(0, 1).reshape(maps[layer].shape[1], -1).double()
        exact = torch.quantile(full, 0.99, dim=1)
        err = (stats.thresholds[layer] - exact).abs()
        bound = stats.threshold_error[layer]
        assert (err <= bound + 1e-6).all()
        span = full.amax(1) - full.amin(1)
        assert (bound <= 2 * span / (DEFAULT_BINS - 2) + 1e-12).all()  # compute_exemplars' default bins


@pytest.mark.parametrize("dist", ["relu_normal", "lognormal", "offset", "constant", "discrete"])
def test_quantile_sketch_vs_torch_quantile(dist):
    g = torch.Generator().manual_seed(0)
    units, n = 6, 30_000
    x = torch.randn(units, n, generator=g)
    x = {"relu_normal": x.relu(), "lognormal": x.exp() * 10, "offset": 1000 + x * 1e-3,
         "constant": torch.zeros(units, n), "discrete": x.round()}[dist]
    whole = QuantileSketch.empty(units, bins=512)
    shards = [QuantileSketch.empty(units, bins=512) for _ in range(3)]
    for i, block in enumerate(x.split(1_700, dim=1)):
        whole.update(block)
        shards[i % 3].update(block)
    merged = shards[2].copy().merge(shards[0]).merge(shards[1])
    for q in (0.5, 0.99, 0.999):
        exact = torch.quantile(x.double(), q, dim=1)
        est = whole.quantile(q)
        assert ((est - exact).abs() <= whole.error_bound()).all(), (dist, q)
        assert torch.equal(merged.quantile(q), est)  # the merge is exact, not just within bounds
    assert torch.equal(merged.counts, whole.counts)
    span = (x.amax(1) - x.amin(1)).double()
    assert (whole.error_bound() <= torch.clamp(2 * span / (512 - 2), min=2.0 ** -200)).all()


def test_two_processes_match_one(world, tmp_path):
    out = tmp_path / "corpus2"
    args = list(world["args"])
    args[args.index("--out") + 1] = str(out)
    args[args.index("--layers") + 1] = "layer1"  # fewer units to write; the split of a unit is per-unit
    import socket

    with socket.socket() as sock:  # a free port, so parallel test runs do not collide
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(port),
           "-m", "milannotations", *args, "--chunk-size", "6"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr[-3000:]
    one = datasets.load_dataset(str(world["out"]), "rn18-probe", split="train").filter(
        lambda layer: layer == "layer1", input_columns="layer")
    two = datasets.load_dataset(str(out), "rn18-probe", split="train")
    assert one["unit_id"] == two["unit_id"]
    assert one["image_ids"] == two["image_ids"]
    for a, b in zip(one.select(range(0, len(one), 7)), two.select(range(0, len(two), 7))):
        assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a["masks"], b["masks"]))
    meta = json.loads((out / "meta" / "rn18-probe.json").read_text())
    assert meta["provenance"]["exemplars"]["images"] == N_IMAGES


class _Counting(torch.utils.data.Dataset):
    """Records which indices were read; optionally fails at one index (a 'killed' run)."""

    def __init__(self, images, fail_at=None):
        self.images, self.fail_at, self.seen = images, fail_at, []

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        if i == self.fail_at:
            raise KeyboardInterrupt("killed")
        self.seen.append(i)
        return self.images[i]


def test_resume_skips_finished_chunks(world, tmp_path):
    model = world["model"]
    data = [torch.from_numpy(im) for im in world["images"][:24]]
    kw = dict(k=3, batch_size=4, progress=False, chunk_size=8, work_dir=tmp_path / "work")
    with pytest.raises(KeyboardInterrupt):
        compute_exemplars(model, ["layer2"], _Counting(data, fail_at=19), **kw)
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["chunk-000000.safetensors",
                                                                    "chunk-000001.safetensors"]
    again = _Counting(data)
    resumed = compute_exemplars(model, ["layer2"], again, **kw)
    assert min(again.seen) == 16  # chunks 0 and 1 were loaded, not recomputed
    fresh = compute_exemplars(model, ["layer2"], data, k=3, batch_size=5, progress=False)
    assert torch.equal(resumed.top_ids["layer2"], fresh.top_ids["layer2"])
    assert torch.equal(resumed.thresholds["layer2"], fresh.thresholds["layer2"])
    assert resumed.images == fresh.images == 24
    other = _Counting(data)  # another chunking must not reuse chunk files of different spans
    compute_exemplars(model, ["layer2"], other, **{**kw, "chunk_size": 12})
    assert sorted(other.seen) == list(range(24))


class _TinyViT(nn.Module):
    """Patch embedding, a CLS token, and a token-wise block: the layout of a ViT."""

    def __init__(self, dim=8, patch=8):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, patch, stride=patch)
        self.cls = nn.Parameter(torch.full((1, 1, dim), 100.0))  # would win every top-k if not dropped
        self.block = nn.Identity()
        self.head = nn.Linear(dim, 2)

    def forward(self, x):
        p = self.patch(x)  # B, C, h, w
        tokens = torch.cat([self.cls.expand(len(x), -1, -1), p.flatten(2).transpose(1, 2)], dim=1)
        return self.head(self.block(tokens)[:, 0])


def test_vit_token_maps(world):
    torch.manual_seed(0)
    vit = _TinyViT().eval()
    data = [torch.from_numpy(im) for im in world["images"][:12]]
    stats = compute_exemplars(vit, ["block"], data, k=4, batch_size=5, progress=False)
    with torch.no_grad():
        patch = vit.patch(torch.stack(data).float() / 255)  # the grid the tokens came from
    assert stats.per_layer["block"].map_size == (SIZE // 8, SIZE // 8)
    assert torch.equal(stats.top_ids["block"], _brute_top(patch.amax(dim=(2, 3)), 4))
    exact = torch.quantile(patch.transpose(0, 1).reshape(8, -1).double(), 0.99, dim=1)
    assert ((stats.thresholds["block"] - exact).abs() <= stats.threshold_error["block"]).all()


class _ConceptNeurons(nn.Module):
    """Synthetic neurons: unit c fires where concept c is present (input = concept masks)."""

    def __init__(self):
        super().__init__()
        self.units = nn.Identity()

    def forward(self, concepts):
        return self.units(concepts.float())


def test_synthetic_dataset_path_and_annotations(tmp_path):
    rng = np.random.default_rng(0)
    items = []
    for i in range(10):
        concepts = torch.zeros(2, 32, 32, dtype=torch.bool)
        concepts[0, : 3 * i + 2, :8] = True  # concept 0 grows with i
        concepts[1, 20:, 20:] = i % 2 == 0
        items.append((torch.from_numpy(rng.integers(0, 256, (3, 32, 32), dtype=np.uint8)), concepts))
    model = _ConceptNeurons()
    # 12 % of positions are 1, so the 0.8 quantile is 0 and the masks are the concepts themselves.
    stats = compute_exemplars(model, ["units"], items, k=3, quantile=0.8, progress=False, batch_size=4)
    assert stats.top_ids["units"][0].tolist() == [0, 1, 2]  # ties at 1.0: smaller ids first
    path = write_exemplar_config(tmp_path / "out", ConfigMeta("synth-toy", "toy", "toy-scenes", synthetic=True),
                                 model, ["units"], items, stats, progress=False,
                                 annotate=lambda layer, u: ([f"concept {u}", f"c{u}", f"the c{u}"],
                                                            json.dumps({"formula": f"c{u}"})))
    assert path == tmp_path / "out" / "data" / "synth-toy"
    ds = datasets.load_dataset(str(tmp_path / "out"), "synth-toy")
    rows = {r["unit"]: r for split in ds.values() for r in split}
    assert rows[1]["annotations"] == ["concept 1", "c1", "the c1"]
    assert json.loads(rows[1]["truth"]) == {"formula": "c1"}
    for j, i in enumerate(rows[0]["image_ids"]):
        assert np.array_equal(np.asarray(rows[0]["images"][j]).transpose(2, 0, 1), items[i][0].numpy())
        assert np.array_equal(np.asarray(rows[0]["masks"][j]) > 0, items[i][1][0].numpy())
    meta = json.loads((tmp_path / "out" / "meta" / "synth-toy.json").read_text())
    assert "unannotated" not in meta["provenance"]


def test_errors_name_the_problem(world, tmp_path):
    model = world["model"]
    data = [torch.from_numpy(im) for im in world["images"][:4]]
    with pytest.raises(MilanError, match="unknown layer 'layer9'.*layer1"):
        compute_exemplars(model, ["layer9"], data, progress=False)
    with pytest.raises(MilanError, match="'fc' outputs shape \\(4, 1000\\), not a spatial map"):
        compute_exemplars(model, ["fc"], data, progress=False, batch_size=4)
    (tmp_path / "empty").mkdir()
    with pytest.raises(MilanError, match="holds no images"):
        ImageFolderDataset(tmp_path / "empty")
    with pytest.raises(MilanError, match="not in the torch cache"):
        os.environ["TORCH_HOME"], old = str(tmp_path / "th"), os.environ.get("TORCH_HOME")
        try:
            load_model("torchvision:resnet18", "imagenet")
        finally:
            os.environ.pop("TORCH_HOME") if old is None else os.environ.__setitem__("TORCH_HOME", old)


def test_unreadable_images_skipped_or_refused(world, tmp_path, capsys):
    folder = tmp_path / "flat"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(world["images"][i].transpose(1, 2, 0)).save(folder / f"{i}.png")
    (folder / "1b.png").write_bytes(b"this is not a png")
    ds = ImageFolderDataset(folder, default_transform(SIZE, SIZE))
    assert [p.name for p in ds.files] == ["0.png", "1.png", "1b.png", "2.png"]  # flat folder: sorted names
    stats = compute_exemplars(world["model"], ["layer4"], ds, k=2, progress=False, batch_size=4)
    assert (stats.images, stats.skipped) == (3, 1)
    assert f"skipping unreadable image {folder / '1b.png'}" in capsys.readouterr().err  # named, not only counted
    assert set(stats.top_ids["layer4"].reshape(-1).tolist()) <= {0, 1, 3}  # id 2 (unreadable) never appears
    args = ["exemplars", "--model", "torchvision:resnet18", "--weights", str(world["weights"]), "--images",
            str(folder), "--layers", "layer4", "--name", "x", "--out", str(tmp_path / "o"), "--strict",
            "--k", "2", "--resize", str(SIZE), "--crop", str(SIZE), "--no-progress"]
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert "cannot read image" in err and "1b.png" in err and len(err.strip().splitlines()) <= 2
    assert not (tmp_path / "o").exists()  # nothing half-written, not even an empty --out
