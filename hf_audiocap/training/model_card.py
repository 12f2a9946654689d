"""The generated model card: README.md of the output folder, which is the Hub repository."""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

METRIC_NAMES = {
    "fense": "FENSE",
    "spider_fl": "SPIDEr-FL",
    "spider": "SPIDEr",
    "cider_d": "CIDEr-D",
    "spice": "SPICE",
    "meteor": "METEOR",
    "rouge_l": "ROUGE-L",
    "bleu_1": "BLEU-1",
    "bleu_4": "BLEU-4",
    "fer": "Fluency error rate",
    "source_recall": "Source recall",
    "source_precision": "Source precision",
}

TEMPLATE = """---
{card_data}
---

# {model_name}

An audio captioning model: an audio clip goes in, one English sentence describing it comes out.
{trained_on}

## Model
- Architecture: `{model_class}` ({architecture}), {num_parameters:.2f}M parameters.
- Input: log-mel spectrogram of 16 kHz mono audio (any length; padded per batch with a frame mask).
- Output: a caption, generated with {generation}.

## Results on `{test_split}`
{results_table}{styles_note}

Metrics are computed the COCO-caption way (PTB tokenization, pycocoevalcap scorers).
{spice_note}

## Usage
```python
import hf_audiocap  # pip install hf_audiocap: registers the "audio-captioning" pipeline task with transformers
from transformers import pipeline

captioner = pipeline("audio-captioning", model="{repo_id}")
print(captioner("clip.wav")["caption"])  # long recordings: captioner("rec.wav", window_s=10)["segments"]
```
Or with the model classes:
```python
import soundfile as sf
from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor

processor = AutoProcessor.from_pretrained("{repo_id}", trust_remote_code=True)
model = AutoModelForSpeechSeq2Seq.from_pretrained("{repo_id}", trust_remote_code=True)
audio, sr = sf.read("clip.wav")  # mono, resampled to {sampling_rate} Hz
inputs = processor(audio=audio, sampling_rate={sampling_rate}, return_tensors="pt")
print(processor.batch_decode(model.generate(**inputs), skip_special_tokens=True)[0])
```

## Intended use and limits
For describing everyday sound scenes in research and demos. Captions are only as good as the training
data: a model trained on {dataset} describes sounds like those in {dataset} and may name sources wrongly
on other audio. Do not use it for safety-critical monitoring or to infer anything about people.

## Training
{objective}Hyper-parameters: learning rate {learning_rate}, batch size {batch_size}, {length},
label smoothing {label_smoothing}, seed {seed}. `training_curves.png` in this repository shows the
training and validation cross-entropy and perplexity on the same scale, the optimised objective and the main caption
metric over the run. {fit}
"""


def write_model_card(output_dir, model_args, data_args, training_args, metrics: dict, model=None, fit=None) -> Path:
    """Writes README.md with model-index metrics, datasets, intended use and a usage snippet; `fit`
    (`callbacks.fit_summary`) adds the best epoch and whether over-fitting was seen."""
    output_dir = Path(output_dir)
    repo_id = training_args.hub_model_id or output_dir.name
    split = data_args.test_split or "test"
    clean = {k.removeprefix("test_"): v for k, v in metrics.items() if isinstance(v, (int, float))}
    # one column per corpus (`corpora`: metrics prefixed with each corpus's name), else one
    corpora = _corpora(data_args)
    columns = [(c.name, c.data.get("dataset", data_args.dataset), f"{c.name}_") for c in corpora] or [
        (data_args.dataset, data_args.dataset, "")
    ]
    eval_results = [
        EvalResult(
            task_type="audio-captioning",
            task_name="Audio captioning",
            dataset_type=dataset,
            dataset_name=name,
            dataset_split=split,
            metric_type=key,
            metric_name=metric,
            metric_value=round(float(clean[prefix + key]), 4),
        )
        for name, dataset, prefix in columns
        for key, metric in METRIC_NAMES.items()
        if prefix + key in clean
    ]
    datasets = list(dict.fromkeys(dataset for _, dataset, _ in columns))
    card_data = ModelCardData(
        language="en",
        license="apache-2.0",
        library_name="transformers",
        pipeline_tag="audio-to-text",
        tags=["audio-captioning", "hf_audiocap", *datasets],
        datasets=datasets,
        model_name=repo_id,
        eval_results=eval_results or None,
    )
    rows = ["| metric | " + " | ".join(name for name, _, _ in columns) + " |", "|---|" + "---|" * len(columns)]
    names = {**METRIC_NAMES, "cider_d_references": "CIDEr-D of the references (leave-one-out)"}
    for key, metric in names.items():
        values = [clean.get(prefix + key) for _, _, prefix in columns]
        if any(v is not None for v in values):
            rows.append(f"| {metric} | " + " | ".join("" if v is None else f"{v:.4f}" for v in values) + " |")
    styles = getattr(getattr(model, "config", None), "styles", None) if model is not None else None
    default_style = getattr(getattr(model, "config", None), "default_style", None) if model is not None else None
    if model is None:  # either model kind: hf_audiocap registers both with the Auto class
        from transformers import AutoModelForSpeechSeq2Seq

        model = AutoModelForSpeechSeq2Seq.from_pretrained(output_dir)
        styles = getattr(model.config, "styles", None)
        default_style = getattr(model.config, "default_style", None)
    gen = model.generation_config
    card = TEMPLATE.format(
        card_data=card_data.to_yaml(),
        model_name=repo_id,
        trained_on=_trained_on(data_args, corpora),
        dataset=" and ".join(datasets),
        test_split=split,
        styles_note=(
            f"\n\nStyles ({', '.join(styles)}): the model writes in the style of the corpus it is asked for, "
            f'`captioner(clip, style="{next(iter(styles))}")` (default: {default_style}).'
            if styles
            else ""
        ),
        model_class=type(model).__name__,
        architecture=_architecture(model.config),
        num_parameters=model.num_parameters() / 1e6,
        generation=f"{'beam search (' + str(gen.num_beams) + ' beams)' if (gen.num_beams or 1) > 1 else 'greedy search'}, "
        f"max length {gen.max_new_tokens or gen.max_length}",
        results_table="\n".join(rows) if len(rows) > 2 else "No test evaluation was run.",
        spice_note=""
        if "spice" in clean
        else "SPICE (and so SPIDEr) was unavailable when this card was written (Stanford CoreNLP jars absent).",
        repo_id=repo_id,
        sampling_rate=16000,
        learning_rate=training_args.learning_rate,
        batch_size=training_args.per_device_train_batch_size * max(1, training_args.world_size),
        length=_training_length(training_args),
        label_smoothing=training_args.label_smoothing_factor,
        seed=training_args.seed,
        fit=_fit_sentence(fit),
        objective=_objective(model_args, training_args),
    )
    path = output_dir / "README.md"
    ModelCard(card).save(path)
    return path


