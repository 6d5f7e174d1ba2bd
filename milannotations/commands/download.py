"""`milannotations download [CONFIG ...]`: fetch the original zips, resumably, verified by sha256."""
from __future__ import annotations

import argparse

from ..cli import add_common_flags


def register(sub) -> None:
    p = sub.add_parser("download", help="download the original MILANNOTATIONS zips (resumable, sha256-verified)",
                       description=__doc__)
    p.add_argument("configs", nargs="*", metavar="CONFIG", help="configs to fetch (default: all seven)")
    p.add_argument("--mirror", help="base URL serving <config>.zip instead of http://milan.csail.mit.edu/data")
    add_common_flags(p, output="folder for the zips (default: $XDG_CACHE_HOME/milannotations/zips)", progress=False)
    p.add_argument("--manifest", help="sha256 manifest to verify against / record into "
                                      "(default: the one shipped in the package)")
    p.add_argument("--retries", type=int, default=5, help="retries per file, with exponential backoff")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import logging

    from ..download import MANIFEST, download

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    results = download(args.configs or None, out=args.output, mirror=args.mirror,
                       manifest=args.manifest or MANIFEST, retries=args.retries)
    for r in results:
        flag = "  (trusted on first use: recorded in the manifest)" if r.trusted_on_first_use else "  (verified)"
        print(f"{r.path}  {r.size} bytes  sha256 {r.sha256}{flag}")
    return 0
