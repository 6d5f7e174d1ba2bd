"""Probe activations (issue 15 item 3): every unit's spatial max / mean on every probe image, beside a config."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from milannotations.cli import main as cli_main
from milannotations.errors import MilanError
from milannotations.exemplars import load_probe, merge_probe_shards, run_exemplars
from milannotations.exemplars.images import default_transform
from milannotations.exemplars.models import IMAGENET_MEAN, IMAGENET_STD, load_model
from milannotations.exemplars.probe import ChunkWriter, files_digest, layer_filename, probe_spans
from milannotations.exemplars.run import run_key

SIZE, LAYERS = 40, ("layer1", "layer3")


def _images(folder: Path, n: int, seed: int, size: int = SIZE + 8) -> list[Path]:
    """`n` random PNGs (a little larger than the crop, so Resize + CenterCrop really act)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    paths = []
    for i in range(n):
        low = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
        im = Image.fromarray(low).resize((size, size + 4 * (i % 2)), Image.BILINEAR)
        paths.append(folder / f"im{i:02d}.png")
        im.save(paths[-1])
    return paths


def _direct(files: list[Path], layers) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Spatial max and mean of each layer by a plain forward pass per image (independent of the recorder)."""
    model = load_model("torchvision:resnet18", "none").module.eval()  # the same seeded random init
    grabbed = {}
    hooks = [model.get_submodule(layer).register_forward_hook(
        lambda _m, _i, o, layer=layer: grabbed.__setitem__(layer, o)) for layer in layers]
    t = default_transform(SIZE, SIZE)
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    out = {layer: ([], []) for layer in layers}
    with torch.no_grad():
        for f in files:
            x = (t(Image.open(f).convert("RGB")).float() / 255 - mean) / std
            model(x[None])
            for layer in layers:
                out[layer][0].append(grabbed[layer][0].amax(dim=(1, 2)))
                out[layer][1].append(grabbed[layer][0].mean(dim=(1, 2)))
    for h in hooks:
        h.remove()
    return {layer: (torch.stack(a), torch.stack(b)) for layer, (a, b) in out.items()}


def _cli(images: Path, out: Path, *extra: str) -> int:
    return cli_main(["exemplars", "--model", "torchvision:resnet18", "--weights", "none", "--images", str(images),
                     "--layers", ",".join(LAYERS), "--name", "rn", "--output", str(out), "--k", "3",
                     "--resize", str(SIZE), "--crop", str(SIZE), "--batch-size", "5", "--no-progress", *extra])


def _assert_values(probe, files: list[Path]) -> None:
    direct = _direct(files, LAYERS)
    for layer in LAYERS:
        for pool, want in zip(("max", "mean"), direct[layer]):
            got = probe.activations(layer, pool)
            assert got.dtype == np.float16 and got.shape == tuple(want.shape)
            assert isinstance(got, np.memmap)
            np.testing.assert_allclose(got.astype(np.float32), want.half().float().numpy(), rtol=2e-3, atol=2e-3)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("probe")
    files = _images(root / "imgs", 12, seed=0)
    out = root / "corpus"
    assert _cli(root / "imgs", out, "--record-activations", "--chunk-size", "5") == 0
    return {"root": root, "files": files, "out": out}


def test_cli_records_every_units_activation(recorded, capsys):
    out, files = recorded["out"], recorded["files"]
    probe = load_probe(out / "data" / "rn")
    meta = json.loads((out / "data" / "rn" / "probe" / "meta.json").read_text())
    assert probe.meta == meta
    assert meta["version"] == 1 and meta["dtype"] == "float16" and meta["pool"] == ["max", "mean"]
    assert meta["folder"] == str((recorded["root"] / "imgs").resolve()) and meta["same_as_exemplars"] is True
    assert meta["files"] == [f.name for f in files] and (meta["resize"], meta["crop"]) == (SIZE, SIZE)
    assert meta["layers"] == {"layer1": 64, "layer3": 256} and meta["normalize"] == "auto"
    assert meta["sha256"] == files_digest([(f.name, f.stat().st_size) for f in files])
    assert sorted(p.name for p in probe.probe_dir.iterdir()) == sorted(
        ["meta.json"] + [f"{layer}.{pool}.npy" for layer in LAYERS for pool in ("max", "mean")])
    assert probe.files == tuple(f.resolve() for f in files)
    _assert_values(probe, files)
    probe.check()
    want = torch.stack([default_transform(SIZE, SIZE)(Image.open(files[i]).convert("RGB")) for i in (3, 0)])
    assert torch.equal(probe.images([3, 0]), want)
    # the config itself is unchanged: it loads, and the work folder is gone
    ds = datasets.load_dataset(str(out), "rn")
    assert sum(len(s) for s in ds.values()) == 64 + 256
    assert not (out / ".exemplars-work").exists()


def test_library_call_other_probe_folder_skips_unreadable(tmp_path, capsys):
    torch.set_num_threads(1)
    _images(tmp_path / "ex", 6, seed=1)
    probe_files = _images(tmp_path / "pr" / "a", 4, seed=2) + _images(tmp_path / "pr" / "b", 3, seed=3)
    bad = tmp_path / "pr" / "a" / "im01b.png"
    bad.write_bytes(b"not an image")
    path = run_exemplars("torchvision:resnet18", "none", tmp_path / "ex", list(LAYERS), "rn", tmp_path / "out",
                         k=3, resize=SIZE, crop=SIZE, batch_size=4, probe_images=tmp_path / "pr", progress=False)
    err = capsys.readouterr().err
    assert f"skipping unreadable image {bad}" in err and "skipped 1 unreadable probe image" in err
    probe = load_probe(path)
    assert probe.meta["same_as_exemplars"] is False
    assert probe.meta["files"] == ["a/im00.png", "a/im01.png", "a/im02.png", "a/im03.png",
                                   "b/im00.png", "b/im01.png", "b/im02.png"]  # ImageFolder order, bad one left out
    _assert_values(probe, probe_files)
    # --strict refuses the unreadable probe image, in one line, and writes no config
    assert _cli(tmp_path / "ex", tmp_path / "strict", "--probe-images", str(tmp_path / "pr"), "--strict") == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # before it only the two progress lines of the passes
    assert last.startswith("milannotations: error: cannot read image") and "im01b.png" in last
    assert len(err.strip().splitlines()) <= 3 and "Traceback" not in err
    # no config; only the exemplar pass's finished chunks stay, for a resume once the image is fixed
    assert [p.name for p in (tmp_path / "strict").iterdir()] == [".exemplars-work"]
    assert all(p.name.startswith("chunk-") for p in (tmp_path / "strict").rglob("*") if p.is_file())


def test_moved_or_changed_probe_images_are_named(recorded, tmp_path):
    src = recorded["out"] / "data" / "rn"
    config = tmp_path / "rn"
    shutil.copytree(src, config)
    moved = tmp_path / "moved"
    shutil.copytree(recorded["root"] / "imgs", moved)
    probe = load_probe(config, folder=moved)
    probe.check()
    (moved / "im04.png").unlink()
    with pytest.raises(MilanError, match=r"im04\.png is missing.*folder=") as e:
        probe.images([2, 4])
    assert "\n" not in str(e.value)
    with pytest.raises(MilanError, match=r"im04\.png is missing"):
        probe.check()
    (moved / "im05.png").write_bytes((moved / "im05.png").read_bytes() + b"\0")
    with pytest.raises(MilanError, match=r"im05\.png changed"):
        probe.images([5])
    assert torch.equal(probe.images([0]), load_probe(config).images([0]))  # the recorded folder still works
    with pytest.raises(MilanError, match="layer9"):
        probe.activations("layer9")
    shutil.rmtree(moved)
    with pytest.raises(MilanError, match=f"probe image folder {moved} no longer exists.*folder="):
        probe.images([0])


def test_without_the_flag_no_probe_folder(tmp_path):
    torch.set_num_threads(1)
    _images(tmp_path / "imgs", 5, seed=4)
    assert cli_main(["exemplars", "--model", "torchvision:resnet18", "--images", str(tmp_path / "imgs"),
                     "--layers", "layer1", "--name", "rn", "--output", str(tmp_path / "out"), "--k", "2",
                     "--resize", "32", "--crop", "32", "--no-progress"]) == 0
    assert not (tmp_path / "out" / "data" / "rn" / "probe").exists()
    assert load_probe(tmp_path / "out" / "data" / "rn") is None


def test_merge_of_shard_files(tmp_path):
    """Chunks written by different 'ranks', with unreadable rows, merge into id order without them."""
    n, units = 11, {"a/b": 3, "c.d": 2}
    spans = probe_spans(n, 4)
    assert spans == [(0, 4), (4, 8), (8, 11)]
    rng = np.random.default_rng(0)
    full = {layer: torch.from_numpy(rng.normal(size=(n, u, 2, 2)).astype(np.float32)) for layer, u in units.items()}
    unreadable = {2, 9}
    for rank in (1, 0):  # rank 1 writes chunk 1, rank 0 chunks 0 and 2; order does not matter
        for c, span in enumerate(spans):
            if c % 2 != rank:
                continue
            w = ChunkWriter(tmp_path, span, list(units), units)
            ids = [i for i in range(*span) if i not in unreadable]
            w.add(torch.tensor(ids), {layer: full[layer][ids] for layer in units})
            w.finish()
    ids, got_units = merge_probe_shards(tmp_path, spans, list(units), tmp_path / "merged")
    keep = [i for i in range(n) if i not in unreadable]
    assert ids.tolist() == keep and got_units == units
    for layer in units:
        for pool, f in (("max", lambda m: m.amax(dim=(2, 3))), ("mean", lambda m: m.mean(dim=(2, 3)))):
            arr = np.load(tmp_path / "merged" / f"{layer_filename(layer)}.{pool}.npy", mmap_mode="r",
                          allow_pickle=False)
            assert np.array_equal(arr, f(full[layer][keep]).half().numpy())
    assert layer_filename("a/b") == "a__b" and layer_filename("layer4.1.conv2") == "layer4.1.conv2"
    shutil.rmtree(tmp_path / f"probe-{8:09d}-{11:09d}")  # a rank that did not finish
    with pytest.raises(MilanError, match="probe-000000008-000000011 is missing"):
        merge_probe_shards(tmp_path, spans, list(units), tmp_path / "merged2")


def test_run_key_includes_probe_settings(tmp_path):
    files = _images(tmp_path / "imgs", 2, seed=5)
    other = _images(tmp_path / "other", 2, seed=6)
    args = ("torchvision:resnet18", "none", tmp_path / "imgs", "layer1", 3, 0.99, 40, 40, "auto", None, False, files)
    plain = run_key(*args)
    same = run_key(*args, probe=(tmp_path / "imgs", files))
    assert len({plain, same, run_key(*args, probe=(tmp_path / "other", other))}) == 3
    assert plain == run_key(*args)


from tests.test_exemplars import _Counting  # noqa: E402  (records reads; 'killed' at one index)


def test_first_pass_fills_the_chunks_and_a_killed_recording_resumes(tmp_path):
    from milannotations.exemplars import compute_exemplars, record_probe_shards

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 5, 3)).eval()
    data = [torch.randint(0, 256, (3, 12, 12), dtype=torch.uint8) for _ in range(12)]
    layers, kw = ["0", "2"], dict(chunk_size=4, batch_size=3, progress=False)
    compute_exemplars(model, layers, data, k=2, probe_dir=tmp_path / "fused", **kw)
    again = _Counting(data)
    spans = record_probe_shards(model, layers, again, tmp_path / "fused", **kw)
    assert again.seen == [] and spans == [(0, 4), (4, 8), (8, 12)]  # the first pass recorded every chunk
    with pytest.raises(KeyboardInterrupt):
        record_probe_shards(model, layers, _Counting(data, fail_at=9), tmp_path / "killed", **kw)
    assert sorted(p.name for p in (tmp_path / "killed").iterdir()) == [
        "probe-000000000-000000004", "probe-000000004-000000008"]  # no half chunk left behind
    resumed = _Counting(data)
    record_probe_shards(model, layers, resumed, tmp_path / "killed", **kw)
    assert resumed.seen == [8, 9, 10, 11]
    merged = [merge_probe_shards(tmp_path / w, spans, layers, tmp_path / f"{w}-out") for w in ("fused", "killed")]
    assert merged[0][0].tolist() == merged[1][0].tolist() == list(range(12))
    with torch.no_grad():
        x = torch.stack(data).float() / 255
        want = {"0": model[0](x), "2": model(x)}
    for layer in layers:
        for pool, f in (("max", lambda m: m.amax(dim=(2, 3))), ("mean", lambda m: m.mean(dim=(2, 3)))):
            a, b = (np.load(tmp_path / f"{w}-out" / f"{layer}.{pool}.npy") for w in ("fused", "killed"))
            assert np.array_equal(a, b)
            np.testing.assert_allclose(a.astype(np.float32), f(want[layer]).numpy(), rtol=2e-3, atol=2e-3)


def test_rows_of_maps_exemplar_ids_past_skipped_images(tmp_path):
    _images(tmp_path / "imgs", 4, seed=7)
    (tmp_path / "imgs" / "im01b.png").write_bytes(b"broken")  # image id 2
    path = run_exemplars("torchvision:resnet18", "none", tmp_path / "imgs", "layer1", "rn", tmp_path / "out",
                         k=2, resize=32, crop=32, record_activations=True, progress=False)
    probe = load_probe(path)
    assert probe.meta["ids"] == [0, 1, 3, 4] and probe.meta["same_as_exemplars"] is True
    assert probe.rows_of([4, 2, 0]).tolist() == [3, -1, 0]
    ds = datasets.load_dataset(str(tmp_path / "out"), "rn", split="train")
    row = ds[0]
    top = probe.activations("layer1")[probe.rows_of(row["image_ids"]), row["unit"]].astype(np.float32)
    assert (np.diff(top) <= 0).all()  # the exemplars, best first, are the unit's top recorded maxima
    assert top[0] == probe.activations("layer1")[:, row["unit"]].max()


def test_missing_probe_folder_refused_before_work(tmp_path, capsys):
    _images(tmp_path / "imgs", 3, seed=8)
    assert _cli(tmp_path / "imgs", tmp_path / "out", "--probe-images", str(tmp_path / "nope")) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"milannotations: error: image folder {tmp_path / 'nope'} does not exist or is not a folder"
    assert not (tmp_path / "out").exists()
