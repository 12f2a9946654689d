"""Configuration of the audio-prefix captioning model (`model_type="audiocap_prefix"`): audio -> encoder -> projector ->
soft tokens placed in a prompt read by any causal language model (GPT-2, Llama, Qwen2, SmolLM, Phi, ...).

Ships with every saved prefix model beside `modeling_audiocap_prefix.py` (imports only `transformers` and its sibling
`configuration_audiocap.py`, which checks the transformers release), so a folder loads with `trust_remote_code=True`
where `hf_audiocap` is not installed.

Layout: an `encoder` sub-config (the built-in `AudioCapEncoderConfig` or a supported pretrained audio encoder, as for
the encoder-decoder model) and an `lm` sub-config (any config `AutoModelForCausalLM` can build), the projector settings,
the prompt, and the LoRA settings. The prompt is kept twice: as text (`prompt_template`, with `audio_placeholder` where
the audio goes) and as the token ids of the text before and after the placeholder, rendered once from the LM's
tokenizer (through its chat template when it has one) by `set_prompt(tokenizer)`: the model itself never tokenizes,
so what it was trained on is what a saved folder runs.
"""

from __future__ import annotations

import copy
from typing import Any

from transformers import AutoConfig, PretrainedConfig
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

from .configuration_audiocap import (
    AUDIOCAP_ENCODER_TYPE,
    SUPPORTED_ENCODER_TYPES,
    AudioCapConfigError,
    AudioCapEncoderConfig,
    resolve_style,
    style_token,
)

AUDIO_PLACEHOLDER = "<audio>"
DEFAULT_PROMPT = f"{AUDIO_PLACEHOLDER} Describe the sound in one sentence:"
# the layers LoRA adapts when a recipe names none: the attention query and value projections (Llama, SmolLM, Qwen2,
# Phi name them q_proj / v_proj); GPT-2 and Phi-3 fuse query, key and value into one layer
DEFAULT_LORA_TARGETS = {"gpt2": ["c_attn"], "phi3": ["qkv_proj"]}
DEFAULT_LORA_TARGET = ["q_proj", "v_proj"]


def _resolve(value: Any, key: str, default_type: str, builtin: type[PretrainedConfig] | None = None):
    """A sub-config given as None / dict / config -> a config object (the built-in encoder class resolved here, so a
    fresh interpreter where our types are not registered with `AutoConfig` still builds it)."""
    if isinstance(value, PretrainedConfig):
        # a copy: PretrainedConfig.__init__ sets its attention settings on the sub-configs, and this one may be a
        # live model's own
        return copy.deepcopy(value)
    if value is not None and not isinstance(value, dict):
        raise AudioCapConfigError(
            f"AudioCapPrefixConfig.{key} must be a dict, a PretrainedConfig or None, got {type(value).__name__}"
        )
    fields = dict(value or {})
    model_type = fields.pop("model_type", default_type)
    if builtin is not None and model_type == builtin.model_type:
        return builtin(**fields)
    try:
        return AutoConfig.for_model(model_type, **fields)
    except ValueError as err:
        raise AudioCapConfigError(f"AudioCapPrefixConfig.{key}: unknown model_type {model_type!r}") from err


