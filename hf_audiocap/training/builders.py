"""What `recipes/train.py` delegates to: data, processor, model, trainer, and the final test report."""

from __future__ import annotations

import itertools
import json
import logging
import os
from pathlib import Path

from datasets import Dataset, DatasetDict, IterableDataset
from transformers import AutoConfig, AutoProcessor, AutoTokenizer, EarlyStoppingCallback, Seq2SeqTrainingArguments

from hf_audiocap.data.audio import load_audio
from hf_audiocap.data.augment import CaptionMixup, SpecAugment
from hf_audiocap.data.collator import AudioCaptionCollator
from hf_audiocap.data.features import precompute_log_mels
from hf_audiocap.data.loaders import audio_durations, check_audio_files, expand_captions, load_caption_dataset
from hf_audiocap.data.streaming import load_hf_stream, materialize, to_caption_stream, training_stream
from hf_audiocap.feature_extraction_audiocap import AudioCapFeatureExtractor, compute_normalization
from hf_audiocap.hub import check_pretrained
from hf_audiocap.metrics.report import split_scores, write_report
from hf_audiocap.processing_audiocap import AudioCapProcessor
from hf_audiocap.tokenization import build_word_tokenizer
from hf_audiocap.training.arguments import DataArguments, ModelArguments, check_config_fields, set_decoding_settings
from hf_audiocap.training.callbacks import (
    OverfittingCallback,
    SampleCaptionsCallback,
    TrainingCurvesCallback,
    WeightsDigestCallback,
)
from hf_audiocap.training.scst import CiderDReward
from hf_audiocap.training.trainer import AudioCapTrainer

logger = logging.getLogger(__name__)


# --- data -------------------------------------------------------------------------------------------


def load_recipe_datasets(data_args: DataArguments) -> DatasetDict:
    """The recipe's clips, one row per clip with its grouped `captions` (SynthCaps generated if asked).

    With `streaming`, the training split is a `datasets.IterableDataset` of the same schema (see
    `hf_audiocap.data.streaming`): the `hf` source streams every split and collects the validation/test clips into
    small in-memory splits; the other loaders build their index of paths as usual and stream the training one.

    With `corpora`, each corpus is loaded so, and :func:`~hf_audiocap.data.mixture.mixture_datasets` interleaves
    their training splits and keeps their held-out splits as `<corpus>/<split>`."""
    if data_args.corpora:
        from hf_audiocap.data.mixture import mixture_datasets

        return mixture_datasets(data_args, load_recipe_datasets)
    path = Path(data_args.dataset_path)
    if data_args.dataset == "synthcaps":
        if not (path / f"clotho_captions_{data_args.train_split}.csv").is_file():
            if not data_args.synth_if_missing:
                raise FileNotFoundError(
                    f"no SynthCaps dataset at {path}: run `hf-audiocap synth --out {path}` or set synth_if_missing"
                )
            from hf_audiocap.data.synthcaps import generate_synthcaps

            logger.info("generating SynthCaps into %s", path)
            generate_synthcaps(path, **data_args.synth_kwargs)
        else:
            from hf_audiocap.data.synthcaps import check_generated_with

            check_generated_with(path, data_args.synth_kwargs)
        source, kwargs = "clotho", {}
    elif data_args.dataset == "realsounds":
        from hf_audiocap.data.realsounds import ensure_realsounds

        ensure_realsounds(path, data_args.synth_kwargs, make=data_args.synth_if_missing)
        source, kwargs = "clotho", {}
    elif data_args.dataset == "audiocaps":
        source, kwargs = "audiocaps", {"audio_dir": data_args.audio_dir}
    else:
        source, kwargs = data_args.dataset, {}
    if source != "hf":  # the hf loader looks for no files (DataArguments refuses skip_missing with it)
        kwargs["skip_missing"] = data_args.skip_missing
    kwargs.update(data_args.dataset_kwargs)
    splits = [s for s in (data_args.train_split, data_args.eval_split, data_args.test_split) if s]
    splits += [s for s in data_args.extra_test_splits if s not in splits]
    if data_args.streaming and source == "hf":
        return _load_hf_streams(data_args, splits, kwargs)
    clips = load_caption_dataset(source, data_args.dataset_path, **kwargs)
    missing = [s for s in splits if s not in clips]
    if missing:
        raise ValueError(f"{data_args.dataset_path}: no split(s) {missing}; it has {sorted(clips)}")
    clips = DatasetDict({s: clips[s] for s in splits})
    if data_args.max_train_clips:
        clips[data_args.train_split] = clips[data_args.train_split].select(
            range(min(data_args.max_train_clips, len(clips[data_args.train_split])))
        )
    if data_args.max_eval_clips and data_args.eval_split:
        clips[data_args.eval_split] = clips[data_args.eval_split].select(
            range(min(data_args.max_eval_clips, len(clips[data_args.eval_split])))
        )
    # Every clip's header (readable, not truncated or empty, within max_duration) before anything is decoded: a bad
    # file stops the run now, with the list of bad clips, not at the batch that holds it.
    check_audio_files(clips, max_duration=data_args.max_duration, where=str(data_args.dataset_path))
    if data_args.streaming:
        clips[data_args.train_split] = to_caption_stream(clips[data_args.train_split])
    if data_args.style:
        from hf_audiocap.data.mixture import with_style

        clips = with_style(clips, data_args.style)
    return clips


