"""The split report of `recipes/train.py` (its test split) and `recipes/evaluate.py` (any split, from a saved model or
a predictions file), built here only: what it holds (the caption metrics plus :func:`split_scores`: the references' own
CIDEr-D, SynthCaps' source scores, realsounds' class scores), its files (:func:`write_report`), the table printed at
the end of training (:func:`format_report`), and `recipes/evaluate.py`'s whole run (:func:`evaluate_main`)."""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import re
from pathlib import Path

from hf_audiocap.data.atomic import write_atomic

from .core import (
    COCO_NAMES,
    LEARNED_NAMES,
    cider_d_leave_one_out,
    compute_caption_metrics,
    resolve_metrics,
    spider_max,
)


def read_prediction_file(path: str | Path) -> tuple[dict[str, str], dict[str, list[str]]]:
    """`id -> caption` and `id -> candidates` from a JSON-lines file: one object per clip with `id` and `prediction`
    (or `caption`), and optionally `candidates`, a non-empty list of captions (an n-best list) scored by SPIDEr-max;
    without `prediction` the first candidate is the prediction, and a given `prediction` must be one of the
    candidates (so SPIDEr-max >= SPIDEr)."""
    out, candidates = {}, {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                clip_id = str(row["id"])
                cands = row.get("candidates")
                if cands is not None:
                    if not isinstance(cands, list) or not cands or not all(isinstance(c, str) for c in cands):
                        raise ValueError(f"{path}:{lineno}: `candidates` must be a non-empty list of strings")
                    candidates[clip_id] = cands
                    pred = row.get("prediction", row.get("caption", cands[0]))
                    if pred not in cands:
                        raise ValueError(f"{path}:{lineno}: the prediction {pred!r} is not one of the `candidates`")
                else:
                    pred = row.get("prediction", row["caption"] if "caption" in row else row["prediction"])
                out[clip_id] = str(pred)
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as err:
                raise ValueError(
                    f"{path}:{lineno}: expected a JSON object with `id` and `prediction` ({err})"
                ) from None
    return out, candidates


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


# the per-caption file's score columns, in this order (those computed): every sentence-level metric, then SPIDEr-max
PER_CAPTION_SCORES = COCO_NAMES + LEARNED_NAMES + ("spider_max", "best_candidate")


def write_report(
    output_dir: str | Path,
    stem: str,
    clips,
    predictions: list[str],
    metrics: dict,
    *,
    per_clip: dict | None = None,
    corpus: str = "",
    candidates: list[list[str]] | None = None,
) -> tuple[Path, Path]:
    """`<stem>_predictions.jsonl` (id, prediction, references per clip), `<stem>_per_caption.csv` (:func:`per_caption_csv`,
    from `per_clip`: `{metric: [score per clip]}`, the scorers' own per-clip values; `corpus`: the dataset's name) and
    `<stem>_metrics.json` (the numeric metrics) in `output_dir`, each written whole or not at all (a temporary file
    beside it, then a rename), the metrics last: an interrupted run leaves the previous report intact. Returns the
    paths of the predictions and the metrics. `candidates`: each clip's candidates (reranking), written as its
    `candidates` list, which `--predictions` reads back for SPIDEr-max."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    predictions_path, metrics_path = out / f"{stem}_predictions.jsonl", out / f"{stem}_metrics.json"
    rows = [
        {"id": clip_id, "prediction": pred, "references": refs}
        for clip_id, pred, refs in zip(clips["id"], predictions, clips["captions"])
    ]
    for row, cands in zip(rows, candidates or []):
        row["candidates"] = cands
    lines = [json.dumps(row, ensure_ascii=False) + "\n" for row in rows]
    numbers = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
    write_atomic(predictions_path, "".join(lines))
    write_atomic(out / f"{stem}_per_caption.csv", per_caption_csv(clips, predictions, per_clip or {}, corpus))
    write_atomic(metrics_path, json.dumps(numbers, indent=2, sort_keys=True) + "\n")
    tables = {k: v for k, v in metrics.items() if k.endswith("class_table") and isinstance(v, str)}
    if tables:  # realsounds: the per-class tables, one section per split
        text = "\n\n".join(f"## {k.removesuffix('class_table').rstrip('_') or stem}\n\n{v}" for k, v in tables.items())
        write_atomic(out / f"{stem}_classes.md", text + "\n")
    return predictions_path, metrics_path


def per_caption_csv(clips, predictions: list[str], per_clip: dict, corpus: str = "") -> str:
    """The per-caption file: one row per clip with `id`, `corpus` (the dataset), `style` (empty: reserved for style
    tokens), `prediction`, `references` (a JSON list: a caption may hold any separator) and one column per
    sentence-level score that was computed (BLEU-1..4, METEOR, ROUGE-L, CIDEr-D, SPICE, SPIDEr, sbert_sim, FER,
    FENSE, SPIDEr-FL; with candidates, `spider_max` and `best_candidate`, the index of the candidate that reached
    it), in that order; a metric that was not computed has no column. Scores are written as Python floats
    (`repr`: exact)."""
    names = [n for n in PER_CAPTION_SCORES if n in per_clip]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["id", "corpus", "style", "prediction", "references", *names])
    for i, (clip_id, pred, refs) in enumerate(zip(clips["id"], predictions, clips["captions"])):
        refs_json = json.dumps(list(refs), ensure_ascii=False)
        writer.writerow([clip_id, corpus, "", pred, refs_json, *(per_clip[n][i] for n in names)])
    return buf.getvalue()


def format_report(metrics: dict, clips, predictions: list[str], num_samples: int = 8, fit: dict | None = None) -> str:
    """The metrics table, what the validation loss said of the run (`fit`: `callbacks.fit_summary`) and some generated
    captions beside their references, as printed by the demo."""
    names = ["bleu_1", "bleu_2", "bleu_3", "bleu_4", "meteor", "rouge_l", "cider_d", "spice", "spider", "spider_max"]
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


def load_split(args):
    """The clips of `args.split` (dataset, dataset_path, audio_dir, max_clips, max_duration, skip_missing), loaded as
    the recipes load them (DataArguments' checks, SynthCaps/realsounds preparation). Imported here, so importing the
    metrics loads neither the training nor the inference stack."""
    from hf_audiocap.training.arguments import DataArguments
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
        skip_missing=getattr(args, "skip_missing", False),
    )
    return load_recipe_datasets(data_args)[args.split]


def training_references(args) -> list[list[str]] | None:
    """The training split's references, which `vocab_novel` compares the captions with (when the metrics ask for it):
    `args.train_split`, by default the dataset's usual one; None without one (the metric is then said unavailable)."""
    if "vocab_novel" not in resolve_metrics(getattr(args, "metrics", None)):
        return None
    split = getattr(args, "train_split", None) or ("development" if args.dataset == "clotho" else "train")
    if split.lower() == "none" or split == args.split:
        return None
    try:
        return list(load_split(argparse.Namespace(**{**vars(args), "split": split, "max_clips": None}))["captions"])
    except (FileNotFoundError, KeyError, ValueError) as err:
        if getattr(args, "train_split", None):  # asked for by name: its problem is the user's to know
            raise ValueError(f"--train_split {split}: {err}") from None
        return None


def load_captioner_for(args):
    """The shared `Captioner` of `args.model` with the generation options given (num_beams, max_length,
    no_repeat_content_words, rerank*, style; the model's own where absent)."""
    from hf_audiocap.inference.captioner import Captioner

    gen = {k: v for k, v in {"num_beams": args.num_beams, "max_length": args.max_length}.items() if v}
    if getattr(args, "no_repeat_content_words", None) is not None:
        gen["no_repeat_content_words"] = args.no_repeat_content_words
    for key in ("rerank", "rerank_candidates", "rerank_sampling", "rerank_clap_model", "rerank_evidence", "style"):
        if getattr(args, key, None) is not None:  # reranking (hf_audiocap.rerank), a style (docs/mixtures.md)
            gen[key] = getattr(args, key)
    captioner = Captioner.from_pretrained(
        args.model, trust_remote_code=args.trust_remote_code, batch_size=args.batch_size, generate_kwargs=gen
    )
    captioner.check_style(gen.get("style"))  # one line before any clip is captioned
    captioner.check_rerank()
    return captioner


def evaluate_main(args) -> dict:
    """`recipes/evaluate.py`: caption a split with a saved model (`args.model`, through the shared `Captioner`) or read
    a predictions file (`args.predictions`), score it, print the metrics and write the report files
    (`evaluate_<split>_*`). Returns the metrics."""
    selection = getattr(args, "metrics", None)
    resolve_metrics(selection)  # an unknown preset or metric stops here, before any caption is generated
    clips = load_split(args)
    candidates = None  # an n-best list per clip, from a predictions file's `candidates`
    if args.model:
        from hf_audiocap.data.audio import load_audio
        from hf_audiocap.rerank import RerankSettings

        captioner = load_captioner_for(args)
        settings = RerankSettings.pop_from(dict(captioner.generate_kwargs), captioner.model.generation_config)
        if settings is None:
            predictions = captioner.caption_sources(clips["audio"], max_duration=args.max_duration)
        else:  # reranked: the candidates go to the predictions file, and SPIDEr-max is scored from them
            settings.load()  # a folder that is not a CLAP model: one line before any clip
            sources, sr, reranked = list(clips["audio"]), captioner.sampling_rate, []
            for start in range(0, len(sources), captioner.batch_size):
                batch = sources[start : start + captioner.batch_size]
                waves = [load_audio(a, sr, max_duration=args.max_duration) for a in batch]
                reranked += captioner.caption_candidates(waves)
            predictions, candidates = [r.caption for r in reranked], [r.candidates for r in reranked]
    else:
        by_id, candidates_by_id = read_prediction_file(args.predictions)
        missing = [i for i in clips["id"] if i not in by_id]
        if missing:
            raise ValueError(
                f"{args.predictions}: no prediction for {len(missing)} of {len(clips)} clips (first: {missing[:5]})"
            )
        predictions = [by_id[i] for i in clips["id"]]
        if candidates_by_id:
            without = [i for i in clips["id"] if i not in candidates_by_id]
            if without:
                raise ValueError(
                    f"{args.predictions}: `candidates` for some clips but not for {len(without)} of {len(clips)} "
                    f"(first: {without[:5]}): give them for every clip or for none"
                )
            candidates = [candidates_by_id[i] for i in clips["id"]]
    # logs what is unavailable; the per-clip scores are the corpus scores' by-products
    scores = compute_caption_metrics(
        predictions, clips["captions"], metrics=selection, per_clip=True, training_references=training_references(args)
    )
    per_clip = scores.get("per_clip", {})
    metrics = {k: v for k, v in scores.items() if isinstance(v, (int, float))}
    if candidates is not None and "spider" in resolve_metrics(selection):  # SPIDEr-max goes with SPIDEr
        best = spider_max(candidates, clips["captions"])
        if best["spider_max"] is not None:
            metrics["spider_max"] = best["spider_max"]
            per_clip.update(best["per_clip"])
    metrics.update(split_scores(predictions, clips, args.dataset, args.dataset_path, args.split))

    # Files named from the split (a plain name: nothing from the dataset can leave the output folder).
    out = Path(args.output_dir or args.model or Path(args.predictions).parent)
    stem = "evaluate_" + re.sub(r"[^\w.-]", "_", args.split).lstrip(".")
    predictions_path, metrics_path = write_report(
        out, stem, clips, predictions, metrics, per_clip=per_clip, corpus=args.dataset, candidates=candidates
    )
    numbers = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}  # the class table is text
    width = max(len(k) for k in numbers)
    print("\n".join(f"{k:<{width}}  {v:.4f}" for k, v in sorted(numbers.items())))
    print(f"\nWrote {predictions_path} and {metrics_path}")
    return metrics
