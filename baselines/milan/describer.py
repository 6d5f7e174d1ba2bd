"""`milan`: the describer of the paper behind the one describer contract.

    d = create_describer("milan", strategy="rerank")
    d.fit(train_units)           # encode exemplars, train LM and decoder, choose beam and λ on validation units
    d.describe(test_units)       # -> list[str]

`beam` and `lam` left unset are chosen after training on the decoder's
validation units (a seeded tenth of the training units) over the original's
sweep grid (`selection.py`); set either to fix both at the given value and the
paper's value for the other.

With `checkpoint=` pointing at a saved folder (or a released `.pth`) it
describes without training, and `fit` keeps the checkpoint unless
`retrain=true`. `save=` writes the checkpoint after `fit`.
"""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Sequence

import torch

from baselines.registry import register_describer
from milannotations.contract import AnnotatedExemplars, DescriberMeta, Exemplars
from milannotations.errors import MilanError

from .backbones import Backbone, load_backbone
from .checkpoint import load_checkpoint, save_checkpoint
from .decoder import MAX_LENGTH, DecoderConfig
from .decoding import STRATEGIES
from .encoder import PyramidEncoder, stack_features
from .lm import LMConfig
from .model import MilanModel
from .selection import PAPER_BEAM, PAPER_LAM, Selection, beam_candidates, select_decoding
from .train import (TRAINING_VERSION, History, LMRun, TrainConfig, fit_both, fitting, start_lm,
                    validation_units)
from .vocab import build_vocab

VERSION = "2"  # 2: beam and λ chosen on validation units; the original's after-<stop> LM term
CITATION = ("Hernandez, Schwettmann, Bau, Bagashvili, Torralba, Andreas. Natural Language Descriptions of "
            "Deep Visual Features. ICLR 2022. arXiv:2201.11114")


def _default_cache() -> Path:
    from milannotations.paths import default_root

    return default_root() / "features" / "milan"


def _announce(line: str) -> None:
    """A line for the person waiting (stderr, between progress bars)."""
    from tqdm.auto import tqdm

    tqdm.write(line, file=sys.stderr)


def _annotations_of(units) -> list[list[str]] | None:
    """The units' descriptions read without their pixels (`UnitSet.annotations()`), or None."""
    read = getattr(units, "annotations", None)
    if not callable(read):
        return None
    try:
        out = [list(a) for a in read()]
    except Exception:  # noqa: BLE001 - any other Sequence: its descriptions come with the stream
        return None
    return out if any(out) and len(out) == len(units) else None


class _Sized:
    """An iterator with a length and indexable peeks (for choosing the backbone) over a sequence."""

    def __init__(self, it, n: int, seq: Sequence) -> None:
        self._it, self._n, self._seq = it, n, seq

    def __len__(self) -> int:
        return self._n

    def __iter__(self):
        return self._it

    def __getitem__(self, i: int):
        return self._seq[i]

    @property
    def configs(self):
        return getattr(self._seq, "configs", None)


