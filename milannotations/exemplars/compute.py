"""One streaming pass over a dataset: per-unit top-k images and activation thresholds.

`compute_exemplars` hooks the named layers, and for every batch
  * scores each image per unit by the spatial max of its map (top-k, `topk.py`),
  * adds every spatial position to the unit's quantile sketch (`quantile.py`).
Nothing per image is kept, so memory does not grow with the dataset.

Scale-out: the dataset is cut into fixed chunks of consecutive ids; under
`torch.distributed` rank r takes chunks r, r + world, ...; every statistic
merges exactly, so any world size gives the same top-k ids and thresholds as
one process. With `work_dir`, each finished chunk is saved as safetensors and
a restarted run loads it instead of recomputing (any world size may resume).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from torch import nn

from ..errors import MilanError
from ..fsutil import atomic_path
from .hooks import LayerRecorder
from .probe import ChunkWriter
from .quantile import DEFAULT_BINS, QuantileSketch
from .topk import TopK

DEFAULT_CHUNK = 1024
_FORMAT = 1


@dataclass
class LayerStats:
    """The statistics of one layer: top-k per unit, quantile sketch, native map size."""

    topk: TopK
    sketch: QuantileSketch
    map_size: tuple[int, int]

    @property
    def units(self) -> int:
        return self.topk.values.shape[0]

    def merge(self, other: "LayerStats") -> "LayerStats":
        if other.map_size != self.map_size:
            raise MilanError(f"feature map size changed between images: {self.map_size} vs {other.map_size}")
        self.topk.merge(other.topk)
        self.sketch.merge(other.sketch)
        return self


@dataclass
class ExemplarStats:
    """Everything the mask-rendering pass needs; identical on every rank after the merge.

    `top_ids[layer]` (units, k) image ids best first (-1 where fewer than k
    images exist), `top_values[layer]` their spatial-max scores,
    `thresholds[layer]` (units,) the `quantile` of all activations (float64),
    `threshold_error[layer]` the estimator's guaranteed bound on its error.
    """

    layers: tuple[str, ...]
    k: int
    quantile: float
    per_layer: dict[str, LayerStats]
    images: int = 0  # images seen (readable)
    skipped: int = 0  # unreadable items skipped
    normalize: tuple | None = None  # (mean, std) the model input was normalised with
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def top_ids(self) -> dict[str, torch.Tensor]:
        return {name: s.topk.ids.cpu() for name, s in self.per_layer.items()}

    @property
    def top_values(self) -> dict[str, torch.Tensor]:
        return {name: s.topk.values.cpu() for name, s in self.per_layer.items()}

    @property
    def thresholds(self) -> dict[str, torch.Tensor]:
        return {name: s.sketch.quantile(self.quantile) for name, s in self.per_layer.items()}

    @property
    def threshold_error(self) -> dict[str, torch.Tensor]:
        return {name: s.sketch.error_bound() for name, s in self.per_layer.items()}

    def units(self, layer: str) -> int:
        return self.per_layer[layer].units

    def merge(self, other: "ExemplarStats") -> "ExemplarStats":
        for name in self.layers:
            self.per_layer[name].merge(other.per_layer[name])
        self.images += other.images
        self.skipped += other.skipped
        return self

    # ----------------------------------------------------------- safetensors state
    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        tensors: dict[str, torch.Tensor] = {}
        for name, s in self.per_layer.items():
            p = f"{name}/"
            tensors[p + "top_values"] = s.topk.values.cpu()
            tensors[p + "top_ids"] = s.topk.ids.cpu()
            tensors[p + "map_size"] = torch.tensor(s.map_size, dtype=torch.int64)
            tensors.update(s.sketch.state(p))
        meta = {"format": str(_FORMAT), "layers": json.dumps(list(self.layers)), "k": str(self.k),
                "quantile": repr(self.quantile), "images": str(self.images), "skipped": str(self.skipped)}
        return tensors, meta

    @classmethod
    def from_state(cls, tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> "ExemplarStats":
        layers = tuple(json.loads(meta["layers"]))
        per_layer = {}
        for name in layers:
            p = f"{name}/"
            per_layer[name] = LayerStats(TopK(tensors[p + "top_values"].clone(), tensors[p + "top_ids"].clone()),
                                         QuantileSketch.from_state(tensors, p),
                                         tuple(int(x) for x in tensors[p + "map_size"]))
        return cls(layers, int(meta["k"]), float(meta["quantile"]), per_layer,
                   int(meta["images"]), int(meta["skipped"]))


# ---------------------------------------------------------------------------- batching
def _collate(items: list[tuple[int, Any]]) -> tuple[torch.Tensor, torch.Tensor | None, Any, int]:
    """(ids, uint8 images or None, model inputs or None, skipped) from (id, item) pairs."""
    ok = [(i, it) for i, it in items if it is not None]
    skipped = len(items) - len(ok)
    if not ok:
        return torch.empty(0, dtype=torch.int64), None, None, skipped
    ids = torch.tensor([i for i, _ in ok], dtype=torch.int64)
    first = ok[0][1]
    try:
        if isinstance(first, (tuple, list)):
            images = torch.stack([it[0] for _, it in ok])
            inputs = torch.stack([torch.as_tensor(it[1]) for _, it in ok])
        else:
            images = torch.stack([it for _, it in ok])
            inputs = None
    except RuntimeError as e:
        raise MilanError(f"images of one batch differ in size ({e}); resize them to one size "
                         "(the default transform crops to 224 x 224)") from e
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise MilanError(f"dataset items must be uint8 3 x H x W images, got {images.dtype} "
                         f"{tuple(images.shape[1:])} (image id {int(ids[0])})")
    return ids, images, inputs, skipped


class _Indexed(torch.utils.data.Dataset):
    def __init__(self, dataset, indices: Sequence[int]) -> None:
        self.dataset, self.indices = dataset, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        j = self.indices[i]
        return j, self.dataset[j]


def iter_batches(dataset, indices: Sequence[int], *, batch_size: int, num_workers: int = 0
                 ) -> Iterator[tuple[torch.Tensor, torch.Tensor | None, Any, int]]:
    """Batches (ids, uint8 images, model inputs or None, skipped count) over `indices`, in order."""
    loader = torch.utils.data.DataLoader(_Indexed(dataset, indices), batch_size=batch_size,
                                         shuffle=False, num_workers=num_workers, collate_fn=_collate)
    yield from loader


def model_input(images: torch.Tensor, inputs: Any, normalize, device) -> torch.Tensor:
    """The model's batch: given inputs, or the images as float in [0, 1], normalised if asked."""
    if inputs is not None:
        return inputs.to(device)
    x = images.to(device).float().div_(255.0)
    if normalize is not None:
        mean, std = normalize
        mean = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        std = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        x = (x - mean) / std
    return x


