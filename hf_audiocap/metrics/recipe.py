"""The caption metrics a training run evaluates with: the recipe's selection (``metrics: coco | dcase2024 | names``),
checked before training, computed once per evaluation however many processes run."""

from __future__ import annotations

from functools import partial

from .core import check_metric, compute_caption_metrics, resolve_metrics


def _shared(compute, predictions, references) -> dict:
    """``compute(predictions, references)`` on the main process only, its result (or its exception) sent to the
    others. Every process holds the gathered predictions (the Trainer's evaluation loop gathers them); scoring them
    once saves N-1 JVMs, SPICE runs and FENSE passes, and every process logs the same numbers."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return compute(predictions, references)
    box = [None]
    if dist.get_rank() == 0:
        try:
            box[0] = ("ok", compute(predictions, references))
        except Exception as err:  # noqa: BLE001 - re-raised on every process, none left waiting
            box[0] = ("error", err)
    dist.broadcast_object_list(box, src=0)
    status, value = box[0]
    if status == "error":
        raise value
    return value


def evaluation_metrics(metrics="coco", metric_for_best_model: str | None = None, training_references=None):
    """The ``metrics_fn(predictions, references)`` of a run. Raises ValueError (one line) before anything runs when
    ``metrics`` names an unknown preset or metric, or ``metric_for_best_model`` names a metric that the selection
    does not compute or that cannot be computed here (SPICE without Java or its jars, FENSE without its models)."""
    resolve_metrics(metrics)
    if metric_for_best_model:
        check_metric(metric_for_best_model, metrics, training_references=training_references)
    compute = partial(compute_caption_metrics, metrics=metrics, training_references=training_references, per_clip=True)
    return EvaluationMetrics(compute)


class EvaluationMetrics:
    """A run's ``metrics_fn``: the corpus scores of one evaluation, its per-clip scores (a by-product, on every
    process) kept as :attr:`last_per_clip` for the test report's per-caption file."""

    def __init__(self, compute) -> None:
        self.compute = compute
        self.last_per_clip: dict[str, list[float]] | None = None

    def __call__(self, predictions, references) -> dict:
        scores = dict(_shared(self.compute, predictions, references))
        self.last_per_clip = scores.pop("per_clip", None)
        return scores
