"""milannotations: the MILANNOTATIONS corpus as Hugging Face datasets, and the describer contract.

    import milannotations as mn
    ds = mn.load("alexnet-imagenet", split="test", root="path/to/built/milannotations")
    units = mn.UnitSet(ds)              # a Sequence of Exemplars-with-annotations

    mn.prepare("synth-base")            # build the synthetic corpus into the cache (once), then
    ds = mn.load("synth-base", split="test")
"""
from .version import __version__

from .contract import AnnotatedExemplars, Describer, DescriberMeta, Exemplars
from .errors import MilanError
from .schema import FEATURES, REAL_CONFIGS, REAL_GROUPINGS
from .paths import default_root
from .load import load, resolve_configs
from .prepare import prepare
from .units import UnitSet, to_exemplars, unit_grid
from .build import build
from .download import download
from .imagejoin import ImageSource, join_folder

__all__ = [
    "AnnotatedExemplars", "Describer", "DescriberMeta", "Exemplars", "FEATURES", "MilanError",
    "ImageSource", "REAL_CONFIGS", "REAL_GROUPINGS", "UnitSet", "build", "default_root", "download",
    "join_folder", "load", "prepare", "resolve_configs", "to_exemplars", "unit_grid",
]
