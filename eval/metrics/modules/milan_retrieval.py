"""evaluate module: retrieval top-1 and MRR of units by their descriptions (see eval.metrics.retrieval)."""

import evaluate

from eval.metrics.modules.common import cached_scorer, text_metric_info

_DESCRIPTION = "For each unit, rank all units by BERTScore F of its prediction against their references (max over references); top-1 accuracy and mean reciprocal rank, ties at their expected value (a constant prediction scores chance)."
_KWARGS = "predictions: list of str; references: list of lists of str; device: torch device (default cpu)."


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class MilanRetrieval(evaluate.Metric):
    def _info(self):
        return text_metric_info(_DESCRIPTION, _KWARGS)

    def _compute(self, predictions, references, device="cpu"):
        scorer = cached_scorer(self.config_name, device, n_boot=1)
        scores = scorer.score(list(predictions), [list(r) for r in references])
        return {
            "top1": scores["retrieval_top1"].value,
            "mrr": scores["retrieval_mrr"].value,
            "signature": scores["retrieval_top1"].signature,
        }
