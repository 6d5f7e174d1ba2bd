"""evaluate module: retrieval top-1 and MRR of units by their descriptions (see eval.metrics.retrieval)."""

import datasets
import evaluate

from eval.metrics.scorer import Scorer

_DESCRIPTION = "For each unit, rank all units by BERTScore F of its prediction against their references (max over references); top-1 accuracy and mean reciprocal rank, ties at their expected value (a constant prediction scores chance)."
_KWARGS = "predictions: list of str; references: list of lists of str; device: torch device (default cpu)."

_SCORERS: dict = {}


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class MilanRetrieval(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Sequence(datasets.Value("string"))}
            ),
        )

    def _compute(self, predictions, references, device="cpu"):
        name = self.config_name if self.config_name in ("paper", "offline") else "offline"
        if (name, device) not in _SCORERS:
            _SCORERS[(name, device)] = Scorer(name, device=device, n_boot=1)
        scores = _SCORERS[(name, device)].score(list(predictions), [list(r) for r in references])
        return {
            "top1": scores["retrieval_top1"].value,
            "mrr": scores["retrieval_mrr"].value,
            "signature": scores["retrieval_top1"].signature,
        }
