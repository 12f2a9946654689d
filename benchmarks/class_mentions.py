"""Where a real-sounds captioner's class precision goes: naming too many classes, or naming the wrong ones?

Reads the test report of a trained model (``MODEL/test_per_caption.csv``, written by `recipes/train.py` and
`recipes/evaluate.py`) and the corpus's ground truth, and prints, by the number of classes in the clip, how many the
captions name and how many of those are right, then the precision of the first, second and third class a caption
names (in the order its words name them).

    python benchmarks/class_mentions.py --model outputs/realsounds-demo-xe --dataset_path data/realsounds
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from pathlib import Path

from hf_audiocap.data.realsounds.classes import CLASSES
from hf_audiocap.data.synthcaps.scoring import load_ground_truth, sources_in_order


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="a trained model's folder holding test_per_caption.csv")
    p.add_argument("--dataset_path", default="data/realsounds")
    p.add_argument("--split", default="test")
    args = p.parse_args()
    report = Path(args.model) / f"{args.split}_per_caption.csv"
    truth = {r["file_name"]: r for r in load_ground_truth(args.dataset_path, args.split, corpus="realsounds")}
    by_size = defaultdict(lambda: {"clips": 0, "named": 0, "right": 0, "present": 0})
    by_rank = defaultdict(lambda: {"named": 0, "right": 0})
    with open(report, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            present = {s["name"] for s in truth[row["id"]]["sources"]}
            named = sources_in_order(row["prediction"], CLASSES)
            size = by_size[len(present)]
            size["clips"] += 1
            size["named"] += len(named)
            size["right"] += len(set(named) & present)
            size["present"] += len(present)
            for rank, name in enumerate(named):
                by_rank[rank + 1]["named"] += 1
                by_rank[rank + 1]["right"] += name in present
    out = {
        "classes_in_clip": {
            k: {
                "clips": v["clips"],
                "named_per_clip": round(v["named"] / v["clips"], 2),
                "precision": round(v["right"] / max(v["named"], 1), 3),
                "recall": round(v["right"] / v["present"], 3),
            }
            for k, v in sorted(by_size.items())
        },
        "precision_by_order_named": {
            k: {"named": v["named"], "precision": round(v["right"] / v["named"], 3)}
            for k, v in sorted(by_rank.items())
        },
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
