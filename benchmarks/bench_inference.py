"""Benchmark: captioning for people (live window latency, CLI throughput, the app under concurrent clients), CPU.

Model: `outputs/synthcaps-demo` when present, else the default `AudioCapConfig()` with random weights and the SynthCaps
vocabulary (saved to a temporary folder and loaded like any model). A random model rarely emits <eos>, so its
captions run to the generation config's max_length: a pessimistic load compared with a trained model.

1. live: `CaptionService.live_step` with 1-s microphone chunks once the 5-s rolling buffer is full; the time from a
   chunk to the caption update (target: median <= 150 ms).
2. cli: `caption_files` (what `hf-audiocap caption` runs, batch 16) on SynthCaps test clips: clips/s and real-time
   factor = compute seconds / audio seconds (target: RTF <= 0.02); plus the end-to-end CLI command's wall time.
3. app: app.py served on loopback; 16 gradio_client clients at once, each sending `--requests-per-client` `/caption`
   requests; every request must be answered; p50/p95 latency.

    flock /tmp/bench.lock .venv/bin/python benchmarks/bench_inference.py [--clips 32] [--requests-per-client 2]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEMO = REPO / "outputs" / "synthcaps-demo"
SYNTHCAPS = REPO / "data" / "synthcaps"


def model_folder(tmp: Path) -> tuple[str, str]:
    if DEMO.is_dir():
        return str(DEMO), "demo model (outputs/synthcaps-demo)"
    import torch

    from hf_audiocap import (
        AudioCapConfig,
        AudioCapFeatureExtractor,
        AudioCapForConditionalGeneration,
        AudioCapProcessor,
        build_word_tokenizer,
    )

    captions = []
    with open(SYNTHCAPS / "clotho_captions_train.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            captions += [row[f"caption_{i}"] for i in range(1, 6)]
    tok = build_word_tokenizer(captions)
    torch.manual_seed(0)
    model = AudioCapForConditionalGeneration(AudioCapConfig(vocab_size=len(tok))).eval()
    folder = tmp / "random-default"
    model.save_pretrained(folder)
    AudioCapProcessor(AudioCapFeatureExtractor(), tok).save_pretrained(folder)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    return str(folder), f"random default AudioCapConfig() ({params:.1f}M params, SynthCaps vocabulary of {len(tok)})"


def bench_live(captioner, iterations: int) -> dict:
    from hf_audiocap.inference.service import CaptionService

    service = CaptionService(captioner)
    clip = sorted((SYNTHCAPS / "test").glob("*.wav"))[0]
    from hf_audiocap.data.audio import load_audio

    wave = load_audio(clip, 48000)
    wave = np.tile(wave, int(np.ceil((iterations + 6) * 48000 / wave.size)))
    pcm = (np.clip(wave, -1, 1) * 32767).astype(np.int16)
    state, times = None, []
    for k in range(iterations + 5):
        chunk = (48000, pcm[k * 48000 : (k + 1) * 48000])
        t = time.perf_counter()
        _, _, state = service.live_step(chunk, state)
        if k >= 5:  # buffer full: a 5-s window per update
            times.append(time.perf_counter() - t)
    return {
        "updates": len(times),
        "median_ms": round(1000 * statistics.median(times), 1),
        "p90_ms": round(1000 * float(np.percentile(times, 90)), 1),
    }


def bench_cli(captioner, model: str, clips: list[Path]) -> dict:
    from hf_audiocap.data.audio import audio_info
    from hf_audiocap.inference.cli_caption import caption_files

    audio_s = sum(f / sr for sr, f, _ in (audio_info(c) for c in clips))
    caption_files(captioner, [str(c) for c in clips[:2]], progress=False)  # warm-up
    t = time.perf_counter()
    results, failed = caption_files(captioner, [str(c) for c in clips], progress=False)
    dt = time.perf_counter() - t
    assert not failed and len(results) == len(clips)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "hf_audiocap.cli", "caption", *map(str, clips), "--model", model, "--quiet"]
            + ["--format", "json", "--output", str(Path(tmp) / "c.json")],
            check=True,
            cwd=REPO,
        )
        wall = time.perf_counter() - t
    return {
        "clips": len(clips),
        "audio_s": round(audio_s, 1),
        "seconds": round(dt, 2),
        "clips_per_s": round(len(clips) / dt, 2),
        "rtf": round(dt / audio_s, 4),
        "cli_wall_s_incl_startup": round(wall, 1),
    }


def bench_app(model: str, captioner, clients: int, per_client: int) -> dict:
    from gradio_client import Client, handle_file

    import app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as ratings:
        demo = app.build_app(model, ratings_dir=ratings, captioner=captioner, examples_dir=None)
        sizes = []
        original = captioner.caption_arrays

        def recording(waves, *a, **k):
            sizes.append(len(waves))
            return original(waves, *a, **k)

        captioner.caption_arrays = recording
        _, url, _ = app.launch(demo, port=port, prevent_thread_lock=True, quiet=True)
        clips = sorted((SYNTHCAPS / "test").glob("*.wav"))
        latencies, errors = [], []
        lock = threading.Lock()
        barrier = threading.Barrier(clients)

        def worker(i):
            client = Client(url, verbose=False)
            barrier.wait()
            for j in range(per_client):
                clip = clips[(i * per_client + j) % len(clips)]
                t = time.perf_counter()
                try:
                    caption, error = client.predict(handle_file(str(clip)), api_name="/caption")
                    ok = bool(caption) and not error
                except Exception as err:  # noqa: BLE001
                    ok, error = False, repr(err)
                with lock:
                    latencies.append(time.perf_counter() - t)
                    if not ok:
                        errors.append(error)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
        t0 = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.perf_counter() - t0
        del captioner.caption_arrays
        demo.close()
    return {
        "clients": clients,
        "requests": clients * per_client,
        "answered_ok": len(latencies) - len(errors),
        "errors": errors[:3],
        "p50_s": round(float(np.percentile(latencies, 50)), 2),
        "p95_s": round(float(np.percentile(latencies, 95)), 2),
        "wall_s": round(wall, 1),
        "batch_sizes": sizes,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=int, default=32)
    p.add_argument("--live-iterations", type=int, default=20)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--requests-per-client", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    from hf_audiocap.inference.cli_caption import load_captioner

    with tempfile.TemporaryDirectory() as tmp:
        model, which = model_folder(Path(tmp))
        captioner = load_captioner(model, batch_size=16)
        gen = captioner.model.generation_config
        clips = sorted((SYNTHCAPS / "test").glob("*.wav"))[: args.clips]
        load_before = os.getloadavg()
        out = {
            "model": which,
            "generation": {"num_beams": gen.num_beams, "max_length": gen.max_length},
            "threads": args.threads,
            "live": bench_live(captioner, args.live_iterations),
            "cli": bench_cli(captioner, model, clips),
            "app": bench_app(model, captioner, args.clients, args.requests_per_client),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
