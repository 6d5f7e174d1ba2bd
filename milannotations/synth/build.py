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
import hashlib
import json
import sys
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch

from ..errors import MilanError
from ..schema import ANNOTATION_COUNT, K, unit_id
from ..writer import ConfigMeta
from .backbone import TRAIN_SCENES, StageTaps, load_backbone
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

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int):
        if self.inputs is None:
            return self.images[i]
        return self.images[i], self.inputs[i].float()


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

    meta = ConfigMeta(config=config, model=f"synth-{family}", dataset=f"synth-{domain}", synthetic=True,
                      description=_description(family, domain, units),
                      provenance=_provenance(seed, units, len(pool), {"kinds": kind_counts(family, units)}))
    return write_exemplar_config(out, meta, model, [layer], pool, stats, annotate=annotate,
                                 progress=progress)


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
    backbone, spec = load_backbone("cpu", cache_dir=cache_dir, steps=steps, progress=progress,
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
                backbone_scenes: int | None = None) -> Path:
    """Build synthetic configs (default: the four annotated ones) into folder `out`; returns `out`.

    `configs` may also name `synth-net-plain` / `synth-net-cluttered`, which
    train (or load from `cache_dir`) the synthetic backbone first
    (`backbone_steps`, `backbone_scenes` per domain) and describe the first
    `net_channels` units of each stage (default all).
    """
    out = Path(out)
    configs = list(SYNTH_CONFIGS if configs is None else configs)
    for c in configs:
        parse_config(c)
    if units < len(KINDS):
        raise MilanError(f"--units must be at least {len(KINDS)} (one unit per neuron kind), got {units}")
    if pool_size < K:
        raise MilanError(f"the scene pool must hold at least k={K} scenes, got {pool_size}")
    with _one_thread():
        pools: dict[str, ScenePool] = {}
        for config in configs:
            family, domain = parse_config(config)
            if family == "net":
                build_net_config(out, config, seed=seed, pool_size=pool_size, cache_dir=cache_dir,
                                 steps=backbone_steps, progress=progress, channels=net_channels,
                                 train_scenes=backbone_scenes)
                continue
            if domain not in pools:
                pools[domain] = ScenePool(domain, pool_size, seed, progress=progress)
            build_annotated_config(out, config, pools[domain], seed=seed, units=units, progress=progress)
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
#: and one domain's pool to render (measured: 34-47 s and 4-4.4 s on a shared 2-core machine, docs/synth.md).
_CONFIG_S, _POOL_S, _NET_S, _BACKBONE_S = 42.0, 4.5, 12.0, 210.0


def _estimate(configs: Sequence[str], units: int, pool_size: int) -> str:
    """Roughly how long building `configs` takes here, from the measured per-config times."""
    annotated = [c for c in configs if c not in SYNTH_NET_CONFIGS]
    domains = {parse_config(c)[1] for c in annotated}
    scale = pool_size / POOL_SIZE
    s = len(annotated) * _CONFIG_S * units / DEFAULT_UNITS * scale + len(domains) * _POOL_S * scale
    s += (len(configs) - len(annotated)) * _NET_S * scale
    text = f"about {s / 60:.0f} min" if s >= 90 else f"about {max(s, 1):.0f} s"
    if len(annotated) < len(configs):
        text += f" (plus about {_BACKBONE_S / 60:.0f} min to train the backbone if it is not cached)"
    return text


def ensure_synth(root: str | Path, seed: int = 0, units: int = DEFAULT_UNITS,
                 configs: Sequence[str] | None = None, *, progress: bool = True,
                 pool_size: int = POOL_SIZE) -> Path:
    """The built synthetic corpus under `root` holding `configs` (default: the four annotated ones),
    building the missing ones once; returns its folder.

    Only the configs asked for are built, each whole (a config counts as built once its meta file is
    in place), and before building one line on stderr says which, where and roughly how long. The
    folder is keyed by seed, units, pool size and builder version (`cache_key`), so a changed
    generator never serves stale rows. `synth-net-*` configs need the trained backbone.
    """
    root = Path(root)
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
                  f"{_estimate(missing, units, pool_size)}; once, then cached", file=sys.stderr, flush=True)
            build_synth(folder, seed=seed, units=units, configs=missing, progress=progress, pool_size=pool_size)
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
