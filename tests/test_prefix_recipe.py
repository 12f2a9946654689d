"""Smoke runs of `recipes/train.py` with `model_kind: prefix`: a tiny Llama trained from scratch on the word-level
vocabulary, and a saved tiny Llama (with its tokenizer) adapted with LoRA, its own weights untouched."""

from __future__ import annotations

import math

import pytest
import torch
import yaml
from recipe_helpers import log_history, make_synthcaps, recipe_main, tiny_run_args, train_losses
from safetensors.torch import load_file

pytest.importorskip("peft")

TINY_ENCODER = "encoder: {d_model: 32, encoder_layers: 1, encoder_attention_heads: 2, encoder_ffn_dim: 64}"
TINY_LM = (
    "lm: {hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, intermediate_size: 64, "
    "max_position_embeddings: 256}"
)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return make_synthcaps(tmp_path_factory.mktemp("synthcaps"))


@pytest.mark.slow  # scores the test split (the metrics start a JVM)
def test_recipe_trains_a_prefix_model_from_scratch(synth, tmp_path):
    out = tmp_path / "out"
    args = tiny_run_args(
        synth,
        out,
        model_kind="prefix",
        max_duration=12.0,  # the bound demo.yaml sets for SynthCaps: its rows fit the tiny LM's 256 positions
        config_overrides=f"{{{TINY_ENCODER}, {TINY_LM}, projector_stack: 2, freeze_lm: false, prompt_template: '<audio>'}}",
        label_smoothing_factor=0.1,
        max_steps=8,
    )
    metrics = recipe_main()(args)
    losses = train_losses(out)
    assert len(losses) == 8 and losses[-1] < losses[0]
    assert "test_cider_d" in metrics
    config = yaml.safe_load((out / "config.json").read_text())
    assert config["model_type"] == "audiocap_prefix" and config["lm"]["model_type"] == "llama"
    assert {"modeling_audiocap_prefix.py", "configuration_audiocap_prefix.py"} <= {p.name for p in out.iterdir()}
    card = (out / "README.md").read_text()
    assert "AudioCapPrefixForConditionalGeneration" in card and "causal LM a llama trained from scratch" in card
    # the saved folder captions through the library's pipeline as through its own generate
    import transformers

    import hf_audiocap  # noqa: F401  (registers the audio-captioning task)
    from hf_audiocap.data.audio import load_audio

    clip = sorted((synth / "test").glob("*.wav"))[0]
    processor = transformers.AutoProcessor.from_pretrained(out)
    model = transformers.AutoModelForSpeechSeq2Seq.from_pretrained(out).eval()
    wave = load_audio(str(clip), processor.feature_extractor.sampling_rate)
    inputs = processor(audio=wave, sampling_rate=processor.feature_extractor.sampling_rate, return_tensors="pt")
    with torch.no_grad():
        expected = processor.batch_decode(model.generate(**inputs), skip_special_tokens=True)[0].strip()
    assert transformers.pipeline("audio-captioning", model=str(out))(str(clip))["caption"] == expected
    _check_people_entry_points(out, synth, clip, expected, tmp_path)

    # the second stage of the demo, self-critical training, from the saved prefix model: rewards logged, weights moved
    scst_out = tmp_path / "scst"
    scst_args = tiny_run_args(
        synth, scst_out, model_kind="prefix", model_name_or_path=str(out), config_overrides="{}", max_duration=12.0,
        scst="true", scst_samples=3, max_steps=3, learning_rate="1e-3", test_split="null",
    )  # fmt: skip
    recipe_main()(scst_args)
    rewards = [e["scst_reward"] for e in log_history(scst_out) if "scst_reward" in e]
    assert len(rewards) == 3 and all(math.isfinite(r) and r >= 0 for r in rewards)
    before, after = load_file(out / "model.safetensors"), load_file(scst_out / "model.safetensors")
    assert before.keys() == after.keys() and any(not torch.equal(before[k], after[k]) for k in before)


