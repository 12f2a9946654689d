"""Audio captioning model: audio encoder -> adapter -> text decoder -> LM head, as a transformers `PreTrainedModel`.

Ships with every saved model: this file imports only `torch`, `transformers` and its siblings
`configuration_audiocap.py` and `encoders_audiocap.py` (relative imports), so `save_pretrained` copies the three next
to the weights and a folder loads with `AutoModelForSpeechSeq2Seq.from_pretrained(folder, trust_remote_code=True)`
without `hf_audiocap` installed. It uses public transformers APIs only: generation is the stock `generate` with its
`EncoderDecoderCache`, so greedy, beam search, sampling and every logits processor come from transformers.

Read top to bottom: decoder layer -> pretrained base -> built-in decoder -> `AudioCapModel` (the audio side of
`encoders_audiocap.py`, run once per call, + a decoder; returns the keyword estimate with the decoder states, as
`WhisperModel` returns what `WhisperForConditionalGeneration` reads) -> `AudioCapForConditionalGeneration` (+ LM head and
`caption_loss`, the loss of both model kinds). The attention and the built-in encoder live in `encoders_audiocap.py`.
The loss upcasts logits to float32.
"""

from __future__ import annotations

import dataclasses
import inspect
import warnings

import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSpeechSeq2Seq,
    GenerationConfig,
    GenerationMixin,
    PreTrainedModel,
)
from transformers.cache_utils import Cache, DynamicCache, EncoderDecoderCache
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutputWithPastAndCrossAttentions,
    Seq2SeqLMOutput,
    Seq2SeqModelOutput,
)
from transformers.utils import logging

from .configuration_audiocap import (
    AUDIOCAP_DECODER_TYPE,
    SUPPORTED_DECODER_TYPES,
    AudioCapConfig,
    AudioCapConfigError,
    AudioCapDecoderConfig,
    AudioCapEncoderConfig,
)
from .encoders_audiocap import (
    LEGACY_KEY_BIASES,
    AudioCapAttention,
    AudioCapAudioEncoder,
    AudioCapEncoder,
    AudioCapEncoderOutput,
    AudioCapFeedForward,
    encoder_kind,
    key_padding_mask,
    load_pretrained_encoder,
)

logger = logging.get_logger(__name__)

# transformers 5.24 renamed the cache argument and output field `past_key_values` to `cache`; the name the running
# release uses is read off its public signatures, so the model speaks to `generate` in its own terms.
_GENERATE_ARGS = inspect.signature(GenerationMixin.prepare_inputs_for_generation).parameters
CACHE_ARG = "cache" if "cache" in _GENERATE_ARGS else "past_key_values"
CACHE_FIELD = "cache" if "cache" in {f.name for f in dataclasses.fields(Seq2SeqLMOutput)} else "past_key_values"


@dataclasses.dataclass
class AudioCapSeq2SeqModelOutput(Seq2SeqModelOutput):
    r"""`Seq2SeqModelOutput` plus, in training with the keyword head, `keyword_logits` (`torch.FloatTensor` of shape
    `(decoder_batch, vocab)`): the audio side's estimate of the words of each decoder row's caption."""

    keyword_logits: torch.FloatTensor | None = None


@dataclasses.dataclass
class AudioCapSeq2SeqLMOutput(Seq2SeqLMOutput):
    r"""`Seq2SeqLMOutput` plus, in training mode with labels, the parts of the objective `loss` (detached, for logging):

    caption_loss (`torch.FloatTensor` of shape `()`): the plain cross-entropy of the labelled tokens, unsmoothed and
        without auxiliary terms, the quantity the validation loss measures: training and validation are compared on it.
    keyword_loss (`torch.FloatTensor` of shape `()`): the keyword-estimation term, before its weight.
    """

    caption_loss: torch.FloatTensor | None = None
    keyword_loss: torch.FloatTensor | None = None


