"""Fitting MILAN: the decoder on (unit, description) pairs, the LM on descriptions alone.

Both stop early and restore their best weights. The decoder is judged the
way the paper judged it, by corpus BLEU of greedy descriptions of a held-out
tenth of the training *units* (so validation units are never seen with any
of their descriptions); the LM by NLL on a held-out tenth of descriptions.
Everything is seeded: the same units and seed give the same weights.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Sequence

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from milannotations.splits import validation_split

from .decoder import DecoderConfig, ShowAttendTell, attention_penalty
from .decoding import greedy
from .lm import LanguageModel, LMConfig
from .vocab import Vocab


@dataclass(frozen=True)
class TrainConfig:
    """Training settings; the defaults are the paper's (AdamW with torch defaults, batch 64, patience 4)."""

    lr: float = 1e-3
    weight_decay: float = 0.01
    batch_size: int = 64
    max_epochs: int = 100
    patience: int = 4
    holdout: float = 0.1
    attention_weight: float = 1.0
    lm_batch_size: int = 128
    lm_max_epochs: int = 100
    lm_patience: int = 4
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class History:
    """What happened during training, kept in the checkpoint config."""

    decoder_epochs: int = 0
    best_epoch: int = 0
    val_bleu: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    epoch_s: list[float] = field(default_factory=list)
    lm_epochs: int = 0
    lm_val_loss: list[float] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _pad(rows: Sequence[Sequence[int]], pad: int) -> torch.Tensor:
    out = torch.full((len(rows), max(len(r) for r in rows)), pad, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return out


def corpus_bleu(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """sacrebleu corpus BLEU with one reference stream per annotator (ragged lists padded with None)."""
    import sacrebleu

    width = max(len(r) for r in references)
    streams = [[(r[j].lower() if j < len(r) else None) for r in references] for j in range(width)]
    return float(sacrebleu.corpus_bleu([p.lower() for p in predictions], streams).score)


def _early_stop(patience: int, since_best: int) -> bool:
    return since_best > patience


def validation_units(unit_ids: Sequence[str], config: TrainConfig) -> list[int]:
    """Indices of the training units held out for validation (early stopping, decoding choices)."""
    _, held = validation_split(unit_ids, config.holdout, config.seed)
    index = {u: i for i, u in enumerate(unit_ids)}
    return [index[u] for u in held]


def fit_decoder(features: torch.Tensor, annotations: Sequence[Sequence[str]], unit_ids: Sequence[str],
                vocab: Vocab, decoder_config: DecoderConfig, config: TrainConfig, history: History,
                progress: bool = True, device: str = "cpu") -> ShowAttendTell:
    """Train a decoder on (N, k, D) features and each unit's descriptions; returns the best one."""
    torch.manual_seed(config.seed)
    decoder = ShowAttendTell(decoder_config).to(device)
    features = features.to(device)
    val_units = validation_units(unit_ids, config)
    held = set(val_units)
    train_units = [i for i in range(len(unit_ids)) if i not in held]
    length = decoder_config.length
    pairs = [(i, vocab.index(a, length)) for i in train_units for a in annotations[i]]
    if not pairs:
        raise ValueError("no training descriptions")
    optimizer = torch.optim.AdamW(decoder.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    gen = torch.Generator().manual_seed(config.seed)
    best_state, best_bleu, since_best = copy.deepcopy(decoder.state_dict()), -math.inf, 0
    bar = tqdm(range(config.max_epochs), desc="milan: train decoder", disable=not progress, leave=False)
    for epoch in bar:
        t0 = time.perf_counter()
        decoder.train()
        order = torch.randperm(len(pairs), generator=gen).tolist()
        total = 0.0
        for b in range(0, len(order), config.batch_size):
            batch = [pairs[j] for j in order[b: b + config.batch_size]]
            feats = features[[i for i, _ in batch]]
            targets = _pad([t for _, t in batch], vocab.pad).to(device)
            inputs = torch.cat([torch.full_like(targets[:, :1], vocab.start), targets[:, :-1]], dim=1)
            logp, alphas = decoder(feats, inputs)
            valid = targets != vocab.pad
            loss = F.nll_loss(logp.transpose(1, 2), targets, ignore_index=vocab.pad)
            loss = loss + config.attention_weight * attention_penalty(alphas, valid)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(batch)
        history.train_loss.append(total / len(pairs))
        history.decoder_epochs = epoch + 1
        if val_units:
            preds = [vocab.decode(c.ids) for c in greedy(decoder, features[val_units], vocab, length)]
            bleu = corpus_bleu(preds, [annotations[i] for i in val_units])
        else:  # a single training unit: nothing to validate on, keep the last weights
            bleu = float(epoch)
        history.val_bleu.append(bleu)
        history.epoch_s.append(time.perf_counter() - t0)
        bar.set_postfix(loss=f"{history.train_loss[-1]:.3f}", bleu=f"{bleu:.2f}")
        if bleu > best_bleu:
            best_bleu, since_best, history.best_epoch = bleu, 0, epoch + 1
            best_state = copy.deepcopy(decoder.state_dict())
        else:
            since_best += 1
            if _early_stop(config.patience, since_best):
                break
    decoder.load_state_dict(best_state)
    decoder.eval()
    return decoder


def fit_lm(annotations: Sequence[Sequence[str]], vocab: Vocab, lm_config: LMConfig, length: int,
           config: TrainConfig, history: History, progress: bool = True, device: str = "cpu") -> LanguageModel:
    """Train the LM on every training description as its own sequence; returns the best one."""
    torch.manual_seed(config.seed + 1)
    lm = LanguageModel(lm_config, vocab.pad).to(device)
    seqs = [vocab.index(a, length) for anns in annotations for a in anns]
    gen = torch.Generator().manual_seed(config.seed + 1)
    perm = torch.randperm(len(seqs), generator=gen).tolist()
    n_val = min(len(seqs) - 1, max(1, round(config.holdout * len(seqs)))) if len(seqs) > 1 else 0
    val, train = [seqs[j] for j in perm[:n_val]], [seqs[j] for j in perm[n_val:]]
    optimizer = torch.optim.AdamW(lm.parameters(), lr=config.lr, weight_decay=config.weight_decay)

    def loss_of(rows: list[list[int]]) -> torch.Tensor:
        targets = _pad(rows, vocab.pad).to(device)
        inputs = torch.cat([torch.full_like(targets[:, :1], vocab.start), targets[:, :-1]], dim=1)
        return F.nll_loss(lm(inputs).transpose(1, 2), targets, ignore_index=vocab.pad)

    best_state, best_loss, since_best = copy.deepcopy(lm.state_dict()), math.inf, 0
    bar = tqdm(range(config.lm_max_epochs), desc="milan: train LM", disable=not progress, leave=False)
    for epoch in bar:
        lm.train()
        order = torch.randperm(len(train), generator=gen).tolist()
        for b in range(0, len(order), config.lm_batch_size):
            loss = loss_of([train[j] for j in order[b: b + config.lm_batch_size]])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        history.lm_epochs = epoch + 1
        if not val:
            continue
        lm.eval()
        with torch.no_grad():
            val_loss = sum(float(loss_of(val[b: b + config.lm_batch_size])) * len(val[b: b + config.lm_batch_size])
                           for b in range(0, len(val), config.lm_batch_size)) / len(val)
        history.lm_val_loss.append(val_loss)
        bar.set_postfix(val_loss=f"{val_loss:.3f}")
        if val_loss < best_loss:
            best_loss, since_best = val_loss, 0
            best_state = copy.deepcopy(lm.state_dict())
        else:
            since_best += 1
            if _early_stop(config.lm_patience, since_best):
                break
    if val:
        lm.load_state_dict(best_state)
    lm.eval()
    return lm
