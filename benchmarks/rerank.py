"""Benchmark: plain beam search against reranked candidates (hf_audiocap.rerank), with time per clip.

Run: nice -n 10 .venv/bin/python benchmarks/rerank.py --model outputs/realsounds-demo --dataset realsounds \
         --dataset_path data/realsounds --split test [--max_clips 100] [--candidates 5]

Captions every clip of the split once per decoding through the shared Captioner (the model's generation settings plus
the options given): plain beam search with the model's beams, plain beam search with `--candidates` beams, and
`rerank` = logprob, mbr, logprob:0.5,mbr:0.5 over the beam's `--candidates` best, mbr over `--candidates` nucleus
samples (top_p 0.95), and mbr of the beam's `--candidates` best against N sampled captions for each N of `--evidence`
(`rerank_evidence`); every row that samples runs once per seed of `--seeds`. Prints a markdown table (CIDEr-D,
SPIDEr, class recall/precision on realsounds, seconds per clip) and one JSON object. The audio is decoded once, before timing; the data is loaded as recipes/evaluate.py
loads it.
"""

from __future__ import annotations

import argparse
import json
import time


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="saved model folder or Hub id")
    p.add_argument("--dataset", default="realsounds", help="loader: synthcaps, realsounds, clotho, audiocaps, ...")
    p.add_argument("--dataset_path", default="data/realsounds")
    p.add_argument("--audio_dir", default=None, help="AudioCaps: folder of the clips")
    p.add_argument("--split", default="test")
    p.add_argument("--max_clips", type=int, default=None)
    p.add_argument("--max_duration", type=float, default=60.0)
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--num_beams", type=int, default=None, help="plain beam search's beams (default: the model's)")
    p.add_argument("--max_length", type=int, default=None, help="default: the model's")
    p.add_argument("--candidates", type=int, default=5, help="k, the candidates per clip of every reranker")
    p.add_argument("--no_sampling", action="store_true", help="leave out the sampling + mbr row")
    p.add_argument("--metrics", default="cider_d,spider", help="caption metrics (SPIDEr needs Java for SPICE)")
    p.add_argument("--evidence", default="20,80", help="sampled pseudo-references of the mbr rows: N,N,... ('' none)")
    p.add_argument("--seeds", default="0", help="the seeds of every row that samples: S,S,...")
    p.add_argument("--trust_remote_code", action="store_true")
    return p.parse_args(argv)


def decodings(args, model_beams: int) -> list[tuple[str, dict]]:
    k = args.candidates
    rows = [(f"beam {model_beams} (plain)", {})]
    if k != model_beams:
        rows.append((f"beam {k} (plain)", {"num_beams": k}))
    rows += [
        (f"logprob, beam {k}-best", {"rerank": "logprob", "rerank_candidates": k}),
        (f"mbr, beam {k}-best", {"rerank": "mbr", "rerank_candidates": k}),
        (f"logprob:0.5,mbr:0.5, beam {k}-best", {"rerank": "logprob:0.5,mbr:0.5", "rerank_candidates": k}),
    ]
    sampled = []
    if not args.no_sampling:
        sampled.append(
            (f"mbr, {k} samples (top_p 0.95)", {"rerank": "mbr", "rerank_candidates": k, "rerank_sampling": True})
        )
    for n in (int(x) for x in args.evidence.split(",") if x.strip()):
        sampled.append(
            (f"mbr, beam {k}-best vs {n} samples", {"rerank": "mbr", "rerank_candidates": k, "rerank_evidence": n})
        )
    seeds = [int(x) for x in args.seeds.split(",")]
    for name, kwargs in sampled:
        rows += [(name + (f" (seed {seed})" if len(seeds) > 1 else ""), {**kwargs, "seed": seed}) for seed in seeds]
    return rows


def main(argv=None) -> dict:
    args = parse_args(argv)
    import torch

    from hf_audiocap.data.audio import load_audio
    from hf_audiocap.metrics import compute_caption_metrics
    from hf_audiocap.metrics.report import load_captioner_for, load_split, split_scores

    clips = load_split(args)
    captioner = load_captioner_for(args)
    waves = [load_audio(a, captioner.sampling_rate, max_duration=args.max_duration) for a in clips["audio"]]
    model_beams = int(captioner.generate_kwargs.get("num_beams") or captioner.model.generation_config.num_beams or 1)
    captioner.caption_arrays(waves[: captioner.batch_size])  # warm-up, untimed
    rows = []
    for name, kwargs in decodings(args, model_beams):
        kwargs = dict(kwargs)
        seed = kwargs.pop("seed", 0)
        torch.manual_seed(seed)
        start = time.perf_counter()
        captions = captioner.caption_arrays(waves, **kwargs)
        seconds = time.perf_counter() - start
        scores = compute_caption_metrics(captions, clips["captions"], metrics=args.metrics)
        extra = split_scores(captions, clips, args.dataset, args.dataset_path, args.split)
        row = {
            "decoding": name,
            "settings": kwargs,
            "seed": seed,
            "s_per_clip": round(seconds / max(len(waves), 1), 4),
        }
        for key in ("cider_d", "spider", "class_recall", "class_precision", "source_recall", "source_precision"):
            value = {**scores, **extra}.get(key)
            if isinstance(value, (int, float)):
                row[key] = round(float(value), 4)
        rows.append(row)
        print(json.dumps(row), flush=True)
    columns = [c for c in ("cider_d", "spider", "class_recall", "class_precision", "source_recall", "source_precision")
               if any(c in r for r in rows)]  # fmt: skip
    table = ["| decoding | " + " | ".join(columns) + " | s/clip |", "|---" * (len(columns) + 2) + "|"]
    for r in rows:
        cells = [f"{r[c]:.4f}" if c in r else "-" for c in columns]
        table.append(f"| {r['decoding']} | " + " | ".join(cells) + f" | {r['s_per_clip']:.3f} |")
    report = {
        "benchmark": "rerank",
        "model": args.model,
        "dataset": args.dataset,
        "split": args.split,
        "clips": len(clips),
        "rows": rows,
        "table": "\n".join(table),
    }
    print("\n".join(table))
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return report


if __name__ == "__main__":
    main()
