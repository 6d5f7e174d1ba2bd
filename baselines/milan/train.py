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
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from milannotations.splits import validation_split

from .decoder import DecoderConfig, ShowAttendTell
from .decoding import greedy
from .lm import LanguageModel, LMConfig
from .vocab import Vocab


#: How training is computed, in the training cache's key (`MilanDescriber._trained_path`): 1 padded
#: losses, per-tensor AdamW, the caller's thread count; 2 the same losses on real tokens only, fused
#: AdamW, one thread per model (same method, other last bits: earlier cached weights are retrained).
TRAINING_VERSION = 2


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
    lm_epoch_s: list[float] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _pad(rows: Sequence[Sequence[int]], pad: int) -> torch.Tensor:
    out = torch.full((len(rows), max(len(r) for r in rows)), pad, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return out


def _adamw(model: torch.nn.Module, config: TrainConfig, device: str) -> torch.optim.AdamW:
    """The paper's AdamW (torch defaults but lr and weight decay) as one fused kernel where torch has one.

    The fused step is the same update as the default per-tensor loop (it differs from it in the last
    bits); on the 2.3M weights of the decoder it takes a quarter of the loop's time on CPU.
    """
    fused = torch.device(device).type in ("cpu", "cuda")
    return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                             fused=fused or None)


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
                progress: bool = True, device: str = "cpu",
                on_epoch: Callable[[int], None] | None = None) -> ShowAttendTell:
    """Train a decoder on (N, k, D) features and each unit's descriptions; returns the best one.

    `on_epoch(epoch)` is called before each epoch (`fit_both` uses it for its time estimate); it must
    not touch the decoder or the RNG.
    """
    with fitting(device, config.seed):
        return _fit_decoder(features, annotations, unit_ids, vocab, decoder_config, config, history, progress,
                            device, on_epoch)


def fitting(device: str | torch.device, seed: int | None = None):
    """The context every step of fitting runs in: on `TRAIN_THREADS` CPU threads (the same bits on any
    number of cores), seeded if `seed` is given, torch's RNG and thread count restored afterwards."""
    from milannotations.training import TRAIN_THREADS, deterministic_training

    on_cpu = torch.device(device).type == "cpu"
    return deterministic_training(seed, threads=TRAIN_THREADS if on_cpu else None, deterministic_algorithms=False)


def _fit_decoder(features: torch.Tensor, annotations: Sequence[Sequence[str]], unit_ids: Sequence[str],
                 vocab: Vocab, decoder_config: DecoderConfig, config: TrainConfig, history: History,
                 progress: bool, device: str, on_epoch: Callable[[int], None] | None) -> ShowAttendTell:
    decoder = ShowAttendTell(decoder_config).to(device)
    features = features.to(device)
    val_units = validation_units(unit_ids, config)
    held = set(val_units)
    train_units = [i for i in range(len(unit_ids)) if i not in held]
    length = decoder_config.length
    pairs = [(i, vocab.index(a, length)) for i in train_units for a in annotations[i]]
    if not pairs:
        raise ValueError("no training descriptions")
    optimizer = _adamw(decoder, config, device)
    gen = torch.Generator().manual_seed(config.seed)
    best_state, best_bleu, since_best = copy.deepcopy(decoder.state_dict()), -math.inf, 0
    bar = tqdm(range(config.max_epochs), desc="milan: train decoder", disable=not progress, leave=False)
    for epoch in bar:
        if on_epoch is not None:
            on_epoch(epoch)
        t0 = time.perf_counter()
        decoder.train()
        order = torch.randperm(len(pairs), generator=gen).tolist()
        total = 0.0
        for b in range(0, len(order), config.batch_size):
            batch = [pairs[j] for j in order[b: b + config.batch_size]]
            feats = features[[i for i, _ in batch]]
            targets = _pad([t for _, t in batch], vocab.pad).to(device)
            loss = decoder.training_loss(feats, targets, vocab.start, vocab.pad, config.attention_weight)
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
    with fitting(device, config.seed + 1):
        return _fit_lm(annotations, vocab, lm_config, length, config, history, progress, device)


