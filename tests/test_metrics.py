"""Caption metrics: equality with pycocoevalcap run the standard way, JVM reuse, SPICE offline, evaluate module."""

import csv
import logging
import os
import random

import pytest

pytest.importorskip("jpype")

from hf_audiocap import metrics as M  # noqa: E402
from hf_audiocap.metrics import _java  # noqa: E402

SMALL_PREDS = [
    "A dog barks loudly.",
    "",
    "Rain falls on a tin roof while thunder rumbles",
    "!!!",
    'someone says "hello" and a door closes',
]
SMALL_REFS = [
    ["A dog is barking.", "A loud dog barks repeatedly", "Dogs bark in the distance."],
    ["Birds chirp.", "Birds are singing in the trees"],
    ["Heavy rain on a metal roof with thunder.", "Thunder and rain.", "Rain hits a roof", "A storm rages"],
    ["Silence.", "Nothing much happens"],
    ["A person says hello and shuts a door.", "A door slams after a greeting"],
]


_PYCOCO_METEOR = []


def reference_scores(preds, refs):
    """pycocoevalcap's standard path: PTBTokenizer().tokenize on gts and res, then each scorer."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    gts = {i: [{"caption": c} for c in rr] for i, rr in enumerate(refs)}
    res = {i: [{"caption": p}] for i, p in enumerate(preds)}
    tok = PTBTokenizer()
    g, r = tok.tokenize(gts), tok.tokenize(res)
    out = {}
    bleu, _ = Bleu(4).compute_score(g, r, verbose=0)
    for k in range(4):
        out[f"bleu_{k + 1}"] = bleu[k]
    if not _PYCOCO_METEOR:  # its java child is slow to start: one for the session
        _PYCOCO_METEOR.append(Meteor())
    out["meteor"] = _PYCOCO_METEOR[0].compute_score(g, r)[0]
    out["rouge_l"] = Rouge().compute_score(g, r)[0]
    out["cider_d"] = Cider().compute_score(g, r)[0]
    return out, g, r


@pytest.fixture(scope="session")
def backend():
    """The process's one JVM (started once for the whole test session)."""
    return _java.get_backend()


@pytest.fixture(scope="session")
def clotho(shared_data):
    path = shared_data / "clotho" / "clotho_captions_evaluation.csv"
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))[:300]
    preds = [r["caption_1"] for r in rows]
    same = [[r[f"caption_{i}"] for i in range(2, 6)] for r in rows]
    shuffled = [[r[f"caption_{i}"] for i in range(1, 6)] for r in rows]
    random.Random(0).shuffle(shuffled)
    return preds, same, shuffled


def _assert_equal(ours, theirs):
    for name, value in theirs.items():
        assert ours[name] == pytest.approx(value, abs=1e-6, rel=0), name


def test_small_set_matches_pycocoevalcap(backend):
    ours = M.compute_caption_metrics(SMALL_PREDS, SMALL_REFS)
    theirs, _, _ = reference_scores(SMALL_PREDS, SMALL_REFS)
    _assert_equal(ours, theirs)
    assert set(M.SCORE_NAMES) <= set(ours)


@pytest.mark.parametrize("which", ["same_clip", "shuffled"])
def test_clotho_matches_pycocoevalcap(backend, clotho, which):
    preds, same, shuffled = clotho
    refs = same if which == "same_clip" else shuffled
    ours = M.compute_caption_metrics(preds, refs)
    theirs, g, r = reference_scores(preds, refs)
    _assert_equal(ours, theirs)
    # tokens are byte-identical to pycocoevalcap's (predictions and references tokenized in one exchange here)
    flat = M.ptb_tokenize(preds + [c for rr in refs for c in rr])
    assert flat[: len(preds)] == [r[i][0] for i in range(len(preds))]
    assert flat[len(preds) :] == [c for i in range(len(refs)) for c in g[i]]
    words = [w for i in range(len(preds)) for w in r[i][0].split()]
    assert ours["vocab_size"] == len(set(words))
    assert ours["mean_length"] == pytest.approx(len(words) / len(preds))


