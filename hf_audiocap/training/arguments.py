"""Recipe arguments: model and data dataclasses beside `Seq2SeqTrainingArguments`, read from a YAML
recipe with `--key value` command-line overrides."""

from __future__ import annotations

import dataclasses
import enum
import functools
import inspect
import os
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from transformers import HfArgumentParser, Seq2SeqTrainingArguments


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "A saved AudioCap model (local folder or Hub id) to fine-tune. None: build a new model."},
    )
    encoder_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Pretrained audio encoder (e.g. openai/whisper-base) to compose with a decoder. None: built-in."
        },
    )
    decoder_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Pretrained text decoder (e.g. facebook/bart-base, gpt2). None: built-in decoder."},
    )
    model_kind: str = field(
        default="encoder_decoder",
        metadata={
            "help": "encoder_decoder: an audio encoder and a decoder cross-attending to it (AudioCapConfig). prefix: "
            "the audio as soft tokens in a prompt read by a causal LM (AudioCapPrefixConfig), decoder_name_or_path "
            "naming the LM (None: an LM from config_overrides' `lm`, trained from scratch); config_overrides sets "
            "lora_rank, lora_target_modules, projector_stack, num_queries, prompt_template, freeze_lm, ..."
        },
    )
    tokenizer_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Tokenizer folder or Hub id. None: a word-level tokenizer built from the training captions."
        },
    )
    word_min_frequency: int = field(
        default=1, metadata={"help": "Words seen fewer times in the training captions map to <unk>."}
    )
    config_overrides: dict = field(
        default_factory=dict,
        metadata={
            "help": "Fields of a new model's config (AudioCapConfig; AudioCapPrefixConfig with model_kind prefix), its "
            "sub-configs as nested mappings (encoder, decoder; encoder, lm), e.g. {encoder: {encoder_layers: 4}, "
            "adapter_pooling_stride: 2}. A field no config reads is an error; so is one set from the processor "
            "(vocabulary size, special token ids, num_mel_bins)."
        },
    )
    feature_extractor_overrides: dict = field(
        default_factory=dict,
        metadata={"help": "AudioCapFeatureExtractor fields, e.g. {feature_size: 64, hop_length: 320}."},
    )
    normalize_features: bool = field(
        default=True,
        metadata={
            "help": "Standardise a new model's log-mels with the mean/std of training clips (saved with the "
            "processor). Ignored for Whisper-normalised features and when feature_extractor_overrides sets do_normalize."
        },
    )
    normalization_clips: int = field(default=256, metadata={"help": "Training clips measured for those statistics."})
    freeze_encoder: bool = field(default=False, metadata={"help": "Train the adapter and decoder only."})
    cache_encoder_outputs: bool = field(
        default=False,
        metadata={"help": "With freeze_encoder and a pretrained encoder: keep each clip's encoder states in memory "
                  "after its first pass, so later epochs and evaluations skip the encoder (it then costs one forward "
                  "pass per clip for the whole run). Needs features that are the same every time: no spec_augment, "
                  "no mixup."},
    )  # fmt: skip
    encoder_cache_dir: str | None = field(
        default=None,
        metadata={"help": "With cache_encoder_outputs: keep the states in this folder instead of memory, one file per "
                  "clip under a digest of the encoder's weights, so that later runs over the same clips (another "
                  "seed, learning rate or decoder) skip the encoder for every clip it has seen. About 1 MB per 10 s "
                  "clip for Whisper-base."},
    )  # fmt: skip
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Allow code from a Hub repository to run. Off unless you set it."}
    )

    def __post_init__(self):
        if self.model_name_or_path and (self.encoder_name_or_path or self.decoder_name_or_path):
            raise ValueError(
                "model_name_or_path loads a complete model: drop encoder_name_or_path/decoder_name_or_path, "
                "or drop model_name_or_path to compose a new model from them."
            )
        if self.decoder_name_or_path and not self.tokenizer_name_or_path:
            self.tokenizer_name_or_path = self.decoder_name_or_path
        if self.model_kind not in ("encoder_decoder", "prefix"):
            raise ValueError(f"model_kind must be encoder_decoder or prefix, got {self.model_kind!r}.")
        if self.word_min_frequency < 1:
            raise ValueError(f"word_min_frequency must be >= 1, got {self.word_min_frequency}.")
        check_config_overrides(self)
        if self.feature_extractor_overrides:
            check_feature_extractor_overrides(self.feature_extractor_overrides)