def _load_hf_streams(data_args: DataArguments, splits: list[str], kwargs: dict) -> DatasetDict:
    """`streaming` with the hf source: the training split stays a stream (its first `max_train_clips` with that
    option); the validation/test splits are read from their streams into memory (they are small and need a length)
    and checked like any loader's."""
    clips = DatasetDict()
    for split in splits:
        stream = load_hf_stream(data_args.dataset_path, split, **kwargs)
        if split == data_args.train_split:
            clips[split] = stream.take(data_args.max_train_clips) if data_args.max_train_clips else stream
        else:
            limit = data_args.max_eval_clips if split == data_args.eval_split else None
            clips[split] = materialize(stream, limit or None)
    held = DatasetDict({s: ds for s, ds in clips.items() if s != data_args.train_split})
    check_audio_files(held, max_duration=data_args.max_duration, where=str(data_args.dataset_path))
    return clips


def describe_splits(clips) -> dict:
    """{split: number of clips, or "streamed"} for the log."""
    return {split: len(ds) if isinstance(ds, Dataset) else "streamed" for split, ds in clips.items()}


def training_dataset(train_clips, data_args: DataArguments, training_args):
    """What the Trainer reads: the clips (`group_captions`) or their (clip, caption) rows; a streamed split also
    shuffled with a buffer, repeated, and split by node (one part per process, see `training_stream`)."""
    if isinstance(train_clips, IterableDataset):
        seed = training_args.data_seed if training_args.data_seed is not None else training_args.seed
        return training_stream(
            train_clips,
            group_captions=data_args.group_captions,
            shuffle_buffer_size=data_args.shuffle_buffer_size,
            seed=seed,
            rank=training_args.process_index,
            world_size=training_args.world_size,
        )
    length_column = training_args.length_column_name
    if training_args.train_sampling_strategy == "group_by_length" and length_column not in train_clips.column_names:
        # batches of clips of similar durations (read from the headers): less padding for the encoder to run through
        train_clips = train_clips.add_column(length_column, audio_durations(train_clips))
    return train_clips if data_args.group_captions else expand_captions(train_clips)


def prepare_features(clips: DatasetDict, processor, data_args: DataArguments, training_args) -> DatasetDict:
    """With `precompute_features`, every split's log-mels from the cache (computed there on the first run, by the
    main process first); otherwise `clips` as they are (the collator decodes and featurizes each batch)."""
    if not data_args.precompute_features:
        return clips
    with training_args.main_process_first(desc="log-mel cache"):
        return DatasetDict(
            {
                split: precompute_log_mels(
                    ds, processor.feature_extractor, data_args.features_cache_dir, data_args.max_duration
                )
                for split, ds in clips.items()
            }
        )


# --- processor and model ----------------------------------------------------------------------------


