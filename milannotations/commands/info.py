"""`milannotations info [--root DIR]`: the configs of a built folder, with units per split."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("info", help="list the built configs of a folder and their units per split",
                       description=__doc__)
    p.add_argument("--root", help="built folder (default: $XDG_CACHE_HOME/milannotations/corpus)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..card import read_metas
    from ..errors import MilanError
    from ..load import default_root

    root = Path(args.root) if args.root else default_root() / "corpus"
    metas = read_metas(root) if (root / "meta").is_dir() else []
    if not metas:
        raise MilanError(f"{root}: no built configs; run `milannotations build --out {root}` (or `synth`)")
    rows = [("config", "train", "test", "total", "images")]
    for m in metas:
        c = m.get("counts", {})
        train, test = int(c.get("train", 0)), int(c.get("test", 0))
        kind = "synthetic" if m.get("synthetic") else str(m.get("provenance", {}).get("images", "shipped"))
        rows.append((m["config"], str(train), str(test), str(train + test), kind))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    print(f"{root}")
    for r in rows:
        print("  " + "  ".join(r[i].ljust(widths[i]) if i == 0 else r[i].rjust(widths[i]) for i in range(4))
              + "  " + r[4])
    return 0