def shift_tokens_right(input_ids: torch.Tensor, pad_token_id: int, decoder_start_token_id: int) -> torch.Tensor:
    """`labels` -> `decoder_input_ids`: shift right, put `decoder_start_token_id` first, replace -100 by pad."""
    if decoder_start_token_id is None:
        raise ValueError("AudioCapConfig.decoder_start_token_id must be set to build decoder_input_ids from labels")
    if pad_token_id is None:
        raise ValueError("AudioCapConfig.pad_token_id must be set to build decoder_input_ids from labels")
    shifted = input_ids.new_zeros(input_ids.shape)
    shifted[:, 1:] = input_ids[:, :-1]
    shifted[:, 0] = decoder_start_token_id
    return shifted.masked_fill(shifted == -100, pad_token_id)


def caption_loss(logits, labels, smoothing: float = 0.0, num_items_in_batch=None):
    """The caption cross-entropy of the labelled tokens (float32 logits), from one log-softmax, as two values:
    - the objective: label-smoothed with `smoothing` exactly as `F.cross_entropy(..., label_smoothing=)` does
      ((1 - e) * NLL + e * mean over the vocabulary of -log p), the mean over the labelled tokens, or their sum
      divided by `num_items_in_batch` when the Trainer passes it;
    - the plain cross-entropy (NLL mean, detached): what the validation loss measures, so a training curve can
      be drawn beside it whatever smoothing and auxiliary terms the objective adds."""
    log_probs = logits.float().log_softmax(-1).reshape(-1, logits.shape[-1])
    flat_labels = labels.reshape(-1)
    labelled = flat_labels != -100
    nll = -log_probs.gather(1, flat_labels.clamp(min=0).unsqueeze(1)).squeeze(1) * labelled
    per_token = nll
    if smoothing:
        per_token = (1.0 - smoothing) * nll - smoothing * log_probs.mean(-1) * labelled
    count = labelled.sum()
    denominator = count if num_items_in_batch is None else num_items_in_batch
    denominator = torch.as_tensor(denominator, device=nll.device, dtype=nll.dtype)
    return per_token.sum() / denominator, nll.detach().sum() / count.clamp(min=1)


def pop_cache_argument(cache: Cache | None, kwargs: dict) -> Cache | None:
    """The cache passed as `cache` or, the name before transformers 5.24, `past_key_values` (which 5.24 and later
    deprecate with a FutureWarning, as their own models do through `deprecate_kwarg`)."""
    old = kwargs.pop("past_key_values", None)
    if old is None:
        return cache
    if cache is not None:
        raise ValueError("pass the cache as `cache` or as `past_key_values`, not both")
    if CACHE_ARG == "cache":
        warnings.warn("`past_key_values` is deprecated. Use `cache` instead.", FutureWarning, stacklevel=3)
    return old


# ----------------------------------------------------------------------------------------------------------------------
# The decoder layer
# ----------------------------------------------------------------------------------------------------------------------
class AudioCapDecoderLayer(GradientCheckpointingLayer):
    """Pre-LN decoder layer: causal self-attention, cross-attention to the audio, feed-forward."""

    def __init__(self, config: AudioCapDecoderConfig, layer_idx: int):
        super().__init__()
        d, heads = config.d_model, config.decoder_attention_heads
        self.self_attn_layer_norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.self_attn = AudioCapAttention(d, heads, config.attention_dropout, layer_idx)
        self.encoder_attn_layer_norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.encoder_attn = AudioCapAttention(d, heads, config.attention_dropout, layer_idx, cross=True)
        self.final_layer_norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.mlp = AudioCapFeedForward(
            d, config.decoder_ffn_dim, config.activation_function, config.activation_dropout
        )
        self.dropout = config.dropout

    def forward(
        self,
        hidden_states,
        encoder_hidden_states,
        attention_mask=None,
        is_causal=True,
        encoder_attention_mask=None,
        cache=None,
        output_attentions=False,
    ):
        attn, self_weights = self.self_attn(
            self.self_attn_layer_norm(hidden_states),
            attention_mask=attention_mask,
            is_causal=is_causal,
            cache=cache,
            output_attentions=output_attentions,
        )
        hidden_states = hidden_states + F.dropout(attn, p=self.dropout, training=self.training)
        attn, cross_weights = self.encoder_attn(
            self.encoder_attn_layer_norm(hidden_states),
            key_value_states=encoder_hidden_states,
            attention_mask=encoder_attention_mask,
            cache=cache,
            output_attentions=output_attentions,
        )
        hidden_states = hidden_states + F.dropout(attn, p=self.dropout, training=self.training)
        mlp = self.mlp(self.final_layer_norm(hidden_states))
        return hidden_states + F.dropout(mlp, p=self.dropout, training=self.training), self_weights, cross_weights


