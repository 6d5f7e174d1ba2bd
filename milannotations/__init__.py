"""milannotations: the MILANNOTATIONS corpus as Hugging Face datasets, and the describer contract.

    import milannotations as mn
    ds = mn.load("alexnet-imagenet", split="test", root="path/to/built/milannotations")
    units = mn.UnitSet(ds)              # a Sequence of Exemplars-with-annotations
"""
__version__ = "0.1.0"

from .contract import AnnotatedExemplars, Describer, DescriberMeta, Exemplars  # noqa: E402
from .errors import MilanError  # noqa: E402
from .schema import FEATURES, REAL_CONFIGS, REAL_GROUPINGS  # noqa: E402
from .load import default_root, load, resolve_configs  # noqa: E402
from .units import UnitSet, to_exemplars, unit_grid  # noqa: E402
from .build import build  # noqa: E402
from .download import download  # noqa: E402
from .imagejoin import ImageSource, join_folder  # noqa: E402

__all__ = [
    "AnnotatedExemplars", "Describer", "DescriberMeta", "Exemplars", "FEATURES", "MilanError",
    "ImageSource", "REAL_CONFIGS", "REAL_GROUPINGS", "UnitSet", "build", "default_root", "download",
    "join_folder", "load", "resolve_configs", "to_exemplars", "unit_grid",
]
