"""The one table of metrics: every consumer (scorer, results schema, validation, page, CLI) iterates it.

A metric is declared once, here, with what each consumer needs to know about it:
its key in results.json, its column label, its scale, whether it is a mean over
units (bootstrapped over units) or a corpus statistic, whether it is computed
from model embeddings (float32, so validation allows the embedding tolerance),
and, for metrics that depend on the text alone, the per-unit function itself.
Adding such a metric touches this table and its implementation, nothing else;
a metric computed from the BERTScore embeddings also needs its line in
`Scorer._parts`, which shares one similarity matrix between them.

`family` says what a metric compares a description with: `agreement` (the
annotators' words, the paper's track), `truth` (a synthetic unit's formula),
`faithfulness` (the unit's exemplar masks, through a labeller: positives
only) or `probe` (the unit's activations on a probe set, through a labeller).
The last two are never compared with each other. A metric that fails NeuronEval's
sanity checks is a `diagnostic`: shown, never ranked.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from eval.metrics.bleu import bleu_from_stats, bleu_signature, bleu_stats
from eval.metrics.cider import SIGNATURE as CIDER_SIGNATURE
from eval.metrics.cider import cider_d_per_unit
from eval.metrics.rouge import SIGNATURE as ROUGE_SIGNATURE
from eval.metrics.rouge import rouge_l_per_unit

PerUnit = Callable[[Sequence[str], Sequence[Sequence[str]]], Sequence[float]]
Stats = Callable[[Sequence[str], Sequence[Sequence[str]]], np.ndarray]
FromStats = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class MetricSpec:
    """What every consumer needs to know about one metric."""

    name: str  # key in results.json
    label: str  # column header on the page and in the CLI
    family: str = "agreement"  # agreement | truth | faithfulness | probe
    kind: str = "mean"  # mean: per-unit values, bootstrap over units; corpus: from summed statistics
    scale: float = 1.0  # the value's range is [0, scale] (BLEU: 100)
    embeddings: bool = False  # from float32 model embeddings: validated with the embedding tolerance
    headline: bool = False  # the metric its family's view ranks describers by
    diagnostic: bool = False  # failed a sanity check: shown, never ranked
    per_unit: PerUnit | None = None  # text-only mean metrics: (predictions, references) -> per-unit values
    stats: Stats | None = None  # corpus metrics: (predictions, references) -> units x statistics
    from_stats: FromStats | None = None  # corpus metrics: summed statistics (... x S) -> value(s)
    signature: str | Callable[[int], str] | None = None  # text-only metrics: fixed, or of the references per unit

    def __post_init__(self) -> None:
        if self.family not in FAMILIES or self.kind not in KINDS:
            raise ValueError(f"metric {self.name}: family must be one of {FAMILIES}, kind one of {KINDS}")
        if self.kind == "corpus" and self.from_stats is None:
            raise ValueError(f"corpus metric {self.name} needs from_stats")
        if self.kind == "corpus" and self.family == "agreement" and self.stats is None:
            raise ValueError(f"agreement corpus metric {self.name} needs stats")

    def signature_for(self, n_refs: int) -> str | None:
        """This metric's signature for `n_refs` references per unit (None: the scorer makes it)."""
        return self.signature(n_refs) if callable(self.signature) else self.signature


FAMILIES = ("agreement", "truth", "faithfulness", "probe")
KINDS = ("mean", "corpus")


