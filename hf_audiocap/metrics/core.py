"""Caption metrics the COCO-caption way (PTB tokenization, BLEU-1..4, METEOR, ROUGE-L, CIDEr-D, SPICE, SPIDEr).

Every number equals what pycocoevalcap 1.2's scorers give when run the standard way (``PTBTokenizer().tokenize`` on
references and predictions, then each scorer's ``compute_score``), within 1e-6 (BLEU, ROUGE-L, METEOR: exactly):

* tokenization: pycocoevalcap's Stanford PTBTokenizer jar with its options and punctuation removal, run in the
  process's single JVM (see :mod:`hf_audiocap.metrics._java`), predictions and references in one exchange;
* METEOR: meteor-1.5.jar ``-l en -norm`` in the same JVM (corpus score = METEOR's aggregate, as pycocoevalcap);
* BLEU, ROUGE-L, CIDEr-D: numpy / bit-parallel re-implementations of pycocoevalcap's Python scorers;
* SPICE: pycocoevalcap's SPICE when its Stanford CoreNLP 3.6.0 jars are present, else reported unavailable (never
  downloaded).

One deviation, only where pycocoevalcap itself breaks: line breaks inside a caption (``\\r``, ``\\v``, ``\\f``,
U+2028, U+2029; pycocoevalcap only replaces ``\\n``) become spaces, where pycocoevalcap would misalign every later
caption with its tokens.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence

import numpy as np

from . import _java, _scorers

logger = logging.getLogger("hf_audiocap.metrics")

# what pycocoevalcap.tokenizer.ptbtokenizer removes after tokenization
PTB_PUNCTUATIONS = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";"]
)
_LINE_BREAKS = re.compile("[\n\r\x0b\x0c\u2028\u2029]")

SCORE_NAMES = ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "meteor", "rouge_l", "cider_d", "spice", "spider")
_GROUPS = {"bleu": ("bleu_1", "bleu_2", "bleu_3", "bleu_4")}


class CaptionMetricsInputError(ValueError):
    """Bad predictions / references given to the caption metrics."""


# -------------------------------------------------------------------------------------------------- validation
def _validate(predictions, references) -> tuple[list[str], list[list[str]]]:
    if isinstance(predictions, str) or not isinstance(predictions, Sequence):
        raise CaptionMetricsInputError(f"predictions must be a list of strings, got {type(predictions).__name__}")
    if isinstance(references, str) or not isinstance(references, Sequence):
        raise CaptionMetricsInputError(
            f"references must be a list of lists of strings, got {type(references).__name__}"
        )
    if len(predictions) != len(references):
        i = min(len(predictions), len(references))
        missing = (
            f"references[{i}] has no prediction" if len(references) > i else f"predictions[{i}] has no references"
        )
        raise CaptionMetricsInputError(
            f"got {len(predictions)} predictions but {len(references)} reference lists: {missing}"
        )
    if not predictions:
        raise CaptionMetricsInputError("no predictions to score (empty list)")
    for i, p in enumerate(predictions):
        if not isinstance(p, str):
            raise CaptionMetricsInputError(f"predictions[{i}] is {type(p).__name__}, expected str")
    refs = []
    for i, rr in enumerate(references):
        if isinstance(rr, str) or not isinstance(rr, Sequence):
            raise CaptionMetricsInputError(f"references[{i}] is {type(rr).__name__}, expected a list of strings")
        if len(rr) == 0:
            raise CaptionMetricsInputError(f"references[{i}] is empty: every clip needs at least one reference")
        for j, r in enumerate(rr):
            if not isinstance(r, str):
                raise CaptionMetricsInputError(f"references[{i}][{j}] is {type(r).__name__}, expected str")
        refs.append(list(rr))
    return list(predictions), refs


def _resolve(metrics) -> list[str]:
    if metrics is None:
        return list(SCORE_NAMES)
    if isinstance(metrics, str):
        metrics = [metrics]
    out: list[str] = []
    for m in metrics:
        names = _GROUPS.get(m, (m,))
        for n in names:
            if n not in SCORE_NAMES:
                raise CaptionMetricsInputError(f"unknown metric {m!r}; choose from {', '.join(SCORE_NAMES)} or 'bleu'")
            if n not in out:
                out.append(n)
    return out


# -------------------------------------------------------------------------------------------------- tokenization
def _clean(caption: str) -> str:
    return _LINE_BREAKS.sub(" ", caption)


def _strip_punct(line: str) -> str:
    # exactly pycocoevalcap's post-processing of one PTB output line
    return " ".join([w for w in line.rstrip().split(" ") if w not in PTB_PUNCTUATIONS])


def ptb_tokenize(captions: list[str]) -> list[str]:
    """pycocoevalcap's PTB tokenization (lower-cased, punctuation removed) of each caption, in one JVM exchange."""
    lines = _java.get_backend().ptb_lines([_clean(c) for c in captions])
    return [_strip_punct(line) for line in lines]


def _tokenize_corpus(predictions: list[str], references: list[list[str]]) -> tuple[list[str], list[list[str]]]:
    flat = [r for rr in references for r in rr]
    toks = ptb_tokenize(list(predictions) + flat)
    hyps, rest = toks[: len(predictions)], toks[len(predictions) :]
    refs, k = [], 0
    for rr in references:
        refs.append(rest[k : k + len(rr)])
        k += len(rr)
    return hyps, refs


# -------------------------------------------------------------------------------------------------- SPICE
_SPICE_WARNED = False


def spice_available() -> bool:
    """Whether SPICE (hence SPIDEr) can be computed here: its Stanford CoreNLP 3.6.0 jars are installed."""
    return _java.spice_missing_reason() is None


