"""Original zips -> a hub-ready dataset folder (parquet + splits + card).

`build(zip_dir, out, configs)` converts each `<zip_dir>/<config>.zip` with the
original loader's semantics (`milannotations.original`): rows in order of
first appearance in annotations.csv, units with fewer than 3 descriptions
dropped, the first 3 kept, layer names as strings. Arrays are read
memory-mapped and streamed unit by unit into `writer.write_config`, and the
pages of each unit are released after it is encoded, so a 9 GB config
converts in bounded memory. Units are read and PNG-encoded by a pool of worker
processes (`workers`, default every core) a few tasks ahead of the one writer,
which stores them in order: the bytes do not depend on the number of workers.

Atomicity: the whole run is all-or-nothing. Every config is extracted and
written inside one staging folder beside `out`; only when all configs have
converted are they renamed into `out` (config by config, each a rename) and the
card regenerated. A failing run leaves `out` exactly as it was (and does not
create it).
"""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator, Mapping, Sequence

from . import convert, parallel
from .convert import _read_unit, _release_pages  # noqa: F401  (tests read units like the workers do)
from .card import write_card
from .download import MANIFEST, read_manifest, sha256_file
from .errors import MilanError
from .fsutil import replace_path, staging_dir
from .imagejoin import NOT_SHIPPED, ImageSource, open_sources
from .original import AnnotatedUnit, OriginalRelease, open_release, safe_extract
from .schema import ANNOTATION_COUNT, REAL_CONFIGS, RealConfig, unit_id
from .splits import assign_splits
from .writer import REAL_ENCODING, ConfigMeta, Encoding, write_records

log = logging.getLogger(__name__)

DINO_ERRATA = (
    "Released before the upstream fix of 2023-06-28 (neuron-descriptions PR #25): spatialize_vit_mlp dropped "
    "the last token instead of CLS, so every activation map is shifted one 8-pixel patch later in raster order "
    "(one cell right, wrapping at row ends; cell 0 holds the CLS activation, the last patch is lost), and top-k "
    "membership and thresholds may differ slightly. Annotators described these shifted masks, so they are "
    "shipped as released, not corrected."
)


def find_zips(zip_dir: Path, configs: Sequence[str] | None) -> dict[str, Path]:
    """The zips to convert: the named configs (each must exist) or every known config present."""
    zip_dir = Path(zip_dir)
    if not zip_dir.is_dir():
        raise MilanError(f"--zip-dir {zip_dir}: not a folder; run `milannotations download --output {zip_dir}`")
    if configs:
        unknown = [c for c in configs if c not in REAL_CONFIGS]
        if unknown:
            raise MilanError(f"unknown config(s) {', '.join(unknown)}; known: {', '.join(REAL_CONFIGS)}")
        missing = [c for c in configs if not (zip_dir / f"{c}.zip").is_file()]
        if missing:
            raise MilanError(f"{zip_dir}: missing {', '.join(f'{c}.zip' for c in missing)}; "
                             "run `milannotations download " + " ".join(missing) + f" --output {zip_dir}`")
        return {c: zip_dir / f"{c}.zip" for c in dict.fromkeys(configs)}
    found = {c: zip_dir / f"{c}.zip" for c in REAL_CONFIGS if (zip_dir / f"{c}.zip").is_file()}
    if not found:
        raise MilanError(f"{zip_dir}: no original zips ({', '.join(REAL_CONFIGS)}.zip); "
                         "run `milannotations download`")
    return found


def _image_plan(release: OriginalRelease, real: RealConfig, sources: Mapping[str, ImageSource]) -> tuple[str, ImageSource | None]:
    """Where each config's pixels come from, as (provenance note, source to join from or None)."""
    status = release.images_status()
    # BigGAN image ids index generated images, not a val folder: no local folder can stand in for them
    src = sources.get(real.image_source) if real.image_source else None
    if status == "all":
        return "shipped", None
    if src is not None:
        note = src.note if status == "none" else f"shipped for some layers, others {src.note}"
        return note, src
    if status == "none" and not real.ships_images:
        return NOT_SHIPPED, None
    layer = next(n for n, lf in release.layers.items() if lf.images is None)
    why = "this config ships images in every layer" if real.ships_images else "other layers ship images"
    fix = (f"pass --{real.image_source} DIR to join them from local files" if real.image_source else
           "its image ids are not those of a local folder, so the zip itself is incomplete; download it again")
    raise MilanError(f"{release.zip_label}: {layer}/images.npy is missing (layer {layer!r}) but {why}; {fix}")


#: Units per task of the worker pool: small enough to balance, large enough to keep IPC negligible.
_TASK_UNITS = 4
#: Below this many bytes of arrays a config converts in-process when the number of workers is automatic.
_SMALL_BYTES = 32 << 20


def _pixel_bytes(release: OriginalRelease) -> int:
    return sum(lf.masks.nbytes + (lf.images.nbytes if lf.images is not None else 0) for lf in release.layers.values())