def build_processor(model_args: ModelArguments, train_clips, styles: list[str] = ()) -> AudioCapProcessor:
    """The saved model's processor, or a new one: the log-mel front end (standardised with statistics
    measured on training clips unless told otherwise) + a word-level tokenizer built from the training
    captions (or the named pretrained tokenizer); with `styles`, their tokens added to the tokenizer."""
    processor = _processor(model_args, train_clips)
    # a style is a token of the vocabulary, except for a pretrained LM (its text, hf_audiocap/configuration_audiocap_prefix)
    pretrained_lm = model_args.model_kind == "prefix" and (
        model_args.decoder_name_or_path or model_args.model_name_or_path
    )
    if styles and not pretrained_lm:
        from hf_audiocap.configuration_audiocap import style_token

        tokenizer = processor.tokenizer
        tokenizer.add_tokens([style_token(s) for s in styles if style_token(s) not in tokenizer.get_vocab()],
                             special_tokens=True)  # fmt: skip
    return processor


def _processor(model_args: ModelArguments, train_clips) -> AudioCapProcessor:
    # the first of the recipe's loads: every part it names is checked here (one line offline, not a traceback)
    names = ("model_name_or_path", "encoder_name_or_path", "decoder_name_or_path", "tokenizer_name_or_path")
    for name in filter(None, (getattr(model_args, n) for n in names)):
        check_pretrained(name)
    if model_args.model_name_or_path:
        return AutoProcessor.from_pretrained(
            model_args.model_name_or_path, trust_remote_code=model_args.trust_remote_code
        )
    feature_extractor = AudioCapFeatureExtractor(**model_args.feature_extractor_overrides)
    wants_stats = (
        feature_extractor.log_mode == "natural" and "do_normalize" not in model_args.feature_extractor_overrides
    )
    if model_args.normalize_features and wants_stats:
        sample = _first_clips(train_clips, model_args.normalization_clips)
        waves = [load_audio(a, feature_extractor.sampling_rate, name=i) for a, i in zip(sample["audio"], sample["id"])]
        mean, std = compute_normalization(feature_extractor, waves)
        feature_extractor.do_normalize, feature_extractor.mean, feature_extractor.std = True, mean, std
        logger.info("log-mel statistics over %d training clips: mean %.3f, std %.3f", len(waves), mean, std)
    if model_args.tokenizer_name_or_path:
        tokenizer = AutoTokenizer.from_pretrained(
            model_args.tokenizer_name_or_path, trust_remote_code=model_args.trust_remote_code
        )
        if tokenizer.pad_token is None:  # GPT-2 has none: pad with eos (padding is masked in labels anyway)
            tokenizer.pad_token = tokenizer.eos_token
    else:
        if isinstance(train_clips, IterableDataset):
            logger.info("word tokenizer: reading the captions of the streamed training split (one pass)")
            captions_per_clip = (row["captions"] for row in train_clips)
        else:
            captions_per_clip = train_clips["captions"]
        texts = [c for captions in captions_per_clip for c in captions]
        tokenizer = build_word_tokenizer(texts, min_frequency=model_args.word_min_frequency)
    return AudioCapProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer)


def _first_clips(clips, n: int) -> dict[str, list]:
    """The `audio` and `id` of the first `n` clips of a split or a stream (a stream reads only those)."""
    if isinstance(clips, IterableDataset):
        rows = list(itertools.islice(clips, n))
        return {"audio": [r["audio"] for r in rows], "id": [r["id"] for r in rows]}
    return clips.select(range(min(n, len(clips))))[:]