def test_cider_d_with_the_corpus_document_frequencies_given():
    """The one CIDEr-D core, df passed in (SCST's way) instead of counted from the evaluated corpus: given the corpus's
    own references, it is pycocoevalcap's CIDEr-D exactly."""
    from pycocoevalcap.cider.cider import Cider

    from hf_audiocap.metrics import scorers

    refs = [["a dog barks", "the dog is barking loudly"], ["a cat meows"], ["birds sing", "birds sing in a tree"]]
    hyps = ["a dog barks loudly", "a cat", "birds sing birds"]
    df = scorers.DocumentFrequencies.from_references(refs)
    ours = scorers.cider_d(scorers.CorpusNgrams(hyps, refs), document_frequencies=df)[1]
    _, expected = Cider().compute_score(dict(enumerate(refs)), {i: [h] for i, h in enumerate(hyps)})
    assert list(ours) == pytest.approx(list(expected), abs=1e-9)


def test_cider_d_is_the_d_variant(backend):
    """pycocoevalcap's `Cider` is CIDEr-D (clipping, sigma=6 length penalty, x10); ours matches it on corner cases."""
    from pycocoevalcap.cider.cider import Cider

    from hf_audiocap.metrics import scorers

    refs = [["a dog barks"], ["a cat meows"], ["birds sing"]]

    def ours(hyps):
        return scorers.cider_d(scorers.CorpusNgrams(hyps, refs))[1]

    base = ours(["a dog barks", "x", "y"])
    assert base[0] == pytest.approx(7.5)  # cosine 1 for n = 1..3, no 4-gram: mean 0.75, x10
    # a repeated n-gram is clipped by the reference weight: repeating 'dog barks' cannot raise the score
    assert ours(["a dog barks dog barks", "x", "y"])[0] < base[0]
    cases = [
        ["a dog barks dog barks", "x", "y"],
        ["a dog barks loudly and long and again", "cat", ""],
        ["dog", "a cat meows a cat meows", "birds sing birds"],
    ]
    for hyps in cases:
        gts = dict(enumerate(refs))
        res = {i: [h] for i, h in enumerate(hyps)}
        _, expected = Cider().compute_score(gts, res)
        assert ours(hyps) == pytest.approx(expected, abs=1e-9)


def test_spice_unavailable_offline(backend, caplog):
    if M.spice_available():
        pytest.skip("SPICE's CoreNLP jars are installed here")
    with caplog.at_level(logging.WARNING, logger="hf_audiocap.metrics"):
        out = M.compute_caption_metrics(SMALL_PREDS, SMALL_REFS)
        M.compute_caption_metrics(SMALL_PREDS, SMALL_REFS)
    assert out["spice"] is None and out["spider"] is None
    assert "CoreNLP 3.6.0" in out["unavailable"]["spice"] and "offline" in out["unavailable"]["spice"]
    assert "spider" in out["unavailable"]
    assert out["cider_d"] > 0 and out["meteor"] > 0
    assert M.main_metric() == "cider_d"
    spice_dir = _java.pycocoevalcap_dir() / "spice" / "lib"
    assert not (spice_dir / "stanford-corenlp-3.6.0.jar").exists()  # nothing was downloaded
    # the warning is logged once per process (maybe already by an earlier test)
    assert sum(r.getMessage().startswith("spice, spider unavailable: ") for r in caplog.records) <= 1


def test_jvm_started_once_and_in_process(backend):
    import jpype

    M.compute_caption_metrics(SMALL_PREDS, SMALL_REFS, metrics=["meteor"])
    calls = backend.meteor_calls
    M.compute_caption_metrics(SMALL_PREDS, SMALL_REFS, metrics=["meteor", "cider_d"])
    assert _java.get_backend() is backend
    assert backend.meteor_calls == calls + 1
    assert jpype.isJVMStarted()
    runtime = jpype.JClass("java.lang.management.ManagementFactory").getRuntimeMXBean()
    assert int(runtime.getPid()) == os.getpid()  # in-process: no java child per call


