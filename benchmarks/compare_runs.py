"""Two trained SynthCaps runs side by side on their test split: the scores each run wrote (`test_metrics.json`), source
recall by how many sources a clip holds, and clips where one names a source the other misses.

    .venv/bin/python benchmarks/compare_runs.py OUT_A OUT_B [--data data/synthcaps] [--samples 6]

(benchmarks/RESULTS.md, "The audio-prefix model against the encoder-decoder": OUT_A the encoder-decoder of
recipes/synthcaps/demo.yaml, OUT_B the prefix model of recipes/synthcaps/llm_prefix.yaml.)
"""

import argparse
import json
from collections import defaultdict
from pathlib import Path

from hf_audiocap.data.synthcaps.scoring import load_ground_truth, named_sources

ROWS = ["cider_d", "source_recall", "source_precision", "bleu_4", "meteor", "rouge_l", "loss", "vocab_size"]


def predictions(out: Path) -> dict[str, str]:
    with (out / "test_predictions.jsonl").open(encoding="utf-8") as f:
        return {row["id"]: row["prediction"] for row in map(json.loads, f)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs=2, type=Path)
    parser.add_argument("--data", type=Path, default=Path("data/synthcaps"))
    parser.add_argument("--samples", type=int, default=6)
    args = parser.parse_args()
    names = [run.name for run in args.runs]
    scores = [json.loads((run / "test_metrics.json").read_text()) for run in args.runs]
    print("| test split | " + " | ".join(names) + " | ratio |\n|---|---:|---:|---:|")
    for key in ROWS:
        a, b = scores[0].get(key), scores[1].get(key)
        print(f"| {key} | {a:.4g} | {b:.4g} | {b / a:.3f} |")

    preds = [predictions(run) for run in args.runs]
    truth = load_ground_truth(args.data, "test")
    found = defaultdict(lambda: [[0, 0], [0, 0]])  # sources in the clip -> per run [named, present]
    disagree = []
    for clip in truth:
        present = {s["name"] for s in clip["sources"]}
        named = [named_sources(p[clip["file_name"]]) & present for p in preds]
        for r in (0, 1):
            found[len(present)][r][0] += len(named[r])
            found[len(present)][r][1] += len(present)
        if named[0] != named[1]:
            disagree.append((clip["file_name"], sorted(present), [p[clip["file_name"]] for p in preds], named))
    print(
        "\n| sources in the clip | clips | " + " | ".join(f"recall {n}" for n in names) + " |\n|---:|---:|---:|---:|"
    )
    for k in sorted(found):
        (a_hit, a_all), (b_hit, _) = found[k]
        print(f"| {k} | {a_all // k} | {a_hit / a_all:.3f} | {b_hit / a_all:.3f} |")
    print(f"\n{len(disagree)} of {len(truth)} clips where the runs name different sources; the first {args.samples}:")
    for clip_id, present, captions, named in disagree[: args.samples]:
        print(f"- {clip_id} (sources: {', '.join(present)})")
        for name, caption, hit in zip(names, captions, named):
            print(f'  - {name}: "{caption}" (names {", ".join(sorted(hit)) or "none"})')


if __name__ == "__main__":
    main()