def _records(encoder: convert.UnitEncoder, units: Sequence[AnnotatedUnit], workers: int) -> Iterator[dict]:
    """Every unit's record in order; with workers > 1 encoded by a process pool, at most a few tasks ahead."""
    tasks = [units[i:i + _TASK_UNITS] for i in range(0, len(units), _TASK_UNITS)]
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield from encoder(task)
        return
    encoder.threads = False  # the processes are the parallelism; threads would only contend
    pool = parallel.executor(min(workers, len(tasks)), convert.worker_init, (encoder,), preload=(convert.__name__,))
    try:
        for chunk in parallel.ordered(pool, convert.worker_encode, tasks, window=3 * workers):
            yield from chunk
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def build_config(zip_path: Path, out: Path, real: RealConfig, sources: Mapping[str, ImageSource] | None = None,
                 *, progress: bool = True, workers: int | None = 1, encoding: Encoding = REAL_ENCODING) -> Path:
    """Convert one original zip into `out` (written atomically by the writer); returns its data folder.

    `workers` processes read and PNG-encode units (None: every core, or one for a config so small that
    starting processes would cost more than it saves); the parquet bytes are the same for any number.
    `encoding` is the PNG / parquet setting (docs/corpus.md, "PNG settings").
    """
    auto = workers is None
    workers = parallel.resolve_workers(workers)
    zip_path, out = Path(zip_path), Path(out)
    sources = sources or {}
    # hashing and extracting both read the whole zip: hash on a thread (hashlib releases the GIL) meanwhile
    hasher = ThreadPoolExecutor(max_workers=1)
    hashed = hasher.submit(sha256_file, zip_path)
    try:
        with staging_dir(out, prefix=f".extract-{real.name}-") as tmp:
            safe_extract(zip_path, tmp)
            digest, size = hashed.result()
            return _convert(zip_path, tmp, out, real, sources, digest, size, progress=progress, workers=workers,
                            auto=auto, encoding=encoding)
    finally:
        hasher.shutdown(wait=True)


def _convert(zip_path: Path, tmp: Path, out: Path, real: RealConfig, sources: Mapping[str, ImageSource],
             digest: str, size: int, *, progress: bool, workers: int, auto: bool, encoding: Encoding) -> Path:
    entry = read_manifest(MANIFEST).get(real.name)
    if entry is None:
        checksum = "no manifest entry (upstream publishes none)"
    elif entry.get("sha256") == digest:
        checksum = "matches milannotations/checksums.json"
    else:
        checksum = "DIFFERS from milannotations/checksums.json (not the recorded release bytes)"
        log.warning("%s: sha256 %s differs from the manifest's %s; building it anyway and recording this in "
                    "its provenance", zip_path, digest, entry.get("sha256"))
    release = open_release(tmp, zip_path.name)
    if not release.units:
        raise MilanError(f"{zip_path.name}: annotations.csv keeps no unit (none has 3 descriptions)")
    note, src = _image_plan(release, real, sources)
    if src is not None:
        for u in release.units:
            lf = release.layers[u.layer]
            if lf.images is None:
                src.check_ids(lf.ids[u.unit].tolist(), f"{zip_path.name}: {u.layer}/ids.csv, unit {u.unit}")
    uids = [unit_id(real.name, u.layer, u.unit) for u in release.units]
    provenance = {
        "source": zip_path.name,
        "url": real.url,
        "zip_sha256": digest,
        "zip_bytes": size,
        "checksum": checksum,
        "images": note,
        "unannotated": False,
        "annotation_count": ANNOTATION_COUNT,
        "units_in_zip": sum(lf.n_units for lf in release.layers.values()),
        "units_kept": len(release.units),
        "row_order": "first appearance in annotations.csv (original loader)",
        "encoding": encoding.describe(),
    }
    if real.name == "dino_vits8-imagenet":
        provenance["errata"] = DINO_ERRATA
    meta = ConfigMeta(
        config=real.name, model=real.model, dataset=real.dataset,
        description=f"{real.model} trained on {real.dataset} ({real.task}); human descriptions from "
                    "MILANNOTATIONS (Hernandez et al., ICLR 2022)",
        provenance=provenance)
    if auto and _pixel_bytes(release) < _SMALL_BYTES:
        workers = 1
    encoder = convert.UnitEncoder(release, meta, src, encoding, threads=True)
    return write_records(out, meta, _records(encoder, release.units, workers), assign_splits(uids),
                         progress=progress, total=len(uids), encoding=encoding)


def build(zip_dir: str | Path, out: str | Path, configs: Sequence[str] | None = None, *,
          imagenet: str | Path | None = None, places365: str | Path | None = None,
          legacy_resize: bool = False, progress: bool = True, workers: int | None = None) -> list[str]:
    """Convert original zips into the dataset folder `out`, all or nothing; returns the configs built.

    Configs already in `out` that are not rebuilt are kept; rebuilt ones are replaced. `workers`
    processes encode units (default: every core this process may use, one for a tiny config); output
    bytes do not depend on it.
    """
    if workers is not None:
        parallel.resolve_workers(workers)  # refuse a bad count before any work
    out = Path(out)
    if out.name == "milannotations.py" or (out / "milannotations.py").exists():
        raise MilanError(f"{out}: contains milannotations.py, which would make datasets treat the folder as a script")
    zips = find_zips(Path(zip_dir), configs)
    sources = open_sources({"imagenet": imagenet, "places365": places365}, legacy_resize)
    with staging_dir(out.parent if out.parent != out else Path("."), prefix=f".build-{out.name}-") as stage:
        for config, path in zips.items():
            build_config(path, stage, REAL_CONFIGS[config], sources, progress=progress, workers=workers)
        for sub in ("data", "splits", "meta"):
            (out / sub).mkdir(parents=True, exist_ok=True)
        for config in zips:
            replace_path(stage / "data" / config, out / "data" / config)
            replace_path(stage / "splits" / f"{config}.json", out / "splits" / f"{config}.json")
            replace_path(stage / "meta" / f"{config}.json", out / "meta" / f"{config}.json")
    write_card(out)
    return list(zips)
