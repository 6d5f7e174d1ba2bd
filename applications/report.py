"""A browsable static report of a model's units: exemplars with their masks, and what each unit is said to do.

    from applications.report import build_report, report_model
    build_report("report/", descriptions="descriptions.csv", exemplars="corpus/")     # the report step alone
    report_model("report/", model="torchvision:resnet18", images="imgs/", layers="layer4")  # the whole pipeline

`report_model` runs the three steps of `milan-report`: exemplars (the `milannotations exemplars`
engine: resumable, torchrun-able), descriptions (any describer, built by
`baselines.registry.build_describer` through `eval.cli.describe_units`, as `milan-describe` does) and
`build_report`. The exemplar corpus and `descriptions.csv` stay in a work folder, so the report
alone can be rebuilt from them (`--exemplars`, `--descriptions`) without recomputing either.

The report is one folder that works offline from disk (no network, no CDN): `index.html` with every
unit's record embedded as JSON, one small JPEG contact sheet per unit in `thumbs/` (its exemplars,
dimmed outside the unit's mask), and the `descriptions.csv` it shows. The page draws unit cards from
the embedded JSON in pages as the reader scrolls (IntersectionObserver), never all of them up front,
so 5,000 units cost 5,000 small JSON records and about a hundred DOM cards until one scrolls; images
load lazily (`loading="lazy"`). Filtering (free text, layer) and sorting are client-side and kept in
the URL (`#q=dog&layer=layer4&sort=desc-az`, or the same as `?q=...`), so a filtered view is a link.

Every user string (descriptions, unit ids, layer, model and describer names, the title) reaches the
page either through `html.escape` or as JSON inside `<script type="application/json">` with `<`, `>`
and `&` written as `\\u003c`, `\\u003e`, `\\u0026` (so neither `</script>` nor `<!--` can end the
block), and the script puts it in the DOM with `textContent` / `setAttribute`, never as markup.
Thumbnail files are named by position, never by a user string.
"""
from __future__ import annotations

import html
import io
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from milannotations.errors import MilanError
from milannotations.fsutil import check_output_dir, replace_path, staging_dir

from .search import Descriptions, load_units

#: Exemplar tiles per row of a unit's contact sheet.
SHEET_COLUMNS = 5
#: Brightness kept outside a unit's mask on its thumbnails (1 = no dimming).
DIM = 0.3
#: Cards the page draws at first and per further page.
PAGE_SIZE = 120
REPORT_VERSION = "1"


@dataclass
class ReportUnit:
    """One card of the report."""

    unit_id: str
    layer: str
    unit: int | None
    description: str | None  # None: not described
    config: str = ""
    model: str = ""
    thumb: str = ""  # path of its contact sheet inside the report, "" when it has no exemplars
    size: tuple[int, int] = (0, 0)  # width, height of the sheet in pixels
    exemplars: int = 0


@dataclass
class ReportStats:
    """What `build_report` did and how long each part took (seconds), for the CLI and the benchmark."""

    units: int = 0
    thumbnails: int = 0
    layers: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    path: Path | None = None


# --------------------------------------------------------------------------- reading an exemplar corpus