@dataclass
class DataArguments:
    dataset: str = field(
        default="synthcaps",
        metadata={"help": "Loader name: synthcaps, realsounds, clotho, audiocaps, manifest, audiofolder or hf."},
    )
    dataset_path: str = field(
        default="data/synthcaps", metadata={"help": "Dataset folder, manifest file or HF dataset name/path."}
    )
    audio_dir: str | None = field(
        default=None, metadata={"help": "AudioCaps only: the folder of clips you downloaded."}
    )
    dataset_kwargs: dict = field(
        default_factory=dict, metadata={"help": "Extra keyword arguments for the loader (e.g. caption_columns)."}
    )
    train_split: str = field(default="train", metadata={"help": "Split to train on."})
    eval_split: str | None = field(
        default="validation", metadata={"help": "Split for validation during training (None: no validation)."}
    )
    test_split: str | None = field(default="test", metadata={"help": "Split scored after training (None: skip)."})
    extra_test_splits: list[str] = field(
        default_factory=list,
        metadata={"help": "More splits scored after training, each reported in test_metrics.json as "
                  "`<split>_<metric>` with its own <split>_predictions.jsonl (realsounds: test_single)."},
    )  # fmt: skip
    max_train_clips: int | None = field(default=None, metadata={"help": "Use only the first N training clips."})
    max_eval_clips: int | None = field(default=None, metadata={"help": "Use only the first N validation clips."})
    max_duration: float = field(
        default=60.0, metadata={"help": "Clips longer than this many seconds are an error (checked from the header)."}
    )
    max_label_length: int = field(default=48, metadata={"help": "Captions are truncated to this many tokens."})
    skip_missing: bool = field(
        default=False, metadata={"help": "Drop rows whose audio file is missing instead of failing."}
    )
    synth_if_missing: bool = field(
        default=False,
        metadata={
            "help": "synthcaps, realsounds: make the dataset in dataset_path when it is absent (realsounds "
            "fetches its Debian packages: `hf-audiocap prepare realsounds`)."
        },
    )
    synth_kwargs: dict = field(
        default_factory=dict,
        metadata={"help": "synthcaps, realsounds: generator arguments (seed, num_train, num_validation, num_test; "
                  "realsounds also train_single_share). Another key, or another dataset, is refused."},
    )  # fmt: skip
    group_captions: bool = field(
        default=False,
        metadata={
            "help": "Batch clips with all their captions: each clip is encoded once and shared by its caption rows "
            "(the same (clip, caption) examples and loss, far fewer encoder FLOPs). per_device_train_batch_size "
            "then counts clips. False: one (clip, caption) example per row."
        },
    )
    spec_augment: bool = field(default=False, metadata={"help": "SpecAugment the training log-mels."})
    mixup_prob: float = field(
        default=0.0, metadata={"help": "Probability of mixing a training clip with another (captions joined)."}
    )
    num_sample_captions: int = field(
        default=5, metadata={"help": "Generated captions shown beside their references at each evaluation."}
    )
    precompute_features: bool = field(
        default=False,
        metadata={
            "help": "Decode every clip and compute its log-mels once, with datasets.map, into a cache in "
            "features_cache_dir that later runs (a resumed one included) load instead of recomputing; its name "
            "hashes every feature-extractor setting and the clips, so a changed setting computes a new one. Needs "
            "group_captions: true and no mixup (mixup mixes waveforms)."
        },
    )
    features_cache_dir: str | None = field(
        default=None,
        metadata={
            "help": "Folder of the precompute_features caches. None: hf_audiocap_log_mels in the datasets cache."
        },
    )
    streaming: bool = field(
        default=False,
        metadata={
            "help": "Stream the TRAINING split (a datasets IterableDataset) instead of building it in memory: the hf "
            "source is read with datasets' streaming=True (local parquet/json/csv data_files, a Hub repository, a "
            "save_to_disk folder), the other loaders' index of paths with to_iterable_dataset. Rows are converted, "
            "captions expanded (or grouped, group_captions), shuffled with a buffer (shuffle_buffer_size) and split by "
            "node (one part per process) as they are read, repeated without end; audio is decoded per batch by the "
            "collator, so the training audio is never all in memory. Needs max_steps > 0 and step-based logging/eval/save. "
            "Validation/test splits stay map-style (read once, in memory). The hf stream's clips are not checked "
            "up front: a bad file stops the run at its batch, naming it. Not with precompute_features."
        },
    )
    corpora: list[dict] = field(
        default_factory=list,
        metadata={"help": "Several corpora in one run (docs/mixtures.md): a list of {name, dataset, dataset_path, "
                  "weight, ...} (any data key of a single-corpus recipe), trained on together, drawn by weight; each "
                  "validated and tested on its own held-out splits, its metrics prefixed with its name "
                  "(eval_<name>_cider_d: name one in metric_for_best_model). Replaces dataset/dataset_path."},
    )  # fmt: skip
    styles: bool = field(
        default=False,
        metadata={"help": "With corpora: one style per corpus, named after it, that the decoder sees first "
                  "(a learned token); captions are then asked for in a corpus's style (style= at inference)."},
    )  # fmt: skip
    style: str | None = field(
        default=None,
        metadata={"help": "A single-corpus recipe's style: the name its clips are captioned under, for a model trained "
                  "with styles (fine-tuning on one corpus after a mixture); a new name adds a style."},
    )  # fmt: skip
    mixture_stopping_strategy: str = field(
        default="all_exhausted",
        metadata={"help": "With corpora, when a corpus runs out of training clips: all_exhausted starts it over "
                  "until every corpus has been drawn whole (small corpora oversampled), first_exhausted ends the "
                  "epoch (large corpora undersampled)."},
    )  # fmt: skip
    mixture_seed: int = field(default=0, metadata={"help": "With corpora: the seed of the weighted draws."})
    shuffle_buffer_size: int = field(
        default=1000,
        metadata={
            "help": "streaming only: rows held in the shuffle buffer (the shard order is shuffled too, with the "
            "training seed); larger shuffles better and holds more rows (audio paths or bytes, not waveforms). 0: "
            "the stream's own order."
        },
    )

    def __post_init__(self):
        # On the command line `--test_split None` arrives as the string "None" (YAML's null is already None).
        for name in ("eval_split", "test_split"):
            if getattr(self, name) in ("None", "none", "null", ""):
                setattr(self, name, None)
        if not 0.0 <= self.mixup_prob <= 1.0:
            raise ValueError(f"mixup_prob must lie in [0, 1], got {self.mixup_prob}.")
        if self.precompute_features and not self.group_captions:
            raise ValueError(
                "precompute_features needs group_captions: true (one row per (clip, caption) would copy each clip's "
                "log-mels once per caption)."
            )
        if self.precompute_features and self.mixup_prob > 0:
            raise ValueError("precompute_features cannot be combined with mixup_prob > 0 (mixup mixes waveforms).")
        if self.synth_if_missing and self.dataset not in ("synthcaps", "realsounds"):
            raise ValueError("synth_if_missing only applies to dataset: synthcaps or realsounds.")
        check_synth_kwargs("synth_kwargs", self.dataset, self.synth_kwargs)
        if self.dataset == "audiocaps" and not self.audio_dir:
            raise ValueError("dataset: audiocaps needs audio_dir, the folder of clips you downloaded.")
        if self.max_label_length < 2:
            raise ValueError(f"max_label_length must be >= 2, got {self.max_label_length}.")
        if self.shuffle_buffer_size < 0:
            raise ValueError(f"shuffle_buffer_size must be >= 0, got {self.shuffle_buffer_size}.")
        if self.streaming and self.precompute_features:
            raise ValueError(
                "streaming cannot be combined with precompute_features (the log-mel cache is computed over every clip "
                "before training): set precompute_features: false, or streaming: false."
            )
        if self.corpora:
            from hf_audiocap.data.mixture import STOPPING_STRATEGIES, parse_corpora

            for corpus in parse_corpora(self.corpora):
                where = f"corpora ({corpus.name}): synth_kwargs"
                check_synth_kwargs(where, corpus.data.get("dataset", self.dataset), corpus.data.get("synth_kwargs"))
            if self.mixture_stopping_strategy not in STOPPING_STRATEGIES:
                raise ValueError(
                    f"mixture_stopping_strategy must be one of {', '.join(STOPPING_STRATEGIES)}, got "
                    f"{self.mixture_stopping_strategy!r}."
                )
            if self.styles and self.mixup_prob > 0:
                raise ValueError(
                    "styles: true gives each clip its corpus's style: mixup would mix two; set mixup_prob: 0."
                )
            if self.style is not None:
                raise ValueError("style names a single corpus's style; with corpora, each corpus's style is its name.")
        elif self.styles:
            raise ValueError("styles: true names one style per corpus: it needs corpora (a list of at least two).")
        if self.skip_missing and self.dataset == "hf":
            raise ValueError(
                "skip_missing does not apply to dataset: hf (its loader does not look for files): drop skip_missing."
            )


