"""BLEU, ROUGE-L and CIDEr-D on PTB-tokenized captions, vectorised, numerically equal to pycocoevalcap's scorers.

Inputs everywhere: ``hyps`` (one tokenized string per clip) and ``refs`` (a list of tokenized strings per clip), the
strings pycocoevalcap's PTBTokenizer wrapper produces (tokens joined by single spaces, punctuation removed), or any
other word strings (SCST's reward gives :func:`hf_audiocap.metrics.text.normalize_caption`'s).

:func:`cider_d` is the one CIDEr-D of the package: the metric (document frequencies from the evaluated corpus), the
references' leave-one-out score, and SCST's reward (document frequencies from the training references,
:class:`DocumentFrequencies`).

Word splitting follows each pycocoevalcap scorer: BLEU and CIDEr use ``str.split()``, ROUGE-L uses ``str.split(" ")``
(they differ for tokens holding a no-break space, e.g. ``3\\xa01/2``, and for empty strings).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MAX_N = 4
CIDER_SIGMA = 6.0


class NgramTable:
    """All 1..4-grams of a list of sentences, as integer ids.

    For each order ``k`` (1-based) the arrays ``sent[k]``, ``gram[k]``, ``count[k]`` list every (sentence, n-gram) with
    its count, sorted by sentence then gram id; ``n_grams[k]`` is the number of distinct k-grams, and
    :meth:`keys` gives their words.
    """

    def __init__(self, sentences: list[list[str]], max_n: int = MAX_N) -> None:
        vocab: dict[str, int] = {}
        flat = [vocab.setdefault(w, len(vocab)) for words in sentences for w in words]
        lengths = np.fromiter((len(s) for s in sentences), dtype=np.int64, count=len(sentences))
        self.lengths = lengths
        words = np.asarray(flat, dtype=np.int64)
        self._vocab = list(vocab)
        self._words = words
        self._position: dict[int, np.ndarray] = {}  # a position where each k-gram id starts
        sent_of_tok = np.repeat(np.arange(len(sentences), dtype=np.int64), lengths)
        starts = np.zeros(len(sentences), dtype=np.int64)
        if len(sentences):
            starts[1:] = np.cumsum(lengths)[:-1]
        pos_in_sent = np.arange(len(words), dtype=np.int64) - np.repeat(starts, lengths)
        remaining = np.repeat(lengths, lengths) - pos_in_sent  # tokens left from this position, itself included

        self.sent: dict[int, np.ndarray] = {}
        self.gram: dict[int, np.ndarray] = {}
        self.count: dict[int, np.ndarray] = {}
        self.n_grams: dict[int, int] = {}
        prev_ids = words  # id of the (k-1)-gram starting at each position (valid where remaining >= k-1)
        base = max(len(vocab), 1)
        for k in range(1, max_n + 1):
            valid = np.nonzero(remaining >= k)[0]
            if k == 1:
                ids_at = words.copy()
                n_ids = len(vocab)
            else:
                # re-code (id of (k-1)-gram at p, word at p+k-1) densely: no overflow whatever the vocabulary
                pair = prev_ids[valid] * base + words[valid + k - 1]
                uniq, inv = np.unique(pair, return_inverse=True)
                ids_at = np.full(len(words), -1, dtype=np.int64)
                ids_at[valid] = inv
                n_ids = len(uniq)
            key = sent_of_tok[valid] * max(n_ids, 1) + ids_at[valid]
            ukey, cnt = np.unique(key, return_counts=True)
            self.sent[k] = ukey // max(n_ids, 1)
            self.gram[k] = ukey % max(n_ids, 1)
            self.count[k] = cnt.astype(np.int64)
            self.n_grams[k] = n_ids
            position = np.zeros(n_ids, dtype=np.int64)
            position[ids_at[valid]] = valid
            self._position[k] = position
            prev_ids = ids_at

    def keys(self, k: int) -> list[str]:
        """The words of every k-gram, by id, joined by single spaces (words hold no white space: ``str.split``)."""
        if self.n_grams[k] == 0:
            return []
        vocab = np.asarray(self._vocab, dtype=object)
        grams = vocab[self._words[self._position[k][:, None] + np.arange(k)]]
        return [" ".join(g) for g in grams]


def _lookup(keys_sorted: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of each query in ``keys_sorted`` and whether it is there."""
    if len(keys_sorted) == 0:
        return np.zeros(len(query), dtype=np.int64), np.zeros(len(query), dtype=bool)
    idx = np.searchsorted(keys_sorted, query)
    idx_c = np.minimum(idx, len(keys_sorted) - 1)
    return idx_c, keys_sorted[idx_c] == query


