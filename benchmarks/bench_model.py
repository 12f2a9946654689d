"""Benchmark: AudioCap built-in model vs a SpeechEncoderDecoderModel(WhisperEncoder + BartForCausalLM) anchor, CPU.

Same width (384), depth (4 encoder + 4 decoder layers), heads (6), FFN (1536) and vocabulary (5000) for both; batch 8
of 10 s clips, 20-token labels. Ours gets 1001 frames (a 10 ms hop) and 501 frames (the 20 ms hop the demo model is
trained on); the anchor's Whisper encoder needs exactly `2 * max_source_positions` frames: 1000
(`max_source_positions=500`) and Whisper's default 3000. Generation is forced to exactly 20 new tokens
(`min_new_tokens = max_new_tokens = 20`) so both decode the same number of steps, each with the stock `generate`.

Every target compares the two models side by side: one subprocess per (our frames, anchor frames, task) builds both,
and times their calls interleaved (ours, anchor, ours, ...), so drift on a shared machine hits both alike; the figure is
the ratio of medians. 2 torch threads.

    flock /tmp/bench.lock .venv/bin/python benchmarks/bench_model.py [--results benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BATCH, LABEL_LEN, VOCAB, WIDTH, LAYERS, HEADS, FFN = 8, 20, 5000, 384, 4, 6, 1536
SECTION = "## Model: training and generation"
# (task, target ratio, "higher is better" direction): training and beam throughput of ours / the anchor's, greedy
# latency of ours / the anchor's
TARGETS = {"train": 1.5, "train@3000": 4.0, "beam": 1.5, "greedy": 1.0}
ROUNDS = {"train": (2, 5), "greedy": (1, 15), "beam": (1, 5)}  # (warm-up, timed) rounds per model


def build(kind: str, frames: int):
    import torch

    torch.manual_seed(0)
    if kind == "ours":
        from hf_audiocap.configuration_audiocap import AudioCapConfig
        from hf_audiocap.modeling_audiocap import AudioCapForConditionalGeneration

        encoder = {"num_mel_bins": 80, "d_model": WIDTH, "encoder_layers": LAYERS}
        encoder.update(encoder_attention_heads=HEADS, encoder_ffn_dim=FFN)
        decoder = {"d_model": WIDTH, "decoder_layers": LAYERS, "decoder_attention_heads": HEADS}
        decoder.update(decoder_ffn_dim=FFN, max_target_positions=64)
        return AudioCapForConditionalGeneration(AudioCapConfig(encoder=encoder, decoder=decoder, vocab_size=VOCAB))
    from transformers import BartConfig, BartForCausalLM, SpeechEncoderDecoderModel, WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    sizes = {"d_model": WIDTH, "encoder_layers": LAYERS, "encoder_attention_heads": HEADS, "encoder_ffn_dim": FFN}
    enc = WhisperEncoder(WhisperConfig(num_mel_bins=80, max_source_positions=frames // 2, **sizes))
    dec = BartForCausalLM(
        BartConfig(
            decoder_layers=LAYERS,
            decoder_attention_heads=HEADS,
            decoder_ffn_dim=FFN,
            vocab_size=VOCAB,
            is_decoder=True,
            add_cross_attention=True,
            pad_token_id=0,
            bos_token_id=2,
            eos_token_id=3,
            decoder_start_token_id=2,
            **sizes,
        )
    )
    model = SpeechEncoderDecoderModel(encoder=enc, decoder=dec)
    model.config.pad_token_id, model.config.decoder_start_token_id = 0, 2
    return model


def worker(ours_frames: int, anchor_frames: int, task: str) -> dict:
    import torch

    torch.set_num_threads(2)
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(4, VOCAB, (BATCH, LABEL_LEN), generator=g)
    labels[:, -1] = 3
    calls = {}
    for kind, frames in (("ours", ours_frames), ("anchor", anchor_frames)):
        model = build(kind, frames)
        n = 1 if task == "greedy" else BATCH
        kw = {"input_features": torch.randn(n, 80, frames, generator=g)}
        if kind == "ours":
            kw["attention_mask"] = torch.ones(n, frames, dtype=torch.long)
        if task == "train":
            model.train()
            opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

            def step(model=model, kw=kw, opt=opt):
                model(**kw, labels=labels).loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)

        else:
            model.eval()
            gen = {"num_beams": 1 if task == "greedy" else 3, "do_sample": False}
            gen.update(min_new_tokens=LABEL_LEN, max_new_tokens=LABEL_LEN)
            gen.update(decoder_start_token_id=2, eos_token_id=3, pad_token_id=0)

            def step(model=model, kw=kw, gen=gen):
                with torch.inference_mode():
                    model.generate(**kw, **gen)

        calls[kind] = step
    warmup, rounds = ROUNDS[task]
    times = {kind: [] for kind in calls}
    for i in range(warmup + rounds):
        for kind, step in calls.items():
            t0 = time.perf_counter()
            step()
            if i >= warmup:
                times[kind].append(time.perf_counter() - t0)
    medians = {f"{kind}_s": statistics.median(ts) for kind, ts in times.items()}
    return {"ours_frames": ours_frames, "anchor_frames": anchor_frames, "task": task, **medians}


def run_sub(ours_frames: int, anchor_frames: int, task: str) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", str(ours_frames), str(anchor_frames), task],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "2", "TRANSFORMERS_VERBOSITY": "error"},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{ours_frames} vs {anchor_frames} {task} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", nargs=3, metavar=("OURS_FRAMES", "ANCHOR_FRAMES", "TASK"), help=argparse.SUPPRESS)
    parser.add_argument("--results", type=Path, help="write/replace our section in this markdown file")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(int(args.worker[0]), int(args.worker[1]), args.worker[2])))
        return

    rows, checks = [], []
    for ours in (1001, 501):
        hop = f"{10_000 // (ours - 1)} ms hop"
        for anchor in (1000, 3000):
            for task in ("train", "greedy", "beam"):
                r = run_sub(ours, anchor, task)
                print(json.dumps(r), flush=True)
                a, o = r["anchor_s"], r["ours_s"]
                if task == "greedy":
                    ratio, need, ok, what = o / a, TARGETS["greedy"], o / a <= TARGETS["greedy"], "latency ours/anchor"
                else:
                    need = TARGETS["train@3000" if task == "train" and anchor == 3000 else task]
                    ratio, ok, what = a / o, a / o >= need, "throughput ours/anchor"
                unit = "samples/s" if task != "greedy" else "ms"
                value = (lambda s: f"{BATCH / s:.2f}") if task != "greedy" else (lambda s: f"{1000 * s:.1f}")
                rows.append(
                    f"| ours@{ours} ({hop}) vs anchor@{anchor} | {task} | {value(o)} | {value(a)} {unit} "
                    f"| {ratio:.2f}x {what} |"
                )
                sign = "<=" if task == "greedy" else ">="
                checks.append(
                    f"| {task}, ours@{ours} vs anchor@{anchor} | {ratio:.2f}x | {sign} {need}x "
                    f"| {'PASS' if ok else 'FAIL'} |"
                )
    load = os.getloadavg()
    text = "\n".join(
        [
            SECTION,
            "",
            "Command: `flock /tmp/bench.lock .venv/bin/python benchmarks/bench_model.py --results benchmarks/RESULTS.md`",
            "",
            f"CPU, `torch.set_num_threads(2)`, {platform.processor() or platform.machine()}, torch "
            f"{__import__('torch').__version__}, transformers {__import__('transformers').__version__}; load average "
            f"at the end {load[0]:.1f}/{load[1]:.1f}. Width 384, 4+4 layers, 6 heads, FFN 1536, vocab 5000; batch 8 "
            "of 10 s clips (greedy: 1 clip), 20-token labels, exactly 20 generated tokens, stock `generate` for both. "
            "Each row: both models built in one process, calls interleaved, medians of "
            f"{ROUNDS['train'][1]} training steps / {ROUNDS['greedy'][1]} greedy calls / {ROUNDS['beam'][1]} 3-beam "
            "calls. The anchor is `SpeechEncoderDecoderModel(WhisperEncoder, BartForCausalLM)`; its Whisper encoder "
            "needs exactly `2 * max_source_positions` frames (1000 or Whisper's 3000).",
            "",
            "| ours vs anchor | task | ours | anchor | ratio |",
            "|---|---|---|---|---|",
            *rows,
            "",
            "| target | measured | required | |",
            "|---|---|---|---|",
            *checks,
            "",
        ]
    )
    print(text)
    if args.results:
        path = args.results
        old = path.read_text() if path.exists() else "# Benchmarks\n"
        pattern = re.compile(re.escape(SECTION) + r".*?(?=\n## |\Z)", re.S)
        if pattern.search(old):
            new = pattern.sub(lambda _: text.rstrip("\n") + "\n", old)
        else:
            new = old.rstrip("\n") + "\n\n" + text
        path.write_text(new.rstrip("\n") + "\n")


if __name__ == "__main__":
    main()
