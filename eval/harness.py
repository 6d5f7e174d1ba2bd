"""`evaluate()`: protocol -> fit -> describe -> score, with floors and the human ceiling beside every number.

The harness is the only code that reads the descriptions of the units under
test; describers get those units as `Exemplars` (pixels, masks, names),
never annotations or `truth`. Whatever a describer returns is checked before
anything is scored, and a run writes its files only once it has succeeded.
Test units are sharded by `torch.distributed` rank when a process group is
initialised; rank 0 gathers the descriptions, scores them and writes.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import inspect
import json
import platform
import random
import subprocess
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from baselines.registry import create_describer, resolve_describer
from milannotations import UnitSet, load
from milannotations.load import expand_configs
from milannotations.contract import Describer, Exemplars
from milannotations.errors import MilanError

from .metrics.truth import TruthScorer
from .protocols import Split, protocol_splits
from .results import FLOOR_DESCRIBERS, write_run

_HIDDEN = ("annotations", "truth")  # columns of units under test that describers never see


# --------------------------------------------------------------------------- data

def _load_configs(configs: Sequence[str], split: str | None, root) -> Any:
    """The units of `configs` (one HF split, or all units when `split` is None), in config order."""
    import datasets

    parts = []
    for config in configs:
        try:
            ds = load(config, split=split, root=root)
        except ImportError as e:  # the synthetic builder is part of the corpus room
            raise MilanError(f"cannot build the synthetic corpus for {config!r} ({e}); "
                             "pass --root with a built folder") from e
        if split is None:
            ds = datasets.concatenate_datasets([ds[s] for s in ("train", "test") if s in ds])
        parts.append(ds)
    return parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)


def _limit_indices(unit_ids: list[str], limit: int | None, seed: int) -> list[int]:
    """Indices of at most `limit` units, chosen by a seeded hash of their ids (order independent)."""
    if limit is None or limit >= len(unit_ids):
        return list(range(len(unit_ids)))

    def key(i: int) -> bytes:
        return hashlib.sha256(f"milan-eval-limit:{seed}:{unit_ids[i]}".encode()).digest()

    return sorted(sorted(range(len(unit_ids)), key=key)[:limit])


def _fingerprint(h: "hashlib._Hash", tag: str, unit_ids: list[str], annotations: list[list[str]]) -> None:
    h.update(f"\x1e{tag}\x1e".encode())
    for uid, anns in zip(unit_ids, annotations):
        h.update(uid.encode())
        h.update(b"\x1f")
        h.update("\x1d".join(anns).encode())
        h.update(b"\x1e")


class _Batch(Sequence[Exemplars]):
    """A lazy window on the units under test: `Exemplars` decoded on access, nothing else exposed."""

    def __init__(self, units: UnitSet, indices: Sequence[int]) -> None:
        self._units, self._indices = units, list(indices)

    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return self._units[self._indices[i]]

    def __iter__(self):
        for i in self._indices:
            yield self._units[i]


@dataclass(frozen=True)
class TruthUnits:
    """What truth scoring needs of a synthetic split's test units (hidden from describers): each unit's
    config, index and truth, the build (seed, units) of each config, and which units share a truth."""

    configs: tuple[str, ...]
    units: tuple[int, ...]
    truths: tuple[str, ...]
    world: tuple[tuple[str, int, int], ...]  # (config, seed, units)

    @property
    def groups(self) -> list[int]:
        """Per unit, the index of its truth among the split's distinct truths (duplicates tie)."""
        first = {t: g for g, t in enumerate(dict.fromkeys(self.truths))}
        return [first[t] for t in self.truths]

    def context(self, truth_scorer):
        return truth_scorer.context(self.configs, self.units, self.truths,
                                    {c: (seed, n) for c, seed, n in self.world})


