"""Loading the authors' released decoders (`milan-<group>.pth`) without unpickling code.

The original `Decoder.save` pickles a plain nested dict (its `Serializable`
mixin turns objects into dictionaries): `{"properties": {...}, "children":
{...}, "state_dict": OrderedDict}`. Tensors, dicts, tuples, strings and
numbers load under `torch.load(weights_only=True)`. Two things do not:

* the spaCy tokenizer inside the indexer is stored as `(nlp.config,
  nlp.to_bytes())`, and `nlp.config` is a `thinc`/`confection` `Config`,
  a dict subclass, i.e. a class reference in the pickle;
* cached `frozenset`s (`Vocab.unique`) may be present.

Neither needs code to be rebuilt: we map the `Config` classes onto
`collections.OrderedDict` (data only; its attributes land in an inert
`__dict__`) and allow the builtin `frozenset`/`set`, all inside torch's
restricted unpickler, which still refuses every other global. The spaCy
bytes are ignored (our tokenizer is a regex); the vocabulary, sizes and
weights are mapped onto our modules.
"""
from __future__ import annotations

import collections
from pathlib import Path
from typing import Any, Mapping

import torch

from milannotations.errors import MilanError

from .decoder import DecoderConfig, ShowAttendTell
from .lm import LanguageModel, LMConfig
from .model import MilanModel
from .vocab import SPECIALS, Vocab

#: Names under which the spaCy config class was pickled (thinc before spaCy 3.2, confection after).
CONFIG_CLASSES = ("thinc.config.Config", "thinc.api.Config", "confection.Config", "confection._config.Config")

#: original decoder parameter -> ours
DECODER_KEYS = {
    "init_h.0.weight": "init_h.weight", "init_h.0.bias": "init_h.bias",
    "init_c.0.weight": "init_c.weight", "init_c.0.bias": "init_c.bias",
    "embedding.weight": "embedding.weight",
    "attend.query_to_hidden.weight": "attention.query.weight", "attend.query_to_hidden.bias": "attention.query.bias",
    "attend.key_to_hidden.weight": "attention.key.weight", "attend.key_to_hidden.bias": "attention.key.bias",
    "attend.output.0.weight": "attention.score.weight", "attend.output.0.bias": "attention.score.bias",
    "feature_gate.0.weight": "gate.weight", "feature_gate.0.bias": "gate.bias",
    "lstm.weight_ih": "cell.weight_ih", "lstm.weight_hh": "cell.weight_hh",
    "lstm.bias_ih": "cell.bias_ih", "lstm.bias_hh": "cell.bias_hh",
    "output.1.weight": "out.weight", "output.1.bias": "out.bias",
}
#: original LM parameter (under `lm.` in the decoder's state dict) -> ours; LSTM keys map to themselves
LM_KEYS = {"embedding.weight": "embedding.weight", "output.0.weight": "out.weight", "output.0.bias": "out.bias"}


def read_payload(path: str | Path) -> Mapping[str, Any]:
    """The raw nested dict of a released `.pth`, read with torch's restricted (weights-only) unpickler."""
    path = Path(path)
    if not path.is_file():
        raise MilanError(f"released MILAN checkpoint {path} does not exist")
    allowed = [(collections.OrderedDict, name) for name in CONFIG_CLASSES] + [frozenset, set]
    try:
        with torch.serialization.safe_globals(allowed):
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - report any refusal as one actionable line
        reason = str(e).split("WeightsUnpickler error:")[-1].strip().splitlines()[0] if str(e) else type(e).__name__
        raise MilanError(f"{path} cannot be loaded safely (weights-only): {reason}. "
                         "Only the dict-of-tensors layout of the original Decoder.save is supported") from e
    if not isinstance(payload, Mapping) or "properties" not in payload or "state_dict" not in payload:
        raise MilanError(f"{path} is not a released MILAN decoder: expected keys 'properties' and 'state_dict'")
    return payload


