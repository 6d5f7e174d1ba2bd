"""`load()`: a config or a grouping of configs as `datasets` objects.

Sources, in order: a local built folder (`root=`), a Hub repo id
(`root="namespace/milannotations"`), or the cache (`~/.cache/milannotations`),
where synthetic configs are built on first use.
"""
from __future__ import annotations

import os
from pathlib import Path

import datasets

from .errors import MilanError
from .schema import FEATURES, REAL_CONFIGS, REAL_GROUPINGS
from .synth.catalog import SYNTH_CONFIGS, SYNTH_GROUPINGS, SYNTH_NET_CONFIGS, is_synth


def default_root() -> Path:
    """Where built corpora live unless told otherwise (XDG cache convention)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "milannotations"


def resolve_configs(name: str) -> tuple[str, ...]:
    """A config name or a grouping of the paper (or of the synthetic world) -> its configs, in order."""
    if name in REAL_CONFIGS or name in SYNTH_CONFIGS or name in SYNTH_NET_CONFIGS:
        return (name,)
    if name in REAL_GROUPINGS:
        return REAL_GROUPINGS[name]
    if name in SYNTH_GROUPINGS:
        return SYNTH_GROUPINGS[name]
    known = sorted({*REAL_CONFIGS, *REAL_GROUPINGS, *SYNTH_CONFIGS, *SYNTH_GROUPINGS, *SYNTH_NET_CONFIGS})
    raise MilanError(f"unknown config or grouping {name!r}; known: {', '.join(known)}")


def expand_configs(names) -> set[str]:
    """Configs named by a list of config or grouping names; unknown names stand for themselves.

    Used wherever `DescriberMeta.trained_on` meets a split's test configs (the held-out flag).
    """
    out: set[str] = set()
    for n in names:
        try:
            out.update(resolve_configs(n))
        except MilanError:
            out.add(n)
    return out


def _local_root(name: str, root: str | Path | None) -> Path | None:
    if root is not None:
        p = Path(root)
        if p.exists():
            return p
        if "/" in str(root) and not str(root).startswith((".", "/")):
            return None  # a Hub repo id
        raise MilanError(f"corpus folder {root} does not exist; build it with `milannotations build` "
                         "or `milannotations synth`")
    if is_synth(name):
        from .synth.build import ensure_synth

        return ensure_synth(default_root() / "synth", configs=resolve_configs(name))  # synth-net-* on demand
    return default_root() / "corpus"


def _load_one(config: str, folder: Path | None, repo: str | None, split: str | None,
              streaming: bool):
    if folder is None:
        return datasets.load_dataset(repo, config, split=split, streaming=streaming)
    data = folder / "data" / config
    if not data.is_dir():
        hint = ("run `milannotations download` then `milannotations build`" if config in REAL_CONFIGS
                else "run `milannotations synth`")
        raise MilanError(f"config {config!r} is not built under {folder}; {hint}")
    files = {s: sorted(str(p) for p in data.glob(f"{s}-*.parquet")) for s in ("train", "test")}
    files = {s: f for s, f in files.items() if f}
    return datasets.load_dataset("parquet", data_files=files, features=FEATURES, split=split,
                                 streaming=streaming)


def load(name: str, split: str | None = None, root: str | Path | None = None, *,
         streaming: bool = False):
    """Load a config or grouping; `split=None` gives a DatasetDict of train and test.

    Groupings concatenate their configs in the paper's order.
    """
    try:
        configs = resolve_configs(name)
    except MilanError:
        # A user's own config (e.g. written by `milannotations exemplars`) in a local folder.
        if root is None or not (Path(root) / "data" / name).is_dir():
            raise
        configs = (name,)
    folder = _local_root(name, root)
    repo = None if folder is not None else str(root)
    parts = [_load_one(c, folder, repo, split, streaming) for c in configs]
    if len(parts) == 1:
        return parts[0]
    if split is not None:
        return datasets.concatenate_datasets(parts)
    return datasets.DatasetDict({
        s: datasets.concatenate_datasets([p[s] for p in parts]) for s in parts[0].keys()
    })