class CorpusNgrams:
    """Hypotheses and references of a corpus in one :class:`NgramTable` (hyps first, then refs clip by clip)."""

    def __init__(self, hyps: list[str], refs: list[list[str]]) -> None:
        self.n_clips = len(hyps)
        self.n_refs = np.array([len(r) for r in refs], dtype=np.int64)
        flat_refs = [r for rr in refs for r in rr]
        self.ref_clip = np.repeat(np.arange(self.n_clips, dtype=np.int64), self.n_refs)
        self.table = NgramTable([h.split() for h in hyps] + [r.split() for r in flat_refs])
        # clip of every sentence of the table (hyp i -> i, ref -> its clip)
        self.clip_of = np.concatenate([np.arange(self.n_clips, dtype=np.int64), self.ref_clip])
        self.n_hyp = self.n_clips

    def split(self, k: int):
        """(hyp part, ref part) of order k: each a tuple (sentence index, clip, gram id, count)."""
        t = self.table
        sent, gram, count = t.sent[k], t.gram[k], t.count[k]
        is_hyp = sent < self.n_hyp
        h = (sent[is_hyp], self.clip_of[sent[is_hyp]], gram[is_hyp], count[is_hyp])
        r_sent = sent[~is_hyp]
        r = (r_sent - self.n_hyp, self.clip_of[r_sent], gram[~is_hyp], count[~is_hyp])
        return h, r


# ---------------------------------------------------------------------------------------------------- BLEU
def bleu_scores(corpus: CorpusNgrams, max_n: int = MAX_N) -> tuple[list[float], np.ndarray]:
    """Corpus BLEU-1..4 and each clip's own (an array ``(n_clips, max_n)``), both exactly as
    ``pycocoevalcap.bleu.Bleu(4).compute_score`` (``option='closest'``): its second result, the per-image list, is the
    sentence BLEU of each clip with its own brevity penalty (closest reference length), the same counts summed into
    the corpus score."""
    small, tiny = 1e-9, 1e-15
    lengths = corpus.table.lengths
    testlens = lengths[: corpus.n_hyp]
    reflens = lengths[corpus.n_hyp :]
    # closest reference length of each clip: min over refs of (|l - testlen|, l)
    clip_reflen = np.zeros(corpus.n_clips, dtype=np.int64)
    if corpus.n_clips:
        diff = np.abs(reflens - testlens[corpus.ref_clip])
        key = diff * (int(reflens.max(initial=0)) + 1) + reflens
        bounds = np.concatenate([[0], np.cumsum(corpus.n_refs)[:-1]])
        best = np.minimum.reduceat(key, bounds)
        clip_reflen = best % (int(reflens.max(initial=0)) + 1)
    guess = np.stack([np.maximum(0, testlens - k + 1) for k in range(1, max_n + 1)], axis=1)
    correct = np.zeros((corpus.n_clips, max_n), dtype=np.int64)
    for k in range(1, max_n + 1):
        (_, h_clip, h_gram, h_cnt), (_, r_clip, r_gram, r_cnt) = corpus.split(k)
        g = max(corpus.table.n_grams[k], 1)
        r_key = r_clip * g + r_gram
        order = np.argsort(r_key, kind="stable")
        r_key_s, r_cnt_s = r_key[order], r_cnt[order]
        uk, first = np.unique(r_key_s, return_index=True)
        maxcnt = np.maximum.reduceat(r_cnt_s, first) if len(first) else np.zeros(0, dtype=np.int64)
        idx, found = _lookup(uk, h_clip * g + h_gram)
        clipped = np.where(found, np.minimum(h_cnt, maxcnt[idx] if len(maxcnt) else 0), 0)
        correct[:, k - 1] = np.bincount(h_clip, weights=clipped, minlength=corpus.n_clips).astype(np.int64)

    # pycocoevalcap's formula, each operation as it does it (math.exp: numpy's may differ in the last bit)
    ratio = (testlens + tiny) / (clip_reflen + small)
    per_clip = np.ones((corpus.n_clips, max_n))
    b = np.ones(corpus.n_clips)
    for k in range(max_n):
        b = b * ((correct[:, k] + tiny) / (guess[:, k] + small))
        per_clip[:, k] = b ** (1.0 / (k + 1))
    short = np.nonzero(ratio < 1)[0]
    per_clip[short] *= np.array([math.exp(1 - 1 / r) for r in ratio[short].tolist()]).reshape(-1, 1)
    bleus = []
    b = 1.0
    for k in range(max_n):
        b *= float(int(correct[:, k].sum()) + tiny) / (int(guess[:, k].sum()) + small)
        bleus.append(b ** (1.0 / (k + 1)))
    total = (int(testlens.sum()) + tiny) / (int(clip_reflen.sum()) + small)
    if total < 1:
        for k in range(max_n):
            bleus[k] *= math.exp(1 - 1 / total)
    return bleus, per_clip


