"""Seq2SeqTrainer whose evaluation reports what captioning needs.

An evaluation makes two passes over the validation clips, in the dataset's order:
1. teacher forcing on every (clip, caption) pair -> `eval_loss` and `eval_perplexity` = exp(loss),
   the signal that reveals over-fitting (each clip is encoded once for all of its references);
2. generation once per clip, scored against all of its references -> the caption metrics
   (`eval_cider_d`, `eval_spider`, ...), because a low loss is not a good caption.
The generated captions of a few clips are handed to callbacks as `samples`.

Training is teacher forcing on the model's cross-entropy, or, with `scst: true`, self-critical sequence training: the
CIDEr-D reward of captions the model samples (or its best beams) replaces it (see scst.py); `scst_reward` is logged.

Training survives faults:
- checkpoints are complete or ignored: `checkpoint_complete.json` is written last, old checkpoints are rotated out
  only after it, and `train(resume_from_checkpoint="last")` resumes from the newest complete one (see checkpoints.py:
  `CheckpointCompletionCallback`, added here);
- SpecAugment is drawn here, at the training step, not in the collator: the Trainer restores the RNG state of a
  checkpoint after fetching the first batch of a resumed run (the dataloader also fetches one batch ahead), so
  randomness drawn while collating would differ after a resume, while randomness drawn here replays exactly;
- a non-finite training loss stops the run (`NonFiniteLossError`, a ValueError) or, with `nonfinite_loss: skip`, drops
  that batch (no backward: its gradients stay None, so the optimizer leaves every weight and moment as they were), with
  one line naming the step and the clips of the batch (training batches carry `clip_ids`).

Only public, documented Trainer API is used: the methods the transformers docs name for overriding (`train`,
`training_step`, `compute_loss`, `log`, `evaluate`, `prediction_step`, `get_train_dataloader`, `get_eval_dataloader`,
`create_model_card`), the public `evaluation_loop`, callbacks, the arguments, and accelerate's public API; each
override says why it exists. They have the same signatures in every transformers from 5.16 to 5.24.
"""

from __future__ import annotations

import ast
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, SequentialSampler
from transformers import Seq2SeqTrainer
from transformers.trainer_utils import speed_metrics

from hf_audiocap.generation import apply_repetition_control
from hf_audiocap.modeling_audiocap import AudioCapForConditionalGeneration
from hf_audiocap.modeling_audiocap_prefix import AudioCapPrefixForConditionalGeneration
from hf_audiocap.rerank import RerankSettings, generate_candidates, rerank_candidates
from hf_audiocap.training.checkpoints import CheckpointCompletionCallback, resolve_checkpoint
from hf_audiocap.training.scst import scst_loss

logger = logging.getLogger(__name__)


class NonFiniteLossError(ValueError):
    """The training loss became NaN or infinite; the message names the step and the clips of the batch."""


class _SkipBatch(Exception):
    def __init__(self, loss):
        self.loss = loss


def scst_loss_share(num_label_tokens, num_items_in_batch, num_processes: int, average_tokens_across_devices: bool):
    """The factor that turns the SCST loss of one batch (its own mean) into what the Trainer expects of
    `compute_loss`, from the values it passes and the public arguments.

    With `num_items_in_batch` None, the Trainer divides the loss by the number of batches it accumulates: factor 1.
    With it (the label tokens of all the batches of the optimizer step, of every process when
    `average_tokens_across_devices`), it takes the loss as already normalised over the whole step, the way the model's
    cross-entropy is (a sum over this batch's tokens divided by that count, times the number of processes, whose
    gradients DDP averages), and divides it by nothing. So each batch's mean is weighted by its share of those label
    tokens: the weights of the batches of a step sum to 1, as they do for the cross-entropy, the last, shorter
    accumulation of an epoch included."""
    if num_items_in_batch is None:
        return 1.0
    share = num_label_tokens / num_items_in_batch
    return share * num_processes if average_tokens_across_devices else share


