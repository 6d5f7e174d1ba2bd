"""The whole `milannotations exemplars` run as one library call, so a notebook can do what the CLI does.

    from milannotations.exemplars import run_exemplars
    path = run_exemplars("torchvision:resnet18", "none", Path("images"), "layer1,layer4",
                         "rn18-mine", Path("corpus"), record_activations=True)

Runs as one process or inside a `torchrun` job (it joins the process group;
the images are sharded by rank; rank 0 writes). Resumable: finished chunks
of the first pass (and of the probe recording) are kept under
`<output>/.exemplars-work/<name>/<hash of the arguments>/` until the config
is written.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Sequence

from ..dist import check_device, init_distributed
from ..errors import MilanError
from ..fsutil import check_corpus_dir, replace_path


def run_key(model: str, weights: str, images: Path, layers: str, k: int, quantile: float, resize: int, crop: int,
            normalize: str, chunk_size: int | None, strict: bool, files: Sequence[Path],
            probe: tuple[Path, Sequence[Path]] | None = None) -> str:
    """Hash of everything that changes the recorded statistics (not the world size).

    `probe` (the probe folder and its files) is given when activations are recorded, so a
    recording run never reuses the work folder of a run without (or with other) probe images.
    """
    h = hashlib.sha256()
    if weights not in ("none", "imagenet"):
        st = Path(weights).stat()
        weights = f"{Path(weights).resolve()}:{st.st_size}:{st.st_mtime_ns}"
    h.update(json.dumps([model, weights, str(Path(images).resolve()), layers, k, quantile, resize, crop,
                         normalize, chunk_size, strict], sort_keys=True).encode())
    for f in files:
        st = f.stat()
        h.update(f"{f}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    if probe is not None:
        root, probe_files = probe
        h.update(f"probe:{Path(root).resolve()}\n".encode())
        for f in probe_files:
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


def run_exemplars(model: str, weights: str, images: Path, layers: str | Sequence[str], name: str, output: Path, *,
                  k: int = 15, quantile: float = 0.99, batch_size: int = 32, strict: bool = False,
                  resize: int = 256, crop: int = 224, normalize: str = "auto", model_name: str | None = None,
                  dataset_name: str | None = None, chunk_size: int | None = None, workers: int = 0,
                  record_activations: bool = False, probe_images: Path | None = None, device: str = "cpu",
                  progress: bool = True) -> Path:
    """Compute the exemplars of `model`'s `layers` on `images` and write config `name` under `output`.

    `model` is `torchvision:<name>` or `package.module:factory`; `weights` a file, `imagenet` or
    `none` (see `milannotations.exemplars.models`). With `record_activations` (implied by
    `probe_images`), every unit's spatial max and mean on every probe image (default: `images`)
    are stored in `<config data folder>/probe/` (see `milannotations.exemplars.probe`).
    Returns the config's data folder. Raises MilanError (one line) on bad input, before work starts
    where it can be known then.
    """
    from ..writer import ConfigMeta
    from .compute import compute_exemplars
    from .images import ImageFolderDataset, default_transform
    from .models import load_model
    from .probe import build_probe_folder
    from .record import record_probe_shards
    from .write import write_exemplar_config

    images, output = Path(images), Path(output)
    layers_arg = layers if isinstance(layers, str) else ",".join(layers)
    record = bool(record_activations or probe_images is not None)
    check_device(device)
    check_corpus_dir(output, "--output")
    created = not output.exists()
    distributed = init_distributed(device)
    rank = 0
    try:
        import torch.distributed as dist

        rank = dist.get_rank() if distributed else 0
        layer_list = [x.strip() for x in layers_arg.split(",") if x.strip()]
        if not name or "/" in name:
            raise MilanError(f"--name {name!r}: a config name must be non-empty and contain no '/'")
        transform = default_transform(resize, crop)
        dataset = ImageFolderDataset(images, transform, strict=strict)
        if k > len(dataset):  # otherwise every unit would hold fewer exemplars than its metadata says
            raise MilanError(f"--k {k}: {images} holds only {len(dataset)} images; give --k {len(dataset)} or fewer")
        probe_root = Path(probe_images) if probe_images is not None else images
        same = probe_root.resolve() == images.resolve()
        probe_set = None
        if record:
            probe_set = dataset if same else ImageFolderDataset(probe_root, transform, strict=strict)
        loaded = load_model(model, weights, normalize=normalize)
        work = output / ".exemplars-work" / name / run_key(
            model, weights, images, layers_arg, k, quantile, resize, crop, normalize, chunk_size, strict,
            dataset.files, (probe_root, probe_set.files) if probe_set is not None else None)
        show = progress and rank == 0
        if rank == 0:
            print(f"exemplars: {len(dataset)} images, layers {', '.join(layer_list)}, work folder {work}",
                  file=sys.stderr)
        try:
            stats = compute_exemplars(loaded.module, layer_list, dataset, k=k, quantile=quantile,
                                      batch_size=batch_size, device=device, normalize=loaded.normalize,
                                      progress=show, work_dir=work, chunk_size=chunk_size, num_workers=workers,
                                      probe_dir=work / "probe-chunks" if probe_set is not None and same else None)
            if stats.images < k:
                raise MilanError(f"--k {k}: only {stats.images} of the {len(dataset)} images in "
                                 f"{images} are readable; give --k {stats.images} or fewer")
            if probe_set is not None:
                if rank == 0 and not same:  # the same images were recorded during the first pass
                    print(f"exemplars: recording activations on {len(probe_set)} probe images from {probe_root}",
                          file=sys.stderr)
                spans = record_probe_shards(loaded.module, layer_list, probe_set, work / "probe-chunks",
                                            chunk_size=chunk_size,
                                            units={layer: stats.units(layer) for layer in layer_list},
                                            batch_size=batch_size, device=device, normalize=loaded.normalize,
                                            progress=show, num_workers=workers)
        except MilanError:
            if rank == 0:
                _remove_empty(work / "probe-chunks")
                _remove_empty(work)  # keep finished chunks for a resume, but no empty folders
            raise
        if rank == 0 and stats.skipped:
            print(f"exemplars: skipped {stats.skipped} unreadable image(s) (use --strict to refuse them)",
                  file=sys.stderr)
        probe_rows = 0
        if probe_set is not None and rank == 0:
            merged = work / "probe"
            if merged.exists():
                shutil.rmtree(merged)  # an earlier run died while merging
            probe_rows, probe_skipped = build_probe_folder(
                work / "probe-chunks", spans, layer_list, merged, probe_root, probe_set.files,
                same_as_exemplars=same, resize=resize, crop=crop, normalize=normalize)
            if probe_skipped and not same:
                print(f"exemplars: skipped {probe_skipped} unreadable probe image(s) (use --strict to refuse them)",
                      file=sys.stderr)
        meta = ConfigMeta(name, model_name or loaded.name, dataset_name or images.resolve().name,
                          description=f"Exemplars of {model} ({weights} weights) on {images.name}",
                          provenance={"model_spec": model, "weights": weights,
                                      "transform": f"Resize({resize}) + CenterCrop({crop})",
                                      "normalize": normalize})
        path = write_exemplar_config(output, meta, loaded.module, layer_list, dataset, stats,
                                     batch_size=batch_size, device=device, progress=show, num_workers=workers)
        if rank == 0:
            if probe_set is not None:
                # the config folder exists now (write_config renamed it into place); the probe folder
                # joins it by one rename on the same filesystem, so readers never see half of it
                replace_path(work / "probe", path / "probe")
            shutil.rmtree(work, ignore_errors=True)
            _remove_empty(work)
            n_units = sum(stats.units(layer) for layer in layer_list)
            print(f"wrote {n_units} units of {name} to {path}")
            if probe_set is not None:
                print(f"wrote activations of {n_units} units on {probe_rows} probe images to {path / 'probe'}")
        return path
    except BaseException:
        if rank == 0 and created:
            _remove_empty_tree(output)  # a failed first run leaves no empty --output behind
        raise
    finally:
        if distributed:
            import torch.distributed as dist

            dist.destroy_process_group()
