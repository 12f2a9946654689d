"""Benchmark: one demo training step with grouped captions, keys/values projected once per clip vs once per caption row.

The default `AudioCapConfig()` (the demo model), a batch of 8 clips x 5 captions (450 frames at the demo's 20 ms hop,
18-token labels), forward + backward + fused AdamW, 2 threads. "per clip" is the model's path (`encoder_index` reaches
the decoder's cross-attention, which gathers each clip's keys/values for its rows); "per row" hands the decoder the
encoder states already repeated for every caption row (what the model did before), so its cross-attention projects
five copies. Interleaved rounds in one process; medians reported.

    .venv/bin/python benchmarks/bench_grouped_captions.py
"""

from __future__ import annotations

import statistics
import time

import torch

from hf_audiocap.configuration_audiocap import AudioCapConfig
from hf_audiocap.modeling_audiocap import AudioCapEncoderOutput, AudioCapForConditionalGeneration

CLIPS, CAPTIONS, FRAMES, LABEL_LEN, ROUNDS = 8, 5, 450, 18, 15


def main() -> None:
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = AudioCapForConditionalGeneration(AudioCapConfig()).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    feats = torch.randn(CLIPS, model.config.encoder.num_mel_bins, FRAMES)
    mask = torch.ones(CLIPS, FRAMES, dtype=torch.long)
    labels = torch.randint(5, 100, (CLIPS * CAPTIONS, LABEL_LEN))
    index = torch.arange(CLIPS).repeat_interleave(CAPTIONS)

    def per_clip():
        return model(input_features=feats, attention_mask=mask, labels=labels, encoder_index=index).loss

    def per_row():
        enc = model._with_keywords(model.encoder(input_features=feats, attention_mask=mask))
        repeated = AudioCapEncoderOutput(
            last_hidden_state=enc.last_hidden_state.index_select(0, index),
            attention_mask=None if enc.attention_mask is None else enc.attention_mask.index_select(0, index),
            keyword_logits=enc.keyword_logits.index_select(0, index),
        )
        return model(encoder_outputs=repeated, labels=labels).loss

    def step(loss_fn):
        loss_fn().backward()
        opt.step()
        opt.zero_grad()

    times = {"per clip": [], "per row": []}
    for fn in (per_clip, per_row):
        step(fn)
    for _ in range(ROUNDS):
        for name, fn in (("per clip", per_clip), ("per row", per_row)):
            start = time.perf_counter()
            for _ in range(3):
                step(fn)
            times[name].append((time.perf_counter() - start) / 3 * 1000)
    for name, values in times.items():
        print(f"{name:>8}: median {statistics.median(values):.1f} ms, min {min(values):.1f} ms per training step")
    ratio = statistics.median(times["per clip"]) / statistics.median(times["per row"])
    print(f"per clip / per row: {ratio:.3f}")


if __name__ == "__main__":
    main()
