"""Recording probe activations: this rank's chunks of the probe images, as chunk folders of memmaps.

The format and the merge are in `probe.py`; this module runs the model. Sharding is
`compute_exemplars`' (chunk c goes to rank c % world), so when the probe images are the
exemplar images the first pass already wrote the chunks (`compute_exemplars(probe_dir=...)`)
and this pass finds them complete and only fills gaps.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import torch

from ..errors import MilanError
from .compute import DEFAULT_CHUNK, _collate, _dist, iter_batches, model_input
from .hooks import LayerRecorder
from .probe import ChunkWriter, chunk_complete, chunk_dir, probe_spans


def _units_of(recorder, dataset, layers, normalize, device) -> dict[str, int]:
    """Units per layer, from one forward pass on the first readable item."""
    for i in range(len(dataset)):
        item = dataset[i]
        if item is None:
            continue
        _ids, images, inputs, _ = _collate([(i, item)])
        maps = recorder.run(model_input(images, inputs, normalize, device))
        return {layer: int(maps[layer].shape[1]) for layer in layers}
    raise MilanError(f"none of the {len(dataset)} probe images could be read")


def record_probe_shards(model, layers: Sequence[str], dataset, work: Path, *, chunk_size: int | None = None,
                        units: dict[str, int] | None = None, batch_size: int = 32, device="cpu",
                        normalize=None, progress: bool = True, num_workers: int = 0) -> list[tuple[int, int]]:
    """Record this rank's chunks of `dataset` into chunk folders under `work`; returns every chunk's span.

    Sharded like `compute_exemplars` (chunk c goes to rank c % world). Chunks already complete in
    `work` (a killed run) are kept. Call `merge_probe_shards` on rank 0 after every rank returned
    (under torch.distributed this function ends with a barrier).
    """
    layers = list(dict.fromkeys(layers))
    n = len(dataset)
    if n == 0:
        raise MilanError("the probe folder holds no images")
    rank, world = _dist()
    if chunk_size is None:
        chunk_size = min(DEFAULT_CHUNK, max(1, math.ceil(n / world)))
    spans = probe_spans(n, chunk_size)
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    todo = [s for c, s in enumerate(spans) if c % world == rank
            and not chunk_complete(chunk_dir(work, s), layers, s)]
    device = torch.device(device)
    model = model.to(device).eval()
    bar = None
    if progress and rank == 0 and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(b - a for a, b in todo), desc="probe activations", unit="img")
    with LayerRecorder(model, layers) as recorder:
        for span in todo:
            writer = ChunkWriter(work, span, layers, units)
            try:
                for ids, images, inputs, skip in iter_batches(dataset, range(*span), batch_size=batch_size,
                                                              num_workers=num_workers):
                    if len(ids):
                        writer.add(ids, recorder.run(model_input(images, inputs, normalize, device)))
                    if bar is not None:
                        bar.update(len(ids) + skip)
                if not writer.opened and units is None:  # a chunk of unreadable images only
                    units = _units_of(recorder, dataset, layers, normalize, device)
                writer.finish(units)
            except BaseException:
                writer.abort()
                raise
    if bar is not None:
        bar.close()
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
    return spans
