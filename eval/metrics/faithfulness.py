"""Faithfulness: a description judged by what its unit does, through a labeller (no formula needed).

Two settings, never compared with each other (DESIGN.md, docs/faithfulness.md):

- **exemplars, positives only** (any corpus: MILANNOTATIONS, a user's exemplar
  folder, the synthetic world). The labeller maps the description onto the
  unit's k exemplar images; pooled over them, the description's cells are
  compared with the unit's mask cells: IoU and F1 (NeuronEval's two binary
  metrics that pass its sanity checks). Identification asks whether the
  description singles out its own unit's exemplars: S[u, v] = IoU of
  description u on unit v's exemplars with v's masks, ranked over the test
  units with ties at their expected value, so any constant describer scores
  exactly chance. Nothing is known where the unit is silent, so recall
  ("the exemplars show it") is a diagnostic: "object" covers everything.
- **probe set** (a user's model whose activations on every probe image were
  recorded: `milannotations exemplars --record-activations`). NeuronEval's
  s_M(a_k, c_t) with a_k = the unit's spatial-max activation per image and
  c_t = the labeller's image score: Pearson, AUPRC (score c, target the
  unit's top-alpha images) and IoU/F1 of the top-alpha images with c >= 0.5;
  CoSy's AUC (activation as a classifier of the concept) and MAD as
  diagnostics, since both fail the missing-labels check (a too specific
  description is not penalised). alpha is chosen once per benchmark on
  validation units (`choose_alpha`), never per describer; without reference
  descriptions for validation units it is NeuronEval's hidden-layer 0.005.

Every signature names the labeller (model and version), the resolution or
pooling, alpha, and "positives-only" for exemplar metrics.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from eval.metrics.bootstrap import resample_counts, summarize
from eval.metrics.result import MetricScore
from eval.metrics.retrieval import retrieval_per_unit, tie_groups
from eval.metrics.spec import METRICS

#: Cells per side at which exemplar masks and label maps are compared (the synthetic units' own grid).
RESOLUTION = 28
#: NeuronEval's alpha grid (`find_best_alpha`) and its fixed hidden-layer value.
ALPHAS = (0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
DEFAULT_ALPHA = 0.005

_WHAT = {
    "exemplar_px_iou": "iou(unit masks, description map>=0.5)|pooled:exemplars",
    "exemplar_px_f1": "f1(unit masks, description map>=0.5)|pooled:exemplars",
    "exemplar_ident_top1": "identification top1|sim:exemplar-iou|gallery:test-units|ties:expected",
    "exemplar_ident_mrr": "identification mrr|sim:exemplar-iou|gallery:test-units|ties:expected",
    "exemplar_recall": "|unit masks & description| / |unit masks|",
    "probe_pearson": "pearson(activation, label score)",
    "probe_auprc": "auprc(score:label, target:top-alpha activation)",
    "probe_iou": "iou(top-alpha images, label>=0.5)",
    "probe_f1": "f1(top-alpha images, label>=0.5)",
    "probe_ident_top1": "identification top1|sim:pearson|gallery:test-units|ties:expected",
    "probe_ident_mrr": "identification mrr|sim:pearson|gallery:test-units|ties:expected",
    "probe_cosy_auc": "auroc(score:activation, target:label>=0.5) (CoSy/INVERT)",
    "probe_cosy_mad": "(mean a|label - mean a|no label) / std a|no label (CoSy)",
}
EXEMPLAR_METRICS = tuple(m.name for m in METRICS if m.family == "faithfulness")
PROBE_METRICS = tuple(m.name for m in METRICS if m.family == "probe")


# ----------------------------------------------------------------------------- metric functions

def binary_overlap(inter, a_size, b_size) -> tuple[np.ndarray, np.ndarray]:
    """IoU and F1 of two binary sets from |a & b|, |a| and |b| (0 where both are empty)."""
    inter, a_size, b_size = (np.asarray(x, np.float64) for x in (inter, a_size, b_size))
    union = a_size + b_size - inter
    iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    total = a_size + b_size
    f1 = np.where(total > 0, 2 * inter / np.where(total > 0, total, 1), 0.0)
    return iou, f1


def top_alpha(a: np.ndarray, alpha: float) -> np.ndarray:
    """bool, same shape: the top ceil(alpha * N) entries of each row of `a` (ties at the cut included),
    NeuronEval's `_binarize_act`."""
    a = np.atleast_2d(np.asarray(a, np.float64))
    k = max(1, int(math.ceil(alpha * a.shape[-1])))
    kth = -np.partition(-a, k - 1, axis=-1)[..., k - 1:k]
    return a >= kth


