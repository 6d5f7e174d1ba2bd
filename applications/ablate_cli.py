"""`milan-ablate`: zero units of a model and measure its accuracy on a labelled image folder.

    milan-ablate --model torchvision:resnet18 --weights model.safetensors --images val/ \\
        --words text,word,letter --descriptions descriptions.csv --curve --output ablate-out/

Units come from one of `--units-file` (lines `layer/unit` or `config/layer/unit`,
or a CSV with `unit_id`), `--words w1,w2` (units whose description in
`--descriptions` names one of the words) or `--query TEXT` (the top `--k` hits
of `applications.search.search` over `--descriptions`). `--images` is a
torchvision ImageFolder: class i is the i-th class folder in sorted order,
which must be the model's output index i.

Writes `results.json` (accuracy before and after with Wilson 95% intervals, the
paired bootstrap interval of the change, the units) and `units.txt`; with
`--curve`, `curve.csv`, `curve.json` and `curve.png`: accuracy as growing
prefixes are removed in three orders (the selected units least cost first,
random units, all units of the same layers least cost first; costs are
single-unit accuracy losses on the same images).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from milannotations.cli import OneLineParser, add_common_flags, run as run_cli
from milannotations.errors import MilanError


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="milan-ablate", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="torchvision:<name> or package.module:factory")
    p.add_argument("--weights", default="none", help="PATH (.safetensors or weights-only torch file), "
                   "imagenet (torchvision weights from the local torch cache) or none")
    p.add_argument("--images", required=True, type=Path, help="labelled ImageFolder (class subfolders)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--units-file", type=Path, default=None, help="units to zero, one per line")
    which.add_argument("--query", default=None, help="zero the top --k units of a search over --descriptions")
    which.add_argument("--words", default=None, help="zero units whose description names one of these "
                       "comma-separated words")
    p.add_argument("--descriptions", type=Path, default=None, help="descriptions.csv (unit_id,layer,unit,description)")
    p.add_argument("--k", type=int, default=20, help="units taken from a --query (default 20)")
    p.add_argument("--curve", action="store_true", help="also write the ablation curve (csv, json, png)")
    p.add_argument("--steps", type=int, default=10, help="points per curve ordering (default 10)")
    p.add_argument("--resize", type=int, default=256, help="Resize() before the centre crop (default 256)")
    p.add_argument("--crop", type=int, default=224, help="CenterCrop() size (default 224)")
    p.add_argument("--normalize", default="auto", choices=("auto", "imagenet", "none"),
                   help="model-input normalisation (auto: ImageNet mean/std for torchvision models)")
    p.add_argument("--batch-size", type=int, default=64)
    add_common_flags(p, output="folder for results.json, units.txt and the curve", output_type=Path,
                     output_required=True, output_aliases=(), device="", seed="random orderings and bootstrap",
                     limit="use only the first N images (ImageFolder order)")
    p.set_defaults(func=run)
    return p


def _select(args):
    from .ablate import read_descriptions, read_units_file, select_by_words

    if args.units_file is not None:
        if args.descriptions is not None:
            raise MilanError("--descriptions is used with --words or --query, not with --units-file")
        return read_units_file(args.units_file), "units-file", None
    if args.descriptions is None:
        raise MilanError(f"{'--words' if args.words is not None else '--query'} needs --descriptions CSV")
    descriptions = read_descriptions(args.descriptions)
    if args.words is not None:
        words = [w.strip() for w in args.words.split(",") if w.strip()]
        if not words:
            raise MilanError("--words names no words")
        units = select_by_words(descriptions, words)
        return units, f"words {','.join(words)}", descriptions
    if not args.query.strip():
        raise MilanError("--query is empty")
    if args.k < 1:
        raise MilanError(f"--k must be at least 1, got {args.k}")
    from . import search as search_mod
    from .ablate import parse_unit

    hits = search_mod.search(str(args.descriptions), args.query, args.k)
    units = [parse_unit(h.unit_id, where="search hit") for h in hits]
    return units, f"query {args.query!r} (top {args.k})", descriptions


def run(args: argparse.Namespace) -> int:
    import torch

    from milannotations.fsutil import atomic_write_text, check_output_dir

    from .ablate import (ablation_curve, correctness, least_cost_first, paired_bootstrap, random_order,
                         single_unit_costs, wilson, write_curve)
    from .ablate import labelled_folder

    out = check_output_dir(args.output)
    if args.limit is not None and args.limit < 1:
        raise MilanError(f"--limit must be at least 1, got {args.limit}")
    if args.steps < 1:
        raise MilanError(f"--steps must be at least 1, got {args.steps}")
    units, how, _descriptions = _select(args)
    if not units:
        raise MilanError(f"no unit was selected by {how}")
    from milannotations.exemplars.models import load_model

    try:
        device = torch.device(args.device)
    except RuntimeError as e:
        raise MilanError(f"--device {args.device!r}: {e}") from e
    loaded = load_model(args.model, args.weights, normalize=args.normalize, seed=args.seed)
    model = loaded.module.to(device).eval()
    t0 = time.perf_counter()
    x, y, classes = labelled_folder(args.images, resize=args.resize, crop=args.crop, normalize=loaded.normalize,
                                    limit=args.limit)
    kw = {"batch_size": args.batch_size, "device": device}
    base = correctness(model, x, y, (), **kw)
    with torch.no_grad():
        n_out = int(model(x[:1].to(device)).shape[1])
    if n_out < len(classes):
        raise MilanError(f"--images has {len(classes)} classes but the model outputs {n_out} scores")
    after = correctness(model, x, y, units, **kw)
    change = paired_bootstrap(base, after, seed=args.seed)
    result = {
        "model": args.model, "weights": str(args.weights), "images": str(args.images), "n_images": int(len(y)),
        "classes": classes, "selection": how, "units": [str(u) for u in units],
        "accuracy": wilson(int(base.sum()), len(base)).to_dict(),
        "ablated_accuracy": wilson(int(after.sum()), len(after)).to_dict(),
        "change": {"value": change[0], "low": change[1], "high": change[2],
                   "interval": "paired bootstrap over images, 2000 resamples, 95%", "seed": args.seed},
    }
    points = None
    if args.curve:
        from .ablate import UnitRef, layer_units

        layers = list(dict.fromkeys(u.layer for u in units))
        every = layer_units(model, layers, x[:1].to(device))
        missing = [str(u) for u in units if u not in set(every)]
        if missing:
            raise MilanError(f"unit {missing[0]} does not exist in the model")

        def evaluate(us):
            return correctness(model, x, y, us, **kw)

        costs = single_unit_costs(evaluate, every)
        orders = {"selected, least cost first": least_cost_first(units, costs),
                  "random": random_order(every, args.seed),
                  "all units, least cost first": least_cost_first(every, costs)}
        top = len(units)
        counts = sorted({int(round(top * i / args.steps)) for i in range(args.steps + 1)})
        points = ablation_curve(evaluate, orders, counts, len(every))
        result["curve"] = {"counts": counts, "layers": layers, "units_in_layers": len(every),
                           "costs": {str(u): c for u, c in costs.items() if isinstance(u, UnitRef)}}
    result["seconds"] = round(time.perf_counter() - t0, 2)
    out.mkdir(parents=True, exist_ok=True)  # only now: a refused run leaves nothing behind
    if points is not None:
        write_curve(points, out, title=f"{args.model}: {how}")
    atomic_write_text(out / "units.txt", "\n".join(str(u) for u in units) + "\n")
    atomic_write_text(out / "results.json", json.dumps(result, indent=1) + "\n")
    a, b = result["accuracy"], result["ablated_accuracy"]
    print(f"{len(units)} units ({how}): accuracy {a['value']:.4f} [{a['low']:.4f}, {a['high']:.4f}] -> "
          f"{b['value']:.4f} [{b['low']:.4f}, {b['high']:.4f}] on {len(y)} images; change {change[0]:+.4f} "
          f"[{change[1]:+.4f}, {change[2]:+.4f}]; wrote {out}", file=sys.stdout)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(argv, build_parser())


if __name__ == "__main__":
    sys.exit(main())
