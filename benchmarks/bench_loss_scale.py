"""Training vs validation loss on one scale, on the Whisper + BART recipe.

    python benchmarks/bench_loss_scale.py [--steps 3] [--keyword-weights default,0.5] [--timing-only]

Runs a few steps of `recipes/clotho/whisper_bart.yaml` through `recipes/train.py` with randomly initialised
Whisper-base- and BART-base-sized parts (nothing can be downloaded here) on the real Clotho clips of
`../shared/data/real_clips` (17 validation clips to train on, 7 evaluation clips to validate on), once per keyword
weight ("default": the recipe as written), and prints, per run, the last logged objective (`loss`), the plain caption
cross-entropy of the same training batches (`caption_loss`), the keyword term before its weight (`keyword_loss`) and
the validation cross-entropy (`eval_loss`). The tokenizer is a byte-level BPE trained on the Clotho development
captions (BART's own vocabulary files cannot be had offline), with BART's special tokens; the decoder keeps BART's
50,265-entry vocabulary, as the keyword head does.

It also times the model's caption loss, which returns the objective and the plain cross-entropy from one
log-softmax, against `F.cross_entropy(..., label_smoothing=)` alone (the reference: what the loss cost before the
plain cross-entropy was reported), calls interleaved in one process, forward + backward, at the demo's batch shape.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HF_AUDIOCAP_SHARED_DATA", REPO.parent / "shared" / "data"))


def build_parts(root: Path) -> tuple[Path, Path]:
    """(whisper folder, bart folder with its tokenizer), randomly initialised at the base sizes."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import BartConfig, BartForCausalLM, PreTrainedTokenizerFast, WhisperConfig, WhisperModel

    torch.manual_seed(0)
    whisper = root / "whisper-base"
    WhisperModel(
        WhisperConfig(
            d_model=512,
            encoder_layers=6,
            decoder_layers=1,  # only the encoder is used
            encoder_attention_heads=8,
            decoder_attention_heads=8,
            encoder_ffn_dim=2048,
            decoder_ffn_dim=2048,
            num_mel_bins=80,
        )
    ).save_pretrained(whisper)

    bart = root / "bart-base"
    captions = [
        row[f"caption_{i}"]
        for row in csv.DictReader(open(SHARED / "clotho" / "clotho_captions_development.csv", encoding="utf-8"))
        for i in range(1, 6)
    ]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(captions, vocab_size=8000, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer, bos_token="<s>", pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )
    tokenizer.save_pretrained(bart)
    BartForCausalLM(
        BartConfig(
            vocab_size=50265,
            d_model=768,
            encoder_layers=1,
            decoder_layers=6,
            encoder_attention_heads=12,
            decoder_attention_heads=12,
            encoder_ffn_dim=3072,
            decoder_ffn_dim=3072,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            decoder_start_token_id=tokenizer.eos_token_id,
        )
    ).save_pretrained(bart)
    return whisper, bart


