"""Model weights on disk, safely: one spec type for trained models and one reader and writer of state dicts.

Why one module: three trainers (the synthetic backbone, segmenter and CLIP)
and every loader of a user's checkpoint (exemplar models, OpenCLIP, MILAN's
ImageNet backbones) read and write tensors. Here a state dict is only ever
read from safetensors or from `torch.load(weights_only=True)`, never
unpickled, and written atomically (`fsutil.atomic_path`) so a crash leaves
no half-written file a later run would trust.

`ModelSpec` is what a trained model says about itself, as torchvision's
`Weights` do: its input transform (mean, std, input size), the sizes of the
features it offers, its classes and what it was trained on, so no caller
guesses them. torch is imported inside functions: reading a spec needs none.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from .errors import MilanError
from .fsutil import atomic_path

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch
    from torch import nn


@dataclass(frozen=True)
class ModelSpec:
    """A trained model's description: transform, sizes, classes, provenance (frozen; JSON round-trips).

    `mean`/`std` are per-channel, for pixels scaled to [0, 1]; `image_size`
    is the square input the model was trained at (None: any size);
    `layers`/`feature_dims` name the stages a describer may read and their
    widths; `trained_on` names the data. `seed`, `steps` and `version`
    record the recipe, `metrics` what training measured.
    """

    name: str
    layers: tuple[str, ...] = ()
    feature_dims: tuple[int, ...] = ()
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    image_size: int | None = None
    trained_on: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()
    seed: int = 0
    steps: int = 0
    version: str = ""
    metrics: dict = field(default_factory=dict, compare=True, hash=False)

    @property
    def feature_size(self) -> int:
        return sum(self.feature_dims)

    def transform(self, images: "torch.Tensor") -> "torch.Tensor":
        """Pixels in [0, 1] (N x 3 x H x W) normalised as in training: (x - mean) / std per channel."""
        import torch

        mean = torch.tensor(self.mean, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
        return (images - mean) / std

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ModelSpec":
        """The spec of a stored dict; unknown keys are ignored (older or newer writers), lists become tuples."""
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in cls.__dataclass_fields__}
        if "name" not in kw:
            raise MilanError("model spec has no 'name'")
        return cls(**kw)


def _is_safetensors(path: Path) -> bool:
    return path.suffix == ".safetensors"


def load_state_dict(path: str | Path) -> "dict[str, torch.Tensor]":
    """A state dict of tensors from safetensors or a weights-only torch file; never unpickles objects.

    A torch checkpoint wrapping its state dict under "state_dict" or "model"
    is unwrapped. Anything else (a pickled object, a damaged file, a dict of
    non-tensors) is one MilanError naming the file.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise MilanError(f"weights file {path} does not exist")
    if _is_safetensors(path):
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as e:  # noqa: BLE001 - safetensors raises its own error types
            raise MilanError(f"cannot read safetensors weights {path}: {str(e).splitlines()[0] if str(e) else e!r}") from e
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - an unpickling refusal or a damaged file alike
        first = str(e).splitlines()[0] if str(e) else repr(e)
        raise MilanError(f"{path} is not a tensors-only checkpoint; refusing to unpickle it ({first})") from e
    for key in ("state_dict", "model"):  # common checkpoint wrappers
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise MilanError(f"{path} does not hold a state dict of tensors")
    return state


def read_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata of a safetensors file's header ({} when it has none)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as e:  # noqa: BLE001
        raise MilanError(f"cannot read safetensors weights {path}: {e}") from e


def save_state_dict(state: "Mapping[str, torch.Tensor] | nn.Module", path: str | Path, *,
                    metadata: Mapping[str, str] | None = None) -> Path:
    """Write a state dict (or a module's) to `path` as safetensors, atomically; returns the path.

    Tensors are made contiguous (safetensors requires it; values are unchanged).
    """
    from safetensors.torch import save_file

    if hasattr(state, "state_dict"):
        state = state.state_dict()
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp),
                  metadata=dict(metadata) if metadata else None)
    return path


def fingerprint(module: "nn.Module", length: int = 16) -> str:
    """A short hash of a module's weights (sorted names and raw bytes), for cache keys and signatures.

    Two modules have the same fingerprint exactly when every tensor of their
    state dicts has the same name and bytes, so a retrained network never
    reuses features cached for its predecessor.
    """
    h = hashlib.sha256()
    for key, value in sorted(module.state_dict().items()):
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:length]


def dumps_info(info: Mapping[str, Any]) -> str:
    """The JSON text a cache entry's sidecar holds (indented for a reader, one trailing newline)."""
    return json.dumps(info, indent=1) + "\n"
