"""`milannotations synth`: build the synthetic ground-truth corpus into a folder."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..synth.build import DEFAULT_UNITS, POOL_SIZE
    from ..synth.catalog import SYNTH_CONFIGS, SYNTH_NET_CONFIGS

    p = subparsers.add_parser(
        "synth", help="build the synthetic ground-truth corpus (scenes, known neurons, generated descriptions)",
        description="Write synthetic configs in the hub-ready layout (data/, splits/, meta/, README.md). "
                    "The default builds the four annotated configs; name synth-net-plain / synth-net-cluttered "
                    "to add exemplars of the trained synthetic backbone's own units (trains it once, cached).")
    p.add_argument("--out", type=Path, required=True, help="output folder (created or updated)")
    p.add_argument("--seed", type=int, default=0, help="world seed: scenes, units, noise, descriptions (default 0)")
    p.add_argument("--units", type=int, default=DEFAULT_UNITS, help=f"units per config (default {DEFAULT_UNITS})")
    p.add_argument("--pool-size", type=int, default=POOL_SIZE,
                   help=f"scenes per domain that exemplars are drawn from (default {POOL_SIZE})")
    p.add_argument("--configs", nargs="+", default=None, metavar="CONFIG",
                   choices=[*SYNTH_CONFIGS, *SYNTH_NET_CONFIGS],
                   help="which configs (default: the four annotated ones)")
    p.add_argument("--backbone-cache", type=Path, default=None,
                   help="where the trained backbone is cached (default: the milannotations cache/models)")
    p.add_argument("--backbone-steps", type=int, default=None,
                   help="training steps of the backbone for synth-net configs (default: the module's default)")
    p.add_argument("--no-progress", "--quiet", dest="quiet", action="store_true",
                   help="no progress bars (--quiet: the same)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..fsutil import check_corpus_dir
    from ..synth.build import build_synth

    from . import quiet_libraries

    check_corpus_dir(args.out)
    if args.quiet:
        quiet_libraries()
    out = build_synth(args.out, seed=args.seed, units=args.units, configs=args.configs,
                      pool_size=args.pool_size,
                      progress=not args.quiet, cache_dir=args.backbone_cache,
                      backbone_steps=args.backbone_steps)
    print(f"wrote synthetic corpus to {out}")
    return 0
