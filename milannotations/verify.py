"""Checking a built config's parquet files before anything reads them.

A truncated or overwritten shard otherwise surfaces deep inside `datasets`
as chained `DatasetGenerationError` tracebacks that do not say which file is
bad. Opening each file's footer is cheap (metadata only) and catches
truncation, foreign files and lost row groups; the row counts in the footers
are checked against `meta/<config>.json` where the config has one.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import MilanError

if TYPE_CHECKING:
    import pyarrow.parquet as pq

# pyarrow is imported inside the functions: `import milannotations` reaches this module through
# `load`, and pyarrow.parquet alone costs ~0.4 s to import.

SPLITS = ("train", "test")


def split_files(folder: Path, config: str) -> dict[str, list[Path]]:
    """The parquet shards of each split of `config` under a built folder, sorted; splits without shards left out."""
    data = Path(folder) / "data" / config
    files = {s: sorted(data.glob(f"{s}-*.parquet")) for s in SPLITS}
    return {s: f for s, f in files.items() if f}


def footer(path: Path) -> pq.FileMetaData:
    """The parquet footer of `path` (row groups, row counts, schema), or a one-line MilanError naming it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_metadata(path)
    except (pa.ArrowException, OSError) as e:
        raise MilanError(f"{path}: not a readable parquet file ({str(e).splitlines()[0]}); "
                         "rebuild this config") from None


def verify_config(folder: Path, config: str) -> dict[str, list[Path]]:
    """Each split's shards of `config`, after checking every footer and the row counts its meta records.

    Raises a one-line MilanError naming the first bad file.
    """
    return {s: [p for p, _ in shards] for s, shards in verified_footers(folder, config).items()}


def verified_footers(folder: Path, config: str) -> dict[str, list[tuple[Path, pq.FileMetaData]]]:
    """`verify_config` with each shard's footer, so a reader opens every footer once."""
    folder = Path(folder)
    footers = {s: [(p, footer(p)) for p in paths] for s, paths in split_files(folder, config).items()}
    files = {s: [p for p, _ in shards] for s, shards in footers.items()}
    counts = {s: sum(md.num_rows for _, md in shards) for s, shards in footers.items()}
    meta_path = folder / "meta" / f"{config}.json"
    if meta_path.is_file():
        try:
            expected = json.loads(meta_path.read_text()).get("counts") or {}
        except (ValueError, OSError, AttributeError) as e:
            raise MilanError(f"{meta_path}: not a readable meta record ({e})") from None
        for s in SPLITS:
            if s in expected and int(expected[s]) != counts.get(s, 0):
                where = ", ".join(str(p) for p in files.get(s, [])) or f"{folder / 'data' / config}/{s}-*.parquet"
                raise MilanError(f"{where}: {counts.get(s, 0)} {s} units, but {meta_path} records "
                                 f"{expected[s]}; rebuild this config")
    return footers


def find_unreadable(paths) -> tuple[Path, Exception] | None:
    """The first of `paths` that cannot be decoded in full, with the error, or None (used after a read failed)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for p in paths:
        try:
            pf = pq.ParquetFile(p)
            for i in range(pf.num_row_groups):
                pf.read_row_group(i)
        except (pa.ArrowException, OSError) as e:
            return Path(p), e
    return None
