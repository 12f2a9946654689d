"""Recipe parsing: YAML + `--key value` overrides into the three argument dataclasses, and the errors a wrong
recipe gets before anything runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from hf_audiocap.training.arguments import parse_recipe

REPO_ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((REPO_ROOT / "recipes").rglob("*.yaml"))
TRAINING_RECIPES = [p for p in RECIPES if "accelerate_configs" not in p.parts]


def write(tmp_path: Path, text: str, name: str = "recipe.yaml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


BASE = "dataset: synthcaps\ndataset_path: data/synthcaps\noutput_dir: {out}\nreport_to: none\n"


def base(tmp_path: Path, extra: str = "") -> str:
    return write(tmp_path, BASE.format(out=tmp_path / "out") + extra)


def test_yaml_and_command_line_overrides(tmp_path):
    recipe = base(tmp_path, "learning_rate: 1.0e-3\nper_device_train_batch_size: 4\nspec_augment: false\n")
    model_args, data_args, training_args = parse_recipe(
        [
            recipe,
            "--learning_rate",
            "2e-4",
            "--spec_augment",  # bare flag: true
            "--config_overrides",
            "{encoder: {d_model: 32}, decoder: {d_model: 32}}",
            "--max_steps=7",
            "--eval-strategy",
            "no",  # a word on the command line, not YAML's boolean
        ]
    )
    assert training_args.learning_rate == pytest.approx(2e-4)
    assert training_args.per_device_train_batch_size == 4  # from the YAML
    assert training_args.max_steps == 7
    assert training_args.eval_strategy == "no"
    assert data_args.spec_augment is True
    assert model_args.config_overrides == {"encoder": {"d_model": 32}, "decoder": {"d_model": 32}}
    assert data_args.dataset_path == "data/synthcaps"


def test_command_line_only(tmp_path):
    _, data_args, training_args = parse_recipe(["--output_dir", str(tmp_path), "--dataset", "clotho"])
    assert data_args.dataset == "clotho" and training_args.output_dir == str(tmp_path)


def test_none_on_the_command_line_skips_a_split(tmp_path):
    _, data_args, _ = parse_recipe([base(tmp_path), "--test_split", "None"])
    assert data_args.test_split is None
    with pytest.raises(ValueError, match="needs an eval_split"):
        parse_recipe([base(tmp_path), "--eval_split", "None", "--eval_strategy", "epoch"])
    _, data_args, _ = parse_recipe([base(tmp_path), "--eval_split", "none", "--eval_strategy", "no"])
    assert data_args.eval_split is None


@pytest.mark.parametrize("value", ["3e-4", "3E-4", "1e-3"])
def test_float_strings_without_a_dot(tmp_path, value):
    # YAML 1.1 reads `3e-4` (no dot) as a string; float fields accept it
    _, data_args, training_args = parse_recipe([base(tmp_path, f"learning_rate: {value}\nmixup_prob: 5e-1\n")])
    assert training_args.learning_rate == pytest.approx(float(value))
    assert data_args.mixup_prob == pytest.approx(0.5)
    _, _, training_args = parse_recipe([base(tmp_path), "--learning_rate", value])
    assert training_args.learning_rate == pytest.approx(float(value))


def test_float_field_with_a_word_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="recipe key learning_rate: expected a number, got 'fast'"):
        parse_recipe([base(tmp_path, "learning_rate: fast\n")])


def test_none_for_any_optional_number_and_words_for_numbers_in_one_line(tmp_path):
    recipe = base(tmp_path, "load_best_model_at_end: true\nmetric_for_best_model: cider_d\neval_strategy: steps\n")
    _, data_args, training_args = parse_recipe(
        [recipe, "--early_stopping_patience", "None", "--max_train_clips", "none", "--generation_num_beams", "None"]
    )
    assert training_args.early_stopping_patience is None and data_args.max_train_clips is None
    assert training_args.generation_num_beams is None
    for key, value, expected in (
        ("early_stopping_patience", "three", r"early_stopping_patience: expected an integer or null, got 'three'"),
        ("max_steps", "many", r"max_steps: expected an integer, got 'many'"),
        ("max_steps", "None", r"max_steps: expected an integer, got 'None'"),
    ):
        with pytest.raises(ValueError, match=expected):
            parse_recipe([recipe, f"--{key}", value])


def test_unknown_key_in_yaml(tmp_path):
    with pytest.raises(ValueError, match=r"unknown recipe keys: learnig_rate, num_epochs"):
        parse_recipe([base(tmp_path, "learnig_rate: 1.0e-3\nnum_epochs: 3\n")])


def test_unknown_key_on_command_line(tmp_path):
    with pytest.raises(ValueError, match=r"unknown recipe keys: batch_size"):
        parse_recipe([base(tmp_path), "--batch_size", "8"])


def test_stray_positional_argument(tmp_path):
    with pytest.raises(ValueError, match="overrides are written --key value"):
        parse_recipe([base(tmp_path), "--max_steps", "3", "oops", "4"])


def test_missing_recipe_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="recipe not found"):
        parse_recipe([str(tmp_path / "nope.yaml")])


def test_recipe_must_be_a_mapping(tmp_path):
    with pytest.raises(ValueError, match="a recipe is a YAML mapping"):
        parse_recipe([write(tmp_path, "- a\n- b\n")])


def test_early_stopping_needs_load_best_model_at_end(tmp_path):
    with pytest.raises(ValueError, match="early_stopping_patience needs load_best_model_at_end"):
        parse_recipe([base(tmp_path, "early_stopping_patience: 2\neval_strategy: epoch\n")])
    with pytest.raises(ValueError, match="early_stopping_patience must be >= 1"):
        parse_recipe([base(tmp_path), "--early_stopping_patience", "0"])
    # the valid combination parses
    _, _, training_args = parse_recipe(
        [
            base(tmp_path, "eval_strategy: epoch\nsave_strategy: epoch\nload_best_model_at_end: true\n"),
            "--early_stopping_patience",
            "2",
            "--metric_for_best_model",
            "cider_d",
        ]
    )
    assert training_args.early_stopping_patience == 2
    assert training_args.metric_for_best_model == "cider_d" and training_args.greater_is_better


@pytest.mark.parametrize("prob", ["1.5", "-0.1"])
def test_mixup_prob_out_of_range(tmp_path, prob):
    with pytest.raises(ValueError, match=r"mixup_prob must lie in \[0, 1\]"):
        parse_recipe([base(tmp_path), "--mixup_prob", prob])


def test_booleans_are_booleans(tmp_path):
    """true/false, yes/no, on/off and 1/0, in any case, are booleans in the recipe and on the command line, for
    transformers' arguments too; any other value of a boolean key is refused naming it (the word 'no' was truthy)."""
    recipe = base(tmp_path, "spec_augment: Yes\ngroup_captions: 1\npredict_with_generate: off\n")
    _, data_args, training_args = parse_recipe([recipe])
    assert (data_args.spec_augment, data_args.group_captions, training_args.predict_with_generate) == (
        True,
        True,
        False,
    )
    words = ["--load_best_model_at_end", "no", "--spec_augment", "OFF", "--group_captions", "on"]
    words += ["--predict_with_generate", "TRUE", "--disable_tqdm", "0", "--freeze_encoder", "Yes"]
    model_args, data_args, training_args = parse_recipe([base(tmp_path), *words])
    assert training_args.load_best_model_at_end is False and training_args.predict_with_generate is True
    assert (data_args.spec_augment, data_args.group_captions) == (False, True)
    assert training_args.disable_tqdm is False and model_args.freeze_encoder is True
    for key in ("load_best_model_at_end", "spec_augment"):
        with pytest.raises(ValueError, match=rf"^recipe key {key}: expected true or false, got 'maybe'$"):
            parse_recipe([base(tmp_path), f"--{key}", "maybe"])
    with pytest.raises(ValueError, match=r"^recipe key disable_tqdm: expected true or false or null, got 2$"):
        parse_recipe([base(tmp_path, "disable_tqdm: 2\n")])


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("num_train_epochs: [6]", "recipe key num_train_epochs: expected a number, got [6]"),
        ("per_device_train_batch_size: 8.5", "recipe key per_device_train_batch_size: expected an integer, got 8.5"),
        ("early_stopping_patience: two", "recipe key early_stopping_patience: expected an integer or null, got 'two'"),
        ("extra_test_splits: {a: 1}", "recipe key extra_test_splits: expected a list of strings, got {'a': 1}"),
        ("config_overrides: [4]", "recipe key config_overrides: expected a mapping, got [4]"),
        ("eval_strategy: sometimes", "recipe key eval_strategy: expected one of no, steps, epoch, got 'sometimes'"),
        ("nonfinite_loss: maybe", "recipe key nonfinite_loss: expected one of stop, skip, got 'maybe'"),
        ("max_duration: on", "recipe key max_duration: expected a number, got the boolean True (YAML reads"),
    ],
)
def test_values_are_checked_against_the_declared_types(tmp_path, line, message):
    # one line naming the key, what it expects and the value, before transformers or a check trips over it
    with pytest.raises(ValueError, match="^" + re.escape(message)) as refused:
        parse_recipe([base(tmp_path, line + "\n")])
    assert "\n" not in str(refused.value)


