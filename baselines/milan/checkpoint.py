"""Saving and loading a trained MILAN as safetensors plus a JSON config.

A checkpoint is a folder: `model.safetensors` (decoder.* and lm.* weights)
and `config.json` (vocabulary, sizes, backbone, training settings,
`trained_on`). Neither file can run code when read, unlike a pickled .pth.
"""
from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file, save_file

from milannotations.errors import MilanError
from milannotations.fsutil import replace_path, staging_dir

from .decoder import DecoderConfig, ShowAttendTell
from .lm import LanguageModel, LMConfig
from .model import MilanModel
from .vocab import Vocab

FORMAT = "milannotations-milan/1"


def save_checkpoint(model: MilanModel, path: str | Path) -> Path:
    """Write the checkpoint folder atomically (staging folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"decoder.{k}": v.detach().cpu().contiguous() for k, v in model.decoder.state_dict().items()}
    if model.lm is not None:
        tensors.update({f"lm.{k}": v.detach().cpu().contiguous() for k, v in model.lm.state_dict().items()})
    config = {
        "format": FORMAT,
        "vocab": list(model.vocab.words),
        "decoder": model.decoder.config.to_dict(),
        "lm": model.lm.config.to_dict() if model.lm is not None else None,
        "backbone": model.backbone,
        "backbone_signature": model.backbone_signature,
        "trained_on": list(model.trained_on),
        "info": model.info,
    }
    with staging_dir(path.parent, prefix=f".{path.name}.") as staging:
        save_file(tensors, str(staging / "model.safetensors"))
        (staging / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        replace_path(staging, path)  # the old checkpoint stays readable until the rename
    return path


def load_checkpoint(path: str | Path) -> MilanModel:
    """Read a folder written by `save_checkpoint`; a released `.pth` goes through `load_released`."""
    path = Path(path)
    if path.is_file() and path.suffix == ".pth":
        from .released import load_released

        return load_released(path)
    cfg_file, weights = path / "config.json", path / "model.safetensors"
    if not cfg_file.is_file() or not weights.is_file():
        raise MilanError(f"{path} is not a MILAN checkpoint folder (needs config.json and model.safetensors)")
    try:
        cfg = json.loads(cfg_file.read_text())
    except json.JSONDecodeError as e:
        raise MilanError(f"{cfg_file} is not valid JSON: {e}") from e
    if cfg.get("format") != FORMAT:
        raise MilanError(f"{cfg_file}: format {cfg.get('format')!r}, expected {FORMAT!r}")
    state = load_file(str(weights))
    vocab = Vocab(tuple(cfg["vocab"]))
    decoder = ShowAttendTell(DecoderConfig(**cfg["decoder"]))
    lm = LanguageModel(LMConfig(**cfg["lm"]), vocab.pad) if cfg.get("lm") else None
    try:
        decoder.load_state_dict({k[8:]: v for k, v in state.items() if k.startswith("decoder.")})
        if lm is not None:
            lm.load_state_dict({k[3:]: v for k, v in state.items() if k.startswith("lm.")})
    except RuntimeError as e:
        raise MilanError(f"{weights} does not match {cfg_file}: {e}") from e
    decoder.eval()
    if lm is not None:
        lm.eval()
    return MilanModel(vocab, decoder, lm, cfg["backbone"], cfg.get("backbone_signature", ""),
                      tuple(cfg.get("trained_on", ())), cfg.get("info", {}))
