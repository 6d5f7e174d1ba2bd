"""`milannotations join --imagenet DIR --output DIR`: add ImageNet pixels to configs built without them."""
from __future__ import annotations

import argparse

from ..errors import MilanError
from ..paths import corpus_dir
from ..cli import add_common_flags
from . import add_image_source_args, quiet_libraries


def register(sub) -> None:
    p = sub.add_parser("join", help="add locally held source images to a built folder", description=__doc__)
    p.add_argument("configs", nargs="*", metavar="CONFIG", help="configs to join (default: every one needing it)")
    add_common_flags(p, output="the built dataset folder to update in place "
                               "(default: $XDG_CACHE_HOME/milannotations/corpus, where build writes)")
    add_image_source_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..imagejoin import join_folder, open_sources

    args.output = args.output or str(corpus_dir())
    if args.no_progress:
        quiet_libraries()

    sources = open_sources({"imagenet": args.imagenet, "places365": args.places365}, args.legacy_resize)
    if not sources:
        raise MilanError("pass --imagenet DIR (or --places365 DIR): the local validation ImageFolder to join from")
    done = join_folder(args.output, sources, args.configs or None, progress=not args.no_progress)
    print(f"joined images into {', '.join(done)} under {args.output}")
    print("note: datasets.load_dataset(<folder>, ...) caches a local folder by its name and config; pass "
          "download_mode='force_redownload' once (milannotations.load needs nothing)")
    return 0
