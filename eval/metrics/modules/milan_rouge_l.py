"""evaluate module: ROUGE-L F1, best reference per unit, mean over units (see eval.metrics.rouge)."""

import evaluate

from eval.metrics.rouge import SIGNATURE, rouge_l_per_unit
from eval.metrics.modules.common import text_metric_info
from eval.metrics.text import normalized_inputs

_DESCRIPTION = "ROUGE-L F1 (LCS of lowercase alphanumeric words), max over each unit's references, mean over units."
_KWARGS = "predictions: list of str; references: list of lists of str."


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class MilanRougeL(evaluate.Metric):
    def _info(self):
        return text_metric_info(_DESCRIPTION, _KWARGS,
                                citation="Lin, ROUGE: A Package for Automatic Evaluation of Summaries, 2004")

    def _compute(self, predictions, references):
        preds, refs = normalized_inputs(list(predictions), [list(r) for r in references])
        per_unit = rouge_l_per_unit(preds, refs)
        return {"rouge_l": sum(per_unit) / len(per_unit), "per_unit": per_unit, "signature": SIGNATURE}
