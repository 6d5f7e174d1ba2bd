"""Download against a real loopback HTTP server: Range resume, retries, trust on first use, refusal."""
from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from milannotations.cli import main as cli
from milannotations.download import download, read_manifest
from milannotations.errors import MilanError
from tests.original_format import LayerSpec, make_original_zip


class ZipServer(ThreadingHTTPServer):
    """Serves `files` at /<name>; honours `Range: bytes=N-`; can misbehave on request."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.drops: dict[str, list[float]] = {}  # per name: fractions at which to cut the next responses
        self.corrupt: set[str] = set()
        self.ignore_range = False
        self.log: list[tuple[str, str | None]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: ZipServer

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:  # noqa: N802
        name = self.path.lstrip("/")
        rng = self.headers.get("Range")
        self.server.log.append((name, rng))
        data = self.server.files.get(name)
        if data is None:
            self.send_error(404, "no such file")
            return
        if name in self.server.corrupt:
            data = bytearray(data)
            data[len(data) // 2] ^= 0xFF
            data = bytes(data)
        start = 0
        if rng and not self.server.ignore_range:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        drops = self.server.drops.get(name)
        if drops:
            cut = int(len(data) * drops.pop(0)) - start
            self.wfile.write(body[:max(cut, 0)])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def server():
    srv = ZipServer()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def zip_bytes(tmp_path_factory) -> bytes:
    path = make_original_zip(tmp_path_factory.mktemp("z") / "a.zip",
                             [LayerSpec("conv1", 6, k=4, height=24, width=24)], seed=3).path
    return path.read_bytes()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_first_download_is_trusted_and_recorded(server, zip_bytes, tmp_path, caplog):
    server.files["alexnet-places365.zip"] = zip_bytes
    manifest = tmp_path / "checksums.json"
    manifest.write_text("{}\n")
    with caplog.at_level(logging.WARNING):
        [res] = download(["alexnet-places365"], out=tmp_path / "zips", mirror=server.url, manifest=manifest,
                         progress=False)
    assert res.trusted_on_first_use and res.path.read_bytes() == zip_bytes
    assert read_manifest(manifest) == {"alexnet-places365": {
        "url": "http://milan.csail.mit.edu/data/alexnet-places365.zip", "size": len(zip_bytes),
        "sha256": _sha(zip_bytes)}}
    _assert_valid_manifest(read_manifest(manifest))  # what the shipped manifest is checked against
    assert "TRUSTED ON FIRST USE" in caplog.text
    assert not list((tmp_path / "zips").glob("*.part"))
    # A second call verifies the file on disk and does not touch the network.
    server.log.clear()
    [again] = download(["alexnet-places365"], out=tmp_path / "zips", mirror=server.url, manifest=manifest,
                       progress=False)
    assert not again.trusted_on_first_use and server.log == []


def test_dropped_connections_resume_with_range(server, zip_bytes, tmp_path):
    server.files["biggan-imagenet.zip"] = zip_bytes
    server.drops["biggan-imagenet.zip"] = [0.3, 0.7]
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps({"biggan-imagenet": {"url": "x", "size": len(zip_bytes), "sha256": _sha(zip_bytes)}}))
    waits: list[float] = []
    [res] = download(["biggan-imagenet"], out=tmp_path, mirror=server.url, manifest=manifest, progress=False,
                     backoff=0.5, sleep=waits.append)
    assert res.path.read_bytes() == zip_bytes and not res.trusted_on_first_use
    n = len(zip_bytes)
    assert [r for _, r in server.log] == [None, f"bytes={int(n * 0.3)}-", f"bytes={int(n * 0.7)}-"]
    assert waits == [0.5, 1.0]  # exponential backoff


def test_existing_part_file_is_resumed(server, zip_bytes, tmp_path):
    server.files["alexnet-imagenet.zip"] = zip_bytes
    (tmp_path / "alexnet-imagenet.zip.part").write_bytes(zip_bytes[:1000])
    manifest = tmp_path / "m.json"
    [res] = download(["alexnet-imagenet"], out=tmp_path, mirror=server.url, manifest=manifest, progress=False)
    assert res.path.read_bytes() == zip_bytes and server.log == [("alexnet-imagenet.zip", "bytes=1000-")]
    assert read_manifest(manifest)["alexnet-imagenet"]["sha256"] == _sha(zip_bytes)


def test_server_ignoring_range_restarts_cleanly(server, zip_bytes, tmp_path):
    server.files["alexnet-imagenet.zip"] = zip_bytes
    server.ignore_range = True
    server.drops["alexnet-imagenet.zip"] = [0.5]
    [res] = download(["alexnet-imagenet"], out=tmp_path, mirror=server.url, manifest=tmp_path / "m.json",
                     progress=False, sleep=lambda s: None)
    assert res.path.read_bytes() == zip_bytes


def test_corrupted_copy_is_refused_and_deleted(server, zip_bytes, tmp_path, capsys):
    server.files["resnet152-imagenet.zip"] = zip_bytes
    server.corrupt.add("resnet152-imagenet.zip")
    manifest = tmp_path / "m.json"
    entry = {"resnet152-imagenet": {"url": "x", "size": len(zip_bytes), "sha256": _sha(zip_bytes)}}
    manifest.write_text(json.dumps(entry))
    out = tmp_path / "zips"
    rc = cli(["download", "resnet152-imagenet", "--mirror", server.url, "--out", str(out), "--manifest", str(manifest)])
    err = capsys.readouterr().err
    assert rc == 2 and "sha256" in err and _sha(zip_bytes) in err
    assert list(out.iterdir()) == []  # neither the zip nor the .part
    assert json.loads(manifest.read_text()) == entry  # the manifest is never rewritten by a mismatch


def test_missing_file_and_unknown_config(server, tmp_path):
    with pytest.raises(MilanError, match="HTTP 404"):
        download(["alexnet-imagenet"], out=tmp_path, mirror=server.url, manifest=tmp_path / "m.json",
                 progress=False)
    with pytest.raises(MilanError, match="unknown config"):
        download(["vgg16-imagenet"], out=tmp_path, manifest=tmp_path / "m.json", progress=False)


def _assert_valid_manifest(data: dict) -> None:
    """Every entry names a real config and records its canonical url, a positive size and a hex sha256."""
    from milannotations.download import config_url
    from milannotations.schema import REAL_CONFIGS

    assert isinstance(data, dict)
    assert set(data) <= set(REAL_CONFIGS), sorted(set(data) - set(REAL_CONFIGS))
    for config, entry in data.items():
        assert set(entry) == {"url", "size", "sha256"}, config
        assert entry["url"] == config_url(config), config  # the upstream url, never a mirror's
        assert type(entry["size"]) is int and entry["size"] > 0, config
        assert isinstance(entry["sha256"], str) and re.fullmatch(r"[0-9a-f]{64}", entry["sha256"]), config


def test_shipped_manifest_is_valid():
    from milannotations.download import MANIFEST

    assert Path(MANIFEST).name == "checksums.json"
    assert Path(MANIFEST).is_file()  # shipped: read_manifest would silently return {} for a missing file
    raw = Path(MANIFEST).read_text()
    data = json.loads(raw)  # valid JSON as it stands (read_manifest also accepts an empty file)
    assert read_manifest(MANIFEST) == data
    _assert_valid_manifest(data)
    if not data:
        # The explicit empty state: no checksum is published upstream, so entries are only added
        # trust-on-first-use by a download and then committed.
        assert raw.strip() == "{}"
