"""The unit record and the catalogue of real configs.

`FEATURES` (a `datasets.Features`, built on first access) is the single statement of what a row is:
the real corpus, the synthetic corpus and a user's own exemplars are all written from it by
`milannotations.writer`, and the dataset card is generated from it. `COLUMNS` names its columns
for readers that do not import `datasets`.
"""
from __future__ import annotations

from dataclasses import dataclass

#: The columns of a unit record, in stored order (readable without importing `datasets`).
COLUMNS: tuple[str, ...] = ("unit_id", "config", "model", "dataset", "layer", "unit", "images", "masks",
                            "image_ids", "annotations", "truth")
#: The columns holding PNG cells (`{"bytes", "path"}` structs).
IMAGE_COLUMNS: tuple[str, ...] = ("images", "masks")


def _features():
    from datasets import Features, Image, Sequence, Value

    return Features(
        {
            "unit_id": Value("string"),
            "config": Value("string"),
            "model": Value("string"),
            "dataset": Value("string"),
            "layer": Value("string"),
            "unit": Value("int32"),
            "images": Sequence(Image()),
            "masks": Sequence(Image()),
            "image_ids": Sequence(Value("int64")),
            "annotations": Sequence(Value("string")),
            "truth": Value("string"),
        }
    )


def __getattr__(name: str):
    """`FEATURES` is built on first use: `datasets` costs ~2 s and ~180 MB to import, and reading,
    listing configs or parsing a CLI does not need it (PEP 562)."""
    if name == "FEATURES":
        features = _features()
        assert tuple(features) == COLUMNS
        globals()["FEATURES"] = features
        return features
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: What each field means; the dataset card prints this table.
FIELD_DOCS: dict[str, str] = {
    "unit_id": '"<config>/<layer>/<unit>", unique across the corpus',
    "config": "the config (network x dataset) the unit belongs to",
    "model": "the annotated network",
    "dataset": "the data the network was trained on / the probe images come from",
    "layer": "layer name, always a string (also for digit names such as '0')",
    "unit": "unit (channel) index inside the layer",
    "images": "the k top-activating images, highest first; empty where the licence forbids shipping them and no local copy was joined",
    "masks": "k binary masks (PNG, mode L), 255 where the unit is active",
    "image_ids": "index of each top image in its source (ImageFolder order, or BigGAN z index)",
    "annotations": "the human (or, for synthetic configs, generated) descriptions",
    "truth": "synthetic configs only: the ground-truth concept formula as JSON; never shown to describers",
}

HOST = "http://milan.csail.mit.edu"


@dataclass(frozen=True)
class RealConfig:
    """One network x dataset of the original release, with what the loader must know."""

    name: str
    model: str
    dataset: str
    task: str
    ships_images: bool
    image_source: str | None  # which local val folder can supply missing pixels ("imagenet"), if any
    paper_units: int
    layers: tuple[str, ...]

    @property
    def url(self) -> str:
        return f"{HOST}/data/{self.name}.zip"


REAL_CONFIGS: dict[str, RealConfig] = {
    c.name: c
    for c in (
        RealConfig("alexnet-imagenet", "alexnet", "imagenet", "classification", False, "imagenet", 1152,
                   ("conv1", "conv2", "conv3", "conv4", "conv5")),
        RealConfig("alexnet-places365", "alexnet", "places365", "classification", True, "places365", 1376,
                   ("conv1", "conv2", "conv3", "conv4", "conv5")),
        RealConfig("resnet152-imagenet", "resnet152", "imagenet", "classification", False, "imagenet", 3904,
                   ("conv1", "layer1", "layer2", "layer3", "layer4")),
        RealConfig("resnet152-places365", "resnet152", "places365", "classification", True, "places365", 3904,
                   ("0", "4", "5", "6", "7")),
        RealConfig("biggan-imagenet", "biggan", "imagenet", "generation", True, None, 3744,
                   tuple(f"layer{i}" for i in range(6))),
        RealConfig("biggan-places365", "biggan", "places365", "generation", True, None, 4992,
                   tuple(f"layer{i}" for i in range(6))),
        RealConfig("dino_vits8-imagenet", "dino_vits8", "imagenet", "self-supervised", False, "imagenet", 1200,
                   tuple(f"blocks.{i}.mlp.fc1" for i in range(12))),
    )
}

_BASE = ("alexnet-imagenet", "alexnet-places365", "resnet152-imagenet",
         "resnet152-places365", "biggan-imagenet", "biggan-places365")

#: The paper's groupings (DATASET_GROUPINGS of the original code), in its order.
REAL_GROUPINGS: dict[str, tuple[str, ...]] = {
    "base": _BASE,
    "cls": _BASE[:4],
    "gen": _BASE[4:],
    "imagenet": ("alexnet-imagenet", "resnet152-imagenet", "biggan-imagenet"),
    "places365": ("alexnet-places365", "resnet152-places365", "biggan-places365"),
    "alexnet": ("alexnet-imagenet", "alexnet-places365"),
    "resnet152": ("resnet152-imagenet", "resnet152-places365"),
    "biggan": ("biggan-imagenet", "biggan-places365"),
    **{f"not-{c}": tuple(x for x in _BASE if x != c) for c in _BASE},
}

#: Descriptions per unit kept by the original loader (hub default annotation_count=3).
ANNOTATION_COUNT = 3
K = 15


def unit_id(config: str, layer: str, unit: int) -> str:
    """The corpus-wide unit key."""
    return f"{config}/{layer}/{int(unit)}"
