"""SynthCaps: a deterministic procedural audio-captioning benchmark in the Clotho on-disk layout.

Every clip (3-10 s, 16 kHz mono, 16-bit PCM WAV) mixes 1 to 3 synthesised sound sources over pink or brown
background noise. Everything a caption says is audible: the sources themselves (15 spectro-temporal signatures), the
number of discrete events (once / twice / three times), loudness and its change (real gain envelopes), pitch (real
frequency changes), tempo (real event rates) and the temporal relation of the sources (``then`` = sequential and
non-overlapping, ``while`` = overlapping, ``in the background`` = a quieter continuous source under a foreground one).

Each clip gets 5 captions of 6-20 words, drawn from a weighted grammar (a consensus core with variation, like human
annotators). Validation and test hold multi-source combinations (unordered sets of source types) never seen in
training; every single source still appears in training, alone and in combinations.

Layout written by :func:`generate_synthcaps` (the same as Clotho, so the same loader reads it)::

    DIR/{train,validation,test}/synthcaps_{split}_{index:05d}.wav
    DIR/clotho_captions_{split}.csv             file_name,caption_1,...,caption_5
    DIR/synthcaps_ground_truth_{split}.jsonl    one JSON object per clip (sources, attributes, timing, relation)
    DIR/synthcaps_info.json                     seed, arguments, generator version, source catalogue

Default sizes (those of ``make demo``): 6000 train, 200 validation, 200 test clips.
The same seed and arguments give byte-identical files, whatever the number of workers.
"""

from hf_audiocap.data.synthcaps.captions import CAPTIONS_PER_CLIP, MAX_WORDS, MIN_WORDS, make_captions
from hf_audiocap.data.synthcaps.catalogue import CATALOGUE, SOURCE_NAMES, SOURCES, SourceSpec
from hf_audiocap.data.synthcaps.generate import (
    DEFAULT_NUM_TEST,
    DEFAULT_NUM_TRAIN,
    DEFAULT_NUM_VALIDATION,
    GENERATOR_VERSION,
    SPLITS,
    add_arguments,
    check_generated_with,
    default_workers,
    file_name_for,
    generate_clip,
    generate_synthcaps,
    main_from_args,
)
from hf_audiocap.data.synthcaps.scenes import MAX_DURATION, MIN_DURATION, combination_split, split_combinations

# Scene-sampling steps that tests drive one at a time.
from hf_audiocap.data.synthcaps.scenes import _combos_by_size as _combos_by_size
from hf_audiocap.data.synthcaps.scenes import _pick_combo as _pick_combo
from hf_audiocap.data.synthcaps.scenes import _plan_scene as _plan_scene
from hf_audiocap.data.synthcaps.scoring import load_ground_truth, named_sources, score_sources
from hf_audiocap.data.synthcaps.synthesis import SAMPLE_RATE, min_window, synthesize_source

# The one caption normaliser, shared with the metrics: SynthCaps counts words and finds source names with it.
from hf_audiocap.metrics.text import caption_words as caption_words
from hf_audiocap.metrics.text import normalize_caption as normalize_caption

__all__ = [
    "CAPTIONS_PER_CLIP",
    "CATALOGUE",
    "DEFAULT_NUM_TEST",
    "DEFAULT_NUM_TRAIN",
    "DEFAULT_NUM_VALIDATION",
    "GENERATOR_VERSION",
    "MAX_DURATION",
    "MAX_WORDS",
    "MIN_DURATION",
    "MIN_WORDS",
    "SAMPLE_RATE",
    "SOURCES",
    "SOURCE_NAMES",
    "SPLITS",
    "SourceSpec",
    "add_arguments",
    "check_generated_with",
    "combination_split",
    "default_workers",
    "file_name_for",
    "generate_clip",
    "generate_synthcaps",
    "load_ground_truth",
    "main_from_args",
    "make_captions",
    "min_window",
    "named_sources",
    "score_sources",
    "split_combinations",
    "synthesize_source",
]
