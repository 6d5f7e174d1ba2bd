"""A small ResNet-like CNN trained on synthetic scenes: the offline stand-in for an ImageNet encoder.

MILAN and other describers encode exemplars with a pretrained CNN. No
pretrained weights can be fetched here, so this module trains one on the
synthetic world itself: multi-label concept presence (which of `CONCEPTS`
has pixels in the scene), from scenes of both domains. Four stages
`layer1`..`layer4` (one basic residual block each, widths 16/32/64/128,
maps 28/14/7/4 px for 112 px images) give the pyramid of features a
describer pools over.

Training is seeded and runs in `milannotations.training.deterministic_training`
(one thread, `torch.use_deterministic_algorithms`), so the same (seed, steps)
gives the same weights; `milannotations.training.cached_model` keeps the
result as safetensors plus a JSON spec (never pickled) under
`milannotations.paths.models_dir()`. The spec (`milannotations.weights.ModelSpec`)
carries its normalisation, feature sizes, input size and what it was trained
on, so nothing downstream guesses them.
"""
from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import MilanError
from ..training import cache_paths, cached_model, deterministic_training
from ..weights import ModelSpec
from .scenes import CONCEPT_NAMES, DOMAINS, IMAGE_SIZE, render_scene

BACKBONE_VERSION = "1"
NAME = "synth-resnet"
WIDTHS = (16, 32, 64, 128)
DEFAULT_STEPS = 600
BATCH_SIZE = 32
TRAIN_SCENES = 1200  # per domain
VAL_SCENES = 100  # per domain
#: Training scenes use indices from here on, so they never coincide with a probe pool (0..pool_size-1).
TRAIN_OFFSET = 1_000_000
#: A concept counts as present when at least this many pixels show it.
MIN_PIXELS = 12
THREADS = 1  # one thread: deterministic, and far faster than OpenMP on a shared, busy machine (the weights' count)


#: The backbone's spec is the project's one model-spec type (the name stays for older callers).
BackboneSpec = ModelSpec