def build_model(
    model_args: ModelArguments, processor: AudioCapProcessor, training_args: Seq2SeqTrainingArguments, styles=()
):
    """A saved model, a composition of pretrained encoder/decoder, or the built-in model from scratch; with `styles`
    (docs/mixtures.md), their tokens in its vocabulary and `config.styles`."""
    from hf_audiocap.configuration_audiocap import AudioCapConfig
    from hf_audiocap.modeling_audiocap import AudioCapForConditionalGeneration

    tok = processor.tokenizer
    n_mels = processor.feature_extractor.feature_size
    if model_args.model_kind == "prefix":
        from hf_audiocap.training.prefix import build_prefix_model

        model = build_prefix_model(model_args, processor, training_args)
        if styles:  # each style's text goes before the caption (docs/mixtures.md)
            model.config.set_styles(tok, list(styles))
        if model_args.cache_encoder_outputs:
            model.frozen_cache = _encoder_cache(model.encoder_kind, model.encoder, model_args)
        return model
    if model_args.model_name_or_path:
        model = AudioCapForConditionalGeneration.from_pretrained(
            model_args.model_name_or_path, trust_remote_code=model_args.trust_remote_code
        )
    elif model_args.encoder_name_or_path or model_args.decoder_name_or_path:
        # Pretrained parts keep their own special ids; a built-in part is sized from the tokenizer.
        kwargs = dict(model_args.config_overrides)
        for part, path in (("encoder", model_args.encoder_name_or_path), ("decoder", model_args.decoder_name_or_path)):
            # from_encoder_decoder_pretrained takes a part's fields prefixed: a built-in part's config fields, or
            # `config_kwargs`, those of a pretrained part's own config
            fields = kwargs.pop(part, None) or {}
            if path and fields:
                config = AutoConfig.from_pretrained(path, trust_remote_code=model_args.trust_remote_code)
                check_config_fields(f"config_overrides.{part}", config, fields)
                kwargs[f"{part}_config_kwargs"] = fields
            else:
                kwargs.update({f"{part}_{key}": value for key, value in fields.items()})
        if not model_args.decoder_name_or_path:
            kwargs.update(_special_ids(tok))
            kwargs.setdefault("keyword_loss_weight", _default_keyword_weight(tok))
        if not model_args.encoder_name_or_path:
            kwargs["encoder_num_mel_bins"] = n_mels
        model = AudioCapForConditionalGeneration.from_encoder_decoder_pretrained(
            model_args.encoder_name_or_path, model_args.decoder_name_or_path, **kwargs
        )
    else:
        overrides = dict(model_args.config_overrides)
        encoder = {"num_mel_bins": n_mels, **overrides.pop("encoder", {})}
        overrides.setdefault("keyword_loss_weight", _default_keyword_weight(tok))
        config = AudioCapConfig(encoder=encoder, **_special_ids(tok), **overrides)
        model = AudioCapForConditionalGeneration(config)
    if styles:
        _add_styles(model, tok, styles)
    if model_args.freeze_encoder:
        model.freeze_encoder()
    if model_args.cache_encoder_outputs:
        audio = model.model.encoder
        audio.frozen_cache = _encoder_cache(audio.kind, audio.model, model_args)
    gen = model.generation_config
    if training_args.generation_max_length:
        gen.max_length = training_args.generation_max_length
    if training_args.generation_num_beams:
        gen.num_beams = training_args.generation_num_beams
    set_decoding_settings(gen, training_args)
    return model


def _encoder_cache(kind: str, encoder, model_args: ModelArguments):
    """The frozen `encoder`'s states per clip: in memory, or in `encoder_cache_dir` for this run and later ones."""
    from hf_audiocap.encoders_audiocap import FrozenEncoderCache

    if not model_args.encoder_cache_dir:
        return FrozenEncoderCache()
    from hf_audiocap.training.encoder_store import EncoderStateStore, encoder_digest

    source = model_args.encoder_name_or_path or model_args.model_name_or_path
    store = EncoderStateStore(
        model_args.encoder_cache_dir, encoder_digest(kind, encoder), description=f"{kind}: {source}"
    )
    logger.info("encoder states: %s", store.root)
    return FrozenEncoderCache(max_clips=None, store=store)


def frozen_cache(model):
    """The model's `FrozenEncoderCache` (`cache_encoder_outputs`), None without one: the encoder-decoder's audio
    encoder holds it, the prefix model itself."""
    holder = model.get_encoder() if model.config.is_encoder_decoder else model
    return getattr(holder, "frozen_cache", None)


