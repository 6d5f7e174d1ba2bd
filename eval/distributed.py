"""Rank and gather: how the harness shards test units under `torch.distributed` and collects them.

Without an initialised process group every call is the single-process identity.
"""
from __future__ import annotations

from typing import Any


def process_group() -> tuple[Any, int, int]:
    """(`torch.distributed`, rank, world size) inside an initialised process group, else (None, 0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist, dist.get_rank(), dist.get_world_size()
    return None, 0, 1


def gather(dist, payload: Any, world: int) -> list[Any]:
    """Every rank's `payload`, in rank order, on every rank (`[payload]` without a process group)."""
    if dist is None:
        return [payload]
    out: list[Any] = [None] * world
    dist.all_gather_object(out, payload)
    return out
