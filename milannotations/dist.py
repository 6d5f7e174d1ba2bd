"""Joining the process group `torchrun` describes, shared by the commands that shard work by rank."""
from __future__ import annotations

import os

from .errors import MilanError


def init_distributed(device: str) -> bool:
    """Join the process group torchrun describes (gloo on CPU, nccl on CUDA); False when single."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if str(device).startswith("cuda") else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
    return True


def check_device(device: str, flag: str = "--device") -> str:
    """Refuse, before any work starts, a device torch does not know or this machine does not have.

    Otherwise a typo (`tpu`) or a missing GPU surfaces as a torch traceback in the middle of a run.
    """
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise MilanError(f"{flag} {device}: not a device; use cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise MilanError(f"{flag} {device}: no CUDA GPU is visible to torch; use --device cpu")
        if dev.index is not None and dev.index >= n:
            raise MilanError(f"{flag} {device}: only {n} CUDA GPU(s) visible (cuda:0..cuda:{n - 1})")
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise MilanError(f"{flag} {device}: MPS is not available on this machine; use --device cpu")
    elif dev.type != "cpu":
        raise MilanError(f"{flag} {device}: unsupported device type {dev.type!r}; use cpu, cuda, cuda:N or mps")
    return device
