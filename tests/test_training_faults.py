"""Training survives faults: a run SIGKILLed between and during checkpoint saves resumes (`--resume_from_checkpoint
last`) to the same weights and metrics as an uninterrupted run; a half-written checkpoint is never resumed from; a
non-finite loss stops the run (or skips the batch) naming the step and the clips."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from recipe_helpers import make_synthcaps, tiny_run_args

from hf_audiocap.training.checkpoints import (
    MANIFEST_NAME,
    last_complete_checkpoint,
    mark_complete,
    resolve_checkpoint,
)

RUNNER = Path(__file__).with_name("fault_runner.py")
# Keys of the log history that measure time, and the mean training loss of one train() call (over the resumed part
# only, after a resume): everything else must be equal.
TIMING_KEYS = ("train_runtime", "train_samples_per_second", "train_steps_per_second", "eval_runtime")
TIMING_KEYS += ("eval_samples_per_second", "eval_steps_per_second", "train_loss")


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return make_synthcaps(tmp_path_factory.mktemp("synthcaps"), num_train=20, num_validation=4, num_test=2)


# --- checkpoint completeness ----------------------------------------------------------------------------------------


def _fake_checkpoint(folder: Path, complete: bool = True) -> Path:
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"w" * 100)
    (folder / "trainer_state.json").write_text("{}")
    if complete:
        mark_complete(folder)
    return folder


def test_last_is_the_newest_complete_checkpoint(tmp_path, caplog):
    _fake_checkpoint(tmp_path / "checkpoint-2")
    _fake_checkpoint(tmp_path / "checkpoint-10")  # numeric order, not names: 10 > 4
    _fake_checkpoint(tmp_path / "checkpoint-12", complete=False)  # killed while writing: no manifest
    truncated = _fake_checkpoint(tmp_path / "checkpoint-14")
    (truncated / "model.safetensors").write_bytes(b"w" * 10)  # a file cut short after the manifest was written
    deleted = _fake_checkpoint(tmp_path / "checkpoint-16")
    (deleted / "trainer_state.json").unlink()  # rotation killed half-way through deleting it
    (tmp_path / "checkpoint-18").write_text("not a folder")
    with caplog.at_level(logging.WARNING, logger="hf_audiocap.training.checkpoints"):
        assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")
    assert (
        resolve_checkpoint("last", tmp_path) == resolve_checkpoint(True, tmp_path) == str(tmp_path / "checkpoint-10")
    )
    text = caplog.text
    assert f"checkpoint-12: incomplete, no {MANIFEST_NAME}" in text
    assert "checkpoint-14: incomplete, model.safetensors has 10 bytes, the manifest says 100" in text
    assert "checkpoint-16: incomplete, trainer_state.json is missing" in text
    manifest = json.loads((tmp_path / "checkpoint-10" / MANIFEST_NAME).read_text())
    assert manifest["files"] == {"model.safetensors": 100, "trainer_state.json": 2}
    assert not list(tmp_path.rglob(f"*{MANIFEST_NAME}.tmp"))

    assert resolve_checkpoint("last", tmp_path / "empty") is None  # nothing to resume: a fresh start
    assert resolve_checkpoint(None, tmp_path) is None
    with pytest.raises(ValueError, match=r"checkpoint-14 is incomplete: model.safetensors has 10 bytes"):
        resolve_checkpoint(str(tmp_path / "checkpoint-14"), tmp_path)
    with pytest.raises(FileNotFoundError, match="no checkpoint folder"):
        resolve_checkpoint(str(tmp_path / "checkpoint-99"), tmp_path)
    # a folder without any manifest (another tool wrote it) is resumed from when named explicitly
    assert resolve_checkpoint(str(tmp_path / "checkpoint-12"), tmp_path) == str(tmp_path / "checkpoint-12")


# --- SIGKILL between and during checkpoint saves --------------------------------------------------------------------


def _fault_args(data: Path, out: Path, cache: Path) -> list[str]:
    return tiny_run_args(
        data,
        out,
        max_steps=12,  # 20 clips / 4 per batch = 5 steps per epoch: checkpoints 4 and 8 fall inside epochs
        save_strategy="steps",
        save_steps=4,
        save_total_limit=2,
        eval_strategy="steps",
        eval_steps=12,  # once, at the end (the caption metrics start a JVM: seconds)
        max_eval_clips=4,
        test_split="null",
        logging_steps=1,
        spec_augment="true",  # randomness that must replay exactly after a resume
        precompute_features="true",
        features_cache_dir=str(cache),
        resume_from_checkpoint="last",  # as a job script that restarts the same command would pass it
    )


def _launch(args: list[str], log: Path, pause: dict | None = None, signal_file: Path | None = None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("FAULT_PAUSE_AT_STEP", None)
    env.pop("FAULT_PAUSE_IN_SAVE", None)
    env.update({k: str(v) for k, v in (pause or {}).items()})
    if signal_file is not None:
        env["FAULT_SIGNAL"] = str(signal_file)
    with open(log, "ab") as f:
        return subprocess.Popen([sys.executable, str(RUNNER), *args], stdout=f, stderr=subprocess.STDOUT, env=env)


def _run(args: list[str], log: Path) -> None:
    proc = _launch(args, log)
    assert proc.wait(timeout=300) == 0, log.read_text()[-3000:]


def _run_and_kill(args: list[str], log: Path, tmp: Path, **pause) -> None:
    """Start the run, wait for it to reach the pause point, SIGKILL it there."""
    signal_file = tmp / f"paused-{'-'.join(f'{k}{v}' for k, v in pause.items())}"
    proc = _launch(args, log, pause, signal_file)
    deadline = time.monotonic() + 300
    while not signal_file.exists():
        if proc.poll() is not None:
            pytest.fail(f"the run ended (rc {proc.returncode}) before pausing at {pause}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the run never paused at {pause}:\n{log.read_text()[-3000:]}")
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL


def _cache_state(cache: Path) -> dict:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in cache.glob("log_mels-*.arrow")}


def _history(out: Path) -> list[dict]:
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    return [{k: v for k, v in e.items() if k not in TIMING_KEYS} for e in history]


@pytest.mark.slow  # four real processes (~7 s of imports each) and two JVM starts for the caption metrics
def test_sigkilled_run_resumes_to_the_same_weights_and_metrics(synth, tmp_path):
    from safetensors.torch import load_file
    from transformers.trainer_utils import get_last_checkpoint

    out, cache, log = tmp_path / "killed", tmp_path / "cache", tmp_path / "killed.log"
    args = _fault_args(synth, out, cache)

    # 1. SIGKILL between two saves: after step 6, checkpoint-4 is the last one written.
    _run_and_kill(args, log, tmp_path, FAULT_PAUSE_AT_STEP=6)
    assert last_complete_checkpoint(out) == str(out / "checkpoint-4")
    cache_files = _cache_state(cache)
    assert len(cache_files) == 2, cache_files  # train and validation log-mels, computed once by the first run

    # 2. Resume, and SIGKILL it while it writes checkpoint-8 (weights written, the rest not yet).
    _run_and_kill(args, log, tmp_path, FAULT_PAUSE_IN_SAVE=8)
    assert (out / "checkpoint-8" / "model.safetensors").is_file()
    assert not (out / "checkpoint-8" / MANIFEST_NAME).exists()
    assert get_last_checkpoint(str(out)) == str(out / "checkpoint-8")  # what transformers alone would resume from
    assert last_complete_checkpoint(out) == str(out / "checkpoint-4")

    # 3. Resume again: it runs to the end.
    _run(args, log)
    text = log.read_text()
    assert text.count(f"resuming from {out / 'checkpoint-4'}, the newest complete checkpoint") == 2, text[-3000:]
    assert f"not resuming from {out / 'checkpoint-8'}: incomplete, no {MANIFEST_NAME}" in text
    # the log-mel caches written by the first (killed) run were loaded by both resumed runs, never recomputed
    assert _cache_state(cache) == cache_files
    assert text.count("computed into") == 2 and text.count("loaded from") == 4, text

    # The uninterrupted run with the same seed (its own cache folder).
    reference = tmp_path / "reference"
    _run(_fault_args(synth, reference, tmp_path / "cache_reference"), tmp_path / "reference.log")

    ours, theirs = load_file(out / "model.safetensors"), load_file(reference / "model.safetensors")
    assert ours.keys() == theirs.keys()
    max_diff = max(float((ours[k].double() - theirs[k].double()).abs().max()) for k in ours)
    print(f"max |weight difference| after two SIGKILLs and resumes: {max_diff:.3g}")
    assert max_diff == 0.0  # CPU, same thread count, same RNG and data order: bit-identical
    # every logged loss, learning rate, gradient norm and evaluation metric of the 12 steps is identical
    assert _history(out) == _history(reference)
    assert any("eval_cider_d" in e for e in _history(out)) and sum("loss" in e for e in _history(out)) == 12
    assert (out / "eval_samples.jsonl").read_text() == (reference / "eval_samples.jsonl").read_text()
    for folder in (out, reference):  # save_total_limit 2: the last two checkpoints are kept, both complete
        assert sorted(p.name for p in folder.glob("checkpoint-*")) == ["checkpoint-12", "checkpoint-8"]
        assert last_complete_checkpoint(folder) == str(folder / "checkpoint-12")


# --- non-finite loss -------------------------------------------------------------------------------------------------


class _PoisonBatch:
    """Wraps the training collator: the `batch`-th batch collated (1-based) gets NaN log-mels."""

    def __init__(self, collator, batch: int):
        self.collator, self.batch, self.calls, self.poisoned_ids = collator, batch, 0, None

    def __call__(self, examples):
        out = self.collator(examples)
        self.calls += 1
        if self.calls == self.batch:
            out["input_features"] = out["input_features"].clone()  # the feature extractor's are inference tensors
            out["input_features"][0, :, :3] = float("nan")
            self.poisoned_ids = [ex["id"] for ex in examples]
        return out


def _tiny_trainer(data: Path, out: Path, poison_batch: int, **overrides):
    from hf_audiocap.training.arguments import parse_recipe
    from hf_audiocap.training.builders import build_model, build_processor, build_trainer, load_recipe_datasets
    from hf_audiocap.training.callbacks import TrainingCurvesCallback

    model_args, data_args, training_args = parse_recipe(
        tiny_run_args(data, out, max_steps=3, test_split="null", eval_split="null", **overrides)
    )
    clips = load_recipe_datasets(data_args)
    processor = build_processor(model_args, clips["train"])
    model = build_model(model_args, processor, training_args)
    trainer = build_trainer(model, processor, clips, data_args, training_args)
    trainer.remove_callback(TrainingCurvesCallback)  # its plot (matplotlib) is not under test: seconds saved
    trainer.data_collator = _PoisonBatch(trainer.data_collator, poison_batch)
    return trainer


def test_nonfinite_loss_stops_the_run_naming_step_and_clips(synth, tmp_path):
    from hf_audiocap.training.trainer import NonFiniteLossError

    trainer = _tiny_trainer(synth, tmp_path / "stop", poison_batch=2)
    with pytest.raises(NonFiniteLossError) as err:
        trainer.train()
    message = str(err.value)
    ids = trainer.data_collator.poisoned_ids
    assert message.startswith("non-finite training loss (nan) at step 2 (epoch 0.20), batch of 4 clip(s): ")
    assert message.split(": ", 1)[1].startswith(", ".join(ids)) and "nonfinite_loss: skip" in message
    assert "\n" not in message and isinstance(err.value, ValueError)  # train.py prints it as one error line
    assert trainer.state.global_step == 1


def test_nonfinite_loss_skip_drops_the_batch_update(synth, tmp_path, caplog):
    from transformers import TrainerCallback

    class Snapshots(TrainerCallback):
        def __init__(self):
            self.weights = {}

        def on_step_end(self, args, state, control, model=None, **kwargs):
            self.weights[state.global_step] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    trainer = _tiny_trainer(synth, tmp_path / "skip", poison_batch=2, nonfinite_loss="skip")
    snapshots = Snapshots()
    trainer.add_callback(snapshots)
    with caplog.at_level(logging.WARNING, logger="hf_audiocap.training.trainer"):
        trainer.train()
    ids = trainer.data_collator.poisoned_ids
    assert (
        f"non-finite training loss (nan) at step 2 (epoch 0.20), batch of 4 clip(s): {', '.join(ids)}" in caplog.text
    )
    assert "batch skipped (nonfinite_loss: skip), 1 so far" in caplog.text
    assert trainer.state.global_step == 3 and trainer.skipped_batches == 1
    before, skipped, after = (snapshots.weights[s] for s in (1, 2, 3))
    assert all(torch.equal(before[k], skipped[k]) for k in before)  # the poisoned step changed no weight
    assert any(not torch.equal(skipped[k], after[k]) for k in before)  # the next batch trained as usual
    assert all(bool(torch.isfinite(v).all()) for v in after.values())


def test_nonfinite_loss_argument_is_checked():
    from hf_audiocap.training.arguments import parse_recipe

    with pytest.raises(ValueError, match="nonfinite_loss must be 'stop' or 'skip', got 'ignore'"):
        parse_recipe(["--output_dir", "/tmp/unused", "--nonfinite_loss", "ignore", "--report_to", "none"])
