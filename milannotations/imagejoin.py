"""Re-joining source pixels (ImageNet val) to exemplars by their `image_ids`.

ImageNet pixels may not be redistributed, so the ImageNet zips ship masks and
ids only. Ids index a torchvision `ImageFolder` over the validation set: class
folders sorted by name, files sorted inside each (we list it with torchvision
itself, so the order is exactly the one the exemplars were computed with).

The transform matters. Exemplars and masks were computed on Resize(256) +
CenterCrop(224) views, and that is what the annotators saw; the original merge
script squashed the whole image with Resize((224, 224)) instead, so on every
non-square image its pixels do not line up with the masks. We rebuild the
crop (scaled to the masks' size: shorter side to round(256/224 * H), then a
centre crop to H x W). `legacy_resize=True` reproduces the squash, for
comparison with files made by the original code.
"""
from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import fields
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np

from .card import read_metas
from .errors import MilanError
from .schema import unit_id
from .units import _decode
from .writer import ConfigMeta, UnitRow, write_config

CROP_NOTE = "joined from ImageNet val (Resize256+CenterCrop224)"
LEGACY_NOTE = "joined from ImageNet val (legacy Resize((224,224)) squash; misaligned with masks)"
NOT_SHIPPED = "not shipped: run milannotations join"
_CACHE_IMAGES = 256


def join_note(dataset: str, legacy_resize: bool) -> str:
    """The provenance `images` string for pixels joined from a local `<dataset>/val` folder."""
    note = LEGACY_NOTE if legacy_resize else CROP_NOTE
    return note.replace("ImageNet", {"imagenet": "ImageNet", "places365": "Places365"}.get(dataset, dataset))


class ImageSource:
    """A local validation ImageFolder, indexed like `torchvision.datasets.ImageFolder`.

    `unit_images(ids, (H, W))` returns the k exemplar images of a unit as
    uint8 k x 3 x H x W, transformed like the exemplars were. Recently used
    images are cached, since top images repeat across units.
    """

    def __init__(self, root: str | Path, *, legacy_resize: bool = False, name: str = "imagenet") -> None:
        from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

        self.root = Path(root)
        self.name = name
        self.legacy_resize = legacy_resize
        if not self.root.is_dir():
            raise MilanError(f"--{name} {self.root}: not a folder; expected the validation set as "
                             "<wnid>/<image> class folders (torchvision ImageFolder layout)")
        try:
            _, class_to_idx = find_classes(str(self.root))
            samples = make_dataset(str(self.root), class_to_idx, extensions=IMG_EXTENSIONS)
        except (FileNotFoundError, RuntimeError) as e:
            raise MilanError(f"--{name} {self.root}: no images in ImageFolder layout ({e}). The raw ILSVRC2012 "
                             "val release is flat: sort it into one folder per class first") from None
        self.files = [Path(p) for p, _ in samples]
        self._cache: OrderedDict[tuple, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self.files)

    @property
    def note(self) -> str:
        return join_note(self.name, self.legacy_resize)

    def check_ids(self, ids: Iterable[int], where: str) -> None:
        """Refuse ids beyond the folder before anything is written."""
        top = max((int(i) for i in ids), default=-1)
        if top >= len(self):
            raise MilanError(f"{where}: image id {top} is beyond the {len(self)} images of ImageFolder "
                             f"{self.root}; is this the full {self.name} validation set?")

    def image(self, image_id: int, size: tuple[int, int]) -> np.ndarray:
        """Image `image_id` as uint8 3 x H x W, transformed to `size` (H, W)."""
        key = (int(image_id), tuple(size))
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        arr = self._load(int(image_id), size)
        self._cache[key] = arr
        if len(self._cache) > _CACHE_IMAGES:
            self._cache.popitem(last=False)
        return arr

    def _load(self, image_id: int, size: tuple[int, int]) -> np.ndarray:
        import torch
        from PIL import Image
        from torchvision.transforms import functional as TF

        if not 0 <= image_id < len(self):
            raise MilanError(f"image id {image_id} is beyond the {len(self)} images of ImageFolder {self.root}")
        path = self.files[image_id]
        try:
            with Image.open(path) as im:
                img = im.convert("RGB")
        except OSError as e:
            raise MilanError(f"{path}: cannot read image {image_id} ({e})") from None
        h, w = int(size[0]), int(size[1])
        if self.legacy_resize:
            # The original merge: Resize((H, W)) + ToTensor, times 255, clamp, uint8.
            t = TF.to_tensor(TF.resize(img, [h, w]))
            return (t * 255).clamp(0, 255).to(torch.uint8).numpy()
        side = round(min(h, w) * 256 / 224)
        img = TF.center_crop(TF.resize(img, side), [h, w])
        return np.ascontiguousarray(np.asarray(img, dtype=np.uint8).transpose(2, 0, 1))

    def unit_images(self, ids: Sequence[int], size: tuple[int, int], where: str = "") -> np.ndarray:
        """The exemplar images of one unit (ids in rank order), uint8 k x 3 x H x W."""
        try:
            return np.stack([self.image(i, size) for i in ids])
        except MilanError as e:
            raise MilanError(f"{where}: {e}" if where else str(e)) from None


