"""The describer contract: what a describer is given and what it must return.

It lives in the corpus room because `Exemplars` is a view of a unit record,
and because users import everything from one root (`milannotations`).
Describers never see the annotations or the `truth` of the units they
describe: `Exemplars` has no field for them. Training units, which a learned
describer may read, come as `AnnotatedExemplars`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence, runtime_checkable

import torch


@dataclass(frozen=True)
class Exemplars:
    """A unit as a describer sees it.

    images: uint8, k x 3 x H x W (k may be 0 where pixels were not joined).
    masks:  bool,  k x 1 x H x W, True where the unit is active.
    image_ids: where each exemplar comes from (ImageFolder index, BigGAN z
    index, or synthetic scene index), so a describer may re-render or
    re-segment the source image.
    """

    unit_id: str
    model: str
    dataset: str
    layer: str
    unit: int
    images: torch.Tensor
    masks: torch.Tensor
    image_ids: tuple[int, ...] = ()  # index of each exemplar in its source; public, like the pixels

    @property
    def config(self) -> str:
        return self.unit_id.split("/", 1)[0]

    def __getattr__(self, name: str):
        # Only reached when `images` was left out at construction: `milannotations.units` builds units
        # whose images are decoded on first read (a picklable loader in `_images_from`), so a pass that
        # never looks at pixels never inflates them. Constructed normally, a unit never gets here.
        state = self.__dict__
        if name == "images" and "_images_from" in state:
            images = state["_images_from"]()
            object.__setattr__(self, "images", images)  # frozen: set as the dataclass __init__ does
            state.pop("_images_from", None)
            return images
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def k(self) -> int:
        return int(self.masks.shape[0])


@dataclass(frozen=True)
class AnnotatedExemplars(Exemplars):
    """A training unit: its exemplars plus the descriptions a describer may learn from."""

    annotations: tuple[str, ...] = ()


@dataclass(frozen=True)
class DescriberMeta:
    """Who a describer is and what it has seen (MTEB's ModelMeta, for neuron describers).

    `trained_on` lists the configs whose units (and descriptions) the
    describer has seen before evaluation; results on those configs are
    flagged as not held out.
    """

    name: str
    version: str = "0"
    trained_on: tuple[str, ...] = ()
    citation: str = ""
    reference: str = ""
    reproducible: bool = True  # False for API-backed describers
    oracle: bool = False  # reads the answer (e.g. the synthetic world's true masks): a reference row, not ranked

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "trained_on": list(self.trained_on),
            "citation": self.citation,
            "reference": self.reference,
            "reproducible": self.reproducible,
            "oracle": self.oracle,
        }


@runtime_checkable
class Describer(Protocol):
    """Anything with a `meta`, a `fit` and a `describe` is a describer."""

    meta: DescriberMeta

    def fit(self, train: Sequence[AnnotatedExemplars]) -> None:
        """Learn from training units; a describer that learns nothing does nothing."""
        ...

    def describe(self, units: Sequence[Exemplars]) -> list[str]:
        """One description per unit, in order."""
        ...
