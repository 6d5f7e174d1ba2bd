"""Choosing MILAN's decoding settings (beam width, PMI weight λ) on validation units, never test units.

The original chose its defaults (beam 50, λ 0.2) by a sweep, λ from 0.05 to
0.75 in steps of 0.05 and beam from 5 to 50 in steps of 5
(`evandez/neuron-descriptions@19c4d58f849d82be8ad23cd3bd47908a0eacd8ed:scripts/sweep_milan.py`), on
the held-out part of the `base` group. Carried over unchanged, those values
are tuned to the real corpus, not to whatever a user trains on; so after
`fit` the same grid is searched on the decoder's own validation units (a
seeded tenth of the *training* units, `milannotations.splits.validation_split`,
the units early stopping already holds out), scored by corpus BLEU against
their descriptions, the criterion the paper validated with. Ties go to the
paper's values, then to the wider beam and the λ nearer 0.2, so a flat
surface changes nothing.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import torch

from .decoding import Candidate, beam_search, best_per_unit, lm_logp
from .model import MilanModel

#: The original sweep's grid (`scripts/sweep_milan.py`, both ends included).
BEAMS: tuple[int, ...] = tuple(range(5, 51, 5))
LAMS: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(1, 16))
PAPER_BEAM, PAPER_LAM = 50, 0.2


@dataclass(frozen=True)
class Selection:
    """The chosen decoding settings and how they were chosen (kept in checkpoints and results)."""

    strategy: str
    beam: int
    lam: float
    criterion: str
    n_validation: int
    score: float
    paper_score: float

    def to_dict(self) -> dict:
        return asdict(self)


def _bleu(model: MilanModel, chosen: Sequence, references: Sequence[Sequence[str]]) -> float:
    from .train import corpus_bleu

    return corpus_bleu([model.vocab.decode(c.ids) for c in chosen], references)


@torch.no_grad()
def beam_candidates(decoder, vocab, features: torch.Tensor, beams: Sequence[int] = BEAMS,
                    chunk: int = 32) -> dict[int, list[list[Candidate]]]:
    """Each width's beam-search candidates for the validation units, the decoder-only half of the search.

    Separate from the LM's half so MILAN can run it while its LM still trains in another process.
    Every operation runs on `TRAIN_THREADS` CPU threads, so the candidates are the same on any
    machine, and after a cached training as after a fresh one; the widths are searched two at a
    time in Python threads (torch releases the GIL), which changes no bits: each width's search is
    the same sequence of one-thread operations however they interleave.
    """
    from concurrent.futures import ThreadPoolExecutor

    from .train import fitting

    length = decoder.config.length
    feats = features.to(next(decoder.parameters()).device)

    def search(b: int) -> list[list[Candidate]]:
        cands: list[list[Candidate]] = []
        for i in range(0, feats.shape[0], chunk):
            cands.extend(beam_search(decoder, feats[i: i + chunk], vocab, length, b))
        return cands

    with fitting(feats.device), ThreadPoolExecutor(max_workers=2) as pool:
        widths = [int(b) for b in beams]
        return dict(zip(widths, pool.map(search, widths)))


@torch.no_grad()
def select_decoding(model: MilanModel, features: torch.Tensor, references: Sequence[Sequence[str]],
                    strategy: str, beams: Sequence[int] = BEAMS, lams: Sequence[float] = LAMS,
                    chunk: int = 32, searched: dict[int, list[list[Candidate]]] | None = None) -> Selection:
    """The (beam, λ) of the grid whose decoding of the validation units has the highest corpus BLEU.

    `features` (N, k, D) and `references` belong to validation units only.
    `strategy="beam"` searches beam widths alone; `rerank` every (beam, λ)
    pair: one beam search per width (`beam_candidates`, or `searched`, its
    result computed earlier), its candidates' LM log-probabilities computed
    once and reused for every λ.
    """
    length = model.decoder.config.length
    feats = model._on_decoder(features)
    if searched is None:
        searched = beam_candidates(model.decoder, model.vocab, feats, beams, chunk)
    lam_grid = list(lams) if strategy == "rerank" else [0.0]
    table: dict[tuple[int, float], float] = {}
    for b in beams:
        cands = searched[int(b)]
        if strategy == "beam":
            table[int(b), 0.0] = _bleu(model, [c[0] for c in cands], references)
            continue
        flat = [c for row in cands for c in row]
        prior = lm_logp(flat, model.lm, model.vocab, length)
        for lam in lam_grid:  # pmi_scores' expression, on log p(d) computed once per width
            chosen = best_per_unit(cands, [c.score - lam * p for c, p in zip(flat, prior)])
            table[int(b), float(lam)] = _bleu(model, chosen, references)
    paper = (PAPER_BEAM, PAPER_LAM if strategy == "rerank" else 0.0)

    def rank(key: tuple[int, float]) -> tuple:
        return (table[key], key == paper, key[0], -abs(key[1] - PAPER_LAM))

    best = max(table, key=rank)
    return Selection(strategy=strategy, beam=best[0], lam=best[1],
                     criterion=f"corpus BLEU (sacrebleu) of the {strategy} descriptions of the validation units",
                     n_validation=int(feats.shape[0]), score=table[best],
                     paper_score=table.get(paper, float("nan")))
