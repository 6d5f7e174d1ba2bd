"""Both builders on several worker processes: the same bytes as one process, errors in one line, clean exits."""
from __future__ import annotations

import hashlib
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from milannotations.build import build
from milannotations.errors import MilanError
from tests.original_format import LayerSpec, make_original_zip

ROOT = Path(__file__).resolve().parents[1]
# 11 units kept over two layers with shipped images: three pool tasks of 4 units, in CSV order
LAYERS = [LayerSpec("conv1", 6, k=3, height=16, width=16), LayerSpec("conv2", 5, k=4, height=12, width=12)]


def _files(folder: Path) -> dict[str, str]:
    """sha256 of every file a build wrote (data, splits, meta, card)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def zips(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("zips")
    make_original_zip(folder / "resnet152-places365.zip", LAYERS, descriptions={("conv1", 2): 4}, seed=5)
    return folder


def test_conversion_bytes_do_not_depend_on_workers(zips, tmp_path):
    one = tmp_path / "one"
    two = tmp_path / "two"
    build(zips, one, progress=False, workers=1)
    build(zips, two, progress=False, workers=2)
    assert _files(one) == _files(two)
    assert any(name.endswith(".parquet") for name in _files(one))


def test_a_bad_unit_in_a_worker_is_one_error_and_writes_nothing(tmp_path):
    def masks(spec, unit):
        m = np.zeros((spec.k, 1, spec.height, spec.width), np.uint8)
        if spec.name == "conv2" and unit == 3:
            m[0, 0, 0, 0] = 7  # caught while encoding, in a worker
        return m

    zips = tmp_path / "zips"
    make_original_zip(zips / "resnet152-places365.zip", LAYERS, masks_fn=masks, seed=6)
    out = tmp_path / "out"
    with pytest.raises(MilanError, match=r"conv2/masks\.npy, unit 3: mask values must be 0 or 1, found 7"):
        build(zips, out, progress=False, workers=2)
    assert not out.exists()


def test_real_encoding_keeps_the_pixels():
    """The measured PNG setting of the real corpus (Z_RLE) decodes to exactly the same pixels."""
    from PIL import Image

    from milannotations.writer import DEFAULT_ENCODING, REAL_ENCODING, encode_png

    rng = np.random.default_rng(0)
    smooth = np.cumsum(rng.integers(0, 3, (3, 32, 40)), axis=2).astype(np.uint8)  # photo-like gradients
    mask = (rng.random((32, 40)) > 0.7).astype(np.uint8) * 255
    for array in (smooth, mask, rng.integers(0, 256, (3, 8, 8), dtype=np.uint8)):
        fast, old = encode_png(array, REAL_ENCODING), encode_png(array, DEFAULT_ENCODING)
        a = np.asarray(Image.open(io.BytesIO(fast)))
        b = np.asarray(Image.open(io.BytesIO(old)))
        assert np.array_equal(a, b)
        assert np.array_equal(a, array.transpose(1, 2, 0) if array.ndim == 3 else array)


def test_synthetic_bytes_do_not_depend_on_workers(tmp_path):
    from milannotations.synth.build import build_synth

    configs = ["synth-deep-plain", "synth-shallow-cluttered"]
    one = build_synth(tmp_path / "one", units=7, pool_size=30, configs=configs, progress=False, workers=1)
    two = build_synth(tmp_path / "two", units=7, pool_size=30, configs=configs, progress=False, workers=2)
    assert _files(one) == _files(two)
    assert {n.split("/")[1] for n in _files(one) if n.startswith("data/")} == set(configs)  # only those


def test_sharded_synthetic_build_writes_what_the_one_pass_writer_wrote(tmp_path):
    """The sharded builder (any workers, PNG of pool images cached) against `build_annotated_config`,
    the exemplar engine's own one-pass writer that built the corpus before: same files."""
    from milannotations.synth.build import ScenePool, build_annotated_config, build_synth

    config = "synth-deep-cluttered"
    reference = tmp_path / "reference"
    build_annotated_config(reference, config, ScenePool("cluttered", 30, 2), seed=2, units=7, progress=False)
    sharded = build_synth(tmp_path / "sharded", seed=2, units=7, pool_size=30, configs=[config], progress=False,
                          workers=1)
    assert _files(sharded) == _files(reference)


def test_shards_cover_every_unit_once():
    from milannotations.synth.build import _shards

    for units, workers in ((500, 2), (9, 2), (7, 16), (1, 1), (251, 3)):
        shards = _shards(units, workers)
        assert [u for a, b in shards for u in range(a, b)] == list(range(units))
        assert len(shards) >= min(workers, units)


@pytest.mark.parametrize("argv", [
    ["synth", "--units", "6", "--pool-size", "30", "--configs", "synth-deep-plain", "--workers", "2"],
    ["build", "--workers", "2"],
])
def test_the_cli_with_workers_exits_cleanly(argv, zips, tmp_path):
    """The command returns once done: no worker process is left holding it open."""
    if argv[0] == "build":
        argv = [*argv, "--zip-dir", str(zips)]
    cmd = [sys.executable, "-m", "milannotations", *argv, "--output", str(tmp_path / "out"), "--no-progress"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "meta").is_dir()


def test_workers_below_one_is_refused(zips, tmp_path):
    with pytest.raises(MilanError, match="--workers must be at least 1"):
        build(zips, tmp_path / "out", workers=0)
