"""The one cached-model helper, the deterministic-training context and the weights module."""
from __future__ import annotations

import json
import pickle
import warnings

import pytest
import torch
from torch import nn

from milannotations.errors import MilanError
from milannotations.training import cache_paths, cached_model, deterministic_training, model_key
from milannotations.weights import ModelSpec, fingerprint, load_state_dict, read_metadata, save_state_dict


def _train_linear(calls: list | None = None):
    """A tiny 'training': a seeded init plus one SGD step, so the weights depend on the seed."""
    def train():
        if calls is not None:
            calls.append(1)
        net = nn.Linear(4, 3)
        x = torch.randn(8, 4)
        net(x).pow(2).mean().backward()
        with torch.no_grad():
            for p in net.parameters():
                p -= 0.1 * p.grad
        return net, {"inputs": 4, "outputs": 3}
    return train


def _build(info: dict) -> nn.Module:
    return nn.Linear(info["inputs"], info["outputs"])


def test_deterministic_training_sets_and_restores_threads_flag_and_rng():
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    with deterministic_training(7, threads=1):
        assert torch.get_num_threads() == 1 and torch.are_deterministic_algorithms_enabled()
        inside = torch.rand(3)
    with deterministic_training(7, threads=1):
        assert torch.equal(torch.rand(3), inside)  # seeded: the same draws every time
    assert torch.get_num_threads() == threads and torch.are_deterministic_algorithms_enabled() == det
    assert torch.equal(torch.rand(3), expected_next)  # the caller's random stream is untouched
    with pytest.raises(RuntimeError, match="boom"):
        with deterministic_training(0, threads=1):
            raise RuntimeError("boom")
    assert torch.get_num_threads() == threads and torch.are_deterministic_algorithms_enabled() == det


def test_cached_model_trains_once_then_reads_identical_weights(tmp_path):
    calls: list = []
    first = cached_model("tiny-net", ["v1", "seed3"], _build, _train_linear(calls), cache_dir=tmp_path, seed=3)
    assert first.trained and calls == [1] and first.info == {"inputs": 4, "outputs": 3}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny-net-v1-seed3.json", "tiny-net-v1-seed3.safetensors"]
    assert first.path == tmp_path / "tiny-net-v1-seed3.safetensors"
    assert json.loads(read_metadata(first.path)["info"]) == first.info
    again = cached_model("tiny-net", ["v1", "seed3"], _build, _train_linear(calls), cache_dir=tmp_path, seed=3)
    assert not again.trained and calls == [1]  # read, not retrained
    assert fingerprint(again.module) == fingerprint(first.module)
    other = cached_model("tiny-net", ["v1", "seed4"], _build, _train_linear(calls), cache_dir=tmp_path, seed=4)
    assert calls == [1, 1] and fingerprint(other.module) != fingerprint(first.module)  # the seed is in the key


def test_a_hit_and_a_miss_leave_the_callers_random_stream_alike(tmp_path):
    torch.manual_seed(5)
    cached_model("tiny-net", ["v1"], _build, _train_linear(), cache_dir=tmp_path, seed=0)  # trains
    after_miss = torch.rand(4)
    torch.manual_seed(5)
    assert not cached_model("tiny-net", ["v1"], _build, _train_linear(), cache_dir=tmp_path, seed=0).trained
    assert torch.equal(torch.rand(4), after_miss)


@pytest.mark.parametrize("damage", ["weights", "sidecar", "shape"])
def test_a_damaged_cache_entry_is_retrained_with_a_warning_to_the_same_weights(tmp_path, damage):
    good = cached_model("tiny-net", ["v1"], _build, _train_linear(), cache_dir=tmp_path, seed=1)
    weights, sidecar = cache_paths("tiny-net", ["v1"], tmp_path)
    if damage == "weights":
        weights.write_bytes(b"not safetensors")
    elif damage == "sidecar":
        sidecar.write_text("{truncated")
    else:  # a file that does not fit the module (e.g. an architecture change without a version bump)
        save_state_dict(nn.Linear(4, 5), weights)
    with pytest.warns(RuntimeWarning, match="tiny-net-v1.safetensors is unreadable.*retraining"):
        again = cached_model("tiny-net", ["v1"], _build, _train_linear(), cache_dir=tmp_path, seed=1)
    assert again.trained and fingerprint(again.module) == fingerprint(good.module)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not cached_model("tiny-net", ["v1"], _build, _train_linear(), cache_dir=tmp_path, seed=1).trained


