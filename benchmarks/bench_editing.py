"""The paper's editing experiment (and, with --audit, its audit) on the synthetic world, offline on CPU.

    python benchmarks/bench_editing.py                    # editing, 5 seeds
    python benchmarks/bench_editing.py --audit            # + the audit (stripes kept vs removed), 5 seeds
    python benchmarks/bench_editing.py --seeds 1 --quick  # test-sized smoke run

The describer is MILAN (`baselines.milan`, paper settings: rerank, beam and λ
chosen on its validation units) trained once on the train split of a config of
the synthetic corpus (`--milan-train`, default synth-deep-plain, patience 10 as
in the paper's within-network runs; `milannotations.prepare` then `load`); its
training is cached (the same training milan-eval's within-network split does),
so only the first run pays for it. Every classifier,
exemplar set and description is made fresh per seed. Prints a table per
experiment, wall and CPU time, and writes results.json and curve.png under
--output (default benchmarks/out/editing).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo's packages, not a namespace


def cached_milan(trained_on: tuple[str, ...], seed: int, patience: int) -> Path | None:
    """A MILAN checkpoint in the training cache (`features/milan/trained/`, written by milan-eval and
    milan-describe) trained on exactly `trained_on` with this seed and patience, if one exists."""
    from milannotations.paths import default_root

    root = default_root() / "features" / "milan" / "trained"
    for d in sorted(root.glob("*/config.json")) if root.is_dir() else ():
        try:
            c = json.loads(d.read_text())
        except (OSError, ValueError):
            continue
        t = c.get("info", {}).get("train", {})
        if tuple(c.get("trained_on", ())) == trained_on and t.get("seed") == seed and t.get("patience") == patience:
            return d.parent
    return None


def milan_describer(train_on: str, patience: int, progress: bool = False):
    """MILAN trained on the train split of `train_on` (a synthetic config or grouping); a cached training
    of exactly those configs (seed 0, this patience) is read instead of training again."""
    import milannotations as mn
    from baselines.milan.describer import MilanDescriber
    from milannotations.load import resolve_configs

    configs = tuple(resolve_configs(train_on))
    found = cached_milan(configs, 0, patience)
    if found is not None:
        d = MilanDescriber(progress=progress, seed=0, patience=patience, checkpoint=str(found))
        return d, f"checkpoint {found.name} (trained on {', '.join(configs)}; paper decoding: beam {d.beam}, lambda {d.lam})"
    mn.prepare([train_on])
    train = mn.UnitSet(mn.load(train_on, split="train"), annotated=True)
    d = MilanDescriber(progress=progress, seed=0, patience=patience)
    d.fit(train)
    return d, f"trained now on {len(train)} units of {train_on} (beam {d.beam}, lambda {d.lam})"


def cpu_now() -> float:
    """CPU seconds of this process and of its finished children (the --workers processes)."""
    import resource

    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + c.ru_utime + c.ru_stime


def pct(v: float) -> str:
    return f"{100 * v:5.1f}"


def ci(t: tuple[float, float, float], scale: float = 100, fmt: str = "{:.1f}") -> str:
    m, lo, hi = t
    return f"{fmt.format(scale * m)} [{fmt.format(scale * lo)}, {fmt.format(scale * hi)}]"


def editing_table(results, summary) -> str:
    lines = ["| seed | cue units / all | k* | unedited | cue units ablated | random k* | all units by cost, k* "
             "| all units by cost, own k | no-cue model |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        row = r.summary_row()
        ref = pct(row["test_no_cue_model"]) if row["test_no_cue_model"] is not None else "-"
        lines.append(f"| {r.seed} | {row['cue_units']} / {row['units']} | {row['k_star']} | {pct(row['test_unedited'])} | "
                     f"{pct(row['test_edited'])} [{pct(r.edited['low'])}, {pct(r.edited['high'])}] | "
                     f"{pct(row['test_random'])} | {pct(row['test_cost_same_k'])} | "
                     f"{pct(row['test_cost_tuned'])} (k={row['k_cost']}) | {ref} |")
    s = summary
    lines.append(f"| mean [95% t] | {ci(s['cue_units'], 1)} / {s['units'][0]:.0f} | {ci(s['k_star'], 1)} | "
                 f"{ci(s['test_unedited'])} | {ci(s['test_edited'])} | {ci(s['test_random'])} | "
                 f"{ci(s['test_cost_same_k'])} | {ci(s['test_cost_tuned'])} | "
                 + (ci(s['test_no_cue_model']) if 'test_no_cue_model' in s else "-") + " |")
    lines.append("")
    lines.append(f"edited - unedited: {ci(s['edited_minus_unedited'])} points; edited - random: "
                 f"{ci(s['edited_minus_random'])}; edited - cost-ranked (same k): {ci(s['edited_minus_cost_same_k'])}")
    return "\n".join(lines)


def audit_table(results, summary) -> str:
    lines = ["| seed | units | naming stripes, trained with stripes [95% Wilson] | trained without stripes |",
             "|---|---|---|---|"]
    for r in results:
        row = r.row()
        lines.append(f"| {r.seed} | {r.units} | {row['with']} [{row['with_low']:.0f}, {row['with_high']:.0f}] | "
                     f"{row['without']} [{row['without_low']:.0f}, {row['without_high']:.0f}] |")
    s = summary
    lines.append(f"| mean [95% t] | {results[0].units} | {ci(s['with'], 1)} | {ci(s['without'], 1)} |")
    lines.append("")
    lines.append(f"with - without: {ci(s['difference'], 1)} units")
    return "\n".join(lines)


def plot_curves(results, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(6, 4))
    names = [k for k in results[0].curves if k != "counts"]
    for r in results:  # counts differ between seeds (each has its own cue units): one faint line per seed
        for i, name in enumerate(names):
            ax.plot(r.curves["counts"], np.array(r.curves[name]) * 100, color=f"C{i}", alpha=0.6, marker="o", ms=2,
                    label=name if r is results[0] else None)
    ax.set_xlabel("units ablated")
    ax.set_ylabel("adversarial test accuracy (%)")
    ax.set_title(f"editing on the synthetic world ({len(results)} seeds, one line each)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


_TASK: tuple = ()


def _one_seed(seed: int):
    """Editing and/or audit of one seed (in one process, so the audit reuses the editing's no-cue model)."""
    import torch

    from applications import audit, editing

    torch.set_num_threads(1)
    describer, args = _TASK
    log = lambda m: print(m, flush=True)  # noqa: E731
    e = a = None
    if not args.audit_only:
        sizes = editing.EditSizes.quick() if args.quick else editing.EditSizes()
        e = editing.run_seed(seed, describer, sizes, log=log)
        e.sizes = dict(sizes.__dict__)
        # each seed's record as soon as it exists: a long run that is stopped keeps what it measured
        (args.output / f"editing-seed{seed}.json").write_text(json.dumps(
            {**e.summary_row(), "base": e.base, "edited": e.edited, "random": e.random, "cost_same_k": e.cost_same_k,
             "cost_tuned": e.cost_tuned, "reference": e.reference, "curves": e.curves,
             "cue_units": [str(u) for u in e.cue_units], "descriptions": e.descriptions}, indent=1, default=str))
    if args.audit or args.audit_only:
        asizes = audit.AuditSizes.quick() if args.quick else audit.AuditSizes()
        a = audit.run_seed(seed, describer, asizes, log=log)
        a.sizes = dict(asizes.__dict__)
        (args.output / f"audit-seed{seed}.json").write_text(json.dumps(
            {**a.row(), "with_units": a.with_concept, "without_units": a.without_concept,
             "descriptions": a.descriptions}, indent=1))
    return e, a


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="tiny sizes (the tests' variant)")
    p.add_argument("--audit", action="store_true", help="also run the audit")
    p.add_argument("--audit-only", action="store_true", help="run only the audit")
    p.add_argument("--milan-train", default="synth-plain",
                   help="synthetic config or grouping whose train split MILAN learns from (default synth-plain: "
                        "synth-shallow-plain + synth-deep-plain, the scene style of the task)")
    p.add_argument("--milan-patience", type=int, default=4, help="MILAN's early-stopping patience (default 4)")
    p.add_argument("--workers", type=int, default=1, help="seeds run in this many forked processes (default 1)")
    p.add_argument("--output", type=Path, default=Path(__file__).resolve().parent / "out" / "editing")
    args = p.parse_args(argv)
    import torch

    from applications import audit, editing

    torch.set_num_threads(1)
    wall0, cpu0 = time.perf_counter(), cpu_now()
    args.output.mkdir(parents=True, exist_ok=True)
    describer, n_train = milan_describer(args.milan_train, args.milan_patience)
    fit_wall, fit_cpu = time.perf_counter() - wall0, cpu_now() - cpu0
    print(f"MILAN ({args.milan_train}, patience {args.milan_patience}): {n_train}; ready in {fit_wall:.0f} s wall, "
          f"{fit_cpu:.0f} s CPU", flush=True)
    record: dict = {"milan": {**describer.fit_record, "train_on": args.milan_train, "source": n_train},
                    "seeds": args.seeds, "quick": args.quick, "workers": args.workers}
    global _TASK
    _TASK = (describer, args)
    seeds = list(range(args.seeds))
    if args.workers > 1:  # fork after MILAN is loaded: every worker shares it; one seed per task
        import multiprocessing as mp

        with mp.get_context("fork").Pool(min(args.workers, len(seeds))) as pool:
            done = pool.map(_one_seed, seeds)
    else:
        done = [_one_seed(s) for s in seeds]
    if not args.audit_only:
        results = [e for e, _ in done]
        summary = editing.summarize(results)
        print("\nEditing (adversarial test accuracy, %; test scenes carry another class's star):")
        print(editing_table(results, summary))
        plot_curves(results, args.output / "curve.png")
        record["editing"] = {"sizes": results[0].sizes, "summary": summary,
                             "seeds": [{**r.summary_row(), "base": r.base, "edited": r.edited, "random": r.random,
                                        "cost_same_k": r.cost_same_k, "cost_tuned": r.cost_tuned,
                                        "reference": r.reference, "curves": r.curves,
                                        "cue_units": [str(u) for u in r.cue_units],
                                        "descriptions": r.descriptions,
                                        "seconds": {k: v for k, v in r.seconds.items()}} for r in results]}
    if args.audit or args.audit_only:
        aresults = [a for _, a in done]
        asummary = audit.summarize(aresults)
        print("\nAudit (units whose description names stripes):")
        print(audit_table(aresults, asummary))
        record["audit"] = {"sizes": aresults[0].sizes, "summary": asummary,
                           "seeds": [{**r.row(), "with_units": r.with_concept, "without_units": r.without_concept,
                                      "descriptions": r.descriptions} for r in aresults]}
    wall, cpu = time.perf_counter() - wall0, cpu_now() - cpu0
    record["wall_s"], record["cpu_s"] = wall, cpu
    (args.output / "results.json").write_text(json.dumps(record, indent=1, default=str) + "\n")
    print(f"\nwall {wall:.0f} s, CPU {cpu:.0f} s (this process; MILAN ready after {fit_wall:.0f} s wall / "
          f"{fit_cpu:.0f} s CPU); wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
