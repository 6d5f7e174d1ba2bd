"""The CLIP labeller: image-text similarity, calibrated to a probability as NeuronEval does.

A description holds on an image (or a region of it) with probability
`sigmoid(a * (cos(image, text) + b))` (Oikarinen et al., ICML 2025:
`Trustworthy-ML-Lab/Neuron_Eval@5538002:utils.py`, constants
`SIGMOID_PARAMS_IMAGENET_SC`). Regions are a `grid` x `grid` tiling of each
image, each shown to CLIP as the CLIP describers show regions
(`baselines.clip.regions.masked_regions`: the tile bright, the rest dimmed,
cropped around it); a tile's probability fills its cells of the map. Whole
images give the image-level score.

Calibration:
- open_clip models NeuronEval calibrated use its constants;
- the synthetic CLIP is calibrated here, by logistic regression of the 45
  concept names' presence (true masks) on `CALIBRATION_SCENES` scenes per
  domain from index 3,000,000: scenes no unit, probe set, backbone, segmenter
  or CLIP training ever used, and no test unit's truth;
- any other model needs `a=` and `b=` from the user.
"""
from __future__ import annotations

import functools
from typing import Sequence

import numpy as np
import torch

from milannotations.errors import MilanError

from .base import ImageBatch, Labelled, Labeller

#: NeuronEval's (a, b) per open_clip architecture (its SIGMOID_PARAMS_IMAGENET_SC).
NEURONEVAL_SIGMOID: dict[str, tuple[float, float]] = {
    "ViT-SO400M-14-SigLIP-384": (58.0, -0.13),
    "ViT-L-16-SigLIP-384": (60.0, -0.09),
    "ViT-L-14-336": (58.0, -0.25),
}
CALIBRATION_OFFSET = 3_000_000
CALIBRATION_SCENES = 60
GRID = 4


def _tile_masks(h: int, w: int, grid: int) -> torch.Tensor:
    """grid^2 x 1 x h x w bool: the tiles of an image, row-major."""
    ys = torch.arange(h) * grid // h
    xs = torch.arange(w) * grid // w
    cell = ys[:, None] * grid + xs[None, :]
    return (cell[None] == torch.arange(grid * grid)[:, None, None])[:, None]


def fit_sigmoid(cos: np.ndarray, labels: np.ndarray, iters: int = 50) -> tuple[float, float]:
    """(a, b) of p = sigmoid(a * (cos + b)) by maximum likelihood (Newton's method on w = a, c = a*b)."""
    x = np.asarray(cos, np.float64).ravel()
    y = np.asarray(labels, np.float64).ravel()
    X = np.stack([x, np.ones_like(x)], axis=1)
    theta = np.zeros(2)
    for _ in range(iters):
        p = 1 / (1 + np.exp(-(X @ theta)))
        g = X.T @ (y - p)
        H = (X * (p * (1 - p))[:, None]).T @ X + 1e-9 * np.eye(2)
        step = np.linalg.solve(H, g)
        theta += step
        if np.abs(step).max() < 1e-10:
            break
    w, c = theta
    return float(w), float(c / w) if w != 0 else 0.0


class _ClipLabelled(Labelled):
    """Encodes tiles on the first `maps` and whole images on the first `scores` (a probe set needs
    image scores only)."""

    def __init__(self, owner: "ClipLabeller", images: torch.Tensor, size: tuple[int, int]):
        self.owner, self.images, self.n, self.size = owner, images, int(images.shape[0]), size
        self._tiles: torch.Tensor | None = None
        self._full: torch.Tensor | None = None

    def _text(self, texts: Sequence[str]) -> torch.Tensor:
        return self.owner.clip.encode_texts([str(t) for t in texts]).float().cpu()

    def maps(self, texts: Sequence[str]) -> np.ndarray:
        g = self.owner.grid
        if not len(texts):
            return np.zeros((0, self.n, *self.size), np.float32)
        if self._tiles is None:
            self._tiles = self.owner.encode_tiles(self.images)
        a, b = self.owner.region_ab
        p = torch.sigmoid(a * (self._text(texts) @ self._tiles.T + b)).reshape(len(texts), self.n, g * g)
        cell = _tile_masks(*self.size, g)[:, 0].float()  # g^2 x h x w
        return torch.einsum("tnk,khw->tnhw", p, cell).numpy().astype(np.float32)

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        if self._full is None:
            self._full = self.owner.encode_full(self.images)
        a, b = self.owner.image_ab
        return torch.sigmoid(a * (self._text(texts) @ self._full.T + b)).numpy().astype(np.float32)


