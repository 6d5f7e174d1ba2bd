"""Ablation: switch off units chosen by name, by search or by what their descriptions say, and measure.

A unit is a channel of a named submodule's output (the corpus's `unit_id` is
`<config>/<layer>/<unit>`; here `layer/unit` is enough). `ablated(model, units)`
registers one forward hook per layer that zeroes those channels and removes the
hooks on exit, so the same model object can be measured with and without any
set of units, and nothing is left attached afterwards.

Accuracy comes with a Wilson 95% interval over images (closed form, so it needs
no seed and is exact at 0% and 100%); differences between two ablations of the
same images get a paired bootstrap interval over images (seeded).

`ablation_curve` removes growing prefixes of an ordering of units. The orderings
the paper compares are built here too: units picked by their descriptions
ordered "least accuracy lost first" (each unit's single-unit cost on validation
images), the same count of random units (seeded), and every unit sorted by the
same single-unit cost regardless of its description.
"""
from __future__ import annotations

import contextlib
import csv
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from milannotations.errors import MilanError

Z95 = 1.959963984540054


# ---------------------------------------------------------------------------- naming units
@dataclass(frozen=True, order=True)
class UnitRef:
    """One unit: channel `unit` of the output of submodule `layer`."""

    layer: str
    unit: int

    def __str__(self) -> str:
        return f"{self.layer}/{self.unit}"


def parse_unit(text: str, *, where: str = "unit") -> UnitRef:
    """`layer/unit` or the corpus's `config/layer/unit` -> UnitRef; anything else is one MilanError."""
    parts = text.strip().split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise MilanError(f"{where} {text!r}: expected layer/unit or config/layer/unit")
    layer, unit = parts[-2], parts[-1]
    if not unit.isdigit():
        raise MilanError(f"{where} {text!r}: the unit index {unit!r} is not a non-negative integer")
    return UnitRef(layer, int(unit))


