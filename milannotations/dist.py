"""Joining the process group `torchrun` describes, shared by the commands that shard work by rank."""
from __future__ import annotations

import os


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
