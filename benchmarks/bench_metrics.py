"""Caption metrics on the Clotho evaluation split size: the `coco` preset (all but SPICE) cold and warm next to
pycocoevalcap, and the `dcase2024` preset without SPICE with randomly initialised models of the real architectures.

Predictions = caption_1 of each of the 1,045 clips of clotho_captions_evaluation.csv; references = the 5 captions of
another clip (seeded shuffle). Run:

    flock /tmp/bench.lock .venv/bin/python benchmarks/bench_metrics.py                      # coco
    flock /tmp/bench.lock .venv/bin/python benchmarks/bench_metrics.py --preset dcase2024   # dcase2024 without SPICE

`dcase2024` builds, in a temporary folder and outside the timings, a sentence-transformers model with
paraphrase-TinyBERT-L6-v2's architecture (BERT, hidden 768, 6 layers, 12 heads, FFN 3072, mean pooling: its
config.json on the Hub) and a FENSE
checker checkpoint with echecker_clotho_audiocaps_base's (bert-base-uncased: hidden 768, 12 layers, 12 heads, FFN
3072; 6 outputs), both with 30,522-entry vocabularies and random weights: the work per caption is the real one.
Timings: "cold" is the process's first call (JVM start, model loading, every caption encoded); "second call" scores
other predictions (the first caption of 1,045 development clips: sentences the first call has not seen) against the
same references, as a run's next validation does (reference embeddings are kept per process); the scaling rows score the first N clips with the per-sentence caches emptied.
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


def gemm_rate(m: int = 2048, k: int = 768, n: int = 3072, repeats: int = 10, rounds: int = 5) -> float:
    """FLOP/s of this process's float32 matrix product at a BERT feed-forward's shape (2,048 tokens x 768 -> 3,072),
    the best of `rounds` (the machine's peak; a shared machine's other rounds are slower): what the two BERT models'
    time is bounded by."""
    import torch

    a, b = torch.randn(m, k), torch.randn(k, n)
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(repeats):
            a @ b
        best = max(best, 2 * m * k * n * repeats / (time.perf_counter() - t))
    return best


def bert_flops(tokenizer, sentences, config, max_length: int) -> float:
    """Multiply-add FLOPs of a BERT encoder over `sentences`, unpadded (a lower bound: no padding, and layer norms,
    softmax and GELU not counted): per token and layer, the four attention projections and the two feed-forward
    matrices, plus the attention scores and weighted sum over the sentence's own tokens."""
    h, f, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    lengths = [len(ids) for ids in tokenizer(sentences, truncation=True, max_length=max_length)["input_ids"]]
    dense = 2 * (4 * h * h + 2 * h * f)
    return float(layers * sum(n * (dense + 4 * n * h) for n in lengths))


