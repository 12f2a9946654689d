"""Caption metrics (BLEU-1..4, METEOR, ROUGE-L, CIDEr-D, SPICE, SPIDEr) computed the COCO-caption way.

Only this package knows pycocoevalcap and Java. One JVM per process (in-process, JPype) serves PTB tokenization and
METEOR for every call; see :mod:`hf_audiocap.metrics.core` for the exact conventions.
"""

from __future__ import annotations

from pathlib import Path

from .core import (
    SCORE_NAMES,
    CaptionMetricsInputError,
    cider_d_leave_one_out,
    compute_caption_metrics,
    main_metric,
    ptb_tokenize,
    spice_available,
)
from .text import caption_words, normalize_caption

CAPTION_METRIC_DIR = Path(__file__).resolve().parent / "caption_metrics"


def load_caption_metric(**kwargs):
    """The ``evaluate`` module of these metrics, loaded from the package folder (works offline)."""
    import evaluate

    return evaluate.load(str(CAPTION_METRIC_DIR), **kwargs)


__all__ = [
    "CAPTION_METRIC_DIR",
    "SCORE_NAMES",
    "CaptionMetricsInputError",
    "caption_words",
    "cider_d_leave_one_out",
    "compute_caption_metrics",
    "load_caption_metric",
    "main_metric",
    "normalize_caption",
    "ptb_tokenize",
    "spice_available",
]
