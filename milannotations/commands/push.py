"""`milannotations push --repo-id NAMESPACE/milannotations`: upload a built folder to the Hub as a dataset."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..cli import add_hidden_alias
from ..errors import MilanError
from ..paths import corpus_dir

#: Never uploaded: build leftovers, including the resumable chunks an interrupted `exemplars` run keeps.
IGNORE = [".staging-*", ".staging-*/**", ".build-*", ".build-*/**", ".extract-*", ".extract-*/**",
          ".old-*", ".old-*/**", ".exemplars-work", ".exemplars-work/**", "**/.DS_Store"]


def check_built_folder(folder: Path, *, allow_joined_images: bool = False) -> list[dict]:
    """The meta records of a built corpus folder; a MilanError if it is not one or must not be pushed.

    Pixels joined from a local ImageNet copy may not be redistributed, so a
    folder holding them is refused unless the caller says they may be shared.
    """
    from ..card import read_metas

    folder = Path(folder)
    if not folder.is_dir():
        raise MilanError(f"{folder}: not a folder")
    if (folder / "milannotations.py").exists():
        raise MilanError(f"{folder}/milannotations.py: a script file would make `datasets` treat the repo as "
                         "a loading script; remove it")
    readme = folder / "README.md"
    if not readme.is_file() or not readme.read_text(encoding="utf-8").startswith("---"):
        raise MilanError(f"{folder}: no dataset card (README.md with a YAML header); not a built corpus. "
                         "Run `milannotations build` first")
    metas = read_metas(folder) if (folder / "meta").is_dir() else []
    if not metas:
        raise MilanError(f"{folder}: no meta/<config>.json; not a built corpus. Run `milannotations build` first")
    for m in metas:
        shards = list((folder / "data" / m["config"]).glob("*.parquet"))
        if not shards:
            raise MilanError(f"{folder}: config {m['config']} has meta but no data/{m['config']}/*.parquet")
        images = str(m.get("provenance", {}).get("images", ""))
        if "joined from" in images and not allow_joined_images:  # also "shipped for some layers, others joined"
            raise MilanError(f"{folder}: config {m['config']} holds pixels {images}; their licence forbids "
                             "redistribution. Push a build made without --imagenet, or pass "
                             "--allow-joined-images if you hold the right to share them")
    return metas


def push(folder: str | Path, repo_id: str, *, private: bool = False, allow_joined_images: bool = False,
         api=None) -> str:
    """Create (if needed) the dataset repo and upload the folder; returns the commit URL."""
    from huggingface_hub import HfApi

    if repo_id.count("/") != 1:
        raise MilanError(f"--repo-id {repo_id!r}: expected NAMESPACE/NAME, e.g. you/milannotations")
    check_built_folder(Path(folder), allow_joined_images=allow_joined_images)
    api = api or HfApi()
    api.create_repo(repo_id=repo_id, repo_type="dataset", private=private, exist_ok=True)
    info = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="dataset",
                             ignore_patterns=IGNORE, commit_message="Upload MILANNOTATIONS (milannotations build)")
    return str(getattr(info, "commit_url", info))


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
