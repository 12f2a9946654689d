"""Trainer callbacks: sample captions beside their references, and the training-curves plot."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from transformers import TrainerCallback

from hf_audiocap.data.atomic import write_atomic
from hf_audiocap.training.plots import plot_training_curves

logger = logging.getLogger(__name__)


class SampleCaptionsCallback(TrainerCallback):
    """At each evaluation, prints a few generated captions beside their references and appends them to
    `<output_dir>/eval_samples.jsonl` (with the step), so what the model says is seen, not only its scores. A resumed
    run first drops the lines of steps after its checkpoint (written by the interrupted run, they are written again)."""

    def on_train_begin(self, args, state, control, **kwargs):
        path = Path(args.output_dir) / "eval_samples.jsonl"
        if state.global_step == 0 or not state.is_world_process_zero or not path.is_file():
            return
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = [line for line in lines if json.loads(line).get("step", 0) <= state.global_step]
        if len(kept) != len(lines):
            write_atomic(path, "".join(kept))

    def on_evaluate(self, args, state, control, metrics=None, samples=None, **kwargs):
        if not samples or not state.is_world_process_zero:
            return
        lines = [f"Sample captions at step {state.global_step}:"]
        for s in samples:
            lines.append(f"  [{s['id']}] generated: {s['prediction']}")
            lines.append(f"  {' ' * (len(str(s['id'])) + 2)} reference: {s['references'][0]}")
        print("\n".join(lines), flush=True)
        Path(args.output_dir).mkdir(parents=True, exist_ok=True)
        with open(Path(args.output_dir) / "eval_samples.jsonl", "a", encoding="utf-8") as f:
            for s in samples:
                f.write(json.dumps({"step": state.global_step, **s}, ensure_ascii=False) + "\n")


class TrainingCurvesCallback(TrainerCallback):
    """Redraws `<output_dir>/training_curves.png` (training/validation loss, perplexity, main metric)
    after every evaluation and at the end, so over-fitting is seen at a glance."""

    def __init__(self, main_metric: str = "eval_cider_d", train_loss_label: str = "training loss"):
        self.main_metric = main_metric
        self.train_loss_label = train_loss_label

    def _draw(self, args, state):
        if not state.is_world_process_zero:
            return
        try:
            plot_training_curves(
                state.log_history,
                Path(args.output_dir) / "training_curves.png",
                self.main_metric,
                self.train_loss_label,
            )
        except Exception as err:  # a plot must never stop a training run
            logger.warning("could not draw the training curves: %s", err)

    def on_evaluate(self, args, state, control, **kwargs):
        self._draw(args, state)

    def on_train_end(self, args, state, control, **kwargs):
        self._draw(args, state)


class WeightsDigestCallback(TrainerCallback):
    """At the end of training, every process writes `<folder>/rank<k>.json` with a SHA-256 of its model weights
    (and the step), so a distributed run can be checked to end with identical replicas. `build_trainer` adds it when
    the environment variable `HF_AUDIOCAP_WEIGHTS_DIGEST_DIR` names a folder (used by the tests)."""

    ENV = "HF_AUDIOCAP_WEIGHTS_DIGEST_DIR"

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        import hashlib

        import torch

        digest = hashlib.sha256()
        for name, tensor in sorted(model.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
        self.folder.mkdir(parents=True, exist_ok=True)
        rank = args.process_index
        (self.folder / f"rank{rank}.json").write_text(
            json.dumps(
                {"rank": rank, "world_size": args.world_size, "step": state.global_step, "sha256": digest.hexdigest()}
            )
        )
