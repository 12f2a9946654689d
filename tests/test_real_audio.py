"""Real recordings through the real entry point: the 24 Clotho clips of ../shared/data/real_clips
(44.1 kHz WAV, 15-30 s) are memorised by a small model, so the pipeline (decoding, resampling, log-mels,
masks, teacher forcing, generation) is shown to work on real audio, not only on SynthCaps."""

import csv
import json

import pytest
from recipe_helpers import recipe_main

pytestmark = pytest.mark.slow

SMALL_MODEL = (
    "{keyword_loss_weight: 0.0, encoder: {d_model: 96, encoder_layers: 2, encoder_attention_heads: 4, encoder_ffn_dim: 192, dropout: 0.0}, "
    "decoder: {d_model: 96, decoder_layers: 2, decoder_attention_heads: 4, decoder_ffn_dim: 192, dropout: 0.0}}"
)


def test_small_model_memorises_the_real_clotho_clips(shared_data, tmp_path):
    real = shared_data / "real_clips"
    with open(real / "manifest.csv", encoding="utf-8", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["file_name"].startswith("clotho/")]
    assert len(rows) == 24
    manifest = tmp_path / "manifest.csv"
    with open(manifest, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file_name", "caption"])
        for r in rows:  # one reference per clip: the target to memorise
            writer.writerow([r["file_name"], r["caption_1"]])
    out = tmp_path / "out"
    args = {
        "dataset": "manifest",
        "dataset_path": str(manifest),
        "dataset_kwargs": json.dumps({"base_dir": str(real)}),
        "train_split": "train",
        "eval_split": "null",
        "test_split": "train",
        "max_duration": 31,
        "output_dir": str(out),
        "config_overrides": SMALL_MODEL,
        "max_steps": 150,
        "per_device_train_batch_size": 8,
        "per_device_eval_batch_size": 24,
        "learning_rate": "2e-3",
        "warmup_steps": 10,
        "lr_scheduler_type": "constant_with_warmup",
        "logging_steps": 10,
        "eval_strategy": "no",
        "save_strategy": "no",
        "predict_with_generate": "true",
        "generation_num_beams": 1,
        "generation_max_length": 40,
        "report_to": "none",
        "disable_tqdm": "true",
        "seed": 0,
    }
    argv = [x for k, v in args.items() for x in (f"--{k}", str(v))]
    recipe_main("train")(argv)

    state = json.loads((out / "trainer_state.json").read_text())
    losses = [e["loss"] for e in state["log_history"] if "loss" in e]
    assert losses[-1] < 0.5, losses
    metrics = json.loads((out / "test_metrics.json").read_text())
    assert metrics["bleu_4"] >= 0.8, metrics
