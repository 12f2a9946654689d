"""`recipes/evaluate.py`: scoring a saved model (captions generated) or a predictions file against a split."""

from __future__ import annotations

import csv
import json
import logging
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
from recipe_helpers import REPO_ROOT, shared_tiny_run


@pytest.fixture(scope="module")
def trained():
    return shared_tiny_run()


def run_evaluate(argv):
    import runpy

    module = runpy.run_path(str(REPO_ROOT / "recipes" / "evaluate.py"), run_name="recipes_evaluate")
    from hf_audiocap.metrics.report import evaluate_main

    return evaluate_main(module["parse_args"](argv))


@pytest.mark.slow
def test_evaluate_a_saved_model(trained, tmp_path):
    data, model = trained
    metrics = run_evaluate(
        [
            "--model",
            str(model),
            "--dataset",
            "synthcaps",
            "--dataset_path",
            str(data),
            "--split",
            "test",
            "--output_dir",
            str(tmp_path),
            "--batch_size",
            "4",
        ]
    )
    for key in ("cider_d", "bleu_4", "meteor", "cider_d_references", "source_recall", "source_precision"):
        assert key in metrics, key
    written = json.loads((tmp_path / "evaluate_test_metrics.json").read_text())
    assert written == pytest.approx(metrics)
    rows = [json.loads(line) for line in (tmp_path / "evaluate_test_predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 6
    # the same greedy captions as the training run's own test pass (same model, same generation config)
    trained_rows = {
        r["id"]: r["prediction"] for r in map(json.loads, (model / "test_predictions.jsonl").read_text().splitlines())
    }
    assert {r["id"]: r["prediction"] for r in rows} == trained_rows

    # the repetition control from the command line: no caption names a content word twice
    from hf_audiocap.generation import has_repeated_content_word

    controlled = tmp_path / "controlled"
    run_evaluate(["--model", str(model), "--dataset", "synthcaps", "--dataset_path", str(data), "--split", "test",
                  "--output_dir", str(controlled), "--no_repeat_content_words", "true"])  # fmt: skip
    rows = [json.loads(line) for line in (controlled / "evaluate_test_predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and not any(has_repeated_content_word(r["prediction"]) for r in rows)


def test_evaluate_a_predictions_file(trained, tmp_path):
    data, _ = trained
    refs = [json.loads(line) for line in (trained[1] / "test_predictions.jsonl").read_text().splitlines()]
    preds = tmp_path / "preds.jsonl"
    # predict each clip's first reference (`caption` is accepted as well as `prediction`)
    preds.write_text("".join(json.dumps({"id": r["id"], "caption": r["references"][0]}) + "\n" for r in refs))
    metrics = run_evaluate(
        ["--predictions", str(preds), "--dataset", "synthcaps", "--dataset_path", str(data), "--split", "test"]
    )
    assert metrics["bleu_4"] > 0.9 and metrics["cider_d"] > 1.0, metrics
    assert metrics["source_recall"] > 0.8
    assert (tmp_path / "evaluate_test_metrics.json").is_file()  # default output: beside the predictions
    assert (tmp_path / "evaluate_test_predictions.jsonl").is_file()
    with open(tmp_path / "evaluate_test_per_caption.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and {r["corpus"] for r in rows} == {"synthcaps"}
    assert sum(float(r["cider_d"]) for r in rows) / 6 == pytest.approx(metrics["cider_d"], abs=1e-9)
    assert ("spice" in rows[0]) == ("spice" in metrics) and "spider_max" not in rows[0]  # computed ones only


def test_evaluate_with_selected_metrics(trained, tmp_path, caplog, monkeypatch):
    data, _ = trained
    refs = [json.loads(line) for line in (trained[1] / "test_predictions.jsonl").read_text().splitlines()]
    preds = tmp_path / "preds.jsonl"
    preds.write_text("".join(json.dumps({"id": r["id"], "prediction": r["references"][0]}) + "\n" for r in refs))
    argv = ["--predictions", str(preds), "--dataset", "synthcaps", "--dataset_path", str(data), "--split", "test"]
    monkeypatch.setattr("hf_audiocap.metrics.core._WARNED", set())  # said once per process: maybe by an earlier test
    with caplog.at_level(logging.WARNING, logger="hf_audiocap.metrics"):
        metrics = run_evaluate([*argv, "--metrics", "cider_d,vocab"])
    assert {"cider_d", "vocab_size", "vocab_references", "vocab_ratio", "vocab_novel"} <= set(metrics)
    assert "bleu_4" not in metrics and "meteor" not in metrics
    assert not [r.getMessage() for r in caplog.records if "unavailable" in r.getMessage()]
    with caplog.at_level(logging.WARNING, logger="hf_audiocap.metrics"):  # no training split: said, once
        run_evaluate([*argv, "--metrics", "cider_d,vocab", "--train_split", "none"])
    said = [r.getMessage() for r in caplog.records if "unavailable" in r.getMessage()]
    assert said == ["vocab_novel unavailable: needs the training references (training_references=...)"]
    saved = json.loads((tmp_path / "evaluate_test_metrics.json").read_text())
    assert saved["cider_d"] == pytest.approx(metrics["cider_d"])
    before = (tmp_path / "evaluate_test_metrics.json").read_bytes()
    with pytest.raises(ValueError, match="unknown metric or preset 'fensee'"):
        run_evaluate([*argv, "--metrics", "fensee"])
    assert (tmp_path / "evaluate_test_metrics.json").read_bytes() == before  # nothing rewritten


def test_missing_predictions_are_an_error(trained, tmp_path):
    data, _ = trained
    preds = tmp_path / "preds.jsonl"
    preds.write_text(json.dumps({"id": "synthcaps_test_00000.wav", "prediction": "a dog barks"}) + "\n")
    with pytest.raises(ValueError, match=r"no prediction for 5 of 6 clips"):
        run_evaluate(["--predictions", str(preds), "--dataset", "synthcaps", "--dataset_path", str(data)])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prediction": "x"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:1: expected a JSON object with `id`"):
        run_evaluate(["--predictions", str(bad), "--dataset", "synthcaps", "--dataset_path", str(data)])


def test_command_line_error_is_one_line(trained, tmp_path):
    data, _ = trained
    preds = tmp_path / "preds.jsonl"
    preds.write_text("")
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "recipes" / "evaluate.py"),
            "--predictions",
            str(preds),
            "--dataset",
            "synthcaps",
            "--dataset_path",
            str(data),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("evaluate.py: error: ")
    assert "no prediction for 6 of 6 clips" in proc.stderr


def test_model_and_predictions_are_exclusive():
    with pytest.raises(SystemExit):
        run_evaluate(["--model", "m", "--predictions", "p"])


CLIPS = {"id": ["a.wav", "b.wav"], "captions": [["a dog barks"], ["rain falls"]]}


def test_report_writer_leaves_no_half_written_file(tmp_path, monkeypatch):
    """The one report writer (train.py's test report, evaluate.py's): each file is replaced whole or not at all."""
    from hf_audiocap.metrics.report import write_report

    predictions_path, metrics_path = write_report(tmp_path, "x", CLIPS, ["p1", "p2"], {"cider_d": 1.5, "note": "s"})
    assert json.loads(metrics_path.read_text()) == {"cider_d": 1.5}  # numbers only
    rows = [json.loads(line) for line in predictions_path.read_text().splitlines()]
    assert rows == [
        {"id": "a.wav", "prediction": "p1", "references": ["a dog barks"]},
        {"id": "b.wav", "prediction": "p2", "references": ["rain falls"]},
    ]
    before = {p.name: p.read_text() for p in tmp_path.iterdir()}

    def interrupted(fd):  # Ctrl-C (or a full disk) after the new predictions are written, before they are synced
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(os, "fsync", interrupted)
        with pytest.raises(KeyboardInterrupt):
            write_report(tmp_path, "x", CLIPS, ["new 1", "new 2"], {"cider_d": 0.5})
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == before  # intact, no temporary file left

    replaced = []

    def replace_once(src, dst):  # the predictions are renamed into place, then the run dies
        if replaced:
            raise OSError("disk gone")
        replaced.append(dst)
        os.rename(src, dst)

    with monkeypatch.context() as m:
        m.setattr(os, "replace", replace_once)
        with pytest.raises(OSError, match="disk gone"):
            write_report(tmp_path, "x", CLIPS, ["new 1", "new 2"], {"cider_d": 0.5})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x_metrics.json", "x_per_caption.csv", "x_predictions.jsonl"]
    assert "new 2" in predictions_path.read_text() and metrics_path.read_text() == before["x_metrics.json"]


def test_train_test_report_goes_through_the_report_writer(tmp_path, monkeypatch):
    """recipes/train.py's test report: the trainer's `test_` metrics plus the split scores, written by the main
    process with the same atomic writer as evaluate.py, keys without the prefix."""
    from hf_audiocap.metrics import report
    from hf_audiocap.training.builders import evaluate_test_split

    class Trainer:
        last_predictions = ["a dog barks", "wind"]

        def evaluate(self, clips, metric_key_prefix, generate=True):
            assert metric_key_prefix == "test"
            return {"test_cider_d": 2.5, "test_loss": 1.25}

        def is_world_process_zero(self):
            return True

        def pop_callback(self, callback):  # evaluate_test_split drops early stopping first (Trainer's public API)
            return None

    written = []
    atomic = report.write_atomic
    monkeypatch.setattr(report, "write_atomic", lambda path, text: written.append(path) or atomic(path, text))
    data_args = SimpleNamespace(dataset="clotho", dataset_path=str(tmp_path), test_split="test", extra_test_splits=[])
    metrics = evaluate_test_split(Trainer(), CLIPS, data_args, tmp_path / "run")
    assert metrics == {"test_cider_d": 2.5, "test_loss": 1.25}  # one reference per clip: no leave-one-out score
    run = tmp_path / "run"
    assert written == [run / "test_predictions.jsonl", run / "test_per_caption.csv", run / "test_metrics.json"]
    assert (run / "test_per_caption.csv").read_text().splitlines()[0] == "id,corpus,style,prediction,references"
    assert json.loads((tmp_path / "run" / "test_metrics.json").read_text()) == {"cider_d": 2.5, "loss": 1.25}


def test_evaluate_candidates_spider_max(trained, tmp_path, monkeypatch):
    """A predictions file with an n-best list per clip: SPIDEr-max beside SPIDEr (SPICE stood in for: no jars here)."""
    from hf_audiocap.metrics import _spice

    monkeypatch.setattr(_spice, "spice_missing_reason", lambda fetch=None: None)
    monkeypatch.setattr(_spice, "spice", lambda hyps, refs: (0.5, [0.5] * len(hyps)))
    data, _ = trained
    refs = [json.loads(line) for line in (trained[1] / "test_predictions.jsonl").read_text().splitlines()]
    preds = tmp_path / "preds.jsonl"
    preds.write_text("".join(json.dumps({"id": r["id"], "candidates": ["a sound", r["references"][0]]}) + "\n"
                             for r in refs))  # fmt: skip
    argv = ["--predictions", str(preds), "--dataset", "synthcaps", "--dataset_path", str(data), "--split", "test"]
    metrics = run_evaluate([*argv, "--metrics", "cider_d,spice,spider"])
    assert metrics["spider_max"] > metrics["spider"]
    with open(tmp_path / "evaluate_test_per_caption.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert {r["best_candidate"] for r in rows} == {"1"} and {r["prediction"] for r in rows} == {"a sound"}
    assert sum(float(r["spider_max"]) for r in rows) / 6 == pytest.approx(metrics["spider_max"], abs=1e-9)


def test_vocab_novel_reads_the_training_split(trained, tmp_path):
    """vocab_novel (the dcase2024 set) compares the captions with the training split's references: the dataset's usual
    one by default, another by --train_split, none with --train_split none."""
    data, _ = trained
    preds = tmp_path / "preds.jsonl"
    rows = [json.loads(line) for line in (trained[1] / "test_predictions.jsonl").read_text().splitlines()]
    preds.write_text("".join(json.dumps({"id": r["id"], "prediction": "zyzzyva " + r["prediction"]}) + "\n"
                             for r in rows))  # fmt: skip
    args = ["--predictions", str(preds), "--dataset", "synthcaps", "--dataset_path", str(data), "--split", "test",
            "--output_dir", str(tmp_path), "--metrics", "cider_d,vocab_novel"]  # fmt: skip
    assert run_evaluate(args)["vocab_novel"] >= 1  # "zyzzyva" is in no training caption
    assert "vocab_novel" not in run_evaluate(args + ["--train_split", "none"])
    with pytest.raises(ValueError, match=r"^--train_split nope: "):
        run_evaluate(args + ["--train_split", "nope"])
