"""The audio side of the model: an audio encoder (built-in or pretrained) -> adapter -> states at the decoder's width.

Ships with every saved model, beside `modeling_audiocap.py` (imports only `torch`, `transformers` and the
configuration). `AudioCapAudioEncoder` is what `model.get_encoder()` returns. The built-in `AudioCapEncoder` (log-mel
convs + pre-LN layers) is defined here with the attention its layers and the decoder's share: it runs
`F.scaled_dot_product_attention` with boolean masks (safe under fp16/bf16 autocast), or, when attention weights are
asked for, the same softmax written out. The pretrained encoders from transformers
are each run so that a clip gives the same states alone or padded in a batch; each kind turns our inputs and their mask
into `(states, frame_mask, hidden_states, attentions)`, where `frame_mask` `(batch, positions)` marks the real positions
(None: all real):

* `whisper`: run on the real length: the positional embeddings are sliced to the clip instead of padding every clip to
  30 s, and the frame mask (subsampled by the two convs) is the self-attention key padding mask. At most 30 s.
* waveform encoders (`WAVEFORM_ENCODER_TYPES`: wav2vec2, HuBERT, WavLM, ...): `input_values (batch, samples)` with a
  sample mask; padded samples are zeroed and the output frame mask follows the conv feature extractor. (Checkpoints
  with `feat_extract_norm="group"` normalise over time including padding, so they are not exactly batch invariant;
  that is the model, not this wrapper.)
* `audio-spectrogram-transformer` (AST) and `clap_audio_model` (the CLAP audio tower) take a fixed input size: the
  features are zero-padded (padded frames zeroed first) or truncated to it, and every output position is kept (their
  patch grids mix time and frequency, so no exact frame mask exists).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, ClapAudioModel, PreTrainedModel
from transformers import initialization as hf_init
from transformers.activations import ACT2FN
from transformers.cache_utils import EncoderDecoderCache
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutput

from .configuration_audiocap import (
    AUDIOCAP_ENCODER_TYPE,
    SUPPORTED_ENCODER_TYPES,
    WAVEFORM_ENCODER_TYPES,
    AudioCapConfig,
    AudioCapEncoderConfig,
)

# the attention's key biases, which folders saved before 2026-12-05 hold: dropped on load (exactly: see
# AudioCapAttention), so those folders load into today's layout without a warning and caption as before
LEGACY_KEY_BIASES = [r"(self_attn|encoder_attn)\.k_proj\.bias$"]


def lengths_to_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(batch,) lengths -> (batch, max_len) boolean mask of the real positions."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def conv_output_lengths(lengths, convs):
    """The one length rule: what a stack of convolutions, given as `(kernel, stride, padding)` triples, leaves of each
    length along one axis (`floor((length + 2 * padding - kernel) / stride) + 1` per layer); a tensor or an int."""
    for kernel, stride, padding in convs:
        lengths = (lengths + 2 * padding - kernel) // stride + 1
    return lengths


def encoder_kind(config) -> str:
    model_type = getattr(config, "model_type", None)
    if model_type == AUDIOCAP_ENCODER_TYPE:
        return "builtin"
    if model_type in WAVEFORM_ENCODER_TYPES:
        return "waveform"
    kinds = {"whisper": "whisper", "audio-spectrogram-transformer": "ast", "clap_audio_model": "clap"}
    if model_type not in kinds:
        raise ValueError(
            f"unsupported encoder model_type {model_type!r}: expected one of {', '.join(SUPPORTED_ENCODER_TYPES)}"
        )
    return kinds[model_type]


def build_pretrained_encoder(config) -> PreTrainedModel:
    """A randomly initialised pretrained-encoder architecture from its config (weights come from `from_pretrained`)."""
    if encoder_kind(config) == "clap":
        return ClapAudioModel(config)
    model = AutoModel.from_config(config)
    return model.get_encoder() if getattr(config, "is_encoder_decoder", False) else model  # Whisper: its encoder


def load_pretrained_encoder(name_or_path: str, config, **kwargs) -> PreTrainedModel:
    """A pretrained encoder's weights (`from_pretrained` of its class; Whisper: the encoder of the full model)."""
    loader = ClapAudioModel if encoder_kind(config) == "clap" else AutoModel
    model = loader.from_pretrained(name_or_path, config=config, **kwargs)
    return model.get_encoder() if getattr(config, "is_encoder_decoder", False) else model


