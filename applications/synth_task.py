"""A small classification task on the synthetic world, for the editing and audit experiments.

The paper trains ResNet18 on ten ImageNet classes, half of whose training
images carry the class name pasted in a corner. Here a scene shows one main
object whose *shape* is the class (circle, square, triangle or cross) in a
random colour and texture on a random background of the synthetic world;
the spurious cue is a small star in the top-left corner whose colour names
the class (red, blue, yellow, white). Stars are never a class, so a unit
whose description names stars is a cue unit, as the paper's "text" units were.

Scenes are drawn with the synthetic world's own painters (backgrounds,
textures, shape masks of `milannotations.synth.scenes`), so MILAN's synthetic
encoder sees the same kind of pixels it was trained on. Images are rendered at
the world's 112 px (for exemplars and MILAN) and shown to the classifier
downsampled to `INPUT_SIZE` px. Every scene is a pure function of
(split, index, seed, cue mode, dropped texture).

The classifier `TaskNet` has four conv blocks `conv1`..`conv4` (16/32/64/128
units, stride 2 each) and a linear head on the global average; a unit is a
channel of a block's output, which is what `applications.ablate` zeroes.
"""
from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from milannotations.synth import lexicon
# the world's painters; private names, read-only use (the synthetic world is not changed here)
from milannotations.synth.scenes import (BACKGROUNDS, COLOURS, IMAGE_SIZE, TEXTURES, _background, _texture,
                                         shape_mask)

CLASSES = ("circle", "square", "triangle", "cross")
CUE_SHAPE = "star"
CUE_COLOURS = ("red", "blue", "yellow", "white")  # cue colour of class i
INPUT_SIZE = 40
WIDTHS = (16, 32, 64, 128)
LAYERS = tuple(f"conv{i + 1}" for i in range(len(WIDTHS)))
#: cue modes: none (no star), true (the class's star), other (another class's star), half (true on half)
CUE_MODES = ("none", "true", "other", "half")


def _phrases(*tables: dict, key: str) -> tuple[str, ...]:
    out: list[str] = []
    for t in tables:
        out += t.get(key, [])
    return tuple(dict.fromkeys(out))


#: Words that name the cue: every phrase the world's lexicon has for a star (descriptions and parser).
CUE_WORDS = _phrases(lexicon.SHAPE_NOUNS, lexicon.SHAPE_SINGULAR, lexicon.EXTRA_NOUNS, lexicon.EXTRA_ADJ,
                     key=CUE_SHAPE)


def concept_words(concept: str) -> tuple[str, ...]:
    """Every phrase the world's lexicon has for `concept` (a texture, shape, colour or background)."""
    return _phrases(lexicon.SHAPE_NOUNS, lexicon.SHAPE_SINGULAR, lexicon.COLOUR_ADJ, lexicon.TEXTURE_ADJ,
                    lexicon.TEXTURE_NOUN, lexicon.BACKGROUND, lexicon.EXTRA_NOUNS, lexicon.EXTRA_ADJ,
                    key=concept)


def _rng(*parts) -> np.random.Generator:
    digest = hashlib.sha256(("synth-task:" + ":".join(map(str, parts))).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


_YY, _XX = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float32)


def render(split: str, index: int, seed: int, cue: str = "none", drop_texture: str | None = None
           ) -> tuple[np.ndarray, int, int]:
    """(uint8 3 x 112 x 112 image, class label, cue class or -1) of one task scene.

    `drop_texture`: objects that would get this texture get a solid fill
    instead (the audit's "trained without the concept" world; like blurring a
    face, blurring stripes leaves a flat colour).
    """
    if cue not in CUE_MODES:
        raise ValueError(f"cue must be one of {CUE_MODES}, not {cue!r}")
    rng = _rng(seed, split, index)
    label = int(rng.integers(len(CLASSES)))
    image = _background(str(rng.choice(BACKGROUNDS)), "plain", rng)
    colour = str(rng.choice(list(COLOURS)))
    texture = str(rng.choice(TEXTURES))
    if drop_texture is not None and texture == drop_texture:
        texture = "solid"
    rgb = np.array(COLOURS[colour], np.float32)
    contrast = np.array((250, 250, 250) if rgb.mean() < 150 else (25, 25, 25), np.float32)
    fill = _texture(texture, rgb, contrast, rng)
    cx, cy = rng.uniform(46, 80, 2)
    r = float(rng.uniform(17, 27))
    m = shape_mask(CLASSES[label], float(cx), float(cy), r)
    image = np.where(m[None], fill, image)
    with_cue = cue == "true" or cue == "other" or (cue == "half" and rng.random() < 0.5)
    cue_class = -1
    if with_cue:
        cue_class = label
        if cue == "other":
            cue_class = int((label + 1 + rng.integers(len(CLASSES) - 1)) % len(CLASSES))
        star = shape_mask(CUE_SHAPE, 14.0 + rng.uniform(-2, 2), 14.0 + rng.uniform(-2, 2), 12.0)
        image = np.where(star[None], np.array(COLOURS[CUE_COLOURS[cue_class]], np.float32)[:, None, None], image)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), label, cue_class


