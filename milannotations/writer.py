"""The one writer of unit records: real corpus, synthetic corpus and user exemplars.

A config is written as parquet shards `data/<config>/<split>-NNNNN-of-NNNNN.parquet`
plus `splits/<config>.json` (the published unit ids of each split) and
`meta/<config>.json` (provenance, counts), then the dataset card is
regenerated. Everything is built in a staging folder beside the output and
renamed into place, so a failed run leaves nothing half-written.
Rows are streamed in small row groups: a config is never held in memory.
"""
from __future__ import annotations

import io
import json
import os
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image as PILImage

from . import schema
from .errors import MilanError
from .fsutil import replace_path, staging_dir
from .schema import unit_id as make_unit_id
from .version import __version__

SPLITS = ("train", "test")
_SHARD_BYTES = 1 << 30
_ROW_GROUP_UNITS = 8
_HF_METADATA: bytes | None = None  # the features as `datasets` reads them, made on first write
# PNG encoding dominates conversion time and PIL releases the GIL while it compresses,
# so a unit's images are encoded in parallel; output bytes do not depend on the pool.
# Started on first use, not at import: importing the package starts no thread.
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        with _POOL_LOCK:
            if _POOL is None:
                _POOL = ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1)))
    return _POOL


@dataclass(frozen=True)
class Encoding:
    """How pixels become bytes: PNG deflate settings and the parquet codec of the image/mask columns.

    Any setting decodes to the same pixels; they trade size against encode time. The default is what
    every config was written with before issue 18 and stays the default (the synthetic corpus and user
    exemplars keep their bytes); `REAL_ENCODING` is the one chosen by measurement for the real corpus
    (docs/corpus.md, "PNG settings").
    """

    png_level: int = 6
    png_strategy: int = zlib.Z_DEFAULT_STRATEGY  # zlib strategy; zlib.Z_RLE (3) is far faster on photos
    payload_compression: str = "ZSTD"  # parquet codec of the PNG byte columns; text columns are always ZSTD

    def describe(self) -> str:
        names = {zlib.Z_DEFAULT_STRATEGY: "default", zlib.Z_FILTERED: "filtered", zlib.Z_HUFFMAN_ONLY: "huffman-only",
                 zlib.Z_RLE: "RLE", zlib.Z_FIXED: "fixed"}
        return (f"PNG (Pillow, adaptive filter) zlib level {self.png_level}, strategy "
                f"{names.get(self.png_strategy, self.png_strategy)}; parquet image/mask columns "
                f"{self.payload_compression}")


DEFAULT_ENCODING = Encoding()
#: Chosen for the real corpus by measurement (docs/corpus.md): on photographs Z_RLE at level 1 is within
#: 1% of level 6's size at about a third of its time; PNG payloads gain nothing from a second codec.
REAL_ENCODING = Encoding(png_level=1, png_strategy=zlib.Z_RLE, payload_compression="NONE")
_PAYLOAD_COLUMNS = ("images", "masks")


@dataclass
class UnitRow:
    """One unit before encoding. Arrays are uint8 / bool numpy, highest activation first."""

    layer: str
    unit: int
    images: np.ndarray | None  # k x 3 x H x W uint8, or None where pixels may not ship
    masks: np.ndarray  # k x 1 x H x W (or k x H x W), bool or {0,1} / {0,255} uint8
    image_ids: Iterable[int]
    annotations: Iterable[str] = ()
    truth: str | None = None


@dataclass
class ConfigMeta:
    """What the card says about a config."""

    config: str
    model: str
    dataset: str
    synthetic: bool = False
    description: str = ""
    provenance: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)
    builder_version: str = __version__


def encode_png(array: np.ndarray, encoding: Encoding = DEFAULT_ENCODING) -> bytes:
    """PNG bytes of an H x W (mode L) or 3 x H x W (RGB) uint8 array, deterministically."""
    arr = np.asarray(array)
    if arr.ndim == 3 and arr.shape[0] == 3:
        img = PILImage.fromarray(np.ascontiguousarray(arr.transpose(1, 2, 0)), mode="RGB")
    elif arr.ndim == 2:
        img = PILImage.fromarray(np.ascontiguousarray(arr), mode="L")
    else:
        raise ValueError(f"cannot encode array of shape {arr.shape} as PNG")
    buf = io.BytesIO()
    if encoding.png_strategy == zlib.Z_DEFAULT_STRATEGY:
        img.save(buf, format="PNG", compress_level=encoding.png_level)  # exactly the bytes written before
    else:
        img.save(buf, format="PNG", compress_level=encoding.png_level, compress_type=encoding.png_strategy)
    return buf.getvalue()


