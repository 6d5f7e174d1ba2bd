"""`milannotations join --imagenet DIR --out DIR`: add ImageNet pixels to configs built without them."""
from __future__ import annotations

import argparse

from ..errors import MilanError
from ..paths import corpus_dir
from . import add_image_source_args, quiet_libraries


def register(sub) -> None:
    p = sub.add_parser("join", help="add locally held source images to a built folder", description=__doc__)
    p.add_argument("configs", nargs="*", metavar="CONFIG", help="configs to join (default: every one needing it)")
    p.add_argument("--out", default=None, help="the built dataset folder to update in place "
                                               "(default: $XDG_CACHE_HOME/milannotations/corpus, where build writes)")
    add_image_source_args(p)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..imagejoin import join_folder, open_sources

    args.out = args.out or str(corpus_dir())
    if args.no_progress:
        quiet_libraries()

    sources = open_sources({"imagenet": args.imagenet, "places365": args.places365}, args.legacy_resize)
    if not sources:
        raise MilanError("pass --imagenet DIR (or --places365 DIR): the local validation ImageFolder to join from")
    done = join_folder(args.out, sources, args.configs or None, progress=not args.no_progress)
    print(f"joined images into {', '.join(done)} under {args.out}")
    print("note: datasets.load_dataset(<folder>, ...) caches a local folder by its name and config; pass "
          "download_mode='force_redownload' once (milannotations.load needs nothing)")
    return 0