# ----------------------------------------------------------------------------------------------------------------------
# Pretrained base, built-in encoder and decoder
# ----------------------------------------------------------------------------------------------------------------------
def keep_present_layers(model: PreTrainedModel) -> None:
    """Narrow `model._no_split_modules` (gathered from its parts by `post_init`) to the layer classes it holds:
    transformers' parts name their whole family's layers (Whisper's encoder names WhisperDecoderLayer too), and
    FSDP's transformer-based wrap refuses a name that matches no module."""
    present = {type(module).__name__ for module in model.modules()}
    model._no_split_modules = {name for name in model._no_split_modules or () if name in present}


class AudioCapPreTrainedModel(PreTrainedModel):
    config_class = AudioCapConfig
    base_model_prefix = "model"
    main_input_name = "input_features"
    input_modalities = ("audio", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _keys_to_ignore_on_load_unexpected = LEGACY_KEY_BIASES

    def output_flags(self, output_attentions=None, output_hidden_states=None) -> tuple[bool, bool]:
        """The call's `output_attentions` / `output_hidden_states`, or the config's where not given."""
        attentions = self.config.output_attentions if output_attentions is None else output_attentions
        return attentions, self.config.output_hidden_states if output_hidden_states is None else output_hidden_states

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """`PreTrainedModel.from_pretrained`, safetensors only: pickled weights (`*.bin`) are never unpickled unless
        `use_safetensors=False` is passed (no hf_audiocap entry point does)."""
        kwargs.setdefault("use_safetensors", True)
        return super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)


class AudioCapDecoder(AudioCapPreTrainedModel):
    """Built-in caption decoder body: token + learned position embeddings, pre-LN layers, final LayerNorm (the LM head
    is on `AudioCapForConditionalGeneration`)."""

    config_class = AudioCapDecoderConfig
    base_model_prefix = "audiocap_decoder"
    main_input_name = "input_ids"
    _no_split_modules = ["AudioCapDecoderLayer"]

    def __init__(self, config: AudioCapDecoderConfig):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.d_model)
        self.embed_positions = nn.Embedding(config.max_target_positions, config.d_model)
        self.layers = nn.ModuleList(AudioCapDecoderLayer(config, i) for i in range(config.decoder_layers))
        self.layer_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embed_tokens

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.embed_tokens = value

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPastAndCrossAttentions:
        cache = pop_cache_argument(cache, kwargs)
        output_attentions, output_hidden_states = self.output_flags(output_attentions, output_hidden_states)
        use_cache = self.config.use_cache if use_cache is None else use_cache
        if self.gradient_checkpointing and self.training:
            use_cache = False  # a recomputed layer must project the cross-attention keys again, not read a cache
        if encoder_hidden_states is None:
            raise ValueError("AudioCapDecoder needs encoder_hidden_states (it always cross-attends to the audio)")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        if use_cache and cache is None:
            cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        elif use_cache and not isinstance(cache, EncoderDecoderCache):
            cache = EncoderDecoderCache(cache, DynamicCache())
        elif not use_cache:
            cache = None
        tgt = inputs_embeds.shape[1]
        past = cache.get_seq_length() if cache is not None else 0
        if past + tgt > self.config.max_target_positions:
            raise ValueError(
                f"AudioCapDecoder: {past + tgt} decoder positions requested but max_target_positions is "
                f"{self.config.max_target_positions} (captions must be at most that many tokens: lower max_length)"
            )
        hidden = inputs_embeds + self.embed_positions.weight[past : past + tgt]
        hidden = F.dropout(hidden, p=self.config.dropout, training=self.training)

        # causal self-attention: SDPA's own causal flag when nothing else is needed, else an explicit boolean mask
        # (offset by the cached length, combined with the key padding mask)
        key_pad = key_padding_mask(attention_mask[:, -(past + tgt) :] if attention_mask is not None else None)
        self_mask, is_causal = None, tgt > 1
        if key_pad is not None or (tgt > 1 and past > 0):
            positions = torch.arange(past + tgt, device=hidden.device)
            self_mask = (positions[None, :] <= positions[past:, None])[None, None]
            self_mask = self_mask & key_pad if key_pad is not None else self_mask
            is_causal = False
        cross_mask = key_padding_mask(encoder_attention_mask)

        all_hidden = (hidden,) if output_hidden_states else None
        all_self, all_cross = (() if output_attentions else None), (() if output_attentions else None)
        for layer in self.layers:
            hidden, self_weights, cross_weights = layer(
                hidden,
                encoder_hidden_states,
                attention_mask=self_mask,
                is_causal=is_causal,
                encoder_attention_mask=cross_mask,
                cache=cache,
                output_attentions=output_attentions,
            )
            if output_hidden_states:
                all_hidden += (hidden,)
            if output_attentions:
                all_self, all_cross = all_self + (self_weights,), all_cross + (cross_weights,)
        output = BaseModelOutputWithPastAndCrossAttentions(
            last_hidden_state=self.layer_norm(hidden),
            hidden_states=all_hidden,
            attentions=all_self,
            cross_attentions=all_cross,
            **{CACHE_FIELD: cache},
        )
        return output if (self.config.return_dict if return_dict is None else return_dict) else output.to_tuple()