def corpus_configs(folder: str | Path) -> list[str]:
    """Config names of a corpus folder written by `milannotations exemplars` (`data/<config>/*.parquet`)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MilanError(f"--exemplars {folder}: no such folder (expected a folder written by "
                         "`milannotations exemplars` or milan-report)")
    data = folder / "data"
    configs = sorted(p.name for p in data.iterdir() if p.is_dir() and any(p.glob("*.parquet"))) \
        if data.is_dir() else []
    if not configs:
        raise MilanError(f"--exemplars {folder}: holds no built configs (expected {folder}/data/<config>/*.parquet)")
    return configs


def _config_meta(folder: Path, config: str) -> dict:
    path = folder / "meta" / f"{config}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError) as e:
        raise MilanError(f"{path}: not a readable config meta file ({e})") from None


def _parquet_files(folder: Path, config: str) -> list[Path]:
    meta = _config_meta(folder, config)
    files = meta.get("files")
    if isinstance(files, dict):
        named = [folder / "data" / config / f for split in sorted(files) for f in files[split]]
        if named and all(p.is_file() for p in named):
            return named
    return sorted((folder / "data" / config).glob("*.parquet"))


_INFO_COLUMNS = ("unit_id", "config", "model", "layer", "unit")


def read_corpus_units(folder: str | Path) -> list[ReportUnit]:
    """Every unit of every config in `folder`, in model order: config, then the layers in the order
    the exemplar run was given them (its meta file), then unit index. Reads no pixels."""
    import pyarrow.parquet as pq

    folder = Path(folder)
    units: list[ReportUnit] = []
    for config in corpus_configs(folder):
        meta = _config_meta(folder, config)
        layer_rank = {str(la): i for i, la in
                      enumerate(meta.get("provenance", {}).get("exemplars", {}).get("layers", []) or [])}
        rows = []
        for path in _parquet_files(folder, config):
            try:
                table = pq.read_table(path, columns=list(_INFO_COLUMNS))
            except Exception as e:  # pyarrow raises several types for a broken file
                raise MilanError(f"{path}: not a readable unit parquet file ({type(e).__name__}: {e})") from None
            rows.extend(table.to_pylist())
        seen: dict[str, int] = {}
        for r in rows:
            seen.setdefault(str(r["layer"]), len(seen))
        rows.sort(key=lambda r: (layer_rank.get(str(r["layer"]), len(layer_rank) + seen[str(r["layer"])]),
                                 int(r["unit"]), str(r["unit_id"])))
        units.extend(ReportUnit(str(r["unit_id"]), str(r["layer"]), int(r["unit"]), None, str(r["config"]),
                                str(r["model"])) for r in rows)
    return units


def iter_exemplar_pixels(folder: str | Path, wanted: set[str], batch_rows: int = 16
                         ) -> Iterator[tuple[str, str, list[int], list[bytes], list[bytes]]]:
    """(unit_id, config, image ids, PNG bytes of its images, of its masks) of the `wanted` units, reading a
    few rows at a time (a corpus of thousands of units is never held in memory at once)."""
    import pyarrow.parquet as pq

    folder = Path(folder)
    for config in corpus_configs(folder):
        for path in _parquet_files(folder, config):
            pf = pq.ParquetFile(path)
            columns = ["unit_id", "images", "masks"] + (["image_ids"] if "image_ids" in pf.schema_arrow.names else [])
            for batch in pf.iter_batches(batch_size=batch_rows, columns=columns):
                ids = batch.column(0).to_pylist()
                if not wanted.intersection(ids):
                    continue
                images = batch.column(1).to_pylist()
                masks = batch.column(2).to_pylist()
                image_ids = batch.column(3).to_pylist() if len(columns) == 4 else [None] * len(ids)
                for uid, ims, ms, iids in zip(ids, images, masks, image_ids):
                    if uid in wanted:
                        ims = [c["bytes"] for c in ims or [] if c and c.get("bytes")]
                        iids = list(iids or [])
                        yield uid, config, iids if len(iids) == len(ims) else [], ims, \
                            [c["bytes"] for c in ms or [] if c and c.get("bytes")]


# --------------------------------------------------------------------------- thumbnails

class TileCache:
    """Resized exemplar images by (config, image id), shared by the threads that make contact sheets.

    The same image is a top image of many units (it is stored once per unit in the corpus), and
    decoding its PNG is most of the cost of a thumbnail; the resized tile (tile x tile x 3 bytes)
    is what is kept, least recently used first out. A race makes a tile twice, never a wrong one.
    """

    def __init__(self, capacity: int = 8192) -> None:
        import threading
        from collections import OrderedDict

        self.capacity = capacity
        self._tiles: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key):
        with self._lock:
            tile = self._tiles.get(key)
            if tile is not None:
                self._tiles.move_to_end(key)
                self.hits += 1
            else:
                self.misses += 1
            return tile

    def put(self, key, tile) -> None:
        with self._lock:
            self._tiles[key] = tile
            if len(self._tiles) > self.capacity:
                self._tiles.popitem(last=False)


def _tile(data: bytes, tile: int, mode: str):
    """One PNG decoded and shrunk to tile x tile: `reduce` (a cheap box filter) by the whole factor, then a
    bilinear resize for the rest."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im = im.convert(mode)
    factor = min(im.size) // tile
    if factor >= 2:
        im = im.reduce(factor)
    if im.size != (tile, tile):
        im = im.resize((tile, tile), Image.BILINEAR)
    return im


