"""Build the synthetic ground-truth corpus: scenes -> known neurons -> exemplars -> described rows.

For each annotated config `synth-<family>-<domain>`:
  1. a pool of `pool_size` scenes of the domain is rendered (`scenes.py`);
  2. the config's units are drawn from its family (`neurons.py`) and wrapped
     as a torch module whose layer `units` yields their activation maps;
  3. the exemplar engine (`milannotations.exemplars`) finds each unit's 15
     top scenes and masks exactly as it does for a real network;
  4. each unit gets three generated descriptions and its truth
     (`descriptions.py`), and rows are written by the one writer.
The unannotated configs `synth-net-<domain>` hold exemplars of the trained
synthetic backbone's own units (`backbone.py`); they are built only when
asked for, because they need the backbone.

Everything is seeded: the same (seed, units, pool_size, builder version) gives
byte-identical parquet files.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import sys
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch

from ..errors import MilanError
from ..schema import ANNOTATION_COUNT, K, unit_id
from ..writer import ConfigMeta, UnitRow
from .backbone import TRAIN_SCENES, StageTaps, load_synth_backbone
from .catalog import (BUILDER_VERSION, DEFAULT_UNITS, DOMAINS, FAMILIES, POOL_SIZE, SYNTH_CONFIGS,  # noqa: F401
                      SYNTH_NET_CONFIGS, cache_key, default_world)
from .descriptions import describe_unit
from .neurons import FAMILY_KINDS, KINDS, MAP_SIZE, STRIDE, SynthNeurons, kind_counts, neuron_input, sample_units
from .scenes import CONCEPTS, IMAGE_SIZE, render_scene


class ScenePool(torch.utils.data.Dataset):
    """The probe set of one domain: item i = (image uint8 3xHxW, neuron input) of scene i.

    Scenes are rendered once at construction and kept as compact arrays
    (600 scenes: 22 MB of pixels, 45 MB of neuron inputs), so both exemplar
    passes and every config of the domain reuse them.
    """

    def __init__(self, domain: str, size: int = POOL_SIZE, seed: int = 0, *, with_inputs: bool = True,
                 progress: bool = False):
        self.domain, self.size, self.seed = domain, int(size), int(seed)
        images = np.empty((self.size, 3, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
        inputs = None
        it: Iterable[int] = range(self.size)
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(it, desc=f"rendering synth-{domain}", unit="scene")
        for i in it:
            scene = render_scene(domain, i, seed)
            images[i] = scene.image
            if with_inputs:
                x = neuron_input(scene)
                if inputs is None:
                    inputs = np.empty((self.size, *x.shape), np.float16)
                inputs[i] = x
        self.images = torch.from_numpy(images)
        self.inputs = torch.from_numpy(inputs) if inputs is not None else None

    @classmethod
    def from_arrays(cls, domain: str, seed: int, images: np.ndarray, inputs: np.ndarray | None) -> "ScenePool":
        """A pool rendered elsewhere (in worker processes, `render_scenes`): the same items as rendering it here."""
        pool = cls.__new__(cls)
        pool.domain, pool.size, pool.seed = domain, int(images.shape[0]), int(seed)
        pool.images = torch.from_numpy(images)
        pool.inputs = torch.from_numpy(inputs) if inputs is not None else None
        return pool

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int):
        if self.inputs is None:
            return self.images[i]
        return self.images[i], self.inputs[i].float()


def render_scenes(domain: str, start: int, stop: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images (uint8) and neuron inputs (float16) of scenes start..stop-1, exactly as `ScenePool` stores them."""
    n = stop - start
    images = np.empty((n, 3, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    inputs = None
    for j, i in enumerate(range(start, stop)):
        scene = render_scene(domain, i, seed)
        images[j] = scene.image
        x = neuron_input(scene)
        if inputs is None:
            inputs = np.empty((n, *x.shape), np.float16)
        inputs[j] = x
    assert inputs is not None
    return images, inputs


def parse_config(config: str) -> tuple[str, str]:
    """'synth-deep-plain' -> ('deep', 'plain'); 'synth-net-plain' -> ('net', 'plain')."""
    parts = config.split("-")
    if len(parts) != 3 or parts[0] != "synth" or parts[2] not in DOMAINS or parts[1] not in (*FAMILIES, "net"):
        known = ", ".join((*SYNTH_CONFIGS, *SYNTH_NET_CONFIGS))
        raise MilanError(f"unknown synthetic config {config!r}; known: {known}")
    return parts[1], parts[2]


def _unit_seed(seed: int, config: str) -> int:
    return int.from_bytes(hashlib.sha256(f"synth-noise-mix:{seed}:{config}".encode()).digest()[:4], "little")


def _inventory() -> str:
    """The concept inventory in one line, by category, for the dataset card."""
    cats: dict[str, list[str]] = {}
    for c in CONCEPTS:
        cats.setdefault(c.category, []).append(c.name)
    parts = sorted({n.split(" of ")[0] for n in cats.get("part", [])})
    listed = [f"{cat} ({', '.join(names)})" for cat, names in cats.items() if cat != "part"]
    listed.append(f"part ({', '.join(parts)} of each shape)")
    return "; ".join(listed)


def _description(family: str, domain: str, units: int) -> str:
    counts = kind_counts(family, units)
    mix = ", ".join(f"{counts[k]} {k}" for k in KINDS)
    return (f"{units} synthetic units of family `{family}` ({mix}) on `{domain}` scenes "
            f"({IMAGE_SIZE} px). The 3 descriptions per unit are GENERATED from each unit's known formula "
            f"by a template generator (synonyms, word order, articles and plurals, one annotator often vaguer "
            f"or naming only half of a compound), not written by people. Concept inventory: {_inventory()}.")


def _provenance(seed: int, units: int, pool_size: int, extra: dict | None = None) -> dict:
    return {
        "source": "generated by milannotations.synth (procedural scenes, known neurons, generated descriptions)",
        "builder": f"milannotations.synth v{BUILDER_VERSION}",
        "seed": seed, "units": units, "pool_size": pool_size, "image_size": IMAGE_SIZE,
        "neuron_map": f"{MAP_SIZE}x{MAP_SIZE} (stride {STRIDE})",
        "concepts": [f"{c.category}:{c.name}" for c in CONCEPTS],
        "descriptions": ("3 per unit from a template generator with synonyms, word-order, article and "
                         "plural variation and simulated disagreement (one annotator vaguer or naming half "
                         "of a compound); see milannotations/synth/descriptions.py"),
        **(extra or {}),
    }


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """One intra-op thread during a build: bytes must not depend on the core count, and on a
    shared, busy machine one thread is faster than OpenMP workers waiting for each other."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def build_annotated_config(out: Path, config: str, pool: ScenePool, *, seed: int = 0,
                           units: int = DEFAULT_UNITS, progress: bool = True) -> Path:
    """Write one annotated config `synth-<family>-<domain>` under `out` from a rendered pool."""
    from ..exemplars import compute_exemplars, write_exemplar_config

    family, domain = parse_config(config)
    if family not in FAMILY_KINDS:
        raise MilanError(f"{config} is not an annotated synthetic config")
    specs = sample_units(family, domain, units, seed)
    model = SynthNeurons(specs, seed=_unit_seed(seed, config)).eval()
    layer = SynthNeurons.layer_name
    stats = compute_exemplars(model, [layer], pool, k=K, quantile=0.99, progress=progress)

    def annotate(layer_name: str, u: int) -> tuple[list[str], str]:
        uid = unit_id(config, layer_name, u)
        return describe_unit(specs[u], uid, seed, ANNOTATION_COUNT), specs[u].truth()

    meta = _annotated_meta(config, seed, units, len(pool))
    return write_exemplar_config(out, meta, model, [layer], pool, stats, annotate=annotate,
                                 progress=progress)


def _annotated_meta(config: str, seed: int, units: int, pool_size: int) -> ConfigMeta:
    family, domain = parse_config(config)
    return ConfigMeta(config=config, model=f"synth-{family}", dataset=f"synth-{domain}", synthetic=True,
                      description=_description(family, domain, units),
                      provenance=_provenance(seed, units, pool_size, {"kinds": kind_counts(family, units)}))


# ------------------------------------------------------------------------------ on every core
# With workers > 1 a config's units are cut into contiguous shards, each computed by a worker process
# over the whole pool: unit maps do not depend on which other units are evaluated with them
# (`UnitMaps.select`), and top-k and quantile sketches are per unit, so every shard's rows are the rows
# one process makes. The parent stores them in unit order through the one writer, so the parquet,
# splits and meta files are byte-identical to a one-process build (tests/test_parallel_build.py).
# Pools are rendered in scene shards the same way and handed to workers as .npy files.

_RENDER_SHARD = 100  # scenes per render task


def _render_task(task: tuple[str, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    domain, start, stop, seed = task
    return render_scenes(domain, start, stop, seed)


# Per worker process: the pool its last task read, and the PNG bytes of the pool images it encoded
# (a config shows ~7,500 exemplar images drawn from 600 scenes; each is encoded once per process).
_POOLS: dict[tuple[str, str], ScenePool] = {}
_PNG: dict[tuple[str, str], dict[int, bytes]] = {}


def _shard_task(task: tuple) -> dict:
    """One shard's rows of an annotated config, encoded, and what its provenance needs of the pass."""
    from ..exemplars import compute_exemplars
    from ..exemplars.masks import masks_from_maps
    from ..exemplars.write import exemplar_maps
    from ..writer import encode_row

    config, seed, units, start, stop, pool_files = task
    family, domain = parse_config(config)
    if pool_files not in _POOLS:  # every shard of every config of the domain reads the same pool
        _POOLS.clear()
        _PNG.clear()
        _POOLS[pool_files] = ScenePool.from_arrays(domain, seed, np.load(pool_files[0]), np.load(pool_files[1]))
    pool = _POOLS[pool_files]
    png = _PNG.setdefault(pool_files, {})
    specs = sample_units(family, domain, units, seed)
    full = SynthNeurons(specs, seed=_unit_seed(seed, config))
    model = SynthNeurons(specs[start:stop])
    model.units = full.units.select(range(start, stop))
    model.eval()
    layer = SynthNeurons.layer_name
    stats = compute_exemplars(model, [layer], pool, k=K, quantile=0.99, progress=False)
    maps, _images = exemplar_maps(model, [layer], pool, stats, normalize=stats.normalize, progress=False)
    meta = _annotated_meta(config, seed, units, len(pool))
    ids, thr = stats.top_ids[layer], stats.thresholds[layer]
    records = []
    for j in range(stop - start):
        u = start + j
        valid = [(slot, int(i)) for slot, i in enumerate(ids[j].tolist()) if i >= 0]
        imgs = torch.stack([pool.images[i] for _, i in valid])
        slots = [slot for slot, _ in valid]
        masks = masks_from_maps(maps[layer][j, slots], thr[j], tuple(imgs.shape[-2:]))
        uid = unit_id(config, layer, u)
        row = UnitRow(layer=layer, unit=u, images=imgs.numpy(), masks=masks.numpy(),
                      image_ids=[i for _, i in valid],
                      annotations=describe_unit(specs[u], uid, seed, ANNOTATION_COUNT), truth=specs[u].truth())
        records.append(encode_row(meta, row, threads=False, image_cache=png))
    return {"records": records, "k": stats.k, "quantile": stats.quantile, "images": stats.images,
            "skipped": stats.skipped, "error_max": float(stats.threshold_error[layer].max()),
            "extra": {k: v for k, v in stats.extra.items() if k != "world_size"}}


def _shard_provenance(meta: ConfigMeta, shards: list[dict]) -> ConfigMeta:
    """The provenance `write_exemplar_config` records, from the shards' passes (the same numbers)."""
    layer = SynthNeurons.layer_name
    first = shards[0]
    provenance = {
        **meta.provenance,
        "exemplars": {"layers": [layer], "k": first["k"], "quantile": first["quantile"],
                      "images": first["images"], "skipped_unreadable": first["skipped"],
                      "score": "spatial max", "threshold": "per-unit quantile of all spatial positions "
                      "(lattice-histogram sketch, see milannotations.exemplars.quantile)",
                      "threshold_error_bound_max": {layer: max(s["error_max"] for s in shards)},
                      "mask": "bilinear upsampling (align_corners=False) > threshold",
                      **first["extra"]},
    }
    return dataclasses.replace(meta, provenance=provenance)


#: Below this many (unit, scene) pairs per config, an automatic worker count builds in-process: starting
#: workers would cost more than they save (tests' tiny worlds).
_SMALL_WORK = 20_000


def _workers(workers: int | None, units: int, pool_size: int) -> int:
    """The processes a build uses: `workers`, or every core (one for a tiny world) when None."""
    from .. import parallel

    if workers is None and units * pool_size < _SMALL_WORK:
        return 1
    return parallel.resolve_workers(workers)


def _shards(units: int, workers: int) -> list[tuple[int, int]]:
    # One shard per worker: every shard pays a fixed cost (two passes over the pool's concept maps),
    # and units come in shuffled order (`sample_units`), so equal contiguous shards are balanced.
    n = min(max(1, workers), units)
    bounds = [round(i * units / n) for i in range(n + 1)]
    return [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


def _build_annotated_parallel(out: Path, configs: Sequence[str], *, seed: int, units: int, pool_size: int,
                              workers: int, progress: bool) -> None:
    """`build_annotated_config` of every config in `configs` on `workers` processes (1: in this one), same
    bytes. Pool images are PNG-encoded once per process, not once per exemplar slot."""
    import tempfile

    from .. import parallel
    from ..splits import assign_splits
    from ..writer import write_records

    domains = list(dict.fromkeys(parse_config(c)[1] for c in configs))
    pool = parallel.executor(workers, preload=(__name__,)) if workers > 1 else None

    def run(fn, tasks, window):
        if pool is None:  # one process: the same tasks in order, here
            return map(fn, tasks)
        return parallel.ordered(pool, fn, tasks, window=window)

    try:
        with tempfile.TemporaryDirectory(prefix=".synth-pools-", dir=out.parent if out.parent.exists() else None) as tmp:
            files: dict[str, tuple[str, str]] = {}
            render = [(d, a, min(a + _RENDER_SHARD, pool_size), seed) for d in domains
                      for a in range(0, pool_size, _RENDER_SHARD)]
            parts: dict[str, list] = {d: [] for d in domains}
            for (d, *_rest), part in zip(render, run(_render_task, render, len(render))):
                parts[d].append(part)
            for d in domains:
                files[d] = (str(Path(tmp) / f"{d}-images.npy"), str(Path(tmp) / f"{d}-inputs.npy"))
                np.save(files[d][0], np.concatenate([p[0] for p in parts[d]]))
                np.save(files[d][1], np.concatenate([p[1] for p in parts[d]]))
            parts.clear()
            tasks = [(c, seed, units, a, b, files[parse_config(c)[1]]) for c in configs for a, b in _shards(units, workers)]
            results = run(_shard_task, tasks, max(2 * workers, len(_shards(units, workers)) + workers))
            bar = None
            if progress:
                from tqdm.auto import tqdm

                bar = tqdm(total=len(configs) * units, desc="synthetic units", unit="unit")
            for config in configs:
                shards = [next(results) for _ in _shards(units, workers)]
                if bar is not None:
                    bar.update(units)
                meta = _shard_provenance(_annotated_meta(config, seed, units, pool_size), shards)
                layer = SynthNeurons.layer_name
                split_of = assign_splits(unit_id(config, layer, u) for u in range(units))
                write_records(out, meta, (r for s in shards for r in s["records"]), split_of, total=units)
            if bar is not None:
                bar.close()
    finally:
        _POOLS.clear()
        _PNG.clear()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def build_net_config(out: Path, config: str, *, seed: int = 0, pool_size: int = POOL_SIZE,
                     cache_dir: Path | None = None, steps: int | None = None, progress: bool = True,
                     channels: int | None = None, train_scenes: int | None = None) -> Path:
    """Write `synth-net-<domain>`: exemplars of the trained backbone's own units, no descriptions.

    `channels` keeps only the first n channels of each stage (default: all,
    16 + 32 + 64 + 128 = 240 units).
    """
    from ..exemplars import compute_exemplars, write_exemplar_config

    family, domain = parse_config(config)
    if family != "net":
        raise MilanError(f"{config} is not a synth-net config")
    backbone, spec = load_synth_backbone("cpu", cache_dir=cache_dir, steps=steps, progress=progress,
                                         train_scenes=train_scenes or TRAIN_SCENES)
    model = StageTaps(backbone, tuple(spec.layers), channels).eval()
    pool = ScenePool(domain, pool_size, seed, with_inputs=False, progress=progress)
    layers = list(spec.layers)
    normalize = (spec.mean, spec.std)
    stats = compute_exemplars(model, layers, pool, k=K, quantile=0.99, normalize=normalize, progress=progress)
    meta = ConfigMeta(config=config, model=spec.name, dataset=f"synth-{domain}", synthetic=False,
                      description=(f"exemplars of every unit of {spec.name} (layers {', '.join(layers)}) on "
                                   f"`{domain}` scenes; unannotated"),
                      provenance=_provenance(seed, sum(min(d, channels or d) for d in spec.feature_dims),
                                             pool_size,
                                             {"backbone": spec.to_dict(), "synthetic_world": True}))
    return write_exemplar_config(out, meta, model, layers, pool, stats, progress=progress)  # stats keep `normalize`


def build_synth(out: str | Path, seed: int = 0, units: int = DEFAULT_UNITS, configs: Sequence[str] | None = None,
                *, pool_size: int = POOL_SIZE, progress: bool = True, cache_dir: Path | None = None,
                backbone_steps: int | None = None, net_channels: int | None = None,
                backbone_scenes: int | None = None, workers: int | None = None) -> Path:
    """Build synthetic configs (default: the four annotated ones) into folder `out`; returns `out`.

    `configs` may also name `synth-net-plain` / `synth-net-cluttered`, which
    train (or load from `cache_dir`) the synthetic backbone first
    (`backbone_steps`, `backbone_scenes` per domain) and describe the first
    `net_channels` units of each stage (default all).
    `workers` processes build the annotated configs (default: every core this process may use);
    the bytes written are the same for any number. `synth-net-*` configs are built in this process.
    """
    out = Path(out)
    configs = list(SYNTH_CONFIGS if configs is None else configs)
    for c in configs:
        parse_config(c)
    if units < len(KINDS):
        raise MilanError(f"--units must be at least {len(KINDS)} (one unit per neuron kind), got {units}")
    if pool_size < K:
        raise MilanError(f"the scene pool must hold at least k={K} scenes, got {pool_size}")
    workers = _workers(workers, units, pool_size)
    with _one_thread():
        annotated = [c for c in configs if parse_config(c)[0] != "net"]
        if annotated:
            _build_annotated_parallel(out, annotated, seed=seed, units=units, pool_size=pool_size,
                                      workers=workers, progress=progress)
        for config in configs:
            if parse_config(config)[0] == "net":
                build_net_config(out, config, seed=seed, pool_size=pool_size, cache_dir=cache_dir,
                                 steps=backbone_steps, progress=progress, channels=net_channels,
                                 train_scenes=backbone_scenes)
    return out


def _built(folder: Path, config: str) -> bool:
    # write_config moves meta/<config>.json into place last, so its presence means the config is whole.
    return (folder / "meta" / f"{config}.json").is_file() and (folder / "data" / config).is_dir()


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock, so two processes never build the same cache at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            import fcntl

            fcntl.flock(fh, fcntl.LOCK_EX)
        except (ImportError, OSError):  # no flock (e.g. Windows): best effort
            pass
        yield


#: Seconds one annotated config of DEFAULT_UNITS units over a POOL_SIZE pool takes to build on one core,
#: and one domain's pool to render. Measured on a quiet 2-core machine (docs/synth.md, `bench_synth.py
#: --rows`): one config 21.2 s on one worker and 10.4 s on two, four configs 30.4 s on two (56 CPU-s).
_CONFIG_S, _POOL_S, _NET_S, _BACKBONE_S = 14.0, 4.5, 12.0, 210.0
_START_S = 2.0  # starting the worker processes (the forkserver imports torch once)


def _estimate(configs: Sequence[str], units: int, pool_size: int, workers: int = 1) -> str:
    """Roughly how long building `configs` takes here, from the measured per-config times
    (one core's work, shared by `workers` processes plus a few seconds to start them)."""
    annotated = [c for c in configs if c not in SYNTH_NET_CONFIGS]
    domains = {parse_config(c)[1] for c in annotated}
    scale = pool_size / POOL_SIZE
    s = len(annotated) * _CONFIG_S * units / DEFAULT_UNITS * scale + len(domains) * _POOL_S * scale
    if workers > 1 and annotated:
        s = s / workers + _START_S
    s += (len(configs) - len(annotated)) * _NET_S * scale
    text = f"about {s / 60:.0f} min" if s >= 90 else f"about {max(s, 1):.0f} s"
    if len(annotated) < len(configs):
        text += f" (plus about {_BACKBONE_S / 60:.0f} min to train the backbone if it is not cached)"
    return text


def ensure_synth(root: str | Path, seed: int = 0, units: int = DEFAULT_UNITS,
                 configs: Sequence[str] | None = None, *, progress: bool = True,
                 pool_size: int = POOL_SIZE, workers: int | None = None) -> Path:
    """The built synthetic corpus under `root` holding `configs` (default: the four annotated ones),
    building the missing ones once; returns its folder.

    Only the configs asked for are built, each whole (a config counts as built once its meta file is
    in place), and before building one line on stderr says which, where and roughly how long. The
    folder is keyed by seed, units, pool size and builder version (`cache_key`), so a changed
    generator never serves stale rows. `synth-net-*` configs need the trained backbone. `workers`
    processes build (default: every core); the bytes do not depend on it.
    """
    root = Path(root)
    n_workers = _workers(workers, units, pool_size)
    key = cache_key(seed, units, pool_size)
    folder = root / key
    wanted = list(dict.fromkeys(SYNTH_CONFIGS if configs is None else configs))
    for c in wanted:
        parse_config(c)
    if all(_built(folder, c) for c in wanted):
        return folder
    with _lock(root / f".{key}.lock"):
        missing = [c for c in wanted if not _built(folder, c)]
        if missing:
            print(f"milannotations: building synthetic {', '.join(missing)} ({units} units each) into {folder}, "
                  f"{_estimate(missing, units, pool_size, n_workers)}; once, then cached", file=sys.stderr, flush=True)
            build_synth(folder, seed=seed, units=units, configs=missing, progress=progress, pool_size=pool_size,
                        workers=workers)
            (folder / "BUILD.json").write_text(json.dumps(
                {"builder_version": BUILDER_VERSION, "seed": seed, "units": units, "pool_size": pool_size,
                 "configs": sorted(c for c in (*SYNTH_CONFIGS, *SYNTH_NET_CONFIGS) if _built(folder, c))},
                indent=1) + "\n")
    return folder


def world_of(config: str, root: str | Path | None = None) -> tuple[int, int] | None:
    """(seed, units) a built synthetic config was made with, from its metadata: what truth scoring
    needs to rebuild its units exactly. `root` is the corpus folder (default: the cached default world;
    it only reads, like `load()`).
    None when the config was not made by this builder (e.g. a hand-written synthetic-like corpus)."""
    folder = default_world() if root is None else Path(root)  # built by `prepare` before any split is read
    path = folder / "meta" / f"{config}.json"
    try:
        prov = json.loads(path.read_text()).get("provenance") or {}
        if not str(prov.get("builder", "")).startswith("milannotations.synth"):
            return None
        return int(prov["seed"]), int(prov["units"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise MilanError(f"{path}: cannot read the synthetic build's seed and unit count ({e})") from None