def _truth_units(test_ds, root) -> TruthUnits | None:
    """The test units' truths when every one has a synthetic truth (else None: agreement only)."""
    from milannotations.synth.build import world_of

    if "truth" not in test_ds.column_names:
        return None
    truths = [str(t or "") for t in test_ds["truth"]]
    if not all(truths):
        return None
    configs = [str(c) for c in test_ds["config"]]
    built = {c: world_of(c, root) for c in dict.fromkeys(configs)}
    if any(w is None for w in built.values()):
        return None  # synthetic-like rows not made by milannotations.synth: no world to check them in
    world = tuple((c, *w) for c, w in built.items())  # type: ignore[misc]
    return TruthUnits(tuple(configs), tuple(int(u) for u in test_ds["unit"]), tuple(truths), world)


@dataclass
class _SplitData:
    """One split's units: the train view for `fit`, the hidden-column-free test view, the references."""

    split: Split
    train: UnitSet
    test: UnitSet
    test_ids: list[str]
    layers: list[str]
    units: list[int]
    references: list[list[str]]
    revision: str
    truth: TruthUnits | None = None  # synthetic splits: what truth scoring needs
    descriptions: list[list[str]] = field(default_factory=list)  # per trial
    fitted: list[dict] = field(default_factory=list)  # per trial: what the describer's fit decided
    limited: bool = False  # --limit left some of this split's test units out


def run_fingerprint(benchmark: str, protocol: str) -> "hashlib._Hash":
    """The start of a run's data revision: `prepare_split` adds each split's units to it, and its
    hexdigest is results.json's `revision`. The leaderboard recomputes it with this function."""
    return hashlib.sha256(f"{benchmark}\x1e{protocol}".encode())


def prepare_split(split: Split, root, limit: int | None, seed: int, h) -> _SplitData:
    """Load one split's units as the harness uses them, adding its data to the run fingerprint `h`."""
    train_ds = _load_configs(split.train, split.train_split, root)
    test_ds = _load_configs(split.test, split.test_split, root)
    keep = _limit_indices(list(test_ds["unit_id"]), limit, seed)
    limited = len(keep) != len(test_ds)
    if limited:
        test_ds = test_ds.select(keep)
    if len(test_ds) == 0:
        raise MilanError(f"split {split.name}: no test units in {', '.join(split.test)}")
    test_ids = list(test_ds["unit_id"])
    references = [list(a) for a in test_ds["annotations"]]
    for uid, refs in zip(test_ids, references):
        if not refs:
            raise MilanError(f"unit {uid} has no descriptions to score against; "
                             "describe unannotated units with milan-describe")
    train_ids = list(train_ds["unit_id"])
    train_anns = [list(a) for a in train_ds["annotations"]]
    _fingerprint(h, f"{split.name}/train", train_ids, train_anns)
    _fingerprint(h, f"{split.name}/test", test_ids, references)
    test_h = hashlib.sha256()
    _fingerprint(test_h, "test", test_ids, references)
    hidden = [c for c in _HIDDEN if c in test_ds.column_names]
    truth = _truth_units(test_ds, root)
    return _SplitData(
        split=split,
        train=UnitSet(train_ds.remove_columns([c for c in ("truth",) if c in train_ds.column_names]),
                      annotated=True),
        test=UnitSet(test_ds.remove_columns(hidden)),
        test_ids=test_ids, layers=[str(x) for x in test_ds["layer"]], units=[int(x) for x in test_ds["unit"]],
        references=references, revision=test_h.hexdigest(), truth=truth, limited=limited,
    )


# --------------------------------------------------------------------------- describing

def _check_output(name: str, out: Any, batch: list[str]) -> list[str]:
    """The batch's descriptions, or a MilanError naming the describer and the offending unit."""
    if out is None or isinstance(out, (str, bytes)) or not hasattr(out, "__len__"):
        raise MilanError(f"describer {name!r} returned {type(out).__name__} instead of a list of "
                         f"{len(batch)} descriptions (units {batch[0]} .. {batch[-1]})")
    out = list(out)
    if len(out) != len(batch):
        raise MilanError(f"describer {name!r} returned {len(out)} descriptions for {len(batch)} units "
                         f"(units {batch[0]} .. {batch[-1]})")
    for uid, text in zip(batch, out):
        if text is None:
            raise MilanError(f"describer {name!r} returned None for unit {uid}")
        if not isinstance(text, str):
            raise MilanError(f"describer {name!r} returned {type(text).__name__} {text!r:.40} for unit {uid}; "
                             "descriptions must be str")
        if not text.strip():
            raise MilanError(f"describer {name!r} returned an empty description for unit {uid}")
    return out