class AudioCapPrefixConfig(PretrainedConfig):
    r"""Audio prefix + causal LM.

    Args:
        encoder (`dict` or `PretrainedConfig`, *optional*): audio encoder sub-config (default: `AudioCapEncoderConfig()`;
            or a supported pretrained encoder: whisper, AST, CLAP audio, wav2vec2-style).
        lm (`dict` or `PretrainedConfig`, *optional*): the causal LM's config (default: transformers' `LlamaConfig()`;
            recipes give a pretrained LM's config or a small one to train from scratch). Its type must have a
            causal-LM head (`AutoModelForCausalLM`).
        projector_stack (`int`): encoder frames concatenated into one soft token (frame stacking: k times fewer
            tokens, each k times wider going into the MLP; SLAM-AAC's downsampling).
        projector_hidden_size (`int`, *optional*): width of the projector MLP (default: the LM's hidden size).
        projector_activation (`str`): activation between the two MLP layers.
        num_queries (`int`): 0 = one soft token per stacked frame group (the audio span grows with the clip);
            > 0 = that many learned queries attend to the stacked frames (Q-Former style) and become the audio span,
            whatever the clip's length.
        query_layers / query_heads (`int`): cross-attention layers and heads of the learned queries.
        prompt_template (`str`): the instruction, with `audio_placeholder` exactly once where the audio goes.
        audio_placeholder (`str`): the marker of the audio span in `prompt_template`.
        prompt_before_ids / prompt_after_ids (`list[int]`): the template's token ids before / after the audio span,
            rendered by `set_prompt(tokenizer)` (through the tokenizer's chat template when it has one).
        freeze_encoder (`bool`): freeze the audio encoder (the projector always trains).
        freeze_lm (`bool`): freeze the LM's own weights (LoRA adapters, when `lora_rank > 0`, still train).
        lora_rank (`int`): rank of the LoRA adapters on the LM (0 = no LoRA); through peft.
        lora_alpha (`float`, *optional*): LoRA scaling numerator (default: 2 x rank).
        lora_dropout (`float`): dropout on the LoRA branch.
        lora_target_modules (`list[str]`, *optional*): names of the LM's linear layers to adapt (default: the attention
            query/value projections of the LM's type).
        lm_name_or_path (`str`, *optional*): the pretrained LM this model starts from (recorded for the model card and
            for checkpoints without the LM's weights, `save_lm_weights=False`).
        save_lm_weights (`bool`): False: `save_pretrained` leaves out the LM's own (frozen) weights, and
            `from_pretrained` reads them from `lm_name_or_path` again: a checkpoint of a LoRA run then holds the
            adapters, the projector and the encoder only (needs `freeze_lm` and `lm_name_or_path`).
        pad_token_id / bos_token_id / eos_token_id: the LM tokenizer's special ids (eos ends every caption).
        styles (`dict[str, list[int]]`, *optional*): the corpus styles the model was trained with (docs/mixtures.md):
            each name and the token ids of its text, `"NAME > "`, which the LM reads right after the prompt, before
            the caption (as MU-NLPC's "clotho > caption:"); rendered by `set_styles(tokenizer, names)`.
        default_style (`str`, *optional*): the style used when none is asked for.
    """

    model_type = "audiocap_prefix"
    sub_configs = {"encoder": AutoConfig, "lm": AutoConfig}

    encoder: dict | PretrainedConfig | None = None
    lm: dict | PretrainedConfig | None = None
    projector_stack: int = 4
    projector_hidden_size: int | None = None
    projector_activation: str = "gelu"
    num_queries: int = 0
    query_layers: int = 1
    query_heads: int = 4
    prompt_template: str = DEFAULT_PROMPT
    audio_placeholder: str = AUDIO_PLACEHOLDER
    prompt_before_ids: list[int] | None = None
    prompt_after_ids: list[int] | None = None
    freeze_encoder: bool = False
    freeze_lm: bool = True
    lora_rank: int = 0
    lora_alpha: float | int | None = None
    lora_dropout: float | int = 0.0
    lora_target_modules: list[str] | None = None
    lm_name_or_path: str | None = None
    save_lm_weights: bool = True
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    styles: dict[str, list[int]] | None = None
    default_style: str | None = None
    tie_word_embeddings: bool = False  # nothing of the wrapper is tied; the LM ties its own

    def __post_init__(self, **kwargs: Any):
        # the sub-configs first: PretrainedConfig's own post-init sets the attention settings on them
        self.encoder = _resolve(self.encoder, "encoder", AUDIOCAP_ENCODER_TYPE, AudioCapEncoderConfig)
        if self.encoder.model_type not in SUPPORTED_ENCODER_TYPES:
            raise AudioCapConfigError(
                f"AudioCapPrefixConfig.encoder: unsupported model_type {self.encoder.model_type!r}; expected one of "
                f"{', '.join(SUPPORTED_ENCODER_TYPES)}"
            )
        self.lm = _resolve(self.lm, "lm", "llama")
        if self.lm.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
            raise AudioCapConfigError(
                f"AudioCapPrefixConfig.lm: model_type {self.lm.model_type!r} has no causal-LM head "
                "(AutoModelForCausalLM cannot build it): give a decoder-only language model such as llama, qwen2, gpt2"
            )
        if self.prompt_template.count(self.audio_placeholder) != 1:
            raise AudioCapConfigError(
                f"AudioCapPrefixConfig.prompt_template must contain the audio placeholder {self.audio_placeholder!r} "
                f"exactly once, got {self.prompt_template!r}"
            )
        for name in ("projector_stack", "query_layers"):
            if int(getattr(self, name)) < 1:
                raise AudioCapConfigError(f"AudioCapPrefixConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.num_queries < 0 or self.lora_rank < 0:
            raise AudioCapConfigError("AudioCapPrefixConfig: num_queries and lora_rank must be >= 0")
        hidden = self.projector_hidden_size or self.lm.hidden_size
        if self.num_queries and hidden % self.query_heads:
            raise AudioCapConfigError(
                f"AudioCapPrefixConfig: the projector width ({hidden}) must be divisible by query_heads "
                f"({self.query_heads})"
            )
        if not self.save_lm_weights and not (self.freeze_lm and self.lm_name_or_path):
            raise AudioCapConfigError(
                "AudioCapPrefixConfig: save_lm_weights=False needs a frozen pretrained LM (freeze_lm=True and "
                "lm_name_or_path), whose weights can be read again from where they came from"
            )
        for name in ("projector_stack", "num_queries", "query_layers", "query_heads", "lora_rank"):
            setattr(self, name, int(getattr(self, name)))
        self.prompt_before_ids = list(self.prompt_before_ids or [])
        self.prompt_after_ids = list(self.prompt_after_ids or [])
        self.lora_target_modules = list(self.lora_target_modules) if self.lora_target_modules else None
        if self.styles:
            self.styles = {str(k): [int(i) for i in v] for k, v in self.styles.items()}
            self.default_style = self.default_style or next(iter(self.styles))
        else:
            self.styles = None
        for name in ("pad_token_id", "bos_token_id", "eos_token_id"):  # default to the LM's own
            if getattr(self, name) is None:
                setattr(self, name, getattr(self.lm, name, None))
        self.is_encoder_decoder = False
        super().__post_init__(**kwargs)

    @property
    def vocab_size(self) -> int:
        """The LM's vocabulary: one number, kept on the LM's config (what `resize_token_embeddings` sets here)."""
        return self.lm.vocab_size

    @vocab_size.setter
    def vocab_size(self, value: int) -> None:
        self.lm.vocab_size = value

    @property
    def lm_max_positions(self) -> int | None:
        """How many positions the LM reads (None: its config states no limit)."""
        for name in ("max_position_embeddings", "n_positions"):
            value = getattr(self.lm, name, None)
            if isinstance(value, int):
                return value
        return None

    @property
    def lora_targets(self) -> list[str]:
        return self.lora_target_modules or DEFAULT_LORA_TARGETS.get(self.lm.model_type, DEFAULT_LORA_TARGET)

    def set_prompt(self, tokenizer, template: str | None = None) -> None:
        """Renders `template` (default: `prompt_template`) with the LM's `tokenizer` into `prompt_before_ids` /
        `prompt_after_ids`, and takes the tokenizer's eos / pad / bos ids. With a chat template the instruction is a
        user turn followed by the assistant's generation prompt; without one, the text itself after the bos token."""
        template = self.prompt_template if template is None else template
        if template.count(self.audio_placeholder) != 1:
            raise AudioCapConfigError(
                f"prompt template must contain the audio placeholder {self.audio_placeholder!r} exactly once, "
                f"got {template!r}"
            )
        if tokenizer.eos_token_id is None:
            raise AudioCapConfigError(
                f"the LM tokenizer ({type(tokenizer).__name__}) has no end-of-sequence token: captions could never "
                "end (set tokenizer.eos_token)"
            )
        if getattr(tokenizer, "chat_template", None):
            text = tokenizer.apply_chat_template(
                [{"role": "user", "content": template}], tokenize=False, add_generation_prompt=True
            )
            bos = []
        else:
            text, bos = template, [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
        before, after = text.split(self.audio_placeholder)
        self.prompt_template = template
        self.prompt_before_ids = bos + tokenizer(before, add_special_tokens=False)["input_ids"] if before else bos
        self.prompt_after_ids = tokenizer(after, add_special_tokens=False)["input_ids"] if after else []
        self.eos_token_id = tokenizer.eos_token_id
        self.bos_token_id = tokenizer.bos_token_id
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def set_styles(self, tokenizer, names: list[str]) -> None:
        """Adds the styles `names` (styles already known keep their ids) and makes the first the default. A style is
        its token `<style:NAME>` when the tokenizer has it within the LM's vocabulary (a word-level LM trained from
        scratch, sized with it), else its text `"NAME > "` rendered with the LM's `tokenizer`."""
        styles = dict(self.styles or {})
        vocab = tokenizer.get_vocab()
        for name in names:
            token = vocab.get(style_token(name))
            text = [token] if token is not None and token < self.vocab_size else None
            styles.setdefault(name, text or tokenizer(f"{name} > ", add_special_tokens=False)["input_ids"])
        self.styles, self.default_style = styles, names[0]

    def style_prompt_ids(self, style: str | None) -> list[int]:
        """The token ids of a style's text (None: `default_style`; [] for a model without styles), in one line if the
        model has no styles or not this one."""
        return resolve_style(self.styles, style, self.default_style) or []

    @property
    def style_order(self) -> list[str]:
        """The styles in the order of a batch's `style_index` (sorted by name, as `config.json` saves them)."""
        return sorted(self.styles or {})


__all__ = ["AUDIO_PLACEHOLDER", "AudioCapPrefixConfig"]