def contact_sheet(images: Sequence[bytes], masks: Sequence[bytes], tile: int = 64, columns: int = SHEET_COLUMNS,
                  dim: float = DIM, quality: int = 82, *, keys: Sequence | None = None,
                  cache: TileCache | None = None) -> tuple[bytes, tuple[int, int]]:
    """JPEG bytes and (width, height) of one unit's exemplars as a grid of `tile`-pixel squares.

    Each image is shown as it is where the unit's mask is on and at `dim` brightness elsewhere (the
    mask is shrunk smoothly, so its edge is soft), the way the paper's figures show exemplars.
    Missing masks leave an image undimmed. `keys` (one per image, e.g. (config, image id)) and
    `cache` reuse the tiles of images already seen. PIL's codecs release the GIL, so a thread pool
    makes many sheets at once.
    """
    from PIL import Image

    n = len(images)
    if n == 0:
        raise ValueError("no images")
    cols = min(columns, n)
    rows = -(-n // cols)
    sheet = Image.new("RGB", (cols * tile, rows * tile), (24, 24, 24))
    keep = int(round(dim * 255))
    for i, data in enumerate(images):
        key = keys[i] if keys is not None and cache is not None else None
        img = cache.get(key) if key is not None else None
        if img is None:
            img = _tile(data, tile, "RGB")
            if key is not None:
                cache.put(key, img)
        if i < len(masks):
            # brightness keep/255 outside the mask, 1 inside: the mask's levels mapped to [keep, 255]
            alpha = _tile(masks[i], tile, "L").point(lambda v: keep + (255 - keep) * v // 255)
            img = Image.composite(img, Image.new("RGB", img.size, (0, 0, 0)), alpha)
        r, c = divmod(i, cols)
        sheet.paste(img, (c * tile, r * tile))
    buf = io.BytesIO()
    sheet.save(buf, format="JPEG", quality=quality)
    return buf.getvalue(), (cols * tile, rows * tile)


def _write_sheet(path: Path, images: list[bytes], masks: list[bytes], keys: list | None, cache: TileCache,
                 tile: int, max_images: int | None) -> tuple[tuple[int, int], int]:
    if max_images is not None:
        images, masks = images[:max_images], masks[:max_images]
        keys = keys[:max_images] if keys is not None else None
    data, size = contact_sheet(images, masks, tile=tile, keys=keys, cache=cache)
    path.write_bytes(data)
    return size, len(images)


def write_thumbnails(corpus: Path, units: list[ReportUnit], folder: Path, *, tile: int = 64,
                     max_images: int | None = None, workers: int | None = None, progress: bool = False,
                     cache: TileCache | None = None) -> int:
    """Write the contact sheet of every unit that has exemplars into `folder` (`<position>.jpg`), in a thread
    pool; sets each unit's `thumb`, `size` and `exemplars`. Returns the number written."""
    index = {u.unit_id: i for i, u in enumerate(units)}
    folder.mkdir(parents=True, exist_ok=True)
    workers = workers or min(8, os.cpu_count() or 1)
    cache = cache if cache is not None else TileCache()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(units), desc="thumbnails", unit="unit")
    pending: dict[Future, int] = {}
    done = 0

    def collect(block: bool) -> None:
        nonlocal done
        for fut in [f for f in pending if block or f.done()]:
            i = pending.pop(fut)
            try:
                units[i].size, units[i].exemplars = fut.result()
            except (OSError, ValueError) as e:  # PIL: unreadable bytes
                raise MilanError(f"unit {units[i].unit_id}: an exemplar image cannot be decoded ({e})") from None
            units[i].thumb = f"thumbs/{i}.jpg"
            done += 1
            if bar is not None:
                bar.update(1)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="milan-thumbs") as pool:
        for uid, config, image_ids, images, masks in iter_exemplar_pixels(corpus, set(index)):
            if not images:
                continue
            i = index[uid]
            keys = [(config, int(j)) for j in image_ids] if image_ids and min(image_ids) >= 0 else None
            pending[pool.submit(_write_sheet, folder / f"{i}.jpg", images, masks, keys, cache, tile,
                                max_images)] = i
            if len(pending) >= 4 * workers:  # bounded: pixels of at most a few dozen units in memory
                wait(pending, return_when=FIRST_COMPLETED)
                collect(block=False)
        collect(block=True)
    if bar is not None:
        bar.close()
    return done