def _fit_lm(annotations: Sequence[Sequence[str]], vocab: Vocab, lm_config: LMConfig, length: int,
            config: TrainConfig, history: History, progress: bool, device: str) -> LanguageModel:
    lm = LanguageModel(lm_config, vocab.pad).to(device)
    seqs = [vocab.index(a, length) for anns in annotations for a in anns]
    gen = torch.Generator().manual_seed(config.seed + 1)
    perm = torch.randperm(len(seqs), generator=gen).tolist()
    n_val = min(len(seqs) - 1, max(1, round(config.holdout * len(seqs)))) if len(seqs) > 1 else 0
    val, train = [seqs[j] for j in perm[:n_val]], [seqs[j] for j in perm[n_val:]]
    optimizer = _adamw(lm, config, device)

    def loss_of(rows: list[list[int]]) -> torch.Tensor:  # the validation loss, with the LM's own forward
        targets = _pad(rows, vocab.pad).to(device)
        inputs = torch.cat([torch.full_like(targets[:, :1], vocab.start), targets[:, :-1]], dim=1)
        return F.nll_loss(lm(inputs).transpose(1, 2), targets, ignore_index=vocab.pad)

    best_state, best_loss, since_best = copy.deepcopy(lm.state_dict()), math.inf, 0
    bar = tqdm(range(config.lm_max_epochs), desc="milan: train LM", disable=not progress, leave=False)
    for epoch in bar:
        t0 = time.perf_counter()
        lm.train()
        order = torch.randperm(len(train), generator=gen).tolist()
        for b in range(0, len(order), config.lm_batch_size):
            targets = _pad([train[j] for j in order[b: b + config.lm_batch_size]], vocab.pad).to(device)
            loss = lm.training_loss(targets, vocab.start, vocab.pad)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        history.lm_epochs = epoch + 1
        if not val:
            history.lm_epoch_s.append(time.perf_counter() - t0)
            continue
        lm.eval()
        with torch.no_grad():
            val_loss = sum(float(loss_of(val[b: b + config.lm_batch_size])) * len(val[b: b + config.lm_batch_size])
                           for b in range(0, len(val), config.lm_batch_size)) / len(val)
        history.lm_val_loss.append(val_loss)
        history.lm_epoch_s.append(time.perf_counter() - t0)
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


#: Typical best epochs on the synthetic corpus, only for the printed estimate: `make demo`'s four
#: trainings (patience 10) had best decoder epochs 3, 13, 14 and 19 and best LM epochs 16-20
#: (docs/milan.md); the board's 20 trainings, best decoder epochs 2-39.
TYPICAL_BEST_EPOCH = 12
TYPICAL_LM_BEST_EPOCH = 17


def estimate_line(history: History, config: TrainConfig, n_units: int, side_by_side: bool) -> str:
    """One line saying how long this training will take, from the decoder's first epoch.

    Each model typically runs patience + 1 + its typical best epoch epochs (at least patience + 1,
    at most its maximum), and an LM epoch is taken to last as long as a decoder epoch (on the
    synthetic corpus both take about 1.2 s on one thread). Side by side the longer of the two is
    the estimate; one after the other, their sum.
    """
    per = history.epoch_s[0]
    dec = (min(config.max_epochs, config.patience + 1 + TYPICAL_BEST_EPOCH),
           min(config.max_epochs, config.patience + 1), config.max_epochs)
    lm = (min(config.lm_max_epochs, config.lm_patience + 1 + TYPICAL_LM_BEST_EPOCH),
          min(config.lm_max_epochs, config.lm_patience + 1), config.lm_max_epochs)
    typical, low, high = (max(d, m) if side_by_side else d + m for d, m in zip(dec, lm))
    how = "the LM alongside in a second process" if side_by_side else "then the LM"
    return (f"milan: training on {n_units} units, {per:.1f} s/epoch, {how}: about {per * typical:.0f} s "
            f"({typical} epochs; early stopping ends it after {low}-{high}: {per * low:.0f}-{per * high:.0f} s)")