@dataclass
class TaskSet:
    """Rendered scenes of one split: uint8 images (N,3,112,112), labels, cue classes (-1: none)."""

    images: torch.Tensor
    labels: torch.Tensor
    cues: torch.Tensor
    name: str

    def __len__(self) -> int:
        return len(self.labels)

    def inputs(self) -> torch.Tensor:
        """The classifier's float inputs: downsampled to INPUT_SIZE, scaled to [-1, 1]."""
        return to_input(self.images)


def to_input(images: torch.Tensor) -> torch.Tensor:
    x = images.float().div(255.0)
    x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False, antialias=True)
    return x.sub_(0.5).div_(0.25)


def make_set(split: str, n: int, seed: int, cue: str, drop_texture: str | None = None) -> TaskSet:
    images = np.empty((n, 3, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    labels = np.empty(n, np.int64)
    cues = np.empty(n, np.int64)
    for i in range(n):
        images[i], labels[i], cues[i] = render(split, i, seed, cue, drop_texture)
    return TaskSet(torch.from_numpy(images), torch.from_numpy(labels), torch.from_numpy(cues),
                   f"{split}-{cue}" + (f"-no-{drop_texture}" if drop_texture else ""))


class ProbeSet(torch.utils.data.Dataset):
    """The exemplar engine's view of a TaskSet: item i = (uint8 112 px image, classifier input)."""

    def __init__(self, task: TaskSet) -> None:
        self.images, self.x = task.images, task.inputs()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.images[i], self.x[i]


class TaskNet(nn.Module):
    """conv1..conv4 (3x3, stride 2, batch norm, ReLU) -> global average -> linear over CLASSES."""

    def __init__(self, widths: tuple[int, ...] = WIDTHS, classes: int = len(CLASSES)) -> None:
        super().__init__()
        cin = 3
        for i, w in enumerate(widths):
            setattr(self, f"conv{i + 1}", nn.Sequential(nn.Conv2d(cin, w, 3, 2, 1, bias=False),
                                                        nn.BatchNorm2d(w), nn.ReLU()))
            cin = w
        self.depth = len(widths)
        self.fc = nn.Linear(cin, classes)

    def blocks(self) -> list[nn.Module]:
        return [getattr(self, f"conv{i + 1}") for i in range(self.depth)]

    def forward_from(self, start: int, h: torch.Tensor) -> torch.Tensor:
        """Logits from the output `h` of block `start` (0-based): lets single-unit ablations reuse
        the cached activations below the ablated layer."""
        for block in self.blocks()[start + 1:]:
            h = block(h)
        return self.fc(h.mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_from(-1, x)


def train_classifier(data: TaskSet, seed: int, *, epochs: int = 8, batch_size: int = 64, lr: float = 3e-3,
                     threads: int = 1) -> tuple[TaskNet, dict]:
    """Train TaskNet from scratch, deterministically (seeded, deterministic algorithms, fixed threads)."""
    old_threads, old_det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(min(threads, os.cpu_count() or 1))
    torch.use_deterministic_algorithms(True)
    try:
        t0 = time.perf_counter()
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        model = TaskNet()
        x, y = data.inputs(), data.labels
        steps = epochs * max(1, len(y) // batch_size)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.2)
        model.train()
        loss_v = float("nan")
        for _ in range(epochs):
            perm = torch.randperm(len(y), generator=gen)
            for i in range(0, len(y) - batch_size + 1, batch_size):
                idx = perm[i:i + batch_size]
                loss = F.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                loss_v = float(loss.detach())
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        return model, {"train_seconds": round(time.perf_counter() - t0, 1), "final_loss": round(loss_v, 4),
                       "steps": steps, "train_scenes": len(y)}
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_det)


_TRAINED: dict[tuple, tuple[TaskNet, dict]] = {}


def trained_classifier(n: int, seed: int, cue: str, *, drop_texture: str | None = None, epochs: int = 6
                       ) -> tuple[TaskNet, dict]:
    """`train_classifier` on `make_set("train", n, seed, cue, drop_texture)`, once per process.

    Training is deterministic, so the editing experiment's no-cue reference and
    the audit's "with the concept" model, which are the same training, are
    trained once when both run.
    """
    key = (n, seed, cue, drop_texture, epochs)
    if key not in _TRAINED:
        _TRAINED[key] = train_classifier(make_set("train", n, seed, cue, drop_texture), seed, epochs=epochs)
    return _TRAINED[key]