def _ratio(stats: np.ndarray) -> np.ndarray:
    """A ratio of sums, (... x 2) -> (...): the describer's sum over units over the truth's."""
    stats = np.asarray(stats, dtype=np.float64)
    return np.where(stats[..., 1] != 0, stats[..., 0] / np.where(stats[..., 1] != 0, stats[..., 1], 1.0), 0.0)


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("bertscore_f1", "BERTScore F1", embeddings=True, headline=True),
    MetricSpec("bleu", "BLEU", kind="corpus", scale=100.0, stats=bleu_stats, from_stats=bleu_from_stats,
               signature=bleu_signature),
    MetricSpec("rouge_l", "ROUGE-L", per_unit=rouge_l_per_unit, signature=ROUGE_SIGNATURE),
    MetricSpec("cider", "CIDEr-D", scale=10.0, per_unit=cider_d_per_unit, signature=CIDER_SIGNATURE),
    MetricSpec("retrieval_top1", "Retrieval top-1", embeddings=True),
    MetricSpec("retrieval_mrr", "Retrieval MRR", embeddings=True),
    # Truth: the synthetic world's formula and the unit's activations on fresh probe scenes
    # (eval/metrics/truth.py computes them all; docs/truth.md says why each was chosen).
    MetricSpec("truth_px_pearson", "Pixel Pearson", family="truth", headline=True),
    # IoU at the corpus's top 1% passes NeuronEval's label checks but not the semantic one: masks cover 4-5%
    # of cells, so a narrower claim often overlaps the 1% active cells better (truth > specific for ~90% of
    # units, benchmarks/bench_truth.py): shown, never ranked.
    MetricSpec("truth_px_iou", "Pixel IoU@1%", family="truth", diagnostic=True),
    MetricSpec("truth_px_pearson_norm", "Pearson / truth", family="truth", kind="corpus", from_stats=_ratio),
    MetricSpec("truth_px_iou_norm", "IoU / truth", family="truth", kind="corpus", from_stats=_ratio,
               diagnostic=True),
    MetricSpec("truth_ident_top1", "Identification top-1", family="truth"),
    MetricSpec("truth_ident_mrr", "Identification MRR", family="truth"),
    MetricSpec("truth_concept_f1", "Concept F1", family="truth"),
    MetricSpec("truth_exact", "Exact formula", family="truth"),
    MetricSpec("truth_concept_precision", "Concept precision", family="truth", diagnostic=True),
    MetricSpec("truth_concept_recall", "Concept recall", family="truth", diagnostic=True),
    # Faithfulness on the unit's own exemplars through a labeller (eval/metrics/faithfulness.py): IoU and
    # F1 pass NeuronEval's missing/extra-label checks (tests/test_faithfulness.py); recall ("the exemplars
    # show it") fails the extra-label one, a constant "object" scores 1.
    MetricSpec("exemplar_px_iou", "Exemplar IoU", family="faithfulness", headline=True),
    MetricSpec("exemplar_px_f1", "Exemplar F1", family="faithfulness"),
    MetricSpec("exemplar_ident_top1", "Exemplar ident. top-1", family="faithfulness"),
    MetricSpec("exemplar_ident_mrr", "Exemplar ident. MRR", family="faithfulness"),
    MetricSpec("exemplar_recall", "Exemplar recall", family="faithfulness", diagnostic=True),
    # Faithfulness on a probe set (NeuronEval's s_M(a_k, c_t)); CoSy's AUC and MAD fail the missing-label
    # check and MAD is unbounded: diagnostics.
    MetricSpec("probe_pearson", "Probe Pearson", family="probe", headline=True),
    MetricSpec("probe_auprc", "Probe AUPRC", family="probe"),
    MetricSpec("probe_iou", "Probe IoU@alpha", family="probe"),
    MetricSpec("probe_f1", "Probe F1@alpha", family="probe"),
    MetricSpec("probe_ident_top1", "Probe ident. top-1", family="probe"),
    MetricSpec("probe_ident_mrr", "Probe ident. MRR", family="probe"),
    MetricSpec("probe_cosy_auc", "CoSy AUC", family="probe", diagnostic=True),
    MetricSpec("probe_cosy_mad", "CoSy MAD", family="probe", diagnostic=True),
)

METRIC_NAMES: tuple[str, ...] = tuple(m.name for m in METRICS)
#: Per family, the metric its view ranks by.
HEADLINES: dict[str, str] = {m.family: m.name for m in METRICS if m.headline}
HEADLINE: str = HEADLINES["agreement"]
#: Metrics computed by the agreement `Scorer` (text against annotators); the others need the world's truth.
AGREEMENT_METRICS: tuple[str, ...] = tuple(m.name for m in METRICS if m.family == "agreement")
TRUTH_METRICS: tuple[str, ...] = tuple(m.name for m in METRICS if m.family == "truth")
FAITHFULNESS_METRICS: tuple[str, ...] = tuple(m.name for m in METRICS if m.family in ("faithfulness", "probe"))
EMBEDDING_METRICS: tuple[str, ...] = tuple(m.name for m in METRICS if m.embeddings)
_BY_NAME = {m.name: m for m in METRICS}


def metric(name: str) -> MetricSpec:
    """The spec of metric `name` (KeyError names the known ones)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; known: {', '.join(METRIC_NAMES)}") from None