class TiedWeightsFilter(logging.Filter):
    """Drops the Trainer's "There were missing keys in the checkpoint model loaded: [...]" warning when every key it
    names is a tied weight whose twin was loaded (the LM head tied to the token embeddings).

    A checkpoint stores a tensor shared by several parameters once (safetensors), under one of its names; loading it
    (a resume, the best model at the end) fills every name that shares it. The Trainer compares the names it did not
    find with the model's `_keys_to_ignore_on_save`, not with its tied weights (`_tied_weights_keys`), so it warns
    about a head that is loaded. Any other missing key, or a tied group missing all its names, still warns."""

    PREFIX = "There were missing keys in the checkpoint model loaded: "

    def __init__(self, model):
        super().__init__()
        shared: dict[int, set[str]] = {}
        for name, parameter in model.named_parameters(remove_duplicate=False):
            shared.setdefault(id(parameter), set()).add(name)
        self.groups = [names for names in shared.values() if len(names) > 1]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not message.startswith(self.PREFIX):
            return True
        try:
            missing = set(ast.literal_eval(message[len(self.PREFIX) :].rstrip(".")))
        except (ValueError, SyntaxError, TypeError):
            return True
        loaded_twin = all(any(key in names and not names <= missing for names in self.groups) for key in missing)
        return not loaded_twin


