"""A small segmentation network trained on synthetic scenes: a real segmenter for the synthetic world.

The oracle reads ground truth; this one has to look at pixels, like a
segmenter on real images. It is a seven-layer encoder-decoder (stride 8,
one dilated layer, two skip connections) predicting every concept of
`milannotations.synth.scenes.CONCEPTS` per pixel (a softmax per exclusive category -- colour, texture,
background, shape -- and sigmoids for the object and part channels),
trained with cross-entropy on freshly rendered scenes of both
domains. Training scenes use their own seed (`TRAIN_SCENE_SEED`), so the
network never sees the corpus's probe scenes (seed 0) during training.

Weights are cached as safetensors by `milannotations.training.cached_model`
under `milannotations.paths.models_dir()`, keyed by every setting that
changes them, so the ~1-2 minute training happens once per machine.
Training is deterministic given the seed (fixed init, fixed scene order, and
`milannotations.training.deterministic_training`: one thread, deterministic
algorithms). The trained network describes itself with a
`milannotations.weights.ModelSpec` (`SynthSegmenter.model_spec`).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from milannotations.errors import MilanError
from milannotations.training import cached_model, deterministic_training
from milannotations.weights import ModelSpec

from .base import Segmenter

#: Seed offset for training scenes: disjoint from the corpus's probe scenes (seed 0).
TRAIN_SCENE_SEED = 7919


@dataclass(frozen=True)
class SynthSegmenterSpec:
    """Every setting that determines the trained weights (the cache key)."""

    steps: int = 300
    batch_size: int = 16
    lr: float = 3e-3
    seed: int = 0
    width: int = 16
    version: int = 2

    def key_parts(self) -> list[str]:
        """The cache key's parts after the name (`milannotations.training.model_key`)."""
        return [f"v{self.version}", f"w{self.width}", f"s{self.steps}", f"b{self.batch_size}", f"lr{self.lr:g}",
                f"seed{self.seed}"]

    def filename(self) -> str:
        return f"{NAME}-{'-'.join(self.key_parts())}.safetensors"


NAME = "synth-segmenter"
#: Training threads: the count the cached weights were made with (one; the same bits on any machine).
THREADS = 1