def test_without_a_sidecar_the_weights_file_is_the_entry(tmp_path):
    first = cached_model("tiny-net", ["v2"], _build, _train_linear(), cache_dir=tmp_path, sidecar=False, seed=0)
    assert [p.name for p in tmp_path.iterdir()] == ["tiny-net-v2.safetensors"]
    again = cached_model("tiny-net", ["v2"], _build, _train_linear(), cache_dir=tmp_path, sidecar=False, seed=0)
    assert not again.trained and again.info == first.info
    # A file written before the info was stored (no "info" metadata) still loads, with empty info.
    save_state_dict(first.module, tmp_path / "tiny-net-v3.safetensors", metadata={"spec": "{}"})
    legacy = cached_model("tiny-net", ["v3"], lambda info: nn.Linear(4, 3), _train_linear(), cache_dir=tmp_path,
                          sidecar=False)
    assert not legacy.trained and legacy.info == {} and fingerprint(legacy.module) == fingerprint(first.module)


def test_model_key_is_the_readable_file_stem_and_refuses_unsafe_parts():
    assert model_key("synth-segmenter", ["v2", "w16", "lr0.003"]) == "synth-segmenter-v2-w16-lr0.003"
    for bad in (["a/b"], ["a-b"], [""], [".hidden"]):
        with pytest.raises(MilanError, match="key part"):
            model_key("net", bad)
    with pytest.raises(MilanError, match="model cache name"):
        model_key("../net", ["v1"])


def test_weights_never_unpickle_and_unwrap_checkpoints(tmp_path):
    net = nn.Linear(2, 2)
    wrapped = tmp_path / "ckpt.pt"
    torch.save({"state_dict": net.state_dict(), "epoch": 3}, wrapped)
    assert fingerprint(net) == fingerprint(_loaded(load_state_dict(wrapped)))
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as f:
        pickle.dump({"obj": object()}, f)
    with pytest.raises(MilanError, match="refusing to unpickle"):
        load_state_dict(evil)
    not_tensors = tmp_path / "numbers.pt"
    torch.save({"a": 1}, not_tensors)
    with pytest.raises(MilanError, match="state dict of tensors"):
        load_state_dict(not_tensors)
    with pytest.raises(MilanError, match="does not exist"):
        load_state_dict(tmp_path / "missing.safetensors")
    path = save_state_dict(net, tmp_path / "w.safetensors", metadata={"k": "v"})
    assert fingerprint(_loaded(load_state_dict(path))) == fingerprint(net) and read_metadata(path) == {"k": "v"}
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically, nothing left beside it


def _loaded(state: dict) -> nn.Module:
    m = nn.Linear(2, 2)
    m.load_state_dict(state)
    return m


def test_model_spec_round_trips_and_normalises_like_training():
    spec = ModelSpec(name="n", layers=("a", "b"), feature_dims=(2, 3), mean=(0.5, 0.5, 0.5), std=(0.25, 0.5, 1.0),
                     image_size=8, trained_on=("synth-plain",), metrics={"f1": 0.5})
    d = json.loads(json.dumps(spec.to_dict()))
    assert ModelSpec.from_dict({**d, "unknown_future_field": 1}) == spec and spec.feature_size == 5
    x = torch.full((1, 3, 2, 2), 0.75)
    assert torch.allclose(spec.transform(x)[0, :, 0, 0], torch.tensor([1.0, 0.5, 0.25]))
    with pytest.raises(MilanError, match="name"):
        ModelSpec.from_dict({"layers": []})


def test_the_synthetic_models_keep_their_cache_file_names():
    """Renaming a cache entry would retrain (or orphan) every machine's models: the stems are pinned."""
    from baselines.clip.synth_clip import synth_clip_name
    from baselines.segmenters.synth import SynthSegmenterSpec
    from milannotations.synth.backbone import TRAIN_SCENES, _key_parts, world_fingerprint

    assert SynthSegmenterSpec().filename() == "synth-segmenter-v2-w16-s300-b16-lr0.003-seed0.safetensors"
    assert synth_clip_name() == "synth-clip-v2-607f7ff7bc64"
    assert (model_key("synth-resnet", _key_parts(0, 600, TRAIN_SCENES))
            == f"synth-resnet-v1-seed0-steps600-world{world_fingerprint(0)}")
    assert model_key("synth-resnet", _key_parts(0, 3, 24)).endswith("-steps3-world" + world_fingerprint(0) + "-scenes24")