def _objective(model_args, training_args) -> str:
    """What the run optimised, in one sentence: cross-entropy, or SCST with the captions its reward ranked."""
    if not getattr(training_args, "scst", False):
        return "Cross-entropy (teacher forcing). "
    k = training_args.scst_samples
    ranked = (
        f"each clip's {k} best beams" if training_args.scst_sampling == "beam" else f"{k} captions sampled per clip"
    )
    return (
        f"Self-critical sequence training (CIDEr-D reward of {ranked}) of the cross-entropy model "
        f"`{model_args.model_name_or_path}`. "
    )


def _training_length(training_args) -> str:
    """`max_steps` overrides the epochs in the Trainer, so the card says whichever ended the run."""
    if training_args.max_steps and training_args.max_steps > 0:
        return f"{training_args.max_steps} steps"
    return f"{training_args.num_train_epochs:g} epochs"


def _corpora(data_args) -> list:
    if not data_args.corpora:
        return []
    from hf_audiocap.data.mixture import parse_corpora

    return parse_corpora(data_args.corpora)


def _trained_on(data_args, corpora) -> str:
    """The data sentence: the corpus (its folder, split and preparation record), or each corpus of a mixture."""
    if not corpora:
        return (
            f"Trained with hf_audiocap on **{data_args.dataset}** (`{data_args.dataset_path}`, split "
            f"`{data_args.train_split}`).{_corpus_card(data_args.dataset_path)}"
        )
    total = sum(c.weight for c in corpora)
    lines = [f"Trained with hf_audiocap on {len(corpora)} corpora, each training clip drawn from one by weight "
             f"({data_args.mixture_stopping_strategy}):"]  # fmt: skip
    for c in corpora:
        path = c.data.get("dataset_path")
        lines.append(
            f"- **{c.name}**: {c.data.get('dataset', data_args.dataset)} (`{path}`), {c.weight / total:.0%} of the "
            f"draws.{_corpus_card(path)}"
        )
    return "\n".join(lines)


def _architecture(config) -> str:
    if config.model_type != "audiocap_prefix":
        return f"encoder {config.encoder.model_type}, decoder {config.decoder.model_type}"
    lm = config.lm_name_or_path or f"a {config.lm.model_type} trained from scratch"
    lora = f", LoRA rank {config.lora_rank}" if config.lora_rank else ""
    # the LM's weights are saved in this folder (model.safetensors), whatever it started from
    return f"encoder {config.encoder.model_type}, its projected states a prompt prefix of the causal LM {lm}{lora}"


def _fit_sentence(fit: dict | None) -> str:
    """The best epoch and whether over-fitting was seen, as one sentence."""
    if not fit or not fit.get("evaluations"):
        return ""
    return fit["line"][0].upper() + fit["line"][1:] + "."


def _corpus_card(dataset_path) -> str:
    """The record `hf-audiocap prepare` left in the data folder (source, version, clips per split, missing clips),
    so a score names the exact data; empty for a folder prepared otherwise."""
    from hf_audiocap.data.prepare.card import card_summary

    path = Path(dataset_path)  # a folder (clotho, audiocaps) or the manifest in one (macs, wavcaps)
    summary = card_summary(path if path.is_dir() else path.parent) if path.exists() else None
    return f"\n{summary}" if summary else ""
