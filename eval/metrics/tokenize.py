"""The word tokenizer of the n-gram metrics (ROUGE-L, CIDEr-D): lowercase alphanumeric runs.

A stand-in for the PTB tokenizer of pycocoevalcap (a Java program) that needs no download: punctuation
is dropped, as PTB tokenisation followed by pycocoevalcap's punctuation removal does; contractions are
split at the apostrophe ("don't" -> "don", "t").
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    """Lowercased alphanumeric tokens of `text`."""
    return _WORD.findall(text.lower())
