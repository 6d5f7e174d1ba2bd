"""The LM's own process while the decoder trains (`python -m baselines.milan.lm_worker`, see `train.fit_both`)."""
from __future__ import annotations

from .train import lm_worker_main

if __name__ == "__main__":
    lm_worker_main()