# --------------------------------------------------------------------------- the page

def script_json(obj: Any) -> str:
    """JSON that is safe inside an HTML `<script>` element: no `<`, `>` or `&` characters at all (they are
    written as JSON escapes, which only occur inside strings), and U+2028/U+2029 escaped for old parsers.
    So `</script>`, `<!--` and `<script` in a description cannot end or restart the element."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def render_page(units: Sequence[ReportUnit], *, title: str, subtitle: str = "", page_size: int = PAGE_SIZE) -> str:
    """The HTML of `index.html`: a header, the controls, and the embedded records the script draws."""
    from .report_assets import CSS, JS

    layers = list(dict.fromkeys(u.layer for u in units))
    data = {
        "version": REPORT_VERSION,
        "title": title,
        "page_size": int(page_size),
        "layers": layers,
        "columns": ["unit_id", "layer", "unit", "description", "thumb", "width", "height", "config"],
        "units": [[u.unit_id, u.layer, u.unit, u.description, u.thumb, u.size[0], u.size[1], u.config]
                  for u in units],
    }
    described = sum(u.description is not None for u in units)
    with_thumbs = sum(bool(u.thumb) for u in units)
    esc = html.escape
    layer_options = "".join(f'<option value="{esc(la)}">{esc(la)}</option>' for la in layers)
    thumbs_note = (" Thumbnails: each unit's top images, dimmed outside the region where the unit is active."
                   if with_thumbs else "")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src 'self' file: data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>{esc(title)}</title>
<style>{CSS}</style>
</head>
<body data-ready="0">
<header>
<h1>{esc(title)}</h1>
<p class="sub">{esc(subtitle)}</p>
<p class="sub">{len(units)} units in {len(layers)} layer{"s" if len(layers) != 1 else ""}; {described} described, {with_thumbs} with exemplars.{thumbs_note}</p>
<form id="controls" role="search" onsubmit="return false">
<label>Search <input id="q" type="search" placeholder="words in a description, layer or unit id" autocomplete="off"></label>
<label>Layer <select id="layer"><option value="">all layers</option>{layer_options}</select></label>
<label>Sort <select id="sort">
<option value="model">model order</option>
<option value="desc-az">description A-Z</option>
<option value="desc-za">description Z-A</option>
<option value="id">unit id</option>
</select></label>
<output id="count" aria-live="polite"></output>
</form>
</header>
<main id="report"></main>
<button type="button" id="more" hidden>show more</button>
<noscript><p>This report draws its unit cards with JavaScript; the same records are in descriptions.csv beside this page.</p></noscript>
<script type="application/json" id="report-data">{script_json(data)}</script>
<script>{JS}</script>
</body>
</html>
"""


