"""Trainer callbacks: sample captions beside their references, the training-curves plot, and over-fitting said in
words (with `fit_summary`, which the final report and the model card also read)."""

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


def fit_summary(log_history: list[dict], patience: int = 2, main_metric: str | None = None) -> dict:
    """What the validation loss says about the run, from `TrainerState.log_history`.

    Each evaluation is paired with the training cross-entropy (`caption_loss`, the same quantity as `eval_loss`) of the
    batches since the previous evaluation. Over-fitting is the validation cross-entropy rising for `patience`
    evaluations in a row while the training cross-entropy fell over the same evaluations. Returns `best_epoch` and
    `best_eval_loss` (the lowest validation cross-entropy), `best_<metric>_epoch` for `main_metric` (higher is better),
    `overfitting` (bool), `overfitting_epoch` (the first evaluation of the rise) and `line` (one sentence saying it)."""
    evals, since, train_ce = [], [], None
    for entry in log_history:
        if "caption_loss" in entry:
            since.append(entry["caption_loss"])
            train_ce = entry["caption_loss"]
        if "eval_loss" in entry:
            mean = sum(since) / len(since) if since else train_ce
            evals.append({**entry, "train_ce": mean})
            since = []
    summary: dict = {"overfitting": False, "evaluations": len(evals)}
    if not evals:
        summary["line"] = "no validation loss was logged"
        return summary
    best = min(evals, key=lambda e: e["eval_loss"])
    summary.update(best_epoch=best.get("epoch"), best_eval_loss=best["eval_loss"])
    if main_metric and any(main_metric in e for e in evals):
        top = max((e for e in evals if main_metric in e), key=lambda e: e[main_metric])
        summary[f"best_{main_metric.removeprefix('eval_')}_epoch"] = top.get("epoch")
    for k in range(patience, len(evals)):
        window = evals[k - patience : k + 1]
        rising = all(b["eval_loss"] > a["eval_loss"] for a, b in zip(window, window[1:]))
        first, last = window[0], window[-1]
        falling = (
            first["train_ce"] is not None and last["train_ce"] is not None and last["train_ce"] < first["train_ce"]
        )
        if rising and falling:
            summary.update(overfitting=True, overfitting_epoch=first.get("epoch"))
            summary["line"] = (
                f"over-fitting: validation cross-entropy rose for {patience} evaluations (epoch {_epoch(first)}: "
                f"{first['eval_loss']:.3f} -> epoch {_epoch(last)}: {last['eval_loss']:.3f}) while training "
                f"cross-entropy fell ({first['train_ce']:.3f} -> {last['train_ce']:.3f}); lowest validation "
                f"cross-entropy {best['eval_loss']:.3f} at epoch {_epoch(best)}"
            )
            return summary
    summary["line"] = (
        f"no over-fitting seen: lowest validation cross-entropy {best['eval_loss']:.3f} at epoch {_epoch(best)} "
        f"of {len(evals)} evaluation(s)"
    )
    return summary


def _epoch(entry: dict) -> str:
    epoch = entry.get("epoch")
    return "?" if epoch is None else f"{round(epoch, 2):g}"


class OverfittingCallback(TrainerCallback):
    """Logs one warning line the first time `fit_summary` sees over-fitting (see `overfitting_patience`)."""

    def __init__(self, patience: int = 2):
        self.patience = patience
        self.said = False

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if self.said or not state.is_world_process_zero or not metrics or "eval_loss" not in metrics:
            return
        summary = fit_summary(state.log_history, self.patience)
        if summary["overfitting"]:
            logger.warning("%s", summary["line"])
            self.said = True


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