def build_decoder(config) -> PreTrainedModel:
    """The decoder body for a decoder config: the built-in one, or a pretrained causal LM's own decoder stack (the LM
    head is the conditional-generation model's)."""
    if config.model_type == AUDIOCAP_DECODER_TYPE:
        return AudioCapDecoder(config)
    return causal_lm_parts(AutoModelForCausalLM.from_config(config))[0]


def causal_lm_parts(causal_lm: PreTrainedModel) -> tuple[PreTrainedModel, nn.Linear]:
    """(decoder body, LM head) of a pretrained causal LM with cross-attention, refusing a type whose head is not one
    linear layer on the body's states."""
    model_type = causal_lm.config.model_type
    if model_type not in SUPPORTED_DECODER_TYPES:
        raise AudioCapConfigError(
            f"unsupported decoder model_type {model_type!r}: expected one of {', '.join(SUPPORTED_DECODER_TYPES)}"
        )
    return causal_lm.get_decoder(), causal_lm.get_output_embeddings()


# ----------------------------------------------------------------------------------------------------------------------
# Encoder-decoder model and the conditional-generation model
# ----------------------------------------------------------------------------------------------------------------------
class AudioCapModel(AudioCapPreTrainedModel):
    """The audio side and the decoder body; returns the decoder's last hidden states (`Seq2SeqModelOutput`)."""

    def __init__(self, config: AudioCapConfig, encoder=None, decoder=None):
        if getattr(config, "model_type", None) != AudioCapConfig.model_type:
            # model_type, not isinstance: with trust_remote_code transformers may load the config class from another
            # copy of configuration_audiocap.py than the one this file imports
            kind, cls = getattr(config, "model_type", None), type(config)
            raise AudioCapConfigError(
                f"config must be an AudioCapConfig (model_type {AudioCapConfig.model_type!r}), got a "
                f"{cls.__module__}.{cls.__qualname__} of model_type {kind!r}: a folder of another model kind loads "
                "with its own class (AutoModelForSpeechSeq2Seq picks it)"
            )
        if encoder is not None:
            config.encoder = encoder.config
        if decoder is not None:
            config.decoder = decoder.config
        config.sync_sub_configs()
        super().__init__(config)
        if encoder is None and config.uses_builtin_encoder:
            encoder = AudioCapEncoder(config.encoder)
        self.encoder = AudioCapAudioEncoder(config, encoder)
        self.decoder = decoder if decoder is not None else build_decoder(config.decoder)
        # one config object per part, so what is saved is what runs
        self.config.encoder, self.config.decoder = self.encoder.model.config, self.decoder.config
        self.post_init()
        keep_present_layers(self)

    def get_encoder(self, modality: str | None = None) -> AudioCapAudioEncoder:
        return self.encoder

    def get_decoder(self) -> PreTrainedModel:
        return self.decoder

    def get_input_embeddings(self) -> nn.Module:
        return self.decoder.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.decoder.set_input_embeddings(value)

    def forward(
        self,
        input_features: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: AudioCapEncoderOutput | tuple | None = None,
        cache: Cache | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        input_values: torch.Tensor | None = None,
        encoder_index: torch.LongTensor | None = None,
        **kwargs,
    ) -> AudioCapSeq2SeqModelOutput:
        r"""
        encoder_index (`torch.LongTensor` of shape `(decoder_batch,)`, *optional*): for each decoder row, the row of the
            audio batch it describes: a clip with five captions is encoded once and its states serve its five rows.
        """
        cache = pop_cache_argument(cache, kwargs)
        output_attentions, output_hidden_states = self.output_flags(output_attentions, output_hidden_states)
        use_cache = self.config.use_cache if use_cache is None else use_cache
        if encoder_outputs is None:
            encoder_outputs = self.encoder(
                input_features=input_features,
                attention_mask=attention_mask,
                input_values=input_values,
                output_attentions=output_attentions,
                output_hidden_states=output_hidden_states,
                return_dict=True,
            )
        elif isinstance(encoder_outputs, (tuple, list)):
            encoder_outputs = AudioCapEncoderOutput(*encoder_outputs)
        states, mask = encoder_outputs.last_hidden_state, getattr(encoder_outputs, "attention_mask", None)
        keyword_logits = getattr(encoder_outputs, "keyword_logits", None)
        if encoder_index is not None:  # each clip's states handed to its caption rows
            encoder_index = encoder_index.to(states.device)
            states = states.index_select(0, encoder_index)
            mask = mask.index_select(0, encoder_index) if mask is not None else None
            keyword_logits = keyword_logits.index_select(0, encoder_index) if keyword_logits is not None else None
        decoder_outputs = self.decoder(
            input_ids=decoder_input_ids,
            attention_mask=decoder_attention_mask,
            encoder_hidden_states=states,
            encoder_attention_mask=mask.long() if mask is not None else None,
            inputs_embeds=decoder_inputs_embeds,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
            **{CACHE_ARG: cache},
        )
        output = AudioCapSeq2SeqModelOutput(
            last_hidden_state=decoder_outputs.last_hidden_state,
            decoder_hidden_states=decoder_outputs.hidden_states,
            decoder_attentions=decoder_outputs.attentions,
            cross_attentions=decoder_outputs.cross_attentions,
            encoder_last_hidden_state=encoder_outputs.last_hidden_state,  # one row per clip
            encoder_hidden_states=encoder_outputs.hidden_states,
            encoder_attentions=encoder_outputs.attentions,
            keyword_logits=keyword_logits,
            **{CACHE_FIELD: getattr(decoder_outputs, CACHE_FIELD, None)},
        )
        return output if (self.config.return_dict if return_dict is None else return_dict) else output.to_tuple()


