"""The second pass: render the masks of each unit's top images and write a config.

Only the images that are some unit's exemplar are run through the model
again; their maps are kept just for the (unit, slot) pairs that need them.
Rows go through `milannotations.writer.write_config`, so the config is
written atomically and loads with `datasets.load_dataset(out, config)`.
"""
from __future__ import annotations

import dataclasses
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import MilanError
from ..schema import unit_id as make_unit_id
from ..splits import assign_splits
from ..writer import ConfigMeta, UnitRow, write_config
from .compute import ExemplarStats, _dist, iter_batches, model_input
from .hooks import LayerRecorder
from .masks import masks_from_maps

Annotate = Callable[[str, int], tuple[Sequence[str], "str | None"]]
_IMAGE_CACHE_BYTES = 1 << 30


def exemplar_maps(model: nn.Module, layers: Sequence[str], dataset, stats: ExemplarStats, *,
                  batch_size: int = 32, device="cpu", normalize=None, progress: bool = True,
                  num_workers: int = 0) -> tuple[dict[str, torch.Tensor], dict[int, torch.Tensor]]:
    """Activation maps (units, k, h, w) of every unit's top images, and the uint8 images seen.

    Images are cached up to 1 GiB; the rest are re-read from the dataset when rows are written.
    """
    device = torch.device(device)
    model = model.to(device).eval()
    needed: dict[str, dict[int, tuple[torch.Tensor, torch.Tensor]]] = {}
    union: set[int] = set()
    for layer in layers:
        ids = stats.top_ids[layer]
        per_image: dict[int, tuple[list[int], list[int]]] = {}
        for (u, slot), i in zip(np.ndindex(*ids.shape), ids.reshape(-1).tolist()):
            if i >= 0:
                units, slots = per_image.setdefault(i, ([], []))
                units.append(u)
                slots.append(slot)
        needed[layer] = {i: (torch.tensor(a), torch.tensor(b)) for i, (a, b) in per_image.items()}
        union.update(per_image)
    store = {layer: torch.zeros(stats.units(layer), stats.k, *stats.per_layer[layer].map_size)
             for layer in layers}
    images: dict[int, torch.Tensor] = {}
    cached = 0
    order = sorted(union)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(order), desc="exemplar masks", unit="img")
    with LayerRecorder(model, layers) as recorder:
        for ids, imgs, inputs, skipped in iter_batches(dataset, order, batch_size=batch_size,
                                                      num_workers=num_workers):
            if skipped:
                raise MilanError(f"{skipped} exemplar image(s) became unreadable between the two passes")
            maps = recorder.run(model_input(imgs, inputs, normalize, device))
            for b, i in enumerate(ids.tolist()):
                for layer in layers:
                    units, slots = needed[layer].get(i, (None, None))
                    if units is not None:
                        store[layer][units, slots] = maps[layer][b, units].float().cpu()
                if cached + imgs[b].numel() <= _IMAGE_CACHE_BYTES:
                    images[i] = imgs[b].clone()
                    cached += imgs[b].numel()
            if bar is not None:
                bar.update(len(ids))
    if bar is not None:
        bar.close()
    return store, images


def write_exemplar_config(out: Path, meta: ConfigMeta, model: nn.Module, layers: Sequence[str], dataset,
                          stats: ExemplarStats, *, annotate: Annotate | None = None,
                          split_of: Mapping[str, str] | None = None, batch_size: int = 32,
                          device="cpu", progress: bool = True, num_workers: int = 0) -> Path:
    """Render masks and write config `meta.config` under `out`; returns the config's data folder.

    `annotate(layer, unit) -> (annotations, truth)` attaches descriptions;
    without it the config is marked `provenance["unannotated"] = True`.
    The model input is normalised as `compute_exemplars` did (`stats.normalize`). Under
    torch.distributed only rank 0 renders and writes; other ranks return at once.
    """
    out = Path(out)
    layers = list(dict.fromkeys(layers))
    missing = [layer for layer in layers if layer not in stats.per_layer]
    if missing:
        raise MilanError(f"layers {missing} are not in the computed statistics ({list(stats.layers)})")
    rank, _world = _dist()
    if rank != 0:
        return out / "data" / meta.config
    maps, images = exemplar_maps(model, layers, dataset, stats, batch_size=batch_size, device=device,
                                 normalize=stats.normalize, progress=progress, num_workers=num_workers)
    thresholds = stats.thresholds
    provenance = {
        **meta.provenance,
        "exemplars": {"layers": layers, "k": stats.k, "quantile": stats.quantile,
                      "images": stats.images, "skipped_unreadable": stats.skipped,
                      "score": "spatial max", "threshold": "per-unit quantile of all spatial positions "
                      "(lattice-histogram sketch, see milannotations.exemplars.quantile)",
                      "threshold_error_bound_max": {layer: float(stats.threshold_error[layer].max())
                                                    for layer in layers},
                      "mask": "bilinear upsampling (align_corners=False) > threshold",
                      **{k: v for k, v in stats.extra.items() if k != "world_size"}},
    }
    if annotate is None:
        provenance["unannotated"] = True
    meta = dataclasses.replace(meta, provenance=provenance)
    if split_of is None:
        split_of = assign_splits(make_unit_id(meta.config, layer, u)
                                 for layer in layers for u in range(stats.units(layer)))
    fetched: OrderedDict[int, torch.Tensor] = OrderedDict()

    def image(i: int) -> torch.Tensor:
        if i in images:
            return images[i]
        if i not in fetched:
            item = dataset[i]
            if item is None:
                raise MilanError(f"exemplar image {i} became unreadable")
            fetched[i] = item[0] if isinstance(item, (tuple, list)) else item
            if len(fetched) > 256:
                fetched.popitem(last=False)
        return fetched[i]

    def rows() -> Iterator[UnitRow]:
        for layer in layers:
            ids, thr = stats.top_ids[layer], thresholds[layer]
            for u in range(stats.units(layer)):
                valid = [(slot, int(i)) for slot, i in enumerate(ids[u].tolist()) if i >= 0]
                imgs = torch.stack([image(i) for _, i in valid])
                slots = [s for s, _ in valid]
                masks = masks_from_maps(maps[layer][u, slots], thr[u], tuple(imgs.shape[-2:]))
                annotations, truth = annotate(layer, u) if annotate is not None else ((), None)
                yield UnitRow(layer=layer, unit=u, images=imgs.numpy(), masks=masks.numpy(),
                              image_ids=[i for _, i in valid], annotations=list(annotations), truth=truth)

    total = sum(stats.units(layer) for layer in layers)
    return write_config(out, meta, rows(), split_of, progress=progress, total=total)