class _Block(nn.Module):
    """A ResNet basic block (two 3x3 convs, batch norm, identity or 1x1 projection shortcut)."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


class StageTaps(nn.Module):
    """The backbone seen through its stages, keeping the first `channels` units of each.

    Its submodules `layer1`..`layer4` return those channels, so the exemplar
    engine hooks them by the backbone's own layer names and unit u of a layer
    is channel u of that stage.
    """

    def __init__(self, backbone: "SynthResNet", layers: tuple[str, ...], channels: int | None = None):
        super().__init__()
        self.backbone, self.layer_names, self.channels = backbone, tuple(layers), channels
        for name in self.layer_names:
            setattr(self, name, _Tap(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.backbone.stem(x)
        for name in self.layer_names:
            x = getattr(self.backbone, name)(x)
            getattr(self, name)(x)
        return x


class _Tap(nn.Module):
    def __init__(self, channels: int | None):
        super().__init__()
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.channels is None else x[:, :self.channels]


class SynthResNet(nn.Module):
    """stem (3x3 s2) -> layer1..layer4 (each stride 2) -> global average pool -> concept logits."""

    def __init__(self, widths: tuple[int, ...] = WIDTHS, classes: int = len(CONCEPT_NAMES)):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, 2, 1, bias=False), nn.BatchNorm2d(widths[0]),
                                  nn.ReLU(inplace=True))
        cin = widths[0]
        for i, w in enumerate(widths):
            setattr(self, f"layer{i + 1}", _Block(cin, w, 2))
            cin = w
        self.fc = nn.Linear(cin, classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean(dim=(2, 3)))


def _render_set(n_per_domain: int, offset: int, seed: int, progress: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images and float presence labels of n scenes per domain (indices offset.. of each domain)."""
    n = n_per_domain * len(DOMAINS)
    images = np.empty((n, 3, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    labels = np.empty((n, len(CONCEPT_NAMES)), np.float32)
    it = [(d, i) for d in DOMAINS for i in range(n_per_domain)]
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="rendering backbone scenes", unit="scene")
    for j, (d, i) in enumerate(it):
        s = render_scene(d, offset + i, seed)
        images[j] = s.image
        labels[j] = s.concepts.reshape(len(CONCEPT_NAMES), -1).sum(1) >= MIN_PIXELS
    return torch.from_numpy(images), torch.from_numpy(labels)


def _micro_f1(logits: torch.Tensor, labels: torch.Tensor) -> float:
    pred = logits > 0
    tp = (pred & (labels > 0.5)).sum().item()
    return float(2 * tp / max(1, pred.sum().item() + (labels > 0.5).sum().item()))


def train_backbone(seed: int = 0, steps: int = DEFAULT_STEPS, *, progress: bool = True,
                   train_scenes: int = TRAIN_SCENES) -> tuple[SynthResNet, BackboneSpec]:
    """Train the backbone from scratch, deterministically; returns (model in eval mode, spec)."""
    if steps < 1:
        raise MilanError(f"backbone steps must be at least 1, got {steps}")
    with deterministic_training(seed, threads=THREADS):
        t0 = time.perf_counter()
        images, labels = _render_set(train_scenes, TRAIN_OFFSET, seed, progress)
        val_images, val_labels = _render_set(VAL_SCENES, TRAIN_OFFSET + train_scenes, seed, False)
        # Exact channel statistics (integer sums; float32 sums over 10^8 pixels drift), rounded as
        # stored in the spec so that training and every later use normalise identically.
        count = images.numel() // 3
        s1 = torch.zeros(3, dtype=torch.float64)
        s2 = torch.zeros(3, dtype=torch.float64)
        for i in range(0, len(images), 128):
            chunk = images[i:i + 128].long()
            s1 += chunk.sum(dim=(0, 2, 3)).double()
            s2 += chunk.pow(2).sum(dim=(0, 2, 3)).double()
        mean_d = s1 / count / 255.0
        std_d = (s2 / count / 255.0**2 - mean_d**2).sqrt()
        mean = torch.tensor([round(float(v), 6) for v in mean_d])
        std = torch.tensor([round(float(v), 6) for v in std_d])
        gen = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        model = SynthResNet()
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.15)
        pos = labels.mean(0).clamp(0.02, 0.98)
        pos_weight = ((1 - pos) / pos).clamp(max=10.0)  # rare concepts are not drowned by absences

        def prep(batch: torch.Tensor, flip: torch.Tensor | None = None) -> torch.Tensor:
            b = batch.float().div_(255)
            if flip is not None:
                b = torch.where(flip[:, None, None, None], b.flip(-1), b)
            return (b - mean[None, :, None, None]) / std[None, :, None, None]

        it = range(steps)
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(it, desc="training synth backbone", unit="step")
        model.train()
        loss_v = float("nan")
        for _ in it:
            idx = torch.randint(0, len(images), (BATCH_SIZE,), generator=gen)
            flip = torch.rand(BATCH_SIZE, generator=gen) < 0.5  # presence labels are mirror-invariant
            logits = model(prep(images[idx], flip))
            loss = F.binary_cross_entropy_with_logits(logits, labels[idx], pos_weight=pos_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_v = float(loss.detach())
        model.eval()
        with torch.no_grad():
            val_logits = torch.cat([model(prep(val_images[i:i + 64])) for i in range(0, len(val_images), 64)])
        base = _micro_f1(torch.where(val_labels.mean(0) > 0.5, 1.0, -1.0).expand_as(val_labels), val_labels)
        spec = BackboneSpec(
            name=NAME, layers=tuple(f"layer{i + 1}" for i in range(len(WIDTHS))), feature_dims=WIDTHS,
            mean=tuple(float(v) for v in mean.double()), std=tuple(float(v) for v in std.double()),
            image_size=IMAGE_SIZE, trained_on=tuple(f"synth-{d}" for d in DOMAINS), classes=CONCEPT_NAMES,
            seed=seed, steps=steps, version=BACKBONE_VERSION,
            metrics={"val_micro_f1": round(_micro_f1(val_logits, val_labels), 4),
                     "val_micro_f1_majority_baseline": round(base, 4),
                     "final_train_loss": round(loss_v, 4), "train_seconds": round(time.perf_counter() - t0, 1),
                     "train_scenes": train_scenes * len(DOMAINS), "threads": torch.get_num_threads()},
        )
    return model, spec


def world_fingerprint(seed: int = 0, per_domain: int = 2) -> str:
    """A short hash of the first training scenes' pixels and concept masks, for cache keys.

    The backbone's weights depend on every scene it was trained on, but its
    version number only changes when someone remembers to bump it; a cache
    keyed by version alone would serve weights trained on a world the
    renderer no longer draws (and every MILAN feature after them). Rendering
    a few scenes costs milliseconds and catches any change of the renderer.
    """
    h = hashlib.sha256()
    for d in DOMAINS:
        for i in range(per_domain):
            s = render_scene(d, TRAIN_OFFSET + i, seed)
            h.update(np.ascontiguousarray(s.image).tobytes())
            h.update(np.packbits(np.ascontiguousarray(s.concepts).astype(bool)).tobytes())
    return h.hexdigest()[:12]


def _key_parts(seed: int, steps: int, train_scenes: int) -> list[str]:
    parts = [f"v{BACKBONE_VERSION}", f"seed{seed}", f"steps{steps}", f"world{world_fingerprint(seed)}"]
    return parts + ([f"scenes{train_scenes}"] if train_scenes != TRAIN_SCENES else [])


def _paths(cache_dir: Path, seed: int, steps: int, train_scenes: int) -> tuple[Path, Path]:
    """(weights, spec) files of the backbone cached for these settings."""
    return cache_paths(NAME, _key_parts(seed, steps, train_scenes), cache_dir)


def load_synth_backbone(device: str | torch.device = "cpu", cache_dir: str | Path | None = None,
                        steps: int | None = None, *, seed: int = 0, progress: bool = True,
                        train_scenes: int = TRAIN_SCENES) -> tuple[SynthResNet, BackboneSpec]:
    """The trained synthetic backbone (eval mode) and its spec, training and caching it on first use.

    Cached by `milannotations.training.cached_model` under `cache_dir`
    (default `milannotations.paths.models_dir()`) as safetensors weights plus
    a JSON spec, keyed by version, seed, steps, a fingerprint of the world's
    scenes (`world_fingerprint`) and (when not the default) the number of
    training scenes per domain. A damaged cache entry is retrained, with a warning.
    (`baselines.milan.backbones.load_backbone` is the describer-facing loader of every backbone.)
    """
    steps = DEFAULT_STEPS if steps is None else int(steps)

    def build(info: dict) -> SynthResNet:
        spec = BackboneSpec.from_dict(info)
        return SynthResNet(tuple(spec.feature_dims), len(spec.classes))

    def train() -> tuple[SynthResNet, dict]:
        model, spec = train_backbone(seed, steps, progress=progress, train_scenes=train_scenes)
        return model, spec.to_dict()

    entry = cached_model(NAME, _key_parts(seed, steps, train_scenes), build, train, cache_dir=cache_dir,
                         seed=seed, threads=THREADS)
    return entry.module.to(device).eval(), BackboneSpec.from_dict(entry.info)