@dataclass
class AudioCapTrainingArguments(Seq2SeqTrainingArguments):
    """`Seq2SeqTrainingArguments` plus what a captioning run adds."""

    early_stopping_patience: int | None = field(
        default=None,
        metadata={"help": "Stop after this many evaluations without improving metric_for_best_model."},
    )
    overfitting_patience: int = field(
        default=2,
        metadata={
            "help": "Say 'over-fitting' (one log line, then in the final report and the model card) when the validation "
            "cross-entropy has risen for this many evaluations in a row while the training cross-entropy fell."
        },
    )
    nonfinite_loss: str = field(
        default="stop",
        metadata={
            "help": "A NaN/inf training loss: 'stop' ends the run with an error naming the step and the clips of the "
            "batch; 'skip' drops that batch (no update from it) and logs the same line. 'skip' is single-process only.",
            "choices": ["stop", "skip"],
        },
    )

    predict_with_generate: bool = field(
        default=True,
        metadata={
            "help": "Validation generates a caption per clip and scores it with `metrics` (false: validation loss and "
            "perplexity only, faster; metric_for_best_model must then watch loss). The test report always captions."
        },
    )
    encoder_learning_rate: float | None = field(
        default=None,
        metadata={
            "help": "Learning rate of the audio encoder's own weights when they train (not frozen); the adapter, "
            "keyword head and decoder keep learning_rate, and both follow the same schedule. A pretrained encoder "
            "(Whisper) fine-tunes at a small fraction of a new decoder's rate (1e-5 to 5e-5 against 5e-4): at the "
            "decoder's rate it forgets what it knew in the first epoch. None: learning_rate for every weight."
        },
    )

    checkpoint_total_limit: int | None = field(
        default=None,
        init=False,
        metadata={
            "help": "Set from save_total_limit (which transformers then gets as None): old checkpoints are deleted by "
            "CheckpointCompletionCallback once the new one is complete, not by transformers during the save."
        },
    )

    metrics: str = field(
        default="coco",
        metadata={
            "help": "Caption metrics of each evaluation and the test report: a preset (coco: BLEU-1..4, METEOR, ROUGE-L, "
            "CIDEr-D, SPICE, SPIDEr; dcase2024: METEOR, CIDEr-D, SPICE, SPIDEr, SPIDEr-FL, FER, FENSE, vocabulary) or "
            "metric names joined by commas. metric_for_best_model may name any of them that is available here; "
            "an unknown name, or an unavailable metric_for_best_model, stops the run before training."
        },
    )

    generation_no_repeat_content_words: bool = field(
        default=False,
        metadata={
            "help": "Generation never repeats a content word within a caption (stop words such as 'a', 'and', 'with' "
            "exempt; hf_audiocap.generation). Used by validation and saved in generation_config.json as the plain "
            "setting `no_repeat_content_words`, which every entry point (CLI, pipeline, app, evaluate.py) applies."
        },
    )
    generation_rerank: str | None = field(
        default=None,
        metadata={
            "help": "Validation captions by reranking candidates (hf_audiocap.rerank): logprob, mbr, or weighted such as "
            "'logprob:0.5,mbr:0.5' (clap needs the audio, which validation does not see: give it at inference). Saved "
            "in generation_config.json as the plain setting `rerank`, which every entry point applies."
        },
    )
    generation_rerank_candidates: int = field(
        default=5, metadata={"help": "Candidates per clip for generation_rerank (>= 2); saved as `rerank_candidates`."}
    )
    generation_rerank_evidence: int = field(
        default=0,
        metadata={
            "help": "mbr's pseudo-references: 0 measures each candidate against the other candidates; N against N "
            "captions sampled from the model (hf_audiocap.rerank). Saved as `rerank_evidence`."
        },
    )

    scst: bool = field(
        default=False,
        metadata={
            "help": "Self-critical sequence training: the loss is the CIDEr-D reward of captions sampled from the model "
            "(minus the mean reward of the clip's other samples), not the cross-entropy of the references. A fine-tuning "
            "stage for a model already trained with cross-entropy (model_name_or_path), at a small learning rate "
            "(e.g. 1e-5); needs group_captions (each clip's references in its batch)."
        },
    )
    scst_samples: int = field(default=5, metadata={"help": "SCST: captions sampled per clip (at least 2)."})
    scst_sampling: str = field(
        default="sample",
        metadata={
            "help": "SCST: 'sample' draws the captions from the model's distribution (Rennie et al. 2017); 'beam' "
            "takes the clip's scst_samples best beams (Cornia et al. 2020).",
            "choices": ["sample", "beam"],
        },
    )

    def __post_init__(self):
        if self.generation_rerank_evidence and not self.generation_rerank:
            raise ValueError("generation_rerank_evidence is read only with generation_rerank (e.g. mbr); set both")
        if self.generation_rerank:
            from hf_audiocap.rerank import RerankSettings

            rerank = RerankSettings(
                self.generation_rerank,
                self.generation_rerank_candidates,
                clap_model="-",
                evidence=self.generation_rerank_evidence,
            )
            if rerank.weights.get("clap", 0) > 0:
                raise ValueError(
                    "generation_rerank: 'clap' needs the audio, which validation does not see; use logprob and/or mbr "
                    "here and pass --rerank with clap at inference"
                )
        if not self.use_cpu and int(os.environ.get("WORLD_SIZE", "1")) > 1 and not _has_accelerator():
            # `torchrun --nproc_per_node N` on a machine without an accelerator: accelerate would initialise the process
            # group yet report no distributed type, so every rank trained alone (and each wrote the model card).
            self.use_cpu = True
        super().__post_init__()
        # transformers deletes checkpoints beyond save_total_limit inside its save, before the new checkpoint is marked
        # complete (on_save): a kill then left one complete checkpoint fewer (none with a limit of 1). The limit is
        # applied by CheckpointCompletionCallback, after the manifest.
        if self.save_total_limit is not None:
            self.checkpoint_total_limit, self.save_total_limit = self.save_total_limit, None
        if getattr(self, "enable_jit_checkpoint", False):
            raise ValueError(
                "enable_jit_checkpoint saves a checkpoint outside the Trainer's save events, so it is never marked "
                "complete and `resume_from_checkpoint: last` would skip it: drop it and use save_steps."
            )
        if self.dataloader_pin_memory and (self.use_cpu or not _has_accelerator()):
            # pinned memory only speeds up copies to an accelerator; without one torch warns at every DataLoader
            self.dataloader_pin_memory = False
        if self.overfitting_patience < 1:
            raise ValueError(f"overfitting_patience must be >= 1, got {self.overfitting_patience}.")
        if self.nonfinite_loss not in ("stop", "skip"):
            raise ValueError(f"nonfinite_loss must be 'stop' or 'skip', got {self.nonfinite_loss!r}.")
        if self.nonfinite_loss == "skip" and self.world_size > 1:
            # a process that skips its backward would leave the others waiting in the gradient all-reduce
            raise ValueError("nonfinite_loss: skip is single-process only; use stop with several processes.")
        watched = (self.metric_for_best_model or "loss").removeprefix("eval_")
        if not self.predict_with_generate and not watched.endswith(("loss", "perplexity")):
            raise ValueError(
                f"metric_for_best_model: {self.metric_for_best_model} scores generated captions, and validation "
                "generates none without predict_with_generate: true (or watch loss)."
            )
        if self.early_stopping_patience is not None:
            if self.early_stopping_patience < 1:
                raise ValueError(f"early_stopping_patience must be >= 1, got {self.early_stopping_patience}.")
            if not (self.load_best_model_at_end and self.metric_for_best_model):
                raise ValueError(
                    "early_stopping_patience needs load_best_model_at_end: true and a metric_for_best_model "
                    "(e.g. cider_d, or loss)."
                )


