"""Build the model to dissect from a CLI spec, with weights loaded safely and never downloaded.

`--model torchvision:resnet18` (any `torchvision.models` name) or
`--model package.module:factory` (a zero-argument callable returning an
nn.Module). `--weights` is `none` (random init, seeded), `imagenet`
(torchvision's default weights, only from the local torch hub cache), or a
file: `.safetensors`, or a `torch.load(weights_only=True)` state dict.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import MilanError
from ..weights import load_state_dict as load_weights

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class LoadedModel:
    """The model, its display name, and the input normalisation it expects (None = raw [0, 1])."""

    module: nn.Module
    name: str
    normalize: tuple[tuple[float, ...], tuple[float, ...]] | None


def load_model(spec: str, weights: str = "none", *, normalize: str = "auto", seed: int = 0) -> LoadedModel:
    """Resolve `spec` and `weights` (see module docstring) into an eval-mode model.

    `normalize`: "auto" (ImageNet mean/std for torchvision models, none otherwise),
    "imagenet" or "none".
    """
    if ":" not in spec:
        raise MilanError(f"--model {spec!r}: expected torchvision:<name> or package.module:factory")
    source, name = spec.split(":", 1)
    torch.manual_seed(seed)  # random init is reproducible
    if source == "torchvision":
        import torchvision

        try:
            module = torchvision.models.get_model(name, weights=None)
        except ValueError as e:
            raise MilanError(f"--model {spec!r}: torchvision has no model {name!r}") from e
        display = name
    else:
        try:
            factory = getattr(importlib.import_module(source), name)
        except (ImportError, AttributeError) as e:
            raise MilanError(f"--model {spec!r}: cannot import {name!r} from {source!r} ({e})") from e
        module = factory()
        if not isinstance(module, nn.Module):
            raise MilanError(f"--model {spec!r}: the factory returned {type(module).__name__}, not an nn.Module")
        display = name
    if weights == "imagenet":
        if source != "torchvision":
            raise MilanError("--weights imagenet works only with torchvision:<name> models; pass a file")
        state = _torchvision_cached_weights(name)
    elif weights in ("none", "", None):
        state = None
    else:
        state = load_state_dict(Path(weights))
    if state is not None:
        try:
            module.load_state_dict(state)
        except RuntimeError as e:
            first = str(e).strip().splitlines()
            raise MilanError(f"weights {weights} do not fit {spec}: {' '.join(first[:3])[:400]}") from e
    if normalize == "auto":
        norm = (IMAGENET_MEAN, IMAGENET_STD) if source == "torchvision" else None
    elif normalize == "imagenet":
        norm = (IMAGENET_MEAN, IMAGENET_STD)
    elif normalize == "none":
        norm = None
    else:
        raise MilanError(f"--normalize must be auto, imagenet or none, got {normalize!r}")
    return LoadedModel(module.eval(), display, norm)


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from safetensors or a weights-only torch file (never unpickles objects)."""
    if not path.is_file():
        raise MilanError(f"weights file {path} does not exist (use --weights none for random weights)")
    return load_weights(path)


def _torchvision_cached_weights(name: str) -> dict[str, torch.Tensor]:
    """torchvision's default weights for `name` from the local hub cache; never downloads."""
    import torchvision

    try:
        enum = torchvision.models.get_model_weights(name)
    except ValueError as e:
        raise MilanError(f"torchvision has no pretrained weights for {name!r}") from e
    w = enum.DEFAULT
    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(w.url).name
    if not path.is_file():
        raise MilanError(f"ImageNet weights for {name} ({w}) are not in the torch cache: expected {path}. "
                         f"Download {w.url} there on a machine with network access (or set TORCH_HOME "
                         "to a folder holding checkpoints/), or pass --weights FILE")
    return load_state_dict(path)
