"""Turning p(d | E) into one description: greedy, beam search, and the paper's PMI rerank.

All three work on a batch of units at once. Beam search keeps an (N, beam)
grid of hypotheses and advances every unit's beam with one decoder step, so
describing N units costs `length` batched steps rather than N * length.
Selection is per unit (top-k within each unit's own row), so batching never
changes a unit's result.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .decoder import ShowAttendTell
from .lm import LanguageModel
from .vocab import Vocab

STRATEGIES = ("greedy", "beam", "rerank")


@dataclass(frozen=True)
class Candidate:
    """A decoded description: word ids (no specials), summed log p(d | E), and whether it ended in <stop>."""

    ids: tuple[int, ...]
    score: float
    finished: bool


def _banned(vocab: Vocab, first: bool, device: torch.device) -> torch.Tensor:
    """Additive mask: specials that are never targets (<start>, <pad>, <unk>) are never emitted, and
    <stop> not as the first token, so every strategy returns at least one word (an empty description
    is not a description; the harness rejects it)."""
    mask = torch.zeros(len(vocab), device=device)
    mask[[vocab.start, vocab.pad, vocab.unk]] = float("-inf")
    if first:
        mask[vocab.stop] = float("-inf")
    return mask


@torch.no_grad()
def greedy(decoder: ShowAttendTell, features: torch.Tensor, vocab: Vocab, length: int) -> list[Candidate]:
    """The most likely word at each step (the paper's no-PMI ablation, "p(d|E)")."""
    decoder.eval()
    n = features.shape[0]
    h, c, keys = decoder.start(features)
    dev = features.device
    tokens = torch.full((n,), vocab.start, dtype=torch.long, device=dev)
    finished = torch.zeros(n, dtype=torch.bool, device=dev)
    scores = torch.zeros(n, device=dev)
    steps = []
    for t in range(length):
        logp, _, h, c = decoder.step(features, keys, tokens, h, c)
        best, tokens = (logp + _banned(vocab, t == 0, dev)).max(dim=-1)
        scores += torch.where(finished, torch.zeros_like(best), best)
        steps.append(torch.where(finished, torch.full_like(tokens, vocab.stop), tokens))
        finished |= tokens == vocab.stop
        if bool(finished.all()):
            break
    out = torch.stack(steps, dim=1)
    return [_candidate(row, float(s), vocab) for row, s in zip(out.tolist(), scores.tolist())]


def _candidate(row: list[int], score: float, vocab: Vocab) -> Candidate:
    if vocab.stop in row:
        return Candidate(tuple(row[: row.index(vocab.stop)]), score, True)
    return Candidate(tuple(row), score, False)


@torch.no_grad()
def beam_search(decoder: ShowAttendTell, features: torch.Tensor, vocab: Vocab, length: int,
                beam: int) -> list[list[Candidate]]:
    """Per unit, up to `beam` hypotheses sorted by summed log p(d | E), best first.

    No length normalisation; a finished hypothesis continues only with <stop>
    at log-prob 0, so it keeps its score and competes with unfinished ones
    (the behaviour of the beam search the paper used). Hypotheses unfinished
    after `length` steps are returned as they are.
    """
    decoder.eval()
    n, k, d = features.shape
    vocab_size = len(vocab)
    h, c, keys = decoder.start(features)
    rep = lambda x: x.repeat_interleave(beam, dim=0)  # noqa: E731
    feats, keys, h, c = rep(features), rep(keys), rep(h), rep(c)
    dev = features.device
    scores = torch.full((n, beam), float("-inf"), device=dev)
    scores[:, 0] = 0.0  # one live hypothesis per unit at the start
    tokens = torch.full((n * beam,), vocab.start, dtype=torch.long, device=dev)
    history = torch.zeros((n, beam, 0), dtype=torch.long, device=dev)
    finished = torch.zeros((n, beam), dtype=torch.bool, device=dev)
    only_stop = torch.full((vocab_size,), float("-inf"), device=dev)
    only_stop[vocab.stop] = 0.0
    offsets = (torch.arange(n, device=dev) * beam).unsqueeze(1)
    for t in range(length):
        logp, _, h, c = decoder.step(feats, keys, tokens, h, c)
        logp = logp + _banned(vocab, t == 0, dev)
        logp = torch.where(finished.unsqueeze(-1), only_stop, logp.view(n, beam, vocab_size))
        top, flat = (scores.unsqueeze(-1) + logp).view(n, -1).topk(beam, dim=-1)
        src, word = flat // vocab_size, flat % vocab_size
        scores = top
        history = torch.cat([history.gather(1, src.unsqueeze(-1).expand(-1, -1, t)), word.unsqueeze(-1)], -1)
        finished = finished.gather(1, src) | (word == vocab.stop)
        rows = (src + offsets).view(-1)
        h, c, tokens = h[rows], c[rows], word.view(-1)
        if bool(finished.all()):
            break
    out: list[list[Candidate]] = []
    history, scores = history.cpu().tolist(), scores.cpu().tolist()
    for i in range(n):
        out.append([_candidate(history[i][b], scores[i][b], vocab) for b in range(beam)
                    if scores[i][b] != float("-inf")])
    return out


def lm_logp(candidates: list[Candidate], lm: LanguageModel, vocab: Vocab, length: int | None = None) -> list[float]:
    """log p_LM(d) of each candidate, including the final <stop> of finished ones.

    With `length` (the decoder's maximum), p(d) of a candidate that stopped
    before the last step also includes one more <stop> after its first, as
    the original does: its LM sums every position up to and including the one
    after the first <stop> of the beam's <stop>-padded rows
    (`evandez/neuron-descriptions@19c4d58f849d82be8ad23cd3bd47908a0eacd8ed:src/milan/lms.py`,
    `LanguageModel.forward(reduce=True)`). The original's rows end where its
    batch's longest beam ended, so whether the extra term exists depended on
    the batch; here it is decided as if every search ran to `length`, so
    batching still never changes a result.
    """
    if not candidates:
        return []
    rows = []
    for cand in candidates:
        ids = list(cand.ids) + ([vocab.stop] if cand.finished else [])
        if cand.finished and length is not None and len(ids) < length:
            ids.append(vocab.stop)
        rows.append(ids)
    lm.eval()
    return lm.rows_logp(rows, vocab.start)


def pmi_scores(candidates: list[Candidate], lm: LanguageModel, vocab: Vocab, lam: float,
               length: int | None = None) -> list[float]:
    """log p(d | E) - lam * log p(d) for each candidate (p(d) as `lm_logp` computes it)."""
    return [cand.score - lam * p for cand, p in zip(candidates, lm_logp(candidates, lm, vocab, length))]


def rerank(beams: list[list[Candidate]], lm: LanguageModel, vocab: Vocab, lam: float,
           length: int | None = None) -> list[Candidate]:
    """The paper's decoding: the beam's candidate with the highest PMI-weighted score, per unit.

    Ties keep beam order, so lam = 0 returns exactly the beam's best.
    """
    flat = [cand for cands in beams for cand in cands]
    return best_per_unit(beams, pmi_scores(flat, lm, vocab, lam, length))


def best_per_unit(beams: list[list[Candidate]], scores: list[float]) -> list[Candidate]:
    """Per unit, its candidate of highest score (`scores` runs over all beams' candidates in order);
    ties keep beam order."""
    best, i = [], 0
    for cands in beams:
        s = scores[i: i + len(cands)]
        best.append(cands[max(range(len(cands)), key=lambda j: (s[j], -j))])
        i += len(cands)
    return best
