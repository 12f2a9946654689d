"""Smoke runs of the real training entry point (`recipes/train.py`'s `main`) on a tiny generated SynthCaps with a
tiny model: the output folder is a complete Hub repository, evaluation reports loss/perplexity/caption metrics, the
loss falls, and each training option (non-grouped captions, label smoothing, SpecAugment + mixup, early stopping,
TensorBoard, resuming, self-critical fine-tuning) runs."""

from __future__ import annotations

import csv
import json
import math
import shutil

import pytest
import transformers
import yaml
from recipe_helpers import log_history, make_synthcaps, recipe_main, shared_tiny_run, tiny_run_args, train_losses


@pytest.fixture(scope="module")
def main_run():
    return shared_tiny_run()


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return make_synthcaps(tmp_path_factory.mktemp("synthcaps"))


@pytest.mark.slow  # the shared 16-step run (with the first JVM start of the metrics) is set up here
def test_output_folder_is_a_complete_hub_repository(main_run):
    _, out = main_run
    names = {p.name for p in out.iterdir()}
    expected = {
        "model.safetensors",
        "config.json",
        "generation_config.json",
        "configuration_audiocap.py",
        "modeling_audiocap.py",
        "encoders_audiocap.py",
        "processing_audiocap.py",
        "feature_extraction_audiocap.py",
        "processor_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "README.md",
        "test_metrics.json",
        "test_predictions.jsonl",
        "test_per_caption.csv",
        "training_curves.png",
        "eval_samples.jsonl",
    }
    assert expected <= names, sorted(expected - names)
    assert "pytorch_model.bin" not in names
    config = json.loads((out / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_audiocap.AudioCapConfig",
        "AutoModelForSpeechSeq2Seq": "modeling_audiocap.AudioCapForConditionalGeneration",
    }
    processor_config = json.loads((out / "processor_config.json").read_text())
    assert processor_config["auto_map"]["AutoProcessor"] == "processing_audiocap.AudioCapProcessor"
    assert processor_config["processor_class"] == "AudioCapProcessor"
    generation = json.loads((out / "generation_config.json").read_text())
    assert generation["max_length"] == 12 and generation["decoder_start_token_id"] == config["decoder_start_token_id"]
    assert generation["num_beams"] == 2  # the recipe's generation_num_beams, saved with the model
    assert (out / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_model_card(main_run):
    _, out = main_run
    text = (out / "README.md").read_text()
    front = yaml.safe_load(text.split("---")[1])
    assert front["pipeline_tag"] == "audio-to-text" and front["library_name"] == "transformers"
    results = front["model-index"][0]["results"][0]
    metrics = {m["type"]: m["value"] for m in results["metrics"]}
    test_metrics = json.loads((out / "test_metrics.json").read_text())
    assert {"cider_d", "bleu_4", "meteor", "rouge_l", "source_recall"} <= set(metrics)
    assert metrics["cider_d"] == pytest.approx(round(test_metrics["cider_d"], 4))
    assert results["dataset"]["split"] == "test"
    assert "AutoModelForSpeechSeq2Seq.from_pretrained" in text and "AutoProcessor.from_pretrained" in text
    assert "trust_remote_code=True" in text and "training_curves.png" in text
    assert "Cross-entropy (teacher forcing)" in text and ", 16 steps," in text  # max_steps, not the unused epochs


def test_test_metrics_and_predictions(main_run):
    _, out = main_run
    metrics = json.loads((out / "test_metrics.json").read_text())
    for key in ("cider_d", "cider_d_references", "source_recall", "source_precision", "bleu_4", "loss", "perplexity"):
        assert key in metrics, key
    assert metrics["cider_d_references"] > 0.5  # references of a clip describe the same scene
    assert metrics["perplexity"] == pytest.approx(math.exp(metrics["loss"]), rel=1e-6)
    rows = [json.loads(line) for line in (out / "test_predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and all(isinstance(r["prediction"], str) and len(r["references"]) == 5 for r in rows)
    with open(out / "test_per_caption.csv", newline="", encoding="utf-8") as f:  # each clip's scores, from the run
        per_caption = list(csv.DictReader(f))
    assert [r["id"] for r in per_caption] == [r["id"] for r in rows]
    assert sum(float(r["cider_d"]) for r in per_caption) / 6 == pytest.approx(metrics["cider_d"], abs=1e-9)


def test_evaluation_reports_loss_perplexity_and_caption_metrics(main_run):
    _, out = main_run
    evals = [e for e in log_history(out) if "eval_loss" in e]
    assert [e["step"] for e in evals] == [8, 16]  # once per eval step, no duplicate at the end of training
    for e in evals:
        assert e["eval_perplexity"] == pytest.approx(math.exp(e["eval_loss"]), rel=1e-9)
        assert "eval_cider_d" in e and "eval_bleu_4" in e
    samples = [json.loads(line) for line in (out / "eval_samples.jsonl").read_text().splitlines()]
    assert {s["step"] for s in samples} == {8, 16}
    assert all(set(s) >= {"id", "prediction", "references"} for s in samples)


def test_training_loss_falls(main_run):
    _, out = main_run
    losses = train_losses(out)
    assert len(losses) == 8 and all(math.isfinite(x) for x in losses)
    assert losses[-1] < losses[0] - 0.3, losses
    evals = [e["eval_loss"] for e in log_history(out) if "eval_loss" in e]
    assert evals[-1] < evals[0], evals


def test_training_logs_its_cross_entropy_on_the_validation_loss_scale(main_run):
    # the objective (smoothed or not, + keyword term) is not comparable with eval_loss; the plain cross-entropy of the
    # same training batches, logged beside it, is
    _, out = main_run
    history = log_history(out)
    logged = [e for e in history if "loss" in e]
    assert len(logged) == 8
    for e in logged:
        assert e["perplexity"] == pytest.approx(math.exp(e["caption_loss"]), rel=1e-3)
        assert e["keyword_loss"] > 0 and e["loss"] > e["caption_loss"]  # keyword term on (built-in word decoder)
    last_train = logged[-1]["caption_loss"]
    last_eval = [e["eval_loss"] for e in history if "eval_loss" in e][-1]
    assert abs(last_train - last_eval) < abs(logged[-1]["loss"] - last_eval), (logged[-1], last_eval)
    card = (out / "README.md").read_text()
    assert "validation cross-entropy" in card and "at epoch" in card


def test_fit_summary_says_overfitting_in_words():
    from hf_audiocap.training.callbacks import fit_summary

    def history(train, val):
        rows = []
        for epoch, (t, v) in enumerate(zip(train, val), 1):
            rows += [{"caption_loss": t, "step": 10 * epoch - 5}, {"caption_loss": t, "step": 10 * epoch}]
            rows.append({"eval_loss": v, "epoch": float(epoch), "step": 10 * epoch, "eval_cider_d": 1.0 / v})
        return rows

    seen = fit_summary(history([2.0, 1.5, 1.1, 0.8, 0.5], [1.9, 1.6, 1.7, 1.8, 2.0]), patience=2)
    assert seen["overfitting"] and seen["overfitting_epoch"] == 2.0 and seen["best_epoch"] == 2.0
    assert seen["line"].startswith("over-fitting: validation cross-entropy rose for 2 evaluations (epoch 2: 1.600")
    assert "while training cross-entropy fell (1.500 -> 0.800)" in seen["line"]
    # one rise is within patience 2; a validation loss rising with the training loss is no over-fitting
    assert not fit_summary(history([2.0, 1.5, 1.1], [1.9, 1.6, 1.7]), patience=2)["overfitting"]
    assert fit_summary(history([2.0, 1.5, 1.1], [1.9, 1.6, 1.7]), patience=1)["overfitting"]
    assert not fit_summary(history([2.0, 2.1, 2.2, 2.3], [1.9, 2.0, 2.1, 2.2]), patience=2)["overfitting"]
    calm = fit_summary(history([2.0, 1.5], [1.9, 1.6]), main_metric="eval_cider_d")
    assert calm["line"] == "no over-fitting seen: lowest validation cross-entropy 1.600 at epoch 2 of 2 evaluation(s)"
    assert calm["best_cider_d_epoch"] == 2.0
    assert fit_summary([{"loss": 1.0, "step": 1}])["line"] == "no validation loss was logged"


def test_tensorboard_event_files(main_run):
    _, out = main_run
    events = list(out.rglob("events.out.tfevents.*"))
    assert events, sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    assert sum(p.stat().st_size for p in events) > 100


@pytest.mark.slow
def test_resume_from_last_checkpoint_continues_the_run(main_run, tmp_path):
    data, out = main_run
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(out / "checkpoint-8", resumed / "checkpoint-8")
    args = tiny_run_args(data, resumed, max_steps=16, logging_steps=2, test_split="null")
    recipe_main()([*args, "--resume_from_checkpoint", "last"])
    history = log_history(resumed)
    assert max(e["step"] for e in history) == 16
    # steps 10..16 were trained again from the checkpoint, with the same data order and RNG state
    original = {e["step"]: e["loss"] for e in log_history(out) if "loss" in e}
    again = {e["step"]: e["loss"] for e in history if "loss" in e}
    assert sorted(again) == [2, 4, 6, 8, 10, 12, 14, 16]
    for step in (10, 12, 14, 16):
        assert again[step] == pytest.approx(original[step], rel=1e-4), (step, again, original)


def test_resume_last_without_checkpoint_starts_fresh(synth, tmp_path):
    out = tmp_path / "fresh"
    args = tiny_run_args(synth, out, max_steps=2, test_split="null")
    recipe_main()([*args, "--resume_from_checkpoint", "last"])
    assert max(e["step"] for e in log_history(out)) == 2


def test_ctrl_c_says_how_to_resume_and_resuming_reports_no_missing_head(synth, tmp_path, capsys, caplog, monkeypatch):
    """Ctrl-C during training: exit code 130 and one line naming the last complete checkpoint and the command that
    resumes from it; that command resumes, without the Trainer's warning of a missing (tied) lm_head.weight."""
    import shlex

    from hf_audiocap.training.trainer import AudioCapTrainer

    out = tmp_path / "interrupted"
    args = tiny_run_args(synth, out, max_steps=3, save_strategy="steps", save_steps=2, test_split="null")
    training_step = AudioCapTrainer.training_step

    def interrupted_at_step_3(self, *step_args, **kwargs):
        if self.state.global_step == 2:
            raise KeyboardInterrupt
        return training_step(self, *step_args, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(AudioCapTrainer, "training_step", interrupted_at_step_3)
        with pytest.raises(SystemExit) as stop:
            recipe_main()(args)
    assert stop.value.code == 130
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith(f"interrupted: the last complete checkpoint is {out / 'checkpoint-2'}; resume with: ")
    command = shlex.split(line.partition("resume with: ")[2])
    assert command[:2] == ["python", "recipes/train.py"] and command[-2:] == ["--resume_from_checkpoint", "last"]
    transformers.logging.enable_propagation()  # transformers' warnings reach caplog
    try:
        with caplog.at_level("WARNING"):
            recipe_main()(command[2:])
    finally:
        transformers.logging.disable_propagation()
    assert max(e["step"] for e in log_history(out)) == 3
    assert "missing keys" not in caplog.text, caplog.text


@pytest.mark.slow
def test_caption_pairs_with_label_smoothing_and_early_stopping(synth, tmp_path, caplog):
    # the non-grouped path (one (clip, caption) example per row), label-smoothed loss, and early stopping on CIDEr-D
    out = tmp_path / "pairs"
    transformers.logging.enable_propagation()  # transformers' warnings reach caplog
    with caplog.at_level("WARNING"):
        recipe_main()(
            tiny_run_args(
                synth,
                out,
                group_captions="false",
                label_smoothing_factor=0.1,
                per_device_train_batch_size=8,
                max_steps=40,
                eval_strategy="steps",
                eval_steps=4,
                save_strategy="steps",
                save_steps=4,
                load_best_model_at_end="true",
                metric_for_best_model="cider_d",
                early_stopping_patience=1,
            )
        )
    transformers.logging.disable_propagation()
    # the test split's evaluation (test_ metrics) is not mistaken for a validation without its metric
    assert "did not find" not in caplog.text, caplog.text
    history = log_history(out)
    losses = train_losses(out)
    assert all(math.isfinite(x) for x in losses) and min(losses[-3:]) < losses[0], losses
    evals = [e for e in history if "eval_cider_d" in e]
    steps = [e["step"] for e in evals]
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] < 40, "early stopping never stopped the run"
    assert len(evals) >= 2 and steps == sorted(set(steps))
    best = max(evals, key=lambda e: e["eval_cider_d"])
    assert state["best_metric"] == pytest.approx(best["eval_cider_d"])
    assert state["best_model_checkpoint"].endswith(f"checkpoint-{best['step']}")
    # patience 1: the run stopped at the first evaluation that did not improve on the best
    assert evals[-1]["eval_cider_d"] <= state["best_metric"]
    assert (out / "model.safetensors").is_file()


@pytest.mark.slow
def test_scst_stage_fine_tunes_a_trained_model(main_run, tmp_path):
    """The second stage of the demo: SCST from a saved cross-entropy model, rewards logged, weights updated."""
    from safetensors.torch import load_file

    data, trained = main_run
    out = tmp_path / "scst"
    recipe_main()(
        tiny_run_args(
            data,
            out,
            model_name_or_path=str(trained),
            config_overrides="{}",
            scst="true",
            scst_samples=3,
            max_steps=3,
            learning_rate="1e-3",
            test_split="null",
        )
    )
    rewards = [e["scst_reward"] for e in log_history(out) if "scst_reward" in e]
    assert len(rewards) == 3 and all(math.isfinite(r) and r >= 0 for r in rewards)
    assert all(math.isfinite(x) for x in train_losses(out))
    before, after = load_file(trained / "model.safetensors"), load_file(out / "model.safetensors")
    assert before.keys() == after.keys() and any(not (before[k] == after[k]).all() for k in before)
    # the card names what the reward ranked (scst_sampling's default: samples) and the steps that ended the run
    card = (out / "README.md").read_text()
    assert "CIDEr-D reward of 3 captions sampled per clip" in card and ", 3 steps," in card


def test_model_card_says_which_captions_scst_rewarded():
    from types import SimpleNamespace

    from hf_audiocap.training.model_card import _objective

    model = SimpleNamespace(model_name_or_path="outputs/xe")
    beams = _objective(model, SimpleNamespace(scst=True, scst_samples=5, scst_sampling="beam"))
    samples = _objective(model, SimpleNamespace(scst=True, scst_samples=5, scst_sampling="sample"))
    assert "each clip's 5 best beams" in beams and "sampled" not in beams
    assert "5 captions sampled per clip" in samples and "`outputs/xe`" in samples


def test_spec_augment_and_mixup(synth, tmp_path):
    out = tmp_path / "augmented"
    recipe_main()(tiny_run_args(synth, out, spec_augment="true", mixup_prob=0.5, max_steps=4, test_split="null"))
    losses = train_losses(out)
    assert len(losses) == 4 and all(math.isfinite(x) for x in losses)
    assert (out / "model.safetensors").is_file()


def test_unknown_key_fails_before_training(synth, tmp_path):
    with pytest.raises(ValueError, match="unknown recipe keys: num_epochs"):
        recipe_main()(tiny_run_args(synth, tmp_path / "x", num_epochs=3))
    assert not (tmp_path / "x").exists()


def test_group_by_length_reads_durations_from_headers(synth, tmp_path):
    """train_sampling_strategy: group_by_length gets each clip's duration (header only) as the `length` column, so
    transformers' LengthGroupedSampler batches clips of similar durations (less padding for the encoder)."""
    import soundfile as sf
    from transformers import Seq2SeqTrainingArguments

    from hf_audiocap.data.loaders import load_caption_dataset
    from hf_audiocap.training.arguments import DataArguments
    from hf_audiocap.training.builders import training_dataset

    clips = load_caption_dataset("clotho", synth)["train"]
    args = Seq2SeqTrainingArguments(
        output_dir=str(tmp_path / "args"), train_sampling_strategy="group_by_length", report_to="none"
    )
    for grouped in (True, False):
        rows = training_dataset(clips, DataArguments(dataset_path=str(synth), group_captions=grouped), args)
        per_clip = {a["path"]: sf.info(a["path"]).duration for a in clips["audio"]}
        assert rows["length"] == pytest.approx([per_clip[a["path"]] for a in rows["audio"]])
        assert len(set(rows["length"])) > 1
    # a run to the end: evaluation keeps the clips' order (transformers would length-group the test split too, and
    # without a length column there it stopped the run before scoring)
    out = tmp_path / "grouped"
    recipe_main()(tiny_run_args(synth, out, train_sampling_strategy="group_by_length", max_steps=3))
    assert len(train_losses(out)) == 3
    ids = [json.loads(line)["id"] for line in (out / "test_predictions.jsonl").read_text().splitlines()]
    assert ids == load_caption_dataset("clotho", synth)["test"]["id"]


def test_validation_without_generation_reports_loss_and_the_test_report_still_captions(synth, tmp_path):
    out = tmp_path / "loss_only"
    recipe_main()(
        tiny_run_args(
            synth,
            out,
            predict_with_generate="false",
            eval_strategy="steps",
            eval_steps=3,
            save_strategy="steps",
            save_steps=3,
            load_best_model_at_end="true",
            metric_for_best_model="loss",
            encoder_learning_rate="1e-4",
        )  # fmt: skip
    )
    evals = [e for e in log_history(out) if "eval_loss" in e]
    assert len(evals) == 2 and all("eval_perplexity" in e and "eval_cider_d" not in e for e in evals)
    test = json.loads((out / "test_metrics.json").read_text())
    assert "cider_d" in test and (out / "test_predictions.jsonl").is_file()
    with pytest.raises(ValueError, match=r"metric_for_best_model: cider_d scores generated captions"):
        recipe_main()(
            tiny_run_args(synth, tmp_path / "no", predict_with_generate="false", metric_for_best_model="cider_d")
        )
    with pytest.raises(ValueError, match=r"encoder_learning_rate: the encoder is frozen"):
        recipe_main()(tiny_run_args(synth, tmp_path / "no", freeze_encoder="true", encoder_learning_rate="1e-5"))


def test_ctrl_c_while_the_libraries_load_is_one_line(tmp_path):
    """Ctrl-C in the first seconds, while torch and transformers are still being imported: exit code 130 and one
    line, no traceback (the handler is set before the imports)."""
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from recipe_helpers import REPO_ROOT

    run = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "recipes" / "train.py"), "recipes/synthcaps/demo.yaml"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    maps = Path(f"/proc/{run.pid}/maps")
    if not maps.exists():
        run.kill()
        pytest.skip("needs /proc to see the imports under way")
    deadline = time.monotonic() + 30
    # torch mapped in: the handler (the file's first lines) is set and transformers' imports still take seconds
    while "libtorch" not in maps.read_text() and time.monotonic() < deadline:
        time.sleep(0.02)
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=60)
    assert run.returncode == 130, err
    assert "Traceback" not in err and err.strip() == "train.py: interrupted"
