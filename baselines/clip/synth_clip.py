"""A small CLIP for the synthetic world: the offline stand-in for pretrained CLIP weights.

Trained contrastively on synthetic scenes, in the two views a describer
shows CLIP: masked regions of single concepts (an object's mask bright, the
rest dimmed, cropped to the region, as `masked_regions` renders exemplars)
paired with the concept's name or the object's attribute phrase ("red
striped circle", "top edge of square"), and whole scenes paired with their
captions. Trained in `milannotations.training.deterministic_training` (seeded,
two threads -- the count its cached weights were made with; one thread gives
other bits -- and deterministic algorithms), so two trainings give the same
weights; cached by `milannotations.training.cached_model` as safetensors +
JSON under `milannotations.paths.models_dir()`. `SynthClip.model_spec` is its
`milannotations.weights.ModelSpec`.
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from milannotations.training import cached_model, deterministic_training
from milannotations.weights import ModelSpec

from .regions import masked_regions

VERSION = 2
NAME = "synth-clip"
#: Training threads, fixed: the cached weights were trained with two (this project's machines' default);
#: the intra-op split of the work, and so the float sums, depend on the count.
THREADS = 2
_WORD = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class SynthClipConfig:
    image_size: int = 48
    embed_dim: int = 128
    word_dim: int = 64
    steps: int = 400
    batch_size: int = 64
    lr: float = 2e-3
    pool_scenes: int = 600
    seed: int = 0
    world_seed: int = 0

    def key(self) -> str:
        blob = json.dumps({**asdict(self), "version": VERSION}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


class WordTokenizer:
    """Lower-case word ids with plural folding; unknown words map to <unk>."""

    def __init__(self, vocab: Sequence[str]) -> None:
        self.vocab = ["<pad>", "<unk>", *[w for w in dict.fromkeys(vocab) if w not in ("<pad>", "<unk>")]]
        self.index = {w: i for i, w in enumerate(self.vocab)}

    def word_id(self, w: str) -> int:
        for cand in (w, w[:-2] if w.endswith("es") else None, w[:-1] if w.endswith("s") else None):
            if cand and cand in self.index:
                return self.index[cand]
        return 1

    def __call__(self, texts: Sequence[str], max_len: int = 24) -> torch.Tensor:
        ids = torch.zeros(len(texts), max_len, dtype=torch.long)
        for i, t in enumerate(texts):
            toks = [self.word_id(w) for w in _WORD.findall(t.lower())][:max_len] or [1]
            ids[i, :len(toks)] = torch.tensor(toks)
        return ids


class _ImageTower(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        # A strided stem keeps training within minutes on two CPU cores.
        layers = [nn.Conv2d(3, 24, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(24), nn.ReLU(inplace=True)]
        c_in = 24
        for c in (32, 64, 96):
            layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2)]
            c_in = c
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).mean(dim=(2, 3)))


class _TextTower(nn.Module):
    """Word embeddings, two width-3 convolutions (local order: "red circle" vs "circle, red"), masked mean.

    A recurrent tower was 2.4x slower than the image tower on CPU for no gain on these short texts.
    """

    def __init__(self, vocab: int, word_dim: int, dim: int) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, word_dim, padding_idx=0)
        self.conv = nn.Sequential(nn.Conv1d(word_dim, dim, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv1d(dim, dim, 3, padding=1), nn.ReLU(inplace=True))
        self.head = nn.Linear(dim, dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = (ids != 0).float().unsqueeze(1)
        h = self.conv(self.emb(ids).transpose(1, 2)) * mask
        return self.head(h.sum(2) / mask.sum(2).clamp(min=1))


class SynthClipNet(nn.Module):
    def __init__(self, vocab: int, cfg: SynthClipConfig) -> None:
        super().__init__()
        self.image = _ImageTower(cfg.embed_dim)
        self.text = _TextTower(vocab, cfg.word_dim, cfg.embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(float(np.log(1 / 0.07))))


_MEAN = torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1)
_STD = torch.tensor([0.25, 0.25, 0.25]).view(1, 3, 1, 1)


class SynthClip:
    """The trained model behind the `ClipModel` interface."""

    interpolation = "bilinear"  # whole scenes were resized with it in training (`_pairs_of_scene`)

    def __init__(self, net: SynthClipNet, tokenizer: WordTokenizer, cfg: SynthClipConfig, device: str = "cpu"):
        self.net, self.tokenizer, self.cfg = net.eval().to(device), tokenizer, cfg
        self.device = device
        self.image_size = cfg.image_size
        self.name = synth_clip_name(cfg)
        self.trained_on = ("synthetic scenes and captions (seed %d)" % cfg.world_seed,)
        self.model_spec = ModelSpec(name=self.name, feature_dims=(cfg.embed_dim,), mean=tuple(_MEAN.flatten().tolist()),
                                    std=tuple(_STD.flatten().tolist()), image_size=cfg.image_size,
                                    trained_on=self.trained_on, seed=cfg.seed, steps=cfg.steps, version=str(VERSION))

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        x = (images.to(self.device) - _MEAN.to(self.device)) / _STD.to(self.device)
        return F.normalize(self.net.image(x), dim=-1).cpu()

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        return F.normalize(self.net.text(self.tokenizer(list(texts)).to(self.device)), dim=-1).cpu()


def synth_clip_name(cfg: SynthClipConfig | None = None) -> str:
    """The signature of the synthetic CLIP of a config, known before (and without) training or loading it."""
    return f"{NAME}-{'-'.join(_key_parts(cfg or SynthClipConfig()))}"


def _key_parts(cfg: SynthClipConfig) -> list[str]:
    return [f"v{VERSION}", cfg.key()]


def _pairs_of_scene(scene, rng: np.random.Generator, size: int) -> list[tuple[torch.Tensor, str]]:
    """Region/text pairs of one scene: one per present concept (capped), plus the whole scene."""
    from milannotations.synth.scenes import CONCEPTS, caption_scene

    img = torch.from_numpy(scene.image)
    present = [i for i in range(len(CONCEPTS)) if scene.concepts[i].any() and CONCEPTS[i].name != "object"]
    chosen = rng.permutation(present)[:4]
    out = []
    for i in chosen:
        mask = torch.from_numpy(scene.concepts[i])[None, None]
        region = masked_regions(img[None], mask, size)[0]
        c = CONCEPTS[i]
        text = c.name
        if c.category == "shape":  # name the object's attributes too, sometimes
            obj = next((o for o in scene.objects if o.shape == c.name), None)
            if obj is not None:
                words = [w for w, keep in ((obj.colour, rng.random() < 0.5),
                                           (obj.texture, rng.random() < 0.3 and obj.texture != "solid")) if keep]
                text = " ".join([*words, c.name])
        out.append((region, text))
    full = torch.nn.functional.interpolate(img[None].float() / 255, size=(size, size), mode="bilinear",
                                           align_corners=False, antialias=True)[0]
    out.append((full, caption_scene(scene)))
    return out


def train_synth_clip(cfg: SynthClipConfig, progress: bool = True) -> SynthClip:
    """Train from scratch (deterministic for a given config)."""
    from tqdm.auto import tqdm

    from milannotations.synth.scenes import CONCEPT_NAMES, DOMAINS, render_scene

    with deterministic_training(cfg.seed, threads=THREADS):
        rng = np.random.default_rng(cfg.seed)
        regions, texts = [], []
        for i in tqdm(range(cfg.pool_scenes), desc="synth-clip: scenes", disable=not progress):
            scene = render_scene(DOMAINS[i % len(DOMAINS)], 1_000_000 + i, cfg.world_seed)
            for r, t in _pairs_of_scene(scene, rng, cfg.image_size):
                regions.append(r)
                texts.append(t)
        words = [w for t in (*CONCEPT_NAMES, *texts) for w in _WORD.findall(t.lower())]
        tokenizer = WordTokenizer([w for w, _ in sorted(__import__("collections").Counter(words).items(),
                                                         key=lambda kv: (-kv[1], kv[0]))])
        X = torch.stack(regions)
        ids = tokenizer(texts)
        text_key = torch.tensor([hash(t) % (2 ** 61) for t in texts])
        net = SynthClipNet(len(tokenizer.vocab), cfg)
        opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=0.01)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
        gen = torch.Generator().manual_seed(cfg.seed)
        net.train()
        for _ in tqdm(range(cfg.steps), desc="synth-clip: training", disable=not progress):
            b = torch.randint(0, len(X), (cfg.batch_size,), generator=gen)
            x = X[b]
            flip = torch.rand(len(b), generator=gen) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
            img = F.normalize(net.image((x - _MEAN) / _STD), dim=-1)
            txt = F.normalize(net.text(ids[b]), dim=-1)
            logits = net.logit_scale.exp().clamp(max=100) * img @ txt.T
            same = (text_key[b][:, None] == text_key[b][None, :]).float()  # duplicate texts are positives too
            target = same / same.sum(1, keepdim=True)
            loss = (torch.sum(-target * logits.log_softmax(1), 1).mean()
                    + torch.sum(-target * logits.T.log_softmax(1), 1).mean()) / 2
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return SynthClip(net, tokenizer, cfg)


def load_synth_clip(device: str = "cpu", cache_dir: Path | None = None, **overrides) -> SynthClip:
    """The cached synthetic CLIP, trained on first use (a few minutes on two cores)."""
    cfg = SynthClipConfig(**overrides)

    def build(info: dict) -> SynthClipNet:
        return SynthClipNet(len(WordTokenizer(info["vocab"][2:]).vocab), cfg)

    def train() -> tuple[SynthClipNet, dict]:
        t0 = time.time()
        model = train_synth_clip(cfg)
        return model.net, {"config": asdict(cfg), "version": VERSION, "vocab": model.tokenizer.vocab,
                           "train_seconds": round(time.time() - t0, 1)}

    entry = cached_model(NAME, _key_parts(cfg), build, train, cache_dir=cache_dir, seed=cfg.seed, threads=THREADS)
    return SynthClip(entry.module, WordTokenizer(entry.info["vocab"][2:]), cfg, device)