# --------------------------------------------------------------------------- the report step

def _attach(units: list[ReportUnit], described: Iterable) -> list[ReportUnit]:
    """The corpus units with their descriptions; when descriptions are given only the described units,
    in the corpus's order, followed by described units the corpus lacks (cards without images)."""
    by_id = {u.unit_id: u for u in units}
    rows = list(described)
    out, extra = [], []
    for d in rows:
        if d.unit_id in by_id:
            by_id[d.unit_id].description = d.description
        else:
            extra.append(ReportUnit(d.unit_id, d.layer, d.unit, d.description,
                                    config=d.unit_id.split("/")[0] if d.unit_id.count("/") >= 2 else ""))
    wanted = {d.unit_id for d in rows}
    out = [u for u in units if u.unit_id in wanted]
    if extra:  # descriptions without a corpus (or beyond it): file order grouped by layer, then unit
        layer_rank = {la: i for i, la in enumerate(dict.fromkeys(u.layer for u in out + extra))}
        extra.sort(key=lambda u: (layer_rank[u.layer], u.unit if u.unit is not None else -1, u.unit_id))
    return out + extra


def _default_title(units: Sequence[ReportUnit]) -> str:
    models = list(dict.fromkeys(u.model or u.config for u in units if (u.model or u.config)))
    return f"Units of {', '.join(models)}" if models else "Units"


def build_report(output: str | Path, *, descriptions: Descriptions | None = None, exemplars: str | Path | None = None,
                 title: str | None = None, subtitle: str = "", tile: int = 64, max_images: int | None = None,
                 limit: int | None = None, seed: int = 0, workers: int | None = None, page_size: int = PAGE_SIZE,
                 progress: bool = False) -> ReportStats:
    """Write the report folder `output` from descriptions and/or an exemplar corpus; nothing else is computed.

    `descriptions`: a `descriptions.csv` path, rows or a mapping (see `applications.search.load_units`);
    when given, the report shows exactly the described units. `exemplars`: a corpus folder written by
    `milannotations exemplars` (thumbnails; without descriptions, every unit it holds). `limit` keeps N
    units chosen by a seeded hash of their ids (`eval.limit_indices`, as milan-describe chooses).
    `max_images` caps the exemplars per thumbnail. The folder is built beside `output` and renamed
    into place, so an earlier report stays whole until the new one is complete.
    """
    from eval.splits import limit_indices

    t0 = time.perf_counter()
    output = Path(output)
    check_output_dir(output)
    if descriptions is None and exemplars is None:
        raise MilanError("a report needs descriptions (a descriptions.csv), exemplars (a corpus folder), or both")
    if tile < 8 or tile > 512:
        raise MilanError(f"--tile must be between 8 and 512 pixels, got {tile}")
    if max_images is not None and max_images < 1:
        raise MilanError(f"--max-images must be at least 1, got {max_images}")
    if limit is not None and limit < 1:
        raise MilanError(f"--limit must be at least 1, got {limit}")
    if exemplars is not None and Path(exemplars).resolve() == output.resolve():
        raise MilanError(f"--output {output}: is the exemplar folder; write the report elsewhere")
    stats = ReportStats()
    described = load_units(descriptions) if descriptions is not None else None
    units = read_corpus_units(exemplars) if exemplars is not None else []
    if described is not None:
        units = _attach(units, described)
    if not units:
        raise MilanError("no units to report")
    keep = limit_indices([u.unit_id for u in units], limit, seed)
    units = [units[i] for i in keep]
    stats.seconds["read"] = time.perf_counter() - t0
    with staging_dir(output.parent, prefix=f".staging-{output.name}-") as stage:
        umask = os.umask(0)
        os.umask(umask)
        stage.chmod(0o777 & ~umask)  # a folder to publish, not mkdtemp's private 0700
        t1 = time.perf_counter()
        if exemplars is not None:
            stats.thumbnails = write_thumbnails(Path(exemplars), units, stage / "thumbs", tile=tile,
                                                max_images=max_images, workers=workers, progress=progress)
        stats.seconds["thumbnails"] = time.perf_counter() - t1
        t2 = time.perf_counter()
        page = render_page(units, title=title or _default_title(units), subtitle=subtitle, page_size=page_size)
        (stage / "index.html").write_text(page, encoding="utf-8")
        _write_descriptions(stage / "descriptions.csv", units)
        stats.seconds["page"] = time.perf_counter() - t2
        replace_path(stage, output)
    stats.units = len(units)
    stats.layers = list(dict.fromkeys(u.layer for u in units))
    stats.seconds["total"] = time.perf_counter() - t0
    stats.path = output / "index.html"
    return stats


