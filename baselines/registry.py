"""The one way to build a describer: `build_describer(spec, args, runtime)`.

Names resolve in this order (DESIGN.md): a built-in registered with
`@register_describer`, an entry point in group `milannotations.describers`,
`package.module:attr`, `path/to/file.py:attr`. `attr` may be a class, a
factory function or a ready instance.

A describer takes what it wants of the run it is built for (`Runtime`: device, seed, progress) by
naming it in its constructor; `build_describer` reads the signature and hands over those settings
that `args` does not set. The harness (describers and floors), `milan-describe` and the leaderboard
all build describers here; `create_describer(name, **args)` is the same factory without a runtime.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable, Mapping

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
    for mod in _BUILTIN_MODULES:  # they ship with the project: one failing to import is a bug, raised
        importlib.import_module(mod)


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


@dataclass(frozen=True)
class Runtime:
    """The settings of the run a describer is built for; each reaches only constructors that name it.

    `device`: where models run (None: the describer's own default). `seed`: the trial's seed for
    describers that seed their own generators (None: their default). `progress=False` silences
    describers that draw their own bars (True leaves their default alone).
    """

    device: str | None = None
    seed: int | None = None
    progress: bool = True


#: Runtime settings that can change a description and so are recorded among a run's describer args
#: (the seed is recorded as the run's own `seed`; progress cannot change a description).
RECORDED_RUNTIME = ("device",)


def _accepts(factory: Any, name: str) -> bool:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    return name in params


def _buildable(target: Any) -> bool:
    """A class or factory (called with args), as opposed to a ready instance."""
    return isinstance(target, type) or (callable(target) and not hasattr(target, "describe"))


def runtime_args(target: Any, args: Mapping[str, Any] | None, runtime: Runtime | None) -> dict[str, Any]:
    """What `target`'s constructor takes from `runtime` that `args` does not set explicitly."""
    args = args or {}
    if runtime is None or not _buildable(target):
        return {}
    out: dict[str, Any] = {}
    if runtime.device is not None and "device" not in args and _accepts(target, "device"):
        out["device"] = str(runtime.device)
    if runtime.seed is not None and "seed" not in args and _accepts(target, "seed"):
        out["seed"] = int(runtime.seed)
    if not runtime.progress and "progress" not in args and _accepts(target, "progress"):
        out["progress"] = False
    return out


def recorded_args(spec: str | Describer, args: Mapping[str, Any] | None = None,
                  runtime: Runtime | None = None) -> dict[str, Any]:
    """The constructor arguments a results record states for `build_describer(spec, args, runtime)`:
    `args` plus the runtime settings in `RECORDED_RUNTIME` that the constructor takes."""
    out = dict(args or {})
    if isinstance(spec, str):
        taken = runtime_args(resolve_describer(spec), out, runtime)
        out.update({k: v for k, v in taken.items() if k in RECORDED_RUNTIME})
    return out


def _check_describer(describer: Any, what: str) -> Describer:
    """The describer, or a MilanError when it lacks the contract's `meta` or `describe`."""
    for attr in ("meta", "describe"):
        if not hasattr(describer, attr):
            raise MilanError(f"{what} has no {attr!r}; see milannotations.Describer")
    return describer


def build_describer(spec: str | Describer, args: Mapping[str, Any] | None = None,
                    runtime: Runtime | None = None) -> Describer:
    """A describer from a registry name (built with `args` and what it takes of `runtime`) or a ready
    instance (checked; `args` must then be empty). Every caller builds describers here."""
    args = dict(args or {})
    if not isinstance(spec, str):
        if args:
            raise MilanError("describer_args are only used with a describer name; build the instance with them")
        return _check_describer(spec, repr(spec))
    target = resolve_describer(spec)
    if _buildable(target):
        args.update(runtime_args(target, args, runtime))
        try:
            describer = target(**args)
        except TypeError as e:
            raise MilanError(f"describer {spec!r} does not accept arguments {sorted(args)}: {e}") from e
    else:
        if args:
            raise MilanError(f"describer {spec!r} is an instance and takes no arguments")
        describer = target
    return _check_describer(describer, f"describer {spec!r}")


def create_describer(name: str, **args: Any) -> Describer:
    """Build a describer by name with constructor arguments (`--describer-args`), without a runtime."""
    return build_describer(name, args)


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
