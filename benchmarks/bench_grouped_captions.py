"""Benchmark: one demo training step with grouped captions (each clip encoded once for its five captions) vs the same
(clip, caption) rows with every clip repeated.

The default `AudioCapConfig()` (the demo model), 8 clips x 5 captions (450 frames at the demo's 20 ms hop, 18-token
labels), forward + backward + AdamW, 2 threads. "grouped" is what `group_captions: true` trains: 8 clips through the
encoder and `encoder_index` handing each caption row its clip's states; "repeated" runs the 40 rows' clips through the
encoder. Same loss and gradients (tests/test_modeling.py); calls interleaved in one process, medians reported.

    .venv/bin/python benchmarks/bench_grouped_captions.py
"""

from __future__ import annotations

import statistics
import time

import torch

from hf_audiocap.configuration_audiocap import AudioCapConfig
from hf_audiocap.modeling_audiocap import AudioCapForConditionalGeneration

CLIPS, CAPTIONS, FRAMES, LABEL_LEN, ROUNDS = 8, 5, 450, 18, 10


def main() -> None:
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = AudioCapForConditionalGeneration(AudioCapConfig()).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    feats = torch.randn(CLIPS, model.config.encoder.num_mel_bins, FRAMES)
    mask = torch.ones(CLIPS, FRAMES, dtype=torch.long)
    labels = torch.randint(5, 100, (CLIPS * CAPTIONS, LABEL_LEN))
    index = torch.arange(CLIPS).repeat_interleave(CAPTIONS)

    def grouped():
        return model(input_features=feats, attention_mask=mask, labels=labels, encoder_index=index).loss

    def repeated():
        return model(input_features=feats[index], attention_mask=mask[index], labels=labels).loss

    def step(loss_fn):
        loss_fn().backward()
        opt.step()
        opt.zero_grad()

    times = {"grouped": [], "repeated": []}
    for fn in (grouped, repeated):
        step(fn)
    for _ in range(ROUNDS):
        for name, fn in (("grouped", grouped), ("repeated", repeated)):
            start = time.perf_counter()
            step(fn)
            times[name].append((time.perf_counter() - start) * 1000)
    for name, values in times.items():
        print(f"{name:>9}: median {statistics.median(values):.1f} ms, min {min(values):.1f} ms per training step")
    ratio = statistics.median(times["grouped"]) / statistics.median(times["repeated"])
    print(f"grouped / repeated: {ratio:.3f}")


if __name__ == "__main__":
    main()
