"""Configuration of the audio captioning model (`model_type="audiocap"`).

This file ships with every saved model (it imports only `transformers` and `packaging`), so a folder loads with
`AutoModelForSpeechSeq2Seq.from_pretrained(folder, trust_remote_code=True)` where `hf_audiocap` is not installed. It is
the first of the model's files transformers imports, so it also checks the running transformers release against the
range this code is tested on, and stops with one line outside it.

Layout (like `SpeechEncoderDecoderConfig`): an `AudioCapConfig` holds an `encoder` and a `decoder` sub-config. Each
config declares its fields as transformers' own do (dataclass fields, as `WhisperConfig` on every declared release),
and checks them in `__post_init__`.

* `encoder`: the built-in `AudioCapEncoderConfig` (log-mel conv subsampling + pre-LN transformer, trained from scratch)
  or the config of a supported pretrained audio encoder (`SUPPORTED_ENCODER_TYPES`).
* `decoder`: the built-in `AudioCapDecoderConfig` or the config of a pretrained causal LM that supports
  cross-attention (bart through `BartForCausalLM`, gpt2 with `add_cross_attention=True`, ...).
* the adapter (projection from the encoder width to the decoder width + optional masked temporal pooling), the keyword
  head, `freeze_encoder`, the special token ids, `vocab_size` and `tie_word_embeddings` live on the top-level config.

`AudioCapConfig()` is the small demo model: d_model 192, 3 encoder + 2 decoder layers, 4 heads, FFN 768, 4x conv time
subsampling, no dropout, keyword-estimation loss 0.5 (sizes chosen for 2 CPU cores: see docs/experiments.md).
"""

from __future__ import annotations

import copy
import dataclasses
import os
from typing import Any

import transformers
from packaging.version import Version
from transformers import AutoConfig, PretrainedConfig
from transformers.utils import logging

# The transformers releases this code is tested on (CI runs the model tests on the oldest and the newest). The floor:
# 5.16 is the first release whose public APIs this code uses all exist with the same signatures (encoder layers taking
# `(hidden_states, attention_mask)` and returning a tensor, `create_bidirectional_mask(config, inputs_embeds, ...)`).
TRANSFORMERS_REQUIREMENT = ">=5.16,<6"
_OLDEST, _NEWEST_MAJOR = Version("5.16"), Version("6")

# What a saved `config.json` says about the layout of its weights and fields; bumped whenever they change.
AUDIOCAP_FORMAT = 2

AUDIOCAP_ENCODER_TYPE = "audiocap_encoder"
AUDIOCAP_DECODER_TYPE = "audiocap_decoder"
WAVEFORM_ENCODER_TYPES = (
    "wav2vec2",
    "hubert",
    "wavlm",
    "data2vec-audio",
    "unispeech",
    "unispeech-sat",
    "wav2vec2-conformer",
)
# pretrained decoders: causal LMs with cross-attention that are a decoder stack + one linear head (the tested ones)
SUPPORTED_DECODER_TYPES = (AUDIOCAP_DECODER_TYPE, "bart", "gpt2")
SUPPORTED_ENCODER_TYPES = (
    AUDIOCAP_ENCODER_TYPE,
    "whisper",
    "audio-spectrogram-transformer",
    "clap_audio_model",
    *WAVEFORM_ENCODER_TYPES,
)


def check_transformers_version(version: str | None = None) -> None:
    """Raises ImportError with one line when the running transformers is outside `TRANSFORMERS_REQUIREMENT`."""
    found = Version(version or transformers.__version__)
    if not (_OLDEST <= Version(found.base_version) < _NEWEST_MAJOR):
        raise ImportError(
            f"this audio captioning model needs transformers{TRANSFORMERS_REQUIREMENT} (found {found}): "
            f"pip install 'transformers{TRANSFORMERS_REQUIREMENT}'"
        )


check_transformers_version()
logger = logging.get_logger(__name__)


def style_token(name: str) -> str:
    """The text of a style's token in the tokenizer."""
    return f"<style:{name}>"


