"""What `recipes/evaluate.py` delegates to: predictions (generated or read) scored against a split."""

from __future__ import annotations

import json
import re
from pathlib import Path

from hf_audiocap.inference.cli_caption import write_atomic
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


def evaluate_main(args) -> dict:
    from hf_audiocap.metrics import cider_d_leave_one_out, compute_caption_metrics
    from hf_audiocap.training.builders import load_recipe_datasets

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
    metrics = compute_caption_metrics(predictions, clips["captions"])
    metrics = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
    if all(len(refs) >= 2 for refs in clips["captions"]):  # each reference scored against the others
        metrics["cider_d_references"] = cider_d_leave_one_out(clips["captions"])
    if args.dataset == "synthcaps":
        from hf_audiocap.data.synthcaps import load_ground_truth, score_sources

        truth = load_ground_truth(args.dataset_path, args.split)
        if args.max_clips:
            truth = truth[: args.max_clips]
        metrics.update(score_sources(predictions, truth))

    out = Path(args.output_dir or args.model or Path(args.predictions).parent)
    out.mkdir(parents=True, exist_ok=True)
    # Only these two files, named from the split (a plain name: nothing from the dataset can leave `out`), each written
    # whole or not at all (a temporary file beside it, then a rename): a failed run leaves earlier results intact.
    stem = "evaluate_" + re.sub(r"[^\w.-]", "_", args.split).lstrip(".")
    predictions_path, metrics_path = out / f"{stem}_predictions.jsonl", out / f"{stem}_metrics.json"
    lines = [
        json.dumps({"id": clip_id, "prediction": pred, "references": refs}, ensure_ascii=False) + "\n"
        for clip_id, pred, refs in zip(clips["id"], predictions, clips["captions"])
    ]
    write_atomic(str(predictions_path), "".join(lines))
    write_atomic(str(metrics_path), json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    width = max(len(k) for k in metrics)
    print("\n".join(f"{k:<{width}}  {v:.4f}" for k, v in sorted(metrics.items())))
    print(f"\nWrote {predictions_path} and {metrics_path}")
    return metrics