# ---------------------------------------------------------------------------------------------------- CIDEr-D
@dataclass(frozen=True)
class DocumentFrequencies:
    """CIDEr-D's idf statistics from a fixed set of clips: for n = 1..4, the number of clips whose reference set holds
    each n-gram (``counts[n - 1]``, keyed by the n-gram's words joined by single spaces), and log(number of clips)."""

    counts: tuple[dict[str, int], ...]
    log_num_clips: float

    @classmethod
    def from_references(cls, refs: list[list[str]], max_n: int = MAX_N) -> DocumentFrequencies:
        """Counted over ``refs`` (tokenized strings per clip) exactly as :func:`cider_d` counts them over the evaluated
        corpus, so ``cider_d(corpus, document_frequencies=DocumentFrequencies.from_references(corpus refs))`` equals
        ``cider_d(corpus)``."""
        if not refs:
            raise ValueError("document frequencies need at least one reference set")
        table = NgramTable([r.split() for rr in refs for r in rr], max_n)
        ref_clip = np.repeat(np.arange(len(refs), dtype=np.int64), [len(rr) for rr in refs])
        counts = []
        for k in range(1, max_n + 1):
            g = max(table.n_grams[k], 1)
            df = np.bincount(np.unique(ref_clip[table.sent[k]] * g + table.gram[k]) % g, minlength=g)
            counts.append(dict(zip(table.keys(k), df.tolist())))
        return cls(tuple(counts), math.log(float(len(refs))))