@register_describer("milan")
class MilanDescriber:
    """MILAN: Show-Attend-Tell over pyramid-pooled exemplar features, PMI-reranked beam search."""

    def __init__(self, strategy: str = "rerank", beam: int | None = None, lam: float | None = None,
                 backbone: str | None = None,
                 checkpoint: str | None = None, save: str | None = None, retrain: bool = False,
                 epochs: int = 100, lm_epochs: int | None = None, patience: int = 4, seed: int = 0,
                 device: str = "cpu", backbone_weights: str | None = None, cache: bool | str = True,
                 hidden: int = 512, embedding: int = 128, batch_size: int = 64, progress: bool = True,
                 rerank: str = "pmi", clip_model: str = "synth", clip_pretrained: str | None = "openai",
                 clip_mix: float = 0.0) -> None:
        if strategy not in STRATEGIES:
            raise MilanError(f"milan: strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}")
        if beam is not None and int(beam) < 1:
            raise MilanError(f"milan: beam must be >= 1, not {beam}")
        if rerank not in ("pmi", "clip"):
            raise MilanError(f"milan: rerank must be pmi or clip, not {rerank!r}")
        if rerank == "clip" and strategy == "greedy":
            raise MilanError("milan: rerank=clip needs beam candidates; use strategy=beam or rerank")
        self.strategy = strategy
        # None: chosen on validation units after fit (or read from the checkpoint); otherwise fixed.
        self._fixed = beam is not None or lam is not None
        self.beam = int(beam) if beam is not None else PAPER_BEAM
        self.lam = float(lam) if lam is not None else PAPER_LAM
        self.selection: Selection | None = None
        self._cached = False  # whether fit read the weights from the training cache (not a model property)
        self.rerank, self.clip_mix = rerank, float(clip_mix)
        self._clip_spec = (clip_model, clip_pretrained)
        self._clip = None
        self.backbone_name = backbone
        self.backbone_weights = backbone_weights
        self.device, self.seed, self.progress = device, int(seed), progress
        self.save_path, self.retrain = save, bool(retrain)
        self.train_config = TrainConfig(max_epochs=int(epochs), lm_max_epochs=int(lm_epochs or epochs),
                                        patience=int(patience), lm_patience=int(patience), seed=int(seed),
                                        batch_size=int(batch_size))
        self.hidden, self.embedding = int(hidden), int(embedding)
        self.cache_dir = None if cache is False else (_default_cache() if cache is True else Path(str(cache)))
        self.model: MilanModel | None = load_checkpoint(checkpoint).to(device) if checkpoint else None
        if self.model is not None:
            self._adopt_selection(self.model.info.get("selection"))
        self._encoder: PyramidEncoder | None = None
        self.meta = self._meta()

    def _meta(self) -> DescriberMeta:
        trained = self.model.trained_on if self.model is not None else ()
        return DescriberMeta(name="milan", version=VERSION, trained_on=tuple(trained), citation=CITATION,
                             reference="https://github.com/evandez/neuron-descriptions", reproducible=True)

    def _adopt_selection(self, selection: dict | None) -> None:
        """Decode with a recorded selection unless beam or λ were given explicitly."""
        if selection and not self._fixed and selection.get("strategy") == self.strategy:
            self.selection = Selection(**selection)
            self.beam, self.lam = self.selection.beam, self.selection.lam

    @property
    def fit_record(self) -> dict:
        """What `fit` decided, for results files: early-stopping epochs and the chosen decoding settings."""
        if self.model is None:
            return {}
        history = self.model.info.get("history", {})
        return {"decoder_epochs": history.get("decoder_epochs"), "best_epoch": history.get("best_epoch"),
                "lm_epochs": history.get("lm_epochs"), "cached": self._cached,
                "beam": self.beam,
                "lam": self.lam if self.strategy == "rerank" else None,
                "selection": self.selection.to_dict() if self.selection else None}

    # --- encoding -------------------------------------------------------------------------------
    def _backbone_for(self, units: Sequence[Exemplars]) -> str:
        if self.model is not None:
            return self.model.backbone
        if self.backbone_name:
            return self.backbone_name
        from milannotations.synth.catalog import is_synth

        configs = set(getattr(units, "configs", None) or (units[i].config for i in range(min(len(units), 8))))
        return "synth" if configs and all(is_synth(c) for c in configs) else "resnet50"

    def encoder(self, name: str) -> PyramidEncoder:
        if self._encoder is None or self._encoder.backbone.name != name:
            backbone: Backbone = load_backbone(name, device=self.device, weights=self.backbone_weights)
            self._encoder = PyramidEncoder(backbone, device=self.device, cache_dir=self.cache_dir)
        return self._encoder

    def encode(self, units: Sequence[Exemplars]) -> torch.Tensor:
        """(N, k, D) exemplar features of `units` with the model's backbone (units read once, streamed)."""
        enc = self.encoder(self._backbone_for(units))
        if self.model is not None and self.model.backbone_signature and \
                self.model.backbone_signature != enc.backbone.signature:
            raise MilanError(f"milan: checkpoint was trained on backbone {self.model.backbone_signature} but "
                             f"{enc.backbone.signature} is loaded; its features would not match")
        return stack_features(enc.encode_units(iter(units), progress=self.progress, total=len(units)))

    def _trained_path(self, features: torch.Tensor, unit_ids: Sequence[str], annotations: Sequence[Sequence[str]],
                      dcfg: DecoderConfig, lcfg: LMConfig, backbone_signature: str) -> Path | None:
        """Where the weights trained on exactly these inputs are cached (None without a cache).

        Training is deterministic given its inputs, so the key is everything it reads: the features'
        bytes, unit ids, descriptions, sizes, training settings, backbone, device, torch version,
        this module's version and how training is computed (`TRAINING_VERSION`). Decoding settings
        are not in it: `strategy=greedy`, `rerank=clip` and the PMI rerank of one seed share one
        training, which is what makes the board's variants cheap.
        """
        if self.cache_dir is None:
            return None
        import hashlib
        import json

        h = hashlib.sha256(json.dumps({
            "version": VERSION, "training": TRAINING_VERSION, "torch": torch.__version__, "device": str(self.device),
            "train": self.train_config.to_dict(), "decoder": dcfg.to_dict(), "lm": lcfg.to_dict(),
            "backbone": backbone_signature, "units": list(unit_ids), "annotations": [list(a) for a in annotations],
        }, sort_keys=True).encode())
        h.update(features.detach().cpu().contiguous().numpy().tobytes())
        return self.cache_dir / "trained" / h.hexdigest()[:32]

    # --- the contract -------------------------------------------------------------------------
    def fit(self, train: Sequence[AnnotatedExemplars]) -> None:
        """Train the LM and the decoder on the training units (skipped when a checkpoint is loaded)."""
        if self.model is not None and not self.retrain:
            return
        if len(train) == 0:
            raise MilanError("milan: fit() got no training units")
        self.model = None
        seen: list[tuple[str, str, list[str]]] = []  # (unit_id, config, annotations), filled while streaming

        def stream():
            for unit in train:
                seen.append((unit.unit_id, unit.config, list(getattr(unit, "annotations", ()))))
                yield unit

        with contextlib.ExitStack() as stack:
            # The LM needs only the descriptions: where they can be read without the pixels (a UnitSet),
            # it starts training in its own process now and the features are encoded meanwhile.
            early = _annotations_of(train)
            lm_run = None
            if early:
                early_vocab = build_vocab(a for x in early for a in x)
                lm_run = stack.enter_context(start_lm(early, early_vocab, self._lm_config(early_vocab), MAX_LENGTH,
                                                      self.train_config, self.progress, self.device))
            with fitting(self.device):  # one thread: the other core is the LM's (and the same features either way)
                features = self.encode(_Sized(stream(), len(train), train))
            unit_ids = [u for u, _, _ in seen]
            annotations = [a for _, _, a in seen]
            if not any(annotations):
                raise MilanError("milan: the training units carry no descriptions")
            if lm_run is not None and early != annotations:  # not what the units said: train on what they said
                lm_run.close()
                lm_run = None
            self._fit_encoded(features, unit_ids, annotations, tuple(dict.fromkeys(c for _, c, _ in seen)), lm_run)
        self.meta = self._meta()
        if self.save_path:
            save_checkpoint(self.model, self.save_path)

    def _lm_config(self, vocab) -> LMConfig:
        return LMConfig(vocab_size=len(vocab), embedding_size=self.embedding, hidden_size=self.hidden)

    def _fit_encoded(self, features: torch.Tensor, unit_ids: list[str], annotations: list[list[str]],
                     trained_on: tuple[str, ...], lm_run: LMRun | None) -> None:
        """Train (or read from the training cache) on encoded units, then choose the decoding settings.

        Selection's beam searches need only the decoder, so after training they run while the LM is
        still training in its own process; its LM half runs once the LM is back.
        """
        vocab = build_vocab(a for anns in annotations for a in anns)
        dcfg = DecoderConfig(vocab_size=len(vocab), feature_size=features.shape[-1],
                             embedding_size=self.embedding, hidden_size=self.hidden, length=MAX_LENGTH)
        lcfg = self._lm_config(vocab)
        enc = self._encoder
        select = not self._fixed and self.strategy != "greedy" and self.rerank == "pmi"
        val = validation_units(unit_ids, self.train_config) if select else []
        searched: dict = {}
        cached = self._trained_path(features, unit_ids, annotations, dcfg, lcfg, enc.backbone.signature)
        if cached is not None and (cached / "config.json").is_file():
            if lm_run is not None:
                lm_run.close()
            self.model = load_checkpoint(cached).to(self.device)
            self._cached = True
        else:
            history = History()

            def search(decoder) -> None:
                if val:
                    searched.update(beam_candidates(decoder, vocab, features[val]))

            with torch.random.fork_rng(devices=[]):
                lm, decoder = fit_both(annotations, features, unit_ids, vocab, lcfg, dcfg, self.train_config,
                                       history, self.progress, self.device,
                                       announce=_announce if self.progress else None, lm_run=lm_run,
                                       while_lm_trains=search)
            self.model = MilanModel(vocab, decoder, lm, enc.backbone.name, enc.backbone.signature, trained_on,
                                    {"train": self.train_config.to_dict(), "history": history.to_dict()})
            if cached is not None:
                save_checkpoint(self.model, cached)
            self._cached = False
        self.selection = None
        if val:
            chosen = select_decoding(self.model, features[val], [annotations[i] for i in val], self.strategy,
                                     searched=searched or None)
            self.model.info["selection"] = chosen.to_dict()
            self._adopt_selection(chosen.to_dict())

    def describe(self, units: Sequence[Exemplars]) -> list[str]:
        """One description per unit with the configured strategy."""
        if self.model is None:
            raise MilanError("milan: describe() before fit(); train it or pass checkpoint=PATH")
        if len(units) == 0:
            return []
        features = self.encode(units)
        if self.rerank == "clip":
            return self._describe_clip(units, features)
        return self.model.describe(features, strategy=self.strategy, beam=self.beam, lam=self.lam)

    def _describe_clip(self, units: Sequence[Exemplars], features: torch.Tensor) -> list[str]:
        """MILAN+CLIP: the beam's candidates, chosen by CLIP similarity to the masked exemplars."""
        from baselines.clip.models import load_clip

        from .clip_rerank import choose_by_clip

        if self._clip is None:
            self._clip = load_clip(*self._clip_spec, device=self.device)
        texts = [[self.model.vocab.decode(c.ids) for c in cands if c.ids]
                 for cands in self.model.candidates(features, beam=self.beam)]
        best = choose_by_clip(self._clip, units, texts, mix=self.clip_mix)
        return [t[i] for t, i in zip(texts, best)]
