"""`milan-eval` (score a describer) and `milan-describe` (describe units without scoring).

Thin wrappers: the work is `eval.evaluate` and `describe_units`, which a
notebook can call too. Errors a user can act on print as one line, exit 2.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from baselines.registry import Runtime, build_describer, parse_describer_args
from milannotations.cli import OneLineParser, add_common_flags, run
from milannotations.commands import quiet_libraries
from milannotations.dist import check_device, init_distributed
from milannotations.errors import MilanError
from milannotations.fsutil import check_output_dir, check_output_file

from .harness import evaluate
from .protocols import BENCHMARKS, protocols
from .results import write_descriptions

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .records import ResultsRecord, Scores


# --------------------------------------------------------------------------- milan-eval

def _add_describer_args(p: argparse.ArgumentParser) -> None:
    """--describer and --describer-args, the same for milan-eval and milan-describe."""
    p.add_argument("--describer", required=True,
                   help="built-in name, entry point, package.module:attr or path/to/file.py:attr")
    p.add_argument("--describer-args", default="", metavar="K=V,...",
                   help="constructor arguments, e.g. text=dog,seed=3 (ints, floats, true/false recognised)")


def build_eval_parser() -> argparse.ArgumentParser:
    all_protocols = sorted({p for b in BENCHMARKS for p in protocols(b)})
    p = OneLineParser(
        prog="milan-eval",
        description="Score a neuron describer against human (or synthetic ground-truth) descriptions, "
                    "with floors and the human ceiling beside every number.")
    _add_describer_args(p)
    p.add_argument("--benchmark", default="synth", metavar="{synth,milannotations,PATH}",
                   help="synth: the embedded synthetic ground-truth corpus (default); "
                        "milannotations: the human corpus (must be built); PATH: an exemplar folder written "
                        "with `milannotations exemplars --record-activations`, scored by faithfulness only")
    p.add_argument("--labeller", default=None,
                   help="oracle, clip, segmenter or module:attr: adds faithfulness through this labeller "
                        "(required with --benchmark PATH; docs/faithfulness.md)")
    p.add_argument("--labeller-args", default="", metavar="K=V,...",
                   help="labeller constructor arguments, e.g. model=synth or segmenter=ade20k")
    p.add_argument("--root", default=None, help="built corpus folder (default: the cache)")
    p.add_argument("--protocol", default="within-network", choices=all_protocols)
    p.add_argument("--configs", nargs="+", default=None, metavar="NAME",
                   help="run only these splits (split names, configs or groupings of the test side)")
    p.add_argument("--scorer", default="offline", choices=("offline", "paper"),
                   help="offline: packaged all-MiniLM-L6-v2 BERTScore; paper: roberta-large L17, idf, rescaled")
    p.add_argument("--trials", type=int, default=1, help="fit and describe N times with seeds seed..seed+N-1")
    p.add_argument("--batch-size", type=int, default=32, help="units per describe() call")
    add_common_flags(p, output="write results.json and descriptions.csv here", output_aliases=(), progress=False,
                     device="", seed="", limit="at most N test units per split (seeded choice)")
    p.add_argument("--submit", action="store_true",
                   help="then hand the run to `milan-leaderboard submit` (validate it with milan-leaderboard)")
    p.add_argument("--submissions", default=None, metavar="DIR",
                   help="with --submit: submissions folder (default: leaderboard/submissions under the current "
                        "folder, which must exist)")
    p.add_argument("--overwrite", action="store_true", help="with --submit: replace an existing submission")
    add_common_flags(p)  # --no-progress
    p.set_defaults(func=_eval_command)
    return p


def _fmt(scores: "Scores | None", metric: str, ci: bool = False) -> str:
    """A value (with its 95% interval when `ci`), or '-' where there is none."""
    v = scores.value(metric) if scores is not None else None
    if v is None:
        return "-"
    digits = 2 if abs(v) >= 10 else 3
    text = f"{v:.{digits}f}"
    lo, hi = scores.ci95(metric) or (None, None)
    if ci and lo is not None and hi is not None:
        text += f" [{lo:.{digits}f}, {hi:.{digits}f}]"
    return text


def _label(name: str) -> str:
    """A metric's row name in the CLI table, with its range when that is not 0-1 ("bleu (0-100)")."""
    from .metrics.spec import metric

    try:
        scale = metric(name).scale
    except KeyError:
        return name
    return name if scale == 1 else f"{name} (0-{scale:g})"