class AudioCapForConditionalGeneration(AudioCapPreTrainedModel, GenerationMixin):
    """`AudioCapModel` + LM head: the caption cross-entropy in training, `generate()` like any transformers seq2seq model.

    Inputs: `input_features (batch, n_mels, frames)` + frame `attention_mask` (or `input_values` + sample mask for
    waveform encoders), `labels (batch, len)` ending with eos and padded with -100. Returns `AudioCapSeq2SeqLMOutput`
    (`Seq2SeqLMOutput` with the parts of the training objective).
    """

    accepts_loss_kwargs = True

    def __init__(self, config: AudioCapConfig, encoder=None, decoder=None):
        super().__init__(config)
        self.model = AudioCapModel(config, encoder, decoder)
        embeddings = self.model.get_input_embeddings()
        self.lm_head = nn.Linear(embeddings.embedding_dim, config.vocab_size, bias=False)
        # the head is tied to the decoder's token embeddings (when config.tie_word_embeddings), wherever the decoder
        # keeps them (built-in and BART: embed_tokens, GPT-2: wte)
        name = next(n for n, p in self.model.decoder.named_parameters() if p is embeddings.weight)
        self._tied_weights_keys = {"lm_head.weight": f"model.decoder.{name}"}
        if config.freeze_encoder:
            self.freeze_encoder()
        self.post_init()
        self.generation_config = GenerationConfig(
            decoder_start_token_id=config.decoder_start_token_id,
            bos_token_id=config.bos_token_id,
            eos_token_id=config.eos_token_id,
            pad_token_id=config.pad_token_id,
            max_length=min(30, self.config.decoder_max_positions or 30),  # a caption is rarely over 25 tokens
        )  # greedy, as transformers' default: recipes set their beams (generation_num_beams), saved with the model

    def get_encoder(self, modality: str | None = None) -> AudioCapAudioEncoder:
        return self.model.get_encoder()

    def get_decoder(self) -> PreTrainedModel:
        return self.model.get_decoder()

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.lm_head = value

    def freeze_encoder(self) -> None:
        """Freeze the audio encoder (the adapter, keyword head and decoder keep training)."""
        for param in self.model.encoder.model.parameters():
            param.requires_grad_(False)

    def resize_token_embeddings(self, new_num_tokens=None, pad_to_multiple_of=None, mean_resizing=True):
        """`PreTrainedModel.resize_token_embeddings`, keeping every vocabulary-sized part in step: the top-level
        `vocab_size` (what a reload builds) and the keyword head (new words start with zero weight and bias)."""
        embeddings = super().resize_token_embeddings(new_num_tokens, pad_to_multiple_of, mean_resizing)
        vocab = embeddings.num_embeddings
        self.config.vocab_size = self.config.decoder.vocab_size = vocab
        head = self.model.encoder.keyword_head
        if head is not None and head.out_features != vocab:
            new = nn.Linear(head.in_features, vocab, device=head.weight.device, dtype=head.weight.dtype)
            keep = min(vocab, head.out_features)
            with torch.no_grad():
                new.weight.zero_()
                new.bias.zero_()
                new.weight[:keep], new.bias[:keep] = head.weight[:keep], head.bias[:keep]
            self.model.encoder.keyword_head = new
        return embeddings

    def generate(self, inputs=None, style: str | None = None, **kwargs):
        """`GenerationMixin.generate`; a model trained with styles (`config.styles`) starts every caption with a
        style's token after the start token: `style` (a name; None: the first style), unless the call passes its own
        `decoder_input_ids`. `style` on a model without styles is refused in one line."""
        token = self.config.style_token_id(style)
        if token is not None and kwargs.get("decoder_input_ids") is None:
            given = (inputs, kwargs.get("input_features"), kwargs.get("input_values"), kwargs.get("encoder_outputs"))
            batch = next(x for x in given if x is not None)
            batch = batch if torch.is_tensor(batch) else batch[0]  # encoder outputs: their states
            start = self.config.decoder_start_token_id
            kwargs["decoder_input_ids"] = torch.tensor([[start, token]] * batch.shape[0], device=batch.device)
        return super().generate(inputs, **kwargs)

    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor) -> torch.Tensor:
        return shift_tokens_right(labels, self.config.pad_token_id, self.config.decoder_start_token_id)

    @classmethod
    def from_encoder_decoder_pretrained(
        cls,
        encoder_pretrained_model_name_or_path: str | None = None,
        decoder_pretrained_model_name_or_path: str | None = None,
        **kwargs,
    ) -> AudioCapForConditionalGeneration:
        """Encoder weights through `AutoModel.from_pretrained` (Whisper: its encoder only; None = the built-in encoder
        from scratch), decoder weights through `AutoModelForCausalLM.from_pretrained` with `is_decoder=True,
        add_cross_attention=True` (new cross-attention weights are randomly initialised; None = the built-in decoder).
        `encoder_*` / `decoder_*` kwargs go to the part's `from_pretrained` / config, the rest to `AudioCapConfig`."""
        kw_enc = {k[len("encoder_") :]: kwargs.pop(k) for k in list(kwargs) if k.startswith("encoder_")}
        kw_dec = {k[len("decoder_") :]: kwargs.pop(k) for k in list(kwargs) if k.startswith("decoder_")}
        if "start_token_id" in kw_dec:  # `decoder_start_token_id` is a top-level config field, not a decoder kwarg
            kwargs["decoder_start_token_id"] = kw_dec.pop("start_token_id")
        safe = {"use_safetensors": True}  # pretrained parts load from safetensors only, as the whole model does

        def load_config(path, what, extra):
            try:
                return AutoConfig.from_pretrained(path, **extra)
            except (OSError, ValueError, KeyError) as err:
                expected = "an audio encoder" if what == "encoder" else "a causal LM with cross-attention (bart, gpt2)"
                reason = str(err).splitlines()[0] if str(err) else type(err).__name__
                raise ValueError(f"cannot load the {what} {path!r}: expected {expected} [{reason}]") from err

        if encoder_pretrained_model_name_or_path is None:
            encoder = AudioCapEncoder(AudioCapEncoderConfig(**kw_enc))
        else:
            enc_config = load_config(encoder_pretrained_model_name_or_path, "encoder", kw_enc.pop("config_kwargs", {}))
            if encoder_kind(enc_config) == "builtin":
                encoder = AudioCapEncoder.from_pretrained(encoder_pretrained_model_name_or_path, **safe, **kw_enc)
            else:
                encoder = load_pretrained_encoder(encoder_pretrained_model_name_or_path, enc_config, **safe, **kw_enc)
        head = None
        if decoder_pretrained_model_name_or_path is None:
            dec_kwargs = {"vocab_size": kwargs["vocab_size"]} if "vocab_size" in kwargs else {}
            decoder = AudioCapDecoder(AudioCapDecoderConfig(**dec_kwargs, **kw_dec))
        else:
            dec_config = load_config(decoder_pretrained_model_name_or_path, "decoder", kw_dec.pop("config_kwargs", {}))
            dec_config.is_decoder = True
            dec_config.add_cross_attention = True
            decoder, head = causal_lm_parts(
                AutoModelForCausalLM.from_pretrained(
                    decoder_pretrained_model_name_or_path, config=dec_config, **safe, **kw_dec
                )
            )
        config = AudioCapConfig.from_encoder_decoder_configs(encoder.config, decoder.config, **kwargs)
        model = cls(config, encoder=encoder, decoder=decoder)
        if head is not None and not config.tie_word_embeddings:
            with torch.no_grad():
                model.lm_head.weight.copy_(head.weight)
        return model

    def forward(
        self,
        input_features: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: AudioCapEncoderOutput | tuple | None = None,
        cache: Cache | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        input_values: torch.Tensor | None = None,
        encoder_index: torch.LongTensor | None = None,
        smoothing: float = 0.0,
        **kwargs,
    ) -> AudioCapSeq2SeqLMOutput | tuple:
        r"""
        encoder_index (`torch.LongTensor` of shape `(decoder_batch,)`, *optional*): for each decoder row, the row of the
            audio batch it describes (a clip with five captions is encoded once for its five rows: the same loss as
            five (clip, caption) examples for a fifth of the encoder cost).
        labels (`torch.LongTensor` of shape `(batch, target_len)`): target ids ending with eos, -100 = ignored. The loss
            is `F.cross_entropy(logits.view(-1, V), labels.view(-1), ignore_index=-100)`, the mean over the labelled
            tokens, or, when the Trainer passes `num_items_in_batch`, their sum divided by it (gradient accumulation
            and several processes then give the loss of one big batch). In training, the keyword loss is added.
        smoothing (`float`): label-smoothing epsilon of that cross-entropy (`F.cross_entropy(..., label_smoothing=)`,
            transformers' `LabelSmoother` loss). The recipes pass `label_smoothing_factor` here for training batches
            only, so the validation loss and perplexity stay the plain cross-entropy.
        """
        cache = pop_cache_argument(cache, kwargs)
        num_items_in_batch = kwargs.pop("num_items_in_batch", None)
        return_dict = self.config.return_dict if return_dict is None else return_dict
        if labels is not None:
            max_positions = self.config.decoder_max_positions
            if max_positions is not None and labels.shape[-1] > max_positions:
                raise ValueError(
                    f"labels have {labels.shape[-1]} tokens but the decoder has only {max_positions} positions "
                    "(truncate captions to at most that many tokens)"
                )
            if decoder_input_ids is None and decoder_inputs_embeds is None:
                decoder_input_ids = self.prepare_decoder_input_ids_from_labels(labels)
            use_cache = False if use_cache is None else use_cache
        if decoder_input_ids is None and decoder_inputs_embeds is None:
            raise ValueError(
                "forward needs `labels` or `decoder_input_ids` (model.prepare_decoder_input_ids_from_labels)"
            )
        outputs = self.model(
            input_features=input_features,
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask,
            encoder_outputs=encoder_outputs,
            cache=cache,
            decoder_inputs_embeds=decoder_inputs_embeds,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
            input_values=input_values,
            encoder_index=encoder_index,
        )
        logits = self.lm_head(outputs.last_hidden_state)
        loss = parts = None
        if labels is not None:
            labels = labels.to(logits.device)
            loss, plain = caption_loss(logits, labels, smoothing, num_items_in_batch)
            parts = {"caption_loss": plain} if self.training else {}
            if outputs.keyword_logits is not None and self.training:
                keyword = self.model.encoder.keyword_loss(outputs.keyword_logits, labels, num_items_in_batch)
                loss = loss + self.config.keyword_loss_weight * keyword
                # logged as this batch's own token-weighted mean, like caption_loss, whatever normalised the objective
                share = 1.0 if num_items_in_batch is None else num_items_in_batch / labels.ne(-100).sum().clamp(min=1)
                parts["keyword_loss"] = keyword.detach() * share
        output = AudioCapSeq2SeqLMOutput(
            loss=loss,
            logits=logits,
            decoder_hidden_states=outputs.decoder_hidden_states,
            decoder_attentions=outputs.decoder_attentions,
            cross_attentions=outputs.cross_attentions,
            encoder_last_hidden_state=outputs.encoder_last_hidden_state,
            encoder_hidden_states=outputs.encoder_hidden_states,
            encoder_attentions=outputs.encoder_attentions,
            **{CACHE_FIELD: getattr(outputs, CACHE_FIELD)},
            **(parts or {}),
        )
        return output if return_dict else output.to_tuple()


