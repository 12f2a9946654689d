"""`evaluate` module for hf_audiocap's caption metrics: ``evaluate.load("<path to this folder>")`` (works offline).

BLEU-1..4, METEOR, ROUGE-L, CIDEr-D, SPICE and SPIDEr the COCO-caption way (pycocoevalcap), and FENSE, FER,
SPIDEr-FL and vocabulary as aac-metrics (presets ``coco`` and ``dcase2024``), via
``hf_audiocap.metrics.compute_caption_metrics``.
"""

import datasets
import evaluate

from hf_audiocap.metrics import compute_caption_metrics

_DESCRIPTION = """\
Audio/image captioning metrics computed as pycocoevalcap does: PTB tokenization, corpus BLEU-1..4, METEOR 1.5,
ROUGE-L, CIDEr-D (sigma 6, clipped, x10), SPICE and SPIDEr = (CIDEr-D + SPICE) / 2 (preset `coco`, the default);
preset `dcase2024`: METEOR, CIDEr-D, SPICE, SPIDEr, SPIDEr-FL, FER, sentence similarity, FENSE and vocabulary. A metric
that cannot be computed here (SPICE without its CoreNLP 3.6.0 jars, FENSE without its models: `hf-audiocap metrics
download`) is None, with a one-line reason under `unavailable`.
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions: list of str, one generated caption per clip.
    references: list of list of str, the reference captions of each clip (at least one).
    metrics: a preset ("coco", "dcase2024") or metric names (a list, or joined by commas).
    training_references: optional list of list of str, the training split's references (for vocab_novel).
Returns:
    dict with the selected metrics, vocab_size, mean_length, unavailable.
Example:
    >>> metric = evaluate.load("hf_audiocap/metrics/caption_metrics")
    >>> metric.compute(predictions=["a dog barks"], references=[["a dog is barking", "a dog barks loudly"]])
"""

_CITATION = """\
@inproceedings{vedantam2015cider, title={CIDEr: Consensus-based image description evaluation},
  author={Vedantam, Ramakrishna and Zitnick, C. Lawrence and Parikh, Devi}, booktitle={CVPR}, year={2015}}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class CaptionMetrics(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Value("string"),
                    "references": datasets.Sequence(datasets.Value("string")),
                }
            ),
            reference_urls=["https://github.com/salaniz/pycocoevalcap"],
        )

    def _compute(self, predictions, references, metrics=None, training_references=None):
        return compute_caption_metrics(
            list(predictions), [list(r) for r in references], metrics=metrics, training_references=training_references
        )