def main_metric() -> str:
    """The model-selection metric: ``"spider"`` when SPICE is available, else ``"cider_d"``."""
    return "spider" if spice_available() else "cider_d"


def _warn_once(reason: str) -> None:
    global _SPICE_WARNED
    if not _SPICE_WARNED:
        _SPICE_WARNED = True
        logger.warning("spice/spider not computed: %s", reason)


# -------------------------------------------------------------------------------------------------- public API
def compute_caption_metrics(
    predictions: list[str], references: list[list[str]], *, metrics: Sequence[str] | str | None = None
) -> dict:
    """Score one predicted caption per clip against that clip's reference captions.

    Args:
        predictions: one caption per clip (an empty string is valid and scores 0).
        references: for each clip, a non-empty list of reference captions.
        metrics: subset of ``bleu_1..bleu_4`` (or ``"bleu"``), ``meteor``, ``rouge_l``, ``cider_d``, ``spice``,
            ``spider``; default all.

    Returns:
        ``{name: float}`` for the requested scores (corpus level, pycocoevalcap conventions: BLEU is corpus BLEU,
        METEOR its aggregate, ROUGE-L / CIDEr-D / SPICE the mean over clips, ``spider = (cider_d + spice) / 2``), plus
        ``vocab_size`` (distinct words over the PTB-tokenized predictions), ``mean_length`` (their mean word count) and
        ``unavailable``: ``{name: one-line reason}`` for scores that could not be computed here (their value is
        None), e.g. SPICE without its CoreNLP jars.

    Raises:
        CaptionMetricsInputError (a ValueError): length mismatch, empty reference list, non-string entry; the message
        names the index.
    """
    preds, refs = _validate(predictions, references)
    wanted = _resolve(metrics)
    hyps, tok_refs = _tokenize_corpus(preds, refs)
    result: dict = {}
    unavailable: dict[str, str] = {}

    need_ngrams = any(n.startswith("bleu") for n in wanted) or any(n in wanted for n in ("cider_d", "spider"))
    corpus = _scorers.CorpusNgrams(hyps, tok_refs) if need_ngrams else None
    if any(n.startswith("bleu") for n in wanted):
        b = _scorers.bleu(corpus)
        for k in range(4):
            if f"bleu_{k + 1}" in wanted:
                result[f"bleu_{k + 1}"] = float(b[k])
    if "meteor" in wanted:
        result["meteor"] = _java.get_backend().meteor(hyps, tok_refs)[0]
    if "rouge_l" in wanted:
        result["rouge_l"] = _scorers.rouge_l(hyps, tok_refs)[0]
    cider = None
    if "cider_d" in wanted or "spider" in wanted:
        cider = _scorers.cider_d(corpus)[0]
        if "cider_d" in wanted:
            result["cider_d"] = cider
    if "spice" in wanted or "spider" in wanted:
        reason = _java.spice_missing_reason()
        spice = None
        if reason is None:
            gts = dict(enumerate(tok_refs))
            res = {i: [h] for i, h in enumerate(hyps)}
            try:
                spice = _java.spice(gts, res)
            except Exception as e:  # a failing SPICE run must not lose the other scores
                reason = f"SPICE failed: {type(e).__name__}: {e}".splitlines()[0]
        if reason is not None:
            _warn_once(reason)
            for name in ("spice", "spider"):
                if name in wanted:
                    result[name] = None
                    unavailable[name] = reason if name == "spice" else f"needs SPICE: {reason}"
        else:
            if "spice" in wanted:
                result["spice"] = spice
            if "spider" in wanted:
                result["spider"] = (cider + spice) / 2
    words = [h.split() for h in hyps]
    result["vocab_size"] = len({w for ws in words for w in ws})
    result["mean_length"] = float(np.mean([len(ws) for ws in words]))
    result["unavailable"] = unavailable
    return result


def cider_d_leave_one_out(references: list[list[str]]) -> float:
    """The references' own CIDEr-D: each reference scored against the other references of its clip.

    Procedure: PTB-tokenize every reference; build a corpus with one item per (clip, reference j) whose candidate is
    reference j and whose reference set is the clip's other references; score that whole corpus with CIDEr-D, so the
    document frequencies (and log corpus size) are computed over the leave-one-out reference sets of all items; return
    the mean over items. This equals pycocoevalcap's ``Cider().compute_score`` on that flattened corpus. Every clip
    needs at least two references.
    """
    if isinstance(references, str) or not isinstance(references, Sequence) or not references:
        raise CaptionMetricsInputError("references must be a non-empty list of lists of strings")
    for i, rr in enumerate(references):
        if isinstance(rr, str) or not isinstance(rr, Sequence):
            raise CaptionMetricsInputError(f"references[{i}] is {type(rr).__name__}, expected a list of strings")
        if len(rr) < 2:
            raise CaptionMetricsInputError(
                f"references[{i}] has {len(rr)} reference(s): leave-one-out needs at least two"
            )
        for j, r in enumerate(rr):
            if not isinstance(r, str):
                raise CaptionMetricsInputError(f"references[{i}][{j}] is {type(r).__name__}, expected str")
    toks = ptb_tokenize([r for rr in references for r in rr])
    cands, sets, k = [], [], 0
    for rr in references:
        clip = toks[k : k + len(rr)]
        k += len(rr)
        for j in range(len(clip)):
            cands.append(clip[j])
            sets.append(clip[:j] + clip[j + 1 :])
    score = _scorers.cider_d(_scorers.CorpusNgrams(cands, sets))[0]
    return float(score) if not math.isnan(score) else 0.0
