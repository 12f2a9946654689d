"""Scoring captions against SynthCaps ground truth: which catalogue sources a caption names."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from pathlib import Path

from hf_audiocap.data.synthcaps.catalogue import CATALOGUE, SourceSpec
from hf_audiocap.metrics.text import normalize_caption


def sources_in_order(caption: str, catalogue: Sequence[SourceSpec] = CATALOGUE) -> list[str]:
    """Names of the catalogue sources any of whose synonyms occurs (whole words) in ``caption``, first named first."""
    padded = f" {normalize_caption(caption)} "
    first = {}
    for spec in catalogue:
        found = [padded.find(f" {syn} ") for syn in spec.synonyms if f" {syn} " in padded]
        if found:
            first[spec.name] = min(found)
    return sorted(first, key=first.get)


def named_sources(caption: str, catalogue: Sequence[SourceSpec] = CATALOGUE) -> set[str]:
    """Names of the catalogue sources any of whose synonyms occurs (whole words) in ``caption``."""
    return set(sources_in_order(caption, catalogue))


def score_sources(
    predictions: list[str], ground_truth: list[dict], catalogue: Sequence[SourceSpec] = CATALOGUE
) -> dict:
    """Micro-averaged source recall / precision of captions against ground truth records (SynthCaps', or any with
    the same ``sources`` field, such as the real-sounds corpus' with its ``catalogue``).

    A source is named when any of its synonyms appears as whole words in the lowercased caption without punctuation.
    Catalogue sources named but absent from the clip are false positives.
    """
    if len(predictions) != len(ground_truth):
        raise ValueError(f"score_sources: {len(predictions)} predictions for {len(ground_truth)} ground-truth clips")
    tp = fp = fn = 0
    for caption, clip in zip(predictions, ground_truth):
        true = {src["name"] for src in clip["sources"]}
        extra = [
            SourceSpec(src["name"], "", False, tuple(src.get("synonyms", ())), ())
            for src in clip["sources"]
            if src["name"] not in {s.name for s in catalogue}
        ]
        named = named_sources(caption or "", (*catalogue, *extra))
        tp += len(named & true)
        fp += len(named - true)
        fn += len(true - named)
    return {
        "source_recall": tp / (tp + fn) if tp + fn else 0.0,
        "source_precision": tp / (tp + fp) if tp + fp else 0.0,
        "true_positives": tp,
        "false_positives": fp,
        "false_negatives": fn,
        "num_clips": len(predictions),
    }


def load_ground_truth(dataset_dir: str | os.PathLike, split: str, corpus: str = "synthcaps") -> list[dict]:
    """The ground-truth records of ``split``, in the row order of ``clotho_captions_{split}.csv``."""
    root = Path(dataset_dir)
    gt_path = root / f"{corpus}_ground_truth_{split}.jsonl"
    csv_path = root / f"clotho_captions_{split}.csv"
    for path in (gt_path, csv_path):
        if not path.is_file():
            raise FileNotFoundError(f"{corpus} file not found: '{path}'")
    records = {}
    with gt_path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if line.strip():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ValueError(f"'{gt_path}' line {line_no}: invalid JSON ({err})") from None
                records[rec["file_name"]] = rec
    with csv_path.open(encoding="utf-8", newline="") as f:
        names = [row["file_name"] for row in csv.DictReader(f)]
    missing = [n for n in names if n not in records]
    if missing:
        raise ValueError(f"'{gt_path}' has no record for '{missing[0]}' listed in '{csv_path}'")
    return [records[n] for n in names]