def _add_styles(model, tokenizer, styles) -> None:
    """`config.styles` gains the recipe's styles (a model fine-tuned from a styled one keeps its own), the vocabulary
    grows to hold their tokens, and the recipe's first style becomes the default."""
    from hf_audiocap.configuration_audiocap import style_token

    if len(tokenizer) > model.config.vocab_size:
        model.resize_token_embeddings(len(tokenizer))
    known = dict(model.config.styles or {})
    known.update({s: tokenizer.convert_tokens_to_ids(style_token(s)) for s in styles if s not in known})
    model.config.styles = known
    model.config.default_style = styles[0]  # the recipe's first corpus, or the style it fine-tunes in


def _default_keyword_weight(tok) -> float:
    """The keyword-estimation weight of a built-in decoder when the recipe names none: the config's default (0.5) on
    a word-level vocabulary, where it was measured to help; 0 on subwords, where a keyword is no word
    (docs/experiments.md). A pretrained decoder defaults to 0 in `AudioCapConfig.from_encoder_decoder_configs`."""
    from hf_audiocap.configuration_audiocap import AudioCapConfig

    backend = getattr(tok, "backend_tokenizer", None)
    word_level = backend is not None and type(backend.model).__name__ == "WordLevel"
    return AudioCapConfig().keyword_loss_weight if word_level else 0.0


def _special_ids(tok) -> dict:
    start = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    return {
        "vocab_size": len(tok),
        "pad_token_id": tok.pad_token_id,
        "eos_token_id": tok.eos_token_id,
        "bos_token_id": start,
        "decoder_start_token_id": start,
    }


# --- trainer ----------------------------------------------------------------------------------------


def build_trainer(model, processor, clips: DatasetDict, data_args: DataArguments, training_args) -> AudioCapTrainer:
    from hf_audiocap.metrics.recipe import evaluation_metrics

    training_args.remove_unused_columns = False  # the collator reads the raw audio and caption columns
    scst = getattr(training_args, "scst", False)
    if getattr(model.config, "model_type", None) == "audiocap_prefix":  # rows must fit the LM: said before training
        from hf_audiocap.training.prefix import check_prompt_fits

        check_prompt_fits(model, processor, data_args.max_duration, data_args.max_label_length)
    input_name = getattr(model, "main_input_name", "input_features")
    common = {
        "processor": processor,
        "max_duration": data_args.max_duration,
        "max_label_length": data_args.max_label_length,
        "input_name": input_name,
        **_style_settings(model, clips[data_args.train_split]),
    }
    eval_dataset, watched = _eval_datasets(clips, data_args, training_args)
    train_collator = AudioCaptionCollator(
        **common,
        text_column="captions" if data_args.group_captions else "caption",
        training=True,
        mixup=CaptionMixup(prob=data_args.mixup_prob) if data_args.mixup_prob > 0 else None,
        return_clip_ids=True,
        return_references=scst,
    )
    eval_collator = AudioCaptionCollator(**common, text_column="captions")
    callbacks = [
        SampleCaptionsCallback(),
        TrainingCurvesCallback(
            main_metric=_eval_key(training_args.metric_for_best_model or _default_main_metric(data_args)),
            train_loss_label=objective_label(model, training_args),
        ),
        OverfittingCallback(getattr(training_args, "overfitting_patience", 2)),
    ]
    if training_args.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(training_args.early_stopping_patience))
    if os.environ.get(WeightsDigestCallback.ENV):
        callbacks.append(WeightsDigestCallback(os.environ[WeightsDigestCallback.ENV]))
    streamed = isinstance(clips[data_args.train_split], IterableDataset)
    trainer = AudioCapTrainer(
        model=model,
        args=training_args,
        data_collator=train_collator,
        train_dataset=training_dataset(clips[data_args.train_split], data_args, training_args),
        # a stream is already split by node (training_dataset): the Trainer must not shard it a second time
        train_split_by_node=streamed and training_args.world_size > 1,
        eval_dataset=eval_dataset,
        processing_class=processor,
        eval_data_collator=eval_collator,
        callbacks=callbacks,
        # the recipe's `metrics` (checked with metric_for_best_model before training), computed once per evaluation
        metrics_fn=evaluation_metrics(
            getattr(training_args, "metrics", "coco"),
            watched,
            training_references=None if streamed else clips[data_args.train_split]["captions"],
        ),
        num_sample_captions=data_args.num_sample_captions,
        # drawn at the training step, after a resumed run's RNG state is restored (see AudioCapTrainer)
        spec_augment=SpecAugment() if data_args.spec_augment and input_name == "input_features" else None,
        # self-critical training: CIDEr-D rewards with document frequencies over the training references
        scst_reward=CiderDReward(clips[data_args.train_split]["captions"]) if scst else None,
    )
    return trainer


