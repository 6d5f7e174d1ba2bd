"""Train a small model once, deterministically, and cache it: the one way the project does this.

The synthetic backbone, the synthetic segmenter and the synthetic CLIP are
all "train a small network on rendered scenes, keep the weights". Each used
to carry its own cache key, atomic writes, thread pinning and handling of a
damaged cache file; they now share two things:

* `deterministic_training(seed)`: a context in which training gives the same
  bits on every run on a machine: torch's global RNG seeded (and restored
  afterwards, so training inside a run does not shift the caller's random
  stream), a fixed thread count (it fixes the reduction order; one thread
  unless a model's published weights were made with another),
  `torch.use_deterministic_algorithms` on, all settings restored on exit.
* `cached_model(name, key_parts, build_fn, train_fn)`: the weights under
  `models_dir()/<name>-<part>-<part>....safetensors` (plus a JSON sidecar
  holding what `build_fn` needs to rebuild the module), trained under that
  context on a miss and written atomically (weights first: the sidecar's
  presence marks a complete entry). A cache file that cannot be read or does
  not fit the module is retrained and replaced, with a warning naming it:
  training is deterministic, so retraining gives what the file should have
  held.
"""
from __future__ import annotations

import contextlib
import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from .errors import MilanError
from .fsutil import atomic_write_text
from .paths import models_dir
from .weights import dumps_info, load_state_dict, read_metadata, save_state_dict

if TYPE_CHECKING:  # pragma: no cover - typing only
    from torch import nn

#: Threads for training: one fixes the reduction order whatever the machine's cores, and is the fastest on a busy one.
TRAIN_THREADS = 1
_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._]*$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@contextlib.contextmanager
def deterministic_training(seed: int | None = None, *, threads: int | None = TRAIN_THREADS,
                           deterministic_algorithms: bool = True) -> Iterator[None]:
    """Run the block with fixed threads, deterministic algorithms and (if given) a seeded torch RNG.

    Everything is restored afterwards: the thread count, the deterministic
    flag (and its warn-only mode) and torch's global RNG state (CPU, and CUDA
    where initialised), so a model trained in the middle of a run leaves the
    run's random numbers as they were. The thread count is set exactly, not
    capped at the machine's cores: intra-op work is split by the count, so
    the same count gives the same bits whatever the core count (kernels that
    differ between CPU kinds may still differ). `threads=None` leaves it alone.
    """
    import torch

    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    old_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        try:
            if threads is not None:
                torch.set_num_threads(int(threads))  # exactly: the count, not the cores, fixes the bits
            if deterministic_algorithms:
                torch.use_deterministic_algorithms(True)
            if seed is not None:
                torch.manual_seed(seed)
            yield
        finally:
            torch.set_num_threads(old_threads)
            torch.use_deterministic_algorithms(old_det, warn_only=old_warn)


def model_key(name: str, key_parts: Sequence[object]) -> str:
    """The cache stem `name-part-part...`: every setting that changes the weights, readable in the file name."""
    parts = [str(p) for p in key_parts]
    if not _NAME.match(str(name)):
        raise MilanError(f"model cache name {name!r}: use letters, digits, '.', '_' and '-' only")
    bad = [p for p in parts if not _PART.match(p)]
    if bad:
        raise MilanError(f"model cache key part {bad[0]!r} of {name!r}: use letters, digits, '.' and '_' only")
    return "-".join([str(name), *parts])


@dataclass(frozen=True)
class CachedModel:
    """A model from `cached_model`: the module (eval mode, on the CPU), its stored info and weights file."""

    module: "nn.Module"
    info: dict
    path: Path
    trained: bool  # trained by this call (False: read from the cache)


def cache_paths(name: str, key_parts: Sequence[object], cache_dir: str | Path | None = None) -> tuple[Path, Path]:
    """(weights, sidecar) paths of a cache entry; nothing is read or trained."""
    folder = Path(cache_dir) if cache_dir is not None else models_dir()
    stem = model_key(name, key_parts)
    return folder / f"{stem}.safetensors", folder / f"{stem}.json"


def cached_model(name: str, key_parts: Sequence[object], build_fn: Callable[[dict], "nn.Module"],
                 train_fn: Callable[[], "tuple[nn.Module, dict[str, Any]]"], *,
                 cache_dir: str | Path | None = None, sidecar: bool = True, seed: int | None = None,
                 threads: int | None = TRAIN_THREADS, deterministic_algorithms: bool = True) -> CachedModel:
    """The model cached under `name` and `key_parts`, trained (deterministically) and cached on a miss.

    `build_fn(info)` makes the untrained module the stored weights load into,
    from the info dict `train_fn` returned with its trained module (JSON
    values: sizes, a vocabulary, a spec). With `sidecar` the info is kept in
    `<stem>.json` beside the weights, which also marks the entry complete;
    without, only in the weights file's metadata (key "info"). `seed`,
    `threads` and `deterministic_algorithms` configure `deterministic_training`
    around `train_fn`.
    """
    weights, info_path = cache_paths(name, key_parts, cache_dir)
    if weights.is_file() and (info_path.is_file() or not sidecar):
        try:
            if sidecar:
                info = json.loads(info_path.read_text(encoding="utf-8"))
            else:
                info = json.loads(read_metadata(weights).get("info", "{}"))
            if not isinstance(info, dict):
                raise ValueError("its info is not a JSON object")
            module = build_fn(info)
            module.load_state_dict(load_state_dict(weights))
            return CachedModel(module.eval(), info, weights, False)
        except Exception as e:  # noqa: BLE001 - any damage means the same: retrain, and say which file
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            warnings.warn(f"cached model {weights} is unreadable ({reason}); retraining it", RuntimeWarning,
                          stacklevel=2)
    with deterministic_training(seed, threads=threads, deterministic_algorithms=deterministic_algorithms):
        trained, info = train_fn()
    text = json.dumps(info)
    save_state_dict(trained, weights, metadata={"info": text})
    if sidecar:
        atomic_write_text(info_path, dumps_info(info))
    # Returned as the next call will read it: rebuilt from the stored info and given the trained
    # weights, so a run that trained the model and one that read it see the same module, and the
    # caller's random stream is used the same way (one `build_fn`) on a hit and on a miss.
    info = json.loads(text)
    module = build_fn(info)
    module.load_state_dict(trained.state_dict())
    return CachedModel(module.eval(), info, weights, True)
