"""The one way to build a describer: `create_describer(name, **args)`.

Names resolve in this order (DESIGN.md): a built-in registered with
`@register_describer`, an entry point in group `milannotations.describers`,
`package.module:attr`, `path/to/file.py:attr`. `attr` may be a class, a
factory function or a ready instance.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable

from milannotations.contract import Describer
from milannotations.errors import MilanError

ENTRY_POINT_GROUP = "milannotations.describers"
_REGISTRY: dict[str, Callable[..., Describer]] = {}
_BUILTIN_MODULES = ("baselines.floors", "baselines.milan", "baselines.netdissect", "baselines.compexp",
                    "baselines.clip_dissect")


def register_describer(name: str) -> Callable:
    """Decorator: register a describer class or factory under a short name."""

    def deco(factory: Callable[..., Describer]) -> Callable[..., Describer]:
        if name in _REGISTRY and _REGISTRY[name] is not factory:
            raise ValueError(f"describer {name!r} registered twice")
        _REGISTRY[name] = factory
        return factory

    return deco


def _load_builtins() -> None:
    for mod in _BUILTIN_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise


def available_describers() -> list[str]:
    _load_builtins()
    names = set(_REGISTRY)
    names.update(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
    return sorted(names)


def _from_file(path: str, attr: str) -> Any:
    file = Path(path)
    if not file.is_file():
        raise MilanError(f"describer file {path} does not exist")
    mod_name = f"_milan_user_describer_{abs(hash(str(file.resolve())))}"
    spec = importlib.util.spec_from_file_location(mod_name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # the user's file is input: its failure to import is one line, not a traceback
        sys.modules.pop(mod_name, None)
        raise MilanError(f"describer file {path}: {_import_failure(e)}") from None
    if not hasattr(module, attr):
        raise MilanError(f"{path} has no attribute {attr!r}")
    return getattr(module, attr)


def _import_failure(e: Exception) -> str:
    """What went wrong importing a user's describer code, in one line (where, for a syntax error)."""
    if isinstance(e, SyntaxError):
        return f"syntax error at line {e.lineno}: {e.msg}"
    return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}".rstrip(": ")


def resolve_describer(name: str) -> Any:
    """The class, factory or instance that `name` refers to."""
    _load_builtins()
    if name in _REGISTRY:
        return _REGISTRY[name]
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            return ep.load()
    if ":" in name:
        target, attr = name.rsplit(":", 1)
        if target.endswith(".py") or "/" in target or Path(target).is_file():
            return _from_file(target, attr)
        try:
            module = importlib.import_module(target)
        except Exception as e:
            raise MilanError(f"cannot import module {target!r} for describer {name!r}: {_import_failure(e)}"
                             ) from None
        if not hasattr(module, attr):
            raise MilanError(f"module {target!r} has no attribute {attr!r}")
        return getattr(module, attr)
    raise MilanError(f"unknown describer {name!r}; built-in: {', '.join(available_describers())}; "
                     "or give package.module:attr or path/to/file.py:attr")


def create_describer(name: str, **args: Any) -> Describer:
    """Build a describer by name with constructor arguments (`--describer-args`)."""
    target = resolve_describer(name)
    if isinstance(target, type) or (callable(target) and not hasattr(target, "describe")):
        try:
            describer = target(**args)
        except TypeError as e:
            raise MilanError(f"describer {name!r} does not accept arguments {sorted(args)}: {e}") from e
    else:
        if args:
            raise MilanError(f"describer {name!r} is an instance and takes no arguments")
        describer = target
    for attr in ("meta", "describe"):
        if not hasattr(describer, attr):
            raise MilanError(f"describer {name!r} has no {attr!r}; see milannotations.Describer")
    return describer


def parse_describer_args(text: str | None) -> dict[str, Any]:
    """`key=value,key=value` -> dict, with ints, floats and booleans recognised."""
    out: dict[str, Any] = {}
    if not text:
        return out
    for part in text.split(","):
        if not part.strip():
            continue
        if "=" not in part:
            raise MilanError(f"--describer-args item {part!r} is not key=value")
        key, value = part.split("=", 1)
        out[key.strip()] = _coerce(value.strip())
    return out


def _coerce(value: str) -> Any:
    low = value.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value
