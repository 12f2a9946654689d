"""Log-mel feature extraction throughput: AudioCapFeatureExtractor vs Whisper's torch path vs per-clip librosa.

Run: flock /tmp/bench.lock .venv/bin/python benchmarks/bench_features.py [--clips 64] [--seconds 10] [--threads 2]
Prints one table row per extractor (best of --repeats interleaved runs, clips/s) and the max abs difference to librosa.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def best_times(fns: list, repeats: int) -> list[float]:
    """Best wall time of each function, the runs interleaved (A B A B ...) so that a burst of load on a shared
    machine hits every extractor alike instead of whichever happened to be running."""
    for fn in fns:
        fn()  # warm-up
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, record in zip(fns, times):
            start = time.perf_counter()
            fn()
            record.append(time.perf_counter() - start)
    return [min(record) for record in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import librosa
    from transformers import WhisperFeatureExtractor

    from hf_audiocap.feature_extraction_audiocap import AudioCapFeatureExtractor

    sr = 16000
    rng = np.random.default_rng(0)
    clips = [(0.1 * rng.standard_normal(int(args.seconds * sr))).astype(np.float32) for _ in range(args.clips)]

    ours = AudioCapFeatureExtractor()
    whisper = WhisperFeatureExtractor(feature_size=80, chunk_length=int(args.seconds))

    def run_ours():
        return ours(clips, sampling_rate=sr, return_tensors="pt")["input_features"]

    def run_whisper():
        return whisper(clips, sampling_rate=sr, return_tensors="pt", device="cpu")["input_features"]

    def run_librosa():
        out = []
        for y in clips:
            mel = librosa.feature.melspectrogram(
                y=y, sr=sr, n_fft=ours.n_fft, hop_length=ours.hop_length, win_length=ours.win_length, window="hann",
                center=True, pad_mode="constant", power=2.0, n_mels=ours.feature_size, fmin=0.0, fmax=sr / 2,
                htk=False, norm="slaney",
            )  # fmt: skip
            out.append(np.log(mel + ours.log_offset))
        return out

    names = ["AudioCapFeatureExtractor", "Whisper (torch, cpu)", "librosa per clip"]
    # librosa is timed on its own, after the other two: numpy's BLAS threads keep spinning for a while after its
    # mel matmul and slowed the torch extractor that ran next by 1.6x (89 -> 149 ms per batch, measured).
    seconds = best_times([run_ours, run_whisper], args.repeats) + best_times([run_librosa], args.repeats)
    rows = [(name, s, args.clips / s) for name, s in zip(names, seconds)]
    diff = float(np.max(np.abs(run_ours().numpy() - np.stack(run_librosa()))))

    whisper_rate = rows[1][2]
    librosa_rate = rows[2][2]
    print(
        f"{args.clips} clips x {args.seconds:g} s at {sr} Hz, torch threads={args.threads}, best of {args.repeats} interleaved"
    )
    print(f"{'extractor':28s} {'ms/batch':>9s} {'clips/s':>9s} {'vs Whisper':>11s} {'vs librosa':>11s}")
    for name, seconds, rate in rows:
        print(
            f"{name:28s} {seconds * 1000:9.1f} {rate:9.0f} {rate / whisper_rate:10.2f}x {rate / librosa_rate:10.2f}x"
        )
    print(f"max |ours - librosa(float32 input)| = {diff:.2e}")


if __name__ == "__main__":
    main()