def resolve_style(styles: dict | None, style: str | None, default: str | None = None):
    """`styles[style]` (for None, the default's: `default`, else the first style's), or one line saying why not."""
    if not styles:
        if style is None:
            return None
        raise ValueError(f"style={style!r}: this model was trained without styles (it has none to choose from)")
    if style is None:
        style = default if default in styles else next(iter(styles))
    if style not in styles:
        raise ValueError(f"unknown style {style!r}; this model's styles: {', '.join(styles)}")
    return styles[style]


class AudioCapConfigError(ValueError):
    """A config (or a saved `config.json`) this code cannot build a model from; one line naming what to change."""

    def located(self, folder) -> AudioCapConfigError:
        """The same error, naming the `config.json` of `folder` (once)."""
        message = str(self)
        if not folder or message.startswith(os.fspath(folder)):
            return self
        return AudioCapConfigError(f"{os.path.join(os.fspath(folder), 'config.json')}: {message}")


def _unknown_fields(cls: type[PretrainedConfig], fields: dict) -> list[str]:
    """Fields of a saved config that neither `cls` nor the running transformers' `PretrainedConfig` knows."""
    known = {f.name for f in dataclasses.fields(cls)} | set(PretrainedConfig().to_dict())
    known |= {"model_type", "transformers_version", "architectures", "auto_map", "_name_or_path", "torch_dtype"}
    known |= {"dtype", "attn_implementation", "tie_word_embeddings", "is_decoder", "add_cross_attention"}
    return sorted(k for k in fields if k not in known and not k.startswith("_"))  # "_x": transformers' own bookkeeping


def _check_heads(config: PretrainedConfig, heads: str) -> None:
    """d_model divisible by the number of heads; called after `PretrainedConfig.__post_init__`, which sets the values
    of the `attribute_map` aliases (hidden_size, num_attention_heads) given as kwargs."""
    if config.d_model % getattr(config, heads):
        raise AudioCapConfigError(
            f"{type(config).__name__}: d_model ({config.d_model}) must be divisible by {heads} ({getattr(config, heads)})"
        )


class AudioCapEncoderConfig(PretrainedConfig):
    r"""Built-in log-mel encoder: `num_conv_layers` Conv1d(kernel `conv_kernel_size`, stride `conv_stride`) + GELU
    (4x fewer frames with the defaults; with `conv_channels` > 0, Conv2d over (mel, time) with that many channels,
    strided on both axes and shift-invariant in frequency, then a linear map of channels x remaining mel bins to
    `d_model`, as ESPnet's Conv2dSubsampling), sinusoidal positions computed for the actual length (any length; nothing is
    padded to a fixed size), then `encoder_layers` pre-LN transformer layers with a key padding mask."""

    model_type = AUDIOCAP_ENCODER_TYPE
    base_config_key = "encoder"
    attribute_map = {
        "hidden_size": "d_model",
        "num_hidden_layers": "encoder_layers",
        "num_attention_heads": "encoder_attention_heads",
    }

    num_mel_bins: int = 80
    d_model: int = 192
    encoder_layers: int = 3
    encoder_attention_heads: int = 4
    encoder_ffn_dim: int = 768
    num_conv_layers: int = 2
    conv_kernel_size: int = 3
    conv_stride: int = 2
    conv_channels: int = 0
    dropout: float | int = 0.0
    attention_dropout: float | int = 0.0
    activation_dropout: float | int = 0.0
    activation_function: str = "gelu"
    layer_norm_eps: float = 1e-5
    init_std: float = 0.02

    def __post_init__(self, **kwargs: Any):
        super().__post_init__(**kwargs)
        if self.conv_kernel_size % 2 != 1:
            raise AudioCapConfigError(
                f"AudioCapEncoderConfig: conv_kernel_size must be odd, got {self.conv_kernel_size}"
            )
        _check_heads(self, "encoder_attention_heads")


