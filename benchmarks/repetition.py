"""Benchmark: how often a model's captions repeat a content word, with and without `no_repeat_content_words`.

Run: .venv/bin/python benchmarks/repetition.py --model outputs/realsounds-demo --dataset realsounds \
         --dataset_path data/realsounds --split test [--max_clips 200] [--num_beams 3]

Captions every clip of the split twice through the shared Captioner (the model's generation settings, plus the options
given), once with the control off and once on (hf_audiocap.generation), and prints one JSON object: the fraction of
captions with a repeated content word each way, the mean caption length in words, the seconds each pass took, and a
few clips whose caption changed. The data is loaded as recipes/evaluate.py loads it (the recipes' loaders and checks).
"""

from __future__ import annotations

import argparse
import json
import time

from hf_audiocap.generation import has_repeated_content_word


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="saved model folder or Hub id")
    p.add_argument("--dataset", default="synthcaps", help="loader: synthcaps, realsounds, clotho, audiocaps, ...")
    p.add_argument("--dataset_path", default="data/synthcaps")
    p.add_argument("--audio_dir", default=None, help="AudioCaps: folder of the clips")
    p.add_argument("--split", default="test")
    p.add_argument("--max_clips", type=int, default=None)
    p.add_argument("--max_duration", type=float, default=60.0)
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--num_beams", type=int, default=None, help="default: the model's")
    p.add_argument("--max_length", type=int, default=None, help="default: the model's")
    p.add_argument("--examples", type=int, default=5, help="changed captions to show")
    p.add_argument("--trust_remote_code", action="store_true")
    return p.parse_args(argv)


def summarize(captions: list[str], seconds: float) -> dict:
    n = max(len(captions), 1)
    return {
        "repeated_content_word_fraction": round(sum(map(has_repeated_content_word, captions)) / n, 4),
        "mean_words": round(sum(len(c.split()) for c in captions) / n, 2),
        "seconds": round(seconds, 2),
    }


def main(argv=None) -> dict:
    args = parse_args(argv)
    from hf_audiocap.metrics.report import load_captioner_for, load_split

    clips = load_split(args)
    captioner = load_captioner_for(args)
    results, captions = {}, {}
    for name, on in (("without", False), ("with", True)):
        start = time.perf_counter()
        captions[name] = captioner.caption_sources(
            clips["audio"], max_duration=args.max_duration, no_repeat_content_words=on
        )
        results[name] = summarize(captions[name], time.perf_counter() - start)
    changed = [
        {"id": clip_id, "without": a, "with": b}
        for clip_id, a, b in zip(clips["id"], captions["without"], captions["with"])
        if a != b
    ]
    report = {
        "benchmark": "repetition",
        "model": args.model,
        "dataset": args.dataset,
        "split": args.split,
        "clips": len(clips),
        "generation": dict(captioner.generate_kwargs),
        **{f"{name}_control": value for name, value in results.items()},
        "changed_fraction": round(len(changed) / max(len(clips), 1), 4),
        "changed_examples": changed[: args.examples],
    }
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return report


if __name__ == "__main__":
    main()
