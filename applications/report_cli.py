"""`milan-report`: one command from a model to a browsable static HTML report of its units.

    milan-report --model torchvision:resnet18 --images imgs/ --layers layer4 --output report/
    milan-report --exemplars report.work/exemplars --descriptions report.work/descriptions.csv --output report/

Steps: exemplars (`milannotations exemplars`; resumable, shardable with torchrun), descriptions
(`--describer`, default NetDissect with the synthetic segmenter; or `--descriptions CSV`), then the
report folder (`index.html`, `thumbs/`, `descriptions.csv`). Exemplars and descriptions are kept in
`--work` (default `<output>.work`) so the report alone can be rebuilt from them.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from milannotations.cli import OneLineParser, add_common_flags, run

from .report import DEFAULT_DESCRIBER, DEFAULT_DESCRIBER_ARGS, report_model


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="milan-report", description=__doc__.splitlines()[0],
                      epilog="Open <output>/index.html in a browser; it needs no network. "
                             "URL filters: index.html#q=dog&layer=layer4&sort=desc-az")
    g = p.add_argument_group("the model (exemplars are computed)")
    g.add_argument("--model", default=None, help="torchvision:<name> or package.module:factory")
    g.add_argument("--weights", default="none", help="PATH (.safetensors or weights-only torch file), imagenet or none")
    g.add_argument("--images", default=None, type=Path, help="ImageFolder or flat folder of images")
    g.add_argument("--layers", default=None, help="comma-separated submodule names, e.g. layer3,layer4")
    g.add_argument("--name", default=None, help="config name of the exemplars (default: from --model)")
    g.add_argument("--k", type=int, default=15, help="top images per unit (default 15)")
    g.add_argument("--resize", type=int, default=256, help="Resize() before the centre crop (default 256)")
    g.add_argument("--crop", type=int, default=224, help="CenterCrop() size (default 224)")
    g = p.add_argument_group("or what exists already")
    g.add_argument("--exemplars", default=None, type=Path, metavar="DIR",
                   help="an exemplar corpus folder (from `milannotations exemplars` or an earlier milan-report)")
    g.add_argument("--descriptions", default=None, type=Path, metavar="CSV",
                   help="descriptions.csv (unit_id,layer,unit,description) from milan-describe or milan-eval")
    g = p.add_argument_group("describing")
    g.add_argument("--describer", default=None,
                   help=f"describer name, package.module:attr or path/file.py:attr (default: {DEFAULT_DESCRIBER} "
                        f"with {','.join(f'{k}={v}' for k, v in DEFAULT_DESCRIBER_ARGS.items())})")
    g.add_argument("--describer-args", default="", metavar="K=V,...",
                   help="constructor arguments of the describer (without --describer: of the default, e.g. "
                        "segmenter=ade20k,model=PATH)")
    g.add_argument("--batch-size", type=int, default=32, help="images per forward pass, units per describe() call")
    g = p.add_argument_group("the report")
    g.add_argument("--title", default=None, help="page title (default: 'Units of <model>')")
    g.add_argument("--tile", type=int, default=64, help="thumbnail size of one exemplar in pixels (default 64)")
    g.add_argument("--max-images", type=int, default=None, metavar="N", help="at most N exemplars per card")
    g.add_argument("--workers", type=int, default=None, help="thumbnail threads (default: CPUs, at most 8)")
    g.add_argument("--work", default=None, type=Path, metavar="DIR",
                   help="where exemplars and descriptions are kept (default: <output>.work)")
    add_common_flags(p, output="report folder to write (index.html, thumbs/, descriptions.csv)",
                     output_type=Path, output_required=True, output_aliases=(),
                     device="where the model and describer run", seed="for describers that take one, and --limit",
                     limit="describe and show at most N units (a seeded choice)")
    p.set_defaults(func=_command)
    return p


def _command(args: argparse.Namespace) -> int:
    from baselines.registry import parse_describer_args
    from milannotations.dist import check_device

    check_device(args.device)
    describer_args = parse_describer_args(args.describer_args) if args.describer_args else None
    if args.no_progress:
        from milannotations.commands import quiet_libraries

        quiet_libraries()
    stats = report_model(args.output, model=args.model, images=args.images, layers=args.layers,
                         weights=args.weights, name=args.name, exemplars=args.exemplars,
                         descriptions=args.descriptions, describer=args.describer, describer_args=describer_args,
                         work=args.work, k=args.k, resize=args.resize, crop=args.crop, batch_size=args.batch_size,
                         limit=args.limit, seed=args.seed, device=args.device, progress=not args.no_progress,
                         title=args.title, tile=args.tile, max_images=args.max_images, workers=args.workers)
    if stats is not None:
        print(f"wrote a report of {stats.units} units ({stats.thumbnails} with thumbnails, layers "
              f"{', '.join(stats.layers)}) to {stats.path} in {stats.seconds['total']:.1f} s")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Console script `milan-report`."""
    return run(list(argv) if argv is not None else None, build_parser())


if __name__ == "__main__":
    sys.exit(main())
