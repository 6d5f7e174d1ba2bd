"""evaluate module: CIDEr-D with document frequencies from the call's references (see eval.metrics.cider)."""

import datasets
import evaluate

from eval.metrics.cider import SIGNATURE, cider_d_per_unit
from eval.metrics.text import normalized_inputs

_DESCRIPTION = "CIDEr-D (n=1..4, sigma=6, clipped, x10), document frequency over the units' references."
_KWARGS = "predictions: list of str; references: list of lists of str."


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class MilanCider(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Vedantam et al., CIDEr: Consensus-based Image Description Evaluation, CVPR 2015",
            inputs_description=_KWARGS,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Sequence(datasets.Value("string"))}
            ),
        )

    def _compute(self, predictions, references):
        preds, refs = normalized_inputs(list(predictions), [list(r) for r in references])
        per_unit = cider_d_per_unit(preds, refs)
        return {"cider": sum(per_unit) / len(per_unit), "per_unit": per_unit, "signature": SIGNATURE}
