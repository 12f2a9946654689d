"""The split report of `recipes/train.py` (its test split) and `recipes/evaluate.py` (any split, from a saved model or
a predictions file): caption metrics, the references' own CIDEr-D, SynthCaps' source scores, and the two files of the
report, written by one function."""

from __future__ import annotations

import json
import re
from pathlib import Path

from transformers import EarlyStoppingCallback

from hf_audiocap.data.atomic import write_atomic
from hf_audiocap.training.arguments import DataArguments


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
    from hf_audiocap.metrics import cider_d_leave_one_out

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


def evaluate_test_split(trainer, clips, data_args: DataArguments, output_dir: str | Path, all_clips=None) -> dict:
    """`recipes/train.py`'s test report: the trainer's evaluation (`test_`-prefixed caption metrics and loss) plus
    :func:`split_scores`, written by the main process as `test_predictions.jsonl` and `test_metrics.json` (keys without
    the prefix); each of `extra_test_splits` (from `all_clips`) likewise, its keys prefixed with its name, its
    predictions in `<split>_predictions.jsonl`. Returns the prefixed metrics."""
    # training is over: early stopping watches `eval_` metrics and would report those of a `test_` evaluation missing
    trainer.pop_callback(EarlyStoppingCallback)
    metrics = trainer.evaluate(clips, metric_key_prefix="test")
    predictions = trainer.last_predictions
    extra = split_scores(predictions, clips, data_args.dataset, data_args.dataset_path, data_args.test_split)
    metrics.update({f"test_{k}": v for k, v in extra.items()})
    for split in data_args.extra_test_splits:  # each further split: its metrics prefixed with its name
        more = trainer.evaluate(all_clips[split], metric_key_prefix=split)
        more.update(
            {f"{split}_{k}": v for k, v in split_scores(trainer.last_predictions, all_clips[split], data_args.dataset,
                                                        data_args.dataset_path, split).items()}
        )  # fmt: skip
        metrics.update({f"test_{k}": v for k, v in more.items()})
        # the single-recording accuracy keeps its own name: it is a figure of this split only
        metrics.update({f"test_{k.removeprefix(split + '_')}": v for k, v in more.items() if "single_class_acc" in k})
        if trainer.is_world_process_zero():
            own = {k.removeprefix(f"{split}_"): v for k, v in more.items()}
            write_report(output_dir, split, all_clips[split], trainer.last_predictions, own)
    if trainer.is_world_process_zero():
        write_report(output_dir, "test", clips, predictions, {k.removeprefix("test_"): v for k, v in metrics.items()})
    return metrics


def evaluate_main(args) -> dict:
    from hf_audiocap.metrics import compute_caption_metrics, resolve_metrics
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
