"""Several corpora in one run (`corpora`) and style tokens (`styles`): the recipe's checks, the weighted draw, the
leak check, the collator's style rows, and a tiny two-corpus run whose saved folder captions in each style (also in a
fresh interpreter from its copied code, without hf_audiocap)."""

from __future__ import annotations

import functools
import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from recipe_helpers import REPO_ROOT, make_synthcaps, recipe_main, run_without_hf_audiocap, tiny_run_args

from hf_audiocap.data.mixture import check_no_leak, mixture_datasets, parse_corpora
from hf_audiocap.training.arguments import DataArguments
from hf_audiocap.training.builders import load_recipe_datasets


def corpora_yaml(entries: list[dict]) -> str:
    return json.dumps(entries)  # JSON is YAML: what a recipe or `--corpora` gives


@functools.cache
def two_corpora() -> tuple[Path, Path]:
    """Two SynthCaps folders of different seeds and sizes (the second has no validation split)."""
    import atexit
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="hf_audiocap_mix_"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    from hf_audiocap.data.synthcaps import generate_synthcaps

    make_synthcaps(root / "a", num_train=12, num_validation=4, num_test=4)
    generate_synthcaps(root / "b", seed=1, num_train=6, num_validation=4, num_test=4)
    return root / "a", root / "b"


def corpora(weights=(1, 1), **extra) -> list[dict]:
    a, b = two_corpora()
    return [
        {"name": "a", "dataset": "synthcaps", "dataset_path": str(a), "weight": weights[0]},
        {"name": "b", "dataset": "synthcaps", "dataset_path": str(b), "weight": weights[1], **extra},
    ]


@pytest.mark.parametrize(
    "entries, message",
    [
        ([{"name": "a", "dataset_path": "x"}], "at least two corpora"),
        ([{"name": "a", "dataset_path": "x", "weight": -1}, {"name": "b", "dataset_path": "y"}], "weight must be"),
        ([{"name": "a", "dataset_path": "x", "weight": 0}, {"name": "b", "dataset_path": "y"}], "weight must be"),
        ([{"name": "a", "dataset_path": "x"}, {"name": "a", "dataset_path": "y"}], "used twice"),
        (
            [{"name": "a", "dataset_path": "x", "split": "t"}, {"name": "b", "dataset_path": "y"}],
            "unknown key(s) split",
        ),
        ([{"name": "a b", "dataset_path": "x"}, {"name": "b", "dataset_path": "y"}], "must be a word"),
        ([{"name": "a"}, {"name": "b", "dataset_path": "y"}], "needs dataset_path"),
    ],
)
def test_corpora_refused_in_one_line(entries, message):
    with pytest.raises(ValueError, match=None) as err:
        parse_corpora(entries)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_recipe_checks_before_loading(tmp_path):
    with pytest.raises(ValueError, match="styles: true names one style per corpus"):
        DataArguments(styles=True)
    with pytest.raises(ValueError, match="mixture_stopping_strategy must be one of"):
        DataArguments(corpora=corpora(), mixture_stopping_strategy="never")
    with pytest.raises(ValueError, match="mixup would mix two"):
        DataArguments(corpora=corpora(), styles=True, mixup_prob=0.5)
    with pytest.raises(ValueError, match=r"^corpora \(b\): synth_kwargs: unknown key num_clips; generate_synthcaps"):
        DataArguments(corpora=corpora(synth_kwargs={"num_clips": 5}))


def test_training_draws_by_weight_and_held_out_splits_stay_per_corpus():
    clips = load_recipe_datasets(DataArguments(corpora=corpora((1, 3)), mixture_stopping_strategy="all_exhausted"))
    assert set(clips) == {"train", "a/validation", "a/test", "b/validation", "b/test"}
    assert set(clips["a/test"]["style"]) == {"a"} and set(clips["b/test"]["style"]) == {"b"}
    train = clips["train"]
    assert train.column_names == ["id", "audio", "captions", "style"]
    counts = Counter(train["style"])
    # all_exhausted: every clip of each corpus is drawn at least once; the weights set the shares of the draws
    a_paths = {row["audio"]["path"] for row in train if row["style"] == "a"}
    assert len(a_paths) == 12 and len({row["audio"]["path"] for row in train if row["style"] == "b"}) == 6
    assert counts["b"] > 2 * counts["a"], counts
    first = load_recipe_datasets(DataArguments(corpora=corpora((1, 1)), mixture_stopping_strategy="first_exhausted"))
    assert Counter(first["train"]["style"])["b"] <= 7  # ends when the small corpus runs out


