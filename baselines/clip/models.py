"""CLIP models behind one small interface: open_clip checkpoints, or the synthetic world's own CLIP.

A model carries what downstream code must not guess: its input size,
normalisation, signature and what it was trained on.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

import torch

from milannotations.errors import MilanError
from milannotations.weights import load_state_dict


class ClipModel(Protocol):
    name: str
    image_size: int
    trained_on: tuple[str, ...]
    # optional: `interpolation`, the resize filter its preprocessing uses for whole images (default bicubic)

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """B x 3 x S x S floats in [0, 1] -> B x D unit-norm embeddings."""
        ...

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Texts -> N x D unit-norm embeddings."""
        ...


DEFAULT_ARCH = "ViT-B-16"  # CLIP-Dissect's default CLIP (its --clip_model ViT-B/16)


def open_clip_arch(model: str) -> str:
    """OpenAI's spelling of a CLIP (CLIP-Dissect's "ViT-B/16") -> open_clip's ("ViT-B-16")."""
    return model.replace("/", "-")


def open_clip_name(arch: str, pretrained: str | None) -> str:
    """The signature an `OpenClip` will carry, known before (and without) loading its weights."""
    return f"open_clip:{open_clip_arch(arch)}:{pretrained or 'random'}"


@dataclass
class OpenClip:
    """An open_clip architecture with weights from its cache, a local file, or none (random, tests only)."""

    arch: str = DEFAULT_ARCH
    pretrained: str | None = "openai"
    device: str = "cpu"
    interpolation: str = "bicubic"  # what CLIP's own preprocessing resizes with

    def __post_init__(self) -> None:
        import open_clip

        self.arch = open_clip_arch(self.arch)
        if self.arch not in open_clip.list_models():
            raise MilanError(f"unknown open_clip architecture {self.arch!r}")
        self.name = open_clip_name(self.arch, self.pretrained)
        self.trained_on = ()
        tag = self.pretrained
        path = Path(tag) if tag and tag not in ("none", "random") else None
        root = logging.getLogger()
        level = root.level
        root.setLevel(max(level, logging.ERROR))  # open_clip logs each model it builds; keep it quiet, then restore
        try:
            model = self._create_model(open_clip, tag, path)
        finally:
            root.setLevel(level)
        self.model = model.eval().to(self.device)
        self.tokenizer = open_clip.get_tokenizer(self.arch)
        cfg = self.model.visual.image_size
        self.image_size = int(cfg[0] if isinstance(cfg, (tuple, list)) else cfg)
        self.mean = torch.tensor(getattr(self.model.visual, "image_mean", None) or open_clip.OPENAI_DATASET_MEAN)
        self.std = torch.tensor(getattr(self.model.visual, "image_std", None) or open_clip.OPENAI_DATASET_STD)
        if tag not in (None, "none", "random"):
            self.trained_on = (f"{self.arch}/{tag} pretraining data",)

    def _create_model(self, open_clip, tag: str | None, path: Path | None):
        """The open_clip model: random weights, a local safetensors file, or a cached pretrained tag."""
        if tag in (None, "none", "random"):
            model = open_clip.create_model(self.arch, pretrained=None)
        elif path is not None and path.exists():
            model = open_clip.create_model(self.arch, pretrained=None)
            model.load_state_dict(_safe_state_dict(path))
        else:
            known = {t for a, t in open_clip.list_pretrained() if a == self.arch}
            if tag not in known:
                raise MilanError(f"open_clip {self.arch} has no pretrained tag {tag!r}; known: {sorted(known)}")
            try:
                model = open_clip.create_model(self.arch, pretrained=tag)
            except Exception as e:  # offline and not cached, or a broken download
                raise MilanError(
                    f"open_clip weights {self.arch}/{tag} are not available locally ({type(e).__name__}). "
                    f"Fetch them once with network access (open_clip.create_model({self.arch!r}, "
                    f"pretrained={tag!r}) fills the Hugging Face cache), or pass pretrained=/path/to/weights"
                    ".safetensors") from e
        return model

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        x = (images.to(self.device) - self.mean.view(1, 3, 1, 1).to(self.device)) / self.std.view(1, 3, 1, 1).to(self.device)
        return torch.nn.functional.normalize(self.model.encode_image(x).float(), dim=-1).cpu()

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        out = []
        for i in range(0, len(texts), 256):
            tokens = self.tokenizer(list(texts[i:i + 256])).to(self.device)
            out.append(torch.nn.functional.normalize(self.model.encode_text(tokens).float(), dim=-1).cpu())
        return torch.cat(out)


def _safe_state_dict(path: Path) -> dict:
    """A state dict from safetensors or a tensors-only torch file; never unpickles objects."""
    return load_state_dict(path)


_LOADED: dict[tuple[str, str, str], ClipModel] = {}


def load_clip(model: str = "synth", pretrained: str | None = "openai", device: str = "cpu") -> ClipModel:
    """`synth` -> the synthetic world's CLIP (trained and cached on first use); else an open_clip arch.

    Architecture names may use OpenAI's spelling too (`ViT-B/16` is open_clip's `ViT-B-16`).

    Loaded once per process: the model is frozen, and the harness builds a describer per split
    and trial. `pretrained=None` (`none` on the command line) builds random weights, for tests only.
    """
    key = (model, str(pretrained), str(device))
    if key not in _LOADED:
        if model == "synth":
            from .synth_clip import load_synth_clip

            _LOADED[key] = load_synth_clip(device=device)
        else:
            _LOADED[key] = OpenClip(arch=open_clip_arch(model), pretrained=pretrained, device=device)
    return _LOADED[key]