def _describe(describer: Describer, name: str, units: UnitSet, ids: list[str], indices: list[int],
              batch_size: int, progress: bool, desc: str) -> list[str]:
    """Describe `units[indices]` in batches; a failing batch is retried unit by unit to name the unit."""
    from tqdm.auto import tqdm

    out: list[str] = []
    bar = tqdm(total=len(indices), desc=desc, unit="unit", disable=not progress, leave=False)
    try:
        for start in range(0, len(indices), batch_size):
            chunk = indices[start:start + batch_size]
            batch_ids = [ids[i] for i in chunk]
            try:
                result = describer.describe(_Batch(units, chunk))
            except Exception as e:  # noqa: BLE001 - any failure of user code becomes one clear error
                culprit = _first_failing(describer, units, chunk, ids) if len(chunk) > 1 else batch_ids[0]
                where = f"unit {culprit}" if culprit else f"units {batch_ids[0]} .. {batch_ids[-1]}"
                raise MilanError(f"describer {name!r} raised {type(e).__name__}: {e} while describing "
                                 f"{where}") from e
            out.extend(_check_output(name, result, batch_ids))
            bar.update(len(chunk))
    finally:
        bar.close()
    return out


def _first_failing(describer: Describer, units: UnitSet, chunk: list[int], ids: list[str]) -> str | None:
    for i in chunk:
        try:
            describer.describe(_Batch(units, [i]))
        except Exception:  # noqa: BLE001
            return ids[i]
    return None


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _fit(describer: Describer, name: str, train: UnitSet, split: Split) -> None:
    fit = getattr(describer, "fit", None)
    if fit is None:
        return
    try:
        fit(train)
    except MilanError as e:
        raise MilanError(f"describer {name!r} could not fit on {split.name}: {e}") from e
    except Exception as e:  # noqa: BLE001
        raise MilanError(f"describer {name!r} raised {type(e).__name__}: {e} in fit on {split.name}") from e


def _fit_record(describer: Describer) -> dict:
    """A describer's account of what `fit` decided (e.g. MILAN's early-stopping epoch and the decoding
    settings it chose on validation units), JSON-safe; {} for describers that keep none."""
    record = getattr(describer, "fit_record", None)
    return json.loads(json.dumps(record, default=repr)) if isinstance(record, dict) else {}


# --------------------------------------------------------------------------- distribution