def test_a_held_out_clip_that_another_corpus_trains_on_is_refused(tmp_path):
    a, b = two_corpora()
    leaky = tmp_path / "b"
    shutil.copytree(b, leaky)
    # b's first training clip replaced by a copy of a's first test clip (same audio, another name)
    victim = sorted((leaky / "train").glob("*.wav"))[0]
    shutil.copyfile(sorted((a / "test").glob("*.wav"))[0], victim)
    entries = corpora()
    entries[1]["dataset_path"] = str(leaky)
    with pytest.raises(ValueError, match=r"held-out clips that another corpus trains on: a/test synthcaps_test_00000\.wav "
                       r"\(same audio as b training clip " + victim.name):  # fmt: skip
        mixture_datasets(DataArguments(corpora=entries), load_recipe_datasets)
    # and by id alone, whatever the audio
    train = load_recipe_datasets(DataArguments(dataset_path=str(b)))["train"]
    held = load_recipe_datasets(DataArguments(dataset_path=str(a)))["test"].select([0])
    held = held.map(lambda row: {"id": train[0]["id"]})
    with pytest.raises(ValueError, match=r"a/test synthcaps_train_00000\.wav \(id of a b training clip\)"):
        check_no_leak(parse_corpora(corpora()), [train.select([]), train], {"a/test": held})


def test_collator_gives_the_style_first_and_never_trains_it():
    from hf_audiocap.data.collator import AudioCaptionCollator
    from hf_audiocap.feature_extraction_audiocap import AudioCapFeatureExtractor
    from hf_audiocap.processing_audiocap import AudioCapProcessor
    from hf_audiocap.tokenization import build_word_tokenizer

    tok = build_word_tokenizer(["a dog barks", "rain falls on a roof"])
    tok.add_tokens(["<style:a>", "<style:b>"], special_tokens=True)
    styles = {"a": tok.convert_tokens_to_ids("<style:a>"), "b": tok.convert_tokens_to_ids("<style:b>")}
    processor = AudioCapProcessor(feature_extractor=AudioCapFeatureExtractor(), tokenizer=tok)
    collate = AudioCaptionCollator(processor, text_column="captions", style_token_ids=styles, decoder_start_token_id=2)
    wave = {"array": np.zeros(8000, dtype=np.float32), "sampling_rate": 16000}
    examples = [
        {"id": "x", "audio": wave, "captions": ["a dog barks", "rain falls"], "style": "b"},
        {"id": "y", "audio": wave, "captions": ["rain falls on a roof"], "style": "a"},
    ]
    batch = collate(examples)
    plain = processor(text=["a dog barks", "rain falls", "rain falls on a roof"], return_tensors="pt")["labels"]
    assert batch["encoder_index"].tolist() == [0, 0, 1]
    assert batch["decoder_input_ids"][:, :2].tolist() == [[2, styles["b"]], [2, styles["b"]], [2, styles["a"]]]
    assert (batch["labels"][:, 0] == -100).all() and torch.equal(batch["labels"][:, 1:], plain)
    # from position 1 on, each input is the previous label (teacher forcing behind the style)
    words = plain[:, :-1].masked_fill(plain[:, :-1] == -100, tok.pad_token_id)
    assert torch.equal(batch["decoder_input_ids"][:, 2:], words)
    prompt = collate([{k: v for k, v in ex.items() if k != "captions"} for ex in examples])
    assert prompt["decoder_input_ids"].tolist() == [[2, styles["b"]], [2, styles["a"]]] and "labels" not in prompt
    with pytest.raises(ValueError, match="clip 'x': style 'c' is not one of the model's \\(a, b\\)"):
        collate([{**examples[0], "style": "c"}])