class ClipLabeller(Labeller):
    """model: `synth` (the synthetic CLIP) or an open_clip architecture with `pretrained` (a tag in the
    open_clip cache or a file); a, b: the sigmoid's constants (default: NeuronEval's, or fitted for the
    synthetic CLIP); grid: tiles per side for region maps."""

    name = "clip"

    def __init__(self, model: str = "synth", pretrained: str | None = "openai", a: float | None = None,
                 b: float | None = None, grid: int = GRID, device: str = "cpu") -> None:
        from baselines.clip.models import load_clip, open_clip_arch

        self.clip = load_clip(model, pretrained, device)
        self.grid = int(grid)
        if self.grid < 1:
            raise MilanError(f"clip labeller: grid must be at least 1, got {grid}")
        if (a is None) != (b is None):
            raise MilanError("clip labeller: give both a= and b=, or neither")
        if a is not None:
            self.region_ab = self.image_ab = (float(a), float(b))
            how = f"sigmoid({a:g},{b:g}):given"
        elif model == "synth":
            self.image_ab, self.region_ab = _synth_calibration(self.clip.name, self.grid)
            how = "sigmoid:fit@synth-calibration+" + str(CALIBRATION_SCENES)
        elif open_clip_arch(model) in NEURONEVAL_SIGMOID:
            self.region_ab = self.image_ab = NEURONEVAL_SIGMOID[open_clip_arch(model)]
            how = "sigmoid:neuroneval"
        else:
            raise MilanError(f"clip labeller: no calibration known for {model!r}; pass a= and b= "
                             f"(NeuronEval's are known for {', '.join(NEURONEVAL_SIGMOID)})")
        self.model = f"{self.clip.name}|{how}|grid:{self.grid}"
        self.uses = frozenset({f"clip:{self.clip.name}"})

    def _batches(self, images: torch.Tensor, fn) -> torch.Tensor:
        out = []
        with torch.inference_mode():
            for start in range(0, images.shape[0], 16):
                out.append(self.clip.encode_images(fn(images[start:start + 16])).float().cpu())
        return torch.cat(out) if out else torch.zeros(0, self.clip.encode_texts([""]).shape[1])

    def encode_tiles(self, images: torch.Tensor) -> torch.Tensor:
        """(N * grid^2) x D embeddings of every tile, image-major, shown as masked regions."""
        from baselines.clip.regions import masked_regions

        g = self.grid
        masks = _tile_masks(*images.shape[-2:], g)
        return self._batches(images, lambda x: masked_regions(
            x.repeat_interleave(g * g, dim=0), masks.repeat(x.shape[0], 1, 1, 1), self.clip.image_size))

    def encode_full(self, images: torch.Tensor) -> torch.Tensor:
        """N x D embeddings of the whole images, preprocessed as the model's own pipeline does."""
        from baselines.clip.regions import full_images

        mode = getattr(self.clip, "interpolation", "bicubic")
        return self._batches(images, lambda x: full_images(x, self.clip.image_size, mode=mode))

    def label(self, batch: ImageBatch, size: tuple[int, int]) -> Labelled:
        if len(batch) and batch.images.shape[1] != 3:
            raise MilanError("clip labeller: images must be N x 3 x H x W uint8")
        return _ClipLabelled(self, batch.images, tuple(size))


@functools.lru_cache(maxsize=4)
def _synth_calibration(clip_name: str, grid: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """(image a, b), (region a, b) of the synthetic CLIP, fitted on calibration scenes (see the module)."""
    from baselines.clip.models import load_clip
    from milannotations.synth.scenes import CONCEPTS, DOMAINS, render_scene

    clip = load_clip("synth")
    labeller = ClipLabeller.__new__(ClipLabeller)
    labeller.clip, labeller.grid = clip, grid
    names = [c.name for c in CONCEPTS]
    text = clip.encode_texts(names).float().cpu()
    img_cos, img_y, reg_cos, reg_y = [], [], [], []
    for domain in DOMAINS:
        scenes = [render_scene(domain, CALIBRATION_OFFSET + i, 0) for i in range(CALIBRATION_SCENES)]
        images = torch.from_numpy(np.stack([s.image for s in scenes]))
        tiles, full = labeller.encode_tiles(images), labeller.encode_full(images)
        present = np.stack([s.concepts.reshape(len(CONCEPTS), -1).any(axis=1) for s in scenes])  # S x C
        tmask = _tile_masks(*images.shape[-2:], grid)[:, 0].numpy()  # g^2 x H x W
        in_tile = np.einsum("schw,khw->skc", np.stack([s.concepts for s in scenes]).astype(np.float32),
                            tmask.astype(np.float32)) / tmask.reshape(len(tmask), -1).sum(1)[None, :, None]
        img_cos.append((full @ text.T).numpy())
        img_y.append(present)
        reg_cos.append((tiles @ text.T).numpy())
        reg_y.append((in_tile >= 0.1).reshape(-1, len(CONCEPTS)))
    image_ab = fit_sigmoid(np.concatenate(img_cos), np.concatenate(img_y))
    region_ab = fit_sigmoid(np.concatenate(reg_cos), np.concatenate(reg_y))
    return image_ab, region_ab
