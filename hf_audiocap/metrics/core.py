"""Caption metrics the COCO-caption way (PTB tokenization, BLEU-1..4, METEOR, ROUGE-L, CIDEr-D, SPICE, SPIDEr), and
the DCASE ones (FENSE, FER, SPIDEr-FL, vocabulary).

Every number equals what pycocoevalcap 1.2's scorers give when run the standard way (``PTBTokenizer().tokenize`` on
references and predictions, then each scorer's ``compute_score``), within 1e-6 (BLEU, ROUGE-L, METEOR: exactly):

* tokenization: pycocoevalcap's Stanford PTBTokenizer jar with its options and punctuation removal, run in the
  process's single JVM (see :mod:`hf_audiocap.metrics._java`), predictions and references in one exchange;
* METEOR: meteor-1.5.jar ``-l en -norm`` in the same JVM (corpus score = METEOR's aggregate, as pycocoevalcap);
* BLEU, ROUGE-L, CIDEr-D: numpy / bit-parallel re-implementations of pycocoevalcap's Python scorers;
* SPICE: pycocoevalcap's ``spice-1.0.jar`` with Stanford CoreNLP 3.6.0 from the metrics cache, run on any Java 8+
  (:mod:`hf_audiocap.metrics._spice`); ``hf-audiocap metrics download`` fetches the jars (an online evaluation too);
  without them SPICE, SPIDEr and SPIDEr-FL are reported unavailable with the reason;
* FENSE, FER, SPIDEr-FL and the sentence similarity as aac-metrics defines them (:mod:`hf_audiocap.metrics.learned`).

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

from . import _java, _spice, scorers

logger = logging.getLogger("hf_audiocap.metrics")

# what pycocoevalcap.tokenizer.ptbtokenizer removes after tokenization
PTB_PUNCTUATIONS = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";"]
)
_LINE_BREAKS = re.compile("[\n\r\x0b\x0c\u2028\u2029]")

COCO_NAMES = ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "meteor", "rouge_l", "cider_d", "spice", "spider")
LEARNED_NAMES = ("sbert_sim", "fer", "fense", "spider_fl")
VOCAB_NAMES = ("vocab_size", "vocab_references", "vocab_ratio", "vocab_novel", "mean_length")
METRIC_NAMES = COCO_NAMES + LEARNED_NAMES + VOCAB_NAMES
SCORE_NAMES = COCO_NAMES  # the COCO-caption scores (the `coco` preset)
_GROUPS = {"bleu": ("bleu_1", "bleu_2", "bleu_3", "bleu_4"), "vocab": VOCAB_NAMES}
# named sets of metrics: `coco` is pycocoevalcap's (the default); `dcase2024` what DCASE 2024 task 6 reports
# (aac-metrics' preset of that name: METEOR, SPIDEr-FL with CIDEr-D, SPICE, SPIDEr and FER, FENSE with its
# sentence similarity, vocabulary)
PRESETS = {
    "coco": COCO_NAMES,
    "dcase2024": ("meteor", "cider_d", "spice", "spider", "spider_fl", "fer", "sbert_sim", "fense", "vocab"),
}
_ALWAYS = ("vocab_size", "mean_length")  # reported whatever is asked


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


def resolve_metrics(metrics=None) -> list[str]:
    """The metric names a selection stands for: None (the ``coco`` preset), a preset name (``coco``, ``dcase2024``), a
    metric or group name (``bleu``, ``vocab``), names joined by commas, or a list of any of these. Raises
    :class:`CaptionMetricsInputError` (one line, listing what is known) on an unknown name."""
    if metrics is None:
        metrics = ["coco"]
    elif isinstance(metrics, str):
        metrics = [m.strip() for m in metrics.split(",") if m.strip()]
    elif not isinstance(metrics, Sequence):
        raise CaptionMetricsInputError(
            f"metrics must be a preset, a metric name or a list, got {type(metrics).__name__}"
        )
    out: list[str] = []
    for m in metrics:
        if not isinstance(m, str):
            raise CaptionMetricsInputError(f"metric names are strings, got {type(m).__name__}")
        names = PRESETS.get(m, (m,))
        for name in [x for n in names for x in _GROUPS.get(n, (n,))]:
            if name not in METRIC_NAMES:
                raise CaptionMetricsInputError(
                    f"unknown metric or preset {m!r}; presets: {', '.join(PRESETS)}; metrics: "
                    f"{', '.join(METRIC_NAMES)}; groups: {', '.join(_GROUPS)}"
                )
            if name not in out:
                out.append(name)
    if not out:
        raise CaptionMetricsInputError("no metric selected (empty metrics)")
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


# -------------------------------------------------------------------------------------------------- availability
_WARNED: set[str] = set()


def spice_available() -> bool:
    """Whether SPICE (hence SPIDEr) can be computed here: Java, and the CoreNLP 3.6.0 jars in the metrics cache."""
    return _spice.spice_missing_reason() is None


def main_metric() -> str:
    """The model-selection metric: ``"spider"`` when SPICE is available, else ``"cider_d"``."""
    return "spider" if spice_available() else "cider_d"


def _warn_once(names: list[str], reason: str) -> None:
    """One line for the metrics one reason leaves out, once per process (each validation of a run asks again)."""
    if reason not in _WARNED:
        _WARNED.add(reason)
        logger.warning("%s unavailable: %s", ", ".join(names), reason)


def _learned_models(fense_models, need_sbert: bool):
    """(sentence model or None, checker, tokenizer, None) or (None, None, None, reason) for sbert/checker problems."""
    from . import learned

    models = fense_models or learned.FenseModels.from_env()
    try:
        sbert, checker, tokenizer = learned.get_models(models, need_sbert=need_sbert)
    except learned.ModelUnavailable as err:
        return None, None, None, str(err)
    return sbert, checker, tokenizer, None


def unavailable_metrics(metrics=None, *, fense_models=None, training_references=None) -> dict[str, str]:
    """``{name: one-line reason}`` for the selected metrics that cannot be computed here (SPICE without Java or its
    jars, FENSE without its models, ``vocab_novel`` without training references), without scoring anything. Online,
    missing resources are fetched first, as an evaluation would."""
    wanted = resolve_metrics(metrics)
    out: dict[str, str] = {}
    if any(n in wanted for n in ("spice", "spider", "spider_fl")):
        reason = _spice.spice_missing_reason()
        if reason:
            out.update({n: reason for n in ("spice", "spider", "spider_fl") if n in wanted})
    if any(n in wanted for n in LEARNED_NAMES):
        *_, reason = _learned_models(fense_models, need_sbert=any(n in wanted for n in ("sbert_sim", "fense")))
        if reason:
            out.update({n: reason for n in LEARNED_NAMES if n in wanted and n not in out})
    if "vocab_novel" in wanted and training_references is None:
        out["vocab_novel"] = _NOVEL_REASON
    return out


_NOVEL_REASON = "needs the training references (training_references=...)"
_KNOWN_WORDS: dict[int, tuple[tuple, frozenset]] = {}


def _training_words(training_references) -> frozenset:
    """The PTB words of the training references, tokenized once per process for a given set (each validation of a
    run asks again)."""
    flat = tuple(r for rr in training_references for r in rr)
    key = hash(flat)
    if key not in _KNOWN_WORDS or _KNOWN_WORDS[key][0] != flat:
        _KNOWN_WORDS.clear()  # one training set at a time
        _KNOWN_WORDS[key] = (flat, frozenset(w for r in ptb_tokenize(list(flat)) for w in r.split()))
    return _KNOWN_WORDS[key][1]


def check_metric(name: str, metrics=None, **kwargs) -> None:
    """Raise ValueError (one line) unless ``name`` (``eval_`` prefix allowed; ``loss`` and ``perplexity`` pass) is a
    metric of the selection that can be computed here: what ``metric_for_best_model`` may name."""
    name = name.removeprefix("eval_")
    if name in ("loss", "perplexity"):
        return
    wanted = resolve_metrics(metrics)
    if name not in wanted:
        raise ValueError(
            f"metric_for_best_model: {name!r} is not computed by metrics {metrics!r} (it computes {', '.join(wanted)}, "
            "loss and perplexity)"
        )
    reason = unavailable_metrics([name], **kwargs).get(name)
    if reason:
        raise ValueError(f"metric_for_best_model: {name} is unavailable here: {reason}")


# -------------------------------------------------------------------------------------------------- public API
def compute_caption_metrics(
    predictions: list[str],
    references: list[list[str]],
    *,
    metrics: Sequence[str] | str | None = None,
    training_references: list[list[str]] | None = None,
    fense_models=None,
    per_clip: bool = False,
) -> dict:
    """Score one predicted caption per clip against that clip's reference captions.

    Args:
        predictions: one caption per clip (an empty string is valid, scores 0 on the n-gram metrics, and is named in
            one warning line).
        references: for each clip, a non-empty list of reference captions.
        metrics: a preset (``coco``: BLEU-1..4, METEOR, ROUGE-L, CIDEr-D, SPICE, SPIDEr, the default; ``dcase2024``:
            METEOR, CIDEr-D, SPICE, SPIDEr, SPIDEr-FL, FER, sentence similarity, FENSE, vocabulary), metric names
            (``bleu_1..bleu_4`` or ``bleu``, ``meteor``, ``rouge_l``, ``cider_d``, ``spice``, ``spider``, ``sbert_sim``,
            ``fer``, ``fense``, ``spider_fl``, ``vocab`` or its members), a list of these, or names joined by commas.
        training_references: the training split's references, for ``vocab_novel``.
        fense_models: :class:`hf_audiocap.metrics.learned.FenseModels` (default: the published models, or the
            environment's overrides).
        per_clip: also return ``per_clip``: ``{name: [value per clip]}`` for the selected metrics that have one
            (BLEU-1..4: each clip's sentence BLEU, pycocoevalcap's per-image list; METEOR: its segment scores; ROUGE-L,
            CIDEr-D, SPICE, SPIDEr, sbert_sim, FER, FENSE, SPIDEr-FL: the values the corpus mean is taken over), by-products
            of the corpus scores (nothing is scored twice).

    Returns:
        ``{name: float}`` for the requested scores (corpus level, pycocoevalcap conventions: BLEU is corpus BLEU,
        METEOR its aggregate, ROUGE-L / CIDEr-D / SPICE the mean over clips, ``spider = (cider_d + spice) / 2``; the
        learned metrics as aac-metrics: means over clips), plus ``vocab_size`` (distinct words over the PTB-tokenized
        predictions), ``mean_length`` (their mean word count) and ``unavailable``: ``{name: one-line reason}`` for
        scores that could not be computed here (their value is None), e.g. SPICE without its CoreNLP jars. The
        ``vocab`` group adds ``vocab_references`` (distinct words of all references), ``vocab_ratio`` (``vocab_size``
        over it) and ``vocab_novel`` (prediction words absent from ``training_references``).

    Raises:
        CaptionMetricsInputError (a ValueError): length mismatch, empty reference list, non-string entry (the message
        names the index), unknown metric or preset.
    """
    wanted = resolve_metrics(metrics)
    preds, refs = _validate(predictions, references)
    empty = [i for i, p in enumerate(preds) if not p.strip()]
    if empty:
        logger.warning(
            "%d empty prediction(s) (first: predictions[%d]): each scores 0 on the n-gram metrics",
            len(empty),
            empty[0],
        )
    hyps, tok_refs = _tokenize_corpus(preds, refs)
    result: dict = {}
    clip: dict[str, np.ndarray] = {}
    unavailable: dict[str, str] = {}

    def skip(names, reason: str) -> None:
        names = [n for n in names if n in wanted and n not in unavailable]
        if names:
            _warn_once(names, reason)
        for name in names:
            result[name] = None
            unavailable[name] = reason

    need_cider = any(n in wanted for n in ("cider_d", "spider", "spider_fl"))
    need_ngrams = need_cider or any(n.startswith("bleu") for n in wanted)
    corpus = scorers.CorpusNgrams(hyps, tok_refs) if need_ngrams else None
    if any(n.startswith("bleu") for n in wanted):
        b, per_clip_bleu = scorers.bleu_scores(corpus)
        for k in range(4):
            if f"bleu_{k + 1}" in wanted:
                result[f"bleu_{k + 1}"] = float(b[k])
                clip[f"bleu_{k + 1}"] = per_clip_bleu[:, k]
    if "meteor" in wanted:
        result["meteor"], segments = _java.get_backend().meteor(hyps, tok_refs)
        clip["meteor"] = np.asarray(segments)
    if "rouge_l" in wanted:
        result["rouge_l"], clip["rouge_l"] = scorers.rouge_l(hyps, tok_refs)
    if need_cider:
        cider, clip["cider_d"] = scorers.cider_d(corpus)
        if "cider_d" in wanted:
            result["cider_d"] = cider

    # SPICE, then SPIDEr = (CIDEr-D + SPICE) / 2, per clip and corpus
    if any(n in wanted for n in ("spice", "spider", "spider_fl")):
        reason = _spice.spice_missing_reason()
        if reason is None:
            try:
                spice, clip["spice"] = _spice.spice(hyps, tok_refs)
            except Exception as e:  # a failing SPICE run must not lose the other scores
                reason = f"SPICE failed: {type(e).__name__}: {e}".splitlines()[0]
        if reason is not None:  # SPIDEr-FL is SPIDEr penalised: it goes with SPICE, in the same line
            skip(("spice", "spider", "spider_fl"), reason)
        else:
            clip["spider"] = (clip["cider_d"] + clip["spice"]) / 2
            if "spice" in wanted:
                result["spice"] = spice
            if "spider" in wanted:
                result["spider"] = (cider + spice) / 2

    # learned: sentence similarity, fluency errors, FENSE, SPIDEr-FL
    if any(n in wanted for n in LEARNED_NAMES) and not all(n in unavailable for n in LEARNED_NAMES if n in wanted):
        from . import learned

        models = fense_models or learned.FenseModels.from_env()
        sbert, checker, tokenizer, reason = _learned_models(models, any(n in wanted for n in ("sbert_sim", "fense")))
        if reason is not None:
            skip(LEARNED_NAMES, reason)
        else:
            has_error = (
                learned.error_probabilities(checker, tokenizer, hyps, models.batch_size) > learned.ERROR_THRESHOLD
            )
            clip["fer"] = has_error.astype(np.float64)
            if sbert is not None:
                clip["sbert_sim"] = learned.sentence_similarity(sbert, hyps, tok_refs, models.batch_size)
                clip["fense"] = learned.penalize(clip["sbert_sim"], clip["fer"])
            if "spider" in clip:
                clip["spider_fl"] = learned.penalize(clip["spider"], clip["fer"])
            for name in LEARNED_NAMES:
                if name in wanted and name in clip:
                    result[name] = float(np.mean(clip[name]))

    # vocabulary (aac-metrics' `vocab`: words split on white space after PTB tokenization)
    words = [h.split() for h in hyps]
    vocab = {w for ws in words for w in ws}
    result["vocab_size"] = len(vocab)
    result["mean_length"] = float(np.mean([len(ws) for ws in words]))
    if "vocab_references" in wanted or "vocab_ratio" in wanted:
        n_refs = len({w for rr in tok_refs for r in rr for w in r.split()})
        if "vocab_references" in wanted:
            result["vocab_references"] = n_refs
        if "vocab_ratio" in wanted:
            result["vocab_ratio"] = len(vocab) / n_refs if n_refs else 0.0
    if "vocab_novel" in wanted:
        if training_references is None:
            skip(("vocab_novel",), _NOVEL_REASON)
        else:
            result["vocab_novel"] = len(vocab - _training_words(training_references))
    result["unavailable"] = unavailable
    if per_clip:
        result["per_clip"] = {k: [float(x) for x in v] for k, v in clip.items() if k in wanted}
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
    score = scorers.cider_d(scorers.CorpusNgrams(cands, sets))[0]
    return float(score) if not math.isnan(score) else 0.0


def spider_max(candidates: list[list[str]], references: list[list[str]], *, spice_scores=None) -> dict:
    """SPIDEr-max (aac-metrics' ``spider_max``): for each clip the highest SPIDEr among its candidate captions (an
    n-best list), and the mean of those over clips.

    Each candidate is scored as it would be as the corpus's prediction for its clip: CIDEr-D's document frequencies
    (and log corpus size) come from the clips' reference sets only, and SPICE is per caption, so a candidate's score
    does not depend on the other candidates. All candidates are therefore scored in one pass (one PTB tokenization,
    one SPICE run, CIDEr-D with :class:`scorers.DocumentFrequencies` of the references), which equals aac-metrics'
    one pass per candidate rank. Clips may have different numbers of candidates (aac-metrics requires equal
    numbers): a shorter list is padded with its own first candidate, which cannot change its maximum.

    Returns ``{"spider_max": float, "per_clip": {"spider_max": [...], "best_candidate": [index per clip]},
    "unavailable": {}}``, or ``{"spider_max": None, "unavailable": {"spider_max": reason}}`` when SPICE cannot run
    here (its one-line reason, said once per process, as :func:`compute_caption_metrics`). ``spice_scores``: stands
    in for :func:`hf_audiocap.metrics._spice.spice` (tests).
    """
    if isinstance(candidates, str) or not isinstance(candidates, Sequence):
        raise CaptionMetricsInputError("candidates must be a list (one per clip) of lists of strings")
    for i, cands in enumerate(candidates):
        if isinstance(cands, str) or not isinstance(cands, Sequence) or not cands:
            raise CaptionMetricsInputError(f"candidates[{i}] must be a non-empty list of strings")
        for j, c in enumerate(cands):
            if not isinstance(c, str):
                raise CaptionMetricsInputError(f"candidates[{i}][{j}] is {type(c).__name__}, expected str")
    _, refs = _validate([c[0] for c in candidates], references)
    reason = _spice.spice_missing_reason()
    if reason is not None:
        _warn_once(["spider_max"], reason)
        return {"spider_max": None, "unavailable": {"spider_max": reason}}
    k = max(len(c) for c in candidates)
    flat = [c for cands in candidates for c in [*cands, *[cands[0]] * (k - len(cands))]]  # clip-major
    hyps, tok_refs = _tokenize_corpus(flat, refs)  # the references once, with the candidates: one JVM exchange
    repeated = [rr for rr in tok_refs for _ in range(k)]
    _, cider = scorers.cider_d(
        scorers.CorpusNgrams(hyps, repeated),
        document_frequencies=scorers.DocumentFrequencies.from_references(tok_refs),
    )
    try:
        _, spice = (spice_scores or _spice.spice)(hyps, repeated)
    except Exception as e:  # as compute_caption_metrics: one line, the rest of the report carries on
        reason = f"SPICE failed: {type(e).__name__}: {e}".splitlines()[0]
        _warn_once(["spider_max"], reason)
        return {"spider_max": None, "unavailable": {"spider_max": reason}}
    spider = ((np.asarray(cider) + np.asarray(spice)) / 2).reshape(len(candidates), k)
    best = spider.max(axis=1)
    return {
        "spider_max": float(np.mean(best)),
        "per_clip": {
            "spider_max": [float(x) for x in best],
            "best_candidate": [int(i) for i in spider.argmax(axis=1)],
        },
        "unavailable": {},
    }