def bench_dcase2024():
    """`dcase2024` without SPICE (METEOR, CIDEr-D, FER, sentence similarity, FENSE, vocabulary)."""
    import tempfile

    import torch

    sys.path.insert(0, str(ROOT / "tests"))
    from metric_models import BERT_BASE, TINYBERT_L6, save_checker, save_sbert

    from hf_audiocap.metrics import compute_caption_metrics, learned, resolve_metrics

    preds, refs = load()
    with open(DATA.with_name("clotho_captions_development.csv"), newline="", encoding="utf-8") as f:
        train_refs = [[r[f"caption_{i}"] for i in range(1, 6)] for r in csv.DictReader(f)]
    # the next validation's predictions: sentences none of the references are (an evaluation caption would be: the
    # references are other clips' captions, whose embeddings the first call keeps)
    seen = {c for rr in refs for c in rr}
    second = [c for c in dict.fromkeys(rr[0] for rr in train_refs) if c not in seen][: len(preds)]
    wanted = [m for m in resolve_metrics("dcase2024") if m not in ("spice", "spider", "spider_fl")]
    print(f"{len(preds)} clips x {len(refs[0])} references; metrics {wanted}; torch threads {torch.get_num_threads()}; "
          f"os.cpu_count()={os.cpu_count()}, load={os.getloadavg()}")  # fmt: skip
    tmp = Path(tempfile.mkdtemp(prefix="bench_metrics_"))
    words = preds + second + [c for rr in refs for c in rr]
    t = time.perf_counter()
    sbert_dir = save_sbert(tmp / "sbert", words, TINYBERT_L6, vocab_size=30522)
    checker, sha = save_checker(tmp / "checker", words, BERT_BASE, vocab_size=30522)
    build = time.perf_counter() - t
    models = learned.FenseModels(sbert=str(sbert_dir), checker=str(checker), checker_sha256=sha, device="cpu")
    kwargs = {"metrics": wanted, "fense_models": models, "training_references": train_refs}

    t = time.perf_counter()
    out = compute_caption_metrics(preds, refs, **kwargs)
    cold = time.perf_counter() - t
    t = time.perf_counter()
    compute_caption_metrics(second, refs, **kwargs)
    second_call = time.perf_counter() - t

    # profile of a call with empty caches: the Java/n-gram part, then each model alone
    sbert, check, tok = learned.get_models(models)
    prof = {}
    t = time.perf_counter()
    compute_caption_metrics(preds, refs, metrics=["meteor", "cider_d", "vocab"], training_references=train_refs)
    prof["ptb+meteor+cider_d+vocab"] = time.perf_counter() - t
    hyps = [p.lower() for p in preds]
    for model in (sbert, check):
        model._hf_audiocap_text_cache = None
    t = time.perf_counter()
    learned.error_probabilities(check, tok, hyps, models.batch_size)
    prof["checker (1,045 captions)"] = time.perf_counter() - t
    t = time.perf_counter()
    learned.sentence_similarity(sbert, hyps, [[c.lower() for c in rr] for rr in refs], models.batch_size)
    prof["sentence model (6,270 captions)"] = time.perf_counter() - t

    # the floor: the two models' FLOPs on these captions at this process's matrix-product rate
    distinct_refs = list(dict.fromkeys(c.lower() for rr in refs for c in rr))
    sbert_bert = sbert[0].auto_model
    flops = {
        "sentence model, predictions": bert_flops(sbert.tokenizer, hyps, sbert_bert.config, sbert.max_seq_length),
        "sentence model, references": bert_flops(
            sbert.tokenizer, distinct_refs, sbert_bert.config, sbert.max_seq_length
        ),  # fmt: skip
        "checker, predictions": bert_flops(tok, hyps, check.encoder.config, learned.MAX_CHECKER_TOKENS),
    }
    later = [c.lower() for c in second]
    second_flops = bert_flops(sbert.tokenizer, later, sbert_bert.config, sbert.max_seq_length) + bert_flops(
        tok, later, check.encoder.config, learned.MAX_CHECKER_TOKENS
    )
    rate = gemm_rate()
    cold_flops = sum(flops.values())

    scaling = {}
    for n in (261, 522):
        for model in (sbert, check):
            model._hf_audiocap_text_cache = None
        t = time.perf_counter()
        compute_caption_metrics(preds[:n], refs[:n], **kwargs)
        scaling[n] = round(time.perf_counter() - t, 2)
    result = {
        "clips": len(preds),
        "model_build_s (not timed below)": round(build, 1),
        "cold_s (JVM start, model loading, all captions)": round(cold, 2),
        "second_call_s (new predictions, same references)": round(second_call, 2),
        "profile_empty_caches_s": {k: round(v, 2) for k, v in prof.items()},
        "scaling_empty_caches_s (clips: seconds)": scaling,
        "model_tflop (unpadded lower bound)": {k: round(v / 1e12, 2) for k, v in flops.items()},
        "gemm_gflop_per_s (float32, 2048x768 @ 768x3072)": round(rate / 1e9, 1),
        "floor_s (model FLOPs / matrix-product rate)": {
            "cold": round(cold_flops / rate, 1),
            "second call": round(second_flops / rate, 1),
        },
        "achieved_gflop_per_s (profile)": {
            "checker": round(flops["checker, predictions"] / prof["checker (1,045 captions)"] / 1e9, 1),
            "sentence model": round(
                (flops["sentence model, predictions"] + flops["sentence model, references"])
                / prof["sentence model (6,270 captions)"]
                / 1e9,
                1,
            ),
        },
        "load_at_end": os.getloadavg(),
        "scores (random models: meaningless but for the vocabulary)": {
            k: round(v, 4) for k, v in out.items() if isinstance(v, float)
        },
        "vocab": {k: out[k] for k in ("vocab_size", "vocab_references", "vocab_novel")},
    }
    print(json.dumps(result, indent=1))


def main():
    if "--preset" in sys.argv and sys.argv[sys.argv.index("--preset") + 1] == "dcase2024":
        return bench_dcase2024()
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
    from hf_audiocap.metrics import _java, core, scorers

    prof = {}
    t = time.perf_counter()
    hyps, toks = core._tokenize_corpus(preds, refs)
    prof["ptb"] = time.perf_counter() - t
    t = time.perf_counter()
    corpus = scorers.CorpusNgrams(hyps, toks)
    prof["ngrams"] = time.perf_counter() - t
    t = time.perf_counter()
    scorers.bleu_scores(corpus)
    prof["bleu"] = time.perf_counter() - t
    t = time.perf_counter()
    _java.get_backend().meteor(hyps, toks)
    prof["meteor"] = time.perf_counter() - t
    t = time.perf_counter()
    scorers.rouge_l(hyps, toks)
    prof["rouge_l"] = time.perf_counter() - t
    t = time.perf_counter()
    scorers.cider_d(corpus)
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
