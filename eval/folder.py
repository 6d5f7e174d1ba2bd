"""`milan-eval --benchmark PATH`: a describer scored on a user's exemplar folder by faithfulness only.

A folder written by `milannotations exemplars ... --record-activations` holds,
per config, each unit's exemplars and its activation on every probe image.
No human descriptions are needed: the describer describes the units, a
labeller turns each description into a score per probe image, and the
probe-set metrics compare those with the unit's activations
(eval/metrics/faithfulness.py), beside exemplar faithfulness on the unit's
own exemplars.

What stands in for the pieces a human corpus gives:
- units under test: the config's `test` split (all units when it has none);
  its `train` split are the validation units on which alpha is chosen, from
  their annotations when they have some, else NeuronEval's fixed 0.005;
- floors, from the describer's own descriptions: `constant` (its most
  frequent description for every unit) and `random-unit` (its descriptions
  given to other units, a seeded derangement): what the metrics give a
  describer that says nothing unit-specific;
- ceiling: the metric's range maximum (none for CoSy's unbounded MAD), as no
  best description is known.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import time
from collections import Counter
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from baselines.registry import Runtime, build_describer, recorded_args
from milannotations.errors import MilanError

from .describing import describe_batches, seed_everything
from .environment import environment
from .faithful import build_run_faithfulness, describer_uses
from .records import (DescriberRecord, Floors, LabellerRecord, ProbeRecord, ResultsRecord, Scores, SplitRecord,
                      Timing)
from .results import write_run
from .scoring import best_floor, normalized_scores, score_dict


def folder_configs(folder: Path) -> list[str]:
    """The configs of an exemplar folder that carry probe activations."""
    data = Path(folder) / "data"
    return sorted(p.name for p in data.iterdir() if (p / "probe" / "meta.json").is_file()) if data.is_dir() else []


def _floors(texts: list[str], seed: int) -> dict[str, list[str]]:
    """`constant` and `random-unit` descriptions made from the describer's own (see the module)."""
    counts = Counter(texts)
    top = min(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0]
    n = len(texts)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    if n > 1:  # a derangement: rotate the permutation's cycle so no unit keeps its own description
        perm = np.roll(perm, 1)[np.argsort(perm)]
    return {"constant": [top] * n, "random-unit": [texts[int(j)] for j in perm]}


def _ceiling(method: Mapping[str, dict]) -> dict[str, dict]:
    from .metrics.spec import metric

    out = {}
    for name, m in method.items():
        spec = metric(name)
        unbounded = name == "probe_cosy_mad"
        out[name] = {"value": float(m["value"]) if unbounded else float(spec.scale),
                     "ci95": [float(m["value"]), float(m["value"])] if unbounded else [float(spec.scale)] * 2,
                     "signature": f"{name}|ceiling:" + ("none(unbounded)" if unbounded else "range-maximum")}
    return out


