"""Configuration classes of the audio captioning model (`model_type="audiocap"`).

This file is self-contained (it imports only from `transformers`), so that a saved model folder can be loaded with
`AutoModelForSpeechSeq2Seq.from_pretrained(folder, trust_remote_code=True)` where `hf_audiocap` is not installed.

Layout (like `SpeechEncoderDecoderConfig`): an `AudioCapConfig` holds an `encoder` and a `decoder` sub-config.

* `encoder`: either the built-in `AudioCapEncoderConfig` (log-mel conv subsampling + pre-LN transformer, trained from
  scratch) or the config of any supported pretrained audio encoder from transformers (whisper, wav2vec2, hubert,
  audio-spectrogram-transformer, clap_audio_model, ...).
* `decoder`: either the built-in `AudioCapDecoderConfig` or the config of a pretrained causal LM that supports
  cross-attention (bart via `BartForCausalLM`, gpt2 with `add_cross_attention=True`, ...).
* the adapter (projection from the encoder width to the decoder width + optional masked temporal pooling),
  `freeze_encoder`, the special token ids and `vocab_size` / `tie_word_embeddings` live on the top-level config.

Default `AudioCapConfig()` = the small demo model (about 2.9M parameters with a ~200-word vocabulary): d_model 192,
3 encoder + 2 decoder layers, 4 heads, FFN 768, 4x conv time subsampling, no dropout, keyword-estimation loss 0.5.
Why: the demo trains from scratch on 2 CPU cores in about 11 minutes on 6,000 3-10 s synthetic clips with a ~200-word
vocabulary, fed log-mels at a 20 ms hop (80 ms per encoder position). Measured there (one clip = its five captions,
encoded once): 48 clips/s for this size against 15 clips/s for d_model 256 / 4+3 layers / FFN 1024 at a 10 ms hop,
and a better validation CIDEr-D at equal wall-clock time. No dropout: with 2,000 clips the model did over-fit its
training source combinations, but dropout 0.1 (with or without SpecAugment) scored lower on the test split (CIDEr-D
1.22 / 1.19 vs 1.29) where more clips scored higher (1.38 with 4,000, 1.51 with 6,000; benchmarks/RESULTS.md). Recipes for
real corpora (Clotho) set their own sizes and dropout.
"""

from __future__ import annotations

from typing import Any

from transformers import AutoConfig, PretrainedConfig

AUDIOCAP_ENCODER_TYPE = "audiocap_encoder"
AUDIOCAP_DECODER_TYPE = "audiocap_decoder"


class AudioCapEncoderConfig(PretrainedConfig):
    r"""Built-in log-mel encoder: `num_conv_layers` Conv1d(kernel 3, stride 2) + GELU (2 -> 4x time reduction) or, with
    `conv2d_channels` (e.g. `[16, 32]`), a 2-D CNN front end (per block: Conv2d 3x3 + GELU + 2x2 average pooling over
    frequency and time, then the channels x remaining mel bands projected to `d_model`): a CNN sees local
    time-frequency patterns (a beep's line, a chirp's sweep) wherever they sit, and learns them from far less data
    than a transformer on frame vectors. With `summary_token`, a first position holds a projection of the clip's
    log-mel statistics (per band: mean, standard deviation and maximum over its real frames): what a clip-level
    detector sees at once, available to every layer and to the decoder from the first step. Then sinusoidal
    positions computed for the actual length (any length works, nothing is padded to 30 s), `encoder_layers` pre-LN
    transformer layers using `torch.nn.functional.scaled_dot_product_attention` with the key padding mask."""

    model_type = AUDIOCAP_ENCODER_TYPE
    attribute_map = {
        "hidden_size": "d_model",
        "num_hidden_layers": "encoder_layers",
        "num_attention_heads": "encoder_attention_heads",
    }

    def __init__(
        self,
        num_mel_bins: int = 80,
        d_model: int = 192,
        encoder_layers: int = 3,
        encoder_attention_heads: int = 4,
        encoder_ffn_dim: int = 768,
        num_conv_layers: int = 2,
        conv_kernel_size: int = 3,
        conv_stride: int = 2,
        conv2d_channels: list[int] | None = None,
        summary_token: bool = False,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        activation_dropout: float = 0.0,
        activation_function: str = "gelu",
        layer_norm_eps: float = 1e-5,
        init_std: float = 0.02,
        **kwargs: Any,
    ):
        self.num_mel_bins = num_mel_bins
        self.d_model = d_model
        self.encoder_layers = encoder_layers
        self.encoder_attention_heads = encoder_attention_heads
        self.encoder_ffn_dim = encoder_ffn_dim
        self.num_conv_layers = num_conv_layers
        self.conv_kernel_size = conv_kernel_size
        self.conv_stride = conv_stride
        self.conv2d_channels = list(conv2d_channels) if conv2d_channels else None
        self.summary_token = bool(summary_token)
        if self.conv2d_channels and (min(self.conv2d_channels) < 1 or num_mel_bins >> len(self.conv2d_channels) < 1):
            raise ValueError(
                f"AudioCapEncoderConfig: conv2d_channels must be positive and halve num_mel_bins ({num_mel_bins}) at "
                f"most log2(num_mel_bins) times, got {conv2d_channels}"
            )
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.activation_dropout = activation_dropout
        self.activation_function = activation_function
        self.layer_norm_eps = layer_norm_eps
        self.init_std = init_std
        if d_model % encoder_attention_heads:
            raise ValueError(
                f"AudioCapEncoderConfig: d_model ({d_model}) must be divisible by encoder_attention_heads "
                f"({encoder_attention_heads})"
            )
        if conv_kernel_size % 2 != 1:
            raise ValueError(f"AudioCapEncoderConfig: conv_kernel_size must be odd, got {conv_kernel_size}")
        super().__init__(**kwargs)


