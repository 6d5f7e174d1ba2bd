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


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    """Every synthetic config as a tiny built corpus (tests/eval_corpus.py), written once per session;
    the harness and milan-eval tests score against it."""
    from tests.eval_corpus import write_eval_corpus

    return write_eval_corpus(tmp_path_factory.mktemp("evalcorpus") / "milannotations")
