"""MILAN's visual encoder: pyramid masked average pooling over a frozen CNN.

Each exemplar image goes through the backbone unmasked; at every retained
stage the unit's mask, resized to that stage, weights a spatial average of
the feature map. The stage vectors are concatenated, so one exemplar becomes
one vector that says what the network sees *where the unit fires*, at every
level of abstraction. Features depend only on (backbone, images, masks), so
they are cached on disk per unit and backbone signature: every protocol and
trial after the first skips the CNN.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable, Sequence

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from milannotations.contract import Exemplars
from milannotations.errors import MilanError
from milannotations.fsutil import atomic_path

from .backbones import Backbone


def masked_pool(features: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Weighted spatial mean of `features` (B,C,h,w) under `masks` (B,1,H,W), as (B,C).

    The mask is resized bilinearly (align_corners=False) to (h,w) and
    normalised to sum 1, so a unit active on a small region and one active on
    a large region both give feature averages, not sums; an all-zero mask
    gives a zero vector rather than a division by zero.
    """
    m = F.interpolate(masks.float(), size=features.shape[-2:], mode="bilinear", align_corners=False)
    total = m.sum(dim=(-2, -1), keepdim=True)
    m = torch.where(total > 0, m / total.clamp_min(1e-12), torch.zeros_like(m))
    return (features * m).sum(dim=(-2, -1))


class _Stop(Exception):
    """Raised by the last hook: the backbone's head is never needed."""


class PyramidEncoder:
    """Turns units into (k, D) exemplar feature matrices with a frozen backbone."""

    def __init__(self, backbone: Backbone, *, device: str = "cpu", cache_dir: str | Path | None = None,
                 batch_size: int = 64) -> None:
        self.backbone = backbone
        self.device = device
        self.batch_size = batch_size
        self.cache_dir = Path(cache_dir) / backbone.signature if cache_dir is not None else None

    @property
    def feature_size(self) -> int:
        return self.backbone.feature_size

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(self.device, torch.float32) / 255.0
        size = self.backbone.image_size
        if size is not None and tuple(x.shape[-2:]) != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                              antialias=size < max(x.shape[-2:]))
        mean = torch.tensor(self.backbone.mean, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(self.backbone.std, device=self.device).view(1, 3, 1, 1)
        return (x - mean) / std

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) uint8 images and (B,1,H,W) masks -> (B, D) pooled pyramid features."""
        grabbed: dict[str, torch.Tensor] = {}
        layers = self.backbone.layers
        module = self.backbone.module
        handles = []
        for name in layers:
            def hook(_m, _i, out, name=name):
                grabbed[name] = out
                if len(grabbed) == len(layers):
                    raise _Stop
            handles.append(module.get_submodule(name).register_forward_hook(hook))
        try:
            module(self._prepare(images))
        except _Stop:
            pass
        finally:
            for h in handles:
                h.remove()
        m = masks.to(self.device)
        return torch.cat([masked_pool(grabbed[name].float(), m) for name in layers], dim=1).cpu()

    def _key(self, unit: Exemplars) -> str:
        h = hashlib.sha256(unit.unit_id.encode())
        h.update(unit.images.contiguous().numpy().tobytes())
        h.update(unit.masks.contiguous().numpy().tobytes())
        return h.hexdigest()[:32]

    def encode_units(self, units: Iterable[Exemplars], progress: bool = True,
                     total: int | None = None) -> list[torch.Tensor]:
        """One (k, D) float tensor per unit, in order; cached per unit when a cache folder is set.

        Units are read once, in a stream, and batched by image count, so only
        one batch of pixels is in memory at a time.
        """
        out: list[torch.Tensor] = []
        pending: list[tuple[int, Exemplars, Path | None]] = []
        bar = tqdm(total=total, desc="milan: encode units", unit="unit", disable=not progress, leave=False)

        def flush() -> None:
            if not pending:
                return
            feats = self.encode_images(torch.cat([u.images for _, u, _ in pending]),
                                       torch.cat([u.masks for _, u, _ in pending]))
            for (i, unit, path), f in zip(pending, feats.split([u.k for _, u, _ in pending])):
                out[i] = f.contiguous()
                if path is not None:
                    with atomic_path(path) as tmp:  # ranks may fill one cache at once
                        save_file({"features": out[i]}, str(tmp))
            bar.update(len(pending))
            pending.clear()

        for i, unit in enumerate(units):
            if unit.images.shape[0] == 0 or unit.images.shape[0] != unit.masks.shape[0]:
                raise MilanError(f"unit {unit.unit_id}: MILAN needs the exemplar images (got "
                                 f"{unit.images.shape[0]} images for {unit.masks.shape[0]} masks); "
                                 "join the images into the corpus first")
            path = self.cache_dir / f"{self._key(unit)}.safetensors" if self.cache_dir else None
            out.append(torch.empty(0))
            if path is not None and path.is_file():
                out[i] = load_file(str(path))["features"]
                bar.update(1)
                continue
            if pending and (sum(u.k for _, u, _ in pending) + unit.k > self.batch_size
                            or pending[0][1].images.shape[1:] != unit.images.shape[1:]
                            or pending[0][1].masks.shape[1:] != unit.masks.shape[1:]):
                flush()
            pending.append((i, unit, path))
        flush()
        bar.close()
        return out


def stack_features(features: Sequence[torch.Tensor], k: int | None = None) -> torch.Tensor:
    """(N, k, D) from per-unit (k_i, D) tensors; units with fewer exemplars repeat theirs cyclically.

    Repeating (rather than zero padding) keeps the attention and the mean used
    for the initial state on real exemplars without a separate padding mask.
    """
    k = k or max(f.shape[0] for f in features)
    rows = []
    for f in features:
        idx = torch.arange(k) % f.shape[0]
        rows.append(f[idx])
    return torch.stack(rows)
