"""`load()`: a config or a grouping of configs, read straight from the built parquet.

Sources, in order: a local built folder (`root=`), a Hub repo id
(`root="namespace/milannotations"`), or the cache (`milannotations.paths`). `load()` only reads:
building is an explicit step (`milannotations build` for the real corpus; `milannotations.prepare()`
or `milannotations synth` for the synthetic one), and a config that is not built is one `MilanError`
saying how to build it.

A local folder gives `milannotations.table.UnitTable`s (a `UnitTableDict` for `split=None`): the
first unit is one row-group read away on any cache, cold or warm. `as_dataset=True` (or
`.to_dataset()` on the result) gives `datasets` objects instead, as `load_dataset` would;
`streaming=True` gives `datasets.IterableDataset`s; a Hub repo id always goes through `datasets`.
Nothing heavy is imported here at module level: `import milannotations` imports this module.
"""
from __future__ import annotations

from pathlib import Path

from .errors import MilanError
from .paths import corpus_dir, default_root  # noqa: F401 - default_root: re-exported for older callers
from .schema import REAL_CONFIGS, REAL_GROUPINGS
from .synth.catalog import SYNTH_CONFIGS, SYNTH_GROUPINGS, SYNTH_NET_CONFIGS, default_world, is_synth
from .table import UnitTable, UnitTableDict, concatenate
from .verify import verified_footers


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
        folder = default_world()
        missing = [c for c in resolve_configs(name) if not (folder / "meta" / f"{c}.json").is_file()]
        if missing:
            names = ", ".join(missing)
            raise MilanError(f"synthetic {names} not built in the cache ({folder}); build with "
                             f"`milannotations synth --configs {' '.join(missing)}` or "
                             f"`milannotations.prepare({name!r})` (once, then cached), or pass root=")
        return folder
    return corpus_dir()


def _load_one(config: str, folder: Path | None, repo: str | None, split: str | None,
              streaming: bool, as_dataset: bool):
    if folder is None:
        import datasets

        return datasets.load_dataset(repo, config, split=split, streaming=streaming)
    data = folder / "data" / config
    if not data.is_dir():
        hint = ("run `milannotations download` then `milannotations build`" if config in REAL_CONFIGS
                else "run `milannotations synth`")
        raise MilanError(f"config {config!r} is not built under {folder}; {hint}")
    footers = verified_footers(folder, config)
    if split is not None and split not in footers:
        raise MilanError(f"config {config!r} has no {split!r} split under {folder}; splits: "
                         f"{', '.join(footers) or 'none'}")
    if streaming:
        return _stream({s: [str(p) for p, _ in f] for s, f in footers.items()}, split)
    tables = UnitTableDict({s: UnitTable.from_files(f) for s, f in footers.items()})
    if split is not None:
        return tables[split].to_dataset() if as_dataset else tables[split]
    return tables.to_dataset() if as_dataset else tables


def _rows(paths: list[str]):
    import pyarrow.parquet as pq

    for path in paths:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=64, use_threads=False):
            yield from batch.to_pylist()


def _stream(files: dict[str, list[str]], split: str | None):
    """Streaming datasets over local shards, read without Arrow's dataset scanner.

    `datasets`' own parquet streaming reads through an Arrow dataset scanner whose C++ worker threads
    belong to the suspended reader; a reader dropped mid-file (e.g. after `next(iter(ds))`) is freed
    at interpreter exit after Arrow's thread pool, and the process aborts ("terminate called without
    an active exception") or hangs. `datasets` works around it (apache/arrow#45214) only for pyarrow
    <= 24, and collecting garbage at exit narrows the window without closing it. A plain
    `ParquetFile.iter_batches(use_threads=False)` starts no threads, so nothing is left running.
    Each shard is one unit of work for `datasets`' sharding (`gen_kwargs` lists).
    """
    import datasets

    from .schema import FEATURES

    def one(s: str):
        return datasets.IterableDataset.from_generator(_rows, features=FEATURES, gen_kwargs={"paths": files[s]},
                                                       split=datasets.Split(s))
    if split is None:
        return datasets.IterableDatasetDict({s: one(s) for s in files})
    if split not in files:
        raise MilanError(f"no {split!r} split here; splits: {', '.join(files) or 'none'}")
    return one(split)


def load(name: str, split: str | None = None, root: str | Path | None = None, *,
         streaming: bool = False, as_dataset: bool = False):
    """Load a config or grouping; `split=None` gives both splits (a dict-like of train and test).

    Groupings concatenate their configs in the paper's order. From a local folder the result is a
    `UnitTable` (a `UnitTableDict` for `split=None`) reading the parquet directly; `as_dataset=True`
    returns `datasets.Dataset` / `DatasetDict` instead (copied into the `datasets` cache on first
    use), `streaming=True` `datasets.IterableDataset`s.
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
    parts = [_load_one(c, folder, repo, split, streaming, as_dataset) for c in configs]
    if len(parts) == 1:
        return parts[0]
    if isinstance(parts[0], (UnitTable, UnitTableDict)):
        if split is not None:
            return concatenate(parts)
        return UnitTableDict({s: concatenate([p[s] for p in parts]) for s in parts[0].keys()})
    import datasets

    if split is not None:
        return datasets.concatenate_datasets(parts)
    return datasets.DatasetDict({
        s: datasets.concatenate_datasets([p[s] for p in parts]) for s in parts[0].keys()
    })