# --- the LM and the decoder side by side ----------------------------------------------------------

def lm_worker_main() -> None:
    """The LM's own process (`python -m baselines.milan.lm_worker`, started by `fit_both`).

    It reads its job as JSON on stdin (descriptions, vocabulary words, sizes, settings, an output
    folder), trains exactly as `fit_lm` does, and writes the weights as safetensors and the
    history as JSON into that folder, so nothing crosses the boundary as a pickle. A fresh
    interpreter rather than a fork: GNU OpenMP's thread pool does not survive fork (a forked child
    that runs a parallel region after its parent did hangs).
    """
    import json
    import sys
    from pathlib import Path

    from safetensors.torch import save_file

    from .vocab import Vocab

    job = json.loads(sys.stdin.read())
    out = Path(job["output"])
    history = History()
    vocab = Vocab(tuple(job["words"]))
    lm = fit_lm(job["annotations"], vocab, LMConfig(**job["lm"]), int(job["length"]), TrainConfig(**job["train"]),
                history, progress=False, device="cpu")
    save_file({k: v.detach().contiguous() for k, v in lm.state_dict().items()}, str(out / "lm.safetensors"))
    (out / "history.json").write_text(json.dumps({"lm_epochs": history.lm_epochs,
                                                  "lm_val_loss": history.lm_val_loss,
                                                  "lm_epoch_s": history.lm_epoch_s}))


class LMRun:
    """The LM's training, started before the decoder's and collected after it (`start_lm`).

    Side by side (`parallel`), it runs in its own process (`lm_worker_main`) from the moment it is
    started, so it can begin before the decoder's features are even encoded; otherwise `join`
    trains it here. Either way the weights are those of `fit_lm` (one thread, its own seed).
    A context manager: leaving it without `join` (an error, or a cached decoder) stops the process.
    """

    def __init__(self, annotations: Sequence[Sequence[str]], vocab: Vocab, lm_config: LMConfig, length: int,
                 config: TrainConfig, progress: bool, device: str, parallel: bool) -> None:
        self._args = (annotations, vocab, lm_config, length, config, progress, device)
        self.side_by_side = parallel
        self._child = self._work = self._log = None
        if parallel:
            self._start()

    def _start(self) -> None:
        import json
        import os
        import subprocess
        import sys
        import tempfile

        annotations, vocab, lm_config, length, config, _, _ = self._args
        self._work = tempfile.TemporaryDirectory(prefix="milan-lm-")
        job = {"annotations": [list(a) for a in annotations], "words": list(vocab.words),
               "lm": lm_config.to_dict(), "length": length, "train": config.to_dict(), "output": self._work.name}
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        self._log = open(os.path.join(self._work.name, "stderr.txt"), "wb")  # a file: nobody reads a pipe meanwhile
        self._child = subprocess.Popen([sys.executable, "-m", "baselines.milan.lm_worker"], stdin=subprocess.PIPE,
                                       stderr=self._log, stdout=subprocess.DEVNULL, env=env)
        self._child.stdin.write(json.dumps(job).encode())
        self._child.stdin.close()

    def join(self, history: History) -> LanguageModel:
        """The trained LM (waiting for its process, or training it now); its epochs go into `history`."""
        annotations, vocab, lm_config, length, config, progress, device = self._args
        if not self.side_by_side:
            return fit_lm(annotations, vocab, lm_config, length, config, history, progress, device)
        import json
        import os

        from safetensors.torch import load_file

        self._child.wait()
        work = self._work.name
        if self._child.returncode != 0:
            with open(os.path.join(work, "stderr.txt"), "rb") as f:
                lines = f.read().decode(errors="replace").strip().splitlines()
            tail = lines[-1:] or ["(no message)"]
            raise RuntimeError(f"training the LM failed (exit code {self._child.returncode}): {tail[0]}")
        lm = LanguageModel(lm_config, vocab.pad)
        lm.load_state_dict(load_file(os.path.join(work, "lm.safetensors")))
        with open(os.path.join(work, "history.json")) as f:
            rec = json.load(f)
        lm.eval()
        history.lm_epochs, history.lm_val_loss, history.lm_epoch_s = (rec["lm_epochs"], rec["lm_val_loss"],
                                                                       rec["lm_epoch_s"])
        return lm

    def close(self) -> None:
        """Stop the process if it still runs and remove its folder."""
        if self._child is not None and self._child.poll() is None:
            self._child.kill()
            self._child.wait()
        if self._log is not None:
            self._log.close()
        if self._work is not None:
            self._work.cleanup()
        self._child = self._work = self._log = None

    def __enter__(self) -> "LMRun":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def start_lm(annotations: Sequence[Sequence[str]], vocab: Vocab, lm_config: LMConfig, length: int,
             config: TrainConfig, progress: bool = True, device: str = "cpu", parallel: bool | None = None) -> LMRun:
    """Start training the LM (`LMRun`). `parallel=None`: in its own process when on CPU with at least
    two threads (one core for it, one for the decoder), otherwise when joined."""
    if parallel is None:
        parallel = torch.device(device).type == "cpu" and torch.get_num_threads() >= 2
    return LMRun(annotations, vocab, lm_config, length, config, progress, device, parallel)


