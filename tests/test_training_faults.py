"""Training survives faults: a run SIGKILLed between and during checkpoint saves resumes (`--resume_from_checkpoint
last`) to the same weights and metrics as an uninterrupted run; a half-written checkpoint is never resumed from; a
non-finite loss stops the run (or skips the batch) naming the step and the clips.

The last section runs AudioCapTrainer's hooks (checkpoint completion and rotation, resume, SpecAugment at the training
step, non-finite loss, evaluation's two passes in the dataset's order) on a toy captioner instead of hf_audiocap's
model, so that it runs, and fails if a hook is not called where it is expected, on every transformers of the
supported range (tests/test_distributed.py imports it for SCST and split streams)."""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from recipe_helpers import make_synthcaps, tiny_run_args

from hf_audiocap.training.checkpoints import (
    MANIFEST_NAME,
    exit_on_interrupt,
    incomplete_reason,
    last_complete_checkpoint,
    mark_complete,
    resolve_checkpoint,
    rotate_checkpoints,
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


def test_rotation_keeps_the_newest_complete_checkpoints_and_the_best(tmp_path):
    for step in (2, 4, 6, 8):
        _fake_checkpoint(tmp_path / f"checkpoint-{step}")
    _fake_checkpoint(tmp_path / "checkpoint-5", complete=False)  # killed while writing: never resumed from
    _fake_checkpoint(tmp_path / "checkpoint-12")  # left by a run this one resumed before it
    assert rotate_checkpoints(tmp_path, None, tmp_path / "checkpoint-8") == []  # no limit: nothing deleted
    deleted = rotate_checkpoints(tmp_path, 3, tmp_path / "checkpoint-8", best=str(tmp_path / "checkpoint-2"))
    assert sorted(p.name for p in deleted) == ["checkpoint-12", "checkpoint-4", "checkpoint-5"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-2", "checkpoint-6", "checkpoint-8"]
    # the best and the current one are kept even past a limit of 1
    rotate_checkpoints(tmp_path, 1, tmp_path / "checkpoint-8", best=str(tmp_path / "checkpoint-2"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-2", "checkpoint-8"]


def test_ctrl_c_names_the_last_complete_checkpoint_and_the_command_resuming_from_it(tmp_path, capsys):
    argv = ["recipe.yaml", "--max_steps", "9", "--resume_from_checkpoint", "checkpoint-2", "--run_name=a b"]
    with pytest.raises(SystemExit) as stop, exit_on_interrupt(tmp_path, argv):
        raise KeyboardInterrupt
    assert stop.value.code == 130
    command = "python recipes/train.py recipe.yaml --max_steps 9 '--run_name=a b' --resume_from_checkpoint last"
    said = f"interrupted before the first complete checkpoint (none in {tmp_path}); start again with: {command}"
    assert capsys.readouterr().err.strip() == said
    _fake_checkpoint(tmp_path / "checkpoint-4")
    _fake_checkpoint(tmp_path / "checkpoint-6", complete=False)  # interrupted while saving it
    with (
        pytest.raises(SystemExit) as stop,
        exit_on_interrupt(tmp_path, ["--resume-from-checkpoint=last", "--seed", "1"]),
    ):
        raise KeyboardInterrupt
    command = "python recipes/train.py --seed 1 --resume_from_checkpoint last"
    said = f"interrupted: the last complete checkpoint is {tmp_path / 'checkpoint-4'}; resume with: {command}"
    assert stop.value.code == 130 and capsys.readouterr().err.strip() == said
    with pytest.raises(SystemExit), exit_on_interrupt(tmp_path, [], say=False):  # the other processes of a run
        raise KeyboardInterrupt
    assert capsys.readouterr().err == ""


def test_a_tied_head_loaded_through_its_twin_is_not_reported_missing():
    """The Trainer warns of every key a checkpoint lacks unless it is in `_keys_to_ignore_on_save`; a tied weight is
    stored once, under one name, and loading it fills both: only that case is filtered."""
    from hf_audiocap.training.trainer import TiedWeightsFilter

    model = torch.nn.Module()
    model.embed, model.head, model.other = (
        torch.nn.Embedding(5, 3),
        torch.nn.Linear(3, 5, bias=False),
        torch.nn.Linear(2, 2),
    )
    model.head.weight = model.embed.weight
    tied = TiedWeightsFilter(model)

    def shown(message: str) -> bool:
        return tied.filter(logging.LogRecord("transformers.trainer", logging.WARNING, "", 0, message, None, None))

    assert not shown(f"{TiedWeightsFilter.PREFIX}['head.weight'].")
    assert shown(f"{TiedWeightsFilter.PREFIX}['head.weight', 'embed.weight'].")  # neither name loaded: lost
    assert shown(f"{TiedWeightsFilter.PREFIX}['head.weight', 'other.bias'].")
    assert shown("There were unexpected keys in the checkpoint model loaded: ['head.weight'].")


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

    with pytest.raises(ValueError, match="recipe key nonfinite_loss: expected one of stop, skip, got 'ignore'"):
        parse_recipe(["--output_dir", "/tmp/unused", "--nonfinite_loss", "ignore", "--report_to", "none"])


# --- the same hooks on a toy captioner: no hf_audiocap model, so these run on every transformers of the range ---------
#
# AudioCapTrainer's overrides and its checkpoint callback on a 40-parameter model that the Trainer drives like any other
# (a plain nn.Module with a loss, `generate` and a generation config). The version-matrix venvs run this section: it
# fails there if a hook is not called, or called at another point of the loop, in that release.

N_MELS, FRAMES, WORDS = 4, 6, ["<pad>", "<sos>", "<eos>", "hum", "beep", "click", "buzz", "hiss"]
PAD, SOS, EOS = 0, 1, 2


class ToyCaptioner(torch.nn.Module):
    """The mean log-mel of a clip -> one distribution over words, the same at every caption position."""

    main_input_name = "input_features"
    accepts_loss_kwargs = True  # as the real model: the Trainer counts label tokens (num_items_in_batch)

    def __init__(self):
        from transformers import GenerationConfig

        super().__init__()
        torch.manual_seed(0)
        self.proj = torch.nn.Linear(N_MELS, len(WORDS))
        self.generation_config = GenerationConfig(
            max_length=4, pad_token_id=PAD, eos_token_id=EOS, decoder_start_token_id=SOS
        )

    def forward(self, input_features, attention_mask=None, labels=None, num_items_in_batch=None, **kwargs):
        logits = self.proj(input_features.mean(-1))
        if labels is None:
            return {"logits": logits}
        per_position = logits[:, None].expand(-1, labels.shape[1], -1).reshape(-1, len(WORDS))
        total = torch.nn.functional.cross_entropy(per_position, labels.reshape(-1), ignore_index=-100, reduction="sum")
        count = num_items_in_batch if num_items_in_batch is not None else labels.ne(-100).sum()
        return {"loss": total / count, "logits": logits}

    def generate(self, input_features, attention_mask=None, **kwargs):
        word = 3 + ((input_features.mean((1, 2)) + 1.0) * 2).round().long() % 5  # the clip's own word (see toy_clips)
        return torch.stack([torch.full_like(word, SOS), word, torch.full_like(word, EOS)], dim=1)


class ToyProcessor:
    model_input_names = ["input_features"]
    pad_token_id, eos_token_id = PAD, EOS
    tokenizer = SimpleNamespace(pad_token_id=PAD)

    def batch_decode(self, ids, skip_special_tokens=True):
        return [" ".join(WORDS[int(t)] for t in row if int(t) > EOS) for row in ids]

    def save_pretrained(self, folder):
        (Path(folder) / "toy_processor.json").write_text("{}")


class ToyCollator:
    """A clip's log-mels are its `level` everywhere; its label is its first caption's word, then <eos>. Training
    batches carry `clip_ids` (and `references`, as SCST's collator); `poison` (1-based batch numbers) get NaN log-mels."""

    def __init__(self, training: bool, poison=()):
        self.training, self.poison, self.calls = training, set(poison), 0

    def __call__(self, examples):
        self.calls += 1
        feats = torch.stack([torch.full((N_MELS, FRAMES), float(ex["level"])) for ex in examples])
        if self.calls in self.poison:
            feats[0, :, :2] = float("nan")
        batch = {"input_features": feats, "attention_mask": torch.ones(len(examples), FRAMES, dtype=torch.long)}
        if "captions" in examples[0]:
            words = [WORDS.index(ex["captions"][0].split()[0]) for ex in examples]
            batch["labels"] = torch.tensor([[w, EOS] for w in words])
        if self.training:
            batch["clip_ids"] = [ex["id"] for ex in examples]
            batch["references"] = [list(ex["captions"]) for ex in examples]
        return batch


def toy_clips(n: int, offset: int = 0):
    """`n` clips whose word follows their level; `length` ascends (a column that group_by_length would sort
    transformers' evaluation batches by, longest first)."""
    from datasets import Dataset

    rows = [
        {
            "id": f"clip{offset + i}",
            "level": 0.5 * ((offset + i) % 5) - 1.0,
            "captions": [f"{WORDS[3 + (offset + i) % 5]} sound", f"{WORDS[3 + (offset + i) % 5]} again"],
            "length": float(i),
        }
        for i in range(n)
    ]
    return Dataset.from_list(rows)


def toy_trainer(
    out: Path, train_clips=None, eval_clips=None, poison=(), callbacks=None, trainer_kwargs=None, model=None, **args
):
    from hf_audiocap.training.arguments import AudioCapTrainingArguments
    from hf_audiocap.training.trainer import AudioCapTrainer

    values = {
        "output_dir": str(out),
        "per_device_train_batch_size": 2,
        "per_device_eval_batch_size": 3,
        "learning_rate": 0.1,
        "lr_scheduler_type": "constant",
        "max_steps": 4,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "use_cpu": True,
        "remove_unused_columns": False,
        "predict_with_generate": True,
        "generation_max_length": 4,
        "dataloader_num_workers": 0,
        "disable_tqdm": True,
        "seed": 0,
    }
    values.update(args)
    return AudioCapTrainer(
        model=model if model is not None else ToyCaptioner(),
        args=AudioCapTrainingArguments(**values),
        data_collator=ToyCollator(training=True, poison=poison),
        eval_data_collator=ToyCollator(training=False),
        train_dataset=train_clips if train_clips is not None else toy_clips(8),
        eval_dataset=eval_clips,
        processing_class=ToyProcessor(),
        callbacks=callbacks,
        **(trainer_kwargs or {}),
    )


def test_toy_checkpoints_are_completed_and_rotated_only_after(tmp_path, caplog):
    """Each checkpoint gets its manifest after transformers has written it all (callbacks' `on_save`), old ones are
    deleted only then (transformers' own rotation never runs), a stale folder of a later step is emptied before it is
    written again, and `last` resumes from the newest complete checkpoint."""
    from transformers import TrainerCallback

    out = tmp_path / "run"

    class AtSave(TrainerCallback):  # runs before CheckpointCompletionCallback (added after the user's callbacks)
        def __init__(self):
            self.seen = []

        def on_save(self, args, state, control, **kwargs):
            folders = {p.name: incomplete_reason(p) is None for p in out.glob("checkpoint-*")}
            self.seen.append((state.global_step, folders))

    at_save = AtSave()
    trainer = toy_trainer(
        out, callbacks=[at_save], max_steps=6, save_strategy="steps", save_steps=2, save_total_limit=2
    )
    assert trainer.args.save_total_limit is None and trainer.args.checkpoint_total_limit == 2
    trainer.train()
    # while checkpoint-6 is written, checkpoints 2 and 4 are both still there and complete
    assert at_save.seen == [
        (2, {"checkpoint-2": False}),
        (4, {"checkpoint-2": True, "checkpoint-4": False}),
        (6, {"checkpoint-2": True, "checkpoint-4": True, "checkpoint-6": False}),
    ]
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-4", "checkpoint-6"]
    assert all(incomplete_reason(p) is None for p in out.glob("checkpoint-*"))
    manifest = json.loads((out / "checkpoint-6" / MANIFEST_NAME).read_text())["files"]
    assert {"trainer_state.json", "optimizer.pt", "scheduler.pt", "rng_state.pth"} <= set(manifest)

    # A later run was killed while writing checkpoint-8: not resumed from, emptied before this run writes it again.
    stale = out / "checkpoint-8"
    stale.mkdir()
    (stale / "stale.bin").write_bytes(b"x")
    resumed = toy_trainer(out, max_steps=8, save_strategy="steps", save_steps=2, save_total_limit=2)
    with caplog.at_level(logging.INFO, logger="hf_audiocap.training.checkpoints"):
        resumed.train(resume_from_checkpoint="last")
    assert f"resuming from {out / 'checkpoint-6'}, the newest complete checkpoint" in caplog.text
    assert f"emptying {stale}: this run writes it again" in caplog.text
    assert resumed.state.global_step == 8
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-6", "checkpoint-8"]
    assert incomplete_reason(stale) is None and not (stale / "stale.bin").exists()


def test_toy_rotation_keeps_the_best_checkpoint_and_only_it_at_the_end_with_limit_1(tmp_path):
    """save_total_limit 1 with load_best_model_at_end: the best checkpoint is kept beside the newest while training,
    and alone at the end (transformers' own behaviour, applied by the callback)."""
    out = tmp_path / "best"
    losses = iter([0.1, 0.5, 0.7])  # the first evaluation is the best

    trainer = toy_trainer(
        out,
        eval_clips=toy_clips(3),
        max_steps=6,
        save_strategy="steps",
        save_steps=2,
        eval_strategy="steps",
        eval_steps=2,
        save_total_limit=1,
        load_best_model_at_end=True,
        metric_for_best_model="fake_loss",  # lower is better (a name ending in "loss")
        trainer_kwargs={"metrics_fn": lambda predictions, references: {"fake_loss": next(losses)}},
    )
    trainer.train()
    assert trainer.state.best_model_checkpoint == str(out / "checkpoint-2")
    assert [p.name for p in out.glob("checkpoint-*")] == ["checkpoint-2"]
    assert incomplete_reason(out / "checkpoint-2") is None


def test_toy_spec_augment_is_drawn_at_the_training_step_and_replays_after_a_resume(tmp_path):
    """The augmentation runs once per training batch (never at evaluation), after the Trainer has restored a resumed
    run's RNG state: a run resumed from step 2 draws what the uninterrupted run drew at steps 3 and 4."""

    class Recorder:
        def __init__(self):
            self.draws = []

        def __call__(self, features, attention_mask):
            self.draws.append(float(torch.rand(())))
            return features + 0.01 * torch.randn_like(features)

    full = Recorder()
    toy_trainer(
        tmp_path / "full",
        save_strategy="steps",
        save_steps=2,
        eval_strategy="steps",
        eval_steps=2,
        eval_clips=toy_clips(3),
        trainer_kwargs={"spec_augment": full},
    ).train()
    assert len(full.draws) == 4
    resumed = Recorder()
    toy_trainer(tmp_path / "resumed", trainer_kwargs={"spec_augment": resumed}).train(
        resume_from_checkpoint=str(tmp_path / "full" / "checkpoint-2")
    )
    assert resumed.draws == full.draws[2:]


def test_toy_nonfinite_loss_stops_or_skips(tmp_path, caplog):
    from hf_audiocap.training.trainer import NonFiniteLossError

    clips = toy_clips(8)
    with pytest.raises(
        NonFiniteLossError, match=r"^non-finite training loss \(nan\) at step 2 \(epoch 0\.25\), batch of 2"
    ):
        toy_trainer(tmp_path / "stop", train_clips=clips, poison=[2], train_sampling_strategy="sequential").train()

    trainer = toy_trainer(
        tmp_path / "skip", train_clips=clips, poison=[2], nonfinite_loss="skip", train_sampling_strategy="sequential"
    )
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    with caplog.at_level(logging.WARNING, logger="hf_audiocap.training.trainer"):
        trainer.train()
    assert "at step 2 (epoch 0.25), batch of 2 clip(s): clip2, clip3: batch skipped" in caplog.text
    assert trainer.skipped_batches == 1 and trainer.state.global_step == 4
    assert any(not torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())
    assert all(bool(torch.isfinite(v).all()) for v in trainer.model.state_dict().values())


def test_toy_evaluation_two_passes_in_dataset_order(tmp_path):
    """One evaluation = the teacher-forced loss over the clips' captions and their perplexity, then one generated
    caption per clip scored by `metrics_fn` against its references, in the dataset's order (group_by_length would
    sort transformers' evaluation batches by the `length` column), logged once, its samples handed to callbacks."""
    from transformers import TrainerCallback

    class Samples(TrainerCallback):
        def __init__(self):
            self.calls = []

        def on_evaluate(self, args, state, control, metrics=None, samples=None, **kwargs):
            self.calls.append((dict(metrics), samples))

    scored = []

    def metrics_fn(predictions, references):
        scored.append((predictions, references))
        return {"exact": float(np.mean([p == r[0].split()[0] for p, r in zip(predictions, references)]))}

    clips = toy_clips(7)
    samples = Samples()
    trainer = toy_trainer(
        tmp_path / "eval",
        eval_clips=clips,
        callbacks=[samples],
        train_sampling_strategy="group_by_length",
        trainer_kwargs={"metrics_fn": metrics_fn, "num_sample_captions": 2},
    )
    metrics = trainer.evaluate()
    predictions, references = scored[-1]
    assert references == clips["captions"] and len(predictions) == 7 == len(trainer.last_predictions)
    assert metrics["eval_exact"] == 1.0  # each prediction sits at its clip's position
    assert metrics["eval_perplexity"] == pytest.approx(math.exp(metrics["eval_loss"]))
    assert {"eval_runtime", "eval_samples_per_second"} <= set(metrics)
    evaluations = [e for e in trainer.state.log_history if "eval_loss" in e]
    assert len(evaluations) == 1 and evaluations[0]["eval_exact"] == 1.0
    logged, handed = samples.calls[-1]
    assert logged["eval_loss"] == metrics["eval_loss"]
    assert [s["id"] for s in handed] == ["clip0", "clip1"] and handed[1]["references"] == clips[1]["captions"]
    assert not trainer.control.should_evaluate


# What AudioCapTrainer overrides: public methods the transformers docs name for subclassing (plus the public
# `evaluation_loop` it calls), never an underscore one; each carries a comment saying why.
PUBLIC_OVERRIDES = {
    "train",
    "training_step",
    "compute_loss",
    "log",
    "get_train_dataloader",
    "get_eval_dataloader",
    "evaluate",
    "prediction_step",
    "create_model_card",
    "create_optimizer",  # its docstring: "subclass and override this method" (encoder_learning_rate)
}
OWN_ATTRIBUTES = {
    "scst_reward",
    "_scst_rewards",
    "_loss_part_sums",
    "_loss_part_tokens",
    "_batch_clip_ids",
    "_batch_references",
    "model_label_smoothing",
    "train_split_by_node",
    "eval_data_collator",
    "metrics_fn",
    "num_sample_captions",
    "spec_augment",
    "last_predictions",
    "skipped_batches",
    "_generation_kwargs",
}


def test_trainer_overrides_only_public_methods_and_shadows_nothing(tmp_path):
    """In this transformers: the methods AudioCapTrainer shares with Seq2SeqTrainer are exactly the public overrides,
    each accepts every parameter of the method it overrides, and neither its other methods nor the attributes its
    `__init__` adds exist on the Trainer (a release that added one of those names would be shadowed silently)."""
    import inspect

    from transformers import Seq2SeqTrainer

    from hf_audiocap.training.trainer import AudioCapTrainer

    own = {name for name, value in vars(AudioCapTrainer).items() if callable(value)}
    assert own & set(dir(Seq2SeqTrainer)) == PUBLIC_OVERRIDES | {"__init__"}
    for name in PUBLIC_OVERRIDES:
        theirs = inspect.signature(getattr(Seq2SeqTrainer, name)).parameters
        ours = inspect.signature(getattr(AudioCapTrainer, name)).parameters
        if not any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in ours.values()):
            assert set(theirs) <= set(ours), (name, list(theirs), list(ours))

    trainer = toy_trainer(tmp_path / "ours")
    plain = Seq2SeqTrainer(
        model=ToyCaptioner(), args=trainer.args, train_dataset=toy_clips(2), processing_class=ToyProcessor()
    )
    assert set(vars(trainer)) - set(vars(plain)) == OWN_ATTRIBUTES
