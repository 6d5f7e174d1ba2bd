"""Words <-> token ids for the MILAN decoder and language model.

The paper tokenised with spaCy's `en_core_web_sm`, which needs a downloaded
model. A regular expression gives the same kind of tokens for the short,
plain descriptions of the corpus (words, numbers, contractions kept whole,
each punctuation mark a token) and needs nothing but the standard library.
Decoder and LM share one `Vocab` so PMI compares like with like.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Sequence

START, STOP, PAD, UNK = "<start>", "<stop>", "<pad>", "<unk>"
SPECIALS = (START, STOP, PAD, UNK)

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]")
_NO_SPACE_BEFORE = re.compile(r" ([.,;:!?)%]|'s\b|n't\b)")
_NO_SPACE_AFTER = re.compile(r"([(]) ")


def tokenize(text: str) -> list[str]:
    """Lowercased word and punctuation tokens; no stop-word removal, no lemmatisation (as the paper)."""
    return _TOKEN.findall(text.lower().replace("\u2019", "'"))


def detokenize(tokens: Sequence[str]) -> str:
    """Tokens back to a sentence: tidy punctuation spacing, capitalise the first letter."""
    text = _NO_SPACE_AFTER.sub(r"\1", _NO_SPACE_BEFORE.sub(r"\1", " ".join(tokens)))
    return text[:1].upper() + text[1:]


@dataclass(frozen=True)
class Vocab:
    """Frequency-ordered words of the training descriptions, specials appended after them."""

    words: tuple[str, ...]
    _ids: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ids = {w: i for i, w in enumerate(self.tokens)}
        if len(ids) != len(self.tokens):
            raise ValueError("vocabulary words must be unique and must not be specials")
        object.__setattr__(self, "_ids", ids)

    @property
    def tokens(self) -> tuple[str, ...]:
        return self.words + SPECIALS

    def __len__(self) -> int:
        return len(self.words) + len(SPECIALS)

    @property
    def start(self) -> int:
        return self._ids[START]

    @property
    def stop(self) -> int:
        return self._ids[STOP]

    @property
    def pad(self) -> int:
        return self._ids[PAD]

    @property
    def unk(self) -> int:
        return self._ids[UNK]

    def index(self, text: str, length: int) -> list[int]:
        """Word ids of `text` followed by <stop>, at most `length` ids in all (unknown words -> <unk>)."""
        ids = [self._ids.get(t, self.unk) for t in tokenize(text)][: length - 1]
        return ids + [self.stop]

    def decode(self, ids: Iterable[int]) -> str:
        """Ids up to the first <stop> as a sentence; specials are dropped."""
        words = []
        for i in ids:
            i = int(i)
            if i == self.stop:
                break
            if i < len(self.words):
                words.append(self.words[i])
        return detokenize(words)


def build_vocab(texts: Iterable[str]) -> Vocab:
    """Every token of the training texts, most frequent first (ties: first seen), no cut-off."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(tokenize(text))
    return Vocab(tuple(w for w, _ in counts.most_common() if w not in SPECIALS))