def open_sources(dirs: Mapping[str, str | Path | None], legacy_resize: bool = False) -> dict[str, ImageSource]:
    """`{"imagenet": DIR, "places365": DIR}` (None entries skipped) -> ImageSource per dataset."""
    return {name: ImageSource(d, legacy_resize=legacy_resize, name=name) for name, d in dirs.items() if d}


def _rows_of(folder: Path, config: str, meta: dict) -> Iterator:
    """The stored rows of a built config, split by split in stored order, as UnitRows (no images)."""
    import pyarrow.parquet as pq

    for name in sorted(meta.get("files", {}).get("train", [])) + sorted(meta.get("files", {}).get("test", [])):
        pf = pq.ParquetFile(folder / "data" / config / name)
        for batch in pf.iter_batches(batch_size=8, columns=["layer", "unit", "masks", "image_ids",
                                                            "annotations", "truth"]):
            for rec in batch.to_pylist():
                yield UnitRow(layer=rec["layer"], unit=rec["unit"], images=None,
                              masks=np.stack([(_decode(c, "L") > 127)[None] for c in rec["masks"]]),
                              image_ids=rec["image_ids"], annotations=rec["annotations"], truth=rec["truth"])


def join_folder(folder: str | Path, sources: Mapping[str, ImageSource], configs: Sequence[str] | None = None,
                *, progress: bool = True) -> list[str]:
    """Add pixels to built configs whose images were not shipped; returns the configs rewritten.

    Every id of every config to join is checked against its source first, so a
    too-small folder fails before anything changes; each config is then
    rewritten atomically by the writer (staging + rename), one at a time.
    """
    import pyarrow.parquet as pq

    folder = Path(folder)
    meta_dir = folder / "meta"
    if not meta_dir.is_dir() or not (folder / "data").is_dir():
        raise MilanError(f"{folder}: not a built corpus (no meta/ or data/); run `milannotations build` first")
    metas = {m["config"]: m for m in read_metas(folder)}
    if configs:
        unknown = [c for c in configs if c not in metas]
        if unknown:
            raise MilanError(f"{folder}: config(s) {', '.join(unknown)} not built; built: {', '.join(metas)}")
    todo = []
    for config, meta in metas.items():
        if configs and config not in configs:
            continue
        if not str(meta.get("provenance", {}).get("images", "")).startswith(NOT_SHIPPED):
            continue
        dataset = meta.get("dataset")
        src = sources.get(dataset)
        if src is None:
            if configs:
                raise MilanError(f"{config}: images come from {dataset} val; pass --{dataset} DIR")
            continue
        todo.append((config, meta, src))
    if not todo:
        hint = "" if sources else "; pass --imagenet DIR"
        raise MilanError(f"{folder}: no config needs joining with the given source(s){hint}")
    for config, meta, src in todo:  # check every id before writing anything
        for name in meta.get("files", {}).get("train", []) + meta.get("files", {}).get("test", []):
            table = pq.read_table(folder / "data" / config / name, columns=["unit_id", "image_ids"])
            for uid, ids in zip(table.column("unit_id").to_pylist(), table.column("image_ids").to_pylist()):
                src.check_ids(ids, f"{config}: unit {uid}")
    done = []
    for config, meta, src in todo:
        split_doc = json.loads((folder / "splits" / f"{config}.json").read_text())
        split_of = {u: s for s in ("train", "test") for u in split_doc[s]}
        keep = {f.name for f in fields(ConfigMeta)} - {"counts", "builder_version"}
        cm = ConfigMeta(**{k: v for k, v in meta.items() if k in keep})
        cm.provenance = {**cm.provenance, "images": src.note}

        def rows(config=config, meta=meta, src=src):
            for row in _rows_of(folder, config, meta):
                uid = unit_id(config, row.layer, row.unit)
                row.images = src.unit_images(list(row.image_ids), row.masks.shape[-2:], f"{config}: unit {uid}")
                yield row

        total = sum(meta.get("counts", {}).values()) or None
        write_config(folder, cm, rows(), split_of, progress=progress, total=total)
        done.append(config)
    return done