class AudioCapDecoderConfig(PretrainedConfig):
    r"""Built-in caption decoder: learned token + position embeddings, `decoder_layers` pre-LN layers (fused-QKV causal
    self-attention with a KV cache, cross-attention whose keys/values are computed once per generation), final
    LayerNorm, LM head tied to the input embeddings."""

    model_type = AUDIOCAP_DECODER_TYPE
    attribute_map = {
        "hidden_size": "d_model",
        "num_hidden_layers": "decoder_layers",
        "num_attention_heads": "decoder_attention_heads",
    }

    def __init__(
        self,
        vocab_size: int = 512,
        d_model: int = 192,
        decoder_layers: int = 2,
        decoder_attention_heads: int = 4,
        decoder_ffn_dim: int = 768,
        max_target_positions: int = 64,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        activation_dropout: float = 0.0,
        activation_function: str = "gelu",
        layer_norm_eps: float = 1e-5,
        init_std: float = 0.02,
        use_cache: bool = True,
        tie_word_embeddings: bool = True,
        pad_token_id: int | None = 0,
        bos_token_id: int | None = 2,
        eos_token_id: int | None = 3,
        decoder_start_token_id: int | None = 2,
        is_decoder: bool = True,
        add_cross_attention: bool = True,
        **kwargs: Any,
    ):
        self.vocab_size = vocab_size
        self.d_model = d_model
        self.decoder_layers = decoder_layers
        self.decoder_attention_heads = decoder_attention_heads
        self.decoder_ffn_dim = decoder_ffn_dim
        self.max_target_positions = max_target_positions
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.activation_dropout = activation_dropout
        self.activation_function = activation_function
        self.layer_norm_eps = layer_norm_eps
        self.init_std = init_std
        self.use_cache = use_cache
        self.tie_word_embeddings = tie_word_embeddings
        self.pad_token_id = pad_token_id
        self.bos_token_id = bos_token_id
        self.eos_token_id = eos_token_id
        self.decoder_start_token_id = decoder_start_token_id
        self.is_decoder = is_decoder
        self.add_cross_attention = add_cross_attention
        if d_model % decoder_attention_heads:
            raise ValueError(
                f"AudioCapDecoderConfig: d_model ({d_model}) must be divisible by decoder_attention_heads "
                f"({decoder_attention_heads})"
            )
        super().__init__(**kwargs)


def _sub_config(value: Any, key: str, builtin_cls: type[PretrainedConfig]) -> PretrainedConfig:
    """Turns a sub-config given as None / dict / config into a config object (built-in classes resolved locally so that
    this works in a fresh interpreter where our model types are not registered with AutoConfig)."""
    if value is None:
        return builtin_cls()
    if isinstance(value, PretrainedConfig):
        return value
    if not isinstance(value, dict):
        raise ValueError(
            f"AudioCapConfig.{key} must be a dict, a PretrainedConfig or None, got {type(value).__name__}"
        )
    value = dict(value)
    model_type = value.pop("model_type", builtin_cls.model_type)
    if model_type == builtin_cls.model_type:
        return builtin_cls(**value)
    try:
        return AutoConfig.for_model(model_type, **value)
    except ValueError as err:
        raise ValueError(
            f"AudioCapConfig.{key}: unknown model_type {model_type!r}; expected {builtin_cls.model_type!r} or a model "
            "type known to transformers' AutoConfig (e.g. whisper, wav2vec2, hubert, audio-spectrogram-transformer, "
            "clap_audio_model for the encoder; bart, gpt2 for the decoder)"
        ) from err