def _style_settings(model, train_clips) -> dict:
    """The collators' style settings for a model trained with styles (none otherwise); such a model's clips must
    each name one (`corpora` with `styles`, or `style`)."""
    styles = getattr(model.config, "styles", None)
    if not styles:
        return {}
    if "style" not in (train_clips.column_names or []):
        raise ValueError(
            f"this model was trained with styles ({', '.join(styles)}): set `style: NAME` (one of them, or a new one) "
            "for this recipe's clips, or train on corpora with styles: true"
        )
    if model.config.model_type == "audiocap_prefix":
        return {"style_order": model.config.style_order}
    return {"style_token_ids": dict(styles), "decoder_start_token_id": model.config.decoder_start_token_id}


def _eval_datasets(clips, data_args: DataArguments, training_args):
    """The validation clips (with `corpora`: {corpus: its clips}, evaluated under `eval_<corpus>_` prefixes) and the
    metric that best-model selection watches, as the metrics function names it (without its corpus prefix)."""
    metric = training_args.metric_for_best_model
    if not data_args.corpora:
        return (clips[data_args.eval_split] if data_args.eval_split else None), metric
    from hf_audiocap.data.mixture import corpus_data_args, parse_corpora

    corpora = parse_corpora(data_args.corpora)
    evals = {}
    for corpus in corpora:
        split = corpus_data_args(data_args, corpus).eval_split
        if split and corpus.held_out(split) in clips:
            evals[corpus.name] = clips[corpus.held_out(split)]
    if not metric:
        return evals or None, None
    name = metric.removeprefix("eval_")
    owner = next((c for c in corpora if name.startswith(c.name + "_")), None)
    if owner is None:
        raise ValueError(
            f"metric_for_best_model: {metric} names no corpus: with corpora, name the one to watch, e.g. "
            f"{corpora[0].name}_cider_d (corpora: {', '.join(c.name for c in corpora)})"
        )
    if owner.name not in evals:
        raise ValueError(f"metric_for_best_model: {metric} watches {owner.name}, which has no validation split")
    return evals, name.removeprefix(owner.name + "_")


def _default_main_metric(data_args: DataArguments) -> str:
    if data_args.corpora:
        from hf_audiocap.data.mixture import parse_corpora

        return f"{parse_corpora(data_args.corpora)[0].name}_cider_d"
    return "cider_d"


def objective_label(model, training_args) -> str:
    """What the optimised training loss is, in words (the curves' objective panel): it is the plain cross-entropy only
    without label smoothing and auxiliary terms; an SCST loss is no cross-entropy at all."""
    if getattr(training_args, "scst", False):
        return "SCST loss (-advantage x log p of the samples)"
    terms = ["label-smoothed cross-entropy" if training_args.label_smoothing_factor else "cross-entropy"]
    weight = getattr(model.config, "keyword_loss_weight", 0.0)
    if weight > 0:
        terms.append(f"{weight:g} x keyword term")
    return " + ".join(terms)


def _eval_key(metric: str) -> str:
    return metric if metric.startswith("eval_") else f"eval_{metric}"


# --- the test report --------------------------------------------------------------------------------