def _dist() -> tuple[Any, int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist, dist.get_rank(), dist.get_world_size()
    return None, 0, 1


def _gather(dist, payload: Any, world: int) -> list[Any]:
    if dist is None:
        return [payload]
    out: list[Any] = [None] * world
    dist.all_gather_object(out, payload)
    return out


# --------------------------------------------------------------------------- scores

def score_dict(scores: Mapping[str, Any]) -> dict[str, dict]:
    """`Scorer` output as the JSON of results.json."""
    out = {}
    for metric, s in scores.items():
        d = s.to_dict() if hasattr(s, "to_dict") else dict(s)
        out[metric] = {"value": float(d["value"]), "ci95": [float(x) for x in d["ci95"]],
                       "signature": str(d["signature"])}
    return out


def mean_over_trials(per_trial: list[dict[str, dict]]) -> dict[str, dict]:
    """Average values and interval bounds over trials; per-trial values are kept when there are several."""
    out = {}
    for metric in per_trial[0]:
        rows = [t[metric] for t in per_trial]
        entry = {"value": float(np.mean([r["value"] for r in rows])),
                 "ci95": [float(np.mean([r["ci95"][0] for r in rows])), float(np.mean([r["ci95"][1] for r in rows]))],
                 "signature": rows[0]["signature"]}
        if len(rows) > 1:
            entry["trial_values"] = [r["value"] for r in rows]
        out[metric] = entry
    return out


def best_floor(floors: Mapping[str, Mapping[str, dict]]) -> dict[str, dict]:
    """Per metric, the higher of the floors (the first floor wins a tie)."""
    out = {}
    for metric in next(iter(floors.values())):
        name = max(FLOOR_DESCRIBERS, key=lambda f: (floors[f][metric]["value"], -FLOOR_DESCRIBERS.index(f)))
        out[metric] = {**{k: floors[name][metric][k] for k in ("value", "ci95", "signature")}, "describer": name}
    return out


def normalized_value(value: float | None, floor: float | None, ceiling: float | None) -> float | None:
    """(value - floor) / (ceiling - floor); None where a number is missing or the ceiling does not clear
    the floor (by more than 1e-12). The leaderboard page normalizes its reference rows with it too."""
    if value is None or floor is None or ceiling is None or ceiling - floor <= 1e-12:
        return None
    return (value - floor) / (ceiling - floor)


def normalized_scores(method: Mapping[str, dict], floor: Mapping[str, dict], ceiling: Mapping[str, dict]
                      ) -> dict[str, dict]:
    """(method - best floor) / (ceiling - best floor); null where the ceiling does not clear the floor."""
    out = {}
    for metric, m in method.items():
        f, c = floor[metric]["value"], ceiling[metric]["value"]
        value = normalized_value(m["value"], f, c)
        if value is None:
            out[metric] = {"value": None, "ci95": [None, None],
                           "signature": f"{m['signature']}|normalized:ceiling<=floor"}
            continue
        out[metric] = {"value": value, "ci95": [normalized_value(x, f, c) for x in m["ci95"]],
                       "signature": f"{m['signature']}|normalized"}
    return out


# --------------------------------------------------------------------------- environment

def _version(dist_name: str) -> str | None:
    try:
        return metadata.version(dist_name)
    except metadata.PackageNotFoundError:
        return None


def _git_hash() -> str | None:
    repo = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def environment(device: str, world: int = 1) -> dict:
    """What produced the numbers: interpreter, library versions, code revision, device."""
    dev = str(device)
    if dev.startswith("cuda") and torch.cuda.is_available():
        dev = f"{dev} ({torch.cuda.get_device_name(torch.device(dev))})"
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "transformers": _version("transformers"),
        "bert_score": _version("bert-score"),
        "sacrebleu": _version("sacrebleu"),
        "datasets": _version("datasets"),
        "milannotations": _version("milannotations"),
        "git": _git_hash(),
        "device": dev,
        "world_size": world,
        # What float results depend on beyond the code: the CPU's vector ISA (kernels differ by it),
        # the thread counts and the math libraries' versions.
        "cpu": _cpu_name(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "mkl": _torch_lib("mkl") if torch.backends.mkl.is_available() else "",
        "onednn": _torch_lib("onednn"),
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _torch_lib(name: str) -> str:
    """The version line torch reports for one of its math libraries ("" if absent)."""
    info = torch.__config__.show()
    key = {"mkl": "Math Kernel Library Version", "onednn": "MKL-DNN v"}[name]
    line = next((x for x in info.splitlines() if key in x), "")
    return line.strip().lstrip("- ")


# --------------------------------------------------------------------------- evaluate

def _accepts(factory: Any, name: str) -> bool:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    return name in params


def _describer_factory(describer: Any, describer_args: Mapping[str, Any] | None, device: str | None = None,
                       progress: bool = True, seed: int = 0
                       ) -> tuple[Callable[[int], Describer], Describer, dict]:
    """A maker of fresh describers (names are rebuilt per split and trial), the first one, and its args.

    `make(trial_seed)` hands the trial's seed (`--seed` + trial) to describers that take a `seed`
    and were not given one explicitly; they seed their own generators, so without it every trial
    would repeat the first. Neither that seed nor `progress=False` (which silences describers that
    draw their own bars) is recorded among the args: the results carry `seed` and `trials`, and
    progress cannot change a description.
    """
    args = dict(describer_args or {})
    quiet: dict[str, Any] = {}
    if isinstance(describer, str):
        factory = resolve_describer(describer)
        if device is not None and "device" not in args and _accepts(factory, "device"):
            args["device"] = str(device)  # --device reaches describers that run models, unless set explicitly
        if not progress and "progress" not in args and _accepts(factory, "progress"):
            quiet["progress"] = False
        seeded = "seed" not in args and _accepts(factory, "seed")

        def make(trial_seed: int) -> Describer:
            return create_describer(describer, **args, **quiet, **({"seed": trial_seed} if seeded else {}))
    else:
        if args:
            raise MilanError("describer_args are only used with a describer name; build the instance with them")
        for attr in ("meta", "describe"):
            if not hasattr(describer, attr):
                raise MilanError(f"{describer!r} has no {attr!r}; see milannotations.Describer")

        def make(trial_seed: int) -> Describer:
            return describer
    return make, make(seed), args


def evaluate(describer: str | Describer, *, benchmark: str = "synth", protocol: str = "within-network",
             configs: Sequence[str] | None = None, root: str | Path | None = None, scorer: str = "offline",
             limit: int | None = None, trials: int = 1, seed: int = 0, device: str = "cpu",
             output: str | Path | None = None, describer_args: Mapping[str, Any] | None = None,
             batch_size: int = 32, progress: bool = True) -> dict:
    """Score a describer on a protocol's splits against humans, with floors and the ceiling beside it.

    `describer` is a registry name (built-in, entry point, `module:attr`,
    `file.py:attr`, built with `describer_args`, plus `device` when its
    constructor takes one and `describer_args` does not set it) or a ready instance. A
    describer named by string is built fresh for every split and trial, so
    nothing learned on one split leaks into another; an instance is re-fit.
    Returns the results dict and, with `output`, writes `results.json` and
    `descriptions.csv` there (both or neither).
    """
    t_start = time.perf_counter()
    if trials < 1:
        raise MilanError(f"--trials must be at least 1, got {trials}")
    if limit is not None and limit < 1:
        raise MilanError(f"--limit must be at least 1, got {limit}")
    if batch_size < 1:
        raise MilanError(f"batch size must be at least 1, got {batch_size}")
    splits = protocol_splits(benchmark, protocol, configs)
    dist, rank, world = _dist()
    show = progress and rank == 0
    make, first, describer_args = _describer_factory(describer, describer_args, device, show, seed)
    meta = first.meta
    name = getattr(meta, "name", None) or str(describer)
    trained_on = expand_configs(tuple(getattr(meta, "trained_on", ())))
    timing = {"load_s": 0.0, "fit_s": 0.0, "describe_s": 0.0, "score_s": 0.0}

    # Rank 0 builds the scorer (loading its BERTScore model) before anything is fitted, so a missing
    # model fails the run at once rather than after every describer has run.
    scorer_obj = None
    error: str | None = None
    if rank == 0:
        from .metrics import Scorer

        try:
            scorer_obj = Scorer(scorer=scorer, device=device, seed=seed, progress=show)
        except MilanError as e:
            error = str(e)
    if dist is not None:
        error = next((e for e in _gather(dist, error, world) if e), None)
    if error is not None:
        raise MilanError(error)

    # Phase 1, every rank: fit, describe this rank's shard, gather. Errors travel with the gather,
    # so one failing rank cannot leave the others waiting.
    revision_h = run_fingerprint(benchmark, protocol)
    data: list[_SplitData] = []
    pending = first
    for split in splits:
        t = time.perf_counter()
        try:
            sd = prepare_split(split, root, limit, seed, revision_h)  # builds the synthetic corpus on first use
        except MilanError as e:
            error = str(e)
        timing["load_s"] += time.perf_counter() - t
        if error is None:
            for trial in range(trials):
                shard = list(range(rank, len(sd.test_ids), world))
                try:
                    _seed_everything(seed + trial)
                    d, pending = (pending if pending is not None else make(seed + trial)), None
                    t = time.perf_counter()
                    _fit(d, name, sd.train, split)
                    timing["fit_s"] += time.perf_counter() - t
                    sd.fitted.append(_fit_record(d))
                    t = time.perf_counter()
                    texts = _describe(d, name, sd.test, sd.test_ids, shard, batch_size, show,
                                      f"{split.name} trial {trial}" if trials > 1 else split.name)
                    timing["describe_s"] += time.perf_counter() - t
                    payload: tuple = ("ok", shard, texts)
                except MilanError as e:
                    payload = ("error", str(e))
                gathered = _gather(dist, payload, world)
                errs = [p[1] for p in gathered if p[0] == "error"]
                if errs:
                    error = errs[0]
                    break
                merged: list[str | None] = [None] * len(sd.test_ids)
                for _, idx, texts in gathered:
                    for i, text in zip(idx, texts):
                        merged[i] = text
                sd.descriptions.append(merged)  # type: ignore[arg-type]
            data.append(sd)
        if dist is not None:  # every rank stops at the same split when any of them failed
            flags = _gather(dist, error, world)
            error = next((e for e in flags if e), None)
        if error is not None:
            break
    if error is not None:
        raise MilanError(error)

    # Phase 2, rank 0: floors, scores, ceiling, files. The outcome is broadcast to every rank.
    outcome: tuple = ("ok", None)
    if rank == 0:
        try:
            truth_scorer = TruthScorer(seed=seed, progress=show) if any(sd.truth for sd in data) else None
            results = _score_and_write(
                data, scorer_obj, truth_scorer, name=name, meta=meta, trained_on=trained_on, benchmark=benchmark,
                protocol=protocol, scorer=scorer, limit=limit, trials=trials, seed=seed, device=device,
                output=output, describer_args=describer_args, batch_size=batch_size,
                revision=revision_h.hexdigest(), timing=timing, t_start=t_start, world=world)
            outcome = ("ok", results)
        except MilanError as e:
            outcome = ("error", str(e))
    if dist is not None:
        box = [outcome]
        dist.broadcast_object_list(box, src=0)
        outcome = box[0]
    if outcome[0] == "error":
        raise MilanError(outcome[1])
    return outcome[1]


def _scores(scorer, truth_scorer, sd: _SplitData, texts: Sequence[str]) -> dict[str, dict]:
    """Every metric of one description per test unit: agreement, and truth on synthetic splits."""
    groups = sd.truth.groups if sd.truth is not None else None
    out = score_dict(scorer.score(list(texts), sd.references, revision=sd.revision, groups=groups))
    if sd.truth is not None and truth_scorer is not None:
        out.update(score_dict(truth_scorer.score(sd.truth.context(truth_scorer), list(texts))))
    return out


def reference_scores(sd: _SplitData, scorer, seed: int, truth_scorer=None) -> dict:
    """The rows every describer of a split is read against: both floors (fit on the split's training
    units), the best floor per metric, and the ceiling: the annotators' leave-one-out agreement, and on
    synthetic splits the truth formula for truth metrics, with the annotators' own descriptions
    scored by truth beside it (`humans`). The leaderboard recomputes them with this same function."""
    floors = {}
    for fname in FLOOR_DESCRIBERS:
        floor = create_describer(fname, seed=seed) if fname == "random-unit" else create_describer(fname)
        floor.fit(sd.train)
        texts = _describe(floor, fname, sd.test, sd.test_ids, list(range(len(sd.test_ids))), 4096, False, fname)
        floors[fname] = _scores(scorer, truth_scorer, sd, texts)
    groups = sd.truth.groups if sd.truth is not None else None
    ceiling = score_dict(scorer.ceiling(sd.references, revision=sd.revision, groups=groups))
    out = {"floors": floors, "floor": best_floor(floors), "ceiling": ceiling}
    if sd.truth is not None and truth_scorer is not None:
        ctx = sd.truth.context(truth_scorer)
        ceiling.update(score_dict(truth_scorer.ceiling(ctx)))
        out["humans"] = score_dict(truth_scorer.humans(ctx, sd.references))
    return out


def method_scores(scorer, sd: _SplitData, descriptions: Sequence[Sequence[str]], truth_scorer=None
                  ) -> dict[str, dict]:
    """A describer's scores on one split: every trial's descriptions scored, then averaged over trials.
    The leaderboard recomputes submitted numbers with this same function."""
    return mean_over_trials([_scores(scorer, truth_scorer, sd, texts) for texts in descriptions])


def parse_report(sd: _SplitData, descriptions: Sequence[Sequence[str]]) -> dict | None:
    """How many of a synthetic split's descriptions (all trials) the truth parser understood."""
    if sd.truth is None:
        return None
    from eval.metrics.truth import parse_report as report

    return report(descriptions)


def _score_and_write(data: list[_SplitData], scorer_obj, truth_scorer, *, name: str, meta, trained_on: set[str],
                     benchmark: str, protocol: str, scorer: str, limit, trials: int, seed: int, device: str,
                     output, describer_args, batch_size: int, revision: str, timing: dict, t_start: float,
                     world: int) -> dict:
    """Rank 0's phase 2: floors, the describer's scores and the ceiling with `scorer_obj` (the `Scorer`
    built before phase 1) and, on synthetic splits, `truth_scorer`; then the files."""
    split_docs, rows = [], []
    for sd in data:
        t = time.perf_counter()
        reference = reference_scores(sd, scorer_obj, seed, truth_scorer)
        floors, floor, ceiling = reference["floors"], reference["floor"], reference["ceiling"]
        method = method_scores(scorer_obj, sd, sd.descriptions, truth_scorer)
        parsed = parse_report(sd, sd.descriptions)
        timing["score_s"] += time.perf_counter() - t
        split_docs.append({
            **sd.split.to_dict(),
            "n_units": len(sd.test_ids),
            "held_out": not (trained_on & set(sd.split.test)),
            "revision": sd.revision,
            "metrics": method, "floors": floors, "floor": floor, "ceiling": ceiling,
            "normalized": normalized_scores(method, floor, ceiling),
            **({"humans": reference["humans"]} if "humans" in reference else {}),
            **({"parse": parsed} if parsed is not None else {}),
            **({"fitted": sd.fitted} if any(sd.fitted) else {}),
        })
        for trial, texts in enumerate(sd.descriptions):
            rows.extend({"unit_id": uid, "layer": layer, "unit": unit, "description": text,
                         "split": sd.split.name, "trial": trial}
                        for uid, layer, unit, text in zip(sd.test_ids, sd.layers, sd.units, texts))
    meta_dict = meta.to_dict() if hasattr(meta, "to_dict") else {"name": name}
    describer_doc = {"name": name, "version": str(meta_dict.get("version", "0")),
                     "trained_on": [str(x) for x in meta_dict.get("trained_on", ())],
                     "args": json.loads(json.dumps(dict(describer_args or {}), default=repr)),
                     "citation": str(meta_dict.get("citation", "")),
                     "reference": str(meta_dict.get("reference", "")),
                     "reproducible": bool(meta_dict.get("reproducible", True)),
                     "oracle": bool(meta_dict.get("oracle", False))}
    timing["total_s"] = time.perf_counter() - t_start
    results = {
        "benchmark": benchmark, "revision": revision, "protocol": protocol, "scorer": scorer,
        # a limit that cut no split (>= every split's size) is a complete run: recorded as none
        "seed": seed, "trials": trials, "limit": limit if any(sd.limited for sd in data) else None,
        "batch_size": batch_size,
        "describer": describer_doc, "splits": split_docs,
        "environment": environment(device, world),
        "timing": {k: round(v, 3) for k, v in timing.items()},
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if output is not None:
        write_run(output, results, rows)
    return results
