"""Publishing a built corpus on the Hugging Face Hub: the checks and the upload, callable from Python.

    from milannotations.hub import check_built_folder, push
    check_built_folder("out/")                       # the meta records, or a MilanError saying why not
    push("out/", "you/milannotations")               # create the dataset repo if needed and upload

`milannotations push` (`milannotations/commands/push.py`) only parses its
flags and calls `push`. huggingface_hub is imported when uploading only.
"""
from __future__ import annotations

from pathlib import Path

from .errors import MilanError
from .paths import corpus_dir

#: Never uploaded: build leftovers, including the resumable chunks an interrupted `exemplars` run keeps.
IGNORE = [".staging-*", ".staging-*/**", ".build-*", ".build-*/**", ".extract-*", ".extract-*/**",
          ".old-*", ".old-*/**", ".exemplars-work", ".exemplars-work/**", "**/.DS_Store"]


def check_built_folder(folder: Path, *, allow_joined_images: bool = False) -> list[dict]:
    """The meta records of a built corpus folder; a MilanError if it is not one or must not be pushed.

    Pixels joined from a local ImageNet copy may not be redistributed, so a
    folder holding them is refused unless the caller says they may be shared.
    """
    from .card import read_metas

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


def push(folder: str | Path | None, repo_id: str, *, private: bool = False, allow_joined_images: bool = False,
         api=None) -> str:
    """Create (if needed) the dataset repo and upload the folder; returns the commit URL.

    `folder` None is the cached corpus (`milannotations.paths.corpus_dir()`).
    Everything is checked (`check_built_folder`, the repo id) before anything
    is sent. `api` is a `huggingface_hub.HfApi` (or a stand-in with its
    `create_repo` and `upload_folder`).
    """
    from huggingface_hub import HfApi

    if repo_id.count("/") != 1:
        raise MilanError(f"repo id {repo_id!r}: expected NAMESPACE/NAME, e.g. you/milannotations")
    folder = Path(folder) if folder is not None else corpus_dir()
    check_built_folder(folder, allow_joined_images=allow_joined_images)
    api = api or HfApi()
    api.create_repo(repo_id=repo_id, repo_type="dataset", private=private, exist_ok=True)
    info = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="dataset",
                             ignore_patterns=IGNORE, commit_message="Upload MILANNOTATIONS (milannotations build)")
    return str(getattr(info, "commit_url", info))