def _has_accelerator() -> bool:
    import torch

    accelerator = getattr(torch, "accelerator", None)
    if accelerator is not None and hasattr(accelerator, "is_available"):
        return bool(accelerator.is_available())
    return torch.cuda.is_available()


RECIPE_DATACLASSES = (ModelArguments, DataArguments, AudioCapTrainingArguments)


def _parse_overrides(argv: list[str]) -> dict:
    """`--key value`, `--key=value` and bare `--flag` (True); values are read as YAML scalars."""
    overrides, i = {}, 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--"):
            raise ValueError(f"unexpected argument {arg!r}: overrides are written --key value")
        key, _, value = arg[2:].partition("=")
        if not _:
            if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                value, i = argv[i + 1], i + 1
            else:
                value = "true"
        parsed = yaml.safe_load(value)
        if isinstance(parsed, bool) and value.lower() not in ("true", "false"):
            parsed = value  # YAML 1.1 reads `no`/`yes`/`on`/`off` as booleans; on the command line they are words
        overrides[key.replace("-", "_")] = parsed
        i += 1
    return overrides


def _checkpointing_names(values: dict) -> None:
    """`gradient_checkpointing(_kwargs)` and its newer name `activation_checkpointing(_kwargs)` (transformers 5.2x,
    which warns at every run given the old one) reach the running release under the name it reads, either way."""
    fields = {f.name for f in dataclasses.fields(Seq2SeqTrainingArguments)}
    for old, new in (("gradient_checkpointing", "activation_checkpointing"),
                     ("gradient_checkpointing_kwargs", "activation_checkpointing_kwargs")):  # fmt: skip
        given, read = (old, new) if new in fields else (new, old)
        if given in values:
            if read in values and values[read] != values[given]:
                raise ValueError(f"recipe keys {given} and {read} are one setting: keep one")
            values[read] = values.pop(given)