def _props(node: Any, what: str, path: Path) -> Mapping[str, Any]:
    if isinstance(node, Mapping) and isinstance(node.get("properties"), Mapping):
        return node["properties"]
    raise MilanError(f"{path}: {what} is missing or not a serialized object")


def _vocab_words(indexer: Mapping[str, Any], path: Path) -> tuple[str, ...]:
    tokens = _props(_props(indexer, "indexer", path).get("vocab"), "indexer.vocab", path).get("tokens")
    if not isinstance(tokens, (tuple, list)) or not all(isinstance(t, str) for t in tokens):
        raise MilanError(f"{path}: indexer.vocab.tokens is not a list of strings")
    return tuple(t for t in tokens if t not in SPECIALS)


def load_released(path: str | Path, backbone: str | None = None) -> MilanModel:
    """A `MilanModel` from a released decoder; its encoder weights are not used (see docs/milan.md)."""
    path = Path(path)
    payload = read_payload(path)
    props = payload["properties"]
    words = _vocab_words(props.get("indexer"), path)
    vocab = Vocab(words)
    state = {k: v for k, v in payload["state_dict"].items() if isinstance(v, torch.Tensor)}
    if "embedding.weight" not in state or "lstm.weight_ih" not in state:
        raise MilanError(f"{path}: state_dict lacks the decoder's embedding/lstm weights")
    vocab_size, emb = state["embedding.weight"].shape
    if vocab_size != len(vocab):
        raise MilanError(f"{path}: vocabulary has {len(vocab)} tokens but the embedding has {vocab_size} rows")
    hidden = state["init_h.0.weight"].shape[0]
    feature = state["init_h.0.weight"].shape[1]
    config = DecoderConfig(vocab_size=vocab_size, feature_size=feature, embedding_size=emb, hidden_size=hidden,
                           attention_size=state["attend.key_to_hidden.weight"].shape[0],
                           dropout=float(props.get("dropout", 0.5)), length=int(props.get("length", 15)))
    decoder = ShowAttendTell(config)
    try:
        decoder.load_state_dict({DECODER_KEYS[k]: v for k, v in state.items() if k in DECODER_KEYS})
    except (RuntimeError, KeyError) as e:
        raise MilanError(f"{path}: decoder weights do not fit: {e}") from e
    lm = None
    lm_state = {k[3:]: v for k, v in state.items() if k.startswith("lm.")}
    if lm_state:
        lm_props = _props(props.get("lm"), "lm", path)
        layers = sum(1 for k in lm_state if k.startswith("lstm.weight_ih_l"))
        lm_cfg = LMConfig(vocab_size=vocab_size, embedding_size=lm_state["embedding.weight"].shape[1],
                          hidden_size=lm_state["lstm.weight_hh_l0"].shape[1], layers=layers,
                          dropout=float(lm_props.get("dropout", 0.5)))
        lm = LanguageModel(lm_cfg, vocab.pad)
        try:
            lm.load_state_dict({LM_KEYS.get(k, k): v for k, v in lm_state.items()})
        except RuntimeError as e:
            raise MilanError(f"{path}: LM weights do not fit: {e}") from e
        lm.eval()
    decoder.eval()
    encoder = props.get("encoder")
    enc_props = encoder.get("properties", {}) if isinstance(encoder, Mapping) else {}
    name = backbone or str(enc_props.get("config") or "resnet101")
    info = {"source": str(path), "released": True,
            "decoding": {k: props.get(k) for k in ("strategy", "temperature", "beam_size")}}
    return MilanModel(vocab, decoder, lm, name, "", _trained_on(path), info)


def _trained_on(path: Path) -> tuple[str, ...]:
    """`milan-<group>.pth` saw the configs of <group> (e.g. milan-base: the six base networks)."""
    from milannotations.load import resolve_configs

    group = path.stem[len("milan-"):] if path.stem.startswith("milan-") else path.stem
    try:
        return tuple(resolve_configs(group.split("+")[0]))
    except Exception:  # noqa: BLE001 - an unknown group name: trained_on unknown, not an error
        return ()