def _check_people_entry_points(out, synth, clip, expected, tmp_path):
    """The CLI, the app's caption service and recipes/evaluate.py load a prefix folder like an encoder-decoder one
    (through AutoModelForSpeechSeq2Seq and the Captioner) and give the same caption as its own generate."""
    import json
    import runpy

    from recipe_helpers import REPO_ROOT

    from hf_audiocap.cli import main as cli_main
    from hf_audiocap.inference.captioner import load_captioner
    from hf_audiocap.metrics.report import evaluate_main

    listing = tmp_path / "cli.json"
    assert (
        cli_main(["caption", str(clip), "--model", str(out), "--format", "json", "--output", str(listing), "--quiet"])
        == 0
    )
    (row,) = json.loads(listing.read_text())
    assert [s["caption"] for s in row["segments"]] == [expected]

    from hf_audiocap.inference.service import CaptionService

    caption, error = CaptionService(load_captioner(str(out))).caption(str(clip))
    assert (caption, error) == (expected, "")

    evaluate = runpy.run_path(str(REPO_ROOT / "recipes" / "evaluate.py"), run_name="recipes_evaluate")
    report = tmp_path / "report"
    argv = ["--model", str(out), "--dataset", "synthcaps", "--dataset_path", str(synth), "--split", "test"]
    metrics = evaluate_main(evaluate["parse_args"]([*argv, "--output_dir", str(report)]))
    assert "cider_d" in metrics and "source_recall" in metrics
    rows = {r["id"]: r["prediction"] for r in map(json.loads, (report / "evaluate_test_predictions.jsonl").open())}
    trained = {r["id"]: r["prediction"] for r in map(json.loads, (out / "test_predictions.jsonl").open())}
    assert rows == trained and rows[clip.name] == expected


