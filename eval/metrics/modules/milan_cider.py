"""evaluate module: CIDEr-D with document frequencies from the call's references (see eval.metrics.cider)."""

import evaluate

from eval.metrics.cider import SIGNATURE, cider_d_per_unit
from eval.metrics.modules.common import text_metric_info
from eval.metrics.text import normalized_inputs

_DESCRIPTION = "CIDEr-D (n=1..4, sigma=6, clipped, x10), document frequency over the units' references."
_KWARGS = "predictions: list of str; references: list of lists of str."


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class MilanCider(evaluate.Metric):
    def _info(self):
        return text_metric_info(
            _DESCRIPTION, _KWARGS, citation="Vedantam et al., CIDEr: Consensus-based Image Description Evaluation, CVPR 2015")

    def _compute(self, predictions, references):
        preds, refs = normalized_inputs(list(predictions), [list(r) for r in references])
        per_unit = cider_d_per_unit(preds, refs)
        return {"cider": sum(per_unit) / len(per_unit), "per_unit": per_unit, "signature": SIGNATURE}
