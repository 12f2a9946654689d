"""Caption metrics: BLEU-1..4, METEOR, ROUGE-L, CIDEr-D, SPICE, SPIDEr computed the COCO-caption way; FENSE, FER,
SPIDEr-FL and vocabulary as aac-metrics (presets ``coco`` and ``dcase2024``).

Only this package knows pycocoevalcap and Java. One JVM per process (in-process, JPype) serves PTB tokenization and
METEOR for every call; see :mod:`hf_audiocap.metrics.core` for the exact conventions.
"""

from __future__ import annotations

from pathlib import Path

from .core import (
    METRIC_NAMES,
    PRESETS,
    SCORE_NAMES,
    CaptionMetricsInputError,
    check_metric,
    cider_d_leave_one_out,
    compute_caption_metrics,
    main_metric,
    ptb_tokenize,
    resolve_metrics,
    spice_available,
    unavailable_metrics,
)
from .text import caption_words, normalize_caption

CAPTION_METRIC_DIR = Path(__file__).resolve().parent / "caption_metrics"


def load_caption_metric(**kwargs):
    """The ``evaluate`` module of these metrics, loaded from the package folder (works offline)."""
    import evaluate

    return evaluate.load(str(CAPTION_METRIC_DIR), **kwargs)


__all__ = [
    "CAPTION_METRIC_DIR",
    "METRIC_NAMES",
    "PRESETS",
    "SCORE_NAMES",
    "CaptionMetricsInputError",
    "check_metric",
    "caption_words",
    "cider_d_leave_one_out",
    "compute_caption_metrics",
    "load_caption_metric",
    "main_metric",
    "normalize_caption",
    "ptb_tokenize",
    "resolve_metrics",
    "spice_available",
    "unavailable_metrics",
]
