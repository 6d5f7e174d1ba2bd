"""`milannotations info [--root DIR]`: the configs of a built folder, with units per split, files verified.

Without `--root` it lists the real corpus in the cache and every synthetic corpus built there on first
use. Every parquet footer is opened and its rows checked against the config's meta record, so a
damaged folder is reported (one line naming the file, exit 2) instead of listed as fine.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import MilanError
from ..paths import corpus_dir, synth_dir


def register(sub) -> None:
    p = sub.add_parser("info", help="list the built configs of a folder and their units per split",
                       description=__doc__.splitlines()[0])
    p.add_argument("--root", help="built folder (default: the cache's corpus and synthetic folders, "
                                  "$XDG_CACHE_HOME/milannotations)")
    p.set_defaults(func=run)


def _roots(root: str | None) -> list[Path]:
    if root:
        return [Path(root)]
    synth = sorted(p for p in synth_dir().glob("*") if (p / "meta").is_dir())
    return [corpus_dir(), *synth]


def _table(root: Path) -> list[tuple[str, ...]]:
    from ..card import read_metas
    from ..verify import verify_config

    rows = []
    for m in read_metas(root):
        verify_config(root, m["config"])
        c = m.get("counts", {})
        train, test = int(c.get("train", 0)), int(c.get("test", 0))
        kind = "synthetic" if m.get("synthetic") else str(m.get("provenance", {}).get("images", "shipped"))
        rows.append((m["config"], str(train), str(test), str(train + test), kind))
    return rows


def run(args: argparse.Namespace) -> int:
    roots = [r for r in _roots(args.root) if (r / "meta").is_dir() and any((r / "meta").glob("*.json"))]
    if not roots:
        where = args.root or _roots(None)[0]
        raise MilanError(f"{where}: no built configs; run `milannotations build --output {where}` (or `synth`)")
    tables = [(root, _table(root)) for root in roots]  # verify everything before printing anything
    for root, body in tables:
        rows = [("config", "train", "test", "total", "images"), *body]
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        print(f"{root}")
        for r in rows:
            print("  " + "  ".join(r[i].ljust(widths[i]) if i == 0 else r[i].rjust(widths[i]) for i in range(4))
                  + "  " + r[4])
    return 0
