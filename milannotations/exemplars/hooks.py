"""Forward hooks that turn any named layer's output into a (batch, units, h, w) map.

Convolutional layers give (B, C, h, w) directly. Vision-transformer blocks
give token maps (B, 1 + h*w, C): the leading CLS token is dropped and the
patch tokens are put back on their square h x w grid (row-major, as ViTs
flatten them). A token map with exactly h*w tokens (no CLS) is accepted as is.
Anything else is refused with a message naming the layer and the shape,
since a unit without a spatial map has no region to show.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from ..errors import MilanError


class _AllLayersSeen(Exception):
    """Raised inside the last needed hook to skip the rest of the forward pass."""


def resolve_layers(model: nn.Module, layers: Sequence[str]) -> dict[str, nn.Module]:
    """Map layer names to submodules, with an error that lists what exists."""
    if not layers:
        raise MilanError("no layers given; pass e.g. --layers layer1,layer4")
    found = {}
    names = {name for name, _ in model.named_modules() if name}
    for layer in layers:
        if layer not in names:
            import difflib

            close = difflib.get_close_matches(layer, sorted(names), n=5) or sorted(
                n for n in names if "." not in n)[:20]
            raise MilanError(f"unknown layer {layer!r} in {type(model).__name__}; "
                             f"did you mean one of: {', '.join(close)}")
        found[layer] = model.get_submodule(layer)
    return found


def to_spatial(layer: str, output: object) -> torch.Tensor:
    """A layer output as (B, units, h, w), or a MilanError saying why it is not a spatial map."""
    if not isinstance(output, torch.Tensor):
        raise MilanError(f"layer {layer!r} returns {type(output).__name__}, not a tensor; "
                         "hook a submodule that returns a feature map")
    if output.ndim == 4:
        return output
    if output.ndim == 3:
        b, n, c = output.shape
        side = math.isqrt(n - 1) if n > 1 else 0
        if n > 1 and side * side == n - 1:
            tokens = output[:, 1:, :]  # drop CLS
        elif math.isqrt(n) ** 2 == n:
            side, tokens = math.isqrt(n), output
        else:
            raise MilanError(f"layer {layer!r} outputs {tuple(output.shape)}: a token map must have "
                             "1 + h*w or h*w tokens on a square grid")
        return tokens.transpose(1, 2).reshape(b, c, side, side)
    raise MilanError(f"layer {layer!r} outputs shape {tuple(output.shape)}, not a spatial map "
                     "(expected B x C x h x w, or ViT tokens B x (1 + h*w) x C)")


class LayerRecorder:
    """Context manager recording the spatial maps of `layers` during a forward pass.

    `run(model, inputs)` returns {layer: (B, units, h, w)}. Once every layer
    has fired the rest of the forward pass is skipped (a classifier head after
    the last hooked layer costs nothing). A module called several times in one
    forward pass is recorded at its first call.
    """

    def __init__(self, model: nn.Module, layers: Sequence[str], *, stop_early: bool = True) -> None:
        self.model = model
        self.modules = resolve_layers(model, list(layers))
        self.stop_early = stop_early
        self.maps: dict[str, torch.Tensor] = {}
        self._handles: list = []

    def __enter__(self) -> "LayerRecorder":
        for name, module in self.modules.items():
            self._handles.append(module.register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _hook(self, name: str):
        def hook(_module, _inputs, output):
            if name in self.maps:
                return
            self.maps[name] = to_spatial(name, output).detach()
            if self.stop_early and len(self.maps) == len(self.modules):
                raise _AllLayersSeen
        return hook

    def run(self, inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        self.maps = {}
        try:
            with torch.inference_mode():
                self.model(inputs)
        except _AllLayersSeen:
            pass
        missing = [n for n in self.modules if n not in self.maps]
        if missing:
            raise MilanError(f"layers {missing} were never called in the forward pass")
        maps, self.maps = self.maps, {}
        return maps
