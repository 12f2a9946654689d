"""Audio-prefix captioning model: audio -> encoder -> projector -> soft tokens in a prompt -> any causal LM.

Ships with every saved prefix model: this file imports only `torch`, `transformers` (public APIs) and its siblings
(relative imports), plus `peft` when the config asks for LoRA adapters, so `save_pretrained` copies the code beside the
weights and a folder loads with `AutoModelForSpeechSeq2Seq.from_pretrained(folder, trust_remote_code=True)` without
`hf_audiocap` installed. The LM is whatever `AutoModelForCausalLM` builds from `config.lm` (GPT-2, Llama, Qwen2,
SmolLM, Phi, ...); its weights are saved with the folder.

One row of the LM's input, for one caption of one clip:

    [prompt before the audio][audio span: the projected clip][prompt after the audio][caption tokens][eos]

The prompt ids come from the config (rendered once from the LM's tokenizer, see `AudioCapPrefixConfig.set_prompt`).
Training rows are right-padded, so every real position has the same position id alone or in a batch; generation rows
are left-padded and the LM's own `generate(inputs_embeds=..., attention_mask=...)` does the rest (greedy, beam search,
sampling, every logits processor). `labels` are the caption tokens only, as for the encoder-decoder model, and the
returned `logits[:, t]` are the LM's prediction of caption token `t` (read at the position before it: the library's
causal shift), so the Trainer, the loss parts it logs and SCST see the same contract for both model kinds.
"""

from __future__ import annotations

import copy
import dataclasses

import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSpeechSeq2Seq,
    GenerationConfig,
    GenerationMixin,
    PreTrainedModel,
)
from transformers.activations import ACT2FN
from transformers.utils import ModelOutput

from .configuration_audiocap import AUDIOCAP_ENCODER_TYPE, AudioCapConfigError
from .configuration_audiocap_prefix import AudioCapPrefixConfig
from .encoders_audiocap import (
    LEGACY_KEY_BIASES,
    AudioCapAttention,
    AudioCapEncoder,
    AudioCapFeedForward,
    build_pretrained_encoder,
    encode_pretrained,
    encoder_kind,
    encoder_output_dim,
    key_padding_mask,
)
from .modeling_audiocap import caption_loss, keep_present_layers