class AudioCapDecoderConfig(PretrainedConfig):
    r"""Built-in caption decoder: learned token + position embeddings, `decoder_layers` pre-LN layers (causal
    self-attention with a KV cache, cross-attention to the audio), a final LayerNorm; the LM head lives on
    `AudioCapForConditionalGeneration`, tied to the token embeddings unless `tie_word_embeddings=False`."""

    model_type = AUDIOCAP_DECODER_TYPE
    base_config_key = "decoder"
    attribute_map = {
        "hidden_size": "d_model",
        "num_hidden_layers": "decoder_layers",
        "num_attention_heads": "decoder_attention_heads",
    }

    vocab_size: int = 512
    d_model: int = 192
    decoder_layers: int = 2
    decoder_attention_heads: int = 4
    decoder_ffn_dim: int = 768
    max_target_positions: int = 64
    dropout: float | int = 0.0
    attention_dropout: float | int = 0.0
    activation_dropout: float | int = 0.0
    activation_function: str = "gelu"
    layer_norm_eps: float = 1e-5
    init_std: float = 0.02
    use_cache: bool = True
    tie_word_embeddings: bool = True
    pad_token_id: int | None = 0
    bos_token_id: int | None = 2
    eos_token_id: int | None = 3
    decoder_start_token_id: int | None = 2
    is_decoder: bool = True
    add_cross_attention: bool = True

    def __post_init__(self, **kwargs: Any):
        super().__post_init__(**kwargs)
        _check_heads(self, "decoder_attention_heads")


