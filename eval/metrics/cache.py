"""On-disk cache of reference token embeddings (safetensors), so re-scoring embeds only candidates.

A cache entry holds the token ids and unit-normalised last-layer token embeddings of a list of
reference sentences. Its key combines the embedding signature (model, layer count, tokenizer kind,
library versions), the data revision and a hash of the exact sentence list, so a stale entry can never
be served for different data or a different model. Entries are written to a temporary file and renamed,
so a crash never leaves a half-written entry behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def texts_hash(texts: list[str]) -> str:
    """sha256 of the sentence list (order matters), hex."""
    h = hashlib.sha256()
    for t in texts:
        b = t.encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def entry_key(embed_signature: str, revision: str, texts: list[str]) -> str:
    """File-name-safe key of one cache entry."""
    payload = json.dumps([embed_signature, revision, texts_hash(texts)])
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:40]


class EmbeddingCache:
    """A folder of `<key>.safetensors` files: flat token ids, flat embeddings and sentence offsets."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / f"{key}.safetensors"

    def load(self, key: str, texts: list[str]) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
        """Per-sentence (ids, embeddings) of a stored entry, or None when absent or not matching `texts`."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            tensors = load_file(str(path))
            ids, emb, offsets = tensors["ids"], tensors["embeddings"], tensors["offsets"].tolist()
        except Exception:  # a corrupt entry is a cache miss, it is rewritten below
            return None
        if len(offsets) != len(texts) + 1:
            return None
        return [(ids[a:b], emb[a:b]) for a, b in zip(offsets[:-1], offsets[1:])]

    def save(self, key: str, texts: list[str], items: list[tuple[torch.Tensor, torch.Tensor]], meta: dict) -> Path:
        """Write an entry atomically; `meta` (strings) goes into the safetensors header for inspection."""
        self.root.mkdir(parents=True, exist_ok=True)
        lengths = [len(ids) for ids, _ in items]
        offsets = torch.tensor([0] + lengths, dtype=torch.int64).cumsum(0)
        tensors = {
            "ids": torch.cat([ids for ids, _ in items]).to(torch.int64).contiguous(),
            "embeddings": torch.cat([emb for _, emb in items]).to(torch.float32).contiguous(),
            "offsets": offsets.contiguous(),
        }
        header = {k: str(v) for k, v in meta.items()} | {"n_texts": str(len(texts)), "texts_sha256": texts_hash(texts)}
        fd, tmp = tempfile.mkstemp(dir=self.root, suffix=".tmp")
        os.close(fd)
        try:
            save_file(tensors, tmp, metadata=header)
            os.replace(tmp, self.path(key))
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return self.path(key)
