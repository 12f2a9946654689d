"""The recipe's audio-prefix model (`model_kind: prefix`): a saved one, or a new one from an audio encoder (built-in or
pretrained) and a causal LM (pretrained, `decoder_name_or_path`, or built from `config_overrides.lm` and trained from
scratch), with the prompt rendered by the recipe's tokenizer (the LM's own, or the word-level one of a from-scratch LM).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from transformers import AutoConfig, AutoModelForCausalLM, Seq2SeqTrainingArguments

from hf_audiocap.configuration_audiocap_prefix import AudioCapPrefixConfig
from hf_audiocap.encoders_audiocap import load_pretrained_encoder
from hf_audiocap.hub import check_pretrained
from hf_audiocap.modeling_audiocap_prefix import AudioCapPrefixForConditionalGeneration
from hf_audiocap.training.arguments import ModelArguments, check_config_fields, set_decoding_settings


def build_prefix_model(model_args: ModelArguments, processor, training_args: Seq2SeqTrainingArguments):
    tok = processor.tokenizer
    remote = {"trust_remote_code": model_args.trust_remote_code}
    for name in (model_args.model_name_or_path, model_args.encoder_name_or_path, model_args.decoder_name_or_path):
        if name:
            check_pretrained(name)
    if model_args.model_name_or_path:
        model = AudioCapPrefixForConditionalGeneration.from_pretrained(model_args.model_name_or_path, **remote)
    else:
        overrides = dict(model_args.config_overrides)
        encoder_fields, lm_fields = overrides.pop("encoder", {}), overrides.pop("lm", {})
        encoder = lm = None
        if model_args.encoder_name_or_path:
            name = model_args.encoder_name_or_path
            encoder_config = AutoConfig.from_pretrained(name)
            check_config_fields("config_overrides.encoder", encoder_config, encoder_fields)
            encoder_config.update(encoder_fields)
            encoder = load_pretrained_encoder(name, encoder_config, use_safetensors=True)
            encoder_config = encoder.config
        else:
            encoder_config = {"num_mel_bins": processor.feature_extractor.feature_size, **encoder_fields}
        if model_args.decoder_name_or_path:  # its config as it is (ModelArguments refuses config_overrides.lm)
            lm = AutoModelForCausalLM.from_pretrained(model_args.decoder_name_or_path, use_safetensors=True, **remote)
            lm_config = lm.config
        else:  # from scratch: sized by the recipe's tokenizer, with its special ids
            special = {
                "pad_token_id": tok.pad_token_id,
                "bos_token_id": tok.bos_token_id,
                "eos_token_id": tok.eos_token_id,
            }
            lm_config = {"model_type": "llama", **lm_fields, "vocab_size": len(tok), **special}
        config = AudioCapPrefixConfig(
            encoder=encoder_config, lm=lm_config, lm_name_or_path=model_args.decoder_name_or_path, **overrides
        )
        config.set_prompt(tok)
        model = AudioCapPrefixForConditionalGeneration(config, encoder=encoder, lm=lm)
    if model_args.freeze_encoder:
        model.config.freeze_encoder = True
        model.set_trainable()
    gen = model.generation_config
    if training_args.generation_max_length:  # caption tokens: the prompt is not counted
        gen.max_new_tokens = training_args.generation_max_length
    if training_args.generation_num_beams:
        gen.num_beams = training_args.generation_num_beams
    set_decoding_settings(gen, training_args)
    return model


def check_prompt_fits(model, processor, max_duration: float, max_label_length: int) -> None:
    """Refuses, before training, a recipe whose longest row cannot fit the LM: the prompt around the audio span of a
    `max_duration` clip (measured by running the encoder and projector on a silent clip of that length) plus a
    `max_label_length`-token caption, against the LM's positions."""
    limit = model.config.lm_max_positions
    if limit is None:
        return
    sampling_rate = processor.feature_extractor.sampling_rate
    inputs = processor(audio=np.zeros(int(max_duration * sampling_rate), dtype=np.float32), return_tensors="pt",
                       sampling_rate=sampling_rate)  # fmt: skip
    inputs = {k: v.to(model.device) for k, v in inputs.items()}
    with torch.no_grad():
        _, span_mask = model.embed_audio(
            inputs.get("input_features"), inputs.get("attention_mask"), inputs.get("input_values")
        )
    span = int(span_mask.sum())
    prompt = len(model.config.prompt_before_ids) + span + len(model.config.prompt_after_ids)
    if prompt + max_label_length > limit:
        raise ValueError(
            f"a {max_duration:g} s clip gives a prompt of {prompt} positions ({span} audio tokens) and a caption up to "
            f"{max_label_length} tokens, {prompt + max_label_length} in all, but the {model.config.lm.model_type} LM "
            f"reads at most {limit}: lower max_duration or max_label_length, or raise projector_stack (or num_queries)"
        )


def export_merged(source, target) -> None:
    """A trained prefix folder with LoRA adapters -> a folder with the adapters merged into the LM's weights and its
    processor: it loads without peft (and, saved with the LM's weights, without the base LM's own folder). A missing
    folder, a folder of another model kind and one without adapters are refused in one line."""
    from transformers import AutoProcessor

    source = Path(source)
    if not source.is_dir():
        raise FileNotFoundError(f"{source}: no such folder")
    if not (source / "config.json").is_file():
        raise FileNotFoundError(f"{source}: no config.json, not a saved model folder")
    config = json.loads((source / "config.json").read_text())
    kind = config.get("model_type")
    if kind != AudioCapPrefixConfig.model_type:
        raise ValueError(
            f"{source} holds a model of model_type {kind!r}, not an audio-prefix model "
            f"({AudioCapPrefixConfig.model_type!r}, model_kind: prefix): only those have LoRA adapters to merge"
        )
    if not config.get("lora_rank"):
        raise ValueError(f"{source} has no LoRA adapters (lora_rank 0): nothing to merge, it loads without peft as is")
    if not config.get("save_lm_weights", True) and config.get("lm_name_or_path"):
        check_pretrained(config["lm_name_or_path"])  # the LM's own weights, saved apart from the adapters
    model = AudioCapPrefixForConditionalGeneration.from_pretrained(source)
    model.merge_and_unload().save_pretrained(target)
    AutoProcessor.from_pretrained(source).save_pretrained(target)