def evaluate_folder(describer, folder: str | Path, *, labeller: str = "clip",
                    labeller_args: Mapping[str, Any] | None = None, configs: Sequence[str] | None = None,
                    limit: int | None = None, seed: int = 0, device: str = "cpu", output=None,
                    describer_args: Mapping[str, Any] | None = None, batch_size: int = 32,
                    progress: bool = True, n_boot: int = 1000) -> dict:
    """Describe a folder's test units and score the descriptions by probe-set and exemplar
    faithfulness through `labeller`, with floors and intervals. Returns the results dict and, with
    `output`, writes results.json and descriptions.csv there."""
    from milannotations import UnitSet, load
    from milannotations.exemplars.probe import load_probe

    from .metrics.faithfulness import DEFAULT_ALPHA, choose_alpha
    from .splits import limit_indices

    t_start = time.perf_counter()
    folder = Path(folder)
    found = folder_configs(folder)
    if not found:
        raise MilanError(f"--benchmark {folder}: no config with probe activations under {folder / 'data'}; "
                         "write one with `milannotations exemplars ... --record-activations`")
    chosen = list(configs) if configs else found
    for c in chosen:
        if c not in found:
            raise MilanError(f"--configs {c}: not a config with probe activations in {folder} "
                             f"(have {', '.join(found)})")
    faith = build_run_faithfulness(labeller, labeller_args, device=device, seed=seed, n_boot=n_boot)
    if faith is None:
        raise MilanError("--benchmark PATH scores faithfulness only: give --labeller clip, segmenter or oracle")
    runtime = Runtime(device=device, seed=seed, progress=progress)
    recorded = recorded_args(describer, describer_args, runtime)
    revision = hashlib.sha256(f"folder\x1e{folder.resolve()}".encode())
    split_records, rows, uses = [], [], set()
    timing = {"load_s": 0.0, "fit_s": 0.0, "describe_s": 0.0, "score_s": 0.0}
    meta = None
    for config in chosen:
        t = time.perf_counter()
        ds = load(config, root=folder)
        probe = load_probe(folder / "data" / config)
        test_ds = ds["test"] if "test" in ds else ds[next(iter(ds))]
        val_ds = ds["train"] if "test" in ds and "train" in ds else None
        keep = limit_indices(list(test_ds["unit_id"]), limit, seed)
        if len(keep) != len(test_ds):
            test_ds = test_ds.select(keep)
        test = UnitSet(test_ds.remove_columns([c for c in ("annotations", "truth") if c in test_ds.column_names]))
        ids, layers, units = list(test_ds["unit_id"]), [str(x) for x in test_ds["layer"]], \
            [int(x) for x in test_ds["unit"]]
        acts = np.stack([np.asarray(probe.activations(layer, "max")[:, unit], np.float64)
                         for layer, unit in zip(layers, units)], axis=1)  # N x units
        images = probe.images(range(len(probe)))
        timing["load_s"] += time.perf_counter() - t

        seed_everything(seed)
        d = build_describer(describer, describer_args, runtime)
        meta = d.meta
        t = time.perf_counter()
        if hasattr(d, "fit"):
            try:
                d.fit([])
            except MilanError as e:
                raise MilanError(f"describer {meta.name}: {e} (a folder has no annotated training units; "
                                 "use a describer that needs none, or a trained checkpoint)") from None
        timing["fit_s"] += time.perf_counter() - t
        t = time.perf_counter()
        texts = describe_batches(d, meta.name, test, ids, list(range(len(ids))), batch_size, progress, config)
        timing["describe_s"] += time.perf_counter() - t
        uses |= describer_uses(d)

        t = time.perf_counter()
        alpha, how = DEFAULT_ALPHA, "fixed:neuroneval-hidden-layer"
        if val_ds is not None and len(val_ds) > 1 and "annotations" in val_ds.column_names \
                and all(len(a) for a in val_ds["annotations"]):
            v_layers, v_units = [str(x) for x in val_ds["layer"]], [int(x) for x in val_ds["unit"]]
            v_acts = np.stack([np.asarray(probe.activations(la, "max")[:, u], np.float64)
                               for la, u in zip(v_layers, v_units)])
            refs = [a[0] for a in val_ds["annotations"]]
            v_ctx = faith.scorer.probe_context(v_acts.T, images, [None] * len(probe), alpha=alpha, alpha_how=how,
                                               probe=config)
            labels = v_ctx.labelled.scores(list(dict.fromkeys(refs)))
            col = {r: j for j, r in enumerate(dict.fromkeys(refs))}
            alpha, how = choose_alpha(v_acts, labels[[col[r] for r in refs]]), f"val:{len(val_ds)}-units"
        same = "same-as-exemplars" if probe.meta.get("same_as_exemplars") else "separate"
        ctx = faith.scorer.probe_context(acts, images, [None] * len(probe), alpha=alpha, alpha_how=how,
                                         probe=f"{config}:{len(probe)}-images:{same}")
        ex_ctx = faith.scorer.exemplar_context(list(test))

        def scores(descr: list[str]) -> dict[str, dict]:
            out = score_dict(faith.scorer.score_probe(ctx, descr))
            out.update(score_dict(faith.scorer.score_exemplars(ex_ctx, descr)))
            return out

        method = scores(texts)
        floors = {f: scores(t) for f, t in _floors(texts, seed).items()}
        floor = best_floor(floors)
        ceiling = _ceiling(method)
        timing["score_s"] += time.perf_counter() - t
        test_h = hashlib.sha256("\x1e".join(ids).encode())
        revision.update(test_h.digest())
        split_records.append(SplitRecord(
            name=config, train=(), test=(config,), n_units=len(ids), held_out=True, revision=test_h.hexdigest(),
            metrics=Scores.from_dict(method, "metrics"), floors=Floors.from_dict(floors),
            floor=Scores.from_dict(floor, "floor"), ceiling=Scores.from_dict(ceiling, "ceiling"),
            normalized=Scores.from_dict(normalized_scores(method, floor, ceiling), "normalized"),
            probe=ProbeRecord(images=len(probe), alpha=alpha, alpha_chosen=how,
                              same_as_exemplars=bool(probe.meta.get("same_as_exemplars")))))
        rows.extend({"unit_id": u, "layer": la, "unit": un, "description": tx, "split": config, "trial": 0}
                    for u, la, un, tx in zip(ids, layers, units, texts))
    timing["total_s"] = time.perf_counter() - t_start
    record = ResultsRecord(
        benchmark="folder", benchmark_path=str(folder.resolve()), revision=revision.hexdigest(),
        protocol="probe-set", scorer="none", seed=seed, trials=1, limit=limit, batch_size=batch_size,
        describer=DescriberRecord.of(meta, recorded), labeller=LabellerRecord.from_dict(faith.record(uses)),
        splits=tuple(split_records), environment=environment(device, 1), timing=Timing.of(timing),
        date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    if output is not None:
        write_run(output, record, rows)
    return record.to_dict()