def end_distributed() -> None:
    """Ends a multi-process run together: each rank waits for the others, then closes the process group before the
    interpreter shuts down (otherwise gloo can abort a rank in C++ after all its work is written, "terminate called
    without an active exception", and torchrun reports the run as failed). Nothing to do in a single process."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def audio_encoder(model) -> torch.nn.Module:
    """The audio encoder proper of either model kind (not the adapter or projector after it)."""
    if isinstance(model, AudioCapPrefixForConditionalGeneration):
        return model.encoder
    return model.model.encoder.model


class AudioCapTrainer(Seq2SeqTrainer):
    def __init__(
        self,
        *args,
        eval_data_collator=None,
        metrics_fn=None,
        num_sample_captions: int = 5,
        spec_augment=None,
        train_split_by_node: bool = False,
        scst_reward=None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        # self-critical training (args.scst): the CIDEr-D reward of sampled captions replaces the cross-entropy
        self.scst_reward = scst_reward
        if scst_reward is not None and self.compute_loss_func is not None:
            raise ValueError("scst: the SCST loss replaces the training loss: drop compute_loss_func")
        self._scst_rewards: list[float] = []
        self._loss_part_sums: dict[str, torch.Tensor] = {}  # see _record_loss_parts and log
        self._loss_part_tokens = 0
        self._batch_clip_ids = None
        self._batch_references = None
        # label_smoothing_factor: our model smooths its own cross-entropy (training batches only, see compute_loss);
        # transformers' label smoother would replace the model's loss (and its keyword term) by its own
        self.model_label_smoothing = 0.0
        if self.args.label_smoothing_factor and isinstance(
            self.model, (AudioCapForConditionalGeneration, AudioCapPrefixForConditionalGeneration)
        ):
            self.model_label_smoothing, self.label_smoother = self.args.label_smoothing_factor, None
        # checkpoints complete or ignored: transformers must not delete old ones during its save (arguments.py moves
        # save_total_limit to checkpoint_total_limit; plain Seq2SeqTrainingArguments are moved here)
        if self.args.save_total_limit is not None:
            self.args.checkpoint_total_limit, self.args.save_total_limit = self.args.save_total_limit, None
        self.add_callback(CheckpointCompletionCallback())
        # the train dataset is already this process's part (a stream split by `split_dataset_by_node`): its dataloader
        # must not be sharded again (see get_train_dataloader)
        self.train_split_by_node = train_split_by_node
        self.eval_data_collator = eval_data_collator  # no augmentation at evaluation
        self.metrics_fn = metrics_fn
        self.num_sample_captions = num_sample_captions
        self.spec_augment = spec_augment  # applied to training batches in training_step
        self.last_predictions: list[str] | None = None
        self.skipped_batches = 0
        self._generation_kwargs: dict | None = None  # set during the generation pass of evaluate

    def create_optimizer(self, model=None):
        """transformers' optimizer, with the audio encoder's weights in groups of their own at
        `encoder_learning_rate` (the scheduler then scales every group by the same factor)."""
        fresh = self.optimizer is None
        optimizer = super().create_optimizer(model)
        rate = getattr(self.args, "encoder_learning_rate", None)
        if rate is None or not fresh:
            return optimizer
        # the parameters themselves, as the wrapped model (DDP, FSDP) shares them with the model it wraps
        encoder = audio_encoder(self.accelerator.unwrap_model(self.model if model is None else model))
        in_encoder = {id(p) for p in encoder.parameters()}
        groups, optimizer.param_groups = optimizer.param_groups, []
        for group in groups:
            for lr, wanted in ((group["lr"], False), (rate, True)):
                params = [p for p in group["params"] if (id(p) in in_encoder) == wanted]
                if params:
                    optimizer.add_param_group({**group, "params": params, "lr": lr})
        return optimizer

    # --- training: resume from complete checkpoints only, augment, stop (or skip) on a non-finite loss ----------

    def train(self, resume_from_checkpoint=None, trial=None, ignore_keys_for_eval=None):
        """`resume_from_checkpoint`: a checkpoint folder, or `"last"`/True for the newest COMPLETE checkpoint of
        `output_dir` (a fresh start when there is none)."""
        # override: transformers' own "last" (get_last_checkpoint) would pick a half-written checkpoint, and its loads
        # of a checkpoint (the resume, the best model) warn of the tied head they do load (TiedWeightsFilter)
        resume = resolve_checkpoint(resume_from_checkpoint, self.args.output_dir)
        trainer_logger, tied = logging.getLogger("transformers.trainer"), TiedWeightsFilter(self.model)
        trainer_logger.addFilter(tied)
        try:
            return super().train(resume_from_checkpoint=resume, trial=trial, ignore_keys_for_eval=ignore_keys_for_eval)
        finally:
            trainer_logger.removeFilter(tied)

    def training_step(self, model, inputs, num_items_in_batch=None):
        # override: the batch's clip ids and references are not model inputs; SpecAugment is drawn here, after a
        # resumed run's RNG state is restored; a skipped batch (nonfinite_loss: skip) runs no backward
        self._batch_clip_ids = inputs.pop("clip_ids", None)
        self._batch_references = inputs.pop("references", None)
        if self.spec_augment is not None and "input_features" in inputs and "attention_mask" in inputs:
            inputs["input_features"] = self.spec_augment(inputs["input_features"], inputs["attention_mask"])
        try:
            return super().training_step(model, inputs, num_items_in_batch)
        except _SkipBatch as skipped:
            return skipped.loss

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The model's loss; with label_smoothing_factor, training batches get it smoothed by the model itself (the
        keyword loss stays; validation loss and perplexity stay the plain cross-entropy, not the smoothed one)."""
        # override: SCST replaces the loss, label smoothing goes to the model, a non-finite loss stops or skips
        if self.scst_reward is not None and model.training:
            return self._scst_loss(model, inputs, return_outputs, num_items_in_batch)
        if self.model_label_smoothing and model.training:
            inputs = {**inputs, "smoothing": self.model_label_smoothing}
        # training batches: the outputs carry the parts of the objective, logged beside it (see log)
        want_outputs = return_outputs or model.training
        result = super().compute_loss(
            model, inputs, return_outputs=want_outputs, num_items_in_batch=num_items_in_batch
        )
        loss, outputs = result if want_outputs else (result, None)
        if model.training:
            if not bool(torch.isfinite(loss).all()):
                self._on_nonfinite_loss(loss)
            self._record_loss_parts(outputs, inputs.get("labels"))
        return (loss, outputs) if return_outputs else loss

    def _record_loss_parts(self, outputs, labels) -> None:
        """Sums each part of the objective the model reports (`caption_loss`: the plain cross-entropy, `keyword_loss`)
        weighted by the batch's label tokens, until the next log. Tensors on the device: no synchronisation per step."""
        if labels is None or not isinstance(outputs, dict):
            return
        tokens = labels.ne(-100).sum()
        for name in ("caption_loss", "keyword_loss"):
            value = outputs.get(name)
            if value is not None:
                total = self._loss_part_sums.get(name)
                part = value.detach().float() * tokens
                self._loss_part_sums[name] = part if total is None else total + part
        if "caption_loss" in self._loss_part_sums:
            self._loss_part_tokens = self._loss_part_tokens + tokens

    def _scst_loss(self, model, inputs, return_outputs, num_items_in_batch=None):
        if self._batch_references is None:
            raise ValueError("scst: the training batch has no `references` (the collator's return_references)")
        loss, mean_reward = scst_loss(
            model,
            inputs,
            self._batch_references,
            self.scst_reward,
            decode=lambda ids: self.processing_class.batch_decode(ids, skip_special_tokens=True),
            num_samples=self.args.scst_samples,
            max_length=self.args.generation_max_length or 32,
            sampling=getattr(self.args, "scst_sampling", "sample"),
        )
        self._scst_rewards.append(mean_reward)
        labels = inputs.get("labels")
        num_label_tokens = labels.ne(-100).sum() if labels is not None else None
        if num_items_in_batch is not None and num_label_tokens is None:
            raise ValueError("scst: the training batch has no `labels` to weigh it within the optimizer step")
        loss = loss * scst_loss_share(
            num_label_tokens,
            num_items_in_batch,
            self.accelerator.num_processes,
            self.args.average_tokens_across_devices,
        )
        if not bool(torch.isfinite(loss)):
            self._on_nonfinite_loss(loss)
        return (loss, None) if return_outputs else loss

    def log(self, logs: dict, *args, **kwargs) -> None:
        """Training logs carry, beside the objective `loss`, what it is made of since the last log, token-weighted
        over every process: `caption_loss`, the plain cross-entropy (unsmoothed, no auxiliary term: the quantity
        `eval_loss` measures, so the two are compared like with like), its `perplexity`, and `keyword_loss` (before its
        weight). A self-critical run carries `scst_reward`: the mean CIDEr-D of the sampled captions (it should rise)."""
        # override: adds the parts of the objective and scst_reward to the training logs; every process logs the
        # training loss at the same step (the Trainer gathers it), so the reduction below is collective-safe
        if "loss" in logs and self._loss_part_sums:
            names = sorted(self._loss_part_sums)
            totals = torch.stack([self._loss_part_sums[n] for n in names] + [self._loss_part_tokens.float()])
            if self.accelerator.num_processes > 1:
                totals = self.accelerator.reduce(totals, reduction="sum")
            totals = totals.tolist()
            parts = {name: totals[i] / max(totals[-1], 1.0) for i, name in enumerate(names)}
            if "caption_loss" in parts:
                parts["perplexity"] = math.exp(min(parts["caption_loss"], 50.0))
            logs = {**logs, **{k: round(v, 4) for k, v in parts.items()}}
            self._loss_part_sums, self._loss_part_tokens = {}, 0
        if self._scst_rewards and "loss" in logs:
            logs = {**logs, "scst_reward": float(np.mean(self._scst_rewards))}
            self._scst_rewards = []
        super().log(logs, *args, **kwargs)

    def _on_nonfinite_loss(self, loss) -> None:
        ids = list(self._batch_clip_ids or [])
        shown = ", ".join(str(i) for i in ids[:16]) + (f" (+{len(ids) - 16} more)" if len(ids) > 16 else "")
        message = (
            f"non-finite training loss ({float(loss.detach().float().mean()):.4g}) at step {self.state.global_step + 1} "
            f"(epoch {self.state.epoch or 0.0:.2f}), batch of {len(ids)} clip(s): {shown or 'ids unknown'}"
        )
        if getattr(self.args, "nonfinite_loss", "stop") != "skip":
            raise NonFiniteLossError(f"{message} (nonfinite_loss: skip drops such batches instead)")
        self.skipped_batches += 1
        logger.warning("%s: batch skipped (nonfinite_loss: skip), %d so far", message, self.skipped_batches)
        raise _SkipBatch(loss.detach())

    # --- data --------------------------------------------------------------------------------------------------

    def get_train_dataloader(self):
        """With `train_split_by_node`, this process's part of a stream, batched as it comes.

        `accelerator.prepare` would shard it a second time. What accelerate 1.15 does with an `IterableDataset` on
        several processes (`data_loader.prepare_data_loader`, checked by running it): by default `dispatch_batches=True`:
        rank 0 alone reads (its own part), concatenates N batches and sends each process a slice, so the other parts
        are never read (and here it fails: the batches carry `clip_ids` strings, which it cannot concatenate); with
        `dispatch_batches=False`, `dataset.shard(N, rank)` when the part has >= N shards, else `IterableDatasetShard`
        (every process keeps one batch in N of its part): each process trains on a subsequence of its part. So the
        DataLoader is prepared as for one process (accelerate's public `prepare_data_loader` with `num_processes=1`:
        neither sharded nor dispatched; batches still moved to the device): each process draws every batch of its own
        part, and DDP averages the gradients as usual (tests/test_streaming.py::test_two_processes_read_disjoint_parts
        checks the exact rows per process)."""
        # override: the only way to keep accelerate from sharding an already split stream
        if not self.train_split_by_node or self.accelerator.num_processes == 1:
            return super().get_train_dataloader()
        from accelerate.data_loader import prepare_data_loader

        if self.args.remove_unused_columns:
            raise ValueError(
                "train_split_by_node: the collator reads the raw columns, set remove_unused_columns false"
            )
        accelerator = self.accelerator
        return prepare_data_loader(
            DataLoader(self.train_dataset, batch_size=self.args.train_batch_size, **self._loader_kwargs()),
            accelerator.device,
            num_processes=1,
            process_index=0,
            put_on_device=accelerator.device_placement,
            dispatch_batches=False,
            non_blocking=accelerator.non_blocking,
            use_stateful_dataloader=accelerator.use_stateful_dataloader,
        )

    def get_eval_dataloader(self, eval_dataset=None):
        """Clips in the dataset's order (each generated caption is scored against the references of the clip at the
        same position; under several processes accelerate hands each one batch in N and `evaluation_loop` gathers them
        back in order, without the repeated clips that even the last batches), collated by the evaluation collator (no
        augmentation, all captions)."""
        # override: transformers length-groups evaluation batches too under train_sampling_strategy group_by_length,
        # and would collate with the training collator
        if isinstance(eval_dataset, str):
            eval_dataset = self.eval_dataset[eval_dataset]
        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        if dataset is None:
            raise ValueError("evaluation needs an eval_dataset")
        collator = self.eval_data_collator if self.eval_data_collator is not None else self.data_collator
        loader = DataLoader(
            dataset,
            batch_size=self.args.eval_batch_size,
            sampler=SequentialSampler(dataset),  # never drop_last: every clip gets its caption
            **{**self._loader_kwargs(), "collate_fn": collator},
        )
        return self.accelerator.prepare(loader)

    def _loader_kwargs(self) -> dict:
        """DataLoader settings from the arguments (those the Trainer's own dataloaders take)."""
        return {
            "collate_fn": self.data_collator,
            "num_workers": self.args.dataloader_num_workers,
            "pin_memory": self.args.dataloader_pin_memory,
            "persistent_workers": self.args.dataloader_persistent_workers,
            "multiprocessing_context": self.args.dataloader_multiprocessing_context,
            "prefetch_factor": self.args.dataloader_prefetch_factor,
            "in_order": self.args.dataloader_in_order,
        }

    # --- evaluation: loss and perplexity, then generated captions scored ---------------------------------------

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval", **gen_kwargs):
        # override: two passes (teacher-forced loss over every caption, generation once per clip) reported as one.
        # `generate`: whether the second pass runs (default: predict_with_generate; the test report always captions)
        generate = gen_kwargs.pop("generate", self.args.predict_with_generate)
        if isinstance(eval_dataset, str):
            eval_dataset = self.eval_dataset[eval_dataset]
        clips = eval_dataset if eval_dataset is not None else self.eval_dataset
        if clips is None:
            raise ValueError("evaluation needs an eval_dataset of clips with their `captions`")
        if isinstance(clips, dict):  # several corpora: each scored under its own prefix, reported as one evaluation
            metrics, samples = {}, []
            for name, corpus_clips in clips.items():
                more, shown = self._evaluate_clips(
                    corpus_clips, ignore_keys, f"{metric_key_prefix}_{name}", gen_kwargs, generate
                )
                metrics.update(more)
                samples += [{**sample, "id": f"{name}/{sample['id']}"} for sample in shown]
            # the whole validation set's cross-entropy (the corpora's, weighted by their clips): what the curves, the
            # fit summary and the over-fitting warning read
            losses = [(metrics.get(f"{metric_key_prefix}_{n}_loss"), len(c)) for n, c in clips.items()]
            if all(loss is not None for loss, _ in losses):
                loss = sum(loss * n for loss, n in losses) / sum(n for _, n in losses)
                metrics[f"{metric_key_prefix}_loss"] = loss
                metrics[f"{metric_key_prefix}_perplexity"] = math.exp(min(loss, 50.0))
        else:
            metrics, samples = self._evaluate_clips(clips, ignore_keys, metric_key_prefix, gen_kwargs, generate)
        if "epoch" not in metrics and self.state.epoch is not None:
            metrics["epoch"] = self.state.epoch
        self.log(metrics)
        # `on_evaluate` (not a bare `call_event`) also clears `control.should_evaluate`: otherwise the flag set at the
        # last step survives into the epoch-end check and the same evaluation runs twice.
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics, samples=samples)
        return metrics

    def _evaluate_clips(
        self, clips, ignore_keys, metric_key_prefix: str, gen_kwargs: dict, generate: bool = True
    ) -> tuple[dict, list]:
        """One split's metrics (prefixed) and sample captions; its predictions kept as `last_predictions` (with
        `generate` false: the loss pass alone, no captions)."""
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
        if not generate:
            metrics.update(speed_metrics(metric_key_prefix, start, num_samples=len(clips)))
            self.last_predictions = None
            return metrics, []
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
        self.last_predictions = predictions
        return metrics, samples

    def generate_captions(self, clips, ignore_keys=None, **gen_kwargs) -> list[str]:
        """Generate one caption per clip with the recipe's generation settings (beams, max length)."""
        gen_kwargs = dict(gen_kwargs)
        if gen_kwargs.get("max_length") is None and gen_kwargs.get("max_new_tokens") is None:
            gen_kwargs["max_length"] = self.args.generation_max_length
        if gen_kwargs.get("num_beams") is None and self.args.generation_num_beams is not None:
            gen_kwargs["num_beams"] = self.args.generation_num_beams
        without_captions = clips.remove_columns(
            [c for c in ("caption", "captions", "caption_index") if c in clips.column_names]
        )
        self._generation_kwargs = {k: v for k, v in gen_kwargs.items() if v is not None}
        # Seq2SeqTrainer.prediction_step generates only under predict_with_generate (else it runs a teacher-forced
        # forward pass, which clips without captions cannot): set for this pass, whatever validation does
        validation_generates, self.args.predict_with_generate = self.args.predict_with_generate, True
        try:
            output = self.evaluation_loop(
                self.get_eval_dataloader(without_captions),
                description="Generation",
                prediction_loss_only=False,
                ignore_keys=ignore_keys,
                metric_key_prefix="gen",
            )
        finally:
            self._generation_kwargs = None
            self.args.predict_with_generate = validation_generates
        tokens = np.where(output.predictions == -100, self.processing_class.tokenizer.pad_token_id, output.predictions)
        return [c.strip() for c in self.processing_class.batch_decode(tokens, skip_special_tokens=True)]

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None, **gen_kwargs):
        # override: the generation pass's settings reach Seq2SeqTrainer.prediction_step as its documented keyword
        # arguments (evaluation_loop passes none)
        if not gen_kwargs and self._generation_kwargs is not None:
            gen_kwargs = dict(self._generation_kwargs)
        if not prediction_loss_only and self.args.predict_with_generate:
            # `no_repeat_content_words` (the call's, else the generation config's) as a fresh logits processor
            if not gen_kwargs:  # what Seq2SeqTrainer itself would fall back to
                gen_kwargs = dict(getattr(self, "_gen_kwargs", None) or {})
            tokenizer = getattr(self.processing_class, "tokenizer", self.processing_class)
            generation_config = self.accelerator.unwrap_model(model).generation_config
            gen_kwargs = apply_repetition_control(gen_kwargs, generation_config, tokenizer)
            # `rerank` (the generation config's): k candidates per clip, the chosen one's ids (hf_audiocap.rerank)
            rerank = RerankSettings.pop_from(gen_kwargs, generation_config)
            if rerank is not None:
                return self._reranked_prediction_step(model, inputs, rerank, gen_kwargs, tokenizer)
        return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys, **gen_kwargs)

    @torch.no_grad()
    def _reranked_prediction_step(self, model, inputs, rerank, gen_kwargs, tokenizer):
        """(None, chosen caption ids padded with -100, labels) for a generation pass with reranking; no loss (the
        generation pass's batches carry no captions)."""
        unwrapped = self.accelerator.unwrap_model(model)
        labels = inputs.get("labels")
        # a styled model's prompt (`[start, style]`, no captions) is kept: the candidates continue it
        skip = ("labels", "decoder_attention_mask") + (("decoder_input_ids",) if labels is not None else ())
        generation_inputs = {
            k: v.to(unwrapped.device) if torch.is_tensor(v) else v for k, v in inputs.items() if k not in skip
        }
        batch = generate_candidates(unwrapped, generation_inputs, rerank, gen_kwargs, tokenizer)
        chosen = rerank_candidates(batch.texts, rerank, batch.logprobs, evidence=batch.evidence)
        rows = [seqs[texts.index(r.caption)] for seqs, texts, r in zip(batch.sequences, batch.texts, chosen)]
        tokens = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True, padding_value=-100)
        return None, tokens, labels

    def create_model_card(self, *args, **kwargs):
        # override: recipes/train.py writes the project's own card (metrics, data, usage) before pushing: keep it.
        if (Path(self.args.output_dir) / "README.md").is_file():
            return
        super().create_model_card(*args, **kwargs)
