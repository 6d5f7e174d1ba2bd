"""milannotations: the MILANNOTATIONS corpus, read straight from its parquet, and the describer contract.

    import milannotations as mn
    ds = mn.load("alexnet-imagenet", split="test", root="path/to/built/milannotations")
    units = mn.UnitSet(ds)              # a Sequence of Exemplars-with-annotations

    mn.prepare("synth-base")            # build the synthetic corpus into the cache (once), then
    ds = mn.load("synth-base", split="test")

Importing the package costs only what is used (issue 18): `load`, `resolve_configs`, `prepare`,
`download`, `default_root` and the catalogue are light and bound at import; the names that need
torch, `datasets`, numpy or pyarrow (`UnitSet`, the contract, `FEATURES`, `build`, `join_folder`,
...) are imported on first access (PEP 562).
"""
import sys as _sys
import types as _types

from .version import __version__

from .errors import MilanError
from .schema import REAL_CONFIGS, REAL_GROUPINGS
from .paths import default_root
from .load import load, resolve_configs
from .prepare import prepare
from .download import download

__all__ = [
    "AnnotatedExemplars", "Describer", "DescriberMeta", "Exemplars", "FEATURES", "MilanError",
    "ImageSource", "REAL_CONFIGS", "REAL_GROUPINGS", "UnitSet", "UnitTable", "build", "concatenate",
    "default_root", "download", "join_folder", "load", "prepare", "resolve_configs", "to_exemplars",
    "unit_grid",
]


def __getattr__(name: str):
    """The heavy public names, imported when first asked for and then bound here."""
    if name in ("AnnotatedExemplars", "Describer", "DescriberMeta", "Exemplars"):  # torch
        from . import contract as module
    elif name in ("UnitSet", "to_exemplars", "unit_grid"):  # torch, numpy, PIL
        from . import units as module
    elif name in ("UnitTable", "concatenate"):  # pyarrow when used
        from . import table as module
    elif name == "FEATURES":  # datasets
        from . import schema as module
    elif name in ("ImageSource", "join_folder"):
        from . import imagejoin as module
    elif name == "build":  # numpy, pyarrow, PIL, torch (through imagejoin)
        from .build import build as value

        globals()["build"] = value
        return value
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


class _Package(_types.ModuleType):
    """Keeps `milannotations.build` the function once the submodule of that name is imported.

    Importing a submodule binds it as an attribute of its package; with `build` imported lazily that
    binding would replace the function whenever `milannotations.build` (the module) is imported
    first, e.g. by the `build` command. An eager `from .build import build` rebinds it right after;
    this does the same for the lazy one.
    """

    def __setattr__(self, name: str, value) -> None:
        if name == "build" and isinstance(value, _types.ModuleType):
            return  # the function is bound on first access (`__getattr__`)
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package