@functools.cache
def styled_run() -> Path:
    """A tiny two-corpus run with styles, validated per corpus, the best checkpoint chosen on corpus a."""
    out = two_corpora()[0].parent / "run"
    without_validation = {**corpora()[1], "eval_split": None}
    argv = tiny_run_args(
        two_corpora()[0], out, corpora=corpora_yaml([corpora()[0], without_validation]), styles="true", max_steps=4,
        eval_strategy="steps", eval_steps=2, save_strategy="steps", save_steps=2, metric_for_best_model="a_cider_d",
        load_best_model_at_end="true",
    )  # fmt: skip
    recipe_main()(argv)
    return out


def test_run_reports_each_corpus_and_saves_its_styles():
    out = styled_run()
    config = json.loads((out / "config.json").read_text())
    tok = transformers.AutoTokenizer.from_pretrained(out)
    assert config["styles"] == {
        "a": tok.convert_tokens_to_ids("<style:a>"),
        "b": tok.convert_tokens_to_ids("<style:b>"),
    }
    evals = [e for e in json.loads((out / "trainer_state.json").read_text())["log_history"] if "eval_a_cider_d" in e]
    assert evals and all("eval_b_cider_d" not in e and "eval_loss" in e for e in evals)  # b has no validation split
    results = json.loads((out / "test_metrics.json").read_text())
    assert {"a_cider_d", "b_cider_d", "a_source_recall", "b_loss"} <= set(results)
    for name in ("a", "b"):
        rows = [json.loads(line) for line in (out / name / "test_predictions.jsonl").read_text().splitlines()]
        assert len(rows) == 4 and all(r["prediction"] and "<style" not in r["prediction"] for r in rows)
    card = (out / "README.md").read_text()
    assert "on 2 corpora" in card and "| metric | a | b |" in card and 'style="a"' in card


def test_recipe_refuses_a_metric_without_its_corpus_or_validation(tmp_path):
    base = tiny_run_args(two_corpora()[0], tmp_path / "out", corpora=corpora_yaml(corpora()), styles="true",
                         eval_strategy="steps", eval_steps=2)  # fmt: skip
    with pytest.raises(ValueError, match="metric_for_best_model: cider_d names no corpus: .* e.g. a_cider_d"):
        recipe_main()(base + ["--metric_for_best_model", "cider_d"])
    no_val = corpora_yaml([*corpora()[:1], {**corpora()[1], "eval_split": None}])
    with pytest.raises(ValueError, match="watches b, which has no validation split"):
        recipe_main()(base + ["--metric_for_best_model", "b_cider_d", "--corpora", no_val])


def test_generate_with_each_style_and_one_line_errors():
    from hf_audiocap.modeling_audiocap import AudioCapForConditionalGeneration

    out = styled_run()
    model = AudioCapForConditionalGeneration.from_pretrained(out).eval()
    processor = transformers.AutoProcessor.from_pretrained(out)
    inputs = processor(audio=[np.random.default_rng(0).standard_normal(16000).astype(np.float32)] * 2,
                       sampling_rate=16000, return_tensors="pt")  # fmt: skip
    with torch.no_grad():
        default = model.generate(**inputs)
        by_style = {s: model.generate(**inputs, style=s) for s in ("a", "b")}
    for style, ids in by_style.items():
        assert ids[:, 1].tolist() == [model.config.styles[style]] * 2
    assert torch.equal(default, by_style["a"])  # the first style is the default
    with pytest.raises(ValueError, match=r"^unknown style 'c'; this model's styles: a, b$"):
        model.generate(**inputs, style="c")


def test_the_default_style_survives_saving(tmp_path):
    """config.json sorts its keys: the default is saved by name, not by the order of `styles`."""
    from hf_audiocap.configuration_audiocap import AudioCapConfig

    AudioCapConfig(styles={"zeta": 9, "alpha": 8}).save_pretrained(tmp_path)
    config = AudioCapConfig.from_pretrained(tmp_path)
    assert config.default_style == "zeta" and config.style_token_id(None) == 9 and config.style_token_id("alpha") == 8


def test_a_model_without_styles_refuses_style(tmp_path):
    from hf_audiocap.configuration_audiocap import resolve_style

    with pytest.raises(ValueError, match="trained without styles"):
        resolve_style(None, "a")
    assert resolve_style(None, None) is None


