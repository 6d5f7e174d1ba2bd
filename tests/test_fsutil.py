"""Atomic writes: a reader sees the old file or the new one, and a failed write leaves nothing behind."""
from __future__ import annotations

import pytest

from milannotations.fsutil import atomic_path, atomic_write_text


def test_atomic_path_replaces_only_when_the_block_succeeds(tmp_path):
    target = tmp_path / "sub" / "weights.bin"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target and not target.exists()
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("writer died")
    assert target.read_bytes() == b"new"  # the old content survives
    assert sorted(p.name for p in target.parent.iterdir()) == ["weights.bin"]  # no temporary file left


def test_concurrent_writers_never_share_a_temporary_name(tmp_path):
    target = tmp_path / "features.safetensors"
    with atomic_path(target) as a, atomic_path(target) as b:
        assert a != b
        a.write_text("a")
        b.write_text("b")
    assert target.read_text() == "a"  # the outer block ended last
    atomic_write_text(target, "text")
    assert target.read_text() == "text"