class SegNet(nn.Module):
    """Tiny encoder-decoder: 112 px in, concept logits at 56 px out (upsampled by the caller)."""

    def __init__(self, n_concepts: int, width: int = 32) -> None:
        super().__init__()
        w = width
        self.c1 = nn.Conv2d(3, w, 3, stride=2, padding=1)            # 56
        self.c2 = nn.Conv2d(w, w + w // 2, 3, stride=2, padding=1)   # 28
        self.c3 = nn.Conv2d(w + w // 2, 2 * w, 3, stride=2, padding=1)  # 14
        self.c4 = nn.Conv2d(2 * w, 2 * w, 3, padding=2, dilation=2)  # 14, wider context for shapes
        self.d1 = nn.Conv2d(2 * w + w + w // 2, w + w // 2, 3, padding=1)  # 28
        self.d2 = nn.Conv2d(w + w // 2 + w, w, 3, padding=1)         # 56
        self.head = nn.Conv2d(w + 3, n_concepts, 1)                  # + the pixel's own colour

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = F.relu(self.c1(x))
        e2 = F.relu(self.c2(e1))
        e3 = F.relu(self.c3(e2))
        e4 = F.relu(self.c4(e3)) + e3
        d1 = F.relu(self.d1(torch.cat([F.interpolate(e4, size=e2.shape[-2:], mode="nearest"), e2], 1)))
        d2 = F.relu(self.d2(torch.cat([F.interpolate(d1, size=e1.shape[-2:], mode="nearest"), e1], 1)))
        colour = F.avg_pool2d(x, 2)
        return self.head(torch.cat([d2, colour], 1))


def _normalise(images: torch.Tensor) -> torch.Tensor:
    return images.float().div(127.5).sub(1.0)


def _batch(step: int, batch_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Scenes for one training step, alternating domains; a pure function of (step, seed)."""
    from milannotations.synth.scenes import DOMAINS, render_scene

    imgs, tgts = [], []
    for j in range(batch_size):
        i = step * batch_size + j
        scene = render_scene(DOMAINS[i % len(DOMAINS)], i // len(DOMAINS), seed=TRAIN_SCENE_SEED + seed)
        imgs.append(scene.image)
        tgts.append(scene.concepts[:, ::2, ::2])
    return torch.from_numpy(np.stack(imgs)), torch.from_numpy(np.stack(tgts)).float()


#: Categories in which a pixel holds at most one concept: trained with a softmax over the category's
#: concepts plus a fixed "none" logit of 0 (balanced and fast to learn); the rest (the "object"
#: channel, parts) are independent sigmoids.
EXCLUSIVE = ("colour", "texture", "background")


def _groups() -> tuple[list[torch.Tensor], torch.Tensor]:
    from milannotations.synth.scenes import CONCEPTS

    groups = [torch.tensor([i for i, c in enumerate(CONCEPTS) if c.category == cat]) for cat in EXCLUSIVE]
    shapes = [i for i, c in enumerate(CONCEPTS) if c.category == "shape" and c.name != "object"]
    groups.append(torch.tensor(shapes))
    grouped = torch.cat(groups)
    independent = torch.tensor([i for i in range(len(CONCEPTS)) if i not in set(grouped.tolist())])
    return groups, independent


def segnet_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Softmax cross-entropy per exclusive group (with a none class) + BCE on the independent channels."""
    groups, independent = _groups()
    loss = F.binary_cross_entropy_with_logits(logits[:, independent], targets[:, independent],
                                              pos_weight=torch.tensor(3.0))
    for g in groups:
        lg = logits[:, g]
        full = torch.cat([torch.zeros_like(lg[:, :1]), lg], dim=1)
        tg = targets[:, g]
        label = torch.where(tg.any(dim=1), tg.argmax(dim=1) + 1, torch.zeros_like(tg[:, 0], dtype=torch.long))
        loss = loss + F.cross_entropy(full, label.long())
    return loss


def decode(logits: torch.Tensor) -> torch.Tensor:
    """Logits B x C x H x W -> bool masks: argmax (or none) per exclusive group, > 0 elsewhere."""
    out = logits > 0
    groups, _ = _groups()
    for g in groups:
        lg = logits[:, g]
        full = torch.cat([torch.zeros_like(lg[:, :1]), lg], dim=1)
        best = full.argmax(dim=1)
        out[:, g] = best[:, None] == torch.arange(1, len(g) + 1, device=best.device).view(1, -1, 1, 1)
    return out


def train_segnet(spec: SynthSegmenterSpec, progress: bool = True) -> SegNet:
    """Train the network from scratch on rendered scenes (deterministic for a given spec)."""
    from milannotations.synth.scenes import CONCEPTS

    with deterministic_training(spec.seed, threads=THREADS):
        net = SegNet(len(CONCEPTS), spec.width)
        opt = torch.optim.Adam(net.parameters(), lr=spec.lr)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=spec.lr, total_steps=max(spec.steps, 1),
                                                    pct_start=0.15)
        net.train()
        for step in tqdm(range(spec.steps), desc="training synth segmenter", disable=not progress):
            images, targets = _batch(step, spec.batch_size, spec.seed)
            loss = segnet_loss(net(_normalise(images)), targets)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return net.eval()


def trained_on(spec: SynthSegmenterSpec) -> str:
    """What the network of `spec` was trained on, in words."""
    return (f"{spec.steps * spec.batch_size} rendered synthetic scenes "
            f"(scene seed {TRAIN_SCENE_SEED + spec.seed}, disjoint from the corpus)")


def model_spec(spec: SynthSegmenterSpec) -> ModelSpec:
    """The trained network's description: its transform (x / 127.5 - 1, i.e. mean = std = 0.5), input
    size, classes (every concept), output size (one logit per concept) and what it saw."""
    from milannotations.synth.scenes import CONCEPTS, IMAGE_SIZE

    return ModelSpec(name=NAME, feature_dims=(len(CONCEPTS),), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
                     image_size=IMAGE_SIZE, trained_on=(trained_on(spec),),
                     classes=tuple(c.name for c in CONCEPTS), seed=spec.seed, steps=spec.steps,
                     version=str(spec.version))


def load_segnet(spec: SynthSegmenterSpec = SynthSegmenterSpec(), cache_dir: str | Path | None = None,
                progress: bool = True) -> tuple[SegNet, Path]:
    """The trained network for `spec`: read from the cache, or trained once and cached (atomically).

    The weights file alone is the entry (no JSON sidecar: `spec` rebuilds the
    network); what it was trained on travels in its metadata.
    """
    from milannotations.synth.scenes import CONCEPTS

    def build(info: dict) -> SegNet:
        return SegNet(len(CONCEPTS), spec.width)

    def train() -> tuple[SegNet, dict]:
        t0 = time.time()
        net = train_segnet(spec, progress=progress)
        return net, {"spec": asdict(spec), "concepts": [c.name for c in CONCEPTS],
                     "train_seconds": round(time.time() - t0, 1),
                     "trained_on": f"rendered synthetic scenes (both domains), scene seed {TRAIN_SCENE_SEED + spec.seed}",
                     "model_spec": model_spec(spec).to_dict()}

    entry = cached_model(NAME, spec.key_parts(), build, train, cache_dir=cache_dir, sidecar=False,
                         seed=spec.seed, threads=THREADS)
    return entry.module, entry.path


class SynthSegmenter(Segmenter):
    """Concept masks predicted from pixels by `SegNet` (sigmoid > 0.5), at the image size."""

    name = "synth"
    citation = "small segmentation network trained on the synthetic scenes (this project)"

    def __init__(self, steps: int = SynthSegmenterSpec.steps, seed: int = 0, width: int = SynthSegmenterSpec.width,
                 cache_dir: str | Path | None = None, device: str = "cpu", batch_size: int = 64,
                 progress: bool = True, cache_bytes: int = 256 * 2**20) -> None:
        super().__init__(cache_bytes=cache_bytes)
        from milannotations.synth.scenes import CONCEPTS

        self.spec = SynthSegmenterSpec(steps=int(steps), seed=int(seed), width=int(width))
        self.net, self.path = load_segnet(self.spec, cache_dir, progress=progress)
        self.net.to(device)
        self.device = device
        self.batch_size = int(batch_size)
        self.concepts = [c.name for c in CONCEPTS]
        self.categories = [c.category for c in CONCEPTS]
        self.model_spec = model_spec(self.spec)
        self.trained_on = trained_on(self.spec)

    @torch.no_grad()
    def segment(self, images: torch.Tensor, *, dataset: str | None = None,
                image_ids: Sequence[int] | None = None, unit_id: str = "") -> torch.Tensor:
        if images.shape[0] == 0 and image_ids:
            raise MilanError(f"unit {unit_id or '?'} has no exemplar images; the synth segmenter needs pixels")
        h, w = images.shape[-2:]
        out = []
        for start in range(0, images.shape[0], self.batch_size):
            x = images[start:start + self.batch_size]
            if x.shape[-2:] != (112, 112):
                x = F.interpolate(x.float(), size=(112, 112), mode="bilinear", align_corners=False)
            logits = self.net(_normalise(x).to(self.device))
            logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
            out.append(decode(logits).cpu())
        return torch.cat(out) if out else torch.zeros(0, len(self.concepts), h, w, dtype=torch.bool)
