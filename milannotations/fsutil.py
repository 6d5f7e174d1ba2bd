"""Filesystem helpers: check outputs before work starts, build into a temporary folder, rename into place."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import MilanError


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


def _nearest_existing(path: Path) -> Path:
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _probe_writable(folder: Path, what: str) -> None:
    """Create and remove a temporary file in `folder`: the only reliable test (ACLs, read-only mounts, /proc)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".milan-probe-", dir=folder)
    except OSError as e:
        raise MilanError(f"{what}: cannot write in {folder} ({e.strerror or e})") from None
    os.close(fd)
    os.unlink(tmp)


def check_output_dir(path: str | Path, flag: str = "--output") -> Path:
    """Refuse, before any work starts, an output folder that cannot be written (one line, naming it).

    A long run that only finds out at the end that its output is a file, or sits on a read-only
    mount, loses all its work; this check creates nothing that stays behind.
    """
    return _check_dir(Path(path), f"{flag} {path}")


def _check_dir(path: Path, what: str) -> Path:
    if path.exists() and not path.is_dir():
        raise MilanError(f"{what}: is a file, not a folder")
    base = _nearest_existing(path)
    if not base.is_dir():
        raise MilanError(f"{what}: {base} is a file, so the folder cannot be created")
    _probe_writable(base, what)
    return path


def check_output_file(path: str | Path, flag: str = "--output") -> Path:
    """Refuse, before any work starts, an output file that cannot be written: a folder, or an unwritable place."""
    path = Path(path)
    what = f"{flag} {path}"
    if path.is_dir():
        raise MilanError(f"{what}: is a folder; name a file, e.g. {path / 'descriptions.csv'}")
    if path.exists() and not os.access(path, os.W_OK):
        raise MilanError(f"{what}: file is not writable")
    _check_dir(path.parent, what)
    return path


def check_corpus_dir(path: str | Path, flag: str = "--output") -> Path:
    """`check_output_dir` for a corpus folder, which must not be named like the package.

    A folder named `milannotations` in the working directory is imported instead of the package
    (as a namespace package) under setuptools' editable install, so `import milannotations` breaks
    wherever it is the current folder's child. The commands that create corpus folders refuse the
    name rather than leave that trap for later.
    """
    path = Path(path)
    if path.name == "milannotations":
        raise MilanError(f"{flag} {path}: a corpus folder must not be named milannotations (Python would import "
                         "it instead of the package from its parent folder); name it e.g. milannotations-data")
    return check_output_dir(path, flag)
