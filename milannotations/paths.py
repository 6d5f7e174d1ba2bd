"""The cache folders: one place that says where everything lives unless told otherwise.

`default_root()` follows the XDG cache convention (`$XDG_CACHE_HOME/milannotations`, else
`~/.cache/milannotations`) and is read on every call, so a changed environment takes effect at once.
Every sub-folder the project writes is named here:

| folder | holds | written by |
|---|---|---|
| `zips/` | the seven original release zips | `milannotations download` |
| `corpus/` | the built real corpus (parquet) | `milannotations build` / `join` |
| `synth/` | built synthetic corpora, one folder per world | `milannotations synth`, `ensure_synth()` |
| `models/` | small models trained on synthetic scenes (backbone, segmenter, CLIP) | first use |
| `probe/` | fresh probe scenes and their activations (truth metrics) | first use |
| `scoring-cache/` | embeddings of the agreement metrics | scoring |
| `features/` | describers' cached exemplar features (`features/milan/`) | MILAN |
"""
from __future__ import annotations

import os
from pathlib import Path


def default_root() -> Path:
    """Where built corpora and caches live unless told otherwise (XDG cache convention)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "milannotations"


def zips_dir() -> Path:
    """The original release zips (`milannotations download`)."""
    return default_root() / "zips"


def corpus_dir() -> Path:
    """The built real corpus (`milannotations build`, `join`)."""
    return default_root() / "corpus"


def synth_dir() -> Path:
    """Built synthetic corpora, one sub-folder per world (`milannotations synth`)."""
    return default_root() / "synth"


def models_dir() -> Path:
    """Small models trained on synthetic scenes and cached on first use."""
    return default_root() / "models"


def probe_dir() -> Path:
    """Probe scenes and activations of the truth metrics."""
    return default_root() / "probe"


def scoring_cache_dir() -> Path:
    """Embeddings cached by the agreement metrics."""
    return default_root() / "scoring-cache"


def features_dir(describer: str) -> Path:
    """A describer's cached exemplar features (`features/<describer>/`)."""
    return default_root() / "features" / describer
