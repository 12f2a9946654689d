"""Benchmark: AudioCap built-in model vs a SpeechEncoderDecoderModel(WhisperEncoder + BartForCausalLM) anchor, CPU.

Same width (384), depth (4 encoder + 4 decoder layers), heads (6), FFN (1536) and vocabulary (5000) for both.
Batch 8 of 10 s clips: ours gets 1001 frames (1 + 160000 // 160, the feature extractor's count at a 10 ms hop) and
501 frames (a 20 ms hop: the features the demo model is trained on, 80 ms per encoder position after the 4x conv
subsampling, so every target is checked at both rates); the anchor gets 1000
frames (Whisper encoder with max_source_positions=500) and Whisper's default 3000 frames (max_source_positions=1500),
since a stock Whisper encoder only accepts exactly 2 * max_source_positions frames. 20-token labels.

Every configuration runs in its own subprocess (clean peak RSS from `resource.getrusage`), 2 torch threads; the greedy
latency target is checked with ours and the 1000-frame anchor in one subprocess, calls interleaved (15 rounds).

    flock /tmp/bench.lock .venv/bin/python benchmarks/bench_model.py [--results benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BATCH, LABEL_LEN, VOCAB, WIDTH, LAYERS, HEADS, FFN = 8, 20, 5000, 384, 4, 6, 1536
SECTION = "## Model: training and generation"
NOTE = (
    "Greedy decoding at batch 1 is 20 decoder steps of tiny GEMVs: at equal width/depth/vocabulary our decoder reads "
    "the same ~41 MB of fp32 weights per step as the anchor's BART decoder (measured: ~0.94 ms of addmv per step, "
    "~44 GB/s on 2 threads; one 33 MB GEMV peaks at ~54 GB/s; bf16 weights were slower on this CPU). Per greedy call at "
    "1001 frames (profiled): encoder ~22 ms (its GEMMs at ~265 GFLOP/s, ~90% of the measured sgemm peak), first "
    "decoder step ~5 ms (2.4 ms of it the cross-attention key/value projections), then ~1.5 ms per step (~1.2 ms the "
    "layers, ~0.2 ms the output projection, ~0.2 ms token choice, stopping criteria and embedding). Decoding "
    "changes: every one-token step (the first included) takes the decoder's lean cached step "
    "(`AudioCapDecoder._cached_step`: the layer ops called directly on the weights, gathered once per generate; a "
    "single row (batch 1) as 1-D vectors with addmv, several rows as 2-D rows; PyTorch's native GELU instead of "
    "oneDNN's ~10-30 us primitive); the greedy/sampling "
    "loop (`AudioCapForConditionalGeneration._sample`) calls it directly, with the self-attention keys/values in "
    "buffers allocated once per call instead of a growing `torch.cat`; the min-length logits processors build their "
    "end-of-sequence mask once instead of every step; encoder layers add and activate in place at inference; the "
    "keyword head is skipped when nothing reads it. Same tokens as transformers' loop (tested). Beam search: only the "
    "self-attention cache is reordered between steps, and a clip's beams share its encoder output and cross-attention "
    "keys/values. Two input rates for ours: the anchor's 10 ms hop (1001 frames, 40 ms per encoder position) and the "
    "20 ms hop the demo model is trained on (501 frames, 80 ms per encoder position), where the encoder costs half. "
    "The greedy latency target is checked with the two models in one process, calls interleaved, 15 rounds (the "
    "side-by-side rule: drift of a shared machine hits both alike); the ratio of the separate subprocesses' greedy "
    "latencies, measured minutes apart, is listed for reference (over six runs on 2026-11-25 it swung between 0.35x "
    "and 0.54x while the interleaved ratio stayed within 0.43-0.48x)."
)
TARGETS = {  # measured by the issue author on the anchor, for reference
    ("anchor", 1000): {"train": 4.8, "rss_gb": 1.5},
    ("anchor", 3000): {"train": 1.2, "rss_gb": 3.5},
}


def build(kind: str, frames: int):
    import torch

    torch.manual_seed(0)
    if kind == "ours":
        from hf_audiocap.configuration_audiocap import AudioCapConfig
        from hf_audiocap.modeling_audiocap import AudioCapForConditionalGeneration

        config = AudioCapConfig(
            encoder={
                "num_mel_bins": 80,
                "d_model": WIDTH,
                "encoder_layers": LAYERS,
                "encoder_attention_heads": HEADS,
                "encoder_ffn_dim": FFN,
            },
            decoder={
                "d_model": WIDTH,
                "decoder_layers": LAYERS,
                "decoder_attention_heads": HEADS,
                "decoder_ffn_dim": FFN,
                "max_target_positions": 64,
            },
            vocab_size=VOCAB,
        )
        return AudioCapForConditionalGeneration(config)
    from transformers import BartConfig, BartForCausalLM, SpeechEncoderDecoderModel, WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    enc = WhisperEncoder(
        WhisperConfig(
            d_model=WIDTH,
            encoder_layers=LAYERS,
            encoder_attention_heads=HEADS,
            encoder_ffn_dim=FFN,
            num_mel_bins=80,
            max_source_positions=frames // 2,
        )
    )
    dec = BartForCausalLM(
        BartConfig(
            d_model=WIDTH,
            decoder_layers=LAYERS,
            encoder_layers=LAYERS,
            decoder_attention_heads=HEADS,
            encoder_attention_heads=HEADS,
            decoder_ffn_dim=FFN,
            encoder_ffn_dim=FFN,
            vocab_size=VOCAB,
            is_decoder=True,
            add_cross_attention=True,
            pad_token_id=0,
            bos_token_id=2,
            eos_token_id=3,
            decoder_start_token_id=2,
        )
    )
    model = SpeechEncoderDecoderModel(encoder=enc, decoder=dec)
    model.config.pad_token_id, model.config.decoder_start_token_id = 0, 2
    return model


def worker(kind: str, frames: int, task: str) -> dict:
    import torch

    torch.set_num_threads(2)
    model = build(kind, frames)
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(BATCH, 80, frames, generator=g)
    mask = torch.ones(BATCH, frames, dtype=torch.long)
    labels = torch.randint(4, VOCAB, (BATCH, LABEL_LEN), generator=g)
    labels[:, -1] = 3

    def inputs(n):
        kw = {"input_features": feats[:n]}
        if kind == "ours":
            kw["attention_mask"] = mask[:n]
        return kw

    result = {"kind": kind, "frames": frames, "task": task}
    if task == "greedy_ab":  # ours at `frames` and the anchor at 1000 frames, greedy calls interleaved in this process
        anchor = build("anchor", 1000).eval()
        model.eval()
        anchor_feats = torch.randn(1, 80, 1000, generator=g)
        gen = {"num_beams": 1, "min_new_tokens": LABEL_LEN, "max_new_tokens": LABEL_LEN, "do_sample": False}
        gen.update(decoder_start_token_id=2, eos_token_id=3, pad_token_id=0)
        calls = {
            "ours": lambda: model.generate(**inputs(1), **gen),
            "anchor": lambda: anchor.generate(input_features=anchor_feats, **gen),
        }
        times = {name: [] for name in calls}
        with torch.inference_mode():
            for call in calls.values():
                call()  # warmup
            for _ in range(15):
                for name, call in calls.items():
                    t0 = time.perf_counter()
                    call()
                    times[name].append(time.perf_counter() - t0)
        result.update({f"{name}_s": statistics.median(ts) for name, ts in times.items()})
        return result
    if task == "train":
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        steps, warmup = (3, 1) if frames >= 3000 else (5, 2)
        times = []
        for i in range(warmup + steps):
            t0 = time.perf_counter()
            loss = model(**inputs(BATCH), labels=labels).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if i >= warmup:
                times.append(time.perf_counter() - t0)
        result["samples_per_s"] = BATCH / statistics.median(times)
    else:
        model.eval()
        n, beams, reps = (1, 1, 15) if task == "greedy" else (BATCH, 3, 5)
        gen = {"num_beams": beams, "min_new_tokens": LABEL_LEN, "max_new_tokens": LABEL_LEN, "do_sample": False}
        gen.update(decoder_start_token_id=2, eos_token_id=3, pad_token_id=0)
        times = []
        with torch.inference_mode():
            model.generate(**inputs(n), **gen)  # warmup
            for _ in range(reps):
                t0 = time.perf_counter()
                out = model.generate(**inputs(n), **gen)
                times.append(time.perf_counter() - t0)
        result["latency_s"] = statistics.median(times)
        result["tokens"] = int(out.shape[1])
    result["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    result["params_m"] = sum(p.numel() for p in model.parameters()) / 1e6
    return result


def run_sub(kind: str, frames: int, task: str) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", kind, str(frames), task],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "2", "TRANSFORMERS_VERBOSITY": "error"},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} {frames} {task} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", nargs=3, metavar=("KIND", "FRAMES", "TASK"), help=argparse.SUPPRESS)
    parser.add_argument("--results", type=Path, help="write/replace our section in this markdown file")
    args = parser.parse_args()
    if args.worker:
        kind, frames, task = args.worker
        print(json.dumps(worker(kind, int(frames), task)))
        return

    ours_frames = (1001, 501)  # 10 ms hop (the anchor's frame rate) and 20 ms hop (the demo's features)
    configs = [*(("ours", f) for f in ours_frames), ("anchor", 1000), ("anchor", 3000)]
    res = {}
    for kind, frames in configs:
        for task in ("train", "greedy", "beam"):
            r = run_sub(kind, frames, task)
            res[(kind, frames, task)] = r
            print(json.dumps(r), flush=True)
    for frames in ours_frames:
        r = run_sub("ours", frames, "greedy_ab")
        res[("ours", frames, "greedy_ab")] = r
        print(json.dumps(r), flush=True)

    def v(kind, frames, task, key):
        return res[(kind, frames, task)][key]

    rows = []
    for kind, frames in configs:
        name = "anchor Whisper-enc + BART-dec"
        if kind == "ours":
            name = f"AudioCap built-in, {10_000 // (frames - 1)} ms hop"
        rows.append(
            f"| {name} | {frames} "
            f"| {v(kind, frames, 'train', 'params_m'):.1f}M "
            f"| {v(kind, frames, 'train', 'samples_per_s'):.2f} | {v(kind, frames, 'train', 'peak_rss_gb'):.2f} "
            f"| {v(kind, frames, 'greedy', 'latency_s'):.3f} | {v(kind, frames, 'beam', 'latency_s'):.2f} "
            f"| {BATCH / v(kind, frames, 'beam', 'latency_s'):.2f} |"
        )
    checks = []

    def check(name, value, target, ok):
        status = "reference" if ok is None else "PASS" if ok else "FAIL"
        checks.append(f"| {name} | {value} | {target} | {status} |")

    for ours in ours_frames:
        tag = f"ours@{ours}"
        for frames, need in ((1000, 1.5), (3000, 4.0)):
            ratio = v("ours", ours, "train", "samples_per_s") / v("anchor", frames, "train", "samples_per_s")
            check(f"{tag}: training samples/s vs anchor@{frames}", f"{ratio:.2f}x", f">= {need}x", ratio >= need)
            rss, arss = v("ours", ours, "train", "peak_rss_gb"), v("anchor", frames, "train", "peak_rss_gb")
            check(
                f"{tag}: training peak RSS vs anchor@{frames}", f"{rss:.2f} / {arss:.2f} GB", "<= anchor", rss <= arss
            )
        ab = res[("ours", ours, "greedy_ab")]
        ratio = ab["ours_s"] / ab["anchor_s"]
        check(
            f"{tag}: greedy latency batch 1 vs anchor@1000, one process, interleaved "
            f"({ab['ours_s'] * 1e3:.1f} / {ab['anchor_s'] * 1e3:.1f} ms)",
            f"{ratio:.3f}x",
            "<= 0.5x",
            ratio <= 0.5,
        )
        for frames in (1000, 3000):
            # separate subprocesses, minutes apart on a shared machine: listed, the interleaved figure is the check
            ratio = v("ours", ours, "greedy", "latency_s") / v("anchor", frames, "greedy", "latency_s")
            check(f"{tag}: greedy latency batch 1 vs anchor@{frames}, separate runs", f"{ratio:.3f}x", "<= 0.5x", None)
            ratio = v("anchor", frames, "beam", "latency_s") / v("ours", ours, "beam", "latency_s")
            check(f"{tag}: 3-beam throughput batch 8 vs anchor@{frames}", f"{ratio:.2f}x", ">= 2x", ratio >= 2.0)

    load = os.getloadavg()
    text = "\n".join(
        [
            SECTION,
            "",
            "Command: `flock /tmp/bench.lock .venv/bin/python benchmarks/bench_model.py --results benchmarks/RESULTS.md`",
            "",
            f"CPU, `torch.set_num_threads(2)`, {platform.processor() or platform.machine()}, torch "
            f"{__import__('torch').__version__}, transformers {__import__('transformers').__version__}; "
            f"load average at the end {load[0]:.1f}/{load[1]:.1f} (machine shared with other developers: "
            "absolute numbers are noisy, the ratios come from one run). Width 384, 4+4 layers, 6 heads, FFN 1536, "
            "vocab 5000, batch 8 of 10 s clips, 20-token labels; generation forced to exactly 20 new tokens "
            "(`min_new_tokens = max_new_tokens = 20`) so both models decode the same number of steps. Each row's "
            "numbers come from separate subprocesses (clean `ru_maxrss`). The anchor is "
            "`SpeechEncoderDecoderModel(encoder=WhisperEncoder, decoder=BartForCausalLM)` built from the two modules; "
            "its Whisper encoder needs exactly `2 * max_source_positions` frames, so the 1000-frame anchor uses "
            "`max_source_positions=500`.",
            "",
            "| model | frames | params | train samples/s | train peak RSS GB | greedy b=1 s | 3-beam b=8 s | 3-beam samples/s |",
            "|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            "Issue author's anchor numbers on their machine, for reference: 4.8 / 1.2 samples/s, 1.5 / 3.5 GB, "
            "greedy 0.24 s, 3 beams 1.35 s.",
            "",
            "| target | measured | required | |",
            "|---|---|---|---|",
            *checks,
            "",
            NOTE,
            "",
        ]
    )
    print(text)
    if args.results:
        path = args.results
        old = path.read_text() if path.exists() else "# Benchmarks\n"
        pattern = re.compile(re.escape(SECTION) + r".*?(?=\n## |\Z)", re.S)
        new = (
            pattern.sub(lambda _: text.rstrip("\n") + "\n", old)
            if pattern.search(old)
            else old.rstrip("\n") + "\n\n" + text
        )
        path.write_text(new.rstrip("\n") + "\n")


if __name__ == "__main__":
    main()
