"""Fetching the original zips, resumably, and checking them against a sha256 manifest.

Upstream publishes no checksums and serves plain HTTP. So the manifest
(`milannotations/checksums.json`, `{config: {"url", "size", "sha256"}}`) is
filled trust-on-first-use: the first download of a config records its size
and digest (with a loud warning that nothing vouched for it), and every later
download is verified against that record and refused on mismatch. Commit the
manifest so everybody after you verifies against the same bytes.

A download streams into `<config>.zip.part`, hashing as it goes; a dropped
connection is retried with exponential backoff and resumed with an HTTP Range
request; only a complete, verified file is renamed to `<config>.zip`.
Standard library only (urllib).
"""
from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from .errors import MilanError
from .fsutil import atomic_write_text
from .paths import zips_dir
from .schema import HOST, REAL_CONFIGS

log = logging.getLogger(__name__)

MANIFEST = Path(__file__).with_name("checksums.json")
_CHUNK = 1 << 20
_UA = "milannotations-downloader"


def sha256_file(path: str | Path) -> tuple[str, int]:
    """(hex sha256, size in bytes) of a file, read in chunks."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def read_manifest(path: str | Path = MANIFEST) -> dict[str, dict]:
    path = Path(path)
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text() or "{}")
    except json.JSONDecodeError as e:
        raise MilanError(f"{path}: checksum manifest is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise MilanError(f"{path}: checksum manifest must be an object {{config: {{url, size, sha256}}}}")
    return data


def write_manifest(entries: dict[str, dict], path: str | Path = MANIFEST) -> None:
    atomic_write_text(Path(path), json.dumps(dict(sorted(entries.items())), indent=2) + "\n")


def config_url(config: str, mirror: str | None = None) -> str:
    base = (mirror.rstrip("/") if mirror else f"{HOST}/data")
    return f"{base}/{config}.zip"


@dataclass
class Downloaded:
    config: str
    path: Path
    size: int
    sha256: str
    trusted_on_first_use: bool


def _fetch(url: str, part: Path, *, retries: int, backoff: float, timeout: float,
           progress: bool, sleep: Callable[[float], None]) -> tuple[str, int]:
    """Stream `url` into `part`, resuming what is there; return (sha256, size) of the whole file."""
    h = hashlib.sha256()
    done = 0
    if part.exists():  # resume: hash what an earlier run already fetched
        with open(part, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
                done += len(chunk)
    total: int | None = None
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=None, initial=done, unit="B", unit_scale=True, unit_divisor=1024,
                   desc=part.name.removesuffix(".part"))
    attempt = 0
    try:
        while True:
            headers = {"User-Agent": _UA}
            if done:
                headers["Range"] = f"bytes={done}-"
            try:
                with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as r:
                    if done and r.status != 206:
                        # The server ignored Range: start over rather than append the whole file again.
                        h, done = hashlib.sha256(), 0
                        part.unlink(missing_ok=True)
                        if bar is not None:
                            bar.reset()
                    length = r.headers.get("Content-Length")
                    if length is not None:
                        total = done + int(length)
                        if bar is not None:
                            bar.total = total
                            bar.refresh()
                    with open(part, "ab") as f:
                        while chunk := r.read(_CHUNK):
                            f.write(chunk)
                            h.update(chunk)
                            done += len(chunk)
                            if bar is not None:
                                bar.update(len(chunk))
                if total is not None and done < total:
                    raise ConnectionError(f"connection closed after {done} of {total} bytes")
                return h.hexdigest(), done
            except urllib.error.HTTPError as e:
                if e.code == 416 and done:  # nothing left to fetch: the .part is complete
                    return h.hexdigest(), done
                if e.code in (404, 403, 410):
                    raise MilanError(f"{url}: HTTP {e.code} {e.reason}; check the config name or --mirror") from None
                err: Exception = e
            except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError, OSError) as e:
                err = e
            attempt += 1
            if attempt > retries:
                raise MilanError(f"{url}: download failed after {retries} retries ({err}); "
                                 f"rerun to resume from {part}") from None
            wait = backoff * (2 ** (attempt - 1))
            log.warning("%s: %s; retry %d/%d in %.1fs (resuming at byte %d)", url, err, attempt, retries, wait, done)
            sleep(wait)
    finally:
        if bar is not None:
            bar.close()


def download(configs: Sequence[str] | None = None, *, out: str | Path | None = None, mirror: str | None = None,
             manifest: str | Path = MANIFEST, retries: int = 5, backoff: float = 1.0, timeout: float = 60.0,
             progress: bool = True, sleep: Callable[[float], None] = time.sleep) -> list[Downloaded]:
    """Download `configs` (default: all seven) into `out` (default: `milannotations.paths.zips_dir()`).

    A zip already in `out` that matches the manifest is kept. Trust on first
    use: a config without a manifest entry is recorded (and a warning logged);
    one with an entry must match it, or the file is deleted and a MilanError raised.
    """
    configs = list(dict.fromkeys(configs or REAL_CONFIGS))
    unknown = [c for c in configs if c not in REAL_CONFIGS]
    if unknown:
        raise MilanError(f"unknown config(s) {', '.join(unknown)}; known: {', '.join(REAL_CONFIGS)}")
    out = Path(out) if out is not None else zips_dir()
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for config in configs:
        entries = read_manifest(manifest)
        expected = entries.get(config)
        url = config_url(config, mirror)
        final = out / f"{config}.zip"
        part = out / f"{config}.zip.part"
        if final.exists() and expected is not None:
            digest, size = sha256_file(final)
            if digest == expected["sha256"] and size == expected["size"]:
                results.append(Downloaded(config, final, size, digest, False))
                continue
            log.warning("%s does not match the manifest; downloading it again", final)
            final.unlink()
        if expected is not None and part.exists() and part.stat().st_size > int(expected["size"]):
            part.unlink()  # longer than the real file: cannot be a prefix of it
        digest, size = _fetch(url, part, retries=retries, backoff=backoff, timeout=timeout,
                              progress=progress, sleep=sleep)
        if expected is None:
            entries = read_manifest(manifest)
            entries[config] = {"url": config_url(config), "size": size, "sha256": digest}
            write_manifest(entries, manifest)
            log.warning("%s: TRUSTED ON FIRST USE. No checksum is published upstream; recorded size %d and "
                        "sha256 %s in %s. Later downloads are verified against it: commit the manifest.",
                        config, size, digest, manifest)
            tofu = True
        else:
            if digest != expected["sha256"] or size != int(expected["size"]):
                part.unlink(missing_ok=True)
                raise MilanError(f"{url}: got {size} bytes with sha256 {digest}, but {manifest} records "
                                 f"{expected['size']} bytes with sha256 {expected['sha256']}; the file was "
                                 "deleted. The mirror or the connection served different bytes")
            tofu = False
        os.replace(part, final)
        results.append(Downloaded(config, final, size, digest, tofu))
    return results