# ---------------------------------------------------------------------------- the pass
def _dist() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _new_stats(layers, maps: dict[str, torch.Tensor], k: int, quantile: float, bins: int) -> ExemplarStats:
    per_layer = {name: LayerStats(TopK.empty(maps[name].shape[1], k),
                                  QuantileSketch.empty(maps[name].shape[1], bins),
                                  tuple(maps[name].shape[-2:])) for name in layers}
    return ExemplarStats(tuple(layers), k, quantile, per_layer)


def _update(stats: ExemplarStats, maps: dict[str, torch.Tensor], ids: torch.Tensor) -> None:
    for name in stats.layers:
        m = maps[name]
        s = stats.per_layer[name]
        if tuple(m.shape[-2:]) != s.map_size or m.shape[1] != s.units:
            raise MilanError(f"layer {name!r}: map shape changed from {(s.units, *s.map_size)} to "
                             f"{tuple(m.shape[1:])}; use images of one size")
        smax = m.amax(dim=(2, 3))  # (batch, units): the image scores, and the sketch's maxima
        s.topk.update(smax, ids)
        s.sketch.update(m, vmax=smax.amax(dim=0))
    stats.images += len(ids)


def compute_exemplars(model: nn.Module, layers: Sequence[str], dataset, *, k: int = 15,
                      quantile: float = 0.99, batch_size: int = 32, device: str | torch.device = "cpu",
                      normalize: tuple[Sequence[float], Sequence[float]] | None = None,
                      progress: bool = True, work_dir: Path | None = None,
                      chunk_size: int | None = None, bins: int = DEFAULT_BINS,
                      num_workers: int = 0, probe_dir: Path | None = None) -> ExemplarStats:
    """Top-k images and activation thresholds of every unit of `layers` over `dataset`.

    `dataset[i]` is a uint8 3 x H x W image (the model sees it as float in
    [0, 1], normalised by `normalize=(mean, std)` if given), a tuple
    `(image_uint8, model_input)`, or None for an unreadable item (skipped and
    counted). Image id = dataset index. Sharded by torch.distributed rank when
    a process group is initialised; every rank returns the merged statistics.
    `work_dir` makes the pass resumable chunk by chunk (`chunk_size` images).
    `probe_dir` also records every unit's spatial max and mean on every image there, one
    chunk folder per computed chunk (`milannotations.exemplars.probe`), saving the probe
    pass a forward pass when the probe images are these images.
    """
    if k < 1:
        raise MilanError(f"k must be at least 1, got {k}")
    if not 0.0 < quantile < 1.0:
        raise MilanError(f"quantile must be between 0 and 1, got {quantile}")
    layers = list(dict.fromkeys(layers))
    n = len(dataset)
    if n == 0:
        raise MilanError("the dataset holds no images")
    rank, world = _dist()
    if chunk_size is None:
        chunk_size = min(DEFAULT_CHUNK, max(1, math.ceil(n / world)))
    n_chunks = math.ceil(n / chunk_size)
    mine = [c for c in range(n_chunks) if c % world == rank]
    device = torch.device(device)
    model = model.to(device).eval()
    recorder = LayerRecorder(model, layers)
    stats: ExemplarStats | None = None
    if work_dir is not None:
        work_dir = Path(work_dir)
        work_dir.mkdir(parents=True, exist_ok=True)

    todo, done = [], []
    for c in mine:
        path = work_dir / f"chunk-{c:06d}.safetensors" if work_dir is not None else None
        span = (c * chunk_size, min(n, (c + 1) * chunk_size))
        loaded = _load_chunk(path, layers, k, quantile, span) if path is not None else None
        (done if loaded is not None else todo).append((c, loaded))
    for _c, loaded in done:
        stats = loaded if stats is None else stats.merge(loaded)

    total = sum(min(n, (c + 1) * chunk_size) - c * chunk_size for c, _ in todo)
    bar = None
    if progress and rank == 0 and total:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc="exemplars", unit="img")
    with recorder:
        for c, _ in todo:
            chunk_stats: ExemplarStats | None = None
            skipped = 0
            indices = range(c * chunk_size, min(n, (c + 1) * chunk_size))
            probe = ChunkWriter(probe_dir, (indices.start, indices.stop), layers) if probe_dir is not None else None
            try:
                for ids, images, inputs, skip in iter_batches(dataset, indices, batch_size=batch_size,
                                                              num_workers=num_workers):
                    skipped += skip
                    if len(ids):
                        maps = recorder.run(model_input(images, inputs, normalize, device))
                        if chunk_stats is None:
                            chunk_stats = _new_stats(layers, maps, k, quantile, bins)
                        _update(chunk_stats, maps, ids)
                        if probe is not None:
                            probe.add(ids, maps)
                    if bar is not None:
                        bar.update(len(ids) + skip)
                if chunk_stats is None:  # a chunk of unreadable images only
                    chunk_stats = _probe(recorder, dataset, layers, k, quantile, bins, normalize, device)
                if probe is not None:  # before the statistics, so a saved chunk implies its probe rows
                    probe.finish({layer: chunk_stats.units(layer) for layer in layers})
            except BaseException:
                if probe is not None:
                    probe.abort()
                raise
            chunk_stats.skipped += skipped
            if work_dir is not None:
                _save_chunk(work_dir / f"chunk-{c:06d}.safetensors", chunk_stats, (indices.start, indices.stop))
            stats = chunk_stats if stats is None else stats.merge(chunk_stats)
        if stats is None:  # this rank had no chunk: learn the shapes from one image
            stats = _probe(recorder, dataset, layers, k, quantile, bins, normalize, device)
    if bar is not None:
        bar.close()
    if world > 1:
        stats = _all_merge(stats)
    if stats.images == 0:
        raise MilanError(f"none of the {n} images could be read")
    stats.normalize = (tuple(map(float, normalize[0])), tuple(map(float, normalize[1]))) if normalize else None
    stats.extra.update({"chunk_size": chunk_size, "bins": bins, "world_size": world})
    return stats


