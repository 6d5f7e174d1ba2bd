"""Shared fixtures: tiny corpora written through the one writer."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def tiny_corpus(tmp_path: Path):
    """A built folder with one config `tiny-net` (two layers, one digit-named)."""
    from milannotations.splits import assign_splits
    from milannotations.writer import ConfigMeta, write_config
    from tests.rows import make_rows

    rows = make_rows()
    split_of = assign_splits(f"tiny-net/{r.layer}/{r.unit}" for r in rows)
    out = tmp_path / "milannotations"
    write_config(out, ConfigMeta("tiny-net", "tinynet", "noise"), rows, split_of)
    return out, rows
