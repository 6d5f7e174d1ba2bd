"""Filesystem helpers: build into a temporary folder, rename into place."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def staging_dir(parent: Path, prefix: str = ".staging-") -> Iterator[Path]:
    """A temporary folder beside the final output, removed whatever happens.

    Being on the same filesystem as the output makes the final rename atomic.
    """
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def replace_path(src: Path, dst: Path) -> None:
    """Move `src` onto `dst`, replacing a previous file or folder there."""
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.is_dir() and not dst.is_symlink():
        old = dst.with_name(f".old-{dst.name}-{os.getpid()}")
        os.replace(dst, old)
        os.replace(src, dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(src, dst)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A unique temporary file name beside `path` to write to; it replaces `path` when the block ends.

    Readers see the old or the new file, never half of one, and concurrent writers (e.g. ranks
    filling one cache) never share a temporary name. On an error the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write a text file so that readers see the old or the new content, never half."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
