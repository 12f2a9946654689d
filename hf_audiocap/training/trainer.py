"""Seq2SeqTrainer whose evaluation reports what captioning needs.

An evaluation makes two passes over the validation clips:
1. teacher forcing on every (clip, caption) pair -> `eval_loss` and `eval_perplexity` = exp(loss),
   the signal that reveals over-fitting (each clip is encoded once for all of its references);
2. generation once per clip, scored against all of its references -> the caption metrics
   (`eval_cider_d`, `eval_spider`, ...), because a low loss is not a good caption.
The generated captions of a few clips are handed to callbacks as `samples`.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
from transformers import Seq2SeqTrainer
from transformers.trainer_utils import speed_metrics


class AudioCapTrainer(Seq2SeqTrainer):
    def __init__(self, *args, eval_data_collator=None, metrics_fn=None, num_sample_captions: int = 5, **kwargs):
        super().__init__(*args, **kwargs)
        self.eval_data_collator = eval_data_collator  # no augmentation at evaluation
        self.metrics_fn = metrics_fn
        self.num_sample_captions = num_sample_captions
        self.last_predictions: list[str] | None = None

    def get_eval_dataloader(self, eval_dataset=None):
        if self.eval_data_collator is None:
            return super().get_eval_dataloader(eval_dataset)
        train_collator, self.data_collator = self.data_collator, self.eval_data_collator
        try:
            return super().get_eval_dataloader(eval_dataset)
        finally:
            self.data_collator = train_collator

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval", **gen_kwargs):
        clips = eval_dataset if eval_dataset is not None else self.eval_dataset
        if clips is None:
            raise ValueError("evaluation needs an eval_dataset of clips with their `captions`")
        self._memory_tracker.start()
        start = time.time()

        # 1. Teacher forcing on every reference caption: validation loss and perplexity.
        loss_output = self.evaluation_loop(
            self.get_eval_dataloader(clips),
            description="Validation loss",
            prediction_loss_only=True,
            ignore_keys=ignore_keys,
            metric_key_prefix=metric_key_prefix,
        )
        metrics = dict(loss_output.metrics)
        loss = metrics.get(f"{metric_key_prefix}_loss")
        if loss is not None:
            metrics[f"{metric_key_prefix}_perplexity"] = math.exp(min(loss, 50.0))

        # 2. Generation once per clip, scored against all of its references.
        predictions = self.generate_captions(clips, ignore_keys=ignore_keys, **gen_kwargs)
        references = clips["captions"]
        samples = [
            {"id": clips[i]["id"], "prediction": predictions[i], "references": references[i]}
            for i in range(min(self.num_sample_captions, len(predictions)))
        ]
        if self.metrics_fn is not None:
            for key, value in self.metrics_fn(predictions, references).items():
                if isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value)):
                    metrics[f"{metric_key_prefix}_{key}"] = float(value)

        metrics.update(speed_metrics(metric_key_prefix, start, num_samples=len(clips)))
        if "epoch" not in metrics and self.state.epoch is not None:
            metrics["epoch"] = self.state.epoch
        self.last_predictions = predictions
        self.log(metrics)
        # `on_evaluate` (not a bare `call_event`) also clears `control.should_evaluate`: otherwise the flag set at the
        # last step survives into the epoch-end check and the same evaluation runs twice.
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics, samples=samples)
        self._memory_tracker.stop_and_update_metrics(metrics)
        return metrics

    def generate_captions(self, clips, ignore_keys=None, **gen_kwargs) -> list[str]:
        """Generate one caption per clip with the recipe's generation settings (beams, max length)."""
        gen_kwargs = dict(gen_kwargs)
        if gen_kwargs.get("max_length") is None and gen_kwargs.get("max_new_tokens") is None:
            gen_kwargs["max_length"] = self.args.generation_max_length
        if gen_kwargs.get("num_beams") is None and self.args.generation_num_beams is not None:
            gen_kwargs["num_beams"] = self.args.generation_num_beams
        self._gen_kwargs = {k: v for k, v in gen_kwargs.items() if v is not None}
        without_captions = clips.remove_columns(
            [c for c in ("caption", "captions", "caption_index") if c in clips.column_names]
        )
        output = self.evaluation_loop(
            self.get_eval_dataloader(without_captions),
            description="Generation",
            prediction_loss_only=False,
            ignore_keys=ignore_keys,
            metric_key_prefix="gen",
        )
        tokens = np.where(output.predictions == -100, self.processing_class.tokenizer.pad_token_id, output.predictions)
        return [c.strip() for c in self.processing_class.batch_decode(tokens, skip_special_tokens=True)]

    def create_model_card(self, *args, **kwargs):
        # recipes/train.py writes the project's own card (metrics, data, usage) before pushing: keep it.
        if (Path(self.args.output_dir) / "README.md").is_file():
            return
        super().create_model_card(*args, **kwargs)