@dataclasses.dataclass
class AudioCapPrefixOutput(ModelOutput):
    r"""
    loss (`torch.FloatTensor` of shape `()`): the training objective (label-smoothed when `smoothing` > 0).
    logits (`torch.FloatTensor` of shape `(batch, caption_len, vocab)`): `logits[:, t]` predicts caption token `t`
        (`labels[:, t]`); without labels, one step: the prediction of the first caption token.
    caption_loss (`torch.FloatTensor` of shape `()`): in training, the plain cross-entropy of the caption tokens
        (unsmoothed, detached), what the validation loss measures.
    hidden_states (`tuple(torch.FloatTensor)`): the LM's hidden states over the whole rows, when asked for.
    audio_embeds (`torch.FloatTensor` of shape `(clips, audio_len, lm_hidden)`): the projected audio span per clip.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    caption_loss: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    audio_embeds: torch.FloatTensor | None = None


# ----------------------------------------------------------------------------------------------------------------------
# Projector: stacked frames -> MLP (-> learned queries) -> LM width
# ----------------------------------------------------------------------------------------------------------------------
class AudioCapQueryLayer(nn.Module):
    """Pre-LN layer of the learned queries: cross-attention to the stacked frames, then a feed-forward block."""

    def __init__(self, width: int, heads: int, activation: str):
        super().__init__()
        self.attn_layer_norm = nn.LayerNorm(width)
        self.attn = AudioCapAttention(width, heads, cross=True)
        self.mlp_layer_norm = nn.LayerNorm(width)
        self.mlp = AudioCapFeedForward(width, 4 * width, activation, 0.0)

    def forward(self, queries: torch.Tensor, frames: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        attn, _ = self.attn(self.attn_layer_norm(queries), key_value_states=frames, attention_mask=mask)
        queries = queries + attn
        return queries + self.mlp(self.mlp_layer_norm(queries))


class AudioCapPrefixProjector(nn.Module):
    """Encoder states -> the audio span at the LM's width: `stack` consecutive frames concatenated (k times fewer
    tokens), Linear + activation, optionally `num_queries` learned queries attending to them, Linear to the LM width."""

    def __init__(self, in_dim: int, config: AudioCapPrefixConfig):
        super().__init__()
        width = config.projector_hidden_size or config.lm.hidden_size
        self.stack = config.projector_stack
        self.fc1 = nn.Linear(in_dim * self.stack, width)
        self.act = ACT2FN[config.projector_activation]
        self.queries = self.query_layers = None
        if config.num_queries:
            self.queries = nn.Parameter(torch.randn(config.num_queries, width) * 0.02)
            self.query_layers = nn.ModuleList(
                AudioCapQueryLayer(width, config.query_heads, config.projector_activation)
                for _ in range(config.query_layers)
            )
        self.fc2 = nn.Linear(width, config.lm.hidden_size)

    def forward(self, states: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        bsz, length, dim = states.shape
        if mask is None:
            mask = torch.ones(bsz, length, dtype=torch.bool, device=states.device)
        # padded frames zeroed, so a clip's last (partial) group is the same alone or padded in a batch
        states = states * mask[..., None].to(states.dtype)
        pad = (-length) % self.stack
        states, mask = F.pad(states, (0, 0, 0, pad)), F.pad(mask, (0, pad), value=False)
        hidden = self.act(self.fc1(states.reshape(bsz, -1, self.stack * dim)))
        mask = mask.view(bsz, -1, self.stack).any(-1)
        if self.queries is not None:
            frames, frame_mask = hidden, key_padding_mask(mask)
            hidden = self.queries.to(frames.dtype).expand(bsz, -1, -1)
            for layer in self.query_layers:
                hidden = layer(hidden, frames, frame_mask)
            mask = torch.ones(hidden.shape[:2], dtype=torch.bool, device=hidden.device)
        return self.fc2(hidden), mask


# ----------------------------------------------------------------------------------------------------------------------
# LoRA through peft
# ----------------------------------------------------------------------------------------------------------------------
def add_lora(lm: PreTrainedModel, config: AudioCapPrefixConfig) -> PreTrainedModel:
    """LoRA adapters injected into the LM in place (peft's `inject_adapter_in_model`: the LM stays the transformers
    model, so its `generate` and weight tying are untouched); only the adapters of the LM are left trainable."""
    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError as err:
        raise ImportError("LoRA adapters (lora_rank > 0) need peft: pip install 'hf_audiocap[llm]'") from err
    targets = config.lora_targets
    names = [name for name, _ in lm.named_modules()]
    missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
    if missing:
        raise AudioCapConfigError(
            f"LoRA target module(s) {', '.join(missing)} match no layer of the {config.lm.model_type} LM "
            f"(its attention layers are named e.g. {', '.join(sorted({n.rsplit('.', 1)[-1] for n in names if 'attn' in n})[:6])})"
        )
    lora = LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha if config.lora_alpha is not None else 2 * config.lora_rank,
        lora_dropout=config.lora_dropout,
        target_modules=targets,
        fan_in_fan_out=config.lm.model_type == "gpt2",  # GPT-2's Conv1D layers store their weight transposed
    )
    return inject_adapter_in_model(lora, lm)


def merge_lora(lm: nn.Module) -> int:
    """Merges every LoRA layer into its base layer and puts the base layer back in its place; returns how many."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    layers = [(name, module) for name, module in lm.named_modules() if isinstance(module, BaseTunerLayer)]
    for name, module in layers:
        module.merge()
        parent, _, child = name.rpartition(".")
        setattr(lm.get_submodule(parent), child, module.get_base_layer())
    return len(layers)