def test_values_are_read_as_their_fields_mean_them(tmp_path):
    # ints for floats; a number, a null, a word from the command line as the field reads it
    recipe = base(tmp_path, "num_train_epochs: 6\nlearning_rate: 1\nmax_eval_clips: null\n")
    line = ["--max_steps", "1.0e+2", "--max_train_clips", "None", "--extra_test_splits", "test_single"]
    line += ["--run_name", "2024", "--max_duration", "12", "--report_to", "none"]
    _, data_args, training_args = parse_recipe([recipe, *line])
    assert training_args.num_train_epochs == 6 and training_args.learning_rate == 1
    assert training_args.max_steps == 100 and isinstance(training_args.max_steps, int)
    assert data_args.max_train_clips is None and data_args.max_eval_clips is None
    assert data_args.extra_test_splits == ["test_single"] and data_args.max_duration == 12
    assert training_args.run_name == "2024" and training_args.report_to == []


def test_unquoted_yaml_no_is_explained(tmp_path):
    with pytest.raises(
        ValueError, match=r"eval_strategy: expected .*got the boolean False.*quote it, eval_strategy: 'no'"
    ):
        parse_recipe([base(tmp_path, "eval_strategy: no\n")])
    _, _, training_args = parse_recipe([base(tmp_path, "eval_strategy: 'no'\n")])
    assert training_args.eval_strategy == "no"