def fit_both(annotations: Sequence[Sequence[str]], features: torch.Tensor, unit_ids: Sequence[str], vocab: Vocab,
             lm_config: LMConfig, decoder_config: DecoderConfig, config: TrainConfig, history: History,
             progress: bool = True, device: str = "cpu", parallel: bool | None = None,
             announce: Callable[[str], None] | None = None, lm_run: LMRun | None = None,
             while_lm_trains: Callable[[ShowAttendTell], None] | None = None) -> tuple[LanguageModel, ShowAttendTell]:
    """The LM and the decoder, each exactly as `fit_lm` and `fit_decoder` train them.

    They are independent (each seeds itself; the decoder never reads the LM), and each trains on one
    CPU thread (`milannotations.training.TRAIN_THREADS`), so on a CPU with two or more threads the LM
    trains in a second process while the decoder trains here, one core each (`start_lm`; pass
    `lm_run` to use one started earlier, e.g. before the features were encoded). The weights are
    bitwise those of the sequential path, on any number of cores: the same seeds, batches, dropout
    draws and thread count in either process (`test_parallel_fit_is_the_sequential_fit`). One thread
    per model rather than both threads per model in turn: the thread count fixes the last bits of
    the gradients, which early stopping can turn into other descriptions, and on 2 cores two
    one-thread trainings side by side finish sooner than the same two on two threads each in turn.

    `while_lm_trains(decoder)`, if given, runs once the decoder is trained, before waiting for the LM
    (MILAN's selection runs its decoder-only beam searches there). `announce(line)`, if given,
    receives one line after the decoder's first epoch: how long training this split will take, from
    that epoch's time (`estimate_line`).
    """
    told = []
    with lm_run or start_lm(annotations, vocab, lm_config, decoder_config.length, config, progress, device,
                            parallel) as run:

        def tell(_epoch: int) -> None:
            if announce is not None and not told and history.epoch_s:
                told.append(True)
                announce(estimate_line(history, config, len(unit_ids), run.side_by_side))

        decoder = fit_decoder(features, annotations, unit_ids, vocab, decoder_config, config, history, progress,
                              device, on_epoch=tell)
        if while_lm_trains is not None:
            while_lm_trains(decoder)
        return run.join(history), decoder
