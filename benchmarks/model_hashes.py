"""Hashes of the synthetic models' trained weights: to check that a refactoring changes no bit.

    python benchmarks/model_hashes.py                  # small trainings (seconds each) in a fresh cache
    python benchmarks/model_hashes.py --full           # the default (cached) settings: minutes to an hour
    python benchmarks/model_hashes.py --cached         # the files already in milannotations.paths.models_dir()

Run it on two checkouts (e.g. `git worktree add /tmp/before <commit>`,
`PYTHONPATH=/tmp/before python benchmarks/model_hashes.py`) and compare the
lines. The hash covers every tensor's name, dtype, shape and bytes, sorted by name.
"""
from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from pathlib import Path


def state_hash(state: dict) -> str:
    h = hashlib.sha256()
    for k, v in sorted(state.items()):
        h.update(k.encode())
        h.update(str(v.dtype).encode())
        h.update(str(tuple(v.shape)).encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--full", action="store_true", help="train at the default settings (slow)")
    p.add_argument("--cached", action="store_true", help="only hash the cached files")
    p.add_argument("--models", nargs="+", default=["segmenter", "backbone", "clip"])
    args = p.parse_args()
    if args.cached:
        from milannotations.paths import models_dir
        from milannotations.weights import load_state_dict

        for path in sorted(models_dir().glob("*.safetensors")):
            print(state_hash(load_state_dict(path)), path.name)
        return
    tmp = Path(tempfile.mkdtemp())
    for name in args.models:
        t = time.perf_counter()
        if name == "segmenter":
            from baselines.segmenters.synth import SynthSegmenterSpec, load_segnet

            net, path = load_segnet(SynthSegmenterSpec() if args.full else SynthSegmenterSpec(steps=5), tmp,
                                    progress=False)
            print(state_hash(net.state_dict()), path.name, end="")
        elif name == "backbone":
            from milannotations.synth import backbone

            load = getattr(backbone, "load_synth_backbone", None) or backbone.load_backbone
            kw = {} if args.full else {"steps": 5, "train_scenes": 24}
            model, _ = load(cache_dir=tmp, progress=False, **kw)
            print(state_hash(model.state_dict()), sorted(p.name for p in tmp.glob("synth-resnet*"))[-1], end="")
        elif name == "clip":
            from baselines.clip.synth_clip import load_synth_clip

            clip = load_synth_clip(cache_dir=tmp, **({} if args.full else {"steps": 5, "pool_scenes": 24}))
            print(state_hash(clip.net.state_dict()), clip.name, end="")
        print(f"  ({time.perf_counter() - t:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
