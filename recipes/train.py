"""Fine-tune an audio captioning model.

    accelerate launch recipes/train.py recipes/synthcaps/demo.yaml [--key value ...]

parse -> data -> processor -> model -> trainer -> train -> test -> save (+ model card, Hub)
"""

import signal
import sys


def _interrupted(*_):
    print("\ntrain.py: interrupted", file=sys.stderr)
    sys.exit(130)


if __name__ == "__main__":  # Ctrl-C while torch and transformers load (the first seconds) ends as it does later
    signal.signal(signal.SIGINT, _interrupted)

import logging
import os

import transformers
from transformers import set_seed

from hf_audiocap.data.mixture import recipe_styles
from hf_audiocap.metrics.report import format_report
from hf_audiocap.training.arguments import parse_recipe
from hf_audiocap.training.builders import (
    build_model,
    build_processor,
    build_trainer,
    describe_splits,
    evaluate_test_splits,
    frozen_cache,
    load_recipe_datasets,
    prepare_features,
)
from hf_audiocap.training.callbacks import fit_summary
from hf_audiocap.training.checkpoints import exit_on_interrupt
from hf_audiocap.training.model_card import write_model_card
from hf_audiocap.training.trainer import end_distributed

logger = logging.getLogger("hf_audiocap.train")


def main(argv=None):
    signal.signal(signal.SIGINT, signal.default_int_handler)  # from here Ctrl-C is a KeyboardInterrupt again
    # 1. Recipe: YAML + command-line overrides, checked before anything runs.
    model_args, data_args, training_args = parse_recipe(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    transformers.utils.logging.set_verbosity(training_args.get_process_log_level())
    set_seed(training_args.seed)

    # 2. Data: clips with grouped references; training expands them to (clip, caption) pairs.
    # Several corpora (`corpora`): their training clips drawn by weight, their held-out splits kept apart.
    clips = load_recipe_datasets(data_args)
    logger.info("clips: %s", describe_splits(clips))

    # 3. Processor (log-mel front end + tokenizer) and 4. model, with the recipe's styles (docs/mixtures.md).
    styles = recipe_styles(data_args)
    processor = build_processor(model_args, clips[data_args.train_split], styles)
    model = build_model(model_args, processor, training_args, styles)
    logger.info("model: %.2fM parameters", model.num_parameters() / 1e6)
    clips = prepare_features(clips, processor, data_args, training_args)  # precompute_features: cached log-mels

    # 5. Trainer: teacher forcing on labels, generation + caption metrics at evaluation.
    trainer = build_trainer(model, processor, clips, data_args, training_args)

    # 6. Train (resuming from `--resume_from_checkpoint PATH|last`: `last` is the newest COMPLETE checkpoint). Ctrl-C:
    # one line naming that checkpoint and the command resuming from it, exit code 130.
    with exit_on_interrupt(
        training_args.output_dir, argv, os.path.relpath(__file__), training_args.process_index == 0
    ):
        train_result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_model()
    trainer.log_metrics("train", train_result.metrics)
    trainer.save_metrics("train", train_result.metrics)
    trainer.save_state()
    # best epoch and over-fitting, from training vs validation cross-entropy (see training_curves.png)
    fit = fit_summary(trainer.state.log_history, training_args.overfitting_patience)
    logger.info("%s", fit["line"])
    if (cache := frozen_cache(model)) is not None:
        logger.info("frozen encoder: %d clips encoded, %d served from its cache", cache.misses, cache.hits)

    # 7. Test: caption metrics, the references' own CIDEr-D, samples beside references (per corpus with `corpora`).
    metrics, reports = evaluate_test_splits(trainer, clips, data_args, training_args.output_dir)
    if trainer.is_world_process_zero():
        for title, own, test_clips, predictions in reports:
            print(
                f"\n{title}" if title else "",
                format_report(own, test_clips, predictions, fit=fit),
                sep="\n",
                flush=True,
            )

    # 8. Model card, Hub.
    if trainer.is_world_process_zero():
        write_model_card(training_args.output_dir, model_args, data_args, training_args, metrics, fit=fit)
    if training_args.push_to_hub:
        trainer.push_to_hub()
    if trainer.is_world_process_zero():
        print(f"\nSaved to {training_args.output_dir}. Try it: make app MODEL={training_args.output_dir}")
    end_distributed()
    return metrics


if __name__ == "__main__":
    try:
        main()
    except (ValueError, FileNotFoundError) as err:
        print(f"train.py: error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:  # before or after training (during it, exit_on_interrupt says how to resume)
        _interrupted()
