"""Score a saved model, or a predictions file, on a split.

    python recipes/evaluate.py --model outputs/synthcaps-demo --dataset synthcaps --dataset_path data/synthcaps --split test
    python recipes/evaluate.py --predictions preds.jsonl --dataset clotho --dataset_path data/clotho --split evaluation

Writes `<output_dir>/evaluate_<split>_predictions.jsonl` (id, prediction, references) and `evaluate_<split>_metrics.json`.
"""

import argparse
import sys

from hf_audiocap.metrics.report import evaluate_main


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="saved model folder or Hub id to generate captions with")
    src.add_argument("--predictions", help="JSON lines with `id` and `prediction` (or `caption`) per clip")
    src.add_argument("--ratings", help="folder of ratings saved by app.py: print their summary")
    p.add_argument(
        "--dataset", default="synthcaps", help="loader: synthcaps, clotho, audiocaps, manifest, audiofolder, hf"
    )
    p.add_argument("--dataset_path", default="data/synthcaps")
    p.add_argument("--audio_dir", default=None, help="AudioCaps: folder of the clips")
    p.add_argument("--split", default="test")
    p.add_argument("--output_dir", default=None, help="where to write results (default: the model folder)")
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--num_beams", type=int, default=None)
    p.add_argument("--max_length", type=int, default=None)
    p.add_argument(
        "--no_repeat_content_words",
        default=None,
        type=lambda v: {"true": True, "false": False}[v.lower()],
        help="true/false: forbid repeating a content word while generating (default: the model's saved setting)",
    )
    p.add_argument(
        "--rerank",
        default=None,
        help="generate candidates and pick one (hf_audiocap.rerank): logprob, mbr, clap or weighted, e.g. "
        "'logprob:0.5,mbr:0.5'; 'none' turns off a model's saved setting. Candidates go to the predictions file and "
        "SPIDEr-max is reported beside SPIDEr",
    )
    p.add_argument("--rerank_candidates", type=int, default=None, help="candidates per clip (default: 5)")
    p.add_argument(
        "--rerank_sampling", default=None, help="true/false or a top_p: sample the candidates instead of beam n-best"
    )
    p.add_argument("--rerank_clap_model", default=None, help="CLAP folder or Hub id for the 'clap' scorer")
    p.add_argument(
        "--rerank_evidence",
        type=int,
        default=None,
        help="mbr: measure the candidates against N captions sampled from the model (default: the other candidates)",
    )
    p.add_argument("--style", default=None, help="the corpus style to caption in (a model trained with styles)")
    p.add_argument(
        "--train_split",
        default=None,
        help="the split whose references vocab_novel compares the captions with (default: development for clotho, "
        "else train; 'none': skip)",
    )
    p.add_argument("--max_clips", type=int, default=None)
    p.add_argument("--max_duration", type=float, default=60.0)
    p.add_argument("--skip_missing", action="store_true")
    p.add_argument("--trust_remote_code", action="store_true", help="allow a Hub repository's code to run")
    p.add_argument(
        "--metrics",
        default="coco",
        help="caption metrics: a preset (coco: BLEU, METEOR, ROUGE-L, CIDEr-D, SPICE, SPIDEr; dcase2024: METEOR, CIDEr-D, "
        "SPICE, SPIDEr, SPIDEr-FL, FER, FENSE, vocabulary) or metric names joined by commas",
    )
    return p.parse_args(argv)


if __name__ == "__main__":
    try:
        args = parse_args()
        if args.ratings:
            from hf_audiocap.inference.ratings import print_ratings_summary

            print_ratings_summary(args.ratings, args.output_dir)
        else:
            evaluate_main(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"evaluate.py: error: {err}", file=sys.stderr)
        sys.exit(2)