def _probe(recorder: LayerRecorder, dataset, layers, k, quantile, bins, normalize, device) -> ExemplarStats:
    """Empty statistics with the right shapes, from the first readable image."""
    for i in range(len(dataset)):
        item = dataset[i]
        if item is None:
            continue
        _ids, images, inputs, _ = _collate([(i, item)])
        return _new_stats(layers, recorder.run(model_input(images, inputs, normalize, device)), k, quantile, bins)
    raise MilanError(f"none of the {len(dataset)} images could be read")


def _all_merge(stats: ExemplarStats) -> ExemplarStats:
    """Gather every rank's statistics (fixed-shape tensors, no pickling) and merge them exactly."""
    import torch.distributed as dist

    world = dist.get_world_size()
    comm = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    tensors, meta = stats.state()
    counts = torch.tensor([stats.images, stats.skipped], dtype=torch.int64, device=comm)
    gathered_counts = [torch.zeros_like(counts) for _ in range(world)]
    dist.all_gather(gathered_counts, counts)
    per_rank: list[dict[str, torch.Tensor]] = [{} for _ in range(world)]
    for key in sorted(tensors):
        t = tensors[key].to(comm).contiguous()
        out = [torch.zeros_like(t) for _ in range(world)]
        dist.all_gather(out, t)
        for r in range(world):
            per_rank[r][key] = out[r].cpu()
    merged = None
    for r in range(world):
        m = dict(meta, images=str(int(gathered_counts[r][0])), skipped=str(int(gathered_counts[r][1])))
        s = ExemplarStats.from_state(per_rank[r], m)
        merged = s if merged is None else merged.merge(s)
    return merged


def _save_chunk(path: Path, stats: ExemplarStats, span: tuple[int, int]) -> None:
    """Write a finished chunk (image ids span[0] <= i < span[1]) atomically (temporary file + rename)."""
    from safetensors.torch import save_file

    tensors, meta = stats.state()
    meta["span"] = json.dumps(list(span))
    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=meta)


def _load_chunk(path: Path, layers, k: int, quantile: float, span: tuple[int, int]) -> ExemplarStats | None:
    """A saved chunk if it exists and matches this run, else None (it is then recomputed)."""
    if not path.is_file():
        return None
    from safetensors import safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if (meta.get("format") != str(_FORMAT) or json.loads(meta.get("layers", "[]")) != list(layers)
                or meta.get("k") != str(k) or meta.get("quantile") != repr(quantile)
                or json.loads(meta.get("span", "null")) != list(span)):
            return None
        return ExemplarStats.from_state(load_file(str(path)), meta)
    except Exception:  # a damaged checkpoint is recomputed, never trusted
        return None