def encoder_output_dim(config) -> int:
    kind = encoder_kind(config)
    if kind == "clap":
        return int(config.patch_embeds_hidden_size * 2 ** (len(config.depths) - 1))
    if kind == "waveform":
        return getattr(config, "output_hidden_size", None) or config.hidden_size
    return config.hidden_size


def waveform_frame_lengths(config, sample_lengths: torch.Tensor) -> torch.Tensor:
    """Frames a wav2vec2-style encoder makes of each clip: its conv feature extractor (no padding), then, with
    `add_adapter`, its stride-`adapter_stride` adapter layers."""
    convs = list(zip(config.conv_kernel, config.conv_stride, [0] * len(config.conv_kernel)))
    if getattr(config, "add_adapter", False):
        convs += [(1, config.adapter_stride, 0)] * config.num_adapter_layers
    return conv_output_lengths(sample_lengths, convs)


def encode_pretrained(
    kind: str,
    model: PreTrainedModel,
    feats: torch.Tensor,
    mask: torch.Tensor | None,
    output_attentions: bool = False,
    output_hidden_states: bool = False,
):
    """Runs a pretrained encoder of `kind` on `feats` (`input_features (batch, n_mels, frames)`, or `input_values
    (batch, samples)` for waveform encoders) with its input `mask` (None: nothing padded)."""
    if kind == "whisper":
        return _encode_whisper(model, feats, mask, output_attentions, output_hidden_states)
    if kind == "waveform":
        if mask is not None:
            feats = feats * mask.to(feats.dtype)
        out = model(
            feats,
            attention_mask=mask,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        states, frame_mask = out.last_hidden_state, None
        if mask is not None:
            frame_mask = lengths_to_mask(waveform_frame_lengths(model.config, mask.long().sum(-1)), states.shape[1])
        return states, frame_mask, out.hidden_states, out.attentions
    if kind == "ast":
        feats = _fixed_length(feats, mask, model.config.max_length)
        out = model(
            feats.transpose(1, 2),
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        return out.last_hidden_state, None, out.hidden_states, out.attentions
    if kind == "clap":
        config = model.config
        feats = _fixed_length(feats, mask, config.spec_size * (config.spec_size // config.num_mel_bins))
        out = model(input_features=feats.transpose(1, 2)[:, None], return_dict=True)
        return out.last_hidden_state.flatten(2).transpose(1, 2), None, None, None  # (batch, C, H, W) -> H * W tokens
    raise ValueError(f"not a pretrained encoder kind: {kind!r}")


def _fixed_length(feats: torch.Tensor, mask: torch.Tensor | None, target: int) -> torch.Tensor:
    """(batch, n_mels, frames) -> padded frames zeroed, then zero-padded / truncated to `target` frames."""
    if mask is not None:
        feats = feats * mask.to(feats.dtype)[:, None, :]
    if feats.shape[-1] < target:
        feats = F.pad(feats, (0, target - feats.shape[-1]))
    return feats[..., :target]


def _encode_whisper(enc: nn.Module, feats, mask, output_attentions, output_hidden_states):
    """The Whisper encoder's own modules (convs, positions, layers, final norm), run on the real number of frames."""
    convs = [(c.kernel_size[0], c.stride[0], c.padding[0]) for c in (enc.conv1, enc.conv2)]
    max_frames = enc.embed_positions.num_embeddings * enc.conv1.stride[0] * enc.conv2.stride[0]
    if feats.shape[-1] > max_frames:
        raise ValueError(f"the Whisper encoder takes at most {max_frames} frames (30 s), got {feats.shape[-1]}")
    lengths = mask.long().sum(-1) if mask is not None else None
    x = feats.to(enc.conv1.weight.dtype)
    for conv, rule in zip((enc.conv1, enc.conv2), convs):
        if lengths is not None:  # padding zeroed before each conv, so a clip's states do not depend on its batch
            x = x * lengths_to_mask(lengths, x.shape[-1]).to(x.dtype)[:, None, :]
            lengths = conv_output_lengths(lengths, [rule])
        x = F.gelu(conv(x))
    hidden = x.transpose(1, 2)
    hidden = hidden + enc.embed_positions.weight[: hidden.shape[1]].to(hidden.dtype)
    hidden = F.dropout(hidden, p=enc.config.dropout, training=enc.training)
    frame_mask = attn_mask = None
    if lengths is not None:
        frame_mask = lengths_to_mask(lengths, hidden.shape[1])
        attn_mask = create_bidirectional_mask(config=enc.config, inputs_embeds=hidden, attention_mask=frame_mask)
    all_hidden = (hidden,) if output_hidden_states else None
    for layer in enc.layers:
        hidden = layer(hidden, attn_mask)
        if output_hidden_states:
            all_hidden += (hidden,)
    # per-layer attention weights would need the layers' internals; Whisper's own forward does not return them either
    # unless its attention implementation is eager
    return enc.layer_norm(hidden), frame_mask, all_hidden, None


# ----------------------------------------------------------------------------------------------------------------------
# The built-in encoder: attention, feed-forward, pre-LN layers (the decoder's layers reuse the first two)
# ----------------------------------------------------------------------------------------------------------------------
def sinusoids(length: int, channels: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Whisper-style sinusoidal positions for `length` frames (computed in float32, any length)."""
    half = channels // 2
    log_timescale = math.log(10000.0) / max(half - 1, 1)
    inv = torch.exp(-log_timescale * torch.arange(half, device=device, dtype=torch.float32))
    t = torch.arange(length, device=device, dtype=torch.float32)[:, None] * inv[None, :]
    return F.pad(torch.cat([t.sin(), t.cos()], dim=1), (0, channels - 2 * half)).to(dtype)


def key_padding_mask(mask: torch.Tensor | None) -> torch.Tensor | None:
    """(batch, keys) 0/1 -> boolean attention mask (batch, 1, 1, keys); None when every key is real."""
    if mask is None or bool(mask.bool().all()):
        return None
    return mask.bool()[:, None, None, :]


def attend(query, key, value, mask=None, is_causal=False, dropout=0.0, output_attentions=False):
    """Scaled dot-product attention with a boolean `mask` (True = attend). With `output_attentions` the same softmax
    is written out so its weights can be returned (SDPA does not give them)."""
    if not output_attentions:
        out = F.scaled_dot_product_attention(
            query, key, value, attn_mask=mask, dropout_p=dropout, is_causal=is_causal and mask is None
        )
        return out, None
    scores = (query @ key.transpose(-1, -2)) * query.shape[-1] ** -0.5
    if is_causal and mask is None:
        tgt, src = scores.shape[-2:]
        mask = torch.ones(tgt, src, dtype=torch.bool, device=scores.device).tril(src - tgt)
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    weights = scores.softmax(dim=-1)
    return F.dropout(weights, p=dropout) @ value, weights


class AudioCapAttention(nn.Module):
    """Multi-head attention. Self-attention appends to `cache.self_attention_cache`; cross-attention projects the audio
    states once per generation into `cache.cross_attention_cache` and reads them back at every later step."""

    def __init__(
        self, embed_dim: int, num_heads: int, dropout: float = 0.0, layer_idx: int | None = None, cross=False
    ):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = dropout
        self.layer_idx = layer_idx
        self.is_cross_attention = cross
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        # no key bias, as in Whisper: q.(k + b) adds the same q.b to every score of a query's row, which the softmax
        # cancels, so such a bias never learns (its gradient is round-off)
        self.k_proj = nn.Linear(embed_dim, embed_dim, bias=False)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], x.shape[1], self.num_heads, self.head_dim).transpose(1, 2)

    def forward(
        self,
        hidden_states: torch.Tensor,
        key_value_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        is_causal: bool = False,
        cache: EncoderDecoderCache | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        query = self._heads(self.q_proj(hidden_states))
        if self.is_cross_attention and cache is not None and cache.is_updated.get(self.layer_idx, False):
            layer = cache.cross_attention_cache.layers[self.layer_idx]
            key, value = layer.keys, layer.values
        else:
            source = key_value_states if self.is_cross_attention else hidden_states
            key, value = self._heads(self.k_proj(source)), self._heads(self.v_proj(source))
            if cache is not None:
                part = cache.cross_attention_cache if self.is_cross_attention else cache.self_attention_cache
                key, value = part.update(key, value, self.layer_idx)
                if self.is_cross_attention:
                    cache.is_updated[self.layer_idx] = True
        out, weights = attend(
            query, key, value, attention_mask, is_causal, self.dropout if self.training else 0.0, output_attentions
        )
        out = out.transpose(1, 2).reshape(*hidden_states.shape[:2], -1)
        return self.out_proj(out), weights


class AudioCapFeedForward(nn.Module):
    def __init__(self, d_model: int, ffn_dim: int, activation: str, activation_dropout: float):
        super().__init__()
        self.fc1 = nn.Linear(d_model, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, d_model)
        self.activation_fn = ACT2FN[activation]
        self.activation_dropout = activation_dropout

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = self.activation_fn(self.fc1(hidden_states))
        hidden_states = F.dropout(hidden_states, p=self.activation_dropout, training=self.training)
        return self.fc2(hidden_states)


class AudioCapEncoderLayer(GradientCheckpointingLayer):
    """Pre-LN transformer layer: self-attention, feed-forward, each a residual branch."""

    def __init__(self, config: AudioCapEncoderConfig):
        super().__init__()
        d = config.d_model
        self.self_attn_layer_norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.self_attn = AudioCapAttention(d, config.encoder_attention_heads, config.attention_dropout)
        self.final_layer_norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.mlp = AudioCapFeedForward(
            d, config.encoder_ffn_dim, config.activation_function, config.activation_dropout
        )
        self.dropout = config.dropout

    def forward(self, hidden_states, attention_mask=None, output_attentions=False):
        attn, weights = self.self_attn(
            self.self_attn_layer_norm(hidden_states),
            attention_mask=attention_mask,
            output_attentions=output_attentions,
        )
        hidden_states = hidden_states + F.dropout(attn, p=self.dropout, training=self.training)
        mlp = self.mlp(self.final_layer_norm(hidden_states))
        return hidden_states + F.dropout(mlp, p=self.dropout, training=self.training), weights


class AudioCapEncoder(PreTrainedModel):
    """Built-in log-mel encoder: strided Conv1d + GELU front end (padded frames zeroed before each conv, so a clip gives
    the same states alone or padded into a batch), sinusoidal positions for the actual length, pre-LN layers."""

    config_class = AudioCapEncoderConfig
    base_model_prefix = "audiocap_encoder"
    main_input_name = "input_features"
    input_modalities = ("audio",)
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    # each part names only its own layer: a composite gathers its parts' (post_init), and a name that matches no module
    # (a built-in decoder's layer in a model with a pretrained one) stops FSDP's transformer-based wrap before training
    _no_split_modules = ["AudioCapEncoderLayer"]
    _keys_to_ignore_on_load_unexpected = LEGACY_KEY_BIASES

    def __init__(self, config: AudioCapEncoderConfig):
        super().__init__(config)
        k, s, n = config.conv_kernel_size, config.conv_stride, config.num_conv_layers
        # Conv1d takes the mel bins as channels (Whisper); Conv2d slides over them too, and its square kernel and
        # stride give time the same length rule, so `conv_rules` serves both
        conv, channels = (nn.Conv2d, [1] + [config.conv_channels] * n) if config.conv_channels else (nn.Conv1d, None)
        channels = channels or [config.num_mel_bins] + [config.d_model] * n
        self.convs = nn.ModuleList(
            conv(c_in, c_out, kernel_size=k, stride=s, padding=k // 2) for c_in, c_out in zip(channels, channels[1:])
        )
        if config.conv_channels:
            mel_bins = conv_output_lengths(config.num_mel_bins, self.conv_rules())
            self.conv_proj = nn.Linear(config.conv_channels * mel_bins, config.d_model)
        self.layers = nn.ModuleList(AudioCapEncoderLayer(config) for _ in range(config.encoder_layers))
        self.layer_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.gradient_checkpointing = False
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        # transformers' documented hook for a model's own initialisation. Linear/Embedding: normal(0, init_std);
        # LayerNorm: ones/zeros (the generic init). The convs: He-normal, std sqrt(2 / fan_in): with normal(0, 0.02)
        # they shrink unit-variance log-mels to RMS 0.04 under sinusoidal positions of RMS 0.7, and the encoder starts
        # out seeing mostly positions. (`hf_init` leaves weights loaded from a checkpoint.)
        super()._init_weights(module)
        if isinstance(module, (nn.Conv1d, nn.Conv2d)):
            hf_init.normal_(module.weight, std=math.sqrt(2.0 / module.weight[0].numel()))

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """`PreTrainedModel.from_pretrained`, safetensors only unless `use_safetensors=False` is passed."""
        kwargs.setdefault("use_safetensors", True)
        return super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)

    def conv_rules(self) -> list[tuple[int, int, int]]:
        return [(c.kernel_size[0], c.stride[0], c.padding[0]) for c in self.convs]

    def forward(
        self,
        input_features: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> AudioCapEncoderOutput:
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = (
            self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        )
        lengths = attention_mask.long().sum(-1) if attention_mask is not None else None
        x = input_features[:, None] if self.config.conv_channels else input_features
        for conv, rule in zip(self.convs, self.conv_rules()):
            if lengths is not None:
                frames = lengths_to_mask(lengths, x.shape[-1]).to(x.dtype)
                x = x * frames.view(frames.shape[0], *[1] * (x.dim() - 2), -1)
                lengths = conv_output_lengths(lengths, [rule])
            x = F.gelu(conv(x))
        if self.config.conv_channels:  # (batch, channels, mel bins, frames) -> (batch, frames, d_model)
            x = self.conv_proj(x.permute(0, 3, 1, 2).flatten(2)).transpose(1, 2)
        hidden = x.transpose(1, 2)
        hidden = hidden + sinusoids(hidden.shape[1], hidden.shape[2], hidden.device, hidden.dtype)
        hidden = F.dropout(hidden, p=self.config.dropout, training=self.training)
        frame_mask = lengths_to_mask(lengths, hidden.shape[1]) if lengths is not None else None
        mask = key_padding_mask(frame_mask)
        all_hidden, all_attentions = ((hidden,) if output_hidden_states else None), (() if output_attentions else None)
        for layer in self.layers:
            hidden, weights = layer(hidden, mask, output_attentions)
            if output_hidden_states:
                all_hidden += (hidden,)
            if output_attentions:
                all_attentions += (weights,)
        output = AudioCapEncoderOutput(
            last_hidden_state=self.layer_norm(hidden),
            hidden_states=all_hidden,
            attentions=all_attentions,
            attention_mask=frame_mask,
        )
        return output if (self.config.return_dict if return_dict is None else return_dict) else output.to_tuple()


@dataclass
class AudioCapEncoderOutput(BaseModelOutput):
    """`BaseModelOutput` of the audio side at decoder width, + the frame `attention_mask` (bool `(batch, positions)`,
    None = all real) and, in training with the keyword head, `keyword_logits` `(batch, vocab)`. Travelling inside
    `encoder_outputs`, both are expanded by `generate` with the states for beam search and sampling."""

    attention_mask: torch.Tensor | None = None
    keyword_logits: torch.Tensor | None = None


# ----------------------------------------------------------------------------------------------------------------------
# The audio side: encoder + adapter (+ keyword head)
# ----------------------------------------------------------------------------------------------------------------------
class AudioCapAdapter(nn.Module):
    """Masked temporal pooling (optional) + Linear/LayerNorm projection from the encoder width to the decoder width."""

    def __init__(self, in_dim: int, out_dim: int, projection: bool, stride: int, pooling: str):
        super().__init__()
        self.stride = stride
        self.pooling = pooling
        self.proj = nn.Linear(in_dim, out_dim) if projection or in_dim != out_dim else None
        self.layer_norm = nn.LayerNorm(out_dim) if self.proj is not None else None

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.stride > 1:
            hidden, mask = self.pool(hidden, mask)
        if self.proj is not None:
            hidden = self.layer_norm(self.proj(hidden))
        return hidden, mask

    def pool(self, hidden: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Windows of `stride` positions, averaged (or max-pooled) over their real positions only."""
        bsz, length, dim = hidden.shape
        if mask is None:
            mask = torch.ones(bsz, length, dtype=torch.bool, device=hidden.device)
        pad = (-length) % self.stride
        hidden, mask = F.pad(hidden, (0, 0, 0, pad)), F.pad(mask, (0, pad), value=False)
        windows, real = hidden.view(bsz, -1, self.stride, dim), mask.view(bsz, -1, self.stride)
        count = real.sum(-1)
        if self.pooling == "max":
            filled = windows.masked_fill(~real[..., None], torch.finfo(hidden.dtype).min)
            pooled = filled.amax(2).masked_fill((count == 0)[..., None], 0.0)
        else:
            pooled = (windows * real[..., None].to(hidden.dtype)).sum(2) / count.clamp(min=1)[..., None].to(
                hidden.dtype
            )
        return pooled, count > 0


class FrozenEncoderCache:
    """The states of a frozen pretrained encoder, kept per clip: a clip seen again (the next epoch, the next
    validation) is looked up by the bytes of its features rather than encoded again. Training then costs the encoder's
    forward pass once per clip, not once per epoch. Only for features that are the same every time they are seen
    (no SpecAugment, no mixup: the recipes refuse those), and only while the encoder is frozen. Each clip's states are
    its own: the pretrained encoders run on each clip's real length, so they do not depend on the rest of the batch."""

    def __init__(self, max_clips: int | None = 50_000, store=None):
        self.max_clips = max_clips  # None: no bound (a store on disk)
        # key -> states; any mapping with `get` and item assignment (the recipes' `encoder_cache_dir` passes a folder
        # of files, hf_audiocap.training.encoder_store, so that later runs skip the encoder too)
        self.states = {} if store is None else store
        self.hits = self.misses = 0

    @staticmethod
    def _key(feats: torch.Tensor, length: int) -> bytes:
        return hashlib.blake2b(feats[..., :length].contiguous().cpu().numpy().tobytes(), digest_size=16).digest()

    def __call__(self, kind: str, model: nn.Module, feats: torch.Tensor, mask: torch.Tensor | None):
        lengths = mask.long().sum(-1).tolist() if mask is not None else [feats.shape[-1]] * feats.shape[0]
        keys = [self._key(feats[i], n) for i, n in enumerate(lengths)]
        found = [self.states.get(k) for k in keys]
        todo = [i for i, states in enumerate(found) if states is None]
        self.hits += len(keys) - len(todo)
        self.misses += len(todo)
        fresh = {}
        if todo:
            rows = torch.tensor(todo, device=feats.device)
            sub_mask = mask.index_select(0, rows) if mask is not None else None
            was_training = model.training
            model.eval()  # one fixed output per clip: no dropout sample is frozen into the cache
            with torch.no_grad():
                states, frame_mask, _, _ = encode_pretrained(kind, model, feats.index_select(0, rows), sub_mask)
            model.train(was_training)
            for j, i in enumerate(todo):
                fresh[i] = states[j, : int(frame_mask[j].sum())] if frame_mask is not None else states[j]
                if self.max_clips is None or len(self.states) < self.max_clips:
                    self.states[keys[i]] = fresh[i].clone()  # not a view that holds the whole batch
        per_clip = [fresh[i] if states is None else states.to(feats.device) for i, states in enumerate(found)]
        width = max(x.shape[0] for x in per_clip)
        out = per_clip[0].new_zeros(len(per_clip), width, per_clip[0].shape[-1])
        for i, x in enumerate(per_clip):
            out[i, : x.shape[0]] = x
        sizes = torch.tensor([x.shape[0] for x in per_clip], device=out.device)
        frame_mask = None if bool((sizes == width).all()) else lengths_to_mask(sizes, width)
        return out, frame_mask


class AudioCapAudioEncoder(nn.Module):
    """Audio -> states at decoder width: the encoder (built-in or pretrained) + the adapter, and in training the keyword
    head's estimate. `get_encoder()` returns this module, so `generate` runs it once per call."""

    def __init__(self, config: AudioCapConfig, encoder: PreTrainedModel | None = None):
        super().__init__()
        self.config = config  # the composite config: output_attentions / output_hidden_states when not passed
        self.kind = encoder_kind(config.encoder)
        self.model = encoder if encoder is not None else build_pretrained_encoder(config.encoder)
        # the encoder's layer classes, passed up: PreTrainedModel.post_init gathers only its direct children's, and
        # FSDP's transformer-based wrap and device maps read the result
        self._no_split_modules = list(getattr(self.model, "_no_split_modules", None) or [])
        self.main_input_name = "input_values" if self.kind == "waveform" else "input_features"
        width = config.decoder.hidden_size
        self.adapter = AudioCapAdapter(
            encoder_output_dim(config.encoder),
            width,
            config.adapter_projection,
            config.adapter_pooling_stride,
            config.adapter_pooling_type,
        )
        self.keyword_head = nn.Linear(width, config.vocab_size) if config.keyword_loss_weight > 0 else None
        # words that are no keywords
        self.special_ids = [
            i for i in (config.pad_token_id, config.eos_token_id, config.bos_token_id) if i is not None
        ]
        # set by the recipes (`cache_encoder_outputs`) for a frozen pretrained encoder; never saved with the model
        self.frozen_cache: FrozenEncoderCache | None = None

    def check_input(self, feats: torch.Tensor | None, mask: torch.Tensor | None) -> None:
        name = self.main_input_name
        if feats is None:
            raise ValueError(f"the {self.kind} encoder expects `{name}`, got None")
        if feats.shape[0] == 0:
            raise ValueError(f"empty batch: `{name}` has batch size 0")
        if self.kind == "waveform" and (feats.ndim != 2 or feats.shape[-1] == 0):
            raise ValueError(f"expected `input_values` of shape (batch, samples), got {tuple(feats.shape)}")
        n_mels = getattr(self.model.config, "num_mel_bins", None)
        if self.kind != "waveform" and (feats.ndim != 3 or feats.shape[1] != n_mels or feats.shape[-1] == 0):
            raise ValueError(
                f"expected `input_features` of shape (batch, n_mels={n_mels}, frames>0), got {tuple(feats.shape)}"
            )
        if mask is not None:
            if mask.shape != (feats.shape[0], feats.shape[-1]):
                raise ValueError(
                    f"attention_mask shape {tuple(mask.shape)} does not match the audio input (batch, "
                    f"{'samples' if self.kind == 'waveform' else 'frames'}) = ({feats.shape[0]}, {feats.shape[-1]})"
                )
            if bool((mask.sum(-1) == 0).any()):
                raise ValueError("attention_mask: a clip in the batch has no valid frame (all zeros)")

    def forward(
        self,
        input_features: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        input_values: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> AudioCapEncoderOutput:
        feats = input_values if self.kind == "waveform" else input_features
        if feats is None:  # be lenient about the name of the audio input
            feats = input_features if input_features is not None else input_values
        self.check_input(feats, attention_mask)
        if attention_mask is not None and bool(attention_mask.bool().all()):
            attention_mask = None
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = (
            self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        )
        if self.kind == "builtin":
            out = self.model(feats, attention_mask, output_attentions, output_hidden_states, return_dict=True)
            states, mask, hidden_states, attentions = (
                out.last_hidden_state,
                out.attention_mask,
                out.hidden_states,
                out.attentions,
            )
        elif self.frozen_cache is not None and not (output_attentions or output_hidden_states):
            states, mask = self.frozen_cache(self.kind, self.model, feats, attention_mask)
            hidden_states = attentions = None
        else:
            states, mask, hidden_states, attentions = encode_pretrained(
                self.kind, self.model, feats, attention_mask, output_attentions, output_hidden_states
            )
        states, mask = self.adapter(states, mask)
        keyword_logits = None
        if self.keyword_head is not None and self.training:
            # the masked mean of the adapted states, read by a linear multi-label head
            weights = mask.to(states.dtype).unsqueeze(-1) if mask is not None else torch.ones_like(states[..., :1])
            keyword_logits = self.keyword_head((states * weights).sum(1) / weights.sum(1).clamp(min=1.0))
        output = AudioCapEncoderOutput(
            last_hidden_state=states,
            hidden_states=hidden_states,
            attentions=attentions,
            attention_mask=mask,
            keyword_logits=keyword_logits,
        )
        return output if (self.config.return_dict if return_dict is None else return_dict) else output.to_tuple()

    def keyword_loss(self, logits: torch.Tensor, labels: torch.Tensor, num_items_in_batch=None) -> torch.Tensor:
        """Multi-label keyword estimation, one row per caption: binary cross-entropy against the set of words in the
        caption, balanced: the mean over the words present plus the mean over the words absent. Its scale does not
        grow with the vocabulary (about 1.4 at initialisation whether 4k words or 50k subwords), so it cannot dwarf
        the caption cross-entropy; a sum over the vocabulary would (about 0.7 x vocabulary / words present).
        Each row weighs as many tokens as it has, normalised like the caption term, so DDP and gradient accumulation
        give the loss of one big batch."""
        logits = logits.float()
        targets = torch.zeros_like(logits)
        targets.scatter_add_(1, labels.clamp(min=0), (labels >= 0).to(targets.dtype)).clamp_(max=1.0)
        targets[:, self.special_ids] = 0.0
        absent = torch.ones_like(targets)
        absent[:, self.special_ids] = 0.0  # special tokens are neither keywords nor non-keywords
        absent -= targets
        per_word = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        row_loss = (per_word * targets).sum(-1) / targets.sum(-1).clamp(min=1.0)
        row_loss = row_loss + (per_word * absent).sum(-1) / absent.sum(-1).clamp(min=1.0)
        row_tokens = (labels != -100).sum(-1).to(row_loss.dtype)
        if num_items_in_batch is None:
            return (row_loss * row_tokens).sum() / row_tokens.sum().clamp(min=1.0)
        return (row_loss * row_tokens).sum() / torch.as_tensor(num_items_in_batch, device=row_loss.device)