def _sub_config(value: Any, key: str, builtin_cls: type[PretrainedConfig]) -> PretrainedConfig:
    """A sub-config given as None / dict / config -> a config object of a supported type, as
    `SpeechEncoderDecoderConfig` builds its parts with `AutoConfig.for_model`, except that the built-in classes are
    resolved here: a fresh interpreter running a saved folder's code has not registered them with `AutoConfig`."""
    if value is None:
        return builtin_cls()
    if not isinstance(value, (dict, PretrainedConfig)):
        raise AudioCapConfigError(
            f"AudioCapConfig.{key} must be a dict, a PretrainedConfig or None, got {type(value).__name__}"
        )
    fields = dict(value) if isinstance(value, dict) else {}
    model_type = fields.pop("model_type", builtin_cls.model_type) if isinstance(value, dict) else value.model_type
    supported = SUPPORTED_ENCODER_TYPES if key == "encoder" else SUPPORTED_DECODER_TYPES
    if model_type not in supported:
        what = "a pretrained audio encoder" if key == "encoder" else "a pretrained causal LM with cross-attention"
        raise AudioCapConfigError(
            f"AudioCapConfig.{key}: unsupported model_type {model_type!r}; expected {supported[0]!r} or {what} "
            f"({', '.join(supported[1:])})"
        )
    if isinstance(value, PretrainedConfig):
        return value
    if model_type == builtin_cls.model_type:
        return builtin_cls(**fields)
    try:
        return AutoConfig.for_model(model_type, **fields)
    except ValueError as err:
        raise AudioCapConfigError(
            f"AudioCapConfig.{key}: model_type {model_type!r} is unknown to transformers {transformers.__version__}"
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
            (multi-label binary cross-entropy; keyword-guided captioning, Koizumi et al., 2020). Training loss only.
            0 by default with a pretrained decoder (`from_encoder_decoder_configs`); see docs/experiments.md.
        vocab_size (`int`): decoder vocabulary size (the built-in decoder is sized from it).
        tie_word_embeddings (`bool`): tie the LM head to the decoder's input embeddings (the built-in decoder follows
            this value; a pretrained decoder keeps its own).
        pad_token_id / bos_token_id / eos_token_id / decoder_start_token_id: special ids (`<pad>`=0, `<sos>`=2,
            `<eos>`=3 for the word-level tokenizer).
        styles (`dict[str, int]`, *optional*): the corpus styles the model was trained with (docs/mixtures.md): each
            name and the id of its token, which the decoder sees right after the start token. `generate(style=NAME)`
            picks one. None: a model trained without styles.
        default_style (`str`, *optional*): the style `generate` uses when none is asked for (default: the first of
            `styles`; saved by name, as `config.json` sorts its keys).
        audiocap_format (`int`): the layout of the saved weights and fields; a folder of another format is refused
            with one line instead of loading with silently missing weights.
    """

    model_type = "audiocap"
    # Nested configs: serialised as such, and attention/dtype settings reach them. Declared the way transformers 5.16
    # reads it (`sub_configs`); later releases still honour a class that declares it (SpeechEncoderDecoderConfig did).
    sub_configs = {"encoder": AutoConfig, "decoder": AutoConfig}

    encoder: dict | PretrainedConfig | None = None
    decoder: dict | PretrainedConfig | None = None
    adapter_projection: bool = True
    adapter_pooling_stride: int = 1
    adapter_pooling_type: str = "avg"
    freeze_encoder: bool = False
    keyword_loss_weight: float | int = 0.5
    vocab_size: int | None = None
    tie_word_embeddings: bool = True
    pad_token_id: int | None = 0
    bos_token_id: int | None = 2
    eos_token_id: int | None = 3
    decoder_start_token_id: int | None = 2
    use_cache: bool = True
    is_encoder_decoder: bool = True
    styles: dict[str, int] | None = None
    default_style: str | None = None
    audiocap_format: int = AUDIOCAP_FORMAT

    def __post_init__(self, **kwargs: Any):
        # the sub-configs first: PretrainedConfig's own post-init sets the attention settings on them
        self.encoder = _sub_config(self.encoder, "encoder", AudioCapEncoderConfig)
        self.decoder = _sub_config(self.decoder, "decoder", AudioCapDecoderConfig)
        if self.adapter_pooling_type not in ("avg", "max"):
            raise AudioCapConfigError(
                f"AudioCapConfig: adapter_pooling_type must be 'avg' or 'max', got {self.adapter_pooling_type!r}"
            )
        if int(self.adapter_pooling_stride) < 1:
            raise AudioCapConfigError(
                f"AudioCapConfig: adapter_pooling_stride must be >= 1, got {self.adapter_pooling_stride}"
            )
        if self.keyword_loss_weight < 0:
            raise AudioCapConfigError(
                f"AudioCapConfig: keyword_loss_weight must be >= 0, got {self.keyword_loss_weight}"
            )
        self.adapter_pooling_stride = int(self.adapter_pooling_stride)
        self.keyword_loss_weight = float(self.keyword_loss_weight)
        if self.vocab_size is None:
            self.vocab_size = self.decoder.vocab_size
        elif not self.uses_builtin_decoder and self.vocab_size != self.decoder.vocab_size:
            raise AudioCapConfigError(
                f"AudioCapConfig: vocab_size ({self.vocab_size}) differs from the pretrained decoder's vocab_size "
                f"({self.decoder.vocab_size})"
            )
        if self.styles:
            self.styles = {str(k): int(v) for k, v in self.styles.items()}
            self.default_style = self.default_style or next(iter(self.styles))
        else:
            self.styles = None
        super().__post_init__(**kwargs)
        self.sync_sub_configs()

    def style_token_id(self, style: str | None) -> int:
        """The token id of a style (None: `default_style`), in one line if the model has none or not this one."""
        return resolve_style(self.styles, style, self.default_style)

    @property
    def uses_builtin_encoder(self) -> bool:
        return self.encoder.model_type == AUDIOCAP_ENCODER_TYPE

    @property
    def uses_builtin_decoder(self) -> bool:
        return self.decoder.model_type == AUDIOCAP_DECODER_TYPE

    @property
    def decoder_max_positions(self) -> int | None:
        """How many tokens the decoder can read (None: no limit)."""
        for name in ("max_target_positions", "max_position_embeddings", "n_positions"):
            value = getattr(self.decoder, name, None)
            if isinstance(value, int):
                return value
        return None

    def sync_sub_configs(self) -> None:
        """Makes the sub-configs agree with the top-level fields, which are the ones users and transformers set
        (`config.vocab_size = ...`, `config.tie_word_embeddings = False`): the built-in decoder takes the vocabulary
        size, tying and special ids; any decoder cross-attends, no encoder does. The model calls this when it is
        built, so a field changed after the config was made still reaches the part it describes."""
        self.encoder.is_decoder = False
        self.encoder.add_cross_attention = False
        self.decoder.is_decoder = True
        self.decoder.add_cross_attention = True
        if self.uses_builtin_decoder:
            self.decoder.vocab_size = self.vocab_size
            self.decoder.tie_word_embeddings = self.tie_word_embeddings
            for name in ("pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id"):
                setattr(self.decoder, name, getattr(self, name))

    def get_text_config(self, decoder=None, encoder=None) -> PretrainedConfig:
        """`PretrainedConfig.get_text_config`; with `decoder=True`, the decoder's config as `generate` reads it to size
        its caches: `num_hidden_layers` is the decoder's number of layers (a BART decoder's config maps it to its
        encoder's)."""
        config = super().get_text_config(decoder=decoder, encoder=encoder)
        layers = getattr(config, "decoder_layers", None)
        if decoder and not encoder and config is self.decoder and layers not in (None, config.num_hidden_layers):
            config = copy.deepcopy(config)
            config.num_hidden_layers = layers
        return config

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **kwargs: Any):
        """`PretrainedConfig.from_dict` (what every `from_pretrained` reads a `config.json` through), refusing with
        one line a config whose weights and fields are laid out for another version of this code, instead of
        building a model that silently ignores what it does not know."""
        try:
            if config_dict.get("model_type", cls.model_type) == cls.model_type:
                cls.check_saved_fields(config_dict)
            return super().from_dict(config_dict, **kwargs)
        except AudioCapConfigError as err:
            raise err.located(kwargs.get("name_or_path")) from None

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        try:
            return super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        except AudioCapConfigError as err:
            raise err.located(pretrained_model_name_or_path) from None

    @classmethod
    def check_saved_fields(cls, config_dict: dict[str, Any]) -> None:
        """A saved config of another `audiocap_format` is refused; fields this code does not read are kept (as
        transformers keeps any attribute set on a config) with one warning line naming them."""
        found = config_dict.get("audiocap_format", 1)
        if found > AUDIOCAP_FORMAT:
            raise AudioCapConfigError(
                f"saved by a newer hf_audiocap (format {found}; this code reads format "
                f"{AUDIOCAP_FORMAT}): upgrade hf_audiocap, or load with trust_remote_code=True to run the code saved "
                "with the model"
            )
        if found < AUDIOCAP_FORMAT:
            raise AudioCapConfigError(
                f"saved by hf_audiocap 0.1 (format {found}; this code reads format {AUDIOCAP_FORMAT}, "
                "whose weights are laid out differently): load it with trust_remote_code=True under "
                "transformers 5.24, or train it again"
            )
        saved_by = config_dict.get("transformers_version")
        if saved_by and Version(saved_by) > Version(transformers.__version__):
            return  # fields we do not know may be the newer transformers' own
        parts = [("", cls, config_dict)]
        for key, builtin in (("encoder", AudioCapEncoderConfig), ("decoder", AudioCapDecoderConfig)):
            sub = config_dict.get(key)
            if isinstance(sub, dict) and sub.get("model_type") == builtin.model_type:
                parts.append((f"{key}.", builtin, sub))
        unknown = [prefix + name for prefix, part_cls, fields in parts for name in _unknown_fields(part_cls, fields)]
        if unknown:
            logger.warning(
                "config.json: field(s) %s are not read by this version of the model code (kept as attributes)",
                ", ".join(unknown),
            )

    @classmethod
    def from_encoder_decoder_configs(
        cls, encoder_config: PretrainedConfig, decoder_config: PretrainedConfig, **kwargs: Any
    ) -> AudioCapConfig:
        """An `AudioCapConfig` from an encoder config and a decoder config. Special token ids and tying default to a
        pretrained decoder's own."""
        if decoder_config.model_type != AUDIOCAP_DECODER_TYPE:
            for name in ("pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id"):
                value = getattr(decoder_config, name, None)
                if name == "decoder_start_token_id" and value is None:
                    value = getattr(decoder_config, "bos_token_id", None)
                if value is not None:
                    kwargs.setdefault(name, value)
            kwargs.setdefault("tie_word_embeddings", getattr(decoder_config, "tie_word_embeddings", True))
            # the keyword term was measured to help the built-in word-level decoder only (docs/experiments.md)
            kwargs.setdefault("keyword_loss_weight", 0.0)
        return cls(encoder=encoder_config.to_dict(), decoder=decoder_config.to_dict(), **kwargs)


__all__ = ["AudioCapConfig", "AudioCapConfigError", "AudioCapDecoderConfig", "AudioCapEncoderConfig"]
