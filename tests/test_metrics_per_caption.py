"""Per-caption scores (`<stem>_per_caption.csv`) and SPIDEr-max over a clip's candidate captions."""

import csv
import json

import numpy as np
import pytest

pytest.importorskip("jpype")

from hf_audiocap import metrics as M  # noqa: E402
from hf_audiocap.metrics import _spice, core  # noqa: E402
from hf_audiocap.metrics.report import read_prediction_file, write_report  # noqa: E402

CLIPS = {
    "id": ["a.wav", "b.wav", "c.wav"],
    "captions": [["a dog barks loudly", "a dog is barking"], ["rain falls on a roof"], ["a door | closes", "wind"]],
}
PREDS = ["a dog barks loudly", "heavy rain on the roof", "birds sing"]


def test_per_caption_csv_holds_the_scorers_own_per_clip_values(tmp_path):
    from pycocoevalcap.bleu.bleu import Bleu

    scores = M.compute_caption_metrics(PREDS, CLIPS["captions"], metrics="bleu,rouge_l,cider_d", per_clip=True)
    write_report(tmp_path, "test", CLIPS, PREDS, scores, per_clip=scores["per_clip"], corpus="clotho")
    with open(tmp_path / "test_per_caption.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == [
        "id",
        "corpus",
        "style",
        "prediction",
        "references",
        "bleu_1",
        "bleu_2",
        "bleu_3",
        "bleu_4",
        "rouge_l",
        "cider_d",
    ]  # fmt: skip  (metrics not computed: no column)
    assert [r["id"] for r in rows] == CLIPS["id"] and {(r["corpus"], r["style"]) for r in rows} == {("clotho", "")}
    assert [json.loads(r["references"]) for r in rows] == CLIPS["captions"]  # a JSON list: "|" inside is kept
    assert float(rows[0]["bleu_1"]) == pytest.approx(1.0) and float(rows[0]["rouge_l"]) == pytest.approx(1.0)
    cider = [float(r["cider_d"]) for r in rows]
    assert np.mean(cider) == pytest.approx(scores["cider_d"], abs=1e-12)
    # BLEU per clip: pycocoevalcap's per-image list, exactly
    toks = M.ptb_tokenize(PREDS + [c for rr in CLIPS["captions"] for c in rr])
    refs, k = {}, len(PREDS)
    for i, rr in enumerate(CLIPS["captions"]):
        refs[i], k = toks[k : k + len(rr)], k + len(rr)
    _, theirs = Bleu(4).compute_score(refs, {i: [toks[i]] for i in range(len(PREDS))}, verbose=0)
    for n in range(4):
        assert [float(r[f"bleu_{n + 1}"]) for r in rows] == theirs[n]


def _fake_spice(hyps, refs):  # stands in for SPICE (Java and CoreNLP jars): word overlap with the best reference
    scores = np.array([max(len(set(h.split()) & set(r.split())) / max(len(h.split()), 1) for r in rr)
                       for h, rr in zip(hyps, refs)])  # fmt: skip
    return float(np.mean(scores)), scores


def test_spider_max(monkeypatch):
    monkeypatch.setattr(_spice, "spice_missing_reason", lambda fetch=None: None)
    monkeypatch.setattr(_spice, "spice", _fake_spice)
    refs = CLIPS["captions"]
    spider = M.compute_caption_metrics(PREDS, refs, metrics="spider", per_clip=True)
    one = core.spider_max([[p] for p in PREDS], refs)
    assert one["spider_max"] == pytest.approx(spider["spider"], abs=1e-12)
    assert one["per_clip"]["spider_max"] == pytest.approx(spider["per_clip"]["spider"], abs=1e-12)
    # several candidates (a clip may have fewer: padded with its first, which cannot change its maximum)
    cands = [[PREDS[0], "a cat"], [PREDS[1], "rain falls on a roof", "noise"], ["wind", PREDS[2]]]
    out = core.spider_max(cands, refs)
    assert out["spider_max"] > spider["spider"]
    assert out["per_clip"]["best_candidate"] == [0, 1, 0]
    assert all(a >= b - 1e-12 for a, b in zip(out["per_clip"]["spider_max"], spider["per_clip"]["spider"]))
    monkeypatch.setattr(_spice, "spice_missing_reason", lambda fetch=None: "SPICE needs Java")
    assert core.spider_max(cands, refs) == {"spider_max": None, "unavailable": {"spider_max": "SPICE needs Java"}}


def test_predictions_file_candidates(tmp_path):
    path = tmp_path / "p.jsonl"
    rows = [{"id": "a", "candidates": ["x", "y"]}, {"id": "b", "prediction": "z", "candidates": ["y", "z"]},
            {"id": "c", "caption": "w"}]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert read_prediction_file(path) == ({"a": "x", "b": "z", "c": "w"}, {"a": ["x", "y"], "b": ["y", "z"]})
    path.write_text(json.dumps({"id": "a", "prediction": "q", "candidates": ["x"]}) + "\n")
    with pytest.raises(ValueError, match=r"p.jsonl:1: the prediction 'q' is not one of the `candidates`"):
        read_prediction_file(path)
    path.write_text(json.dumps({"id": "a", "candidates": []}) + "\n")
    with pytest.raises(ValueError, match="non-empty list of strings"):
        read_prediction_file(path)
