"""The audio-prefix model against the encoder-decoder model on CPU: training step time and peak memory at equal
width and depth, and what LoRA trains.

    python benchmarks/bench_prefix.py [--steps 8] [--threads 2]

Both models are the demo's sizes: the default built-in encoder (d_model 192, 3 layers) and a 2-layer, 192-wide
decoder (the encoder-decoder's built-in decoder, or a Llama-architecture causal LM with 4 heads and FFN 768 reading
the audio as a prefix after 2 frames are stacked per soft token); vocabulary 117 words (SynthCaps'). One batch: 8 clips
of 12 s at the demo's 20 ms hop (601 frames) with 5 captions of 16 tokens each (grouped: each clip encoded once).
Step time: forward + backward + AdamW step, both models in one process, steps interleaved, median. Peak memory: each
model in its own child process that builds it and runs the steps, its peak resident set (VmHWM) minus the same
process's peak before the model was built (after the imports and the batch). The LoRA row: the prefix model with the LM frozen and LoRA rank 8
on its query/value projections, trainable parameters counted, the LM's own weights compared bit for bit after the steps.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

VOCAB, CLIPS, CAPTIONS, TOKENS, FRAMES = 117, 8, 5, 16, 601


def build(kind: str):
    import torch

    from hf_audiocap.configuration_audiocap import AudioCapConfig
    from hf_audiocap.configuration_audiocap_prefix import AudioCapPrefixConfig
    from hf_audiocap.modeling_audiocap import AudioCapForConditionalGeneration
    from hf_audiocap.modeling_audiocap_prefix import AudioCapPrefixForConditionalGeneration
    from hf_audiocap.tokenization import build_word_tokenizer

    torch.manual_seed(0)
    special = {"pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 3}
    if kind == "encoder-decoder":
        return AudioCapForConditionalGeneration(AudioCapConfig(vocab_size=VOCAB, decoder_start_token_id=2, **special))
    lm = {
        "model_type": "llama",
        "hidden_size": 192,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "intermediate_size": 768,
        "max_position_embeddings": 512,
        "vocab_size": VOCAB,
        **special,
    }
    lora = {"lora_rank": 8} if kind == "prefix + LoRA" else {"freeze_lm": False}
    # the prompt of recipes/synthcaps/llm_prefix.yaml: the audio span alone
    config = AudioCapPrefixConfig(lm=lm, projector_stack=2, prompt_template="<audio>", **lora)
    config.set_prompt(build_word_tokenizer([" ".join(f"w{i}" for i in range(VOCAB - 4))]))
    return AudioCapPrefixForConditionalGeneration(config)


def batch():
    import torch

    g = torch.Generator().manual_seed(0)
    labels = torch.randint(4, VOCAB, (CLIPS * CAPTIONS, TOKENS), generator=g)
    labels[:, -1] = 3
    return {
        "input_features": torch.randn(CLIPS, 80, FRAMES, generator=g),
        "attention_mask": torch.ones(CLIPS, FRAMES, dtype=torch.long),
        "labels": labels,
        "encoder_index": torch.arange(CLIPS).repeat_interleave(CAPTIONS),
    }


def step(model, optimizer, inputs) -> float:
    start = time.perf_counter()
    model(**inputs).loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def _high_water_kb() -> int:
    """This process's peak resident set (VmHWM). Not `ru_maxrss`: Linux carries that across exec, so a child started
    by a large parent would start at the parent's peak."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


def child(kind: str, steps: int, threads: int) -> None:
    """Peak memory of one model: built and trained for `steps` steps in this process."""
    import torch

    import hf_audiocap.modeling_audiocap_prefix  # noqa: F401  (imports before the baseline)

    torch.set_num_threads(threads)
    inputs = batch()
    before = _high_water_kb()
    model = build(kind).train()
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    for _ in range(steps):
        step(model, optimizer, inputs)
    peak = _high_water_kb()
    unchanged = all(torch.equal(p, dict(model.named_parameters())[n]) for n, p in frozen.items())
    print(
        json.dumps(
            {
                "peak_mb": (peak - before) / 1024,
                "parameters": sum(p.numel() for p in model.parameters()),
                "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
                "frozen_unchanged": unchanged if frozen else None,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.steps, args.threads)

    import torch

    torch.set_num_threads(args.threads)
    kinds = ["encoder-decoder", "prefix", "prefix + LoRA"]
    models = {k: build(k).train() for k in kinds}
    optimizers = {
        k: torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-3) for k, m in models.items()
    }
    inputs = batch()
    times = {k: [] for k in kinds}
    for round_ in range(args.steps + 1):
        for k in kinds:
            seconds = step(models[k], optimizers[k], inputs)
            if round_:  # the first round warms up
                times[k].append(seconds)
    memory = {}
    for k in kinds:
        cmd = [sys.executable, __file__, "--child", k, "--steps", str(args.steps), "--threads", str(args.threads)]
        memory[k] = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()[-1])
    base = statistics.median(times["encoder-decoder"])
    print(
        f"CPU, {args.threads} threads, torch {torch.__version__}; {CLIPS} clips x {CAPTIONS} captions, {FRAMES} frames, "
        f"{TOKENS} tokens; median of {args.steps} interleaved steps"
    )
    print(
        "| model | parameters | trainable | step | vs encoder-decoder | peak memory | frozen weights after training |"
    )
    print("|---|---|---|---|---|---|---|")
    for k in kinds:
        m, median = memory[k], statistics.median(times[k])
        frozen = {None: "-", True: "bit-identical", False: "CHANGED"}[m["frozen_unchanged"]]
        print(
            f"| {k} | {m['parameters'] / 1e6:.2f}M | {m['trainable'] / 1e6:.3f}M | {median * 1000:.0f} ms | "
            f"{median / base:.2f}x | {m['peak_mb']:.0f} MB | {frozen} |"
        )


if __name__ == "__main__":
    main()
