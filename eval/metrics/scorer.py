"""`Scorer`: every metric of a describer's output against human descriptions, with intervals and signatures.

One `Scorer` holds one BERTScore configuration (`paper` or `offline`) and its model; the n-gram metrics
need no model. Reference token embeddings are cached on disk per embedding signature, data revision and
reference texts, so scoring another describer on the same test set embeds only its candidates, and the
human ceiling (whose candidates are themselves references) embeds nothing new at all.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from eval.metrics.bertscore import (
    Embedded,
    TokenEncoder,
    TokenWeights,
    greedy_matrix,
    greedy_pairs,
    read_baseline,
    resolve_config,
)
from eval.metrics.bleu import reference_streams
from eval.metrics.bootstrap import resample_counts, summarize
from eval.metrics.cache import EmbeddingCache, entry_key
from eval.metrics.result import MetricScore
from eval.metrics.retrieval import SIGNATURE_TEMPLATE, retrieval_per_unit, tie_groups, unit_similarity
from eval.metrics.spec import METRICS

#: The metrics this scorer computes: text against the annotators' words (truth metrics: eval.metrics.truth).
AGREEMENT = tuple(m for m in METRICS if m.family == "agreement")
from eval.metrics.text import normalized_inputs


@dataclass
class _Parts:
    """One scoring pass: per-unit values of the mean metrics, per-unit statistics of the corpus metrics."""

    per_unit: dict[str, np.ndarray]
    stats: dict[str, np.ndarray]


class Scorer:
    """Scores predictions against per-unit reference lists (see `score`, `ceiling`).

    Args:
        scorer: BERTScore configuration, "offline" (MiniLM, runs anywhere; token cosines clamped to [0, 1])
            or "paper" (roberta-large L17, idf, rescaled, exactly bert_score; needs the checkpoint in the
            Hugging Face cache).
        device: torch device of the BERTScore model.
        cache_dir: folder of the reference-embedding cache (default: <milannotations cache>/scoring-cache).
        n_boot: bootstrap resamples for the 95% intervals.
        seed: bootstrap seed.
        model_path: replace the configuration's model by a local folder (then named in the signature).
        batch_size: sentences per forward pass (at most; long sentences go in smaller length buckets).
        progress: show tqdm bars on long embedding and ranking work.
        bucket: group sentences and pairs by length before padding (the default). False pads fixed-size
            batches in input order as before bucketing; the numbers agree to float rounding and only
            the time differs, which is what benchmarks/bench_scoring.py compares.
    """

    def __init__(
        self,
        scorer: str = "offline",
        device: str = "cpu",
        cache_dir: str | os.PathLike | None = None,
        n_boot: int = 1000,
        seed: int = 0,
        *,
        model_path: str | os.PathLike | None = None,
        batch_size: int = 64,
        progress: bool = True,
        bucket: bool = True,
    ):
        self.config = resolve_config(scorer, model_path)
        self.device = device
        # floats per similarity block in the retrieval matching: ~64 MB on CPU, ~512 MB on an accelerator
        self.match_budget = 1 << 24 if str(device) == "cpu" else 1 << 27
        self.bucket = bucket
        self.encoder = TokenEncoder(self.config, device=device, batch_size=batch_size, bucket=bucket)
        if cache_dir is None:
            from milannotations.paths import scoring_cache_dir

            cache_dir = scoring_cache_dir()
        self.cache = EmbeddingCache(cache_dir)
        self.n_boot = n_boot
        self.seed = seed
        self.progress = progress
        self._baseline = read_baseline(self.config.baseline, self.config.num_layers) if self.config.rescale else None
        self.encoder.load()  # fail now, before any describer runs, if the model is missing

    # ----------------------------------------------------------------- signatures
    def signatures(self, n_refs: int, tied: bool = False) -> dict[str, str]:
        """The signature of every agreement metric for `n_refs` references per unit (`tied`: retrieval
        ties units with the same truth formula)."""
        bert = self.config.signature
        embedding = {
            "bertscore_f1": bert,
            "retrieval_top1": SIGNATURE_TEMPLATE.format(kind="top1", bert=bert) + ("|dup-truth:tie" if tied else ""),
            "retrieval_mrr": SIGNATURE_TEMPLATE.format(kind="mrr", bert=bert) + ("|dup-truth:tie" if tied else ""),
        }
        return {m.name: embedding[m.name] if m.embeddings else m.signature_for(n_refs) for m in AGREEMENT}

    # ----------------------------------------------------------------- embeddings
    def reference_embeddings(self, flat_refs: list[str], revision: str | None) -> list[Embedded]:
        """Token embeddings of the (normalised) reference sentences, from the disk cache when possible.

        Without a revision nothing is written to disk (the in-process memo still avoids re-embedding).
        """
        if revision is None:
            return self.encoder.encode(flat_refs, progress=self.progress)
        key = entry_key(self.config.embed_signature, str(revision), flat_refs)
        items = self.cache.load(key, flat_refs)
        if items is not None:
            self.encoder.remember(flat_refs, items)
            return items
        items = self.encoder.encode(flat_refs, progress=self.progress)
        self.cache.save(
            key, flat_refs, items, {"embed_signature": self.config.embed_signature, "revision": str(revision)}
        )
        return items

    def _weights(self, ref_items: Sequence[Embedded]) -> TokenWeights:
        special = self.encoder.special_ids()
        return TokenWeights([ids for ids, _ in ref_items] if self.config.idf else None, special)

    # ----------------------------------------------------------------- core
    def _parts(
        self,
        preds: list[str],
        refs: list[list[str]],
        ref_items: list[list[Embedded]],
        weights: TokenWeights,
        groups: Sequence[int] | None = None,
    ) -> _Parts:
        offsets = np.cumsum([0] + [len(r) for r in refs])
        flat_items = [item for unit in ref_items for item in unit]
        cand_items = self.encoder.encode(preds, progress=self.progress)

        prf = self._unit_prf(cand_items, flat_items, offsets, weights)

        first = {}  # identical predictions share one similarity row, so their ties are exact
        for i, p in enumerate(preds):
            first.setdefault(p, i)
        row = {p: k for k, p in enumerate(first)}
        pair_f = greedy_matrix(
            [cand_items[i] for i in first.values()],
            flat_items,
            weights,
            budget=self.match_budget,
            progress=self.progress,
            device=self.device,
            clamp=self.config.clamp,
            bucket=self.bucket,
        )
        pair_f = pair_f[[row[p] for p in preds]]
        top1, rr = retrieval_per_unit(tie_groups(unit_similarity(pair_f, offsets), groups))

        # The embedding metrics share the similarity computations above; every other metric comes
        # from its spec: per-unit values, or per-unit statistics of a corpus metric.
        per_unit = {"bertscore_f1": prf[:, 2], "retrieval_top1": top1, "retrieval_mrr": rr}
        stats = {}
        for m in AGREEMENT:
            if m.kind == "corpus":
                stats[m.name] = m.stats(preds, refs)
            elif not m.embeddings:
                per_unit[m.name] = np.asarray(m.per_unit(preds, refs))
        return _Parts(per_unit=per_unit, stats=stats)

    def _unit_prf(self, cand_items, flat_items, offsets, weights) -> np.ndarray:
        """Per unit (P, R, F): each the max over the unit's references, then rescaled if configured."""
        n = len(cand_items)
        pairs = [(i, j) for i in range(n) for j in range(offsets[i], offsets[i + 1])]
        pair_prf = greedy_pairs(
            cand_items, flat_items, weights, pairs, device=self.device, clamp=self.config.clamp, bucket=self.bucket
        )
        prf = np.maximum.reduceat(pair_prf, offsets[:-1], axis=0)
        if self._baseline is not None:
            prf = (prf - self._baseline) / (1 - self._baseline)
        return prf

    def _package(self, parts: list[_Parts], signatures: dict[str, str]) -> dict[str, MetricScore]:
        """Average per-unit values and BLEU over passes (one pass for `score`, one per annotator for `ceiling`)."""
        n = len(next(iter(parts[0].per_unit.values())))
        counts = resample_counts(n, self.n_boot, self.seed)
        return {m.name: summarize(m, [p.stats[m.name] if m.kind == "corpus" else p.per_unit[m.name] for p in parts],
                                  counts, signatures[m.name]) for m in AGREEMENT}

    def _prepare_refs(self, refs: list[list[str]], revision):
        flat = [r for unit in refs for r in unit]
        items = self.reference_embeddings(flat, revision)
        weights = self._weights(items)
        offsets = np.cumsum([0] + [len(r) for r in refs])
        by_unit = [items[offsets[i] : offsets[i + 1]] for i in range(len(refs))]
        return by_unit, weights

    # ----------------------------------------------------------------- public
    def score(
        self,
        predictions: Sequence[str],
        references: Sequence[Sequence[str]],
        revision: str | None = None,
        groups: Sequence[int] | None = None,
    ) -> dict[str, MetricScore]:
        """All agreement metrics of `predictions` (one per unit) against `references` (strings per unit).

        Both sides are normalised as in the paper (lowercase, strip '. '). BERTScore idf comes from all
        references of this call, so scores depend on which units form the test set, as in the paper.
        `revision` (the data fingerprint) keys the on-disk reference-embedding cache. `groups` (synthetic
        units: the index of each unit's truth formula) makes units with the same truth tie in retrieval.
        """
        preds, refs = normalized_inputs(predictions, references)
        reference_streams(refs)  # refuse ragged references before any model work
        by_unit, weights = self._prepare_refs(refs, revision)
        parts = self._parts(preds, refs, by_unit, weights, groups)
        return self._package([parts], self.signatures(len(refs[0]), groups is not None))

    def bertscore(
        self, predictions: Sequence[str], references: Sequence[Sequence[str]], revision: str | None = None
    ) -> dict[str, np.ndarray | str]:
        """BERTScore alone: per-unit `precision`, `recall`, `f1` arrays and the `signature` (no bootstrap).

        The same computation as the `bertscore_f1` entry of `score`, for callers (the `evaluate` module,
        the benchmark) that need only this metric. Reference counts may differ between units here.
        """
        preds, refs = normalized_inputs(predictions, references)
        by_unit, weights = self._prepare_refs(refs, revision)
        offsets = np.cumsum([0] + [len(r) for r in refs])
        cand_items = self.encoder.encode(preds, progress=self.progress)
        prf = self._unit_prf(cand_items, [it for unit in by_unit for it in unit], offsets, weights)
        return {"precision": prf[:, 0], "recall": prf[:, 1], "f1": prf[:, 2], "signature": self.config.signature}

    def ceiling(
        self, references: Sequence[Sequence[str]], revision: str | None = None, groups: Sequence[int] | None = None
    ) -> dict[str, MetricScore]:
        """Human agreement: each annotator's description scored against the other annotators' (leave-one-out).

        For annotator slot a = 0..k-1 the predictions are every unit's a-th description and the
        references its other k-1 descriptions (retrieval ranks against those reduced sets too); values
        are averaged over the k slots, per unit. The ceiling therefore uses k-1 = 2 references where a
        method gets 3, which slightly favours methods on max-over-reference metrics. idf weights come
        from all k references of every unit, the same weights a method is scored with.
        """
        _, refs = normalized_inputs([""] * len(references), references, min_refs=2)
        k = len(reference_streams(refs))
        by_unit, weights = self._prepare_refs(refs, revision)
        parts = []
        for a in range(k):
            preds_a = [unit[a] for unit in refs]
            refs_a = [unit[:a] + unit[a + 1 :] for unit in refs]
            items_a = [unit[:a] + unit[a + 1 :] for unit in by_unit]
            parts.append(self._parts(preds_a, refs_a, items_a, weights, groups))
        suffix = f"|ceiling:leave-one-out,annotators:{k}"
        return self._package(parts, {m: s + suffix for m, s in self.signatures(k - 1, groups is not None).items()})