def test_other_invalid_combinations(tmp_path):
    with pytest.raises(ValueError, match="synth_if_missing only applies to dataset: synthcaps"):
        parse_recipe([base(tmp_path), "--dataset", "clotho", "--synth_if_missing"])
    with pytest.raises(ValueError, match="audiocaps needs audio_dir"):
        parse_recipe([base(tmp_path), "--dataset", "audiocaps"])
    with pytest.raises(ValueError, match="model_name_or_path loads a complete model"):
        parse_recipe([base(tmp_path), "--model_name_or_path", "x", "--encoder_name_or_path", "y"])
    with pytest.raises(ValueError, match="max_label_length must be >= 2"):
        parse_recipe([base(tmp_path), "--max_label_length", "1"])
    with pytest.raises(ValueError, match="scst: true rewards captions against all of a clip's references"):
        parse_recipe([base(tmp_path), "--scst", "--group_captions", "false"])
    with pytest.raises(ValueError, match="scst_samples must be >= 2"):
        parse_recipe([base(tmp_path), "--scst", "--group_captions", "--scst_samples", "1"])
    with pytest.raises(ValueError, match="set mixup_prob: 0"):
        parse_recipe([base(tmp_path), "--scst", "--group_captions", "--mixup_prob", "0.5"])


@pytest.mark.parametrize("recipe", TRAINING_RECIPES, ids=[str(p.relative_to(REPO_ROOT)) for p in TRAINING_RECIPES])
def test_every_recipe_parses(recipe, tmp_path):
    # parsing only: the datasets and output folders named in the recipes need not exist
    model_args, data_args, training_args = parse_recipe(
        [str(recipe), "--output_dir", str(tmp_path / "out"), "--report_to", "none", "--bf16", "false"]
    )
    assert data_args.dataset and training_args.output_dir == str(tmp_path / "out")
    if training_args.load_best_model_at_end:
        assert training_args.metric_for_best_model
    # (their config_overrides name fields the configs read: parsing refuses any other)