def test_fine_tuning_a_styled_model_on_one_corpus_names_its_style(tmp_path):
    out, (a, _) = styled_run(), two_corpora()
    base = tiny_run_args(a, tmp_path / "ft", model_name_or_path=str(out), config_overrides="{}", max_steps=1)
    with pytest.raises(ValueError, match=r"trained with styles \(a, b\): set `style: NAME`"):
        recipe_main()(base)
    recipe_main()(base + ["--style", "clotho"])  # a new style: its token added to the vocabulary
    config = json.loads((tmp_path / "ft" / "config.json").read_text())
    styles = config["styles"]
    assert set(styles) == {"a", "b", "clotho"} and config["default_style"] == "clotho"
    assert len(transformers.AutoTokenizer.from_pretrained(tmp_path / "ft")) > styles["clotho"]


def test_scst_samples_each_clip_in_its_style_and_never_rewards_the_style(monkeypatch, tmp_path):
    """Self-critical fine-tuning of a styled model on one corpus: the captions it samples start with the corpus's style
    token (the decoder prompt `[start, style]`), whose position carries no gradient."""
    from hf_audiocap.training import scst

    out, (a, _) = styled_run(), two_corpora()
    seen = []
    generate = transformers.GenerationMixin.generate

    def spy(self, *args, **kwargs):
        sequences = generate(self, *args, **kwargs)
        seen.append((kwargs.get("decoder_input_ids"), sequences))
        return sequences

    monkeypatch.setattr(transformers.GenerationMixin, "generate", spy)
    labels_seen = []
    sampled_labels = scst.sampled_labels
    monkeypatch.setattr(scst, "sampled_labels", lambda *a: labels_seen.append(sampled_labels(*a)) or labels_seen[-1])
    recipe_main()(
        tiny_run_args(
            a,
            tmp_path / "scst",
            model_name_or_path=str(out),
            config_overrides="{}",
            style="b",
            scst="true",
            scst_samples=2,
            max_steps=2,
            learning_rate="1e-3",
            test_split="null",
        )  # fmt: skip
    )
    styles = json.loads((out / "config.json").read_text())["styles"]
    assert len(seen) == 2
    for prompt, sequences in seen:
        assert (prompt[:, 1] == styles["b"]).all() and (sequences[:, 1] == styles["b"]).all()
    assert labels_seen and all((labels[:, 0] == -100).all() for labels in labels_seen)
    rewards = [e["scst_reward"] for e in json.loads((tmp_path / "scst" / "trainer_state.json").read_text())
               ["log_history"] if "scst_reward" in e]  # fmt: skip
    assert len(rewards) == 2


