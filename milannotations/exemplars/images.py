"""Probe images from a folder: an ImageFolder (class subfolders) or a flat folder of files.

Image ids are the sample order: torchvision `ImageFolder` order (classes
sorted, then files sorted within each class) or, for a flat folder, sorted
file names. Items are uint8 3 x H x W tensors after the default transform
Resize(256) + CenterCrop(224); the model-input normalisation happens later,
so the stored exemplar images stay unnormalised. An unreadable file yields
None (the batcher skips it and counts it) or, with `strict=True`, a
MilanError naming the file.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import torch
from PIL import Image, UnidentifiedImageError
from torchvision import transforms
from torchvision.datasets.folder import IMG_EXTENSIONS

from ..errors import MilanError


def default_transform(resize: int = 256, crop: int = 224) -> Callable[[Image.Image], torch.Tensor]:
    """PIL image -> uint8 3 x crop x crop: Resize(resize) then CenterCrop(crop)."""
    return transforms.Compose([transforms.Resize(resize), transforms.CenterCrop(crop),
                               transforms.PILToTensor()])


def list_images(root: Path) -> list[Path]:
    """The image files of `root` in id order (ImageFolder order, or sorted flat files)."""
    root = Path(root)
    if not root.is_dir():
        raise MilanError(f"image folder {root} does not exist or is not a folder")
    is_image = lambda p: p.is_file() and p.name.lower().endswith(IMG_EXTENSIONS)  # noqa: E731
    classes = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if classes:
        # Same order as torchvision ImageFolder: classes sorted, files sorted (walked) inside each.
        files = []
        for d in classes:
            for sub, _dirs, names in sorted(_walk(d)):
                files.extend(p for p in (Path(sub) / n for n in sorted(names)) if is_image(p))
    else:
        files = sorted(p for p in root.iterdir() if is_image(p))
    if not files:
        raise MilanError(f"image folder {root} holds no images (looked for {', '.join(IMG_EXTENSIONS)} "
                         "files, directly or in class subfolders)")
    return files


def _walk(d: Path):
    import os

    for sub, dirs, names in os.walk(d, followlinks=True):
        dirs.sort()
        yield sub, dirs, names


class ImageFolderDataset(torch.utils.data.Dataset):
    """uint8 images of a folder; `dataset[i]` is None where file i cannot be read (unless strict)."""

    def __init__(self, root: Path, transform: Callable | None = None, *, strict: bool = False) -> None:
        self.root = Path(root)
        self.files = list_images(self.root)
        self.transform = transform or default_transform()
        self.strict = strict
        self._named: set[Path] = set()

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> torch.Tensor | None:
        path = self.files[index]
        try:
            with Image.open(path) as im:
                image = im.convert("RGB")
        except (OSError, UnidentifiedImageError, ValueError) as e:
            if self.strict:
                raise MilanError(f"cannot read image {path}: {e} (drop --strict to skip unreadable images)")
            if path not in self._named:  # name each skipped file once; the count alone does not say which
                self._named.add(path)
                print(f"exemplars: skipping unreadable image {path}: {str(e).splitlines()[0]}", file=sys.stderr)
            return None
        return self.transform(image)
