"""The caption normaliser: what a caption's words are, wherever Python code counts or matches them.

Used by SCST's CIDEr-D reward (no JVM per training step) and by SynthCaps' source scoring and caption lengths. On plain
English captions it gives the words of the metrics' PTB tokenization after pycocoevalcap's punctuation filter (lower
case, punctuation dropped), except that a clitic stays on its word ("car's", where PTB gives "car 's").

The reported metrics themselves tokenize with pycocoevalcap's PTB tokenizer (:func:`hf_audiocap.metrics.ptb_tokenize`),
and the word-level tokenizer keeps its own rule, saved in each ``tokenizer.json`` (see ``hf_audiocap.tokenization``).
"""

from __future__ import annotations

import re

# A word: letters and digits, optionally followed by one apostrophe clitic ("car's", "don't"). Anything else
# (punctuation, hyphens, stray quotes) separates words.
_WORD = re.compile(r"[^\W_]+(?:'[^\W\d_]+)?")


def caption_words(caption: str) -> list[str]:
    """The lower-cased words of ``caption``, punctuation removed."""
    return _WORD.findall(caption.lower())


def normalize_caption(caption: str) -> str:
    """``caption``'s words joined by single spaces (see :func:`caption_words`)."""
    return " ".join(caption_words(caption))