def _write_descriptions(path: Path, units: Sequence[ReportUnit]) -> None:
    """The report's units as a descriptions.csv (for milan-search and milan-ablate beside the page)."""
    from eval.results import descriptions_csv

    path.write_text(descriptions_csv({"unit_id": u.unit_id, "layer": u.layer,
                                      "unit": -1 if u.unit is None else u.unit,
                                      "description": u.description or "", "split": "", "trial": 0}
                                     for u in units if u.description is not None), encoding="utf-8")


# --------------------------------------------------------------------------- the whole pipeline

def config_name(model: str) -> str:
    """A config name for a model spec: `torchvision:resnet18` -> `resnet18`, `pkg.mod:make_net` -> `make_net`."""
    tail = model.rsplit(":", 1)[-1].rsplit("/", 1)[-1]
    tail = tail[:-3] if tail.endswith(".py") else tail
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", tail.rsplit(".", 1)[-1] if ":" not in model else tail).strip("-.")
    return name or "model"


def default_work(output: str | Path) -> Path:
    """Where the pipeline keeps its exemplar corpus and descriptions: `<output>.work` beside the report."""
    output = Path(output)
    return output.with_name(output.name + ".work")


DEFAULT_DESCRIBER = "netdissect"
DEFAULT_DESCRIBER_ARGS = {"segmenter": "synth"}