def _mask_png(mask: np.ndarray, encoding: Encoding = DEFAULT_ENCODING) -> bytes:
    m = np.asarray(mask)
    if m.ndim == 3:
        m = m[0]
    return encode_png(np.where(m > 0, 255, 0).astype(np.uint8), encoding)


def _hf_metadata() -> bytes:
    # FEATURES (and with it `datasets`) only when writing: worker processes that only encode rows
    # (`encode_row`) import the writer without it.
    global _HF_METADATA
    if _HF_METADATA is None:
        _HF_METADATA = json.dumps({"info": {"features": schema.FEATURES.to_dict()}}).encode()
    return _HF_METADATA


def _leaf_paths(name: str, typ: pa.DataType) -> list[str]:
    """Parquet column paths under an arrow field (`images.list.element.bytes`): per-column codecs need them."""
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        return _leaf_paths(f"{name}.list.element", typ.value_type)
    if pa.types.is_struct(typ):
        return [p for i in range(typ.num_fields) for p in _leaf_paths(f"{name}.{typ.field(i).name}", typ.field(i).type)]
    return [name]


class _SplitWriter:
    """Parquet shards of one split, rolled over at a byte budget."""

    def __init__(self, folder: Path, split: str, encoding: Encoding = DEFAULT_ENCODING) -> None:
        self.folder, self.split, self.encoding = folder, split, encoding
        self.schema = schema.FEATURES.arrow_schema.with_metadata({b"huggingface": _hf_metadata()})
        self.paths: list[Path] = []
        self.writer: pq.ParquetWriter | None = None
        self.shard_bytes = 0
        self.rows = 0

    def _open(self) -> None:
        path = self.folder / f"{self.split}-{len(self.paths):05d}.parquet"
        self.paths.append(path)
        # PNG payloads barely compress further; ZSTD still shrinks the text columns.
        compression: str | dict = "ZSTD"
        if self.encoding.payload_compression != "ZSTD":
            compression = {path: (self.encoding.payload_compression if path.split(".")[0] in _PAYLOAD_COLUMNS
                                  else "ZSTD") for f in self.schema for path in _leaf_paths(f.name, f.type)}
        self.writer = pq.ParquetWriter(path, self.schema, compression=compression, use_dictionary=False,
                                       write_statistics=False)
        self.shard_bytes = 0

    def write(self, rows: list[dict], nbytes: int) -> None:
        if self.writer is None or self.shard_bytes > _SHARD_BYTES:
            self.close_shard()
            self._open()
        table = pa.Table.from_pylist(rows, schema=self.schema)
        self.writer.write_table(table)
        self.shard_bytes += nbytes
        self.rows += len(rows)

    def close_shard(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def finish(self) -> list[str]:
        if self.writer is None and not self.paths:
            self._open()  # an empty split still gets a (valid, empty) shard
        self.close_shard()
        n = len(self.paths)
        names = []
        for i, p in enumerate(self.paths):
            final = p.with_name(f"{self.split}-{i:05d}-of-{n:05d}.parquet")
            p.rename(final)
            names.append(final.name)
        return names


def write_config(out: Path, meta: ConfigMeta, units: Iterable[UnitRow],
                 split_of: Mapping[str, str], *, progress: bool = False,
                 total: int | None = None, encoding: Encoding = DEFAULT_ENCODING) -> Path:
    """Write one config under `out`, atomically, and refresh the dataset card.

    `split_of` maps every unit id (`<config>/<layer>/<unit>`) to "train" or
    "test" (see `milannotations.splits.assign_splits`); rows arrive in the
    order they should be stored.
    """
    def records() -> Iterator[dict]:
        for row in units:
            uid = make_unit_id(meta.config, row.layer, row.unit)
            if split_of.get(uid) not in SPLITS:
                raise MilanError(f"{meta.config}: unit {uid} has no split assignment")
            yield encode_row(meta, row, encoding)

    return write_records(out, meta, records(), split_of, progress=progress, total=total, encoding=encoding)


def write_records(out: Path, meta: ConfigMeta, records: Iterable[dict], split_of: Mapping[str, str], *,
                  progress: bool = False, total: int | None = None,
                  encoding: Encoding = DEFAULT_ENCODING) -> Path:
    """`write_config` for rows already encoded by `encode_row` (e.g. in worker processes), in storage order.

    Bytes depend only on the records and their order, never on who encoded them, so a build with
    any number of workers writes the same files as one process.
    """
    out = Path(out)
    config = meta.config
    with staging_dir(out) as stage:
        data_dir = stage / "data" / config
        data_dir.mkdir(parents=True)
        writers = {s: _SplitWriter(data_dir, s, encoding) for s in SPLITS}
        pending: dict[str, list[dict]] = {s: [] for s in SPLITS}
        pending_bytes = {s: 0 for s in SPLITS}
        seen: dict[str, list[str]] = {s: [] for s in SPLITS}
        iterator = records
        if progress:
            from tqdm.auto import tqdm

            iterator = tqdm(records, total=total, desc=f"writing {config}", unit="unit")
        for record in iterator:
            uid = record["unit_id"]
            split = split_of.get(uid)
            if split not in SPLITS:
                raise MilanError(f"{config}: unit {uid} has no split assignment")
            size = sum(len(x["bytes"]) for x in record["images"]) + sum(len(x["bytes"]) for x in record["masks"])
            pending[split].append(record)
            pending_bytes[split] += size
            seen[split].append(uid)
            if len(pending[split]) >= _ROW_GROUP_UNITS:
                writers[split].write(pending[split], pending_bytes[split])
                pending[split], pending_bytes[split] = [], 0
        for s in SPLITS:
            if pending[s]:
                writers[s].write(pending[s], pending_bytes[s])
        files = {s: writers[s].finish() for s in SPLITS}
        all_ids = seen["train"] + seen["test"]
        if len(set(all_ids)) != len(all_ids):
            dup = next(u for u in all_ids if all_ids.count(u) > 1)
            raise MilanError(f"{config}: unit {dup} was written twice")
        meta.counts = {s: len(seen[s]) for s in SPLITS}
        splits_doc = {"config": config, "seed_policy": "sha256 rank, see milannotations.splits",
                      **{s: seen[s] for s in SPLITS}}
        (stage / "splits").mkdir()
        (stage / "splits" / f"{config}.json").write_text(json.dumps(splits_doc, indent=1) + "\n")
        (stage / "meta").mkdir()
        (stage / "meta" / f"{config}.json").write_text(
            json.dumps({**asdict(meta), "files": files}, indent=1, sort_keys=True) + "\n")
        for sub in ("data", "splits", "meta"):
            (out / sub).mkdir(parents=True, exist_ok=True)
        replace_path(stage / "data" / config, out / "data" / config)
        replace_path(stage / "splits" / f"{config}.json", out / "splits" / f"{config}.json")
        replace_path(stage / "meta" / f"{config}.json", out / "meta" / f"{config}.json")
    from .card import write_card  # datasets' Features: not needed to encode rows

    write_card(out)
    return out / "data" / config


def encode_row(meta: ConfigMeta, row: UnitRow, encoding: Encoding = DEFAULT_ENCODING, *,
               threads: bool = True, image_cache: dict | None = None) -> dict:
    """One unit's parquet record: PNG-encoded images and masks plus its fields, checked.

    `threads` encodes a unit's images on the writer's thread pool (PIL releases the GIL); worker
    processes pass False, since they are the parallelism already. The bytes are the same either way.
    `image_cache` (image id -> PNG bytes) skips re-encoding an image another unit already showed; only
    for callers where an id always names the same pixels (the synthetic pool), which gives the same bytes.
    """
    config = meta.config
    uid = make_unit_id(config, row.layer, row.unit)
    mapper = _pool().map if threads else map
    masks = np.asarray(row.masks)
    ids = [int(i) for i in row.image_ids]
    if masks.ndim not in (3, 4):
        raise MilanError(f"{uid}: masks must be k x 1 x H x W, got shape {masks.shape}")
    if row.images is not None:
        images = np.asarray(row.images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise MilanError(f"{uid}: images must be uint8 k x 3 x H x W, got {images.dtype} {images.shape}")
        if images.shape[0] != masks.shape[0] or images.shape[-2:] != masks.shape[-2:]:
            raise MilanError(f"{uid}: images {images.shape} and masks {masks.shape} disagree")
        if image_cache is None:
            blobs = list(mapper(encode_png, images, [encoding] * len(images)))
        else:
            blobs = []
            for i, image in zip(ids, images):
                if i not in image_cache:
                    image_cache[i] = encode_png(image, encoding)
                blobs.append(image_cache[i])
        image_cells = [{"bytes": b, "path": None} for b in blobs]
    else:
        image_cells = []
    if len(ids) != masks.shape[0]:
        raise MilanError(f"{uid}: {len(ids)} image ids for {masks.shape[0]} masks")
    return {
        "unit_id": uid,
        "config": config,
        "model": meta.model,
        "dataset": meta.dataset,
        "layer": str(row.layer),
        "unit": int(row.unit),
        "images": image_cells,
        "masks": [{"bytes": b, "path": None} for b in mapper(_mask_png, masks, [encoding] * len(masks))],
        "image_ids": ids,
        "annotations": [str(a) for a in row.annotations],
        "truth": row.truth,
    }
