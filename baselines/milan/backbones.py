"""The frozen image networks MILAN's encoder reads features from.

A `Backbone` carries everything the encoder needs to use it correctly in its
`spec` (`milannotations.weights.ModelSpec`: which stages to pool, their
widths, the input transform, what it was trained on) and a `signature` that
keys the feature cache, so features of different networks or weights never
mix. Weights are never downloaded: ImageNet ResNets come from a file the
user names or from torchvision's own cache (`$TORCH_HOME`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from milannotations.errors import MilanError
from milannotations.weights import ModelSpec, fingerprint, load_state_dict

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESNET_LAYERS = ("conv1", "layer1", "layer2", "layer3", "layer4")
BACKBONES = ("resnet50", "resnet101", "synth", "resnet18-random")


@dataclass(frozen=True)
class Backbone:
    """A frozen network in eval mode, its spec, and the signature that keys its cached features."""

    name: str  # the registry name (`BACKBONES`)
    module: nn.Module
    spec: ModelSpec
    signature: str  # name + weights fingerprint + transform; keys the feature cache

    @property
    def layers(self) -> tuple[str, ...]:
        return self.spec.layers

    @property
    def feature_dims(self) -> tuple[int, ...]:
        return self.spec.feature_dims

    @property
    def mean(self) -> tuple[float, ...]:
        return self.spec.mean

    @property
    def std(self) -> tuple[float, ...]:
        return self.spec.std

    @property
    def image_size(self) -> int | None:
        """Square input size; None keeps the exemplar images' own size."""
        return self.spec.image_size

    @property
    def trained_on(self) -> tuple[str, ...]:
        return self.spec.trained_on

    @property
    def feature_size(self) -> int:
        return self.spec.feature_size


#: A short hash of the weights, so a retrained backbone never reuses stale cached features.
_fingerprint = fingerprint


def _freeze(module: nn.Module, device: str) -> nn.Module:
    module.eval().to(device)
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def _imagenet_resnet(name: str, weights: str | Path | None, device: str) -> Backbone:
    import torchvision.models as tvm

    enum = {"resnet50": tvm.ResNet50_Weights, "resnet101": tvm.ResNet101_Weights}[name]
    if weights is not None:
        candidates = [Path(weights)]
    else:
        cache = Path(torch.hub.get_dir()) / "checkpoints"
        candidates = [cache / Path(w.url).name for w in (enum.IMAGENET1K_V2, enum.IMAGENET1K_V1)]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        raise MilanError(
            f"no ImageNet weights for {name}: looked for {', '.join(map(str, candidates))}. "
            f"Put torchvision's {name} weights there (TORCH_HOME), pass backbone_weights=FILE, "
            "or use backbone=synth for the synthetic corpus")
    model = getattr(tvm, name)(weights=None)
    try:
        model.load_state_dict(load_state_dict(found))
    except Exception as e:  # noqa: BLE001 - any failure here means the file is not usable
        raise MilanError(f"{found} is not a torchvision {name} state dict: {e}") from e
    dims = (64, 256, 512, 1024, 2048)
    spec = ModelSpec(name=name, layers=RESNET_LAYERS, feature_dims=dims, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                     image_size=224, trained_on=("imagenet",))
    return Backbone(name, _freeze(model, device), spec, f"{name}-{_fingerprint(model)}-224")


def _random_resnet18(device: str) -> Backbone:
    """Random (seeded) weights: tests and development only, never for reported numbers."""
    import torchvision.models as tvm

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = tvm.resnet18(weights=None)
    spec = ModelSpec(name="resnet18-random", layers=RESNET_LAYERS, feature_dims=(64, 64, 128, 256, 512),
                     mean=IMAGENET_MEAN, std=IMAGENET_STD, image_size=None)
    return Backbone("resnet18-random", _freeze(model, device), spec, f"resnet18-random-{_fingerprint(model)}")


def _synth(device: str) -> Backbone:
    # part of the project: an ImportError is a bug, raised
    from milannotations.synth.backbone import load_synth_backbone

    module, spec = load_synth_backbone(device=device)
    size = int(spec.image_size) if spec.image_size else None
    return Backbone("synth", _freeze(module, device), spec, f"synth-{spec.name}-{_fingerprint(module)}-{size}")


_LOADED: dict[tuple[str, str, str], Backbone] = {}


def load_backbone(name: str, device: str = "cpu", weights: str | Path | None = None) -> Backbone:
    """A frozen backbone by name (`resnet50`, `resnet101`, `synth`, `resnet18-random`), built once per process.

    Frozen and in eval mode, a backbone is never changed by its users, so
    every describer of a run (one per protocol split and trial) shares it.
    """
    key = (name, str(device), str(weights))
    if key not in _LOADED:
        _LOADED[key] = _build(name, device, weights)
    return _LOADED[key]


def _build(name: str, device: str, weights: str | Path | None) -> Backbone:
    if name in ("resnet50", "resnet101"):
        return _imagenet_resnet(name, weights, device)
    if name == "synth":
        return _synth(device)
    if name == "resnet18-random":
        return _random_resnet18(device)
    raise MilanError(f"unknown MILAN backbone {name!r}; choose one of {', '.join(BACKBONES)}")