def test_recipes_found():
    assert len(TRAINING_RECIPES) >= 4, TRAINING_RECIPES


def test_help_lists_every_recipe_field(capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_recipe(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in ("--dataset_path", "--group_captions", "--normalize_features", "--early_stopping_patience"):
        assert name in out


def test_synthcaps_folder_generated_with_other_arguments_is_refused(tmp_path):
    """A recipe's synth_kwargs must match the SynthCaps folder it finds (else a bigger training split asked for
    would silently be an older, smaller one); matching arguments load as usual."""
    from recipe_helpers import make_synthcaps

    from hf_audiocap.training.builders import load_recipe_datasets

    data = make_synthcaps(tmp_path / "synth", num_train=3, num_validation=1, num_test=1)
    sizes = "num_validation: 1, num_test: 1}"
    _, data_args, _ = parse_recipe(
        [base(tmp_path), "--dataset_path", str(data), "--synth_kwargs", "{seed: 0, num_train: 5, " + sizes]
    )
    with pytest.raises(ValueError, match=r"num_train=5 \(the folder has 3\).*delete the folder") as refused:
        load_recipe_datasets(data_args)
    # the message gives the folder's own arguments in recipe syntax: given back, they load it
    own = re.search(r"synth_kwargs: (\{.*?\})", str(refused.value)).group(1)
    assert yaml.safe_load(own) == {"seed": 0, "num_train": 3, "num_validation": 1, "num_test": 1}
    _, data_args, _ = parse_recipe([base(tmp_path), "--dataset_path", str(data), "--synth_kwargs", own])
    assert len(load_recipe_datasets(data_args)["train"]) == 3
    (data / "synthcaps_info.json").write_text("{truncated", encoding="utf-8")
    with pytest.raises(ValueError, match="synthcaps_info.json' is not valid JSON"):
        load_recipe_datasets(data_args)


def test_save_total_limit_is_applied_after_checkpoints_are_complete(tmp_path):
    """transformers gets no save_total_limit (its rotation runs inside its save, before our manifest); the limit is
    kept for the checkpoint callback, which is not itself a recipe key."""
    _, _, training_args = parse_recipe([base(tmp_path, "save_total_limit: 2\n")])
    assert training_args.save_total_limit is None and training_args.checkpoint_total_limit == 2
    assert "checkpoint_total_limit" not in training_args.to_dict()
    _, _, training_args = parse_recipe([base(tmp_path)])
    assert training_args.save_total_limit is None and training_args.checkpoint_total_limit is None
    with pytest.raises(ValueError, match="unknown recipe keys: checkpoint_total_limit"):
        parse_recipe([base(tmp_path), "--checkpoint_total_limit", "2"])
    with pytest.raises(ValueError, match="enable_jit_checkpoint saves a checkpoint outside the Trainer's save events"):
        parse_recipe([base(tmp_path), "--enable_jit_checkpoint"])


def test_no_pinned_memory_without_an_accelerator(tmp_path):
    # pinning only speeds up copies to an accelerator; torch warns at every DataLoader of a CPU run otherwise
    from hf_audiocap.training.arguments import AudioCapTrainingArguments

    assert not AudioCapTrainingArguments(output_dir=str(tmp_path), use_cpu=True).dataloader_pin_memory
    with pytest.raises(ValueError, match="overfitting_patience must be >= 1"):
        AudioCapTrainingArguments(output_dir=str(tmp_path), use_cpu=True, overfitting_patience=0)


# --- config_overrides -----------------------------------------------------------------------------------------------


def _config_help_example() -> str:
    from dataclasses import fields

    from hf_audiocap.training.arguments import ModelArguments

    help_text = next(f for f in fields(ModelArguments) if f.name == "config_overrides").metadata["help"]
    return re.search(r"e\.g\. (\{.*\})", help_text).group(1)


def _tiny_processor():
    from hf_audiocap.feature_extraction_audiocap import AudioCapFeatureExtractor
    from hf_audiocap.processing_audiocap import AudioCapProcessor
    from hf_audiocap.tokenization import build_word_tokenizer

    tokenizer = build_word_tokenizer(["a dog barks", "rain falls"])
    return AudioCapProcessor(feature_extractor=AudioCapFeatureExtractor(), tokenizer=tokenizer)


def test_config_overrides_name_fields_a_config_reads(tmp_path):
    """The help's example reaches the model; names no config reads (the example as it was written, which built a model
    ignoring both) are refused with the names that are read."""
    from hf_audiocap.training.builders import build_model

    example = _config_help_example()
    model_args, _, training_args = parse_recipe([base(tmp_path), "--config_overrides", example])
    model = build_model(model_args, _tiny_processor(), training_args)
    assert model.config.encoder.encoder_layers == 4 and model.config.adapter_pooling_stride == 2
    for overrides, message in (
        ("{adapter_stride: 2}", r"config_overrides: unknown key adapter_stride; AudioCapConfig reads .*adapter_pooling_stride"),
        ("{encoder: {num_layers: 4}}", r"config_overrides.encoder: unknown key num_layers; AudioCapEncoderConfig reads "
         r".*encoder_layers.* \(or hidden_size for d_model"),
        ("{encoder_layers: 4}", r"config_overrides: unknown key encoder_layers;"),  # a sub-config's field is nested
        ("{adapter_pooling_stride:2}", r"config_overrides: unknown key adapter_pooling_stride:2; .*"
         r"\(YAML needs a space after the colon: adapter_pooling_stride: 2\)$"),
        ("{decoder: {model_type: bart, d_model: 32, bogus: 1}}", r"config_overrides.decoder: unknown key bogus; BartConfig"),
        ("{encoder: 4}", r"config_overrides.encoder: expected a mapping of config fields, got 4"),
        ("{vocab_size: 10}", r"config_overrides: vocab_size is set from the tokenizer: drop it"),
        ("{decoder: {eos_token_id: 1}}", r"config_overrides.decoder: eos_token_id is set from the tokenizer"),
        ("{encoder: {num_mel_bins: 64}}", r"config_overrides.encoder: num_mel_bins is set from feature_extractor_overrides' feature_size"),
        ("{encoder: {hidden_size: 64, d_model: 32}}", r"config_overrides.encoder: hidden_size is another name for d_model: give one"),
    ):  # fmt: skip
        with pytest.raises(ValueError, match="^" + message):
            parse_recipe([base(tmp_path), "--config_overrides", overrides])


def test_generator_and_feature_extractor_keys_are_checked_before_loading(tmp_path):
    """synth_kwargs and feature_extractor_overrides are passed on as keyword arguments, where a misspelt key would be
    kept and ignored: each is refused in one line naming what is read."""
    for key, value, message in (
        ("synth_kwargs", "{seeds: 1}", r"synth_kwargs: unknown key seeds; generate_synthcaps reads seed, num_train"),
        ("synth_kwargs", "{seed:1}", r"synth_kwargs: unknown key seed:1; .*\(YAML needs a space after the colon: seed: 1\)$"),
        ("feature_extractor_overrides", "{hop: 320}", r"feature_extractor_overrides: unknown key hop; AudioCapFeatureExtractor reads .*hop_length"),
        ("feature_extractor_overrides", "{hop_length: 0}", r"feature_extractor_overrides: hop_length must be > 0, got 0$"),
    ):  # fmt: skip
        with pytest.raises(ValueError, match="^" + message):
            parse_recipe([base(tmp_path), f"--{key}", value])
    with pytest.raises(
        ValueError, match=r"^synth_kwargs: unknown key num_scenes; hf-audiocap prepare realsounds reads"
    ):
        parse_recipe([base(tmp_path), "--dataset", "realsounds", "--synth_kwargs", "{num_scenes: 5}"])
    with pytest.raises(
        ValueError, match=r"^synth_kwargs: only dataset synthcaps or realsounds .*\(dataset: manifest\)"
    ):
        parse_recipe([base(tmp_path), "--dataset", "manifest", "--synth_kwargs", "{seed: 1}"])
    _, data_args, _ = parse_recipe([base(tmp_path), "--synth_kwargs", "{seed: 1, num_train: 4}"])
    assert data_args.synth_kwargs == {"seed": 1, "num_train": 4}


def test_config_aliases_meet_the_checks_of_the_names_they_stand_for(tmp_path):
    from hf_audiocap.configuration_audiocap import AudioCapConfigError, AudioCapDecoderConfig, AudioCapEncoderConfig

    for cls, part in ((AudioCapEncoderConfig, "encoder"), (AudioCapDecoderConfig, "decoder")):
        with pytest.raises(
            AudioCapConfigError, match=rf"d_model \(100\) must be divisible by {part}_attention_heads \(3\)"
        ):
            cls(hidden_size=100, num_attention_heads=3)
        assert cls(hidden_size=96, num_attention_heads=3).d_model == 96
    # in a recipe, before any data is read
    with pytest.raises(AudioCapConfigError, match=r"d_model \(100\) must be divisible"):
        parse_recipe([base(tmp_path), "--config_overrides", "{encoder: {hidden_size: 100, num_attention_heads: 3}}"])


def test_config_overrides_of_a_prefix_model_and_of_a_saved_model(tmp_path):
    prefix = [base(tmp_path), "--model_kind", "prefix", "--config_overrides"]
    model_args, _, _ = parse_recipe([*prefix, "{lm: {model_type: gpt2, n_embd: 32, n_head: 2}, lora_rank: 2}"])
    assert model_args.config_overrides["lm"]["n_embd"] == 32
    with pytest.raises(ValueError, match=r"^config_overrides.lm: unknown key n_embd; LlamaConfig reads .*hidden_size"):
        parse_recipe([*prefix, "{lm: {n_embd: 32}}"])
    with pytest.raises(
        ValueError, match=r"^config_overrides: unknown key adapter_pooling_stride; AudioCapPrefixConfig"
    ):
        parse_recipe([*prefix, "{adapter_pooling_stride: 2}"])
    with pytest.raises(
        ValueError, match=r"^config_overrides.lm builds an LM from scratch: drop it, or drop decoder_name"
    ):
        parse_recipe([*prefix, "{lm: {hidden_size: 32}}", "--decoder_name_or_path", "some/lm"])
    with pytest.raises(ValueError, match=r"^config_overrides set fields of a new model, but model_name_or_path \(x\)"):
        parse_recipe([base(tmp_path), "--model_name_or_path", "x", "--config_overrides", "{lora_rank: 2}"])


def test_config_overrides_of_pretrained_parts(tmp_path, whisper_dir):
    """A pretrained part's nested fields are fields of its own config: applied when it loads, and checked against it."""
    from hf_audiocap.training.builders import build_model

    recipe = [base(tmp_path), "--encoder_name_or_path", str(whisper_dir), "--config_overrides"]
    model_args, _, training_args = parse_recipe(
        [
            *recipe,
            "{encoder: {dropout: 0.25}, decoder: {d_model: 32, decoder_attention_heads: 2}, keyword_loss_weight: 0}",
        ]
    )
    model = build_model(model_args, _tiny_processor(), training_args)
    assert model.config.encoder.model_type == "whisper" and model.config.encoder.dropout == 0.25
    assert model.config.decoder.d_model == 32 and model.config.keyword_loss_weight == 0
    lm = "lm: {hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 64}"
    model_args, _, training_args = parse_recipe(
        [*recipe, "{encoder: {dropout: 0.25}, " + lm + ", prompt_template: '<audio>'}", "--model_kind", "prefix"]
    )
    model = build_model(model_args, _tiny_processor(), training_args)
    assert model.config.encoder.model_type == "whisper" and model.config.encoder.dropout == 0.25
    unknown = r"^config_overrides.encoder: unknown key bogus; WhisperConfig reads .*dropout"
    for kind in ("encoder_decoder", "prefix"):
        model_args, _, training_args = parse_recipe([*recipe, "{encoder: {bogus: 1}}", "--model_kind", kind])
        with pytest.raises(ValueError, match=unknown):
            build_model(model_args, _tiny_processor(), training_args)


@pytest.mark.parametrize("kind", ["encoder_decoder", "prefix"])
def test_encoder_cache_dir_gives_the_model_a_store_under_its_encoder_digest(tmp_path, whisper_dir, kind):
    from hf_audiocap.training.builders import build_model, frozen_cache
    from hf_audiocap.training.encoder_store import EncoderStateStore, encoder_digest

    overrides = {
        "encoder_decoder": "{decoder: {d_model: 32, decoder_attention_heads: 2}}",
        "prefix": "{lm: {hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 64}, "
        "prompt_template: '<audio>'}",
    }[kind]
    model_args, _, training_args = parse_recipe(
        [base(tmp_path), "--encoder_name_or_path", str(whisper_dir), "--freeze_encoder", "true"]
        + ["--cache_encoder_outputs", "true", "--encoder_cache_dir", str(tmp_path / "states")]
        + ["--config_overrides", overrides, "--model_kind", kind]
    )
    model = build_model(model_args, _tiny_processor(), training_args)
    cache = frozen_cache(model)
    encoder = model.model.encoder.model if kind == "encoder_decoder" else model.encoder
    assert isinstance(cache.states, EncoderStateStore) and cache.max_clips is None
    assert cache.states.root == tmp_path / "states" / encoder_digest("whisper", encoder)
    assert str(whisper_dir) in (cache.states.root / "encoder.json").read_text()


def test_either_name_of_activation_checkpointing_reaches_the_running_release(tmp_path, recwarn):
    """transformers 5.2x renamed gradient_checkpointing to activation_checkpointing (warning at every run on the old
    name); 5.16 knows only the old one. A recipe may use either."""
    import dataclasses

    from transformers import Seq2SeqTrainingArguments

    new = "activation_checkpointing" in {f.name for f in dataclasses.fields(Seq2SeqTrainingArguments)}
    for key in ("gradient_checkpointing", "activation_checkpointing"):
        _, _, training_args = parse_recipe([base(tmp_path, f"{key}: true\n")])
        assert training_args.gradient_checkpointing is True
        if new:
            assert training_args.activation_checkpointing is True
    assert not [w for w in recwarn if "gradient_checkpointing` is deprecated" in str(w.message)]
    with pytest.raises(ValueError, match=r"are one setting: keep one"):
        parse_recipe([base(tmp_path, "gradient_checkpointing: true\nactivation_checkpointing: false\n")])