def build_clotho(root: Path) -> Path:
    """A Clotho-layout folder of the real clips: validation clips as `development`, evaluation clips as `validation`."""
    rows = list(csv.DictReader(open(SHARED / "real_clips" / "manifest.csv", encoding="utf-8")))
    clotho = root / "clotho"
    for split, source in (("development", "validation"), ("validation", "evaluation")):
        (clotho / split).mkdir(parents=True)
        with open(clotho / f"clotho_captions_{split}.csv", "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["file_name"] + [f"caption_{i}" for i in range(1, 6)])
            for row in rows:
                if row["dataset"] == "Clotho v2.1" and row["split"] == source:
                    name = Path(row["file_name"]).name
                    os.symlink(SHARED / "real_clips" / row["file_name"], clotho / split / name)
                    writer.writerow([name] + [row[f"caption_{i}"] for i in range(1, 6)])
    return clotho


def run(root: Path, whisper: Path, bart: Path, clotho: Path, steps: int, keyword: str) -> dict:
    out = root / f"run-{keyword}"
    args = [sys.executable, str(REPO / "recipes" / "train.py"), str(REPO / "recipes" / "clotho" / "whisper_bart.yaml")]
    overrides = {
        "dataset_path": clotho,
        "encoder_name_or_path": whisper,
        "decoder_name_or_path": bart,
        "output_dir": out,
        "max_steps": steps,
        "per_device_train_batch_size": 4,
        "per_device_eval_batch_size": 8,
        "warmup_steps": 0,
        "logging_steps": 1,
        "eval_strategy": "steps",
        "eval_steps": steps,
        "save_strategy": "no",
        "load_best_model_at_end": "false",
        "early_stopping_patience": "None",
        "bf16": "false",
        "dataloader_num_workers": 0,
        "generation_num_beams": 1,
        "generation_max_length": 20,
        "test_split": "null",
        "report_to": "none",
    }
    if keyword != "default":
        overrides["config_overrides"] = f"{{keyword_loss_weight: {keyword}}}"
    for key, value in overrides.items():
        args += [f"--{key}", str(value)]
    proc = subprocess.run(args, capture_output=True, text=True, cwd=root)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    logged = [e for e in history if "loss" in e and "step" in e]
    config = json.loads((out / "config.json").read_text())
    return {
        "keyword_loss_weight": config["keyword_loss_weight"],
        "loss": [e["loss"] for e in logged],
        "caption_loss": [e.get("caption_loss") for e in logged],
        "keyword_loss": [e.get("keyword_loss") for e in logged],
        "eval_loss": next(e["eval_loss"] for e in history if "eval_loss" in e),
    }


def time_caption_loss(rounds: int = 30) -> list[str]:
    """Median forward + backward time of the caption loss vs `F.cross_entropy`, interleaved, one thread."""
    import time

    import torch
    import torch.nn.functional as F

    from hf_audiocap.modeling_audiocap import caption_loss

    torch.manual_seed(0)
    torch.set_num_threads(1)
    rows = []
    for vocab in (150, 4373, 50265):  # SynthCaps words, Clotho words, BART subwords
        logits = torch.randn(40, 22, vocab, requires_grad=True)  # 8 clips x 5 captions, 22 tokens
        labels = torch.randint(0, vocab, (40, 22))
        labels[:, 18:] = -100
        calls = {
            "reference": lambda x=logits, y=labels: F.cross_entropy(
                x.reshape(-1, x.shape[-1]), y.reshape(-1), ignore_index=-100, label_smoothing=0.2
            ),
            "ours": lambda x=logits, y=labels: caption_loss(x, y, 0.2)[0],
        }
        times = {name: [] for name in calls}
        for _ in range(rounds if vocab < 50000 else 5):
            for name, call in calls.items():
                start = time.perf_counter()
                call().backward()
                times[name].append(time.perf_counter() - start)
        ours, ref = (sorted(times[n])[len(times[n]) // 2] * 1000 for n in ("ours", "reference"))
        rows.append(f"| {vocab} | {ours:.2f} ms | {ref:.2f} ms | {ours / ref:.2f}x |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--keyword-weights", default="default,0.5")
    parser.add_argument("--timing-only", action="store_true", help="only the caption-loss timing")
    args = parser.parse_args()
    print(
        "Caption loss (objective + plain cross-entropy) vs F.cross_entropy, batch 40 x 22 tokens, fwd + bwd, 1 thread"
    )
    print("| vocabulary | ours | F.cross_entropy | ratio |\n|---|---|---|---|")
    print("\n".join(time_caption_loss()))
    if args.timing_only:
        return
    if not SHARED.is_dir():
        sys.exit(f"needs the real clips at {SHARED}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="bench_loss_scale_") as tmp:
        root = Path(tmp)
        whisper, bart = build_parts(root)
        clotho = build_clotho(root)
        rows = [run(root, whisper, bart, clotho, args.steps, k) for k in args.keyword_weights.split(",")]

    def fmt(values):
        return " / ".join("-" if v is None else f"{v:.2f}" for v in values)

    print(f"\nWhisper-base + BART-base sized, random init, {args.steps} steps of batch 4 on real Clotho clips")
    print("| keyword_loss_weight | objective `loss` | `caption_loss` | `keyword_loss` | `eval_loss` |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['keyword_loss_weight']:g} | {fmt(r['loss'])} | {fmt(r['caption_loss'])} | "
            f"{fmt(r['keyword_loss'])} | {r['eval_loss']:.2f} |"
        )


if __name__ == "__main__":
    main()