def test_prefix_model_trains_and_captions_with_styles(tmp_path):
    """The audio prefix + LM: each row's style (its token, for a word-level LM trained from scratch) sits between the
    prompt and the caption, in training and in generate(style=...); the saved folder captions with each style."""
    from hf_audiocap.inference.captioner import Captioner

    out = tmp_path / "p"
    argv = tiny_run_args(
        two_corpora()[0], out, corpora=corpora_yaml(corpora()), styles="true", model_kind="prefix",
        config_overrides="{encoder: {d_model: 32, encoder_layers: 1, encoder_attention_heads: 2, encoder_ffn_dim: 64}, "
        "lm: {hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 64}}",
        max_steps=2, eval_strategy="steps", eval_steps=2, metric_for_best_model="b_cider_d",
    )  # fmt: skip
    recipe_main()(argv)
    config = json.loads((out / "config.json").read_text())
    tok = transformers.AutoTokenizer.from_pretrained(out)
    assert config["styles"] == {s: [tok.convert_tokens_to_ids(f"<style:{s}>")] for s in ("a", "b")}
    assert config["default_style"] == "a"
    assert {"a_cider_d", "b_cider_d"} <= set(json.loads((out / "test_metrics.json").read_text()))
    captioner = Captioner.from_pretrained(str(out))
    model, processor = captioner.model.eval(), captioner.processor
    audio = np.random.default_rng(2).standard_normal(16000).astype(np.float32)
    inputs = processor(audio=[audio, audio], sampling_rate=16000, return_tensors="pt")
    # the style changes what the LM reads: the first step's logits differ between styles
    rows = {
        s: model.prompt_rows(*model.embed_audio(inputs["input_features"], inputs["attention_mask"]),
                             style_index=torch.tensor([model.config.style_order.index(s)] * 2))[0]
        for s in ("a", "b")
    }  # fmt: skip
    assert not torch.equal(rows["a"], rows["b"])
    with torch.no_grad():
        by_style = {s: model.generate(**inputs, style=s) for s in ("a", "b")}
        assert torch.equal(model.generate(**inputs), by_style["a"])  # the default style
    assert captioner.caption_arrays([audio], style="b") == [
        processor.batch_decode(by_style["b"][:1], skip_special_tokens=True)[0].strip()
    ]
    with pytest.raises(ValueError, match=r"^unknown style 'c'; this model's styles: a, b$"):
        model.generate(**inputs, style="c")

    # self-critical training samples each clip in its style (the collator's style_index), scored in the same one
    from hf_audiocap.training.scst import scst_loss

    def reward(candidates, references):
        return np.array([len(c.split()) for c in candidates], dtype=float)

    def decode(ids):
        return processor.batch_decode(ids, skip_special_tokens=True)

    batch = {**inputs, "style_index": torch.tensor([1, 1])}
    loss, _ = scst_loss(model.train(), batch, [["x"], ["y"]], reward, decode, num_samples=3, max_length=6)
    assert torch.isfinite(loss) and loss.requires_grad