def parse_recipe(argv: list[str] | None = None) -> tuple[ModelArguments, DataArguments, AudioCapTrainingArguments]:
    """Parse `[recipe.yaml] [--key value ...]` into the three argument dataclasses.

    Unknown keys, in the recipe or on the command line, are an error listing them, and a value its field's declared
    type does not read an error naming the key (`_checked_values`), before anything runs.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--help" in argv or "-h" in argv:
        HfArgumentParser(RECIPE_DATACLASSES).print_help()
        raise SystemExit(0)
    values: dict = {}
    if argv and not argv[0].startswith("--"):
        recipe = Path(argv.pop(0))
        if not recipe.is_file():
            raise FileNotFoundError(f"recipe not found: {recipe}")
        values = yaml.safe_load(recipe.read_text(encoding="utf-8")) or {}
        if not isinstance(values, dict):
            raise ValueError(f"{recipe}: a recipe is a YAML mapping of argument names to values")
    values.update(_parse_overrides(argv))
    _checkpointing_names(values)
    parser = HfArgumentParser(RECIPE_DATACLASSES)
    known = {f.name for dc in RECIPE_DATACLASSES for f in dataclasses.fields(dc) if f.init}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown recipe keys: {', '.join(unknown)} (see `python recipes/train.py --help`)")
    model_args, data_args, training_args = parser.parse_dict(_checked_values(values))
    check_recipe(data_args, training_args)
    if model_args.cache_encoder_outputs:
        if not (model_args.freeze_encoder and (model_args.encoder_name_or_path or model_args.model_name_or_path)):
            raise ValueError("cache_encoder_outputs needs freeze_encoder: true and a pretrained encoder.")
        if data_args.spec_augment or data_args.mixup_prob > 0:
            raise ValueError(
                "cache_encoder_outputs keeps one set of states per clip: set spec_augment: false and mixup_prob: 0 "
                "(each masks or mixes the features anew every time)."
            )
    elif model_args.encoder_cache_dir:
        raise ValueError("encoder_cache_dir keeps the states that cache_encoder_outputs caches: set it true too.")
    if training_args.encoder_learning_rate is not None:
        if model_args.freeze_encoder:
            raise ValueError(
                "encoder_learning_rate: the encoder is frozen (freeze_encoder: true); drop one of the two."
            )
        if not training_args.encoder_learning_rate > 0:
            raise ValueError(f"encoder_learning_rate must be > 0, got {training_args.encoder_learning_rate}")
    return model_args, data_args, training_args


def check_recipe(data_args: DataArguments, training_args: Seq2SeqTrainingArguments) -> None:
    """Combinations of data and training arguments that cannot work, refused before anything runs."""
    eval_strategy = getattr(training_args.eval_strategy, "value", training_args.eval_strategy)
    if data_args.eval_split is None and eval_strategy != "no":
        raise ValueError(
            f"eval_strategy: {eval_strategy} needs an eval_split to validate on: set eval_split, or eval_strategy: 'no' "
            "(and load_best_model_at_end: false)."
        )
    if getattr(training_args, "scst", False):
        if getattr(training_args, "scst_samples", 5) < 2:
            raise ValueError("scst_samples must be >= 2 (each sample's baseline is the mean of the clip's others).")
        if not data_args.group_captions:
            raise ValueError(
                "scst: true rewards captions against all of a clip's references: set group_captions: true."
            )
        if data_args.streaming:
            raise ValueError(
                "scst: true counts CIDEr-D document frequencies over the training references: it needs a map-style "
                "training split (streaming: false)."
            )
        if data_args.mixup_prob > 0:
            raise ValueError("scst: true samples captions for each real clip: set mixup_prob: 0.")
    if data_args.streaming:
        if training_args.max_steps <= 0:
            raise ValueError(
                "streaming: true needs max_steps > 0 (a streamed training split has no length, so epochs cannot be "
                "counted): set max_steps, e.g. --max_steps 10000."
            )
        epoch_based = [
            name
            for name in ("eval_strategy", "save_strategy", "logging_strategy")
            if getattr(getattr(training_args, name, None), "value", getattr(training_args, name, None)) == "epoch"
        ]
        if epoch_based:
            raise ValueError(
                f"streaming: true repeats the training stream without epochs: {', '.join(epoch_based)}: epoch would "
                "never trigger; use steps (with eval_steps/save_steps/logging_steps)."
            )
        strategy = getattr(training_args, "train_sampling_strategy", "random")
        if strategy not in (None, "random"):
            raise ValueError(
                f"train_sampling_strategy: {strategy} needs a map-style training split; a stream is read in its "
                "shuffled order (shuffle_buffer_size): drop train_sampling_strategy, or set streaming: false."
            )


# --- config_overrides: fields a config reads ------------------------------------------------------------------------

# Fields a new model takes from the recipe's processor, whatever config_overrides says.
_FROM_TOKENIZER = dict.fromkeys(
    ("vocab_size", "pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id"), "the tokenizer"
)
_FROM_FEATURES = {"num_mel_bins": "feature_extractor_overrides' feature_size"}


def check_config_overrides(model_args: ModelArguments) -> None:
    """`config_overrides` names fields of the config a new model is built from (AudioCapConfig, AudioCapPrefixConfig
    with model_kind prefix) and, as nested mappings, of its sub-configs: a name no config reads would be kept as an
    attribute nothing reads, so it is refused, in one line listing the names that are read. A part built from scratch
    is checked here (its class is known), a pretrained part's fields against its own config when it is loaded."""
    given = [n for n in ("config_overrides", "feature_extractor_overrides") if getattr(model_args, n)]
    if model_args.model_name_or_path:
        if given:
            raise ValueError(
                f"{' and '.join(given)} set fields of a new model, but model_name_or_path "
                f"({model_args.model_name_or_path}) loads a saved one with its own: drop {' and '.join(given)}"
            )
        return
    if not model_args.config_overrides:
        return
    from transformers import CONFIG_MAPPING

    from hf_audiocap.configuration_audiocap import AudioCapConfig, AudioCapDecoderConfig, AudioCapEncoderConfig
    from hf_audiocap.configuration_audiocap_prefix import AudioCapPrefixConfig

    builtin = {cls.model_type: cls for cls in (AudioCapEncoderConfig, AudioCapDecoderConfig)}
    encoder_path, decoder_path = model_args.encoder_name_or_path, model_args.decoder_name_or_path
    # each part: its default model_type, its pretrained source, the fields the recipe sets
    if model_args.model_kind == "prefix":
        top, top_taken = AudioCapPrefixConfig, {**_FROM_TOKENIZER, "lm_name_or_path": "decoder_name_or_path"}
        parts = {
            "encoder": (AudioCapEncoderConfig.model_type, encoder_path, _FROM_FEATURES),
            "lm": ("llama", decoder_path, _FROM_TOKENIZER),
        }
        typed = True  # a part built from scratch may name another model_type
    else:
        top = AudioCapConfig
        top_taken = {} if decoder_path else _FROM_TOKENIZER  # a pretrained decoder's own ids may be changed
        parts = {
            "encoder": (AudioCapEncoderConfig.model_type, encoder_path, _FROM_FEATURES),
            "decoder": (AudioCapDecoderConfig.model_type, decoder_path, _FROM_TOKENIZER),
        }
        typed = not (encoder_path or decoder_path)  # from_encoder_decoder_pretrained builds the built-in parts only
    overrides = model_args.config_overrides
    check_config_fields("config_overrides", top, {k: v for k, v in overrides.items() if k not in parts}, top_taken)
    for part, (default, pretrained, taken) in parts.items():
        fields = overrides.get(part)
        if fields is None:
            continue
        if not isinstance(fields, dict):
            raise ValueError(f"config_overrides.{part}: expected a mapping of config fields, got {fields!r}")
        if pretrained:
            if part == "lm" and fields:
                raise ValueError(
                    f"config_overrides.lm builds an LM from scratch: drop it, or drop decoder_name_or_path "
                    f"({pretrained}), which brings its own config"
                )
            continue  # checked against the pretrained part's config when it is loaded (builders.py, prefix.py)
        fields = dict(fields)
        model_type = fields.pop("model_type", default) if typed else default
        if model_type in builtin:
            config_class = builtin[model_type]
        elif model_type in CONFIG_MAPPING:
            config_class = CONFIG_MAPPING[model_type]
        else:
            raise ValueError(f"config_overrides.{part}: model_type {model_type!r} is unknown to transformers")
        check_config_fields(f"config_overrides.{part}", config_class, fields, taken)
        config_class(**fields)  # the config's own checks (a width its heads do not divide), before any data is read


