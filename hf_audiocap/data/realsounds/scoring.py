"""What a captioner learnt of the real-sounds classes: does each caption name the classes in its clip, and no others.

Beside the micro-averaged class-word recall and precision, a per-class table with each class's most frequent
confusions, and the same figures for a baseline that gives every clip the most frequent training caption, so a reader
sees how much was learnt. On the sets of single recordings (test_single, independent), ``single_class_accuracy`` is the
share of recordings whose caption names their class and no other.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

from hf_audiocap.data.realsounds.classes import CLASSES
from hf_audiocap.data.realsounds.generate import SINGLE_SPLITS
from hf_audiocap.data.synthcaps.scoring import load_ground_truth, named_sources, score_sources
from hf_audiocap.metrics.text import normalize_caption


def most_frequent_caption(dataset_dir: str | Path, split: str = "train") -> str:
    """The most frequent caption (after normalisation) among a split's references: the baseline's only answer."""
    counts: Counter = Counter()
    with open(Path(dataset_dir) / f"clotho_captions_{split}.csv", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            counts.update(normalize_caption(v) for k, v in row.items() if k.startswith("caption_") and v)
    return counts.most_common(1)[0][0]


def class_table(named: list[set[str]], truth: list[set[str]]) -> str:
    """Markdown: per class, its clips, recall, precision, and what was named instead when it was missed."""
    lines = [
        "| class | clips | recall | precision | named instead when missed (most frequent) |",
        "|---|---|---|---|---|",
    ]
    for cls in sorted({c for t in truth for c in t}):
        present = [(n, t) for n, t in zip(named, truth) if cls in t]
        said = [t for n, t in zip(named, truth) if cls in n]
        recall = sum(cls in n for n, _ in present) / len(present)
        precision = sum(cls in t for t in said) / len(said) if said else 0.0
        instead = Counter(c for n, t in present if cls not in n for c in (n - t) or {"(nothing)"})
        confusions = ", ".join(f"{c} {k}" for c, k in instead.most_common(3))
        lines.append(f"| {cls} | {len(present)} | {recall:.2f} | {precision:.2f} | {confusions} |")
    return "\n".join(lines)


def class_scores(predictions: list[str], clip_ids: list[str], dataset_dir: str | Path, split: str) -> dict:
    """Class-word recall/precision of ``predictions`` and of the baseline on the clips ``clip_ids`` of ``split``
    (``single_class_accuracy`` too on a split of single recordings), and ``class_table`` (markdown)."""
    by_name = {r["file_name"]: r for r in load_ground_truth(dataset_dir, split, corpus="realsounds")}
    missing = [i for i in clip_ids if i not in by_name]
    if missing:
        raise ValueError(f"{dataset_dir}: no realsounds ground truth for {missing[0]!r} of split {split!r}")
    records = [by_name[i] for i in clip_ids]
    truth = [{s["name"] for s in r["sources"]} for r in records]
    named = [named_sources(p or "", CLASSES) for p in predictions]
    baseline_caption = most_frequent_caption(dataset_dir)
    baseline = named_sources(baseline_caption, CLASSES)
    ours = score_sources(predictions, records, CLASSES)
    base = score_sources([baseline_caption] * len(records), records, CLASSES)
    out = {
        "class_recall": ours["source_recall"],
        "class_precision": ours["source_precision"],
        "baseline_class_recall": base["source_recall"],
        "baseline_class_precision": base["source_precision"],
        "class_table": class_table(named, truth),
    }
    if split in SINGLE_SPLITS:
        out["single_class_accuracy"] = sum(n == t for n, t in zip(named, truth)) / len(truth)
        out["baseline_single_class_accuracy"] = sum(baseline == t for t in truth) / len(truth)
    return out