def read_units_file(path: str | Path) -> list[UnitRef]:
    """Units, one per line (`layer/unit` or `config/layer/unit`); blank lines and `#` comments skipped.

    A CSV with a `unit_id` column (or `layer` and `unit` columns), such as a
    descriptions.csv, is read too, so a selection can be passed on as a file.
    """
    path = Path(path)
    if not path.is_file():
        raise MilanError(f"units file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise MilanError(f"units file {path} is not UTF-8 text ({e.reason} at byte {e.start})") from e
    first = text.splitlines()[0] if text.strip() else ""
    out: list[UnitRef] = []
    if "," in first and ("unit_id" in first or "layer" in first):
        rows = csv.DictReader(text.splitlines())
        for n, row in enumerate(rows, start=2):
            if row.get("unit_id"):
                out.append(parse_unit(row["unit_id"], where=f"{path} line {n}: unit"))
            elif row.get("layer") is not None and row.get("unit") is not None:
                out.append(parse_unit(f"{row['layer']}/{row['unit']}", where=f"{path} line {n}: unit"))
            else:
                raise MilanError(f"{path} line {n}: no unit_id (or layer and unit) value")
    else:
        for n, line in enumerate(text.splitlines(), start=1):
            line = line.split("#", 1)[0].strip()
            if line:
                out.append(parse_unit(line, where=f"{path} line {n}: unit"))
    if not out:
        raise MilanError(f"units file {path} names no units")
    return list(dict.fromkeys(out))


# ---------------------------------------------------------------------------- selecting by description
def matches_words(description: str, words: Iterable[str]) -> bool:
    """True when the description contains one of `words` as a whole word or phrase (case-insensitive).

    The rule is `applications.search.select_by_words`'s, so milan-search and
    milan-ablate pick the same units: whole words only ("star" matches
    "Star shapes", not "stars" nor "start"), so list every form you mean.
    """
    from .search import select_by_words as by_words

    return bool(by_words({"unit": description}, list(words)))


def select_by_words(descriptions: Mapping[UnitRef, str], words: Sequence[str]) -> list[UnitRef]:
    """The units whose description contains one of `words` (whole words), in unit order.

    This is the description-category rule of the paper's editing and audit
    experiments ("text", "word", "letter"; "face", "head", "nose", ...), the
    same rule as `applications.search.select_by_words` (which it calls).
    """
    from .search import select_by_words as by_words

    if not words:
        raise MilanError("no words to select units by")
    if not descriptions:
        return []
    by_id = {str(u): d for u, d in descriptions.items()}
    chosen = set(by_words(by_id, list(words)))
    return sorted(u for u in descriptions if str(u) in chosen)


def read_descriptions(path: str | Path) -> dict[UnitRef, str]:
    """descriptions.csv (`unit_id,layer,unit,description`, as milan-describe and milan-eval write it)."""
    path = Path(path)
    if not path.is_file():
        raise MilanError(f"descriptions file {path} does not exist")
    try:
        with path.open(encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
    except UnicodeDecodeError as e:
        raise MilanError(f"descriptions file {path} is not UTF-8 text") from e
    except csv.Error as e:
        raise MilanError(f"descriptions file {path}: {e}") from e
    out: dict[UnitRef, str] = {}
    for n, row in enumerate(rows, start=2):
        if "description" not in row or row["description"] is None:
            raise MilanError(f"{path} line {n}: no description column")
        if row.get("layer") not in (None, "") and row.get("unit") not in (None, ""):
            ref = parse_unit(f"{row['layer']}/{row['unit']}", where=f"{path} line {n}: unit")
        elif row.get("unit_id"):
            ref = parse_unit(row["unit_id"], where=f"{path} line {n}: unit_id")
        else:
            raise MilanError(f"{path} line {n}: no unit_id (or layer and unit) value")
        out[ref] = row["description"]
    if not out:
        raise MilanError(f"descriptions file {path} has no rows")
    return out


# ---------------------------------------------------------------------------- hooks
def _channel_counts(model: nn.Module, layers: Iterable[str]) -> dict[str, nn.Module]:
    modules: dict[str, nn.Module] = {}
    for layer in layers:
        try:
            modules[layer] = model.get_submodule(layer)
        except AttributeError as e:
            raise MilanError(f"layer {layer!r} is not a submodule of the model") from e
    return modules


@contextlib.contextmanager
def ablated(model: nn.Module, units: Iterable[UnitRef]) -> Iterator[nn.Module]:
    """Within the block, the output channels `units` of their layers are zero; hooks removed after.

    The hook replaces the layer's output by a copy with those channels zeroed
    (never in place: a residual branch or a recorder may hold the original).
    A unit index past the layer's channel count is a MilanError at the first
    forward pass, naming the unit.
    """
    by_layer: dict[str, list[int]] = {}
    for u in units:
        by_layer.setdefault(u.layer, []).append(int(u.unit))
    modules = _channel_counts(model, by_layer)
    handles = []

    def make_hook(layer: str, idx: list[int]):
        index = torch.tensor(sorted(set(idx)), dtype=torch.long)

        def hook(_module, _inputs, output):
            if not isinstance(output, torch.Tensor) or output.ndim < 2:
                raise MilanError(f"layer {layer!r} does not output a (batch, channels, ...) tensor")
            if int(index.max()) >= output.shape[1]:
                raise MilanError(f"unit {layer}/{int(index.max())} does not exist: layer {layer!r} has "
                                 f"{output.shape[1]} channels")
            out = output.clone()
            out[:, index.to(out.device)] = 0
            return out
        return hook

    try:
        for layer, idx in by_layer.items():
            handles.append(modules[layer].register_forward_hook(make_hook(layer, idx)))
        yield model
    finally:
        for h in handles:
            h.remove()


def layer_units(model: nn.Module, layers: Sequence[str], example: torch.Tensor) -> list[UnitRef]:
    """Every unit of `layers`, learned from one forward pass on `example` (a batch of model inputs)."""
    modules = _channel_counts(model, layers)
    sizes: dict[str, int] = {}
    handles = [m.register_forward_hook(lambda _m, _i, o, name=name: sizes.__setitem__(name, int(o.shape[1])))
               for name, m in modules.items()]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in handles:
            h.remove()
    return [UnitRef(layer, u) for layer in layers for u in range(sizes[layer])]


# ---------------------------------------------------------------------------- measuring
@dataclass(frozen=True)
class Accuracy:
    """An accuracy over n images with its Wilson 95% interval."""

    value: float
    low: float
    high: float
    correct: int
    n: int

    def to_dict(self) -> dict:
        return asdict(self)


def wilson(correct: int, n: int, z: float = Z95) -> Accuracy:
    """Wilson score interval for a proportion; exact at the ends, sensible for small n."""
    if n <= 0:
        raise MilanError("accuracy over no images")
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Accuracy(p, max(0.0, centre - half), min(1.0, centre + half), int(correct), int(n))


def paired_bootstrap(a: np.ndarray, b: np.ndarray, *, seed: int = 0, resamples: int = 2000
                     ) -> tuple[float, float, float]:
    """Mean of b - a (per-image correctness) and its 95% percentile interval, resampling images."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise MilanError("paired bootstrap needs two equal-length, non-empty correctness vectors")
    rng = np.random.default_rng(seed)
    d = b - a
    idx = rng.integers(0, len(d), (resamples, len(d)))
    means = d[idx].mean(axis=1)
    return float(d.mean()), float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def predict(model: nn.Module, inputs: torch.Tensor | Iterable[tuple[torch.Tensor, torch.Tensor]], *,
            batch_size: int = 256, device: str | torch.device = "cpu") -> np.ndarray:
    """Arg-max class of every input; `inputs` is a float tensor (N, C, H, W) or an iterable of batches."""
    model = model.eval()
    preds: list[np.ndarray] = []
    with torch.no_grad():
        if isinstance(inputs, torch.Tensor):
            for i in range(0, len(inputs), batch_size):
                preds.append(model(inputs[i:i + batch_size].to(device)).argmax(1).cpu().numpy())
        else:
            for x, _y in inputs:
                preds.append(model(x.to(device)).argmax(1).cpu().numpy())
    return np.concatenate(preds) if preds else np.zeros(0, np.int64)


def correctness(model: nn.Module, inputs: torch.Tensor, labels: np.ndarray | torch.Tensor,
                units: Iterable[UnitRef] = (), *, batch_size: int = 256,
                device: str | torch.device = "cpu") -> np.ndarray:
    """Bool per image: whether the model, with `units` zeroed, predicts its label."""
    with ablated(model, list(units)):
        pred = predict(model, inputs, batch_size=batch_size, device=device)
    return pred == np.asarray(labels)


def accuracy(model: nn.Module, inputs: torch.Tensor, labels, units: Iterable[UnitRef] = (), **kw) -> Accuracy:
    c = correctness(model, inputs, labels, units, **kw)
    return wilson(int(c.sum()), len(c))


# ---------------------------------------------------------------------------- orderings and curves
Evaluate = Callable[[Sequence[UnitRef]], np.ndarray]


def single_unit_costs(evaluate: Evaluate, units: Sequence[UnitRef]) -> dict[UnitRef, float]:
    """Accuracy lost when each unit alone is zeroed (negative: the unit's removal helps)."""
    base = float(np.mean(evaluate(())))
    return {u: base - float(np.mean(evaluate((u,)))) for u in units}


def least_cost_first(units: Sequence[UnitRef], costs: Mapping[UnitRef, float]) -> list[UnitRef]:
    """`units` sorted by single-unit cost, smallest (most helpful removal) first; ties by unit name."""
    return sorted(units, key=lambda u: (costs[u], u.layer, u.unit))


def random_order(units: Sequence[UnitRef], seed: int) -> list[UnitRef]:
    """A seeded permutation of `units` (the same seed gives the same order)."""
    rng = np.random.default_rng(seed)
    return [units[i] for i in rng.permutation(len(units))]


@dataclass
class CurvePoint:
    ordering: str
    removed: int
    fraction: float
    accuracy: Accuracy

    def row(self) -> dict:
        return {"ordering": self.ordering, "removed": self.removed, "fraction": round(self.fraction, 6),
                "accuracy": self.accuracy.value, "low": self.accuracy.low, "high": self.accuracy.high,
                "correct": self.accuracy.correct, "n": self.accuracy.n}


def ablation_curve(evaluate: Evaluate, orderings: Mapping[str, Sequence[UnitRef]], counts: Sequence[int],
                   total_units: int) -> list[CurvePoint]:
    """Accuracy after removing the first n units of each ordering, for each n in `counts`.

    Counts beyond an ordering's length are skipped, so a short selected list
    stops where it ends while the random and cost orderings go on.
    """
    points = []
    for name, order in orderings.items():
        for n in counts:
            if n > len(order):
                continue
            c = evaluate(list(order[:n]))
            points.append(CurvePoint(name, int(n), n / total_units, wilson(int(np.sum(c)), len(c))))
    return points


def write_curve(points: Sequence[CurvePoint], out_dir: Path, *, title: str = "ablation") -> tuple[Path, Path, Path]:
    """curve.csv, curve.json and curve.png (accuracy vs fraction of units removed, 95% bands)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from milannotations.fsutil import atomic_path, atomic_write_text

    out_dir = Path(out_dir)
    rows = [p.row() for p in points]
    csv_path, json_path, png_path = out_dir / "curve.csv", out_dir / "curve.json", out_dir / "curve.png"
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["ordering", "removed", "fraction", "accuracy", "low", "high",
                                             "correct", "n"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(csv_path, buf.getvalue())
    atomic_write_text(json_path, json.dumps(rows, indent=1) + "\n")
    fig, ax = plt.subplots(figsize=(6, 4))
    for name in dict.fromkeys(p.ordering for p in points):
        ps = [p for p in points if p.ordering == name]
        x = [p.fraction * 100 for p in ps]
        ax.plot(x, [p.accuracy.value * 100 for p in ps], marker="o", ms=3, label=name)
        ax.fill_between(x, [p.accuracy.low * 100 for p in ps], [p.accuracy.high * 100 for p in ps], alpha=0.15)
    ax.set_xlabel("units removed (% of the layers' units)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return csv_path, json_path, png_path


# ---------------------------------------------------------------------------- a labelled image folder
def labelled_folder(root: str | Path, *, resize: int = 256, crop: int = 224, normalize=None,
                    limit: int | None = None) -> tuple[torch.Tensor, np.ndarray, list[str]]:
    """Model inputs (N, 3, crop, crop), labels and class names of a torchvision ImageFolder.

    Class i is the i-th class folder in sorted order (ImageFolder's rule); files
    are read in the exemplar engine's order (`list_images`), so `--limit N`
    takes the same first N images as `milannotations exemplars` would. An
    unreadable image is one MilanError naming it: an accuracy over silently
    fewer images would not be the accuracy asked for.
    """
    from PIL import Image, UnidentifiedImageError

    from milannotations.exemplars.images import default_transform, list_images

    root = Path(root)
    if not root.is_dir():
        raise MilanError(f"--images {root} does not exist or is not a folder")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise MilanError(f"--images {root} has no class subfolders (a labelled ImageFolder is needed)")
    files = list_images(root)
    if limit is not None:
        files = files[:limit]
    transform = default_transform(resize, crop)
    xs, ys = [], []
    index = {c: i for i, c in enumerate(classes)}
    for f in files:
        try:
            with Image.open(f) as im:
                xs.append(transform(im.convert("RGB")))
        except (OSError, UnidentifiedImageError, ValueError) as e:
            raise MilanError(f"cannot read image {f}: {str(e).splitlines()[0]}") from e
        ys.append(index[f.relative_to(root).parts[0]])
    x = torch.stack(xs).float().div_(255.0)
    if normalize is not None:
        mean = torch.tensor(normalize[0], dtype=x.dtype).view(1, -1, 1, 1)
        std = torch.tensor(normalize[1], dtype=x.dtype).view(1, -1, 1, 1)
        x = (x - mean) / std
    return x, np.asarray(ys, np.int64), classes
