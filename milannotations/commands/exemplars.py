"""`milannotations exemplars`: top-activating images and masks of a model's units, as a config.

Runs as one process or under `torchrun --nproc-per-node N -m milannotations exemplars ...`
(the dataset is sharded by rank; rank 0 writes). Resumable: finished chunks of
the first pass are kept under `<out>/.exemplars-work/<name>/<hash of the arguments>/`.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

from ..dist import check_device, init_distributed
from ..errors import MilanError
from ..fsutil import check_corpus_dir
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
    add_common_flags(p)  # --no-progress, last as before
    p.set_defaults(func=run)


def _run_key(args: argparse.Namespace, files: list[Path]) -> str:
    """Hash of everything that changes the first pass's statistics (not the world size)."""
    h = hashlib.sha256()
    weights = args.weights
    if weights not in ("none", "imagenet"):
        st = Path(weights).stat()
        weights = f"{Path(weights).resolve()}:{st.st_size}:{st.st_mtime_ns}"
    h.update(json.dumps([args.model, weights, str(args.images.resolve()), args.layers, args.k,
                         args.quantile, args.resize, args.crop, args.normalize, args.chunk_size,
                         args.strict], sort_keys=True).encode())
    for f in files:
        st = f.stat()
        h.update(f"{f}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _remove_empty(work: Path) -> None:
    """Remove the work folder and its `.exemplars-work/<name>` parents where they are empty."""
    for folder in (work, work.parent, work.parent.parent):
        try:
            folder.rmdir()
        except FileNotFoundError:
            continue
        except OSError:  # not empty: finished chunks of another run
            return


def _remove_empty_tree(folder: Path) -> None:
    """Remove `folder` if it holds no files (only empty folders); kept chunks of a run stay."""
    if folder.is_dir() and not any(p.is_file() for p in folder.rglob("*")):
        shutil.rmtree(folder, ignore_errors=True)


def run(args: argparse.Namespace) -> int:
    from ..writer import ConfigMeta
    from ..exemplars import ImageFolderDataset, compute_exemplars, default_transform, write_exemplar_config
    from ..exemplars.models import load_model

    check_device(args.device)
    check_corpus_dir(args.output, "--output")
    if args.no_progress:
        from . import quiet_libraries

        quiet_libraries()
    created = not args.output.exists()
    distributed = init_distributed(args.device)
    rank = 0
    try:
        import torch.distributed as dist

        rank = dist.get_rank() if distributed else 0
        layers = [x.strip() for x in args.layers.split(",") if x.strip()]
        if not args.name or "/" in args.name:
            raise MilanError(f"--name {args.name!r}: a config name must be non-empty and contain no '/'")
        dataset = ImageFolderDataset(args.images, default_transform(args.resize, args.crop), strict=args.strict)
        if args.k > len(dataset):  # otherwise every unit would hold fewer exemplars than its metadata says
            raise MilanError(f"--k {args.k}: {args.images} holds only {len(dataset)} images; "
                             f"give --k {len(dataset)} or fewer")
        loaded = load_model(args.model, args.weights, normalize=args.normalize)
        work = args.output / ".exemplars-work" / args.name / _run_key(args, dataset.files)
        progress = not args.no_progress and rank == 0
        if rank == 0:
            print(f"exemplars: {len(dataset)} images, layers {', '.join(layers)}, work folder {work}",
                  file=sys.stderr)
        try:
            stats = compute_exemplars(loaded.module, layers, dataset, k=args.k, quantile=args.quantile,
                                      batch_size=args.batch_size, device=args.device,
                                      normalize=loaded.normalize, progress=progress, work_dir=work,
                                      chunk_size=args.chunk_size, num_workers=args.workers)
            if stats.images < args.k:
                raise MilanError(f"--k {args.k}: only {stats.images} of the {len(dataset)} images in "
                                 f"{args.images} are readable; give --k {stats.images} or fewer")
        except MilanError:
            if rank == 0:
                _remove_empty(work)  # keep finished chunks for a resume, but no empty folders
            raise
        if rank == 0 and stats.skipped:
            print(f"exemplars: skipped {stats.skipped} unreadable image(s) (use --strict to refuse them)",
                  file=sys.stderr)
        meta = ConfigMeta(args.name, args.model_name or loaded.name,
                          args.dataset_name or args.images.resolve().name,
                          description=f"Exemplars of {args.model} ({args.weights} weights) on {args.images.name}",
                          provenance={"model_spec": args.model, "weights": args.weights,
                                      "transform": f"Resize({args.resize}) + CenterCrop({args.crop})",
                                      "normalize": args.normalize})
        path = write_exemplar_config(args.output, meta, loaded.module, layers, dataset, stats,
                                     batch_size=args.batch_size, device=args.device, progress=progress,
                                     num_workers=args.workers)
        if rank == 0:
            shutil.rmtree(work, ignore_errors=True)
            _remove_empty(work)
            n_units = sum(stats.units(layer) for layer in layers)
            print(f"wrote {n_units} units of {args.name} to {path}")
        return 0
    except BaseException:
        if rank == 0 and created:
            _remove_empty_tree(args.output)  # a failed first run leaves no empty --output behind
        raise
    finally:
        if distributed:
            import torch.distributed as dist

            dist.destroy_process_group()