def register_auto_classes() -> None:
    """Registers our configs and models with transformers' Auto classes (idempotent). Called once from `hf_audiocap`."""
    for key, config_cls in (
        (AudioCapConfig.model_type, AudioCapConfig),
        (AudioCapEncoderConfig.model_type, AudioCapEncoderConfig),
        (AudioCapDecoderConfig.model_type, AudioCapDecoderConfig),
    ):
        AutoConfig.register(key, config_cls, exist_ok=True)
    for auto, config_cls, model_cls in (
        (AutoModelForSpeechSeq2Seq, AudioCapConfig, AudioCapForConditionalGeneration),
        (AutoModel, AudioCapConfig, AudioCapModel),
        (AutoModel, AudioCapEncoderConfig, AudioCapEncoder),
        (AutoModel, AudioCapDecoderConfig, AudioCapDecoder),
    ):
        auto.register(config_cls, model_cls, exist_ok=True)


# `save_pretrained` writes `auto_map` into config.json and copies this file and its relative imports beside the weights
AudioCapConfig.register_for_auto_class("AutoConfig")
AudioCapForConditionalGeneration.register_for_auto_class("AutoModelForSpeechSeq2Seq")

__all__ = [
    "AudioCapDecoder",
    "AudioCapEncoder",
    "AudioCapEncoderOutput",
    "AudioCapForConditionalGeneration",
    "AudioCapModel",
    "AudioCapPreTrainedModel",
    "AudioCapSeq2SeqLMOutput",
    "AudioCapSeq2SeqModelOutput",
    "caption_loss",
    "register_auto_classes",
    "shift_tokens_right",
]