@pytest.mark.parametrize("save_lm_weights", [True, False])
def test_recipe_adapts_a_saved_llama_with_lora(synth, tmp_path, save_lm_weights):
    """The LM's own weights stay frozen and bit-identical: saved in the folder, or (save_lm_weights: false) left out
    of every checkpoint and read again from the LM's folder, through a mid-run checkpoint and best-model reload."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from hf_audiocap.data.loaders import load_caption_dataset
    from hf_audiocap.modeling_audiocap_prefix import AudioCapPrefixForConditionalGeneration
    from hf_audiocap.tokenization import build_word_tokenizer

    captions = [c for caps in load_caption_dataset("clotho", synth)["train"]["captions"] for c in caps]
    tokenizer = build_word_tokenizer(captions + ["describe the sound"])
    lm_dir = tmp_path / "llama"
    torch.manual_seed(0)
    lm = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
            num_key_value_heads=1, intermediate_size=64, max_position_embeddings=256,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=0,
        )
    )  # fmt: skip
    lm.save_pretrained(lm_dir)
    tokenizer.save_pretrained(lm_dir)
    out = tmp_path / "out"
    overrides = (
        f"{{{TINY_ENCODER}, projector_stack: 2, lora_rank: 4, prompt_template: '<audio> describe the sound', "
        f"save_lm_weights: {str(save_lm_weights).lower()}}}"
    )
    checkpoints = {
        "save_strategy": "steps", "save_steps": 3, "eval_strategy": "steps", "eval_steps": 3,
        "load_best_model_at_end": "true", "metric_for_best_model": "loss",
    }  # fmt: skip
    args = tiny_run_args(
        synth, out, model_kind="prefix", decoder_name_or_path=lm_dir, config_overrides=overrides, max_duration=12.0,
        test_split="null", **(checkpoints if not save_lm_weights else {}),
    )  # fmt: skip
    recipe_main()(args)
    assert len(train_losses(out)) == 6
    saved = load_file(out / "model.safetensors")
    before = load_file(lm_dir / "model.safetensors")
    lora_b = [v for k, v in saved.items() if "lora_B" in k]
    assert len(lora_b) == 2 and all(v.abs().sum() > 0 for v in lora_b)  # trained away from peft's zero start
    # LoRA keeps each adapted layer's own weight as base_layer
    lm_keys = {
        name: "lm."
        + name.replace("q_proj.weight", "q_proj.base_layer.weight").replace(
            "v_proj.weight", "v_proj.base_layer.weight"
        )
        for name in before
    }
    if save_lm_weights:
        for name, value in before.items():
            assert torch.equal(saved[lm_keys[name]], value), name
        _check_merged_export(out, tmp_path / "merged", synth)
        return
    assert not set(lm_keys.values()) & set(saved)
    checkpoint = next(out.glob("checkpoint-*"))
    assert not set(lm_keys.values()) & set(load_file(checkpoint / "model.safetensors"))
    reloaded = AudioCapPrefixForConditionalGeneration.from_pretrained(out).state_dict()
    for name, value in before.items():
        assert torch.equal(reloaded[lm_keys[name]], value), name


def _check_merged_export(out, merged, synth):
    """recipes/merge_lora.py: a folder without LoRA that captions as the adapted model does."""
    import transformers

    from hf_audiocap.data.audio import load_audio

    recipe_main("merge_lora")([str(out), str(merged)])
    assert not any("lora_" in k for k in load_file(merged / "model.safetensors"))
    processor = transformers.AutoProcessor.from_pretrained(merged)
    clips = sorted((synth / "test").glob("*.wav"))[:2]
    rate = processor.feature_extractor.sampling_rate
    inputs = processor(audio=[load_audio(str(c), rate) for c in clips], sampling_rate=rate, return_tensors="pt")
    models = [transformers.AutoModelForSpeechSeq2Seq.from_pretrained(f).eval() for f in (out, merged)]
    assert models[1].config.lora_rank == 0
    with torch.no_grad():
        captions = models[0].generate(**inputs, max_new_tokens=5)
        assert torch.equal(models[1].generate(**inputs, max_new_tokens=5), captions)
        logits = [m(**inputs, labels=captions).logits for m in models]
        assert (logits[0] - logits[1]).abs().max().item() < 1e-4


def test_a_prompt_longer_than_the_lm_is_refused_before_training(synth, tmp_path):
    lm = TINY_LM.replace("max_position_embeddings: 256", "max_position_embeddings: 64")
    args = tiny_run_args(
        synth, tmp_path / "out", model_kind="prefix", max_duration=12.0,
        config_overrides=f"{{{TINY_ENCODER}, {lm}, projector_stack: 1, freeze_lm: false, prompt_template: '<audio>'}}",
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"a 12 s clip gives a prompt of \d+ positions .* reads at most 64"):
        recipe_main()(args)
    assert not (tmp_path / "out" / "trainer_state.json").exists()


@pytest.mark.slow
def test_two_processes_match_one_process(tmp_path, monkeypatch):
    """torchrun, 2 CPU processes (gloo): identical weights on both ranks, and the training loss and its logged
    cross-entropy those of one process with the same global batch (as tests/test_distributed.py checks for the
    encoder-decoder model)."""
    import json
    import os
    import subprocess
    import sys

    from recipe_helpers import REPO_ROOT

    data = make_synthcaps(tmp_path / "synthcaps", num_train=8, num_validation=2, num_test=2)

    def run_args(out, batch):
        overrides = f"{{{TINY_ENCODER}, {TINY_LM}, projector_stack: 2, freeze_lm: false, prompt_template: '<audio>'}}"
        return tiny_run_args(
            data, out, model_kind="prefix", config_overrides=overrides, max_duration=12.0, group_captions="false",
            per_device_train_batch_size=batch, max_steps=4, test_split="null", eval_split="null", learning_rate="1e-3",
        )  # fmt: skip

    env = {k: v for k, v in os.environ.items() if not k.startswith(("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_"))}
    env.update(OMP_NUM_THREADS="1", HF_AUDIOCAP_WEIGHTS_DIGEST_DIR=str(tmp_path / "digest2"), HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29583"]
    cmd += [str(REPO_ROOT / "recipes" / "train.py"), *run_args(tmp_path / "ddp", batch=4)]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    digests = [json.loads((tmp_path / "digest2" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(d["world_size"] == 2 and d["step"] == 4 for d in digests), digests
    assert digests[0]["sha256"] == digests[1]["sha256"], "the replicas diverged"

    monkeypatch.setenv("HF_AUDIOCAP_WEIGHTS_DIGEST_DIR", str(tmp_path / "digest1"))
    recipe_main()(run_args(tmp_path / "single", batch=8))
    logs = {run: [e for e in log_history(tmp_path / run) if "loss" in e] for run in ("ddp", "single")}
    assert len(logs["ddp"]) == len(logs["single"]) == 4
    for key, tolerance in (("loss", 1e-4), ("caption_loss", 2e-4)):
        ddp, single = [e[key] for e in logs["ddp"]], [e[key] for e in logs["single"]]
        assert ddp == pytest.approx(single, rel=tolerance), (key, ddp, single)
