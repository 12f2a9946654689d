"""Caption metrics (all but SPICE) on the Clotho evaluation split size, cold and warm, next to pycocoevalcap.

Predictions = caption_1 of each of the 1,045 clips of clotho_captions_evaluation.csv; references = the 5 captions of
another clip (seeded shuffle). Run: ``flock /tmp/bench.lock .venv/bin/python benchmarks/bench_metrics.py``.
"""

import csv
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "clotho" / "clotho_captions_evaluation.csv"
METRICS = ["bleu", "meteor", "rouge_l", "cider_d"]


def load():
    with open(DATA, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    preds = [r["caption_1"] for r in rows]
    refs = [[r[f"caption_{i}"] for i in range(1, 6)] for r in rows]
    random.Random(0).shuffle(refs)
    return preds, refs


def pycocoevalcap_standard(preds, refs, meteor=None):
    """The standard path: PTBTokenizer().tokenize (a java per call) then each scorer."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    gts = {i: [{"caption": c} for c in rr] for i, rr in enumerate(refs)}
    res = {i: [{"caption": p}] for i, p in enumerate(preds)}
    times = {}
    t = time.perf_counter()
    tok = PTBTokenizer()
    g, r = tok.tokenize(gts), tok.tokenize(res)
    times["ptb"] = time.perf_counter() - t
    out = {}
    for name, make in [("bleu", lambda: Bleu(4)), ("meteor", lambda m=meteor: m or Meteor()), ("rouge_l", Rouge),
                       ("cider_d", Cider)]:  # fmt: skip
        t = time.perf_counter()
        scorer = make()
        with open(os.devnull, "w") as devnull:
            stdout, sys.stdout = sys.stdout, devnull
            try:
                out[name] = scorer.compute_score(g, r)[0]
            finally:
                sys.stdout = stdout
        times[name] = time.perf_counter() - t
        if name == "meteor":
            meteor = scorer
    return out, times, meteor


def main():
    preds, refs = load()
    print(f"{len(preds)} clips x {len(refs[0])} references; os.cpu_count()={os.cpu_count()}, load={os.getloadavg()}")
    from hf_audiocap.metrics import compute_caption_metrics

    t = time.perf_counter()
    ours = compute_caption_metrics(preds, refs, metrics=METRICS)
    cold = time.perf_counter() - t
    warm = []
    for _ in range(6):
        t = time.perf_counter()
        compute_caption_metrics(preds, refs, metrics=METRICS)
        warm.append(time.perf_counter() - t)

    # per-stage profile of one warm call
    from hf_audiocap.metrics import _java, _scorers, core

    prof = {}
    t = time.perf_counter()
    hyps, toks = core._tokenize_corpus(preds, refs)
    prof["ptb"] = time.perf_counter() - t
    t = time.perf_counter()
    corpus = _scorers.CorpusNgrams(hyps, toks)
    prof["ngrams"] = time.perf_counter() - t
    t = time.perf_counter()
    _scorers.bleu(corpus)
    prof["bleu"] = time.perf_counter() - t
    t = time.perf_counter()
    _java.get_backend().meteor(hyps, toks)
    prof["meteor"] = time.perf_counter() - t
    t = time.perf_counter()
    _scorers.rouge_l(hyps, toks)
    prof["rouge_l"] = time.perf_counter() - t
    t = time.perf_counter()
    _scorers.cider_d(corpus)
    prof["cider_d"] = time.perf_counter() - t

    t = time.perf_counter()
    ref_scores, ref_cold_times, meteor = pycocoevalcap_standard(preds, refs)
    ref_cold = time.perf_counter() - t
    t = time.perf_counter()
    _, ref_warm_times, _ = pycocoevalcap_standard(preds, refs, meteor)
    ref_warm = time.perf_counter() - t
    diff = max(abs(ours[k if k != "bleu" else "bleu_4"] - v if k != "bleu" else abs(ours["bleu_4"] - v[3]))
               for k, v in ref_scores.items())  # fmt: skip
    result = {
        "clips": len(preds),
        "hf_audiocap_cold_s": round(cold, 3),
        "hf_audiocap_warm_s": [round(w, 3) for w in warm],
        "hf_audiocap_warm_median_s": round(statistics.median(warm), 3),
        "hf_audiocap_warm_profile_s": {k: round(v, 3) for k, v in prof.items()},
        "pycocoevalcap_cold_s": round(ref_cold, 3),
        "pycocoevalcap_cold_profile_s": {k: round(v, 3) for k, v in ref_cold_times.items()},
        "pycocoevalcap_warm_meteor_s": round(ref_warm, 3),
        "pycocoevalcap_warm_profile_s": {k: round(v, 3) for k, v in ref_warm_times.items()},
        "max_abs_diff_vs_pycocoevalcap": diff,
        "scores": {k: round(v, 6) for k, v in ours.items() if isinstance(v, float)},
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
