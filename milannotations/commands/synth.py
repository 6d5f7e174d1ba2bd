"""`milannotations synth`: build the synthetic ground-truth corpus into a folder, or into the cache.

Without `--output` the configs are built (once) into the cached default world that `load()`,
`milan-eval` and `milan-describe` read: the command-line face of `milannotations.prepare()`.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import MilanError
from ..fsutil import check_corpus_dir
from ..synth.catalog import DEFAULT_UNITS, POOL_SIZE, SYNTH_CONFIGS, SYNTH_NET_CONFIGS
from ..cli import add_common_flags
from . import quiet_libraries


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "synth", help="build the synthetic ground-truth corpus (scenes, known neurons, generated descriptions)",
        description="Write synthetic configs in the hub-ready layout (data/, splits/, meta/, README.md). "
                    "The default builds the four annotated configs; name synth-net-plain / synth-net-cluttered "
                    "to add exemplars of the trained synthetic backbone's own units (trains it once, cached).")
    add_common_flags(p, output="output folder (created or updated); default: the cache's default world (seed 0, "
                               "default units and pool), where load() finds it, building only what is missing",
                     output_type=Path, progress_aliases=("--quiet",),
                     seed="world seed: scenes, units, noise, descriptions (default 0)")
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
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="processes that build the annotated configs (default: every core this process may use); "
                        "the bytes written are the same for any N")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..synth.build import build_synth  # scenes, neurons and the backbone: loaded only to build

    if args.no_progress:
        quiet_libraries()
    if args.output is None:
        return _run_cache(args)
    check_corpus_dir(args.output, "--output")
    out = build_synth(args.output, seed=args.seed, units=args.units, configs=args.configs,
                      pool_size=args.pool_size,
                      progress=not args.no_progress, cache_dir=args.backbone_cache,
                      backbone_steps=args.backbone_steps, workers=args.workers)
    print(f"wrote synthetic corpus to {out}")
    return 0


def _run_cache(args: argparse.Namespace) -> int:
    from ..prepare import prepare

    changed = [flag for flag, value, default in (
        ("--seed", args.seed, 0), ("--units", args.units, DEFAULT_UNITS), ("--pool-size", args.pool_size, POOL_SIZE),
        ("--backbone-cache", args.backbone_cache, None), ("--backbone-steps", args.backbone_steps, None))
        if value != default]
    if changed:
        raise MilanError(f"{', '.join(changed)}: a world other than the cached default that load() reads; "
                         "pass --output DIR too (then load(..., root=DIR))")
    out = prepare(args.configs, progress=not args.no_progress, workers=args.workers)
    print(f"synthetic corpus ready in the cache: {out}")
    return 0
