"""Truth metrics: a description of a synthetic unit judged by the unit's formula and its activations.

Agreement metrics compare a description with the annotators' words. On the
synthetic world we also know what each unit computes, so a description is
parsed into a formula (`milannotations.synth.parse`) and checked three ways:

- against the unit's activations on fresh probe scenes (`synth.probe`),
  cell by cell: Pearson correlation of the unit's maps with the
  description's mask, and IoU of the unit's top-1% cells with it. These
  are the two metrics that pass NeuronEval's missing- and extra-label
  sanity checks (Oikarinen et al., ICML 2025; see docs/truth.md), and the
  `_norm` variants divide the sum over units by the truth formula's own
  sum, so 1 means "as good as the truth on these scenes";
- by identification: does the description's mask correlate best with its
  own unit among all test units? Units whose truths are the same formula
  are indistinguishable in principle, so each of their scores is replaced
  by their group's mean and they tie; ties count at their expected value
  (`retrieval.retrieval_per_unit`), so every constant describer scores
  exactly chance (1/n and H_n/n);
- against the formula itself: precision, recall and F1 of the concepts
  named, and exact match. Concept precision ignores missing concepts and
  recall ignores extra ones (they fail the sanity checks: diagnostics).

Text that does not parse is the empty formula: its mask is empty, every
score 0, and it is counted in the parse report, never skipped.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from eval.metrics.bootstrap import resample_counts, summarize
from eval.metrics.result import MetricScore
from eval.metrics.retrieval import retrieval_per_unit, tie_groups
from eval.metrics.spec import METRICS

#: What a parsed description is compared with, per metric (the signature's first part).
_WHAT = {
    "truth_px_pearson": "pearson(unit map, description mask)",
    "truth_px_iou": "iou(unit top-1% cells, description mask)",
    "truth_px_pearson_norm": "sum pearson / sum pearson(truth)",
    "truth_px_iou_norm": "sum iou / sum iou(truth)",
    "truth_ident_top1": "identification top1|sim:pearson|gallery:test-units|ties:expected,dup-truth:tie",
    "truth_ident_mrr": "identification mrr|sim:pearson|gallery:test-units|ties:expected,dup-truth:tie",
    "truth_concept_precision": "concept precision vs truth",
    "truth_concept_recall": "concept recall vs truth",
    "truth_concept_f1": "concept f1 vs truth",
    "truth_exact": "formula == truth",
}


def pearson_from_sums(total, squares, cross, mask_size, cells: int) -> np.ndarray:
    """Pearson r of activations and a 0/1 mask over `cells` positions, from sums (0 where the mask is
    empty or everywhere: a constant says nothing about the unit). Broadcasts over units and masks."""
    cov = cross - total * mask_size / cells
    var_a = squares - total * total / cells
    var_c = mask_size - mask_size * mask_size / cells
    denom = np.sqrt(np.clip(var_a, 0, None) * np.clip(var_c, 0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(denom > 0, cov / np.where(denom > 0, denom, 1.0), 0.0)
    return r


def iou_from_sums(inter, active, mask_size) -> np.ndarray:
    """|active & mask| / |active | mask| (0 where both are empty)."""
    union = active + mask_size - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def concept_prf(parsed: frozenset[str], truth: frozenset[str]) -> tuple[float, float, float]:
    """Precision, recall and F1 of the concepts a description names (0 for the empty formula)."""
    hit = len(parsed & truth)
    if not parsed or not hit:
        return 0.0, 0.0, 0.0
    p, r = hit / len(parsed), hit / len(truth)
    return p, r, 2 * p * r / (p + r)


@dataclass
class TruthContext:
    """The units under test of one split, on the probe set: what every truth score of the split needs."""

    configs: list[str]  # per unit
    truths: list  # per unit: its truth Formula
    stats: dict  # config -> synth.probe.UnitStats (rows cover the split's units of that config)
    rows: list[int]  # per unit: its row in stats[config]
    atoms: dict  # domain -> synth.probe.ProbeAtoms
    domain_of: dict  # config -> domain
    groups: np.ndarray  # per unit: index of its truth formula among the split's distinct truths
    signature: str
    truth_values: dict[str, np.ndarray] = field(default_factory=dict)  # pearson/iou of the truth per unit

    @property
    def n(self) -> int:
        return len(self.configs)


class TruthScorer:
    """Scores descriptions of synthetic units by truth (see the module docstring).

    Args:
        probe_size: probe scenes per domain.
        n_boot, seed: bootstrap resamples and seed, the same as the agreement `Scorer` uses, so
            both families are resampled over the same units.
        cache_dir: where probe atoms and unit sums are cached (default <cache>/probe).
    """

    def __init__(self, probe_size: int | None = None, n_boot: int = 1000, seed: int = 0, *, cache_dir=None,
                 progress: bool = False):
        from milannotations.synth.probe import PROBE_SIZE

        self.probe_size = int(probe_size or PROBE_SIZE)
        self.n_boot, self.seed, self.cache_dir, self.progress = n_boot, seed, cache_dir, progress
        self._memo: dict = {}

    # ------------------------------------------------------------------ context
    def context(self, configs: Sequence[str], units: Sequence[int], truths: Sequence[str],
                world: dict[str, tuple[int, int]]) -> TruthContext:
        """The split's units: `configs[i]`, `units[i]` (index in its config) and `truths[i]` (the truth
        JSON); `world[config]` = (build seed, units in the config). Checks every truth against the
        rebuilt unit, so a corpus from another builder version is refused, not silently misjudged."""
        from milannotations.errors import MilanError
        from milannotations.synth.build import parse_config
        from milannotations.synth.formula import from_truth
        from milannotations.synth.neurons import sample_units
        from milannotations.synth.parse import PARSER_VERSION
        from milannotations.synth.probe import QUANTILE, probe_atoms, signature, unit_stats

        memo_key = ("context", tuple(configs), tuple(int(u) for u in units), tuple(truths),
                    tuple(sorted(world.items())))
        if memo_key in self._memo:
            return self._memo[memo_key]
        stats, atoms, domain_of = {}, {}, {}
        rows: list[int] = [0] * len(configs)
        seeds = {world[c][0] for c in configs}
        if len(seeds) != 1:
            raise MilanError(f"the split mixes synthetic builds of seeds {sorted(seeds)}")
        world_seed = seeds.pop()
        for config in dict.fromkeys(configs):
            seed, n_units = world[config]
            family, domain = parse_config(config)
            specs = sample_units(family, domain, n_units, seed)
            mine = [i for i, c in enumerate(configs) if c == config]
            for i in mine:
                u = int(units[i])
                if u >= len(specs) or specs[u].truth() != truths[i]:
                    raise MilanError(f"unit {config}/units/{u}: its truth does not match the synthetic world "
                                     f"this code builds (seed {seed}, {n_units} units); rebuild the corpus")
            idx = sorted({int(units[i]) for i in mine})
            key = (config, seed, n_units, tuple(idx))
            if key not in self._memo:
                self._memo[key] = unit_stats(config, seed, n_units, idx, self.probe_size,
                                             cache_dir=self.cache_dir, progress=self.progress)
            stats[config] = self._memo[key]
            where = {u: r for r, u in enumerate(stats[config].indices.tolist())}
            for i in mine:
                rows[i] = where[int(units[i])]
            domain_of[config] = domain
            if domain not in atoms:
                akey = ("atoms", domain, seed)
                if akey not in self._memo:
                    self._memo[akey] = probe_atoms(domain, seed, self.probe_size, cache_dir=self.cache_dir)
                atoms[domain] = self._memo[akey]
        formulas = [from_truth(t) for t in truths]
        keys = [f.key for f in formulas]
        first = {k: g for g, k in enumerate(dict.fromkeys(keys))}
        ctx = TruthContext(list(configs), formulas, stats, rows, atoms, domain_of,
                           np.array([first[k] for k in keys]),
                           f"parser:v{PARSER_VERSION}|{signature(self.probe_size, world_seed)}|q:{QUANTILE}")
        pear, iou, col = self._matrices(ctx, formulas)
        ctx.truth_values = {"pearson": _own(pear, formulas, col), "iou": _own(iou, formulas, col)}
        self._memo[memo_key] = ctx
        return ctx

    # ------------------------------------------------------------------ core
    def _matrices(self, ctx: TruthContext, formulas: Sequence) -> tuple[np.ndarray, np.ndarray, dict]:
        """Pearson and IoU of every unit (rows) with every distinct formula (columns), and the column
        of each formula key."""
        distinct = list({f.key: f for f in formulas}.values())
        col = {f.key: j for j, f in enumerate(distinct)}
        pear = np.zeros((ctx.n, len(distinct)))
        iou = np.zeros((ctx.n, len(distinct)))
        masks = {d: a.masks(distinct).astype(np.float64) for d, a in ctx.atoms.items()}
        for config, st in ctx.stats.items():
            mine = [i for i, c in enumerate(ctx.configs) if c == config]
            if not mine:
                continue
            atoms = ctx.atoms[ctx.domain_of[config]]
            c = masks[ctx.domain_of[config]]
            size = atoms.counts.astype(np.float64) @ c  # cells per mask
            r = np.asarray([ctx.rows[i] for i in mine])
            cross = st.atom_sum[r].astype(np.float64) @ c
            inter = st.atom_active[r].astype(np.float64) @ c
            pear[mine] = pearson_from_sums(st.total[r, None], st.squares[r, None], cross, size[None], atoms.cells)
            iou[mine] = iou_from_sums(inter, float(st.active), size[None])
        return pear, iou, col

    def per_unit(self, ctx: TruthContext, descriptions: Sequence[str]) -> dict[str, np.ndarray]:
        """Per-unit values of every truth metric (corpus metrics as units x 2 statistics) of
        `descriptions` (one per unit, in `ctx` order)."""
        from milannotations.synth.formula import concepts
        from milannotations.synth.parse import parse

        if len(descriptions) != ctx.n:
            raise ValueError(f"{len(descriptions)} descriptions for {ctx.n} units")
        parsed = [parse(str(d)) for d in descriptions]
        formulas = [p.formula for p in parsed]
        pear, iou, col = self._matrices(ctx, formulas)
        own_p = _own(pear, formulas, col)
        own_i = _own(iou, formulas, col)
        # identification: row u = description u's mask against every unit v; tied duplicate truths
        sim = tie_groups(pear[:, [col[f.key] for f in formulas]].T, ctx.groups)
        top1, rr = retrieval_per_unit(sim)
        prf = np.array([concept_prf(concepts(f), concepts(t)) for f, t in zip(formulas, ctx.truths)])
        values = {
            "truth_px_pearson": own_p,
            "truth_px_iou": own_i,
            "truth_px_pearson_norm": np.stack([own_p, ctx.truth_values["pearson"]], axis=1),
            "truth_px_iou_norm": np.stack([own_i, ctx.truth_values["iou"]], axis=1),
            "truth_ident_top1": top1,
            "truth_ident_mrr": rr,
            "truth_concept_precision": prf[:, 0],
            "truth_concept_recall": prf[:, 1],
            "truth_concept_f1": prf[:, 2],
            "truth_exact": np.array([float(f == t) for f, t in zip(formulas, ctx.truths)]),
        }
        return values

    def _package(self, ctx: TruthContext, passes: list[dict[str, np.ndarray]], suffix: str = ""
                 ) -> dict[str, MetricScore]:
        """Mean over passes (annotator slots for the human row, else one), bootstrap over units."""
        n = len(next(iter(passes[0].values())))
        counts = resample_counts(n, self.n_boot, self.seed)
        return {m.name: summarize(m, [p[m.name] for p in passes], counts,
                                  f"{m.name}|{_WHAT[m.name]}|{ctx.signature}{suffix}")
                for m in METRICS if m.family == "truth"}

    # ------------------------------------------------------------------ public
    def score(self, ctx: TruthContext, descriptions: Sequence[str]) -> dict[str, MetricScore]:
        """Every truth metric of one description per unit."""
        values = self.per_unit(ctx, descriptions)
        return self._package(ctx, [values])

    def ceiling(self, ctx: TruthContext) -> dict[str, MetricScore]:
        """The truth formulas themselves, scored as descriptions: the ceiling of every truth metric."""
        from milannotations.synth.formula import text

        values = self.per_unit(ctx, [text(t) for t in ctx.truths])
        return self._package(ctx, [values], "|ceiling:truth-formula")

    def humans(self, ctx: TruthContext, references: Sequence[Sequence[str]]) -> dict[str, MetricScore]:
        """The annotators' own descriptions, scored the same way (mean over annotator slots)."""
        k = min(len(r) for r in references)
        passes = [self.per_unit(ctx, [r[a] for r in references]) for a in range(k)]
        return self._package(ctx, passes, f"|humans:annotators:{k}")


def _own(matrix: np.ndarray, formulas: Sequence, col: dict) -> np.ndarray:
    """matrix[u, column of formula u] per unit."""
    return matrix[np.arange(len(formulas)), [col[f.key] for f in formulas]]


def parse_report(descriptions: Sequence[Sequence[str]]) -> dict:
    """How many descriptions (all trials) the parser understood, with a few it did not: text it cannot
    parse scores 0 and is counted here, never skipped."""
    from milannotations.synth.parse import PARSER_VERSION, parse

    flat = [str(d) for texts in descriptions for d in texts]
    bad = [d for d in flat if not parse(d).ok]
    return {"parser": f"v{PARSER_VERSION}", "descriptions": len(flat), "parsed": len(flat) - len(bad),
            "unparsed_examples": list(dict.fromkeys(bad))[:5]}