def report_model(output: str | Path, *, model: str | None = None, images: str | Path | None = None,
                 layers: str | Sequence[str] | None = None, weights: str = "none", name: str | None = None,
                 exemplars: str | Path | None = None, descriptions: str | Path | None = None,
                 describer: str | Any | None = None, describer_args: dict | None = None,
                 work: str | Path | None = None, k: int = 15, resize: int = 256, crop: int = 224,
                 batch_size: int = 32, limit: int | None = None, seed: int = 0, device: str = "cpu",
                 progress: bool = True, title: str | None = None, tile: int = 64,
                 max_images: int | None = None, workers: int | None = None,
                 log=None) -> ReportStats | None:
    """Model -> exemplars -> descriptions -> report, each step skipped where its result is given.

    With `model` (+ `images`, `layers`), exemplars are computed into `<work>/exemplars` by the
    `milannotations exemplars` command's own code (so an interrupted run resumes from its finished
    chunks, and under `torchrun` the images are shared out by rank); with `exemplars` an existing
    corpus is read instead. Without `descriptions`, `describer` (default: NetDissect with the synthetic
    segmenter, which runs offline on any images) describes the units (`limit`: N of them, seeded) into
    `<work>/descriptions.csv`. Every input and the output are checked before any step starts. Under
    torchrun only rank 0 goes past the exemplars; the others return None.
    """
    rank = int(os.environ.get("RANK", "0"))
    log = log or (lambda msg: print(msg, file=sys.stderr) if rank == 0 else None)
    output = Path(output)
    check_output_dir(output)
    if model is not None and exemplars is not None:
        raise MilanError("give --model (to compute exemplars) or --exemplars (to reuse a corpus), not both")
    if model is None and exemplars is None and descriptions is None:
        raise MilanError("nothing to report: give --model with --images and --layers, or --exemplars, "
                         "or --descriptions")
    if model is not None and (images is None or not layers):
        raise MilanError("--model needs --images (a folder of images) and --layers (e.g. layer4)")
    if descriptions is not None and (describer is not None or describer_args):
        raise MilanError("give --descriptions (already written) or --describer (to write them), not both")
    if limit is not None and limit < 1:
        raise MilanError(f"--limit must be at least 1, got {limit}")
    if descriptions is not None:
        load_units(descriptions)  # a bad file is refused now, not after the exemplars
    if exemplars is not None:
        corpus_configs(exemplars)
    if images is not None and not Path(images).is_dir():
        raise MilanError(f"--images {images}: no such folder")
    work = Path(work) if work is not None else default_work(output)
    if model is not None or descriptions is None:
        check_output_dir(work, "--work")
    if work.resolve() == output.resolve():
        raise MilanError(f"--work {work}: is the report folder; keep them apart")
    if describer is None and descriptions is None:
        describer = DEFAULT_DESCRIBER
        describer_args = {**DEFAULT_DESCRIBER_ARGS, **(describer_args or {})}
    built = None
    if describer is not None:  # built once, now: one that cannot be built is refused before the exemplars
        from baselines.registry import Runtime, build_describer

        built = build_describer(describer, dict(describer_args or {}),
                                Runtime(device=device, seed=seed, progress=progress))

    if model is not None:
        name = name or config_name(model)
        exemplars = work / "exemplars"
        layer_text = layers if isinstance(layers, str) else ",".join(layers)
        log(f"milan-report: exemplars of {model} ({layer_text}) into {exemplars}")
        _run_exemplars(model=model, weights=weights, images=Path(images), layers=layer_text, name=name,
                       corpus=exemplars, k=k, resize=resize, crop=crop, batch_size=batch_size, device=device,
                       progress=progress)
        if rank != 0:
            return None
    if descriptions is None:
        from eval.cli import describe_units

        descriptions = work / "descriptions.csv"
        label = describer if isinstance(describer, str) else type(describer).__name__
        log(f"milan-report: describing with {label} into {descriptions}")
        describe_units(built, str(exemplars), output=descriptions, limit=limit, batch_size=batch_size,
                       progress=progress, device=device, seed=seed)
        limit = None  # the described units are the chosen ones
        subtitle = f"described by {label}" + (f" ({_args_text(describer_args)})" if describer_args else "")
    else:
        subtitle = f"descriptions from {Path(descriptions).name}" if isinstance(descriptions, (str, os.PathLike)) \
            else ""
    stats = build_report(output, descriptions=descriptions, exemplars=exemplars, title=title, subtitle=subtitle,
                         tile=tile, max_images=max_images, limit=limit, seed=seed, workers=workers,
                         progress=progress)
    if model is not None or subtitle.startswith("described by"):
        log(f"milan-report: exemplars and descriptions kept in {work}; rebuild the report alone with "
            f"--exemplars {exemplars} --descriptions {descriptions}")
    return stats


def _args_text(args: dict | None) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((args or {}).items()))


def _run_exemplars(*, model: str, weights: str, images: Path, layers: str, name: str, corpus: Path, k: int,
                   resize: int, crop: int, batch_size: int, device: str, progress: bool) -> None:
    """The `milannotations exemplars` command itself, called in this process with the flags it parses."""
    from milannotations.cli import build_parser

    argv = ["exemplars", "--model", model, "--weights", weights, "--images", str(images), "--layers", layers,
            "--name", name, "--output", str(corpus), "--k", str(k), "--resize", str(resize), "--crop", str(crop),
            "--batch-size", str(batch_size), "--device", device]
    if not progress:
        argv.append("--no-progress")
    args = build_parser().parse_args(argv)
    args.func(args)


def remove_work(work: Path) -> None:
    """Delete a pipeline work folder (the CLI's --clean)."""
    shutil.rmtree(work, ignore_errors=True)
