"""Recipe parsing: YAML + `--key value` overrides into the three argument dataclasses, and the errors a wrong
recipe gets before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

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
    with pytest.raises(ValueError, match="learning_rate expects a number, got 'fast'"):
        parse_recipe([base(tmp_path, "learning_rate: fast\n")])


def test_none_for_any_optional_number_and_words_for_numbers_in_one_line(tmp_path):
    recipe = base(tmp_path, "load_best_model_at_end: true\nmetric_for_best_model: cider_d\neval_strategy: steps\n")
    _, data_args, training_args = parse_recipe(
        [recipe, "--early_stopping_patience", "None", "--max_train_clips", "none", "--generation_num_beams", "None"]
    )
    assert training_args.early_stopping_patience is None and data_args.max_train_clips is None
    assert training_args.generation_num_beams is None
    for key, value, expected in (
        ("early_stopping_patience", "three", r"early_stopping_patience expects an integer \(or None\), got 'three'"),
        ("max_steps", "many", r"max_steps expects an integer, got 'many'"),
        ("max_steps", "None", r"max_steps expects an integer, got 'None'"),
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


def test_unquoted_yaml_no_is_explained(tmp_path):
    with pytest.raises(ValueError, match=r"eval_strategy got the boolean False.*quote it \(eval_strategy: 'no'\)"):
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
    # the model size overrides name real config fields (a typo would be ignored by PretrainedConfig)
    from hf_audiocap.configuration_audiocap import AudioCapDecoderConfig, AudioCapEncoderConfig

    for part, cls in (("encoder", AudioCapEncoderConfig), ("decoder", AudioCapDecoderConfig)):
        overrides = model_args.config_overrides.get(part, {})
        known = set(cls().to_dict()) | set(cls.attribute_map)
        assert not set(overrides) - known, f"{recipe}: unknown {part} config keys {set(overrides) - known}"


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
    with pytest.raises(ValueError, match=r"num_train=5 \(the folder has 3\).*Delete the folder"):
        load_recipe_datasets(data_args)
    _, data_args, _ = parse_recipe(
        [base(tmp_path), "--dataset_path", str(data), "--synth_kwargs", "{seed: 0, num_train: 3, " + sizes]
    )
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
