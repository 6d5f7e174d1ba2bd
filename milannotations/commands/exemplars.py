"""`milannotations exemplars`: top-activating images and masks of a model's units, as a config.

Runs as one process or under `torchrun --nproc-per-node N -m milannotations exemplars ...`
(the dataset is sharded by rank; rank 0 writes). Resumable: finished chunks of
the first pass are kept under `<out>/.exemplars-work/<name>/<hash of the arguments>/`.
This module only parses the flags; the run is `milannotations.exemplars.run.run_exemplars`.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..cli import add_common_flags


def register(subparsers) -> None:
    p = subparsers.add_parser("exemplars", help="compute exemplars (top images + masks) of a model's units",
                              description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="torchvision:<name> or package.module:factory")
    p.add_argument("--weights", default="none", help="PATH (.safetensors or weights-only torch file), "
                   "imagenet (torchvision weights from the local torch cache) or none")
    p.add_argument("--images", required=True, type=Path, help="ImageFolder or flat folder of images")
    p.add_argument("--layers", required=True, help="comma-separated submodule names, e.g. layer1,layer4")
    p.add_argument("--name", required=True, help="config name to write")
    add_common_flags(p, output="corpus folder to write the config into", output_type=Path, output_required=True,
                     progress=False, device="")
    p.add_argument("--k", type=int, default=15, help="top images per unit (default 15)")
    p.add_argument("--quantile", type=float, default=0.99, help="mask threshold quantile (default 0.99)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--strict", action="store_true", help="refuse unreadable images instead of skipping them")
    p.add_argument("--resize", type=int, default=256, help="Resize() before the centre crop (default 256)")
    p.add_argument("--crop", type=int, default=224, help="CenterCrop() size (default 224)")
    p.add_argument("--normalize", default="auto", choices=("auto", "imagenet", "none"),
                   help="model-input normalisation (auto: ImageNet mean/std for torchvision models)")
    p.add_argument("--model-name", default=None, help="`model` field of the rows (default: from --model)")
    p.add_argument("--dataset-name", default=None, help="`dataset` field of the rows (default: folder name)")
    p.add_argument("--chunk-size", type=int, default=None, help="images per resumable chunk (default 1024)")
    p.add_argument("--workers", type=int, default=0, help="image-decoding worker processes")
    p.add_argument("--record-activations", action="store_true",
                   help="also store every unit's spatial max and mean on every probe image (float16, "
                        "in the config's probe/ folder)")
    p.add_argument("--probe-images", type=Path, default=None, metavar="FOLDER",
                   help="probe images for --record-activations (default: --images; implies --record-activations)")
    add_common_flags(p)  # --no-progress, last as before
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..exemplars.run import run_exemplars

    if args.no_progress:
        from . import quiet_libraries

        quiet_libraries()
    run_exemplars(args.model, args.weights, args.images, args.layers, args.name, args.output, k=args.k,
                  quantile=args.quantile, batch_size=args.batch_size, strict=args.strict, resize=args.resize,
                  crop=args.crop, normalize=args.normalize, model_name=args.model_name,
                  dataset_name=args.dataset_name, chunk_size=args.chunk_size, workers=args.workers,
                  record_activations=args.record_activations, probe_images=args.probe_images,
                  device=args.device, progress=not args.no_progress)
    return 0
