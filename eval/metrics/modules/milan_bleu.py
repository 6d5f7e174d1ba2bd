"""evaluate module: the paper's corpus BLEU (sacrebleu, one stream per reference, 13a, exp smoothing).

    bleu = evaluate.load("eval/metrics/modules/milan_bleu.py")
    bleu.compute(predictions=["a dog"], references=[["a dog", "dogs", "an animal"]])
    -> {"score": ..., "precisions": [...], "signature": "nrefs:3|case:mixed|..."}
"""

import evaluate

from eval.metrics.bleu import bleu_from_stats, bleu_signature, bleu_stats, corpus_bleu
from eval.metrics.modules.common import text_metric_info
from eval.metrics.text import normalized_inputs

_DESCRIPTION = "Corpus BLEU as in MILAN (Hernandez et al. 2022): inputs normalised with lower().strip('. '), references transposed into one sacrebleu stream per annotator; ragged reference lists are refused."
_KWARGS = "predictions: list of str, one per unit; references: list of lists of str, the same count for every unit."


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class MilanBleu(evaluate.Metric):
    """sacrebleu corpus BLEU with its signature."""

    def _info(self):
        return text_metric_info(_DESCRIPTION, _KWARGS,
                                citation="Post, A Call for Clarity in Reporting BLEU Scores, WMT 2018")

    def _compute(self, predictions, references):
        preds, refs = normalized_inputs(list(predictions), [list(r) for r in references])
        stats = bleu_stats(preds, refs)
        sums = stats.sum(axis=0)
        precisions = [float(100.0 * c / t) if t else 0.0 for c, t in zip(sums[2:6], sums[6:10])]
        return {
            "score": corpus_bleu(preds, refs),
            "score_from_stats": float(bleu_from_stats(sums)),
            "precisions": precisions,
            "signature": bleu_signature(len(refs[0])),
        }