def test_metric_subset(backend):
    out = M.compute_caption_metrics(SMALL_PREDS, SMALL_REFS, metrics=["bleu", "rouge_l"])
    assert set(out) == {"bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l", "vocab_size", "mean_length", "unavailable"}
    with pytest.raises(ValueError, match="unknown metric or preset 'cider'"):
        M.compute_caption_metrics(SMALL_PREDS, SMALL_REFS, metrics=["cider"])


def test_evaluate_module_offline(backend, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    metric = M.load_caption_metric()
    out = metric.compute(predictions=SMALL_PREDS, references=SMALL_REFS)
    direct = M.compute_caption_metrics(SMALL_PREDS, SMALL_REFS)
    for name in ("bleu_4", "meteor", "rouge_l", "cider_d"):
        assert out[name] == pytest.approx(direct[name], abs=1e-12)
    import evaluate

    again = evaluate.load(str(M.CAPTION_METRIC_DIR))
    again.add_batch(predictions=SMALL_PREDS[:2], references=SMALL_REFS[:2])
    again.add_batch(predictions=SMALL_PREDS[2:], references=SMALL_REFS[2:])
    assert again.compute()["cider_d"] == pytest.approx(direct["cider_d"], abs=1e-12)


def test_leave_one_out_matches_pycocoevalcap(backend, clotho):
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    _, _, refs = clotho
    refs = refs[:100]
    gts, res, k = {}, {}, 0
    for rr in refs:
        for j in range(len(rr)):
            gts[k] = [{"caption": c} for c in rr[:j] + rr[j + 1 :]]
            res[k] = [{"caption": rr[j]}]
            k += 1
    tok = PTBTokenizer()
    expected = Cider().compute_score(tok.tokenize(gts), tok.tokenize(res))[0]
    assert M.cider_d_leave_one_out(refs) == pytest.approx(expected, abs=1e-6)
    with pytest.raises(ValueError, match=r"references\[1\] has 1 reference"):
        M.cider_d_leave_one_out([["a b", "c d"], ["only one"]])


@pytest.mark.parametrize(
    "preds, refs, message",
    [
        (["a", "b"], [["a"]], r"2 predictions but 1 reference lists: predictions\[1\] has no references"),
        (["a"], [["a"], ["b"]], r"references\[1\] has no prediction"),
        (["a", "b"], [["a"], []], r"references\[1\] is empty"),
        (["a", None], [["a"], ["b"]], r"predictions\[1\] is NoneType"),
        (["a", "b"], [["a"], ["b", 3]], r"references\[1\]\[1\] is int"),
        (["a", "b"], [["a"], "b"], r"references\[1\] is str"),
        ([], [], "no predictions"),
    ],
)
def test_bad_inputs(preds, refs, message):
    with pytest.raises(ValueError, match=message):
        M.compute_caption_metrics(preds, refs)


def test_empty_prediction_scores_zero(backend):
    out = M.compute_caption_metrics(
        [""], [["a dog barks", "a dog is barking"]], metrics=["cider_d", "rouge_l", "meteor"]
    )
    assert out["cider_d"] == 0 and out["rouge_l"] == 0 and out["meteor"] == 0
    assert out["mean_length"] == 0 and out["vocab_size"] == 0


def test_line_breaks_inside_captions(backend):
    """A caption with \\r or U+2028 would shift pycocoevalcap's token lines; here it stays one caption."""
    toks = M.ptb_tokenize(["a dog\rbarks.", "rain\u2028falls", "wind"])
    assert toks == ["a dog barks", "rain falls", "wind"]