def print_results(results: "ResultsRecord | dict", file=None) -> None:
    """One rich table per split: per metric, the describer beside both floors, the annotator ceiling
    and the normalized score."""
    from rich.console import Console
    from rich.table import Table

    from .records import ResultsRecord

    record = results if isinstance(results, ResultsRecord) else ResultsRecord.from_dict(results)
    console = Console(file=file or sys.stdout)
    if not console.is_terminal:
        console.width = max(console.width, 120)  # logs and pipes: keep one row per metric
    name = record.describer.name
    for split in record.splits:
        flag = "" if split.held_out else "\n[bold red]NOT held out: the describer was trained on these configs[/]"
        table = Table(title=f"{split.name}: {split.n_units} units ({record.benchmark}, "
                            f"{record.protocol}, scorer {record.scorer}){flag}")
        table.add_column("metric", style="bold", no_wrap=True)
        table.add_column(f"{name} [95% CI]", justify="right", style="cyan")
        for floor, _ in split.floors.items():
            table.add_column(f"floor: {floor}", justify="right", style="dim")
        table.add_column("ceiling", justify="right", style="green")
        humans = split.humans
        if humans:
            table.add_column("annotators", justify="right", style="green")
        table.add_column("normalized", justify="right", style="bold")
        for m in split.metrics:
            table.add_row(_label(m), _fmt(split.metrics, m, ci=True),
                          *(_fmt(scores, m) for _, scores in split.floors.items()),
                          _fmt(split.ceiling, m), *([_fmt(humans, m) if m in humans else ""] if humans else []),
                          _fmt(split.normalized, m))
        console.print(table)
        parse = split.parse
        if parse:
            console.print(f"truth parser {parse.parser}: {parse.parsed} of {parse.descriptions} "
                          "descriptions parsed; the others score 0"
                          + (f" (e.g. {parse.unparsed_examples[0]!r})" if parse.unparsed_examples else ""))
    lab = record.labeller
    if lab:
        console.print(f"labeller {lab.name} ({lab.model})"
                      + (f"; [bold red]the describer relies on the same model ({', '.join(lab.same_model)}): "
                         "its faithfulness is flattered, read it as an upper bound[/]" if lab.same_model else ""))
    truth = any(split.humans for split in record.splits)
    console.print("normalized = (describer - best floor) / (ceiling - best floor); ceiling = each annotator "
                  "against the others" + ("; for truth_* metrics the truth formula, and 'annotators' the "
                                          "annotators' descriptions scored by truth (docs/truth.md)" if truth else "")
                  + f".  revision {record.revision[:12]}, {record.timing.total_s:.1f}s")


def _submissions(args: argparse.Namespace) -> Path | None:
    """--submit's submissions folder, checked before the run (as `milan-leaderboard submit` resolves it)."""
    if not args.submit:
        if args.submissions is not None or args.overwrite:
            raise MilanError("--submissions and --overwrite only go with --submit")
        return None
    if importlib.util.find_spec("leaderboard") is None:
        raise MilanError("--submit needs the leaderboard package (`milan-leaderboard submit`), which is not installed")
    subs = Path(args.submissions) if args.submissions is not None else Path.cwd() / "leaderboard" / "submissions"
    if args.submissions is None and not subs.is_dir():
        raise MilanError(f"--submit: no leaderboard/submissions under {Path.cwd()}; run from your leaderboard "
                         "checkout or pass --submissions DIR")
    return check_output_dir(subs, "--submissions").resolve()


def _submit(output: Path, submissions: Path, overwrite: bool) -> str:
    """Hand a finished run to `milan-leaderboard submit`, in its own process: eval/ never imports the
    leaderboard (the room to its right). Returns what it printed; a refusal is a MilanError."""
    script = Path(sys.executable).with_name("milan-leaderboard")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "leaderboard.cli"]
    cmd += ["submit", str(output), "--submissions", str(submissions), *(["--overwrite"] if overwrite else [])]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines() or [f"exit {done.returncode}"]
        raise MilanError(lines[-1].removeprefix("milan-leaderboard: error: "))
    return done.stdout.strip()


def _describer_args(text: str) -> dict[str, Any]:
    """`--describer-args`, refusing a key given twice (which value was meant is not ours to guess)."""
    keys = [part.split("=", 1)[0].strip() for part in (text or "").split(",") if "=" in part]
    dup = next((k for i, k in enumerate(keys) if k in keys[:i]), None)
    if dup is not None:
        raise MilanError(f"--describer-args: key {dup!r} is given more than once")
    return parse_describer_args(text)


def _check_root(root: str | None) -> None:
    """A local --root that does not exist, refused before the scorer or any describer is loaded."""
    hub_id = "/" in root and not root.startswith((".", "/")) if root else False  # as milannotations.load reads it
    if root is not None and not hub_id and not Path(root).exists():
        raise MilanError(f"--root {root}: no such folder; build it with `milannotations build` or "
                         "`milannotations synth`")