def pearson_rows(a: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Pearson r of each row of `a` with the same row of `c` (0 where either is constant)."""
    a = np.asarray(a, np.float64)
    c = np.asarray(c, np.float64)
    a = a - a.mean(axis=-1, keepdims=True)
    c = c - c.mean(axis=-1, keepdims=True)
    den = np.sqrt((a * a).sum(-1) * (c * c).sum(-1))
    return np.where(den > 0, (a * c).sum(-1) / np.where(den > 0, den, 1), 0.0)


def pearson_matrix(a: np.ndarray, c: np.ndarray) -> np.ndarray:
    """r[i, j] = Pearson(a[i], c[j]) for rows of `a` (U x N) and `c` (T x N)."""
    def z(x):
        x = np.asarray(x, np.float64)
        x = x - x.mean(axis=1, keepdims=True)
        n = np.sqrt((x * x).sum(axis=1, keepdims=True))
        return np.where(n > 0, x / np.where(n > 0, n, 1), 0.0)
    return z(a) @ z(c).T


def average_precision(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """AUPRC (scikit-learn's average precision, ties as one threshold) of one score vector (N) against
    each row of bool `targets` (U x N); 0 for a row without positives."""
    scores = np.asarray(scores, np.float64)
    targets = np.atleast_2d(np.asarray(targets, bool))
    order = np.argsort(-scores, kind="stable")
    s = scores[order]
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])  # last index of each distinct threshold
    tp = np.cumsum(targets[:, order], axis=1)[:, ends].astype(np.float64)
    seen = (ends + 1).astype(np.float64)
    positives = targets.sum(axis=1, keepdims=True).astype(np.float64)
    precision = tp / seen
    recall = np.where(positives > 0, tp / np.where(positives > 0, positives, 1), 0.0)
    d_recall = np.diff(np.concatenate([np.zeros((len(targets), 1)), recall], axis=1), axis=1)
    return (d_recall * precision).sum(axis=1)


def auroc_rows(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """AUROC of each row of `scores` for the same row of bool `targets` (Mann-Whitney with average
    ranks; 0.5 where a row has no positives or no negatives)."""
    from scipy.stats import rankdata

    scores = np.atleast_2d(np.asarray(scores, np.float64))
    targets = np.atleast_2d(np.asarray(targets, bool))
    ranks = rankdata(scores, axis=1)
    p = targets.sum(1).astype(np.float64)
    n = targets.shape[1] - p
    u = (ranks * targets).sum(1) - p * (p + 1) / 2
    ok = (p > 0) & (n > 0)
    return np.where(ok, u / np.where(ok, p * n, 1), 0.5)


def mad_rows(a: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """CoSy's MAD: (mean of a on positives - mean on negatives) / std on negatives, per row (0 where
    undefined)."""
    a = np.atleast_2d(np.asarray(a, np.float64))
    t = np.atleast_2d(np.asarray(targets, bool))
    p, n = t.sum(1), (~t).sum(1)
    mp = np.where(p > 0, (a * t).sum(1) / np.maximum(p, 1), 0.0)
    mn = np.where(n > 0, (a * ~t).sum(1) / np.maximum(n, 1), 0.0)
    var = np.where(n > 1, (((a - mn[:, None]) ** 2) * ~t).sum(1) / np.maximum(n - 1, 1), 0.0)
    ok = (p > 0) & (var > 0)
    return np.where(ok, (mp - mn) / np.sqrt(np.where(ok, var, 1)), 0.0)


def probe_values(a: np.ndarray, c: np.ndarray, alpha: float) -> dict[str, np.ndarray]:
    """Every probe metric of unit activations `a` (U x N) against concept scores `c` (U x N, one row
    per unit: its description's labels), at top-`alpha` binarisation."""
    a = np.atleast_2d(np.asarray(a, np.float64))
    c = np.atleast_2d(np.asarray(c, np.float64))
    active = top_alpha(a, alpha)
    label = c >= 0.5
    iou, f1 = binary_overlap((active & label).sum(1), active.sum(1), label.sum(1))
    return {
        "probe_pearson": pearson_rows(a, c),
        "probe_auprc": np.array([average_precision(c[i], active[i:i + 1])[0] for i in range(len(a))]),
        "probe_iou": iou, "probe_f1": f1,
        "probe_cosy_auc": auroc_rows(a, label), "probe_cosy_mad": mad_rows(a, label),
    }


# ----------------------------------------------------------------------------- exemplar setting

class _Joined:
    """Labelled parts (one per dataset) behind one image order."""

    def __init__(self, parts: list[tuple[np.ndarray, object]], n: int):
        self.parts, self.n = parts, n

    def _gather(self, fn: str, texts: Sequence[str], shape: tuple[int, ...]) -> np.ndarray:
        out = np.zeros((len(texts), self.n, *shape), np.float32)
        for idx, labelled in self.parts:
            out[:, idx] = getattr(labelled, fn)(texts)
        return out

    def maps(self, texts, size) -> np.ndarray:
        return self._gather("maps", texts, size)

    def scores(self, texts) -> np.ndarray:
        return self._gather("scores", texts, ())


def label_images(labeller, images, datasets: Sequence[str | None], image_ids: Sequence[int] | None,
                 size: tuple[int, int] = (RESOLUTION, RESOLUTION)) -> _Joined:
    """Run `labeller` over `images` (uint8 N x 3 x H x W), one call per source dataset."""
    from baselines.labellers import ImageBatch

    datasets = list(datasets)
    parts = []
    for ds in dict.fromkeys(datasets):
        idx = np.array([i for i, d in enumerate(datasets) if d == ds])
        ids = tuple(int(image_ids[i]) for i in idx) if image_ids is not None else None
        parts.append((idx, labeller.label(ImageBatch(images[idx], ds, ids), size)))
    return _Joined(parts, len(datasets))


@dataclass
class ExemplarContext:
    """The split's test units on their own exemplars, labelled once for every description."""

    masks: np.ndarray  # bool n x (k*h*w): each unit's mask cells over its exemplars
    labelled: _Joined  # over the n*k exemplar images, unit-major
    k: int
    groups: np.ndarray | None
    signature: str

    @property
    def n(self) -> int:
        return len(self.masks)


def _cells(masks, size: int):
    import torch
    import torch.nn.functional as F

    m = masks.float()
    if m.shape[-1] != size:
        m = F.adaptive_avg_pool2d(m, size) if m.shape[-1] > size else F.interpolate(m, size=(size, size))
    return (m >= 0.5).to(torch.bool)


class FaithfulnessScorer:
    """Exemplar (and probe-set) faithfulness of descriptions through one labeller; the same bootstrap
    resamples as the other scorers (`n_boot`, `seed`)."""

    def __init__(self, labeller, n_boot: int = 1000, seed: int = 0, resolution: int = RESOLUTION):
        self.labeller, self.n_boot, self.seed, self.resolution = labeller, n_boot, seed, int(resolution)

    # ------------------------------------------------------------------ exemplars
    def exemplar_context(self, units: Sequence, groups=None) -> ExemplarContext:
        """`units`: the split's test units as `Exemplars` (pixels, masks, image ids)."""
        import torch

        from milannotations.errors import MilanError

        ks = {u.k for u in units}
        if len(ks) != 1:
            raise MilanError(f"exemplar faithfulness needs the same k for every unit, got {sorted(ks)}")
        k = ks.pop()
        for u in units:
            if u.images.shape[0] != k:
                raise MilanError(f"unit {u.unit_id} has no exemplar pixels (images not joined?): "
                                 "exemplar faithfulness labels the images")
        size = self.resolution
        images = torch.cat([u.images for u in units])
        sizes = {tuple(u.images.shape[-2:]) for u in units}
        if len(sizes) > 1:
            import torch.nn.functional as F

            h, w = max(sizes)
            images = torch.cat([F.interpolate(u.images.float(), size=(h, w), mode="bilinear").round().to(torch.uint8)
                                if tuple(u.images.shape[-2:]) != (h, w) else u.images for u in units])
        masks = torch.cat([_cells(u.masks, size) for u in units]).reshape(len(units), -1).numpy()
        datasets = [u.dataset for u in units for _ in range(k)]
        ids = [int(i) for u in units for i in (u.image_ids if len(u.image_ids) == k else [-1] * k)]
        labelled = label_images(self.labeller, images, datasets, ids, (size, size))
        sig = f"{self.labeller.signature}|res:{size}|k:{k}|positives-only"
        return ExemplarContext(masks, labelled, k, None if groups is None else np.asarray(groups), sig)

    def _exemplar_overlap(self, ctx: ExemplarContext, texts: list[str]) -> tuple[np.ndarray, ...]:
        """inter, description size per (text, unit), and unit mask sizes, over each unit's exemplars."""
        size = (self.resolution, self.resolution)
        cells = ctx.k * size[0] * size[1]
        chunk = max(1, int(2e7 // max(1, ctx.n * cells)))
        masks = ctx.masks.astype(np.float32)
        inter = np.zeros((len(texts), ctx.n))
        dsize = np.zeros((len(texts), ctx.n))
        for s in range(0, len(texts), chunk):
            m = ctx.labelled.maps(texts[s:s + chunk], size) >= 0.5  # t x (n*k) x h x w
            m = m.reshape(m.shape[0], ctx.n, cells)
            inter[s:s + chunk] = np.einsum("tnc,nc->tn", m.astype(np.float32), masks)
            dsize[s:s + chunk] = m.sum(axis=2)
        return inter, dsize, ctx.masks.sum(axis=1).astype(np.float64)

    def exemplar_per_unit(self, ctx: ExemplarContext, descriptions: Sequence[str]) -> dict[str, np.ndarray]:
        if len(descriptions) != ctx.n:
            raise ValueError(f"{len(descriptions)} descriptions for {ctx.n} units")
        distinct = list(dict.fromkeys(str(d) for d in descriptions))
        col = {t: j for j, t in enumerate(distinct)}
        inter, dsize, msize = self._exemplar_overlap(ctx, distinct)
        iou, f1 = binary_overlap(inter, dsize, msize[None])  # text x unit
        rows = np.array([col[str(d)] for d in descriptions])
        own = (rows, np.arange(ctx.n))
        sim = tie_groups(iou[rows], ctx.groups)  # row u: description u on every unit v
        top1, rr = retrieval_per_unit(sim)
        recall = np.where(msize > 0, inter[own] / np.where(msize > 0, msize, 1), 0.0)
        return {"exemplar_px_iou": iou[own], "exemplar_px_f1": f1[own], "exemplar_ident_top1": top1,
                "exemplar_ident_mrr": rr, "exemplar_recall": recall}

    # ------------------------------------------------------------------ packaging
    def summarize_passes(self, names: Sequence[str], passes: list[dict[str, np.ndarray]], signature: str
                         ) -> dict[str, MetricScore]:
        """The metrics `names` of per-unit value passes (one per trial or annotator, averaged per unit),
        each with its bootstrap interval over units and its signature: what every score here returns,
        public so the harness can package passes it computed itself (e.g. several trials at once)."""
        n = len(next(iter(passes[0].values())))
        counts = resample_counts(n, self.n_boot, self.seed)
        return {m.name: summarize(m, [p[m.name] for p in passes], counts, f"{m.name}|{_WHAT[m.name]}|{signature}")
                for m in METRICS if m.name in names}

    def score_exemplars(self, ctx: ExemplarContext, descriptions: Sequence[str], suffix: str = ""
                        ) -> dict[str, MetricScore]:
        return self.summarize_passes(EXEMPLAR_METRICS, [self.exemplar_per_unit(ctx, descriptions)],
                                     ctx.signature + suffix)

    def humans_exemplars(self, ctx: ExemplarContext, references: Sequence[Sequence[str]]) -> dict[str, MetricScore]:
        """The annotators' own descriptions, scored the same way (mean over annotator slots)."""
        k = min(len(r) for r in references)
        passes = [self.exemplar_per_unit(ctx, [r[a] for r in references]) for a in range(k)]
        return self.summarize_passes(EXEMPLAR_METRICS, passes, f"{ctx.signature}|humans:annotators:{k}")

    # ------------------------------------------------------------------ probe set
    def probe_context(self, activations: np.ndarray, images, datasets, image_ids=None, *, alpha: float,
                      alpha_how: str, probe: str, groups=None, labelled=None) -> "ProbeContext":
        """`activations`: N probe images x n test units (spatial max); `images` uint8 N x 3 x H x W
        (`labelled`: the same images already labelled, shared between splits)."""
        if labelled is None:  # image scores come from maps at the cell resolution (or the labeller's own)
            labelled = label_images(self.labeller, images, datasets, image_ids, (self.resolution,) * 2)
        sig = f"{self.labeller.signature}|probe:{probe}|pool:max|alpha:{alpha:g}({alpha_how})"
        return ProbeContext(np.asarray(activations, np.float64).T, labelled, float(alpha),
                            None if groups is None else np.asarray(groups), sig)

    def probe_per_unit(self, ctx: "ProbeContext", descriptions: Sequence[str]) -> dict[str, np.ndarray]:
        if len(descriptions) != ctx.n:
            raise ValueError(f"{len(descriptions)} descriptions for {ctx.n} units")
        distinct = list(dict.fromkeys(str(d) for d in descriptions))
        col = {t: j for j, t in enumerate(distinct)}
        scores = ctx.labelled.scores(distinct).astype(np.float64)  # T x N
        rows = np.array([col[str(d)] for d in descriptions])
        values = probe_values(ctx.activations, scores[rows], ctx.alpha)
        sim = tie_groups(pearson_matrix(scores[rows], ctx.activations), ctx.groups)  # description u x unit v
        values["probe_ident_top1"], values["probe_ident_mrr"] = retrieval_per_unit(sim)
        return values

    def score_probe(self, ctx: "ProbeContext", descriptions: Sequence[str], suffix: str = ""
                    ) -> dict[str, MetricScore]:
        return self.summarize_passes(PROBE_METRICS, [self.probe_per_unit(ctx, descriptions)], ctx.signature + suffix)


@dataclass
class ProbeContext:
    """The split's test units on a probe set: their activations and the images, labelled once."""

    activations: np.ndarray  # n units x N probe images
    labelled: _Joined
    alpha: float
    groups: np.ndarray | None
    signature: str

    @property
    def n(self) -> int:
        return len(self.activations)


def choose_alpha(activations: np.ndarray, label_scores: np.ndarray, alphas: Sequence[float] = ALPHAS
                 ) -> float:
    """NeuronEval's `find_best_alpha`, on validation units: the alpha at which the units' reference
    descriptions are best told apart by AUPRC (mean reciprocal rank of each unit's own description
    among all validation units' descriptions). Ties go to the alpha nearest NeuronEval's fixed
    hidden-layer value (`DEFAULT_ALPHA`, on a log scale): the default moves only on evidence.
    `activations`: units x N; `label_scores`: one row per unit, its reference description's labels."""
    a = np.atleast_2d(np.asarray(activations, np.float64))
    c = np.atleast_2d(np.asarray(label_scores, np.float64))
    mrr = []
    for alpha in alphas:
        active = top_alpha(a, alpha)
        s = np.stack([average_precision(c[j], active) for j in range(len(c))], axis=1)  # unit x description
        mrr.append(float(retrieval_per_unit(s)[1].mean()))
    best = max(mrr)
    tied = [al for al, m in zip(alphas, mrr) if m >= best - 1e-12]
    return float(min(tied, key=lambda al: (abs(math.log(al / DEFAULT_ALPHA)), al)))
