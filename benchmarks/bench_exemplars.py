"""Exemplar computation vs the model's bare forward pass, and peak memory.

    nice python benchmarks/bench_exemplars.py --images 256 --size 224 --batch-size 32 --threads 2

Both sides see the same in-memory uint8 images (decoding is left out of
both) and the same uint8 -> float -> ImageNet-normalised input; the bare side
runs the whole network, the exemplar side hooks `--layers` and does the
top-k and quantile-sketch work. Each side is timed `--repeats` times,
interleaved, and the minimum is reported (the machine may be shared). Peak
RSS is read from getrusage after each phase (it only grows). The mask pass
(`write_exemplar_config`'s second pass over the top images) is timed
separately, without writing parquet.
"""
from __future__ import annotations

import argparse
import resource
import sys
import time

import torch
import torchvision


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet18")
    p.add_argument("--layers", default="layer1,layer2,layer3,layer4")
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--k", type=int, default=15)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    from milannotations.exemplars import compute_exemplars
    from milannotations.exemplars.compute import iter_batches, model_input
    from milannotations.exemplars.models import IMAGENET_MEAN, IMAGENET_STD
    from milannotations.exemplars.write import exemplar_maps

    device = torch.device(args.device)
    torch.manual_seed(0)
    model = torchvision.models.get_model(args.model, weights=None).eval().to(device)
    layers = args.layers.split(",")
    g = torch.Generator().manual_seed(0)
    images = [torch.randint(0, 256, (3, args.size, args.size), dtype=torch.uint8, generator=g)
              for _ in range(args.images)]
    norm = (IMAGENET_MEAN, IMAGENET_STD)
    rss_start = peak_rss_mib()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def bare() -> float:
        sync()
        t = time.perf_counter()
        with torch.inference_mode():
            for ids, imgs, inputs, _ in iter_batches(images, range(len(images)), batch_size=args.batch_size):
                model(model_input(imgs, inputs, norm, device))
        sync()
        return time.perf_counter() - t

    def exemplars():
        sync()
        t = time.perf_counter()
        stats = compute_exemplars(model, layers, images, k=args.k, batch_size=args.batch_size, device=device,
                                  normalize=norm, progress=False)
        sync()
        return time.perf_counter() - t, stats

    bare()  # warm-up (allocator, kernels)
    rss_bare = None
    t_bare, t_ex = [], []
    stats = None
    for _ in range(args.repeats):
        t_bare.append(bare())
        rss_bare = rss_bare or peak_rss_mib()
        dt, stats = exemplars()
        t_ex.append(dt)
    rss_ex = peak_rss_mib()
    t = time.perf_counter()
    maps, _ = exemplar_maps(model, layers, images, stats, batch_size=args.batch_size, device=device,
                            normalize=norm, progress=False)
    t_masks = time.perf_counter() - t
    units = sum(stats.units(layer) for layer in layers)
    print(f"model {args.model}, layers {args.layers} ({units} units), {args.images} images "
          f"{args.size}x{args.size}, batch {args.batch_size}, device {device}, torch threads {args.threads}")
    print(f"bare forward      : min {min(t_bare):7.3f} s  (runs {', '.join(f'{x:.3f}' for x in t_bare)})")
    print(f"compute_exemplars : min {min(t_ex):7.3f} s  (runs {', '.join(f'{x:.3f}' for x in t_ex)})")
    print(f"ratio exemplars / bare forward: {min(t_ex) / min(t_bare):.3f}")
    print(f"mask pass over {len({i for l in layers for i in stats.top_ids[l].reshape(-1).tolist()})} "
          f"top images: {t_masks:.3f} s")
    print(f"peak RSS: start {rss_start:.0f} MiB, after bare forward {rss_bare:.0f} MiB, "
          f"after exemplars {rss_ex:.0f} MiB")
    if device.type == "cuda":
        print(f"peak CUDA memory: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
    err = {layer: float(stats.threshold_error[layer].max()) for layer in layers}
    print("max threshold error bound per layer:", {k: f"{v:.2e}" for k, v in err.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