def cider_d(
    corpus: CorpusNgrams,
    sigma: float = CIDER_SIGMA,
    max_n: int = MAX_N,
    document_frequencies: DocumentFrequencies | None = None,
) -> tuple[float, np.ndarray]:
    """CIDEr-D (corpus mean, per-clip scores), equal to ``pycocoevalcap.cider.Cider().compute_score``.

    pycocoevalcap's class is named ``Cider`` but implements CIDEr-D (Vedantam et al. 2015, sec. 4 / the coco-caption
    and DCASE/aac-metrics definition): tf-idf n-gram vectors (n = 1..4) with document frequencies counted over the
    reference sets of the evaluated corpus (idf = log(#clips) - log(max(1, df))), the candidate's weights clipped by
    the reference's (``min(w_hyp, w_ref) * w_ref``), a gaussian length penalty ``exp(-delta^2 / (2 sigma^2))`` with
    sigma = 6, the mean over n and over references, times 10. Like pycocoevalcap, ``delta`` is the difference of the
    sentences' bigram counts (= word counts for sentences of two words or more).

    ``document_frequencies``: take df and #clips from another set of clips instead of the evaluated corpus (SCST's
    reward counts them once over the training references, as Rennie et al. 2017). A clip without references scores 0.
    """
    n_clips = corpus.n_clips
    n_refs_total = int(corpus.n_refs.sum())
    ref_len = np.log(float(n_clips)) if document_frequencies is None else document_frequencies.log_num_clips
    val = np.zeros((n_refs_total, max_n))
    lengths = corpus.table.lengths
    bigrams = np.maximum(lengths - 1, 0)
    delta = (bigrams[: corpus.n_hyp][corpus.ref_clip] - bigrams[corpus.n_hyp :]).astype(np.float64)
    penalty = np.e ** (-(delta**2) / (2 * sigma**2))
    for k in range(1, max_n + 1):
        (h_sent, h_clip, h_gram, h_cnt), (r_sent, r_clip, r_gram, r_cnt) = corpus.split(k)
        g = max(corpus.table.n_grams[k], 1)
        # document frequency: number of clips whose reference set holds the gram
        if document_frequencies is None:
            df = np.bincount(np.unique(r_clip * g + r_gram) % g, minlength=g).astype(np.float64)
        else:
            known = document_frequencies.counts[k - 1]
            df = np.zeros(g)
            df[: corpus.table.n_grams[k]] = [known.get(key, 0) for key in corpus.table.keys(k)]
        idf = ref_len - np.log(np.maximum(1.0, df))
        w_h = h_cnt.astype(np.float64) * idf[h_gram]
        w_r = r_cnt.astype(np.float64) * idf[r_gram]
        norm_h = np.sqrt(np.bincount(h_sent, weights=w_h**2, minlength=corpus.n_hyp))
        norm_r = np.sqrt(np.bincount(r_sent, weights=w_r**2, minlength=n_refs_total))
        # clipped dot product of each reference with its clip's hypothesis (hyp keys are unique and sorted)
        h_key = h_clip * g + h_gram
        idx, found = _lookup(h_key, r_clip * g + r_gram)
        wh_at = np.where(found, w_h[idx] if len(w_h) else 0.0, 0.0)
        contrib = np.where(found, np.minimum(wh_at, w_r) * w_r, 0.0)
        dot = np.bincount(r_sent, weights=contrib, minlength=n_refs_total)
        denom = norm_h[corpus.ref_clip] * norm_r
        v = np.where(denom != 0, dot / np.where(denom != 0, denom, 1.0), dot)
        val[:, k - 1] = v * penalty
    per_ref_sum = np.zeros((n_clips, max_n))
    np.add.at(per_ref_sum, corpus.ref_clip, val)
    scores = per_ref_sum.mean(axis=1) / np.maximum(corpus.n_refs, 1) * 10.0
    return float(np.mean(scores)) if n_clips else 0.0, scores


# ---------------------------------------------------------------------------------------------------- ROUGE-L
def _lcs(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence (bit-parallel, Hyyro 2004)."""
    if len(a) < len(b):
        a, b = b, a
    masks: dict[str, int] = {}
    for i, x in enumerate(b):
        masks[x] = masks.get(x, 0) | (1 << i)
    full = (1 << len(b)) - 1
    v = full
    for y in a:
        u = v & masks.get(y, 0)
        v = ((v + u) | (v - u)) & full
    return len(b) - v.bit_count()


def rouge_l(hyps: list[str], refs: list[list[str]], beta: float = 1.2) -> tuple[float, np.ndarray]:
    """ROUGE-L (corpus mean, per-clip), equal to ``pycocoevalcap.rouge.Rouge().compute_score``."""
    scores = []
    for hyp, rr in zip(hyps, refs):
        token_c = hyp.split(" ")
        prec, rec = [], []
        for ref in rr:
            token_r = ref.split(" ")
            lcs = _lcs(token_r, token_c)
            prec.append(lcs / float(len(token_c)))
            rec.append(lcs / float(len(token_r)))
        p, r = max(prec), max(rec)
        if p != 0 and r != 0:
            scores.append(((1 + beta**2) * p * r) / float(r + beta**2 * p))
        else:
            scores.append(0.0)
    arr = np.array(scores)
    return float(np.mean(arr)) if len(arr) else 0.0, arr
