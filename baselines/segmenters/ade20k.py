"""Segmenter for real images: an ADE20K semantic-segmentation model plus colour terms.

The papers dissected with Broden (objects, parts, scenes, materials,
textures, colours) or, for Compositional Explanations on ADE20K-style
labels, with ADE20K objects plus colours. Broden is no longer
downloadable, so real exemplars are segmented here by any `transformers`
semantic-segmentation model with ADE20K's 150 classes (by default the
architecture and weights of `nvidia/segformer-b0-finetuned-ade-512-512`),
and every pixel additionally gets one of the 11 basic colour names
(`colours.py`). The model is read from a local folder or the Hugging Face
hub cache only; nothing is downloaded at run time.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from milannotations.errors import MilanError

from .base import Segmenter
from .colours import COLOUR_NAMES, colour_masks

DEFAULT_ADE20K_MODEL = "nvidia/segformer-b0-finetuned-ade-512-512"

#: ADE20K SceneParsing's 150 classes (objectInfo150), short names, in label order.
ADE20K_CLASSES: tuple[str, ...] = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass",
    "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair",
    "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field",
    "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion",
    "base", "box", "column", "signboard", "chest of drawers", "counter", "sand", "sink", "skyscraper",
    "fireplace", "refrigerator", "grandstand", "path", "stairs", "runway", "case", "pool table", "pillow",
    "screen door", "stairway", "river", "bridge", "bookcase", "blind", "coffee table", "toilet", "flower",
    "book", "hill", "bench", "countertop", "stove", "palm", "kitchen island", "computer", "swivel chair",
    "boat", "bar", "arcade machine", "hovel", "bus", "towel", "light", "truck", "tower", "chandelier",
    "awning", "streetlight", "booth", "television receiver", "airplane", "dirt track", "apparel", "pole",
    "land", "bannister", "escalator", "ottoman", "bottle", "buffet", "poster", "stage", "van", "ship",
    "fountain", "conveyer belt", "canopy", "washer", "plaything", "swimming pool", "stool", "barrel",
    "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball", "food", "step", "tank",
    "trade name", "microwave", "pot", "animal", "bicycle", "lake", "dishwasher", "screen", "blanket",
    "sculpture", "hood", "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen",
    "plate", "monitor", "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)
assert len(ADE20K_CLASSES) == 150

# SegFormer's image processor normalises with ImageNet statistics.
_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def _label_names(id2label: dict | None) -> list[str]:
    """The model's own class names when it has real ones, else ADE20K's; first synonym, trimmed."""
    names = list(ADE20K_CLASSES)
    if id2label:
        given = [str(id2label.get(i, id2label.get(str(i), ""))) for i in range(150)]
        if all(g and not g.upper().startswith("LABEL_") for g in given):
            names = [g.split(",")[0].strip().lower() for g in given]
    return names


_LOADED: dict[tuple[str, str], Any] = {}


def load_ade20k_model(model: str | Path = DEFAULT_ADE20K_MODEL, device: str = "cpu"):
    """An ADE20K segmentation model from a local folder or the hub cache, offline, loaded once per process.

    Frozen and in eval mode, it is shared by every segmenter of a run (the harness builds a
    describer per split and trial). Raises MilanError, naming the model and how to get it, when
    it is not available locally or does not predict 150 classes.
    """
    key = (str(model), str(device))
    if key not in _LOADED:
        _LOADED[key] = _load_ade20k_model(model, device)
    return _LOADED[key]


def _load_ade20k_model(model: str | Path, device: str):
    from transformers import AutoModelForSemanticSegmentation

    path = Path(str(model)).expanduser()
    source = str(path) if path.exists() else str(model)
    if str(model).startswith((".", "/", "~")) and not path.exists():
        raise MilanError(f"ADE20K segmentation model folder {path} does not exist")
    try:
        net = AutoModelForSemanticSegmentation.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError) as e:
        raise MilanError(
            f"ADE20K segmentation model {source!r} is not available offline (no local folder and not in "
            f"the Hugging Face hub cache). On a machine with network run `huggingface-cli download "
            f"{DEFAULT_ADE20K_MODEL}` (or save any transformers semantic-segmentation model with 150 ADE20K "
            f"labels) and pass segmenter=ade20k,model=/path/to/folder. Cause: {str(e).splitlines()[0]}"
        ) from e
    n = int(getattr(net.config, "num_labels", 0))
    if n != 150:
        raise MilanError(f"segmentation model {source!r} predicts {n} classes; the ade20k segmenter needs "
                         "ADE20K's 150")
    return net.to(device).eval()


class ADE20KSegmenter(Segmenter):
    """ADE20K's 150 object/stuff classes (argmax of the model) plus 11 colour terms per pixel.

    `input_size`: images are resized to this square size before the model
    (the SegFormer ADE20K checkpoints were trained at 512), and the logits
    are resized back to the image size before the argmax.
    """

    name = "ade20k"
    citation = ("Zhou et al., Scene Parsing through ADE20K Dataset, CVPR 2017; Xie et al., SegFormer, "
                "NeurIPS 2021; Berlin & Kay, Basic Color Terms, 1969")

    def __init__(self, model: str | Path = DEFAULT_ADE20K_MODEL, device: str = "cpu", input_size: int = 512,
                 batch_size: int = 8, colours: bool = True, cache_bytes: int = 256 * 2**20) -> None:
        super().__init__(cache_bytes=cache_bytes)
        self.model_name = str(model)
        self.device = device
        self.input_size = int(input_size)
        self.batch_size = int(batch_size)
        self.net = load_ade20k_model(model, device)
        self.classes = _label_names(getattr(self.net.config, "id2label", None))
        self.with_colours = colours
        self.concepts = self.classes + (list(COLOUR_NAMES) if colours else [])
        self.categories = ["object"] * len(self.classes) + (["colour"] * len(COLOUR_NAMES) if colours else [])
        self.trained_on = f"ADE20K SceneParsing (weights of {self.model_name})"

    @torch.no_grad()
    def class_index(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 B x 3 x H x W -> int64 B x H x W ADE20K class per pixel."""
        h, w = images.shape[-2:]
        out = []
        for start in range(0, images.shape[0], self.batch_size):
            x = images[start:start + self.batch_size].float().div(255.0)
            if self.input_size and (h, w) != (self.input_size, self.input_size):
                x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear",
                                  align_corners=False)
            x = ((x - _MEAN) / _STD).to(self.device)
            logits = self.net(pixel_values=x).logits  # B x 150 x h/4 x w/4
            logits = F.interpolate(logits.float(), size=(h, w), mode="bilinear", align_corners=False)
            out.append(logits.argmax(dim=1).cpu())
        return torch.cat(out) if out else torch.zeros(0, h, w, dtype=torch.long)

    def segment(self, images: torch.Tensor, *, dataset: str | None = None,
                image_ids: Sequence[int] | None = None, unit_id: str = "") -> torch.Tensor:
        if images.shape[0] == 0 and image_ids:
            raise MilanError(f"unit {unit_id or '?'} has no exemplar images (pixels not shipped or not "
                             "joined); the ade20k segmenter needs pixels — run `milannotations join` first")
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise MilanError(f"unit {unit_id or '?'}: images must be uint8 B x 3 x H x W, got "
                             f"{images.dtype} {tuple(images.shape)}")
        idx = self.class_index(images)
        objects = idx[:, None] == torch.arange(len(self.classes)).view(1, -1, 1, 1)
        if not self.with_colours:
            return objects
        return torch.cat([objects, colour_masks(images)], dim=1)
