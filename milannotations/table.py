"""A split's unit records read straight from the built parquet: `UnitTable`, what `load()` returns.

Why not `datasets.Dataset`: on a fresh cache `datasets` first copies every parquet shard into its
Arrow cache (9.6 s for a 300-unit config, minutes for the real corpus) before the first row, and
importing it costs ~2 s. A built config is already row-grouped parquet (8 units a row group, see
`milannotations.writer`), so a unit is one row-group read away: the footers give the row counts,
a row group is read (only the asked-for columns) when one of its rows is asked for, and the
most recent row-group reads are kept for neighbours. Memory stays at a few row groups whatever the
config size. Files are read, not memory-mapped: mapped pages of a sequential scan stay resident
and would count in the process's RSS as the whole file.

`UnitTable` offers the part of the `datasets.Dataset` API the suite uses (`len`, rows, columns,
`select`, `remove_columns`, `add_column`, `column_names`, `features`; `concatenate` for
`datasets.concatenate_datasets`); `to_dataset()` gives a real `datasets.Dataset` of the same rows
for everything else. Rows decode PNG cells to PIL images as `datasets` does; `milannotations.UnitSet`
reads the raw cells instead and decodes only what a describer touches.
"""
from __future__ import annotations

import bisect
import io
import operator
import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

from .errors import MilanError
from .schema import COLUMNS, IMAGE_COLUMNS

if TYPE_CHECKING:
    import datasets
    import pyarrow.parquet as pq

_CACHED_GROUPS = 4  # row-group reads kept per table source (a group's text and masks, its images; and the previous group's)
_TEXT_CACHE_LIMIT = 64 << 20  # text columns kept once read (ids, annotations) up to about this many bytes


def _damaged(path: str, e: Exception) -> MilanError:
    return MilanError(f"{path}: damaged parquet file ({str(e).splitlines()[0] if str(e) else type(e).__name__}); "
                      "rebuild this config")


class _Shards:
    """The physical rows: parquet shards in order, their row groups, open readers and a small cache.

    Shared by every view (`select`, `remove_columns`, ...) of the same files; a lock serialises reads
    so views may be used from several threads.
    """

    def __init__(self, shards: Sequence[tuple[str, "pq.FileMetaData | None"]]) -> None:
        import pyarrow.parquet as pq

        self.paths: list[str] = []
        self._meta: list[pq.FileMetaData] = []
        for path, md in shards:
            if md is None:
                from .verify import footer

                md = footer(Path(path))
            self.paths.append(str(path))
            self._meta.append(md)
        # One entry per row group: (shard index, row group index); starts[g] is its first physical row.
        self.groups: list[tuple[int, int]] = []
        self.starts: list[int] = []
        n = 0
        for s, md in enumerate(self._meta):
            for g in range(md.num_row_groups):
                self.groups.append((s, g))
                self.starts.append(n)
                n += md.row_group(g).num_rows
        self.num_rows = n
        self.names: tuple[str, ...] = tuple(self._meta[0].schema.to_arrow_schema().names) if self._meta else COLUMNS
        self._reset()

    def _reset(self) -> None:
        self._files: dict[int, Any] = {}
        self._groups: OrderedDict[tuple[int, tuple[str, ...]], dict[str, list]] = OrderedDict()
        self._columns: dict[str, list] = {}
        self._lock = threading.RLock()

    def __getstate__(self) -> dict:
        return {"paths": self.paths, "_meta": self._meta, "groups": self.groups, "starts": self.starts,
                "num_rows": self.num_rows, "names": self.names}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._reset()

    def _file(self, s: int):
        import pyarrow.parquet as pq

        f = self._files.get(s)
        if f is None:
            f = self._files[s] = pq.ParquetFile(self.paths[s], metadata=self._meta[s], memory_map=False)
        return f

    def locate(self, row: int) -> tuple[int, int]:
        """(row group index, offset in it) of a physical row."""
        g = bisect.bisect_right(self.starts, row) - 1
        return g, row - self.starts[g]

    def group(self, g: int, columns: tuple[str, ...]) -> dict[str, list]:
        """Columns of row group `g` as Python lists (PNG cells as {"bytes", "path"} dicts)."""
        import pyarrow as pa

        key = (g, columns)
        with self._lock:
            hit = self._groups.get(key)
            if hit is not None:
                self._groups.move_to_end(key)
                return hit
            s, rg = self.groups[g]
            try:
                table = self._file(s).read_row_group(rg, columns=list(columns), use_threads=False)
            except (pa.ArrowException, OSError) as e:
                raise _damaged(self.paths[s], e) from None
            out = {c: table.column(c).to_pylist() for c in columns}
            del table
            self._groups[key] = out
            while len(self._groups) > _CACHED_GROUPS:
                self._groups.popitem(last=False)
            return out

    def column(self, name: str) -> list:
        """One column over all physical rows; text columns are kept once read (they are small)."""
        import pyarrow as pa

        with self._lock:
            hit = self._columns.get(name)
            if hit is not None:
                return hit
            out: list = []
            size = 0
            for s in range(len(self.paths)):
                try:
                    col = self._file(s).read(columns=[name], use_threads=False).column(0)
                except (pa.ArrowException, OSError) as e:
                    raise _damaged(self.paths[s], e) from None
                size += col.nbytes
                out.extend(col.to_pylist())
            if name not in IMAGE_COLUMNS and size <= _TEXT_CACHE_LIMIT:
                self._columns[name] = out
            return out