# ----------------------------------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------------------------------
class AudioCapPrefixPreTrainedModel(PreTrainedModel):
    config_class = AudioCapPrefixConfig
    base_model_prefix = "audiocap_prefix"
    main_input_name = "input_features"
    input_modalities = ("audio", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _keys_to_ignore_on_load_unexpected = LEGACY_KEY_BIASES


class AudioCapPrefixForConditionalGeneration(AudioCapPrefixPreTrainedModel, GenerationMixin):
    """Audio encoder + projector + causal LM. Inputs as for `AudioCapForConditionalGeneration`: `input_features
    (batch, n_mels, frames)` + frame `attention_mask` (or `input_values` + sample mask for waveform encoders), `labels
    (rows, len)`: caption ids ending with eos, padded with -100, and `encoder_index (rows,)` when a clip has several
    captions (each clip is encoded and projected once). `generate` returns the caption ids only (no prompt)."""

    accepts_loss_kwargs = True

    def __init__(self, config: AudioCapPrefixConfig, encoder: PreTrainedModel | None = None, lm=None):
        if getattr(config, "model_type", None) != AudioCapPrefixConfig.model_type:
            # model_type, not isinstance: trust_remote_code may load the config class from another copy of its file
            kind, cls = getattr(config, "model_type", None), type(config)
            raise AudioCapConfigError(
                f"config must be an AudioCapPrefixConfig (model_type {AudioCapPrefixConfig.model_type!r}), got a "
                f"{cls.__module__}.{cls.__qualname__} of model_type {kind!r}: a folder of another model kind loads "
                "with its own class (AutoModelForSpeechSeq2Seq picks it)"
            )
        super().__init__(config)
        if encoder is None:
            builtin = config.encoder.model_type == AUDIOCAP_ENCODER_TYPE
            encoder = AudioCapEncoder(config.encoder) if builtin else build_pretrained_encoder(config.encoder)
        # what is saved is what runs: the parts' own config objects, set after PreTrainedModel.__init__, which would
        # otherwise hand a given part's config the composite's attention settings
        self.config.encoder = encoder.config
        self.config.lm = lm.config if lm is not None else config.lm
        self.encoder_kind = encoder_kind(self.config.encoder)
        self.encoder = encoder
        # set by the recipes (`cache_encoder_outputs`) for a frozen pretrained encoder; never saved with the model
        self.frozen_cache = None
        self.projector = AudioCapPrefixProjector(encoder_output_dim(self.config.encoder), self.config)
        self.lm = lm if lm is not None else AutoModelForCausalLM.from_config(self.config.lm)
        self.config.lm = self.lm.config
        # captions are generated with this model's generation config alone: GenerationMixin fills unset fields from the
        # LM's own config, whose settings (a chat LM's sampling, a `max_length` of 2048 that makes transformers warn on
        # every call next to our `max_new_tokens`) are the LM's defaults for chat, not for a caption
        self.lm.generation_config = GenerationConfig(
            bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id
        )
        self.post_init()
        keep_present_layers(self)
        # after post_init, so the adapters keep peft's initialisation (B = 0: the adapted LM starts as the LM itself)
        if config.lora_rank:
            self.lm = add_lora(self.lm, config)
        self.set_trainable()
        self.generation_config = GenerationConfig(
            bos_token_id=config.bos_token_id,
            eos_token_id=config.eos_token_id,
            pad_token_id=config.pad_token_id,
            max_new_tokens=30,  # a caption is rarely over 25 tokens
        )

    def set_trainable(self) -> None:
        """The projector always trains; the encoder unless `freeze_encoder`; the LM's own weights unless `freeze_lm`
        (its LoRA adapters, when it has them, always)."""
        for param in self.encoder.parameters():
            param.requires_grad_(not self.config.freeze_encoder)
        for name, param in self.lm.named_parameters():
            param.requires_grad_(not self.config.freeze_lm or "lora_" in name)
        for param in self.projector.parameters():
            param.requires_grad_(True)

    def get_encoder(self, modality: str | None = None) -> nn.Module:
        return self.encoder

    def get_decoder(self) -> PreTrainedModel:
        return self.lm

    def get_input_embeddings(self) -> nn.Module:
        return self.lm.get_input_embeddings()

    def get_output_embeddings(self) -> nn.Module:
        return self.lm.get_output_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.lm.set_input_embeddings(value)

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.lm.set_output_embeddings(value)

    def resize_token_embeddings(self, new_num_tokens=None, pad_to_multiple_of=None, mean_resizing=True):
        """The LM's own `resize_token_embeddings` (new tokens for the tokenizer): its config's `vocab_size`, which is
        this config's, follows."""
        return self.lm.resize_token_embeddings(new_num_tokens, pad_to_multiple_of, mean_resizing)

    def lm_weight_names(self) -> list[str]:
        """The state-dict names of the LM's own weights (not its LoRA adapters): what `save_lm_weights=False` leaves
        out of a checkpoint."""
        return ["lm." + name for name in self.lm.state_dict() if "lora_" not in name]

    def save_pretrained(self, save_directory, *args, **kwargs):
        """`PreTrainedModel.save_pretrained`; with `config.save_lm_weights=False`, without the LM's own weights (the
        Trainer's checkpoints included, which pass their own `state_dict`)."""
        if not self.config.save_lm_weights:
            state_dict = kwargs.get("state_dict") or self.state_dict()
            left_out = set(self.lm_weight_names())
            kwargs["state_dict"] = {k: v for k, v in state_dict.items() if k not in left_out}
        return super().save_pretrained(save_directory, *args, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """`PreTrainedModel.from_pretrained`; a checkpoint saved without the LM's weights (`save_lm_weights=False`)
        gets them from `AutoModelForCausalLM.from_pretrained(config.lm_name_or_path)`, each into its layer (a LoRA
        layer keeps it as `base_layer`). Safetensors only, as for the encoder-decoder model, unless
        `use_safetensors=False` is passed."""
        kwargs.setdefault("use_safetensors", True)
        model = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        if model.config.save_lm_weights:
            return model
        base = AutoModelForCausalLM.from_pretrained(
            model.config.lm_name_or_path, dtype=model.lm.dtype, use_safetensors=kwargs["use_safetensors"]
        ).state_dict()
        with torch.no_grad():
            for name, value in model.lm.state_dict(keep_vars=True).items():
                if "lora_" not in name:
                    value.copy_(base[name.replace(".base_layer.", ".")])
        return model

    def merge_and_unload(self) -> AudioCapPrefixForConditionalGeneration:
        """LoRA merged into the LM's weights (in place): the model then holds plain LM layers and its config no LoRA,
        so `save_pretrained` writes a folder that loads without peft. Returns the model."""
        if self.config.lora_rank:
            merge_lora(self.lm)
            self.config.lora_rank = 0
            self.config.save_lm_weights = True  # merged weights are no longer those lm_name_or_path holds
            self.set_trainable()
        return self

    # ------------------------------------------------------------------------------------------------------------------
    # inputs
    # ------------------------------------------------------------------------------------------------------------------
    def embed_audio(self, input_features=None, attention_mask=None, input_values=None):
        """Audio -> `(audio_embeds (clips, span, lm_hidden), span_mask (clips, span) bool)`."""
        feats = input_values if self.encoder_kind == "waveform" else input_features
        if feats is None:  # be lenient about the name of the audio input
            feats = input_features if input_features is not None else input_values
        if feats is None:
            raise ValueError("the prefix model needs `input_features` (or `input_values` for waveform encoders)")
        if attention_mask is not None and bool(attention_mask.bool().all()):
            attention_mask = None
        if self.encoder_kind == "builtin":
            out = self.encoder(feats, attention_mask, return_dict=True)
            states, mask = out.last_hidden_state, out.attention_mask
        elif self.frozen_cache is not None:
            states, mask = self.frozen_cache(self.encoder_kind, self.encoder, feats, attention_mask)
        else:
            states, mask, _, _ = encode_pretrained(self.encoder_kind, self.encoder, feats, attention_mask)
        embeds, mask = self.projector(states, mask)
        return embeds.to(self.get_input_embeddings().weight.dtype), mask

    def prompt_rows(
        self, audio_embeds, audio_mask, captions=None, caption_lengths=None, padding_side="right", style_index=None
    ):
        """The LM's input rows `[before][audio span][after][style][caption]`, padded on `padding_side`:
        `(inputs_embeds, attention_mask, caption_starts)`, `caption_starts[i]` being where row i's caption begins (its
        prompt length). `style_index[i]`: row i's style in `config.style_order` (a model trained with styles; without
        it, the default style)."""
        config = self.config
        if not (config.prompt_before_ids or config.prompt_after_ids) and config.prompt_template.strip() != (
            config.audio_placeholder
        ):
            raise ValueError("the prompt has no token ids yet: call model.config.set_prompt(tokenizer) first")
        embed = self.get_input_embeddings()
        device = audio_embeds.device
        before = embed(torch.tensor(config.prompt_before_ids, dtype=torch.long, device=device)).to(audio_embeds.dtype)
        after = embed(torch.tensor(config.prompt_after_ids, dtype=torch.long, device=device)).to(audio_embeds.dtype)
        span = audio_mask.long().sum(-1).tolist()
        caption_embeds = embed(captions).to(audio_embeds.dtype) if captions is not None else None
        styles = self._style_embeds(style_index, len(span), device, audio_embeds.dtype)
        rows = []
        for i, n in enumerate(span):
            parts = [before, audio_embeds[i, :n], after, styles[i]]
            if caption_embeds is not None:
                parts.append(caption_embeds[i, : int(caption_lengths[i])])
            rows.append(torch.cat(parts))
        width = max(len(r) for r in rows)
        limit = config.lm_max_positions
        if limit is not None and width > limit:
            raise ValueError(
                f"the prompt with its audio span and caption is {width} positions long but the {config.lm.model_type} "
                f"LM reads at most {limit} (shorten the clips, raise projector_stack, or use num_queries)"
            )
        inputs = audio_embeds.new_zeros(len(rows), width, audio_embeds.shape[-1])
        mask = torch.zeros(len(rows), width, dtype=torch.long, device=device)
        for i, row in enumerate(rows):
            where = slice(0, len(row)) if padding_side == "right" else slice(width - len(row), width)
            inputs[i, where], mask[i, where] = row, 1
        starts = torch.tensor(
            [len(before) + n + len(after) + len(styles[i]) for i, n in enumerate(span)], device=device
        )
        return inputs, mask, starts

    def _style_embeds(self, style_index, rows: int, device, dtype) -> list[torch.Tensor]:
        """Each row's style text, embedded (empty for a model without styles)."""
        config, embed = self.config, self.get_input_embeddings()
        if style_index is None:
            names = [config.default_style] * rows
        else:
            names = [config.style_order[int(i)] for i in style_index]
        return [
            embed(torch.tensor(config.style_prompt_ids(n), dtype=torch.long, device=device)).to(dtype) for n in names
        ]

    # ------------------------------------------------------------------------------------------------------------------
    # forward, loss, generate
    # ------------------------------------------------------------------------------------------------------------------
    def forward(
        self,
        input_features: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        input_values: torch.Tensor | None = None,
        encoder_index: torch.LongTensor | None = None,
        smoothing: float = 0.0,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        style_index: torch.LongTensor | None = None,
        **kwargs,
    ) -> AudioCapPrefixOutput | tuple:
        r"""
        labels (`torch.LongTensor` of shape `(rows, caption_len)`): caption ids ending with eos, -100 = ignored. The
            loss is the LM's causal cross-entropy of the caption tokens only (no audio or prompt position is
            labelled): the mean over the labelled tokens, or their sum divided by `num_items_in_batch` when the
            Trainer passes it, as `caption_loss` computes it for both model kinds.
        encoder_index (`torch.LongTensor` of shape `(rows,)`, *optional*): for each caption row, the clip it describes.
        smoothing (`float`): label-smoothing epsilon of that cross-entropy (training batches only, in the recipes).
        style_index (`torch.LongTensor` of shape `(rows,)`, *optional*): each row's style in `config.style_order`.
        """
        num_items_in_batch = kwargs.pop("num_items_in_batch", None)
        if kwargs.get("decoder_input_ids") is not None:
            raise ValueError("the prefix model reads its caption tokens from `labels`, not `decoder_input_ids`")
        return_dict = self.config.return_dict if return_dict is None else return_dict
        audio, audio_mask = self.embed_audio(input_features, attention_mask, input_values)
        rows_audio, rows_mask = audio, audio_mask
        if encoder_index is not None:  # each clip encoded and projected once, then handed to its caption rows
            encoder_index = encoder_index.to(audio.device)
            rows_audio, rows_mask = audio.index_select(0, encoder_index), audio_mask.index_select(0, encoder_index)
        captions = lengths = None
        if labels is not None:
            labels = labels.to(audio.device)
            labelled = labels.ne(-100)
            # up to the last labelled token (padding is -100 at the end); ignored tokens inside are embedded as pad
            lengths = torch.where(labelled.any(-1), labels.shape[1] - labelled.flip(-1).long().argmax(-1), 0)
            captions = labels.masked_fill(~labelled, self.config.pad_token_id or 0)
        inputs, mask, starts = self.prompt_rows(rows_audio, rows_mask, captions, lengths, style_index=style_index)
        out = self.lm(
            inputs_embeds=inputs,
            attention_mask=mask,
            use_cache=False,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        # logits[:, t] predicts caption token t: the LM's output at the position before it
        steps = labels.shape[1] if labels is not None else 1
        positions = (starts[:, None] - 1 + torch.arange(steps, device=starts.device)).clamp(max=inputs.shape[1] - 1)
        logits = out.logits.gather(1, positions[..., None].expand(-1, -1, out.logits.shape[-1]))
        loss = parts = None
        if labels is not None:
            loss, plain = caption_loss(logits, labels, smoothing, num_items_in_batch)
            parts = {"caption_loss": plain} if self.training else {}
        output = AudioCapPrefixOutput(
            loss=loss, logits=logits, hidden_states=out.hidden_states, audio_embeds=audio, **(parts or {})
        )
        return output if return_dict else output.to_tuple()

    @torch.no_grad()
    def generate(
        self,
        input_features: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        input_values: torch.Tensor | None = None,
        encoder_index: torch.LongTensor | None = None,
        generation_config: GenerationConfig | None = None,
        style: str | None = None,
        style_index: torch.LongTensor | None = None,
        **kwargs,
    ) -> torch.LongTensor:
        """Captions of the clips (one row per clip, or per `encoder_index` row): the prompt rows left-padded and handed
        to the LM's own `generate(inputs_embeds=..., attention_mask=...)` with this model's generation config (or the
        one given) and any of its keyword arguments (num_beams, do_sample, logits processors, ...); `max_length` counts
        caption tokens, as `max_new_tokens` (the prompt is not counted). Returns the caption ids only. A model trained
        with styles captions in `style` (a name; None: the default), or per row by `style_index`."""
        for name in ("labels", "decoder_input_ids", "decoder_attention_mask"):  # what a Trainer batch may carry
            kwargs.pop(name, None)
        if "max_length" in kwargs and "max_new_tokens" not in kwargs:
            # counts caption tokens, as for the encoder-decoder model (a Trainer passes generation_max_length so)
            kwargs["max_new_tokens"] = kwargs.pop("max_length")
        audio, audio_mask = self.embed_audio(input_features, attention_mask, input_values)
        if encoder_index is not None:
            encoder_index = encoder_index.to(audio.device)
            audio, audio_mask = audio.index_select(0, encoder_index), audio_mask.index_select(0, encoder_index)
        if style_index is None and style is not None:  # one style for every row (one line if it is not the model's)
            self.config.style_prompt_ids(style)
            style_index = torch.full((audio.shape[0],), self.config.style_order.index(style))
        inputs, mask, _ = self.prompt_rows(audio, audio_mask, padding_side="left", style_index=style_index)
        # the call's generation arguments folded into a copy of the config, as GenerationMixin does for its own model
        generation_config = copy.deepcopy(
            generation_config if generation_config is not None else self.generation_config
        )
        model_kwargs = generation_config.update(**kwargs)
        if generation_config.max_length is not None:
            # the LM would count a config's max_length over the prompt too: it becomes the caption length, unless
            # max_new_tokens is set (which then takes precedence, as in transformers), and the LM gets that one only
            if generation_config.max_new_tokens is None:
                generation_config.max_new_tokens = generation_config.max_length
            generation_config.max_length = None
        return self.lm.generate(
            inputs_embeds=inputs, attention_mask=mask, generation_config=generation_config, **model_kwargs
        )


def register_prefix_auto_classes() -> None:
    """Registers the prefix config and model with transformers' Auto classes (idempotent)."""
    AutoConfig.register(AudioCapPrefixConfig.model_type, AudioCapPrefixConfig, exist_ok=True)
    AutoModelForSpeechSeq2Seq.register(AudioCapPrefixConfig, AudioCapPrefixForConditionalGeneration, exist_ok=True)


# `save_pretrained` writes `auto_map` into config.json and copies this file and its relative imports beside the weights
AudioCapPrefixConfig.register_for_auto_class("AutoConfig")
AudioCapPrefixForConditionalGeneration.register_for_auto_class("AutoModelForSpeechSeq2Seq")

__all__ = [
    "AudioCapPrefixForConditionalGeneration",
    "AudioCapPrefixOutput",
    "AudioCapPrefixPreTrainedModel",
    "AudioCapPrefixProjector",
    "register_prefix_auto_classes",
]