def test_styles_caption_in_a_fresh_interpreter_from_the_copied_code(tmp_path):
    """The saved folder alone (no hf_audiocap): AutoModelForSpeechSeq2Seq with trust_remote_code captions with each
    style exactly as the library does."""
    out = styled_run()
    audio = np.random.default_rng(1).standard_normal(16000).astype(np.float32)
    np.save(tmp_path / "audio.npy", audio)
    processor = transformers.AutoProcessor.from_pretrained(out)
    model = transformers.AutoModelForSpeechSeq2Seq.from_pretrained(out).eval()
    inputs = processor(audio=audio, sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        expected = {s: processor.batch_decode(model.generate(**inputs, style=s), skip_special_tokens=True)[0]
                    for s in ("a", "b")}  # fmt: skip
    printed = run_without_hf_audiocap(
        f"""
        import json
        import numpy as np
        import torch
        from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor

        processor = AutoProcessor.from_pretrained({str(out)!r}, trust_remote_code=True)
        model = AutoModelForSpeechSeq2Seq.from_pretrained({str(out)!r}, trust_remote_code=True).eval()
        inputs = processor(audio=np.load({str(tmp_path / "audio.npy")!r}), sampling_rate=16000, return_tensors="pt")
        with torch.no_grad():
            said = {{s: processor.batch_decode(model.generate(**inputs, style=s), skip_special_tokens=True)[0]
                    for s in model.config.styles}}
        print("CAPTIONS:" + json.dumps(said))
        """,
        tmp_path,
        "CAPTIONS:",
    )
    assert json.loads(printed) == expected


@pytest.mark.parametrize(
    "recipe, names",
    [
        ("synthcaps/mixture.yaml", ["synthcaps", "realsounds"]),
        ("clotho/pretrain_mixture.yaml", ["audiocaps", "macs", "wavcaps"]),
        ("clotho/finetune_clotho.yaml", []),
        ("clotho/finetune_clotho_scst.yaml", []),
    ],
)
def test_mixture_recipes_parse(recipe, names):
    """The shipped mixture recipes pass every check before data loading (bf16 off: a CPU machine refuses it)."""
    from hf_audiocap.training.arguments import parse_recipe

    model_args, data_args, _ = parse_recipe([str(REPO_ROOT / "recipes" / recipe), "--bf16", "false"])
    assert [c["name"] for c in data_args.corpora] == names
    if recipe.startswith("clotho/finetune"):  # each stage starts from the previous one's folder, in the clotho style
        before = "finetune_clotho" if recipe.endswith("_scst.yaml") else "pretrain_mixture"
        _, _, previous = parse_recipe([str(REPO_ROOT / f"recipes/clotho/{before}.yaml"), "--bf16", "false"])
        assert data_args.style == "clotho" and model_args.model_name_or_path == previous.output_dir


def test_streamed_corpora_are_interleaved_as_a_stream():
    """`streaming: true` applies to every corpus: the training streams are interleaved, each row keeps its style."""
    import itertools

    from transformers import Seq2SeqTrainingArguments

    from hf_audiocap.training.builders import training_dataset

    data_args = DataArguments(corpora=corpora((1, 1)), streaming=True, group_captions=True)
    clips = load_recipe_datasets(data_args)
    training = Seq2SeqTrainingArguments(str(two_corpora()[0].parent / "stream"), max_steps=5, report_to="none")
    rows = list(itertools.islice(iter(training_dataset(clips["train"], data_args, training)), 40))
    assert {r["style"] for r in rows} == {"a", "b"} and all(r["captions"] for r in rows)
    assert len(clips["a/test"]) == 4  # held-out splits stay in memory


def test_every_entry_point_captions_in_a_style(tmp_path, capsys):
    """Captioner, pipeline, CLI (--style), the app's service and recipes/evaluate.py (--style) caption as
    `generate(style=...)` does; an unknown style or a style for a model without styles is one line, before any clip."""
    import runpy

    import soundfile as sf
    from transformers import pipeline

    from hf_audiocap.cli import main
    from hf_audiocap.inference.captioner import Captioner
    from hf_audiocap.inference.service import CaptionService
    from hf_audiocap.metrics.report import evaluate_main

    out, (a, _) = styled_run(), two_corpora()
    clip = sorted((a / "test").glob("*.wav"))[0]
    audio, sr = sf.read(clip, dtype="float32")
    captioner = Captioner.from_pretrained(str(out))
    assert captioner.styles == ["a", "b"]
    model, processor = captioner.model, captioner.processor
    inputs = processor(audio=audio, sampling_rate=sr, return_tensors="pt")
    with torch.no_grad():
        expected = {s: processor.batch_decode(model.generate(**inputs, style=s), skip_special_tokens=True)[0].strip()
                    for s in ("a", "b")}  # fmt: skip
    for style in ("a", "b"):
        assert captioner.caption_arrays([audio], style=style) == [expected[style]]
        assert pipeline("audio-captioning", model=str(out))(str(clip), style=style)["caption"] == expected[style]
        assert main(["caption", str(clip), "--model", str(out), "--style", style, "--quiet"]) == 0
        assert capsys.readouterr().out.strip().endswith(expected[style])
        service = CaptionService(captioner)
        assert service.caption(str(clip), style=style) == (expected[style], "")
    assert service.defaults["style"] == "a"
    assert service.caption(str(clip), style="c")[1] == "unknown style 'c'; this model's styles: a, b"
    with pytest.raises(ValueError, match=r"^unknown style 'c'; this model's styles: a, b$"):
        captioner.caption_arrays([audio], style="c")
    assert main(["caption", str(clip), "--model", str(out), "--style", "c", "--quiet"]) != 0
    assert (
        capsys.readouterr().err.strip() == "hf-audiocap caption: error: unknown style 'c'; this model's styles: a, b"
    )
    parse = runpy.run_path(str(REPO_ROOT / "recipes" / "evaluate.py"), run_name="recipes_evaluate")["parse_args"]
    argv = ["--model", str(out), "--dataset", "synthcaps", "--dataset_path", str(a), "--split", "test", "--style", "b",
            "--output_dir", str(tmp_path / "ev")]  # fmt: skip
    evaluate_main(parse(argv))
    rows = [json.loads(line) for line in next((tmp_path / "ev").glob("*predictions.jsonl")).read_text().splitlines()]
    assert rows[0]["prediction"] == expected["b"]
    plain = Captioner.from_pretrained(str(two_corpora()[0].parent / "run"))  # the styled one again: the check is
    plain.model.config.styles = None  # about the model's config, so a model without styles is one without it
    with pytest.raises(ValueError, match=r"^style='a': this model was trained without styles"):
        plain.caption_arrays([audio], style="a")