class AudioCapConfig(PretrainedConfig):
    r"""Composite audio-captioning config.

    Args:
        encoder (`dict` or `PretrainedConfig`, *optional*): encoder sub-config (default: `AudioCapEncoderConfig()`).
        decoder (`dict` or `PretrainedConfig`, *optional*): decoder sub-config (default: `AudioCapDecoderConfig()`).
            A pretrained decoder config gets `is_decoder=True, add_cross_attention=True`.
        adapter_projection (`bool`): always put a Linear + LayerNorm between encoder and decoder (a projection is
            added anyway when the widths differ).
        adapter_pooling_stride (`int`): masked temporal pooling stride over the encoder states (1 = no pooling).
        adapter_pooling_type (`str`): "avg" or "max".
        freeze_encoder (`bool`): freeze all encoder parameters (the adapter and decoder still train).
        keyword_loss_weight (`float`): weight of an auxiliary keyword-estimation loss (0 = off): a linear head on the
            masked mean of the adapted encoder states predicts which vocabulary words the caption contains
            (multi-label, binary cross-entropy), as in keyword-guided audio captioning (Koizumi et al., 2020). It
            teaches the encoder what the sounds are called long before the decoder has learned to say it. Added
            to the training loss only; evaluation losses (and perplexity) stay the plain caption cross-entropy.
        keyword_memory_tokens (`int`): with the keyword head, append the embeddings of the clip's `k` most probable
            keywords (weighted by their estimated probability) to the audio states the decoder cross-attends to, as
            Koizumi et al. (2020) feed estimated keywords to the decoder: each word is estimated on its own, so sounds
            heard together for the first time are still named. 0 = off (needs `keyword_loss_weight` > 0).
        keyword_statistics (`bool`): also feed the keyword head the clip's per-band log-mel statistics (mean, standard
            deviation and maximum over its real frames, layer-normalised) beside the pooled encoder states: a linear
            clip-level detector that is useful from the first steps, while the encoder is still learning (log-mel
            encoders only; needs `keyword_loss_weight` > 0).
        keyword_pooling (`str`): how the keyword head reads the clip: "mean" (the masked mean of the adapted states)
            or "max" (keyword logits per frame, masked max over frames: a short event is scored where it sounds, as
            in sound event detection, instead of being averaged away over a long clip).
        vocab_size (`int`): decoder vocabulary size (kept in sync with the built-in decoder).
        tie_word_embeddings (`bool`): tie the built-in decoder's LM head to its input embeddings.
        pad_token_id / bos_token_id / eos_token_id / decoder_start_token_id: special ids (`<pad>`=0, `<sos>`=2,
            `<eos>`=3 for the word-level tokenizer).
    """

    model_type = "audiocap"
    sub_configs_defaults = {"encoder": AudioCapEncoderConfig, "decoder": AudioCapDecoderConfig}

    def __init__(
        self,
        encoder: dict | PretrainedConfig | None = None,
        decoder: dict | PretrainedConfig | None = None,
        adapter_projection: bool = True,
        adapter_pooling_stride: int = 1,
        adapter_pooling_type: str = "avg",
        freeze_encoder: bool = False,
        keyword_loss_weight: float = 0.5,
        keyword_memory_tokens: int = 0,
        keyword_statistics: bool = False,
        keyword_pooling: str = "mean",
        vocab_size: int | None = None,
        tie_word_embeddings: bool = True,
        pad_token_id: int | None = 0,
        bos_token_id: int | None = 2,
        eos_token_id: int | None = 3,
        decoder_start_token_id: int | None = 2,
        use_cache: bool = True,
        is_encoder_decoder: bool = True,
        **kwargs: Any,
    ):
        self.encoder = _sub_config(encoder, "encoder", AudioCapEncoderConfig)
        self.decoder = _sub_config(decoder, "decoder", AudioCapDecoderConfig)
        if getattr(self.encoder, "is_decoder", False) or getattr(self.encoder, "add_cross_attention", False):
            self.encoder.is_decoder = False
            self.encoder.add_cross_attention = False
        self.decoder.is_decoder = True
        self.decoder.add_cross_attention = True
        if adapter_pooling_type not in ("avg", "max"):
            raise ValueError(
                f"AudioCapConfig: adapter_pooling_type must be 'avg' or 'max', got {adapter_pooling_type!r}"
            )
        if int(adapter_pooling_stride) < 1:
            raise ValueError(f"AudioCapConfig: adapter_pooling_stride must be >= 1, got {adapter_pooling_stride}")
        self.adapter_projection = adapter_projection
        self.adapter_pooling_stride = int(adapter_pooling_stride)
        self.adapter_pooling_type = adapter_pooling_type
        self.freeze_encoder = freeze_encoder
        if keyword_loss_weight < 0:
            raise ValueError(f"AudioCapConfig: keyword_loss_weight must be >= 0, got {keyword_loss_weight}")
        self.keyword_loss_weight = float(keyword_loss_weight)
        if int(keyword_memory_tokens) < 0 or (keyword_memory_tokens and not keyword_loss_weight > 0):
            raise ValueError(
                f"AudioCapConfig: keyword_memory_tokens must be >= 0 and needs keyword_loss_weight > 0 (the keyword "
                f"head), got keyword_memory_tokens={keyword_memory_tokens}, keyword_loss_weight={keyword_loss_weight}"
            )
        self.keyword_memory_tokens = int(keyword_memory_tokens)
        if keyword_statistics and not keyword_loss_weight > 0:
            raise ValueError("AudioCapConfig: keyword_statistics needs keyword_loss_weight > 0 (the keyword head)")
        self.keyword_statistics = bool(keyword_statistics)
        if keyword_pooling not in ("mean", "max"):
            raise ValueError(f"AudioCapConfig: keyword_pooling must be 'mean' or 'max', got {keyword_pooling!r}")
        self.keyword_pooling = keyword_pooling
        builtin_decoder = self.decoder.model_type == AUDIOCAP_DECODER_TYPE
        if vocab_size is None:
            vocab_size = self.decoder.vocab_size
        elif builtin_decoder:
            self.decoder.vocab_size = vocab_size
        elif vocab_size != self.decoder.vocab_size:
            raise ValueError(
                f"AudioCapConfig: vocab_size ({vocab_size}) differs from the pretrained decoder's vocab_size "
                f"({self.decoder.vocab_size})"
            )
        self.vocab_size = vocab_size
        self.tie_word_embeddings = tie_word_embeddings
        if builtin_decoder:
            self.decoder.tie_word_embeddings = tie_word_embeddings
            for name, value in (
                ("pad_token_id", pad_token_id),
                ("bos_token_id", bos_token_id),
                ("eos_token_id", eos_token_id),
                ("decoder_start_token_id", decoder_start_token_id),
            ):
                setattr(self.decoder, name, value)
        self.pad_token_id = pad_token_id
        self.bos_token_id = bos_token_id
        self.eos_token_id = eos_token_id
        self.decoder_start_token_id = decoder_start_token_id
        self.use_cache = use_cache
        super().__init__(is_encoder_decoder=is_encoder_decoder, **kwargs)

    @property
    def uses_builtin_encoder(self) -> bool:
        return self.encoder.model_type == AUDIOCAP_ENCODER_TYPE

    @property
    def uses_builtin_decoder(self) -> bool:
        return self.decoder.model_type == AUDIOCAP_DECODER_TYPE

    @classmethod
    def from_encoder_decoder_configs(
        cls, encoder_config: PretrainedConfig, decoder_config: PretrainedConfig, **kwargs: Any
    ) -> AudioCapConfig:
        """Builds an `AudioCapConfig` from an encoder config and a decoder config (the decoder gets
        `is_decoder=True, add_cross_attention=True`). Special token ids default to the decoder's own when it has them."""
        decoder_config.is_decoder = True
        decoder_config.add_cross_attention = True
        if decoder_config.model_type != AUDIOCAP_DECODER_TYPE:
            for name in ("pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id"):
                value = getattr(decoder_config, name, None)
                if name == "decoder_start_token_id" and value is None:
                    value = getattr(decoder_config, "bos_token_id", None)
                if value is not None:
                    kwargs.setdefault(name, value)
            kwargs.setdefault("tie_word_embeddings", getattr(decoder_config, "tie_word_embeddings", True))
        return cls(encoder=encoder_config.to_dict(), decoder=decoder_config.to_dict(), **kwargs)


__all__ = ["AudioCapConfig", "AudioCapDecoderConfig", "AudioCapEncoderConfig"]