def evaluate_test_splits(trainer, clips, data_args: DataArguments, output_dir: str | Path) -> tuple[dict, list]:
    """The test report of a recipe: :func:`evaluate_test_split` on its test split; with `corpora`, on each corpus's
    (its report files in `output_dir/<corpus>/`, its metrics prefixed `test_<corpus>_` in what is returned). Returns
    the metrics and, for printing, `(title, metrics, clips, predictions)` per report."""
    if not data_args.corpora:
        if not data_args.test_split:
            return {}, []
        test_clips = clips[data_args.test_split]
        metrics = evaluate_test_split(trainer, test_clips, data_args, output_dir, all_clips=clips)
        return metrics, [("", metrics, test_clips, trainer.last_predictions)]
    from hf_audiocap.data.mixture import corpus_data_args, parse_corpora

    merged, reports = {}, []
    for corpus in parse_corpora(data_args.corpora):
        sub = corpus_data_args(data_args, corpus)
        if not sub.test_split:
            continue
        own = {s.split("/", 1)[1]: ds for s, ds in clips.items() if s.startswith(corpus.name + "/")}
        metrics = evaluate_test_split(trainer, own[sub.test_split], sub, Path(output_dir) / corpus.name, all_clips=own)
        merged.update({f"test_{corpus.name}_{k.removeprefix('test_')}": v for k, v in metrics.items()})
        reports.append((corpus.name, metrics, own[sub.test_split], trainer.last_predictions))
    if trainer.is_world_process_zero():  # every corpus's figures in one file, `<corpus>_<metric>`
        table = {k.removeprefix("test_"): v for k, v in merged.items() if isinstance(v, (int, float))}
        (Path(output_dir) / "test_metrics.json").write_text(json.dumps(table, indent=2, sort_keys=True) + "\n")
    return merged, reports


def evaluate_test_split(trainer, clips, data_args: DataArguments, output_dir: str | Path, all_clips=None) -> dict:
    """`recipes/train.py`'s test report: the trainer's evaluation (`test_`-prefixed caption metrics and loss) plus
    :func:`split_scores`, written by the main process as `test_predictions.jsonl`, `test_per_caption.csv` (each clip's
    scores, from the run's `metrics_fn`) and `test_metrics.json` (keys without the prefix); each of `extra_test_splits`
    (from `all_clips`) likewise, its keys prefixed with its name, its files `<split>_predictions.jsonl` and so on. Returns the prefixed metrics."""
    # training is over: early stopping watches `eval_` metrics and would report those of a `test_` evaluation missing
    trainer.pop_callback(EarlyStoppingCallback)
    metrics = trainer.evaluate(clips, metric_key_prefix="test", generate=True)
    predictions = trainer.last_predictions
    per_clip = getattr(getattr(trainer, "metrics_fn", None), "last_per_clip", None)  # the per-caption file's scores
    extra = split_scores(predictions, clips, data_args.dataset, data_args.dataset_path, data_args.test_split)
    metrics.update({f"test_{k}": v for k, v in extra.items()})
    for split in data_args.extra_test_splits:  # each further split: its metrics prefixed with its name
        more = trainer.evaluate(all_clips[split], metric_key_prefix=split, generate=True)
        more.update(
            {f"{split}_{k}": v for k, v in split_scores(trainer.last_predictions, all_clips[split], data_args.dataset,
                                                        data_args.dataset_path, split).items()}
        )  # fmt: skip
        metrics.update({f"test_{k}": v for k, v in more.items()})
        # the single-recording accuracy keeps its own name: it is a figure of this split only
        metrics.update({f"test_{k.removeprefix(split + '_')}": v for k, v in more.items() if "single_class_acc" in k})
        if trainer.is_world_process_zero():
            own = {k.removeprefix(f"{split}_"): v for k, v in more.items()}
            write_report(output_dir, split, all_clips[split], trainer.last_predictions, own, corpus=data_args.dataset,
                         per_clip=getattr(getattr(trainer, "metrics_fn", None), "last_per_clip", None))  # fmt: skip
    if trainer.is_world_process_zero():
        write_report(output_dir, "test", clips, predictions, {k.removeprefix("test_"): v for k, v in metrics.items()},
                     per_clip=per_clip, corpus=data_args.dataset)  # fmt: skip
    return metrics
