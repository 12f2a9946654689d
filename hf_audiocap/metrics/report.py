"""The split report of `recipes/train.py` (its test split) and `recipes/evaluate.py` (any split, from a saved model or
a predictions file), built here only: what it holds (the caption metrics plus :func:`split_scores`: the references' own
CIDEr-D, SynthCaps' source scores, realsounds' class scores), its files (:func:`write_report`), the table printed at
the end of training (:func:`format_report`), and `recipes/evaluate.py`'s whole run (:func:`evaluate_main`)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from hf_audiocap.data.atomic import write_atomic

from .core import cider_d_leave_one_out, compute_caption_metrics, resolve_metrics


def read_predictions(path: str | Path) -> dict[str, str]:
    """`id -> caption` from a JSON-lines file (`prediction` or `caption` per line)."""
    out = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                out[str(row["id"])] = str(row.get("prediction", row.get("caption")))
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise ValueError(
                    f"{path}:{lineno}: expected a JSON object with `id` and `prediction` ({err})"
                ) from None
    return out


def split_scores(predictions: list[str], clips, dataset: str, dataset_path, split: str) -> dict:
    """What a report adds to the caption metrics: the references' own leave-one-out CIDEr-D (when every clip has two
    references or more) and, on SynthCaps, source recall/precision against the ground truth of these clips."""
    scores = {}
    if all(len(refs) >= 2 for refs in clips["captions"]):  # each reference scored against the others
        scores["cider_d_references"] = cider_d_leave_one_out(clips["captions"])
    if dataset == "synthcaps":
        from hf_audiocap.data.synthcaps import load_ground_truth, score_sources

        by_name = {record["file_name"]: record for record in load_ground_truth(dataset_path, split)}
        missing = [clip_id for clip_id in clips["id"] if clip_id not in by_name]
        if missing:
            raise ValueError(f"{dataset_path}: no SynthCaps ground truth for {missing[0]!r} of split {split!r}")
        scores.update(score_sources(predictions, [by_name[clip_id] for clip_id in clips["id"]]))
    if dataset == "realsounds":
        from hf_audiocap.data.realsounds.scoring import class_scores

        scores.update(class_scores(predictions, list(clips["id"]), dataset_path, split))
    return scores


def write_report(output_dir: str | Path, stem: str, clips, predictions: list[str], metrics: dict) -> tuple[Path, Path]:
    """`<stem>_predictions.jsonl` (id, prediction, references per clip) and `<stem>_metrics.json` (the numeric
    metrics) in `output_dir`, each written whole or not at all (a temporary file beside it, then a rename): an
    interrupted run leaves the previous report intact. Returns the two paths."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    predictions_path, metrics_path = out / f"{stem}_predictions.jsonl", out / f"{stem}_metrics.json"
    lines = [
        json.dumps({"id": clip_id, "prediction": pred, "references": refs}, ensure_ascii=False) + "\n"
        for clip_id, pred, refs in zip(clips["id"], predictions, clips["captions"])
    ]
    numbers = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
    write_atomic(predictions_path, "".join(lines))
    write_atomic(metrics_path, json.dumps(numbers, indent=2, sort_keys=True) + "\n")
    tables = {k: v for k, v in metrics.items() if k.endswith("class_table") and isinstance(v, str)}
    if tables:  # realsounds: the per-class tables, one section per split
        text = "\n\n".join(f"## {k.removesuffix('class_table').rstrip('_') or stem}\n\n{v}" for k, v in tables.items())
        write_atomic(out / f"{stem}_classes.md", text + "\n")
    return predictions_path, metrics_path


