"""`milannotations build`: convert original zips into a hub-ready dataset folder (all or nothing)."""
from __future__ import annotations

import argparse

from ..paths import corpus_dir
from ..cli import add_common_flags
from . import add_image_source_args, quiet_libraries


def register(sub) -> None:
    p = sub.add_parser("build", help="convert original zips into a Hugging Face dataset folder",
                       description=__doc__)
    p.add_argument("configs", nargs="*", metavar="CONFIG", help="configs to build (default: every zip found)")
    p.add_argument("--zip-dir", required=True, help="folder holding <config>.zip (see `milannotations download`)")
    add_common_flags(p, output="dataset folder to write (default: $XDG_CACHE_HOME/milannotations/corpus, where "
                               "milannotations.load and info look); load it from anywhere with "
                               "load_dataset(PATH, CONFIG)")
    add_image_source_args(p)
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="processes that read and PNG-encode units (default: every core this process may use); "
                        "the output bytes are the same for any N")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..build import build
    from ..fsutil import check_corpus_dir

    args.output = str(check_corpus_dir(args.output or corpus_dir(), "--output"))
    if args.no_progress:
        quiet_libraries()
    built = build(args.zip_dir, args.output, args.configs or None, imagenet=args.imagenet,
                  places365=args.places365, legacy_resize=args.legacy_resize, progress=not args.no_progress,
                  workers=args.workers)
    print(f"built {', '.join(built)} into {args.output}")
    return 0