def _open_image(cell):
    """A PNG cell as a loaded PIL image, as `datasets.Image` decodes it."""
    from PIL import Image as PILImage

    if cell is None or isinstance(cell, PILImage.Image):
        return cell
    img = PILImage.open(io.BytesIO(cell["bytes"])) if cell.get("bytes") else PILImage.open(cell["path"])
    img.load()
    return img


def decode_row(raw: dict) -> dict:
    """A raw row (PNG cells as bytes) as `datasets` returns it (PNG cells as PIL images)."""
    return {k: ([_open_image(c) for c in v] if k in IMAGE_COLUMNS and v is not None else v) for k, v in raw.items()}


class UnitTable:
    """Rows of one or more built parquet shards, in order: a light, read-only `datasets.Dataset` look-alike.

    `len(t)`, `t[i]` (a row, images as PIL), `t["unit_id"]` (a column), `t[a:b]` (a dict of columns),
    iteration, `select`, `remove_columns`, `add_column`, `column_names`, `features`, `to_dataset()`.
    """

    def __init__(self, shards: _Shards, *, rows: list[int] | None = None, columns: Sequence[str] | None = None,
                 extra: dict[str, list] | None = None) -> None:
        self._src = shards
        self._rows = rows  # physical row of each visible row; None: all, in order
        self._columns = tuple(columns) if columns is not None else shards.names
        self._extra = dict(extra or {})  # added columns, aligned to the visible rows

    @classmethod
    def from_files(cls, files: Iterable[str | Path | tuple[str | Path, Any]]) -> "UnitTable":
        """A table over parquet files (paths, or (path, footer) pairs from `milannotations.verify`)."""
        shards = [(str(f[0]), f[1]) if isinstance(f, tuple) else (str(f), None) for f in files]
        return cls(_Shards(shards))

    # ------------------------------------------------------------------ the datasets.Dataset surface
    def __len__(self) -> int:
        return self._src.num_rows if self._rows is None else len(self._rows)

    @property
    def num_rows(self) -> int:
        return len(self)

    @property
    def column_names(self) -> list[str]:
        return [*self._columns, *self._extra]

    @property
    def files(self) -> list[str]:
        """The parquet files the rows come from, in order."""
        return list(self._src.paths)

    @property
    def features(self) -> "datasets.Features":
        from .schema import FEATURES
        import datasets

        out = {}
        for c in self.column_names:
            if c in FEATURES:
                out[c] = FEATURES[c]
            else:
                out[c] = datasets.Value("string")  # an added column (e.g. eval's "_split")
        return datasets.Features(out)

    def __repr__(self) -> str:
        return f"UnitTable({{features: {self.column_names}, num_rows: {len(self)}}})"

    def __getitem__(self, key):
        """A row for an int; a column for a name; a dict of columns for a slice or indices (as `datasets`)."""
        if isinstance(key, str):
            return self.column(key)
        try:
            i = operator.index(key)
        except TypeError:
            rows = range(*key.indices(len(self))) if isinstance(key, slice) else key
            picked = self.select(rows)
            return {c: picked.column(c) for c in picked.column_names}
        return decode_row(self.raw_row(i))

    def __iter__(self) -> Iterator[dict]:
        for raw in self.iter_raw():
            yield decode_row(raw)

    def column(self, name: str) -> list:
        """One column of the visible rows (images as PIL, as `datasets` returns them)."""
        if name in self._extra:
            return list(self._extra[name])
        if name not in self._columns:
            raise KeyError(f"column {name!r} not in this table; columns: {', '.join(self.column_names)}")
        if name in IMAGE_COLUMNS:
            return [[_open_image(c) for c in r[name]] for r in self.iter_raw((name,))]
        values = self._src.column(name)
        return list(values) if self._rows is None else [values[r] for r in self._rows]

    def select(self, indices: Iterable[int]) -> "UnitTable":
        idx = [int(i) for i in indices]
        n = len(self)
        for i in idx:
            if not 0 <= i < n:
                raise IndexError(f"index {i} out of range for {n} rows")
        rows = idx if self._rows is None else [self._rows[i] for i in idx]
        return UnitTable(self._src, rows=rows, columns=self._columns,
                         extra={k: [v[i] for i in idx] for k, v in self._extra.items()})

    def remove_columns(self, column_names: str | Sequence[str]) -> "UnitTable":
        names = [column_names] if isinstance(column_names, str) else list(column_names)
        missing = [c for c in names if c not in self.column_names]
        if missing:
            raise ValueError(f"columns {missing} not in the table; columns: {self.column_names}")
        return UnitTable(self._src, rows=self._rows, columns=[c for c in self._columns if c not in names],
                         extra={k: v for k, v in self._extra.items() if k not in names})

    def add_column(self, name: str, column: Sequence) -> "UnitTable":
        if name in self.column_names:
            raise ValueError(f"column {name!r} already in the table")
        values = list(column)
        if len(values) != len(self):
            raise ValueError(f"column {name!r} has {len(values)} values for {len(self)} rows")
        return UnitTable(self._src, rows=self._rows, columns=self._columns, extra={**self._extra, name: values})

    def to_dataset(self) -> "datasets.Dataset":
        """The same rows as a `datasets.Dataset` (copied into the `datasets` cache on first use)."""
        import datasets
        import pyarrow as pa
        from datasets.exceptions import DatasetGenerationError

        from .schema import FEATURES
        from .verify import find_unreadable

        whole = self._src.names == COLUMNS
        try:
            ds = datasets.load_dataset("parquet", data_files=self._src.paths, split="train",
                                       features=FEATURES if whole else None)
        except (DatasetGenerationError, pa.ArrowException) as e:
            bad = find_unreadable(self._src.paths)
            if bad is None:
                raise
            raise _damaged(str(bad[0]), bad[1]) from e
        if self._rows is not None:
            ds = ds.select(self._rows)
        gone = [c for c in ds.column_names if c not in self._columns]
        if gone:
            ds = ds.remove_columns(gone)
        for k, v in self._extra.items():
            ds = ds.add_column(k, v)
        return ds

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        raise AttributeError(f"UnitTable has no attribute {name!r}; it reads the built parquet directly and offers "
                             "len, rows, columns, select, remove_columns and add_column. For the rest of the "
                             "datasets API use .to_dataset()")

    # --------------------------------------------------------------------------- raw rows, fast
    def _read_columns(self, columns: Sequence[str] | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
        wanted = self.column_names if columns is None else list(columns)
        unknown = [c for c in wanted if c not in self.column_names]
        if unknown:
            raise KeyError(f"columns {unknown} not in this table; columns: {', '.join(self.column_names)}")
        stored = tuple(c for c in self._columns if c in wanted)
        added = tuple(c for c in self._extra if c in wanted)
        return stored, added

    def raw_row(self, i: int, columns: Sequence[str] | None = None) -> dict:
        """Row `i` with PNG cells left as {"bytes", "path"} dicts; only `columns` (default: all) are read."""
        stored, added = self._read_columns(columns)
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {n} rows")
        i %= n
        row = self._raw_physical(i if self._rows is None else self._rows[i], stored)
        for c in added:
            row[c] = self._extra[c][i]
        return row

    def _raw_physical(self, row: int, stored: tuple[str, ...]) -> dict:
        if not stored:
            return {}
        g, off = self._src.locate(row)
        cols = self._src.group(g, stored)
        return {c: cols[c][off] for c in stored}

    def iter_raw(self, columns: Sequence[str] | None = None) -> Iterator[dict]:
        """Rows in order with PNG cells as bytes; each row group is read once for a run of its rows."""
        stored, added = self._read_columns(columns)
        rows = range(self._src.num_rows) if self._rows is None else self._rows
        for i, r in enumerate(rows):
            row = self._raw_physical(r, stored)
            for c in added:
                row[c] = self._extra[c][i]
            yield row


class UnitTableDict(dict):
    """Splits of a config (or grouping) as `UnitTable`s, like a `datasets.DatasetDict`."""

    @property
    def column_names(self) -> dict[str, list[str]]:
        return {k: v.column_names for k, v in self.items()}

    @property
    def num_rows(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.items()}

    def to_dataset(self) -> "datasets.DatasetDict":
        import datasets

        return datasets.DatasetDict({k: v.to_dataset() for k, v in self.items()})

    def __repr__(self) -> str:
        return "UnitTableDict({" + ", ".join(f"{k}: {v!r}" for k, v in self.items()) + "})"


def concatenate(parts: Sequence[Any]):
    """Tables (or `datasets.Dataset`s) one after another, like `datasets.concatenate_datasets`.

    `UnitTable`s stay `UnitTable`s (nothing is read); any `datasets.Dataset` among them turns the
    result into a `datasets.Dataset`.
    """
    parts = list(parts)
    if not parts:
        raise ValueError("nothing to concatenate")
    if not all(isinstance(p, UnitTable) for p in parts):
        import datasets

        return datasets.concatenate_datasets([p.to_dataset() if isinstance(p, UnitTable) else p for p in parts])
    if len(parts) == 1:
        return parts[0]
    names = parts[0].column_names
    for p in parts[1:]:
        if sorted(p.column_names) != sorted(names):
            raise ValueError(f"cannot concatenate tables with columns {names} and {p.column_names}")
    stored = [c for c in names if c in parts[0]._columns]
    shards: list[tuple[str, Any]] = []
    rows: list[int] = []
    base = 0
    identity = True
    for p in parts:
        shards.extend(zip(p._src.paths, p._src._meta))
        if p._rows is None:
            rows.extend(range(base, base + p._src.num_rows))
        else:
            identity = False
            rows.extend(base + r for r in p._rows)
        base += p._src.num_rows
    src = _Shards(shards)
    extra = {k: [v for p in parts for v in p._extra[k]] for k in names if k not in stored}
    return UnitTable(src, rows=None if identity else rows, columns=stored, extra=extra)
