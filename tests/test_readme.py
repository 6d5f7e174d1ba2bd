"""The README's Python snippets run exactly as written, in a fresh process, from an unrelated folder.

The cache they read (`$XDG_CACHE_HOME/milannotations`) is filled with tiny corpora first: the real
configs of the `base` grouping where `milannotations build` writes them, and the synthetic configs
where `milannotations.load` caches them, so no snippet downloads or builds anything.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Run before each snippet: building the synthetic corpus would take minutes, so a cache miss fails fast.
PRELUDE = """\
import milannotations.synth.build as _b
def _no_build(*a, **k):
    raise SystemExit("test_readme: the synthetic cache was missed and would be built")
_b.build_synth = _no_build
"""


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    from milannotations.schema import REAL_GROUPINGS
    from milannotations.splits import assign_splits
    from milannotations.synth.build import DEFAULT_UNITS, POOL_SIZE, cache_key
    from milannotations.writer import ConfigMeta, write_config
    from tests.eval_corpus import write_eval_corpus
    from tests.rows import make_rows

    xdg = tmp_path_factory.mktemp("xdg")
    corpus = xdg / "milannotations" / "corpus"
    for config in REAL_GROUPINGS["base"]:
        rows = make_rows(n_units=4, k=2, size=8)
        write_config(corpus, ConfigMeta(config, config.split("-")[0], config.split("-")[1]), rows,
                     assign_splits(f"{config}/{r.layer}/{r.unit}" for r in rows))
    write_eval_corpus(xdg / "milannotations" / "synth" / cache_key(0, DEFAULT_UNITS, POOL_SIZE), n_units=6,
                      n_test=2)
    return xdg


def test_readme_has_the_snippets_this_test_knows():
    blocks = python_blocks((ROOT / "README.md").read_text())
    assert len(blocks) >= 2 and any("load_dataset(" in b for b in blocks)


@pytest.mark.parametrize("index", range(len(python_blocks((ROOT / "README.md").read_text()))))
def test_readme_python_snippet_runs_as_written(index, cache, tmp_path):
    block = python_blocks((ROOT / "README.md").read_text())[index]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "XDG_CACHE_HOME": str(cache), "HF_HOME": str(tmp_path / "hf"),
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("PYTHONPATH", None)  # the installed package, as a user has it
    proc = subprocess.run([sys.executable, "-c", PRELUDE + block], cwd=elsewhere, env=env,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, f"README python block {index + 1} failed:\n{block}\n{proc.stderr[-3000:]}"
