"""`milannotations push --repo-id NAMESPACE/milannotations`: upload a built folder to the Hub as a dataset."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..cli import add_hidden_alias
from ..hub import IGNORE, check_built_folder, push  # noqa: F401 - the library's names, importable from here as before
from ..paths import corpus_dir


def register(sub) -> None:
    p = sub.add_parser("push", help="upload a built folder to the Hugging Face Hub", description=__doc__)
    p.add_argument("--repo-id", required=True, help="NAMESPACE/milannotations")
    # the folder read, named like `info --root` and milan-eval's --root; --folder is the old spelling
    p.add_argument("--root", help="built folder to upload (default: $XDG_CACHE_HOME/milannotations/corpus)")
    add_hidden_alias(p, "--folder", "root")
    p.add_argument("--private", action="store_true")
    p.add_argument("--allow-joined-images", action="store_true",
                   help="also upload configs whose ImageNet pixels were joined locally (licence permitting)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    folder = Path(args.root) if args.root else corpus_dir()
    url = push(folder, args.repo_id, private=args.private, allow_joined_images=args.allow_joined_images)
    print(f"pushed {folder} to https://huggingface.co/datasets/{args.repo_id} ({url})")
    print(f'load it with: datasets.load_dataset("{args.repo_id}", "<config>")')
    return 0