def _eval_command(args: argparse.Namespace) -> int:
    # Everything a user can get wrong is checked here, before the (possibly hours-long) run starts.
    describer_args = _describer_args(args.describer_args)
    check_device(args.device)
    if args.output is not None:
        check_output_dir(args.output)
    _check_root(args.root)
    submissions = _submissions(args)
    labeller_args = parse_describer_args(args.labeller_args)
    folder = None
    if args.benchmark not in BENCHMARKS:
        folder = Path(args.benchmark)
        if not folder.is_dir():
            raise MilanError(f"--benchmark {args.benchmark}: not synth, milannotations or an existing folder")
        if args.labeller is None:
            raise MilanError(f"--benchmark {folder}: a folder is scored by faithfulness only; give --labeller "
                             "clip (--labeller-args model=ARCH,pretrained=TAG; model=synth offline), segmenter "
                             "or oracle")
        if args.submit or args.trials != 1 or args.protocol != "within-network":
            raise MilanError("--benchmark PATH takes no --submit, --trials or --protocol")
    if args.no_progress:
        quiet_libraries()
    if folder is not None:
        from .folder import evaluate_folder

        results = evaluate_folder(args.describer, folder, labeller=args.labeller, labeller_args=labeller_args,
                                  configs=args.configs, limit=args.limit, seed=args.seed, device=args.device,
                                  output=args.output, describer_args=describer_args, batch_size=args.batch_size,
                                  progress=not args.no_progress)
        print_results(results)
        if args.output:
            print(f"wrote {Path(args.output) / 'results.json'} and descriptions.csv")
        return 0
    # Under `torchrun`, join the process group first: evaluate() shards the test units by rank and
    # rank 0 alone scores and writes; every rank gets the same results back.
    distributed = init_distributed(args.device)
    output = args.output
    tmp = None
    try:
        rank = 0
        if distributed:
            import torch.distributed as dist

            rank = dist.get_rank()
        if args.submit and output is None and rank == 0:
            tmp = Path(tempfile.mkdtemp(prefix="milan-eval-"))
            output = tmp / "run"
        results = evaluate(args.describer, benchmark=args.benchmark, protocol=args.protocol,
                           configs=args.configs, root=args.root, scorer=args.scorer, limit=args.limit,
                           trials=args.trials, seed=args.seed, device=args.device, output=output,
                           describer_args=describer_args, batch_size=args.batch_size,
                           progress=not args.no_progress, labeller=args.labeller, labeller_args=labeller_args)
        if rank != 0:  # rank 0 prints, writes and submits
            return 0
        print_results(results)
        if args.output:
            print(f"wrote {Path(args.output) / 'results.json'} and descriptions.csv")
        if args.submit:
            try:
                print(_submit(Path(output), submissions, args.overwrite))
            except MilanError as e:
                tmp = None  # a refused submission loses no run: it stays where it was written
                raise MilanError(f"{e}; the run is kept in {output} (submit it with `milan-leaderboard "
                                 f"submit {output}`)") from None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if distributed:
            dist.destroy_process_group()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Console script `milan-eval`."""
    return run(list(argv) if argv is not None else None, build_eval_parser())


# --------------------------------------------------------------------------- milan-describe

def _load_split(name: str, split: str, root):
    """One HF split of a config, or None when the config has no units in it (e.g. all-train exemplars)."""
    from milannotations import load

    try:
        ds = load(name, split=split, root=root)
    except ValueError as e:  # datasets refuses a split whose shards hold no rows
        if "corresponds to no data" in str(e):
            return None
        raise
    return ds.add_column("_split", [split] * len(ds)) if len(ds) else None


def _looks_like_path(units: str) -> bool:
    """A --units value that names no config but a place on disk (so 'missing folder', not 'unknown config')."""
    from milannotations.load import resolve_configs

    try:
        resolve_configs(units)
        return False
    except MilanError:
        return os.sep in units or units.startswith(".") or Path(units).exists()


def _ready_or_refuse(d, name: str) -> None:
    """Refuse a describer that still needs `fit`, before any unit is loaded.

    A describer that must learn first refuses to describe even no units (MilanError), and its own
    message says what would make it ready (constant: `text=...`; milan: `checkpoint=PATH`), so that
    is what the refusal repeats; `is_fitted`, where a describer has it, is believed as well.
    """
    if not callable(getattr(d, "fit", None)):
        return
    try:
        d.describe([])
        why = None
    except MilanError as e:
        why = str(e)
    if why is None and getattr(d, "is_fitted", True) is not False:
        return
    raise MilanError(f"describer {name!r} must be trained before it can describe units"
                     f"{f' ({why})' if why else ''}; use milan-eval, which fits it on training units")


def _load_units(units: str, root: str | None):
    """A config/grouping name (via `milannotations.load`) or a built folder (every config in it)."""
    from milannotations import concatenate

    folder = Path(units)
    if not folder.is_dir() and _looks_like_path(units):
        what = "is a file, not a folder" if folder.exists() else "no such folder"
        raise MilanError(f"--units {units}: {what} (expected a folder written by `milannotations exemplars`, "
                         "or a config name)")
    if folder.is_dir():
        data = folder / "data"
        configs = sorted(p.name for p in data.iterdir() if p.is_dir()) if data.is_dir() else []
        if not configs:
            raise MilanError(f"{folder} holds no built configs (expected {folder}/data/<config>/*.parquet, "
                             "as written by `milannotations exemplars`)")
        named = [(c, folder) for c in configs]
    else:
        if root is None:  # load() only reads: a synthetic name is built into the cache first, once
            from milannotations import prepare

            prepare(units)
        named = [(units, root)]
    parts = [ds for name, where in named for s in ("train", "test")
             if (ds := _load_split(name, s, where)) is not None]
    if not parts:
        raise MilanError(f"{units}: no units to describe")
    return concatenate(parts)


def describe_units(describer: str | Any, units: str, *, root: str | None = None, output: str | Path | None = None,
                   describer_args: dict | None = None, limit: int | None = None, batch_size: int = 32,
                   progress: bool = True, device: str | None = None, seed: int = 0) -> list[dict]:
    """Describe every unit of a config, grouping or exemplar folder; returns (and writes) descriptions.csv rows.

    No annotations are read or needed. The describer is built as `evaluate` builds it
    (`baselines.registry.build_describer`): `device`, `seed` and `progress=False` reach a constructor
    that names them and `describer_args` does not set; `seed` also picks the `limit` units. A
    describer that must learn first has to arrive fitted (e.g. `--describer-args checkpoint=...`);
    one that is not (`_ready_or_refuse`) is refused, as are a bad `limit` and an unwritable
    `output`, before any unit is loaded.
    """
    from milannotations import UnitSet

    from .describing import describe_batches
    from .splits import limit_indices

    if limit is not None and limit < 1:
        raise MilanError(f"--limit must be at least 1, got {limit}")
    if output is not None:
        check_output_file(output)
    d = build_describer(describer, describer_args, Runtime(device=device, seed=seed, progress=progress))
    name = getattr(getattr(d, "meta", None), "name", None) or str(describer)
    _ready_or_refuse(d, name)
    ds = _load_units(units, root)
    keep = limit_indices(list(ds["unit_id"]), limit, seed)
    if len(keep) != len(ds):
        ds = ds.select(keep)
    ids, layers, unit_idx, splits = (list(ds[c]) for c in ("unit_id", "layer", "unit", "_split"))
    view = UnitSet(ds.remove_columns([c for c in ("annotations", "truth", "_split") if c in ds.column_names]))
    texts = describe_batches(d, name, view, ids, list(range(len(ids))), batch_size, progress, "describe")
    rows = [{"unit_id": u, "layer": str(la), "unit": int(n), "description": t, "split": s, "trial": 0}
            for u, la, n, t, s in zip(ids, layers, unit_idx, texts, splits)]
    if output is not None:
        write_descriptions(output, rows)
    return rows


def build_describe_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="milan-describe",
        description="Describe units that have no annotations (e.g. your own network's exemplars from "
                    "`milannotations exemplars`) and write descriptions.csv.")
    _add_describer_args(p)
    p.add_argument("--units", required=True, metavar="CONFIG_OR_FOLDER",
                   help="a config or grouping name, or a folder written by `milannotations exemplars`")
    p.add_argument("--root", default=None, help="built corpus folder for config names (default: the cache)")
    p.add_argument("--batch-size", type=int, default=32)
    add_common_flags(p, output="descriptions.csv to write (default: descriptions.csv)",
                     output_default="descriptions.csv", output_metavar="FILE", output_aliases=(),
                     device="for describers that run models", seed="for describers that take one, and the --limit choice",
                     limit="at most N units (seeded choice)")
    p.set_defaults(func=_describe_command)
    return p


def _describe_command(args: argparse.Namespace) -> int:
    describer_args = _describer_args(args.describer_args)
    check_device(args.device)
    if args.no_progress:
        quiet_libraries()
    rows = describe_units(args.describer, args.units, root=args.root, output=args.output,
                          describer_args=describer_args, limit=args.limit, batch_size=args.batch_size,
                          progress=not args.no_progress, device=args.device, seed=args.seed)
    print(f"wrote {len(rows)} descriptions to {args.output}")
    return 0


def describe_main(argv: Sequence[str] | None = None) -> int:
    """Console script `milan-describe`."""
    return run(list(argv) if argv is not None else None, build_describe_parser())


if __name__ == "__main__":
    sys.exit(main())