def format_report(metrics: dict, clips, predictions: list[str], num_samples: int = 8, fit: dict | None = None) -> str:
    """The metrics table, what the validation loss said of the run (`fit`: `callbacks.fit_summary`) and some generated
    captions beside their references, as printed by the demo."""
    names = ["bleu_1", "bleu_2", "bleu_3", "bleu_4", "meteor", "rouge_l", "cider_d", "spice", "spider"]
    names += ["spider_fl", "fer", "sbert_sim", "fense", "vocab_references", "vocab_novel"]
    names += ["cider_d_references", "source_recall", "source_precision", "vocab_size", "mean_length", "loss"]
    names += ["class_recall", "class_precision", "baseline_class_recall", "baseline_class_precision"]
    names += ["single_class_accuracy", "baseline_single_class_accuracy"]
    rows = [f"{'metric':<22}{'test':>10}", "-" * 32]
    for name in names:
        value = metrics.get(f"test_{name}")
        if value is None:
            continue
        rows.append(f"{name:<22}{value:>10.4f}" if not float(value).is_integer() else f"{name:<22}{value:>10.0f}")
    if "test_loss" in metrics:
        rows.append(f"{'perplexity':<22}{math.exp(min(metrics['test_loss'], 50)):>10.3f}")
    if fit is not None:
        rows += ["", f"Training: {fit['line']}."]
    if isinstance(metrics.get("test_class_table"), str):
        rows += [
            "",
            "Classes named in the test captions (class-word recall and precision):",
            metrics["test_class_table"],
        ]
    rows.append("")
    rows.append("Generated captions beside their references:")
    for i in range(min(num_samples, len(predictions))):
        rows.append(f"  {clips[i]['id']}")
        rows.append(f"    generated : {predictions[i]}")
        for ref in clips[i]["captions"][:2]:
            rows.append(f"    reference : {ref}")
    return "\n".join(rows)


def evaluate_main(args) -> dict:
    """`recipes/evaluate.py`: caption a split with a saved model (`args.model`, through the shared `Captioner`) or read
    a predictions file (`args.predictions`), score it, print the metrics and write the report files
    (`evaluate_<split>_*`). Returns the metrics."""
    # The recipes' own data loading (DataArguments' checks, SynthCaps/realsounds preparation): imported here, so
    # importing the metrics loads neither the training nor the inference stack.
    from hf_audiocap.training.arguments import DataArguments
    from hf_audiocap.training.builders import load_recipe_datasets

    selection = getattr(args, "metrics", None)
    resolve_metrics(selection)  # an unknown preset or metric stops here, before any caption is generated
    data_args = DataArguments(
        dataset=args.dataset,
        dataset_path=args.dataset_path,
        audio_dir=args.audio_dir,
        train_split=args.split,
        eval_split=None,
        test_split=None,
        max_train_clips=args.max_clips,
        max_duration=args.max_duration,
        skip_missing=args.skip_missing,
    )
    clips = load_recipe_datasets(data_args)[args.split]
    if args.model:
        from hf_audiocap.inference.captioner import Captioner

        gen = {k: v for k, v in {"num_beams": args.num_beams, "max_length": args.max_length}.items() if v}
        captioner = Captioner.from_pretrained(
            args.model, trust_remote_code=args.trust_remote_code, batch_size=args.batch_size, generate_kwargs=gen
        )
        predictions = captioner.caption_sources(clips["audio"], max_duration=args.max_duration)
    else:
        by_id = read_predictions(args.predictions)
        missing = [i for i in clips["id"] if i not in by_id]
        if missing:
            raise ValueError(
                f"{args.predictions}: no prediction for {len(missing)} of {len(clips)} clips (first: {missing[:5]})"
            )
        predictions = [by_id[i] for i in clips["id"]]
    scores = compute_caption_metrics(predictions, clips["captions"], metrics=selection)  # logs what is unavailable
    metrics = {k: v for k, v in scores.items() if isinstance(v, (int, float))}
    metrics.update(split_scores(predictions, clips, args.dataset, args.dataset_path, args.split))

    # Files named from the split (a plain name: nothing from the dataset can leave the output folder).
    out = Path(args.output_dir or args.model or Path(args.predictions).parent)
    stem = "evaluate_" + re.sub(r"[^\w.-]", "_", args.split).lstrip(".")
    predictions_path, metrics_path = write_report(out, stem, clips, predictions, metrics)
    width = max(len(k) for k in metrics)
    print("\n".join(f"{k:<{width}}  {v:.4f}" for k, v in sorted(metrics.items())))
    print(f"\nWrote {predictions_path} and {metrics_path}")
    return metrics