def _named_parameters(function) -> list[str]:
    """The parameters of `function` a keyword can set (not `self`, `*args` or `**kwargs`)."""
    return [
        p.name
        for p in inspect.signature(function).parameters.values()
        if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


def check_feature_extractor_overrides(overrides: dict) -> None:
    """`feature_extractor_overrides` names `AudioCapFeatureExtractor` arguments (a feature extractor keeps any other
    key as an attribute nothing reads) with values it accepts, checked before any data is read."""
    from hf_audiocap.feature_extraction_audiocap import AudioCapFeatureExtractor

    known = _named_parameters(AudioCapFeatureExtractor.__init__)
    refuse_unknown_keys("feature_extractor_overrides", overrides, known, "AudioCapFeatureExtractor")
    try:
        AudioCapFeatureExtractor(**overrides)
    except (TypeError, ValueError) as err:
        raise ValueError(f"feature_extractor_overrides: {err}") from None


def check_config_fields(where: str, config, fields: dict, taken: dict[str, str] | None = None) -> None:
    """Refuses, in one line, keys of `fields` that `config` (a config class, or a loaded config) does not read: neither
    a parameter of its `__init__` or of PretrainedConfig's, an alias of its `attribute_map`, nor a field of the loaded
    config; an alias beside the field it stands for; and a key of `taken` ({key: what the recipe sets it from})."""
    from transformers import PretrainedConfig

    cls = config if isinstance(config, type) else type(config)
    common = set(_named_parameters(PretrainedConfig.__init__))
    own = [p for p in _named_parameters(cls.__init__) if p not in common]
    aliases = dict(getattr(cls, "attribute_map", {}))
    known = common | set(own) | set(aliases) | (set() if isinstance(config, type) else set(config.to_dict()))
    for key in fields:
        if key in (taken or {}):
            raise ValueError(f"{where}: {key} is set from {taken[key]}: drop it")
        if aliases.get(key) in fields:
            raise ValueError(f"{where}: {key} is another name for {aliases[key]}: give one of them")
    also = f" (or {', '.join(f'{a} for {t}' for a, t in aliases.items())})" if aliases else ""
    refuse_unknown_keys(where, fields, known, cls.__name__, [k for k in own if k not in (taken or {})], also)


def refuse_unknown_keys(where: str, fields, known, reader: str, listed=None, also: str = "") -> None:
    """One line naming the keys of `fields` outside `known` and what `reader` reads instead (`listed`, else `known`):
    a mapping the recipe passes on would keep such a key where nothing reads it."""
    unknown = [k for k in fields if k not in known]
    if unknown:
        raise ValueError(
            f"{where}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(str, unknown))}; {reader} "
            f"reads {', '.join(known if listed is None else listed)}{also}{_colon_hint(unknown)}"
        )


def check_synth_kwargs(where: str, dataset: str, synth_kwargs: dict) -> None:
    """`synth_kwargs` names arguments of the dataset's generator; any other key would be ignored, so it is refused."""
    if not synth_kwargs:
        return
    if not isinstance(synth_kwargs, dict):
        raise ValueError(f"{where}: expected a mapping of generator arguments, got {synth_kwargs!r}")
    if dataset == "synthcaps":
        from hf_audiocap.data.synthcaps import generate_synthcaps

        known = [p for p in _named_parameters(generate_synthcaps) if p != "out_dir"]
        refuse_unknown_keys(where, synth_kwargs, known, "generate_synthcaps")
    elif dataset == "realsounds":
        from hf_audiocap.data.realsounds import SCENE_ARGUMENTS

        refuse_unknown_keys(where, synth_kwargs, SCENE_ARGUMENTS, "hf-audiocap prepare realsounds")
    else:
        raise ValueError(f"{where}: only dataset synthcaps or realsounds is generated from it (dataset: {dataset})")


def _colon_hint(keys) -> str:
    """YAML reads `{adapter_stride:2}` as the one key 'adapter_stride:2': say so when a key looks like that."""
    glued = next((str(k) for k in keys if ":" in str(k)), None)
    if glued is None:
        return ""
    name, _, value = glued.partition(":")
    return f" (YAML needs a space after the colon: {name}: {value})"


# --- values checked against the fields' declared types -------------------------------------------------------------

_TRUE_WORDS, _FALSE_WORDS = ("true", "yes", "on", "1"), ("false", "no", "off", "0")
_NULL_WORDS = ("None", "none", "null")
_PLURALS = {str: "strings", int: "integers", float: "numbers", bool: "booleans"}


class _Mismatch(Exception):
    """A value that a type does not read."""


def set_decoding_settings(generation_config, training_args) -> None:
    """The recipe's repetition control and reranking as plain attributes of the model's generation config (read at
    generate time by hf_audiocap.generation and hf_audiocap.rerank; a saved folder stays loadable by transformers)."""
    if getattr(training_args, "generation_no_repeat_content_words", False):
        generation_config.no_repeat_content_words = True
    if getattr(training_args, "generation_rerank", None):
        generation_config.rerank = training_args.generation_rerank
        generation_config.rerank_candidates = int(training_args.generation_rerank_candidates)
        if training_args.generation_rerank_evidence:
            generation_config.rerank_evidence = int(training_args.generation_rerank_evidence)


@functools.cache
def _recipe_fields() -> dict[str, tuple[typing.Any, tuple | None]]:
    """{recipe key: (declared type, declared choices)}: the annotations, since HfArgumentParser rewrites `Field.type` in
    place (dropping `| None`)."""
    fields = {}
    for dc in RECIPE_DATACLASSES:
        hints = typing.get_type_hints(dc)
        for f in dataclasses.fields(dc):
            if f.init:
                choices = f.metadata.get("choices")
                fields[f.name] = (hints[f.name], tuple(choices) if choices is not None else None)
    return fields


def _checked_values(values: dict) -> dict:
    """The recipe's values as their fields declare them (bool, int, float, str, list, dict, Optional, Literal, an enum
    or declared choices), or a one-line error naming the key, what it expects and the value, before transformers or a
    check trips over it. What YAML or the command line spells differently is read as the field means it: `3e-4` (a
    string to YAML) for a float, yes/no/on/off/1/0 for a boolean, None/null for an optional field that is no string,
    one word for a list of words, a number for a string."""
    fields = _recipe_fields()
    out = dict(values)
    for key, value in values.items():
        tp, choices = fields[key]
        try:
            out[key] = _read(value, tp)
            if choices is not None and out[key] is not None and out[key] not in choices:
                raise _Mismatch
        except _Mismatch:
            expected = f"one of {', '.join(map(str, choices))}" if choices is not None else _describe(tp)
            hint = ""
            if isinstance(value, bool):  # YAML 1.1 reads unquoted no/yes/off/on as booleans
                hint = f" (YAML reads no/yes/off/on as booleans: quote it, {key}: '{'yes' if value else 'no'}')"
            got = f"the boolean {value}" if isinstance(value, bool) else repr(value)
            raise ValueError(f"recipe key {key}: expected {expected}, got {got}{hint}") from None
    return out


def _is_union(tp) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _enum_values(tp) -> list[str]:
    return [member.value for member in tp]


def _read(value, tp, words: bool = True):
    """`value` as the type `tp` reads it, else `_Mismatch`. `words`: also convert what a YAML scalar or a command line
    spells differently (see `_checked_values`); a union tries each of its types as it is before converting."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is typing.Any:
        return value
    if _is_union(tp):
        # `IntervalStrategy | str`: the string must name a member of the enum
        names = [v for a in args if isinstance(a, type) and issubclass(a, enum.Enum) for v in _enum_values(a)]
        for convert in (False, True) if words else (False,):
            for arm in args:
                try:
                    result = _read(value, arm, convert)
                except _Mismatch:
                    continue
                if names and isinstance(result, str) and result not in names:
                    raise _Mismatch
                return result
        raise _Mismatch
    if tp is type(None):
        if value is None or (words and value in _NULL_WORDS):
            return None
    elif tp is bool:
        if isinstance(value, bool):
            return value
        if words and isinstance(value, (str, int)) and str(value).lower() in _TRUE_WORDS + _FALSE_WORDS:
            return str(value).lower() in _TRUE_WORDS
    elif tp in (int, float, str) and isinstance(value, bool):
        raise _Mismatch  # a boolean is no number and no word
    elif tp is int:
        if isinstance(value, int):
            return value
        if words and isinstance(value, (str, float)):
            try:
                return int(value) if isinstance(value, str) else _integral(value)
            except ValueError:
                return _integral(_float(value))
    elif tp is float:
        if isinstance(value, (int, float)):
            return value
        if words and isinstance(value, str):
            return _float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
        if words and isinstance(value, (int, float)):
            return str(value)
    elif tp is list or origin is list:
        item = args[0] if args else typing.Any
        if isinstance(value, (list, tuple)):
            return [_read(v, item, words) for v in value]
        if words and isinstance(value, str):  # `--extra_test_splits test_single` on the command line
            return [_read(value, item, words)]
    elif tp is dict or origin is dict:
        if isinstance(value, dict):
            key_type, value_type = args or (typing.Any, typing.Any)
            return {_read(k, key_type, words): _read(v, value_type, words) for k, v in value.items()}
    elif origin is typing.Literal:
        if any(type(value) is type(a) and value == a for a in args):
            return value
    elif isinstance(tp, type) and issubclass(tp, enum.Enum):
        if isinstance(value, tp) or value in _enum_values(tp):
            return value
    elif isinstance(tp, type) and isinstance(value, tp):
        return value
    raise _Mismatch


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise _Mismatch from None


def _integral(value: float) -> int:
    if not float(value).is_integer():
        raise _Mismatch
    return int(value)


def _describe(tp) -> str:
    """What `tp` reads, in the recipe's words."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if _is_union(tp):
        has_enum = any(isinstance(a, type) and issubclass(a, enum.Enum) for a in args)
        parts = [_describe(a) for a in args if not (has_enum and a is str)]  # the enum names the strings
        return " or ".join(dict.fromkeys(parts))
    if origin is typing.Literal:
        return " or ".join(str(a).lower() if isinstance(a, bool) else repr(a) for a in args)
    if tp is list or origin is list:
        item = args[0] if args else typing.Any
        return "a list" if item is typing.Any else f"a list of {_PLURALS.get(item) or _describe(item)}"
    if tp is dict or origin is dict:
        return "a mapping"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return f"one of {', '.join(_enum_values(tp))}"
    words = {type(None): "null", bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    return words.get(tp) or getattr(tp, "__name__", str(tp))
