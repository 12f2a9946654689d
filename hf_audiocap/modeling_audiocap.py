"""Audio captioning model: audio encoder -> adapter -> text decoder, as a transformers `PreTrainedModel`.

Self-contained on purpose: this file imports only from `torch`, `transformers` and its sibling
`configuration_audiocap.py` (relative import), so `save_pretrained` can copy both files next to the weights and a folder
loads with `AutoModelForSpeechSeq2Seq.from_pretrained(folder, trust_remote_code=True)` without `hf_audiocap` installed.

Encoders (chosen by `config.encoder.model_type`):

* `audiocap_encoder` (built-in, trained from scratch on log-mels `(batch, n_mels, frames)`): Conv1d(k=3, s=2) + GELU
  twice (4x fewer frames than the input, vs Whisper's 2x), padded frames zeroed before/after each conv so a clip gives the
  same states alone or padded into a batch, sinusoidal positions for the actual length (no 30 s padding, any length),
  pre-LN transformer layers with fused QKV and `F.scaled_dot_product_attention` + key padding mask.
* `whisper`: the Whisper encoder is run layer by layer on the real length: `embed_positions` is sliced to the actual
  number of frames instead of padding every clip to 3000 frames, and the frame mask is subsampled (stride 2) and used as
  the self-attention key padding mask and passed to the adapter / cross-attention. Max 30 s (1500 positions).
* `wav2vec2`, `hubert`, `wavlm`, `data2vec-audio`, `unispeech(-sat)`, `sew(-d)`, `wav2vec2-conformer`: waveform input
  `input_values (batch, samples)` with a sample-level `attention_mask`; padded samples are zeroed and the output frame
  mask comes from the model's `_get_feat_extract_output_lengths`. (Checkpoints with `feat_extract_norm="group"`
  normalise over time including padding, so they are not exactly batch invariant; that is the model, not the wrapper.)
* `audio-spectrogram-transformer` (AST): fixed input size `(batch, max_length, n_mels)`: our `(batch, n_mels, frames)`
  features are transposed, padded frames zeroed, then zero-padded / truncated to `config.max_length` frames (clips
  longer than max_length are truncated). Every patch token is kept (mask of ones): the patch grid mixes time and
  frequency so no exact frame mask exists; zero padding to a fixed size keeps it batch invariant.
* `clap_audio_model` (`ClapAudioModel`, the CLAP audio tower): fixed spectrogram size: features are laid out as
  `(batch, 1, frames, n_mels)`, zero-padded / truncated to `spec_size * freq_ratio` frames (so CLAP's own bicubic
  resize never runs), output `(batch, C, H, W)` flattened to `H*W` tokens, mask of ones. `n_mels` must equal the
  config's `num_mel_bins`.

Adapter: optional masked temporal pooling (avg/max, stride `adapter_pooling_stride`) then Linear + LayerNorm to the
decoder width. Decoders: the built-in one (KV cache through transformers' `EncoderDecoderCache`, cross-attention K/V
computed once per generation and reused, tied embeddings) or any causal LM with cross-attention through
`AutoModelForCausalLM` (BART's decoder via `BartForCausalLM`, GPT-2 with `add_cross_attention=True`).

GPU notes (no GPU was available when this was written; reasoning, not measurement): all attention uses SDPA with
*boolean* masks (no additive -inf / finfo tricks needed, so fp16/bf16 autocast is safe; the one additive value we build,
in masked max pooling, uses `torch.finfo(dtype).min` of the actual dtype), the loss upcasts logits to float32, positions
are computed in float32, and every layer is a `GradientCheckpointingLayer` (`model.gradient_checkpointing_enable()`).
"""

from __future__ import annotations

import inspect
import math
import os
from contextlib import contextmanager
from dataclasses import dataclass

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
from transformers import initialization as hf_init
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache, DynamicCache, EncoderDecoderCache
from transformers.generation.logits_process import (
    LogitsProcessorList,
    MinLengthLogitsProcessor,
    MinNewTokensLengthLogitsProcessor,
)
from transformers.generation.stopping_criteria import EosTokenCriteria, MaxLengthCriteria
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutput, CausalLMOutputWithCrossAttentions, Seq2SeqLMOutput

from .configuration_audiocap import (
    AUDIOCAP_DECODER_TYPE,
    AUDIOCAP_ENCODER_TYPE,
    AudioCapConfig,
    AudioCapDecoderConfig,
    AudioCapEncoderConfig,
)

WAVEFORM_ENCODER_TYPES = (
    "wav2vec2",
    "hubert",
    "wavlm",
    "data2vec-audio",
    "unispeech",
    "unispeech-sat",
    "sew",
    "sew-d",
    "wav2vec2-conformer",
)
SUPPORTED_ENCODER_TYPES = (
    AUDIOCAP_ENCODER_TYPE,
    "whisper",
    "audio-spectrogram-transformer",
    "clap_audio_model",
    *WAVEFORM_ENCODER_TYPES,
)


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


@dataclass
class AudioCapEncoderOutput(BaseModelOutput):
    """`BaseModelOutput` + the encoder-frame `attention_mask` (bool, `(batch, encoder_frames)`, None = all valid).

    It travels inside `encoder_outputs`, so `generate` expands it with the states for beam search / sampling.
    `keyword_logits` `(batch, vocab)`: the keyword head's estimate, once added by the model (see `_with_keywords`).
    `clip_statistics` `(batch, 3 * n_mels)`: per-band log-mel statistics, with `keyword_statistics`."""

    attention_mask: torch.Tensor | None = None
    keyword_logits: torch.Tensor | None = None
    clip_statistics: torch.Tensor | None = None


def _lengths_to_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def _clip_statistics(x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """(batch, bands, frames) -> (batch, 3 * bands): per band mean, standard deviation and maximum over each clip's
    real frames (`lengths`; None = all frames), whatever the padding holds."""
    if lengths is None:
        return torch.cat([x.mean(-1), x.std(-1, unbiased=False), x.amax(-1)], dim=-1)
    real = _lengths_to_mask(lengths, x.shape[-1])[:, None, :]
    count = lengths.to(x.dtype)[:, None]
    mean = x.masked_fill(~real, 0.0).sum(-1) / count
    std = ((x - mean[..., None]).masked_fill(~real, 0.0).square().sum(-1) / count).sqrt()
    peak = x.masked_fill(~real, torch.finfo(x.dtype).min).amax(-1)
    return torch.cat([mean, std, peak], dim=-1)


def _sdpa_key_mask(mask: torch.Tensor | None) -> torch.Tensor | None:
    """(batch, keys) 0/1 -> boolean SDPA mask (batch, 1, 1, keys); None when every key is valid (fast kernels)."""
    if mask is None:
        return None
    mask = mask.bool()
    if bool(mask.all()):
        return None
    return mask[:, None, None, :]


def _repeats_each_clip(encoder_index: torch.Tensor, clips: int) -> bool:
    """True when `encoder_index` is `arange(clips).repeat_interleave(k)`: every clip's decoder rows are consecutive and
    equally many (beams, `num_return_sequences`, k captions per clip), so the rows can attend to their clip's
    keys/values directly instead of to gathered copies (see `_attend_clips`)."""
    rows = encoder_index.shape[0]
    if rows % clips:
        return False
    expected = torch.arange(clips, device=encoder_index.device).repeat_interleave(rows // clips)
    return torch.equal(encoder_index, expected)


def _attend_clips(query, key, value, mask=None, dropout_p: float = 0.0) -> torch.Tensor:
    """Cross-attention SDPA where `key`/`value` may hold one row per clip for `query`'s k consecutive rows per clip:
    the k rows' queries are stacked along the query axis of their clip (`(clips, heads, k * tgt, head_dim)`), so each
    clip's keys/values are read once, not k times (3 beams x 8 clips: a third of the per-step cross-attention memory
    traffic). `mask`, if any, is per key row (per clip). Rows = clips is plain SDPA."""
    rows, clips = query.shape[0], key.shape[0]
    if rows == clips:
        return F.scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=dropout_p)
    group = rows // clips
    _, heads, tgt, head_dim = query.shape
    query = query.view(clips, group, heads, tgt, head_dim).transpose(1, 2).reshape(clips, heads, group * tgt, head_dim)
    out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=dropout_p)
    return out.view(clips, heads, group, tgt, head_dim).transpose(1, 2).reshape(rows, heads, tgt, head_dim)


def _sinusoids(length: int, channels: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Whisper-style sinusoidal positions for `length` frames (computed in float32, any length)."""
    half = channels // 2
    log_timescale = math.log(10000.0) / max(half - 1, 1)
    inv = torch.exp(-log_timescale * torch.arange(half, device=device, dtype=torch.float32))
    t = torch.arange(length, device=device, dtype=torch.float32)[:, None] * inv[None, :]
    pos = torch.cat([t.sin(), t.cos()], dim=1)
    if pos.shape[1] < channels:
        pos = F.pad(pos, (0, channels - pos.shape[1]))
    return pos.to(dtype)


@contextmanager
def _intra_op_threads(num_threads: int | None):
    """Temporarily cap torch's intra-op threads (restored on exit). A decoder step at batch 1 is a chain of ~50 tiny
    ops (GEMVs of a few hundred KB): splitting each over threads costs more in OpenMP fork/join than it saves, and on a
    machine whose other cores are busy every barrier can wait a whole scheduler slice for a preempted worker."""
    prev = torch.get_num_threads()
    if num_threads is None or prev <= num_threads:
        yield
        return
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(prev)


@contextmanager
def _without_onednn(active: bool = True):
    """Temporarily turn oneDNN (MKLDNN) off for torch ops (restored on exit); see `AudioCapDecoder._cached_step`."""
    enabled = torch._C._get_mkldnn_enabled()
    if not active or not enabled:
        yield
        return
    torch._C._set_mkldnn_enabled(False)
    try:
        yield
    finally:
        torch._C._set_mkldnn_enabled(True)


class _CachedLogitsProcessorList(LogitsProcessorList):
    """`LogitsProcessorList` that inspects each processor's signature once instead of at every decoding step
    (transformers calls `inspect.signature` per processor per step: ~0.1 ms each). Same calls, same checks."""

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor, **kwargs) -> torch.Tensor:
        extra = getattr(self, "_extra_args", None)
        if extra is None or len(extra) != len(self):
            extra = [list(inspect.signature(p.__call__).parameters)[2:] for p in self]
            self._extra_args = extra
        for processor, names in zip(self, extra):
            if names:
                if not all(name in kwargs for name in names):
                    raise ValueError(
                        f"Make sure that all the required parameters: {names} for {processor.__class__} are passed "
                        "to the logits processor."
                    )
                scores = processor(input_ids, scores, **kwargs)
            else:
                scores = processor(input_ids, scores)
        return scores


def _eos_mask(processor, scores: torch.Tensor) -> torch.Tensor:
    """`isin(arange(vocab), eos_token_id)`, built once per processor (and vocabulary size / device)."""
    mask = getattr(processor, "_eos_mask", None)
    if mask is None or mask.shape[0] != scores.shape[-1] or mask.device != scores.device:
        vocab = torch.arange(scores.shape[-1], device=scores.device)
        mask = processor._eos_mask = torch.isin(vocab, processor.eos_token_id.to(scores.device))
    return mask


class _MinLengthLogitsProcessor(MinLengthLogitsProcessor):
    """transformers' `MinLengthLogitsProcessor` (same scores) without rebuilding the vocabulary's end-of-sequence mask
    at every decoding step (`arange` + `isin` over the vocabulary: ~40 us a step on CPU, 5% of a batch-1 step)."""

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
        if input_ids.shape[-1] < self.min_length:
            return scores.masked_fill(_eos_mask(self, scores), -math.inf)
        return scores.clone()


class _MinNewTokensLengthLogitsProcessor(MinNewTokensLengthLogitsProcessor):
    """transformers' `MinNewTokensLengthLogitsProcessor` (same scores), the end-of-sequence mask built once."""

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
        if input_ids.shape[-1] - self.prompt_length_to_skip < self.min_new_tokens:
            return scores.masked_fill(_eos_mask(self, scores), -math.inf)
        return scores.clone()


def _with_cached_eos_masks(processors: LogitsProcessorList) -> _CachedLogitsProcessorList:
    """The same processors, in a list that inspects their signatures once, the min-length ones swapped for the
    subclasses above (attributes kept)."""
    swap = {
        MinLengthLogitsProcessor: _MinLengthLogitsProcessor,
        MinNewTokensLengthLogitsProcessor: _MinNewTokensLengthLogitsProcessor,
    }
    out = _CachedLogitsProcessorList()
    for processor in processors:
        cls = swap.get(type(processor))
        if cls is not None:
            fast = cls.__new__(cls)
            fast.__dict__.update(processor.__dict__)
            processor = fast
        out.append(processor)
    return out


def _plain_stopping(stopping_criteria) -> tuple[int | None, torch.Tensor | None] | None:
    """(max_length, end-of-sequence ids) when every criterion is transformers' `MaxLengthCriteria` or
    `EosTokenCriteria` (what `generate` builds from max_length / eos_token_id), else None. The lean loop then stops
    a row on its new token being an end-of-sequence id and every row at max_length: what those criteria's
    `StoppingCriteriaList` computes, in 3 tensor ops a step instead of ~10."""
    max_length, eos = None, []
    for criteria in stopping_criteria:
        if type(criteria) is MaxLengthCriteria:
            max_length = criteria.max_length if max_length is None else min(max_length, criteria.max_length)
        elif type(criteria) is EosTokenCriteria:
            eos.append(criteria.eos_token_id.reshape(-1))
        else:
            return None
    return max_length, torch.cat(eos) if eos else None


class _StepCache:
    """Self-attention keys/values of the lean decoding loop (`AudioCapForConditionalGeneration._sample`) in buffers
    allocated once per `generate`: each step writes its key/value in place and attends to a view of the filled part,
    instead of `DynamicCache`'s `torch.cat` of the whole cache per layer per step. Same `update` contract as a
    `DynamicCache` (key/value `(rows, heads, 1, head_dim)` in, all keys/values so far out); `write_back` leaves the
    `DynamicCache` holding everything, as if it had been updated step by step."""

    def __init__(self, cache: DynamicCache, capacity: int):
        self.keys, self.values, self.lengths = [], [], []
        for layer in cache.layers:
            rows, heads, length, head_dim = layer.keys.shape
            keys = layer.keys.new_empty(rows, heads, max(capacity, length + 1), head_dim)
            values = torch.empty_like(keys)
            keys[:, :, :length], values[:, :, :length] = layer.keys, layer.values
            self.keys.append(keys)
            self.values.append(values)
            self.lengths.append(length)

    def update(self, key: torch.Tensor, value: torch.Tensor, layer_idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        t = self.lengths[layer_idx]
        if t == self.keys[layer_idx].shape[2]:  # more steps than the capacity: double it
            self.keys[layer_idx] = torch.cat([self.keys[layer_idx], torch.empty_like(self.keys[layer_idx])], dim=2)
            self.values[layer_idx] = torch.cat([self.values[layer_idx], torch.empty_like(self.values[layer_idx])], 2)
        keys, values = self.keys[layer_idx], self.values[layer_idx]
        keys[:, :, t : t + 1] = key
        values[:, :, t : t + 1] = value
        self.lengths[layer_idx] = t + 1
        return keys[:, :, : t + 1], values[:, :, : t + 1]

    def write_back(self, cache: DynamicCache) -> None:
        for layer, keys, values, length in zip(cache.layers, self.keys, self.values, self.lengths):
            layer.keys, layer.values = keys[:, :, :length], values[:, :, :length]


def _row_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """`F.linear` on `(rows, in)`; a single row as a matrix-vector product (addmv: the same numbers as F.linear's
    addmm, measured identical, with less overhead per decoding step). Under autocast, F.linear (which autocast casts)."""
    if x.shape[0] != 1 or x.dtype != weight.dtype or torch.is_autocast_enabled(x.device.type):
        return F.linear(x, weight, bias)
    x = x.view(-1)
    return (torch.mv(weight, x) if bias is None else torch.addmv(bias, weight, x)).view(1, -1)


# in-place versions of `ACT2FN[name]` (the same numbers), for inference
_INPLACE_ACTIVATIONS = {"gelu": torch._C._nn.gelu_, "relu": torch.relu_, "silu": lambda x: F.silu(x, inplace=True)}
# the functions behind `ACT2FN[name]` (the same numbers without a module call), for the decoding step
_FUNCTIONAL_ACTIVATIONS = {"gelu": F.gelu, "relu": F.relu, "silu": F.silu}


# ----------------------------------------------------------------------------------------------------------------------
# Attention blocks (SDPA, boolean masks)
# ----------------------------------------------------------------------------------------------------------------------
class AudioCapSelfAttention(nn.Module):
    """Multi-head self-attention with one fused QKV projection; optional KV cache (`DynamicCache`)."""

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, layer_idx: int | None = None):
        super().__init__()
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = dropout
        self.layer_idx = layer_idx
        self.qkv_proj = nn.Linear(embed_dim, 3 * embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        is_causal: bool = False,
        cache: Cache | None = None,
    ) -> torch.Tensor:
        bsz, tgt, _ = hidden_states.shape
        qkv = self.qkv_proj(hidden_states).view(bsz, tgt, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        query, key, value = qkv.unbind(0)
        if cache is not None:
            key, value = cache.update(key, value, self.layer_idx)
        out = F.scaled_dot_product_attention(
            query,
            key,
            value,
            attn_mask=attn_mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=is_causal and attn_mask is None,
        )
        return self.out_proj(out.transpose(1, 2).reshape(bsz, tgt, self.embed_dim))


class AudioCapCrossAttention(nn.Module):
    """Cross-attention; keys/values of the encoder states are computed once and kept in the cross-attention cache.

    With `encoder_index` (decoder row -> row of `encoder_hidden_states`; unequal groups of rows per clip), the
    keys/values are computed once per clip and gathered per row: five captions of a clip cost one key/value projection,
    not five. Equal consecutive groups (beams, k captions per clip) come without an index (`AudioCapDecoder._decode`)
    and attend to their clip's keys/values directly (`_attend_clips`)."""

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, layer_idx: int | None = None):
        super().__init__()
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = dropout
        self.layer_idx = layer_idx
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.kv_proj = nn.Linear(embed_dim, 2 * embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        cache: EncoderDecoderCache | None = None,
        encoder_index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        bsz, tgt, _ = hidden_states.shape
        query = self.q_proj(hidden_states).view(bsz, tgt, self.num_heads, self.head_dim).transpose(1, 2)
        key, value = self.keys_values(encoder_hidden_states, cache, encoder_index)
        out = _attend_clips(query, key, value, attn_mask, dropout_p=self.dropout if self.training else 0.0)
        return self.out_proj(out.transpose(1, 2).reshape(bsz, tgt, self.embed_dim))

    def keys_values(
        self,
        encoder_hidden_states: torch.Tensor,
        cache: EncoderDecoderCache | None = None,
        encoder_index: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values `(rows, heads, frames, head_dim)` of the encoder states: from the cache once computed,
        else projected (one row per clip, gathered per decoder row with `encoder_index`) and cached."""
        if cache is not None and cache.is_updated.get(self.layer_idx, False):
            layer = cache.cross_attention_cache.layers[self.layer_idx]
            return layer.keys, layer.values
        clips, src = encoder_hidden_states.shape[:2]
        kv = self.kv_proj(encoder_hidden_states).view(clips, src, 2, self.num_heads, self.head_dim)
        if encoder_index is not None:
            kv = kv.index_select(0, encoder_index)
        key, value = kv.permute(2, 0, 3, 1, 4).unbind(0)
        if cache is not None:
            key, value = cache.cross_attention_cache.update(key, value, self.layer_idx)
            cache.is_updated[self.layer_idx] = True
        return key, value


class AudioCapEncoderLayer(GradientCheckpointingLayer):
    def __init__(self, config: AudioCapEncoderConfig):
        super().__init__()
        d = config.d_model
        self.self_attn_layer_norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.self_attn = AudioCapSelfAttention(d, config.encoder_attention_heads, config.attention_dropout)
        self.final_layer_norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.fc1 = nn.Linear(d, config.encoder_ffn_dim)
        self.fc2 = nn.Linear(config.encoder_ffn_dim, d)
        self.activation = config.activation_function
        self.activation_fn = ACT2FN[config.activation_function]
        self.dropout = config.dropout
        self.activation_dropout = config.activation_dropout

    def forward(self, hidden_states: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        if not self.training and not torch.is_grad_enabled():
            return self._inference_forward(hidden_states, attn_mask)
        residual = hidden_states
        hidden_states = self.self_attn(self.self_attn_layer_norm(hidden_states), attn_mask=attn_mask)
        hidden_states = residual + F.dropout(hidden_states, p=self.dropout, training=self.training)
        residual = hidden_states
        hidden_states = self.activation_fn(self.fc1(self.final_layer_norm(hidden_states)))
        hidden_states = F.dropout(hidden_states, p=self.activation_dropout, training=self.training)
        hidden_states = self.fc2(hidden_states)
        return residual + F.dropout(hidden_states, p=self.dropout, training=self.training)

    def _inference_forward(self, hidden_states: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        """Eval mode without autograd: the same ops, but the residual adds and the activation write into the
        tensors the projections just produced (still in cache) instead of into fresh ones: same numbers, ~1 ms less
        per 10 s clip on CPU (a fresh (frames, ffn_dim) buffer costs more to write than the GELU itself)."""
        hidden = self.self_attn(self.self_attn_layer_norm(hidden_states), attn_mask=attn_mask)
        hidden += hidden_states
        x = self.fc1(self.final_layer_norm(hidden))
        inplace = _INPLACE_ACTIVATIONS.get(self.activation)
        x = inplace(x) if inplace is not None else self.activation_fn(x)
        x = self.fc2(x)
        x += hidden
        return x


class AudioCapDecoderLayer(GradientCheckpointingLayer):
    def __init__(self, config: AudioCapDecoderConfig, layer_idx: int):
        super().__init__()
        d = config.d_model
        heads = config.decoder_attention_heads
        self.self_attn_layer_norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.self_attn = AudioCapSelfAttention(d, heads, config.attention_dropout, layer_idx=layer_idx)
        self.encoder_attn_layer_norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.encoder_attn = AudioCapCrossAttention(d, heads, config.attention_dropout, layer_idx=layer_idx)
        self.final_layer_norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.fc1 = nn.Linear(d, config.decoder_ffn_dim)
        self.fc2 = nn.Linear(config.decoder_ffn_dim, d)
        self.activation_fn = ACT2FN[config.activation_function]
        self.dropout = config.dropout
        self.activation_dropout = config.activation_dropout

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        self_attn_mask: torch.Tensor | None = None,
        is_causal: bool = True,
        encoder_attn_mask: torch.Tensor | None = None,
        cache: EncoderDecoderCache | None = None,
        encoder_index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        residual = hidden_states
        hidden_states = self.self_attn(
            self.self_attn_layer_norm(hidden_states),
            attn_mask=self_attn_mask,
            is_causal=is_causal,
            cache=cache.self_attention_cache if cache is not None else None,
        )
        hidden_states = residual + F.dropout(hidden_states, p=self.dropout, training=self.training)
        residual = hidden_states
        hidden_states = self.encoder_attn(
            self.encoder_attn_layer_norm(hidden_states),
            encoder_hidden_states,
            attn_mask=encoder_attn_mask,
            cache=cache,
            encoder_index=encoder_index,
        )
        hidden_states = residual + F.dropout(hidden_states, p=self.dropout, training=self.training)
        residual = hidden_states
        hidden_states = self.activation_fn(self.fc1(self.final_layer_norm(hidden_states)))
        hidden_states = F.dropout(hidden_states, p=self.activation_dropout, training=self.training)
        hidden_states = self.fc2(hidden_states)
        return residual + F.dropout(hidden_states, p=self.dropout, training=self.training)


# ----------------------------------------------------------------------------------------------------------------------
# Pretrained-model plumbing
# ----------------------------------------------------------------------------------------------------------------------
class AudioCapPreTrainedModel(PreTrainedModel):
    config_class = AudioCapConfig
    base_model_prefix = "audiocap"
    main_input_name = "input_features"
    input_modalities = ("audio", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _no_split_modules = ["AudioCapEncoderLayer", "AudioCapDecoderLayer"]

    def _init_weights(self, module: nn.Module) -> None:
        # Linear/Embedding: normal(0, init_std); LayerNorm: ones/zeros (transformers' generic init, which also skips
        # modules already loaded from a checkpoint). Nothing else holds parameters.
        super()._init_weights(module)
        if isinstance(module, (nn.Conv1d, nn.Conv2d)):
            # Convs (the built-in encoder's front end): He-normal, std sqrt(2 / fan_in). With normal(0, 0.02) the two
            # convs shrank unit-variance log-mels to RMS 0.04, under sinusoidal positions of RMS 0.7: the encoder
            # started out seeing mostly positions. Measured on the demo (6 epochs): test CIDEr-D 0.593 -> 0.839,
            # source recall 0.438 -> 0.593 (benchmarks/RESULTS.md).
            # (transformers' `init` functions leave weights loaded from a checkpoint untouched)
            hf_init.normal_(module.weight, std=math.sqrt(2.0 / module.weight[0].numel()))

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """`PreTrainedModel.from_pretrained`, safetensors only: a folder or Hub repository with only pickled weights
        (`pytorch_model.bin`) is refused, never unpickled. (Passing `use_safetensors=False` explicitly allows them;
        transformers then reads them with `torch.load(weights_only=True)`; no hf_audiocap entry point does.)"""
        if kwargs.get("use_safetensors") is None:
            kwargs["use_safetensors"] = True
        folder = os.fspath(pretrained_model_name_or_path or "")
        if kwargs.get("subfolder"):
            folder = os.path.join(folder, kwargs["subfolder"])
        if kwargs["use_safetensors"] and os.path.isdir(folder):
            names = os.listdir(folder)
            if not any(n.endswith(".safetensors") or n.endswith(".safetensors.index.json") for n in names):
                pickled = sorted(n for n in names if n.endswith((".bin", ".pt", ".pth", ".ckpt")))
                if pickled:
                    raise OSError(
                        f"{folder}: only pickled weights ({', '.join(pickled[:3])}), no model.safetensors; models "
                        "load from safetensors only (re-save the model with save_pretrained in a trusted environment)"
                    )
        return super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)


class AudioCapEncoder(AudioCapPreTrainedModel):
    """Built-in log-mel encoder (see module docstring)."""

    config_class = AudioCapEncoderConfig
    base_model_prefix = "audiocap_encoder"

    def __init__(self, config: AudioCapEncoderConfig):
        super().__init__(config)
        k, s = config.conv_kernel_size, config.conv_stride
        channels = [config.num_mel_bins] + [config.d_model] * config.num_conv_layers
        cnn = getattr(config, "conv2d_channels", None) or []
        if cnn:
            self.convs = nn.ModuleList()
            self.convs2d = nn.ModuleList(
                nn.Conv2d(c_in, c_out, kernel_size=3, padding=1) for c_in, c_out in zip([1, *cnn[:-1]], cnn)
            )
            self.conv2d_proj = nn.Linear(cnn[-1] * (config.num_mel_bins >> len(cnn)), config.d_model)
        else:
            self.convs = nn.ModuleList(
                nn.Conv1d(channels[i], channels[i + 1], kernel_size=k, stride=s, padding=k // 2)
                for i in range(config.num_conv_layers)
            )
        self.summary_proj = (
            nn.Linear(3 * config.num_mel_bins, config.d_model) if getattr(config, "summary_token", False) else None
        )
        self.layers = nn.ModuleList(AudioCapEncoderLayer(config) for _ in range(config.encoder_layers))
        self.layer_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.gradient_checkpointing = False
        self.post_init()

    def _get_feat_extract_output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        if getattr(self.config, "conv2d_channels", None):
            for _ in self.config.conv2d_channels:
                lengths = (lengths + 1) >> 1  # ceil(lengths / 2) per pooling block
            return lengths
        k, s = self.config.conv_kernel_size, self.config.conv_stride
        for _ in range(self.config.num_conv_layers):
            lengths = torch.div(lengths + 2 * (k // 2) - k, s, rounding_mode="floor") + 1
        return lengths

    def forward(
        self,
        input_features: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> AudioCapEncoderOutput:
        lengths = attention_mask.long().sum(-1) if attention_mask is not None else None
        x = input_features
        # zeroing padded frames is only needed when some clip is shorter than the batch (never at batch 1)
        padded = lengths is not None and bool((lengths < x.shape[-1]).any())
        if padded:
            x = x * _lengths_to_mask(lengths, x.shape[-1]).to(x.dtype)[:, None, :]
        summary = self._summary(x, lengths) if self.summary_proj is not None else None
        for conv in self.convs:
            x = F.gelu(conv(x))
            if lengths is not None:
                lengths = (
                    torch.div(
                        lengths + 2 * conv.padding[0] - conv.kernel_size[0], conv.stride[0], rounding_mode="floor"
                    )
                    + 1
                )
                if padded:  # zero the padded frames again: conv(pad) != 0 (bias), the next conv would leak it
                    x = x * _lengths_to_mask(lengths, x.shape[-1]).to(x.dtype)[:, None, :]
        if getattr(self.config, "conv2d_channels", None):
            hidden, lengths = self._cnn_front_end(x, lengths)
        else:
            hidden = x.transpose(1, 2)
        hidden = hidden + _sinusoids(hidden.shape[1], hidden.shape[2], hidden.device, hidden.dtype)
        if summary is not None:
            hidden = torch.cat([summary, hidden], dim=1)
            lengths = lengths + 1 if lengths is not None else None
        hidden = F.dropout(hidden, p=self.config.dropout, training=self.training)
        frame_mask = _lengths_to_mask(lengths, hidden.shape[1]) if lengths is not None else None
        sdpa_mask = _sdpa_key_mask(frame_mask)
        all_hidden = (hidden,) if output_hidden_states else None
        for layer in self.layers:
            hidden = layer(hidden, attn_mask=sdpa_mask)
            if output_hidden_states:
                all_hidden += (hidden,)
        hidden = self.layer_norm(hidden)
        return AudioCapEncoderOutput(last_hidden_state=hidden, hidden_states=all_hidden, attention_mask=frame_mask)

    def _summary(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """(batch, n_mels, frames) -> the summary position (batch, 1, d_model): per band mean, std and max over the
        clip's real frames, projected."""
        return self.summary_proj(_clip_statistics(x, lengths)).unsqueeze(1)

    def _cnn_front_end(self, x: torch.Tensor, lengths: torch.Tensor | None):
        """(batch, n_mels, frames), padding frames already zero -> (batch, ceil(frames / 2^blocks), d_model). Frames are
        zero-padded to a multiple of 2^blocks and the padding is zeroed before every pooling, so a clip padded in a batch
        gets exactly the features it gets alone (a last, half-real pooled frame averages its real frame with zeros)."""
        blocks, frames = len(self.convs2d), x.shape[-1]
        pad = (-frames) % (1 << blocks)
        if pad and lengths is None:
            lengths = torch.full((x.shape[0],), frames, dtype=torch.long, device=x.device)
        x = F.pad(x, (0, pad)).unsqueeze(1)  # (batch, 1, n_mels, frames)
        for conv in self.convs2d:
            x = F.gelu(conv(x))
            if lengths is not None:
                x = x * _lengths_to_mask(lengths, x.shape[-1]).to(x.dtype)[:, None, None, :]
                lengths = (lengths + 1) >> 1
            x = F.avg_pool2d(x, 2)
        bsz, channels, bands, frames = x.shape
        return self.conv2d_proj(x.reshape(bsz, channels * bands, frames).transpose(1, 2)), lengths


class AudioCapDecoder(AudioCapPreTrainedModel):
    """Built-in caption decoder with LM head (tied to the token embeddings when `tie_word_embeddings`)."""

    config_class = AudioCapDecoderConfig
    base_model_prefix = "audiocap_decoder"
    main_input_name = "input_ids"
    _tied_weights_keys = {"lm_head.weight": "embed_tokens.weight"}

    def __init__(self, config: AudioCapDecoderConfig):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.d_model)
        self.embed_positions = nn.Embedding(config.max_target_positions, config.d_model)
        self.layers = nn.ModuleList(AudioCapDecoderLayer(config, i) for i in range(config.decoder_layers))
        self.layer_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embed_tokens

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.embed_tokens = value

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.lm_head = value

    # Inference with at most this many decoder rows x new tokens runs on `step_num_threads` intra-op threads
    # (None = leave torch's setting alone); see `_intra_op_threads`.
    # Off by default: in a loaded-machine A/B (2 threads, load ~5) switching the thread count per step made greedy
    # decoding slower, not faster. Set e.g. `AudioCapDecoder.step_num_threads = 1` to try it on a given machine.
    step_num_threads: int | None = None
    step_max_rows: int = 8

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        logits_to_keep: int = 0,
        encoder_index: torch.LongTensor | None = None,
        **kwargs,
    ) -> CausalLMOutputWithCrossAttentions:
        r"""
        encoder_index (`torch.LongTensor` of shape `(batch,)`, *optional*): for each row of `input_ids`, the row of
            `encoder_hidden_states` (and `encoder_attention_mask`) it attends to; None: row i attends to row i.
        """
        if encoder_hidden_states is None:
            raise ValueError("AudioCapDecoder needs encoder_hidden_states (it always cross-attends to the audio)")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        bsz, tgt = inputs_embeds.shape[:2]
        # a step that reuses cached cross-attention K/V (the prefill that computes them still uses every thread)
        small = (
            bsz * tgt <= self.step_max_rows
            and not self.training
            and not torch.is_grad_enabled()
            and isinstance(cache, EncoderDecoderCache)
            and cache.is_updated.get(len(self.layers) - 1, False)
        )
        with _intra_op_threads(self.step_num_threads if small else None):
            return self._decode(
                inputs_embeds,
                attention_mask,
                encoder_hidden_states,
                encoder_attention_mask,
                cache,
                use_cache,
                output_hidden_states,
                logits_to_keep,
                encoder_index,
            )

    def _decode(
        self,
        inputs_embeds,
        attention_mask,
        encoder_hidden_states,
        encoder_attention_mask,
        cache,
        use_cache,
        output_hidden_states,
        logits_to_keep,
        encoder_index=None,
    ) -> CausalLMOutputWithCrossAttentions:
        bsz, tgt = inputs_embeds.shape[:2]
        if use_cache and cache is None:
            cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        elif not use_cache:
            cache = None
        past = cache.get_seq_length() if cache is not None else 0
        if past + tgt > self.config.max_target_positions:
            raise ValueError(
                f"AudioCapDecoder: {past + tgt} decoder positions requested but max_target_positions is "
                f"{self.config.max_target_positions} (labels/captions must be at most that many tokens)"
            )
        hidden = inputs_embeds + self.embed_positions.weight[past : past + tgt][None]
        hidden = F.dropout(hidden, p=self.config.dropout, training=self.training)

        # Self-attention mask: causal (offset by the cached length), combined with a key padding mask if any.
        key_pad = None
        if attention_mask is not None and not bool(attention_mask.bool().all()):
            key_pad = attention_mask.bool()[:, -(past + tgt) :]
        self_mask, is_causal = None, False
        if key_pad is not None or (tgt > 1 and past > 0):
            q_pos = torch.arange(past, past + tgt, device=hidden.device)
            k_pos = torch.arange(past + tgt, device=hidden.device)
            self_mask = (k_pos[None, :] <= q_pos[:, None])[None, None]
            if key_pad is not None:
                self_mask = self_mask & key_pad[:, None, None, :]
        elif tgt > 1:
            is_causal = True
        enc_mask = _sdpa_key_mask(encoder_attention_mask)
        if encoder_index is not None:
            encoder_index = encoder_index.to(encoder_hidden_states.device)
            if _repeats_each_clip(encoder_index, encoder_hidden_states.shape[0]):
                encoder_index = None  # equal consecutive rows per clip attend to their clip's keys/values directly
            elif enc_mask is not None:
                enc_mask = enc_mask.index_select(0, encoder_index)

        if tgt == 1 and self_mask is None and not self.training and not output_hidden_states and cache is not None:
            # one token per row (every generation step): the lean step; on the first step each layer first projects
            # and caches the cross-attention keys/values (later steps read them from the cache)
            for layer in self.layers:
                layer.encoder_attn.keys_values(encoder_hidden_states, cache, encoder_index)
            hidden = self._cached_step(hidden[:, 0], enc_mask, cache.self_attention_cache, cache.cross_attention_cache)
            return CausalLMOutputWithCrossAttentions(logits=self._row_logits(hidden)[:, None], cache=cache)
        all_hidden = (hidden,) if output_hidden_states else None
        for layer in self.layers:
            hidden = layer(
                hidden,
                encoder_hidden_states,
                self_attn_mask=self_mask,
                is_causal=is_causal,
                encoder_attn_mask=enc_mask,
                cache=cache,
                encoder_index=encoder_index,
            )
            if output_hidden_states:
                all_hidden += (hidden,)
        hidden = self.layer_norm(hidden)
        if logits_to_keep:
            hidden = hidden[:, -logits_to_keep:]
        logits = self.lm_head(hidden)
        return CausalLMOutputWithCrossAttentions(logits=logits, cache=cache, hidden_states=all_hidden)

    def _row_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """(rows, d_model) -> (rows, vocab): the final layer norm and the output projection of a decoding step."""
        norm = self.layer_norm
        hidden = torch.layer_norm(hidden, norm.normalized_shape, norm.weight, norm.bias, norm.eps)
        return _row_linear(hidden, self.lm_head.weight, self.lm_head.bias)

    def _cached_step(
        self,
        hidden: torch.Tensor,
        enc_mask: torch.Tensor | None,
        self_cache: DynamicCache | _StepCache,
        cross_cache: DynamicCache,
        weights: list[tuple] | None = None,
    ) -> torch.Tensor:
        """One new token per row, `hidden` `(rows, d_model)`, with the cross-attention K/V already in `cross_cache`
        (every generation step): the ops of `AudioCapDecoderLayer.forward` in eval mode, called directly on the
        weights on 2-D rows (no module dispatch / hooks / dropout calls / checkpointing wrapper / transposes). A single
        query attends to every cached key, so no causal mask is needed. `self_cache`: a `DynamicCache` or the lean
        loop's `_StepCache`; `weights`: `_step_weights()` (looked up if None).

        With float32 states on CPU (no autocast) the step runs with oneDNN off (`_without_onednn`): its only oneDNN
        op is the exact GELU, whose oneDNN primitive costs ~10-30 us per call on a (rows, ffn_dim) row against ~2 us
        for PyTorch's own vectorised kernel (the same erf GELU; results differ from the module path by float32
        rounding, <1e-6; everything else is bit-identical)."""
        with _without_onednn(self._step_without_onednn(hidden)):
            return self._step_layers(hidden, enc_mask, self_cache, cross_cache, weights)

    @staticmethod
    def _step_without_onednn(hidden: torch.Tensor) -> bool:
        """Whether decoding steps on states like `hidden` run with oneDNN off (float32 on CPU, no autocast)."""
        return hidden.dtype == torch.float32 and hidden.device.type == "cpu" and not torch.is_autocast_enabled("cpu")

    def _step_layers(self, hidden, enc_mask, self_cache, cross_cache, weights) -> torch.Tensor:
        rows = hidden.shape[0]
        weights = weights or self._step_weights()
        if (
            rows == 1
            and hidden.dtype == self.lm_head.weight.dtype
            and not torch.is_autocast_enabled(hidden.device.type)
        ):
            return self._step_row(hidden.view(-1), enc_mask, self_cache, cross_cache, weights).view(1, -1)
        for i, (heads, head_dim, norms, eps, sa, ca, ffn, activation) in enumerate(weights):
            # self-attention over the cached positions + this one
            x = torch.layer_norm(hidden, hidden.shape[-1:], norms[0], norms[1], eps)
            query, key, value = _row_linear(x, sa[0], sa[1]).view(rows, 3, heads, 1, head_dim).unbind(1)
            key, value = self_cache.update(key, value, i)
            out = F.scaled_dot_product_attention(query, key, value).reshape(rows, -1)
            hidden = hidden + _row_linear(out, sa[2], sa[3])
            # cross-attention to the cached audio keys/values
            x = torch.layer_norm(hidden, hidden.shape[-1:], norms[2], norms[3], eps)
            query = _row_linear(x, ca[0], ca[1]).view(rows, heads, 1, head_dim)
            cross = cross_cache.layers[i]
            out = _attend_clips(query, cross.keys, cross.values, enc_mask).reshape(rows, -1)
            hidden = hidden + _row_linear(out, ca[2], ca[3])
            # feed-forward
            x = torch.layer_norm(hidden, hidden.shape[-1:], norms[4], norms[5], eps)
            hidden = hidden + _row_linear(activation(_row_linear(x, ffn[0], ffn[1])), ffn[2], ffn[3])
        return hidden

    @staticmethod
    def _step_row(hidden, enc_mask, self_cache, cross_cache, weights) -> torch.Tensor:
        """`_step_layers` for a single row (batch-1 greedy or sampling), `hidden` `(d_model,)`: the same ops and numbers
        on 1-D tensors, the matrix-vector products called directly. A batch-1 step is ~100 tiny ops; without the
        per-op shape checks and 2-D views it runs ~0.2 ms (15%) faster on CPU."""
        size = hidden.shape
        for i, (heads, head_dim, norms, eps, sa, ca, ffn, activation) in enumerate(weights):
            x = torch.layer_norm(hidden, size, norms[0], norms[1], eps)
            query, key, value = torch.addmv(sa[1], sa[0], x).view(3, 1, heads, 1, head_dim).unbind(0)
            key, value = self_cache.update(key, value, i)
            out = F.scaled_dot_product_attention(query, key, value)
            hidden = hidden + torch.addmv(sa[3], sa[2], out.view(-1))
            x = torch.layer_norm(hidden, size, norms[2], norms[3], eps)
            query = torch.addmv(ca[1], ca[0], x).view(1, heads, 1, head_dim)
            cross = cross_cache.layers[i]
            out = _attend_clips(query, cross.keys, cross.values, enc_mask)
            hidden = hidden + torch.addmv(ca[3], ca[2], out.view(-1))
            x = torch.layer_norm(hidden, size, norms[4], norms[5], eps)
            hidden = hidden + torch.addmv(ffn[3], ffn[2], activation(torch.addmv(ffn[1], ffn[0], x)))
        return hidden

    def _step_weights(self) -> list[tuple]:
        """Per layer, what `_cached_step` reads: heads, head size, the three layer norms' weights/biases and eps, the
        self-attention (qkv, out), cross-attention (q, out) and feed-forward (fc1, fc2) weights/biases, and the
        activation. Gathered once per `generate` (nested module attribute lookups cost ~0.4 us each, ~40 per layer
        per step)."""
        weights = []
        for layer in self.layers:
            sa, ca = layer.self_attn, layer.encoder_attn
            norms = (layer.self_attn_layer_norm, layer.encoder_attn_layer_norm, layer.final_layer_norm)
            weights.append(
                (
                    sa.num_heads,
                    sa.head_dim,
                    tuple(t for norm in norms for t in (norm.weight, norm.bias)),
                    norms[0].eps,
                    (sa.qkv_proj.weight, sa.qkv_proj.bias, sa.out_proj.weight, sa.out_proj.bias),
                    (ca.q_proj.weight, ca.q_proj.bias, ca.out_proj.weight, ca.out_proj.bias),
                    (layer.fc1.weight, layer.fc1.bias, layer.fc2.weight, layer.fc2.bias),
                    _FUNCTIONAL_ACTIVATIONS.get(self.config.activation_function, layer.activation_fn),
                )
            )
        return weights


class AudioCapAdapter(nn.Module):
    """Masked temporal pooling (optional) + Linear/LayerNorm projection from the encoder width to the decoder width."""

    def __init__(self, in_dim: int, out_dim: int, projection: bool, stride: int, pooling: str, eps: float = 1e-5):
        super().__init__()
        self.stride = stride
        self.pooling = pooling
        if projection or in_dim != out_dim:
            self.proj = nn.Linear(in_dim, out_dim)
            self.layer_norm = nn.LayerNorm(out_dim, eps=eps)
        else:
            self.proj = None
            self.layer_norm = None

    def _pool(self, hidden: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        bsz, length, dim = hidden.shape
        s = self.stride
        if mask is None:
            mask = torch.ones(bsz, length, dtype=torch.bool, device=hidden.device)
        pad = (-length) % s
        if pad:
            hidden = F.pad(hidden, (0, 0, 0, pad))
            mask = F.pad(mask, (0, pad), value=False)
        windows = hidden.view(bsz, -1, s, dim)
        wmask = mask.view(bsz, -1, s)
        count = wmask.sum(-1)
        if self.pooling == "max":
            filled = windows.masked_fill(~wmask[..., None], torch.finfo(hidden.dtype).min)
            pooled = filled.amax(2).masked_fill((count == 0)[..., None], 0.0)
        else:
            pooled = (windows * wmask[..., None].to(hidden.dtype)).sum(2) / count.clamp(min=1)[..., None].to(
                hidden.dtype
            )
        return pooled, count > 0

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.stride > 1:
            hidden, mask = self._pool(hidden, mask)
        if self.proj is not None:
            hidden = self.layer_norm(self.proj(hidden))
        return hidden, mask


def _encoder_kind(config) -> str:
    model_type = getattr(config, "model_type", None)
    if model_type == AUDIOCAP_ENCODER_TYPE:
        return "builtin"
    if model_type == "whisper":
        return "whisper"
    if model_type in WAVEFORM_ENCODER_TYPES:
        return "waveform"
    if model_type == "audio-spectrogram-transformer":
        return "ast"
    if model_type == "clap_audio_model":
        return "clap"
    raise ValueError(
        f"unsupported encoder model_type {model_type!r}: expected one of {', '.join(SUPPORTED_ENCODER_TYPES)}"
    )


def _build_encoder(config) -> PreTrainedModel:
    kind = _encoder_kind(config)
    if kind == "builtin":
        return AudioCapEncoder(config)
    if kind == "clap":
        from transformers import ClapAudioModel

        return ClapAudioModel(config)
    model = AutoModel.from_config(config)
    if getattr(config, "is_encoder_decoder", False):  # e.g. WhisperModel -> its encoder only
        model = model.get_encoder()
    return model


def _encoder_output_dim(config) -> int:
    kind = _encoder_kind(config)
    if kind == "clap":
        return int(config.patch_embeds_hidden_size * 2 ** (len(config.depths) - 1))
    if kind == "waveform":
        return getattr(config, "output_hidden_size", None) or config.hidden_size
    return config.hidden_size


def _decoder_max_positions(config) -> int | None:
    for name in ("max_target_positions", "max_position_embeddings", "n_positions"):
        value = getattr(config, name, None)
        if isinstance(value, int):
            return value
    return None


class AudioCapAudioEncoder(nn.Module):
    """The audio side as one module: `model` (built-in or pretrained encoder) + `adapter`. `get_encoder()` returns it, so
    `generate` runs it once and hands its `AudioCapEncoderOutput` (states at decoder width + frame mask) to the decoder."""

    def __init__(self, config: AudioCapConfig, encoder: PreTrainedModel | None = None):
        super().__init__()
        self.kind = _encoder_kind(config.encoder)
        self.model = encoder if encoder is not None else _build_encoder(config.encoder)
        self.main_input_name = "input_values" if self.kind == "waveform" else "input_features"
        self.clip_statistics = bool(getattr(config, "keyword_statistics", False))
        if self.clip_statistics and self.kind == "waveform":
            raise ValueError("keyword_statistics needs a log-mel encoder, not a waveform encoder")
        self.adapter = AudioCapAdapter(
            _encoder_output_dim(config.encoder),
            config.decoder.hidden_size,
            config.adapter_projection,
            config.adapter_pooling_stride,
            config.adapter_pooling_type,
        )

    @property
    def n_mels(self) -> int | None:
        return getattr(self.model.config, "num_mel_bins", None)

    def _check_features(self, feats: torch.Tensor | None, name: str) -> None:
        if feats is None:
            raise ValueError(f"the {self.kind} encoder expects `{name}`, got None")
        if feats.shape[0] == 0:
            raise ValueError(f"empty batch: `{name}` has batch size 0")
        if self.kind == "waveform":
            if feats.ndim != 2 or feats.shape[-1] == 0:
                raise ValueError(f"expected `input_values` of shape (batch, samples), got {tuple(feats.shape)}")
            return
        if feats.ndim != 3 or feats.shape[1] != self.n_mels or feats.shape[-1] == 0:
            raise ValueError(
                f"expected `input_features` of shape (batch, n_mels={self.n_mels}, frames>0), got {tuple(feats.shape)}"
            )

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
        self._check_features(feats, self.main_input_name)
        if attention_mask is not None:
            if attention_mask.shape != (feats.shape[0], feats.shape[-1]):
                raise ValueError(
                    f"attention_mask shape {tuple(attention_mask.shape)} does not match the audio input "
                    f"(batch, {'samples' if self.kind == 'waveform' else 'frames'}) = ({feats.shape[0]}, {feats.shape[-1]})"
                )
            if bool((attention_mask.sum(-1) == 0).any()):
                raise ValueError("attention_mask: a clip in the batch has no valid frame (all zeros)")
            if bool(attention_mask.bool().all()):
                attention_mask = None
        hidden, mask, extra = getattr(self, f"_encode_{self.kind}")(feats, attention_mask, output_hidden_states)
        hidden, mask = self.adapter(hidden, mask)
        if self.clip_statistics:
            lengths = attention_mask.long().sum(-1) if attention_mask is not None else None
            extra["clip_statistics"] = _clip_statistics(feats, lengths)
        return AudioCapEncoderOutput(last_hidden_state=hidden, attention_mask=mask, **extra)

    def _encode_builtin(self, feats, mask, output_hidden_states):
        out = self.model(feats, attention_mask=mask, output_hidden_states=output_hidden_states)
        return out.last_hidden_state, out.attention_mask, {"hidden_states": out.hidden_states}

    def _encode_whisper(self, feats, mask, output_hidden_states):
        enc = self.model
        max_frames = enc.embed_positions.num_embeddings * enc.conv1.stride[0] * enc.conv2.stride[0]
        if feats.shape[-1] > max_frames:
            raise ValueError(f"the Whisper encoder takes at most {max_frames} frames (30 s), got {feats.shape[-1]}")
        lengths = mask.long().sum(-1) if mask is not None else None
        x = feats.to(enc.conv1.weight.dtype)
        if lengths is not None:
            x = x * _lengths_to_mask(lengths, x.shape[-1]).to(x.dtype)[:, None, :]
        x = F.gelu(enc.conv1(x))
        if lengths is not None:
            x = x * _lengths_to_mask(lengths, x.shape[-1]).to(x.dtype)[:, None, :]
        x = F.gelu(enc.conv2(x))
        hidden = x.transpose(1, 2)
        # the fix for short clips: positions sliced to the real length instead of padding the input to 3000 frames
        hidden = hidden + enc.embed_positions.weight[: hidden.shape[1]].to(hidden.dtype)
        hidden = F.dropout(hidden, p=enc.dropout, training=self.training)
        frame_mask = None
        attn_mask = None
        if lengths is not None:
            frame_mask = _lengths_to_mask(enc._get_feat_extract_output_lengths(lengths), hidden.shape[1])
            attn_mask = create_bidirectional_mask(config=enc.config, inputs_embeds=hidden, attention_mask=frame_mask)
        all_hidden = (hidden,) if output_hidden_states else None
        for layer in enc.layers:
            hidden = layer(hidden, attn_mask)
            if output_hidden_states:
                all_hidden += (hidden,)
        hidden = enc.layer_norm(hidden)
        return hidden, frame_mask, {"hidden_states": all_hidden}

    def _encode_waveform(self, feats, mask, output_hidden_states):
        if mask is not None:
            feats = feats * mask.to(feats.dtype)
        out = self.model(feats, attention_mask=mask, output_hidden_states=output_hidden_states, return_dict=True)
        hidden = out.last_hidden_state
        frame_mask = None
        if mask is not None:
            frame_mask = self.model._get_feature_vector_attention_mask(hidden.shape[1], mask).bool()
        return hidden, frame_mask, {"hidden_states": out.hidden_states}

    def _fixed_length(self, feats, mask, target):
        """(batch, n_mels, frames) -> zero padded frames, then zero-pad / truncate to `target` frames."""
        if mask is not None:
            feats = feats * mask.to(feats.dtype)[:, None, :]
        if feats.shape[-1] < target:
            feats = F.pad(feats, (0, target - feats.shape[-1]))
        return feats[..., :target]

    def _encode_ast(self, feats, mask, output_hidden_states):
        feats = self._fixed_length(feats, mask, self.model.config.max_length)
        out = self.model(feats.transpose(1, 2), output_hidden_states=output_hidden_states, return_dict=True)
        return out.last_hidden_state, None, {"hidden_states": out.hidden_states}

    def _encode_clap(self, feats, mask, output_hidden_states):
        cfg = self.model.config
        freq_ratio = cfg.spec_size // cfg.num_mel_bins
        feats = self._fixed_length(feats, mask, cfg.spec_size * freq_ratio)
        out = self.model(input_features=feats.transpose(1, 2)[:, None], return_dict=True)
        hidden = out.last_hidden_state  # (batch, C, H, W)
        hidden = hidden.flatten(2).transpose(1, 2)
        return hidden, None, {}


# ----------------------------------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------------------------------
class AudioCapForConditionalGeneration(AudioCapPreTrainedModel, GenerationMixin):
    """Audio encoder + adapter + text decoder for captioning; `generate()` works like any transformers seq2seq model.

    Inputs: `input_features (batch, n_mels, frames)` + frame `attention_mask` (or `input_values` + sample mask for
    waveform encoders), `labels (batch, len)` ending with eos and padded with -100. Returns `Seq2SeqLMOutput`.
    """

    config_class = AudioCapConfig
    accepts_loss_kwargs = True

    def __init__(
        self,
        config: AudioCapConfig,
        encoder: PreTrainedModel | None = None,
        decoder: PreTrainedModel | None = None,
    ):
        # model_type, not isinstance: with trust_remote_code, transformers may load the config class from another copy
        # of configuration_audiocap.py than the one this file imports
        if getattr(config, "model_type", None) != AudioCapConfig.model_type:
            raise ValueError(f"config must be an AudioCapConfig (model_type 'audiocap'), got {type(config).__name__}")
        if encoder is not None:
            config.encoder = encoder.config
        if decoder is not None:
            config.decoder = decoder.config
        super().__init__(config)
        self.encoder = AudioCapAudioEncoder(config, encoder)
        if decoder is None:
            if config.decoder.model_type == AUDIOCAP_DECODER_TYPE:
                decoder = AudioCapDecoder(config.decoder)
            else:
                decoder = AutoModelForCausalLM.from_config(config.decoder)
        if decoder.get_output_embeddings() is None:
            raise ValueError(f"the decoder {type(decoder).__name__} has no LM head; use a *ForCausalLM class")
        self.decoder = decoder
        keyword_in = self.decoder.get_input_embeddings().embedding_dim
        self.keyword_stats_norm = None
        if getattr(config, "keyword_statistics", False):
            self.keyword_stats_norm = nn.LayerNorm(3 * config.encoder.num_mel_bins)
            keyword_in += 3 * config.encoder.num_mel_bins
        self.keyword_head = (
            nn.Linear(keyword_in, config.vocab_size) if getattr(config, "keyword_loss_weight", 0.0) > 0 else None
        )
        self.keyword_embed = (
            nn.Embedding(config.vocab_size, self.decoder.get_input_embeddings().embedding_dim)
            if getattr(config, "keyword_memory_tokens", 0) > 0
            else None
        )
        # keep one config object per part, so what is saved is what runs
        self.config.encoder = self.encoder.model.config
        self.config.decoder = self.decoder.config
        if config.freeze_encoder:
            self.freeze_encoder()
        self.post_init()
        self.generation_config = self._default_generation_config(config)

    @staticmethod
    def _default_generation_config(config: AudioCapConfig) -> GenerationConfig:
        # greedy-or-beam decision: 3 beams (the usual setting for audio captioning; `num_beams=1` for speed)
        return GenerationConfig(
            decoder_start_token_id=config.decoder_start_token_id,
            bos_token_id=config.bos_token_id,
            eos_token_id=config.eos_token_id,
            pad_token_id=config.pad_token_id,
            max_length=min(30, _decoder_max_positions(config.decoder) or 30),
            num_beams=3,
        )

    # --- accessors ---------------------------------------------------------------------------------------------------
    def get_encoder(self, modality: str | None = None) -> AudioCapAudioEncoder:
        return self.encoder

    def get_decoder(self) -> PreTrainedModel:
        return self.decoder

    def get_input_embeddings(self) -> nn.Module:
        return self.decoder.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.decoder.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.decoder.get_output_embeddings()

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.decoder.set_output_embeddings(value)

    def freeze_encoder(self) -> None:
        """Freeze the audio encoder (the adapter and the decoder keep training)."""
        for param in self.encoder.model.parameters():
            param.requires_grad_(False)

    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor) -> torch.Tensor:
        return shift_tokens_right(labels, self.config.pad_token_id, self.config.decoder_start_token_id)

    @classmethod
    def from_encoder_decoder_pretrained(
        cls,
        encoder_pretrained_model_name_or_path: str | None = None,
        decoder_pretrained_model_name_or_path: str | None = None,
        **kwargs,
    ) -> AudioCapForConditionalGeneration:
        """Encoder weights through `AutoModel.from_pretrained` (Whisper: its encoder only; `None` = built-in encoder
        from scratch), decoder weights through `AutoModelForCausalLM.from_pretrained` with `is_decoder=True,
        add_cross_attention=True` (new cross-attention weights are randomly initialised; `None` = built-in decoder).
        `encoder_*` / `decoder_*` kwargs go to the respective `from_pretrained` / config; the rest to `AudioCapConfig`."""
        register_auto_classes()
        kw_enc = {k[len("encoder_") :]: kwargs.pop(k) for k in list(kwargs) if k.startswith("encoder_")}
        kw_dec = {k[len("decoder_") :]: kwargs.pop(k) for k in list(kwargs) if k.startswith("decoder_")}
        if "start_token_id" in kw_dec:  # `decoder_start_token_id` is a top-level config field, not a decoder kwarg
            kwargs["decoder_start_token_id"] = kw_dec.pop("start_token_id")
        for kw in (kw_enc, kw_dec):  # pretrained parts load from safetensors only, as the whole model does
            if kw.get("use_safetensors") is None:
                kw["use_safetensors"] = True

        def load_config(path, what, extra):
            try:
                return AutoConfig.from_pretrained(path, **extra)
            except (OSError, ValueError, KeyError) as err:
                raise ValueError(
                    f"cannot load the {what} {path!r}: expected a local folder or Hub id of a transformers model "
                    f"({'an audio encoder: ' + ', '.join(SUPPORTED_ENCODER_TYPES) if what == 'encoder' else 'a causal LM with cross-attention, e.g. bart or gpt2'}) "
                    f"[{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}]"
                ) from err

        if encoder_pretrained_model_name_or_path is None:
            encoder = AudioCapEncoder(AudioCapEncoderConfig(**kw_enc))
        else:
            enc_config = load_config(encoder_pretrained_model_name_or_path, "encoder", kw_enc.pop("config_kwargs", {}))
            kind = _encoder_kind(enc_config)
            enc_config.is_decoder = False
            enc_config.add_cross_attention = False
            if kind == "builtin":
                encoder = AudioCapEncoder.from_pretrained(encoder_pretrained_model_name_or_path, **kw_enc)
            elif kind == "clap":
                from transformers import ClapAudioModel

                encoder = ClapAudioModel.from_pretrained(encoder_pretrained_model_name_or_path, **kw_enc)
            else:
                encoder = AutoModel.from_pretrained(encoder_pretrained_model_name_or_path, config=enc_config, **kw_enc)
                if getattr(enc_config, "is_encoder_decoder", False):
                    encoder = encoder.get_encoder()
        if decoder_pretrained_model_name_or_path is None:
            dec_kwargs = {"vocab_size": kwargs["vocab_size"]} if "vocab_size" in kwargs else {}
            decoder = AudioCapDecoder(AudioCapDecoderConfig(**dec_kwargs, **kw_dec))
        else:
            dec_config = load_config(decoder_pretrained_model_name_or_path, "decoder", kw_dec.pop("config_kwargs", {}))
            dec_config.is_decoder = True
            dec_config.add_cross_attention = True
            decoder = AutoModelForCausalLM.from_pretrained(
                decoder_pretrained_model_name_or_path, config=dec_config, **kw_dec
            )
        config = AudioCapConfig.from_encoder_decoder_configs(encoder.config, decoder.config, **kwargs)
        return cls(config, encoder=encoder, decoder=decoder)

    # --- forward -----------------------------------------------------------------------------------------------------
    def forward(
        self,
        input_features: torch.FloatTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: AudioCapEncoderOutput | tuple | None = None,
        cache: Cache | None = None,
        decoder_inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        input_values: torch.FloatTensor | None = None,
        logits_to_keep: int = 0,
        encoder_index: torch.LongTensor | None = None,
        smoothing: float = 0.0,
        **kwargs,
    ) -> Seq2SeqLMOutput | tuple:
        r"""
        encoder_index (`torch.LongTensor` of shape `(decoder_batch,)`, *optional*): for each decoder row, the row of
            the audio batch it describes. A clip with five captions is then encoded once and its states are shared
            by its five caption rows (the same loss as five (clip, caption) examples, for a fifth of the encoder cost;
            the built-in decoder also projects the cross-attention keys/values once per clip, ~8% of a demo
            training step).
        labels (`torch.LongTensor` of shape `(batch, target_len)`): target ids ending with eos, -100 = ignored. The loss
            is `F.cross_entropy(logits.view(-1, V), labels.view(-1), ignore_index=-100)` (mean over the non -100
            tokens; when the Trainer passes `num_items_in_batch`, the sum divided by it, for gradient accumulation).
        smoothing (`float`): label-smoothing epsilon of `F.cross_entropy(..., label_smoothing=smoothing)`, the loss of
            transformers' `LabelSmoother` ((1 - eps) * NLL + eps * mean over the vocabulary of -log p). The recipes'
            `AudioCapTrainer` passes `Seq2SeqTrainingArguments.label_smoothing_factor` here for training batches only,
            so the keyword loss still applies and the validation loss (and perplexity) stays the plain NLL. A stock
            `Seq2SeqTrainer` instead pops `labels` and smooths our `logits` itself; the batch must then also carry
            `decoder_input_ids` (`model.prepare_decoder_input_ids_from_labels(labels)`).
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if cache is None:
            cache = kwargs.pop("past_key_values", None)
        num_items_in_batch = kwargs.pop("num_items_in_batch", None)

        if encoder_outputs is None:
            encoder_outputs = self.encoder(
                input_features=input_features,
                attention_mask=attention_mask,
                input_values=input_values,
                output_hidden_states=output_hidden_states,
            )
        elif isinstance(encoder_outputs, (tuple, list)):
            encoder_outputs = AudioCapEncoderOutput(*encoder_outputs)
        if self._uses_keywords():
            encoder_outputs = self._with_keywords(encoder_outputs)
        encoder_hidden_states = encoder_outputs.last_hidden_state
        encoder_mask = getattr(encoder_outputs, "attention_mask", None)
        builtin_decoder = self.config.decoder.model_type == AUDIOCAP_DECODER_TYPE
        if encoder_index is not None:
            encoder_index = encoder_index.to(encoder_hidden_states.device)
            if not builtin_decoder:  # the built-in decoder gathers its cross-attention keys/values per clip itself
                encoder_hidden_states = encoder_hidden_states.index_select(0, encoder_index)
                if encoder_mask is not None:
                    encoder_mask = encoder_mask.index_select(0, encoder_index)

        if labels is not None:
            max_pos = _decoder_max_positions(self.config.decoder)
            if max_pos is not None and labels.shape[-1] > max_pos:
                raise ValueError(
                    f"labels have {labels.shape[-1]} tokens but the decoder has only {max_pos} positions "
                    "(truncate captions to at most that many tokens)"
                )
            if decoder_input_ids is None and decoder_inputs_embeds is None:
                decoder_input_ids = self.prepare_decoder_input_ids_from_labels(labels)
        if decoder_input_ids is None and decoder_inputs_embeds is None:
            raise ValueError(
                "forward needs `labels` or `decoder_input_ids` (= model.prepare_decoder_input_ids_from_labels(labels))"
            )
        if use_cache is None:
            use_cache = self.config.use_cache and not self.training and labels is None
        if not use_cache:
            cache = None

        if builtin_decoder:
            dec_out = self.decoder(
                input_ids=decoder_input_ids,
                attention_mask=decoder_attention_mask,
                encoder_hidden_states=encoder_hidden_states,
                encoder_attention_mask=encoder_mask,
                encoder_index=encoder_index,
                cache=cache,
                inputs_embeds=decoder_inputs_embeds,
                use_cache=use_cache,
                output_hidden_states=output_hidden_states,
                logits_to_keep=logits_to_keep,
            )
        else:
            if use_cache and cache is None:
                cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
            dec_out = self.decoder(
                input_ids=decoder_input_ids,
                attention_mask=decoder_attention_mask,
                encoder_hidden_states=encoder_hidden_states,
                encoder_attention_mask=encoder_mask.long() if encoder_mask is not None else None,
                cache=cache,
                inputs_embeds=decoder_inputs_embeds,
                use_cache=use_cache,
                output_attentions=output_attentions,
                output_hidden_states=output_hidden_states,
                return_dict=True,
            )
        logits = dec_out.logits

        loss = None
        if labels is not None:
            flat_logits = logits.float().reshape(-1, logits.shape[-1])
            flat_labels = labels.to(logits.device).reshape(-1)
            if num_items_in_batch is not None:
                loss = F.cross_entropy(
                    flat_logits, flat_labels, ignore_index=-100, reduction="sum", label_smoothing=smoothing
                )
                loss = loss / torch.as_tensor(num_items_in_batch, device=loss.device, dtype=loss.dtype)
            else:
                loss = F.cross_entropy(flat_logits, flat_labels, ignore_index=-100, label_smoothing=smoothing)
            if self.keyword_head is not None and self.training:
                # Each caption row weighs as many tokens as it has, and the sum is normalised like the caption
                # term (by the step's token count across processes and accumulated batches when the Trainer
                # gives it), so DDP and gradient accumulation give the same loss as one big batch.
                keyword_logits = encoder_outputs.keyword_logits
                if encoder_index is not None:
                    keyword_logits = keyword_logits.index_select(0, encoder_index)
                row_loss = self._keyword_loss(keyword_logits, labels.to(logits.device))
                row_tokens = (labels.to(logits.device) != -100).sum(-1).to(row_loss.dtype)
                denominator = (
                    torch.as_tensor(num_items_in_batch, device=row_loss.device, dtype=row_loss.dtype)
                    if num_items_in_batch is not None
                    else row_tokens.sum().clamp(min=1.0)
                )
                keyword_loss = (row_loss * row_tokens).sum() / denominator
                loss = loss + self.config.keyword_loss_weight * keyword_loss

        output = Seq2SeqLMOutput(
            loss=loss,
            logits=logits,
            cache=dec_out.cache if use_cache else None,
            decoder_hidden_states=dec_out.hidden_states,
            decoder_attentions=getattr(dec_out, "attentions", None),
            cross_attentions=getattr(dec_out, "cross_attentions", None),
            encoder_last_hidden_state=encoder_outputs.last_hidden_state,  # one row per clip
            encoder_hidden_states=encoder_outputs.hidden_states,
            encoder_attentions=encoder_outputs.attentions,
        )
        return output if return_dict else output.to_tuple()

    def _uses_keywords(self) -> bool:
        """Whether a forward needs the keyword estimate: for the keyword loss (training) or the keyword memory the
        decoder attends to. Otherwise (inference without memory) the head is skipped."""
        return self.keyword_head is not None and (self.training or self.config.keyword_memory_tokens > 0)

    def _with_keywords(self, encoder_outputs: AudioCapEncoderOutput) -> AudioCapEncoderOutput:
        """Keyword estimation, once per encoder output: the keyword head on the masked mean of the adapted audio states
        gives `keyword_logits` (multi-label over the vocabulary); with `keyword_memory_tokens` = k > 0 the embeddings
        of the k most probable words, scaled by their probability, are appended to the states (and the frame mask)
        the decoder cross-attends to. Outputs that already carry `keyword_logits` (e.g. `generate` steps) pass as is."""
        if self.keyword_head is None or encoder_outputs.keyword_logits is not None:
            return encoder_outputs
        states, mask = encoder_outputs.last_hidden_state, encoder_outputs.attention_mask
        width = states.shape[-1]
        weight, bias = self.keyword_head.weight, self.keyword_head.bias
        if getattr(self.config, "keyword_pooling", "mean") == "max":
            # frame-level keyword logits, masked max over frames: a short event is scored where it sounds
            frame_logits = F.linear(states, weight[:, :width])
            if mask is not None:
                frame_logits = frame_logits.masked_fill(~mask.bool()[..., None], torch.finfo(frame_logits.dtype).min)
            logits = frame_logits.amax(1) + bias
        elif mask is not None:
            weights = mask.to(states.dtype).unsqueeze(-1)
            logits = F.linear((states * weights).sum(1) / weights.sum(1).clamp(min=1.0), weight[:, :width], bias)
        else:
            logits = F.linear(states.mean(1), weight[:, :width], bias)
        if self.keyword_stats_norm is not None:
            if encoder_outputs.clip_statistics is None:
                raise ValueError(
                    "keyword_statistics: the encoder output has no clip_statistics (run model.get_encoder())"
                )
            logits = logits + F.linear(self.keyword_stats_norm(encoder_outputs.clip_statistics), weight[:, width:])
        encoder_outputs.keyword_logits = logits
        k = self.config.keyword_memory_tokens
        if k and self.keyword_embed is not None:
            special = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
            special[
                [
                    i
                    for i in (self.config.pad_token_id, self.config.eos_token_id, self.config.bos_token_id)
                    if i is not None
                ]
            ] = True
            probs = torch.sigmoid(logits.float()).masked_fill(special, 0.0)
            top_p, top_i = probs.topk(min(k, probs.shape[-1]), dim=-1)
            memory = self.keyword_embed(top_i) * top_p.to(states.dtype).unsqueeze(-1)
            encoder_outputs.last_hidden_state = torch.cat([states, memory], dim=1)
            if mask is not None:
                encoder_outputs.attention_mask = torch.cat([mask, mask.new_ones(mask.shape[0], top_i.shape[1])], 1)
        return encoder_outputs

    def _keyword_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Multi-label keyword estimation (`keyword_logits`, one row per caption): binary cross-entropy against the
        set of words in each caption, summed over the vocabulary and divided by the number of words present (so a
        caption's length does not scale it); one value per caption row."""
        logits = logits.float()
        targets = torch.zeros_like(logits)
        valid = labels.clamp(min=0)
        targets.scatter_add_(1, valid, (labels >= 0).to(targets.dtype)).clamp_(max=1.0)
        special = [
            i for i in (self.config.pad_token_id, self.config.eos_token_id, self.config.bos_token_id) if i is not None
        ]
        targets[:, special] = 0.0
        per_word = F.binary_cross_entropy_with_logits(logits, targets, reduction="none").sum(-1)
        return per_word / targets.sum(-1).clamp(min=1.0)

    # --- generation --------------------------------------------------------------------------------------------------
    def prepare_inputs_for_generation(self, input_ids, next_sequence_length=None, cache=None, **kwargs):
        """transformers 5.24's seq2seq preparation (decoder ids sliced to the new token when a cache is used, cache and
        `encoder_outputs` forwarded), minus the raw audio: the encoder already ran once in
        `_prepare_encoder_decoder_kwargs_for_generation`, its output (expanded for beams) is reused every step."""
        inputs = super().prepare_inputs_for_generation(
            input_ids, next_sequence_length=next_sequence_length, cache=cache, **kwargs
        )
        if inputs.get("encoder_outputs") is not None:
            for key in ("input_features", "input_values"):
                inputs.pop(key, None)
        return inputs

    def _sample(
        self,
        input_ids: torch.LongTensor,
        logits_processor: LogitsProcessorList,
        stopping_criteria,
        generation_config,
        synced_gpus: bool = False,
        streamer=None,
        **model_kwargs,
    ):
        """Greedy decoding and sampling (transformers' `_sample` semantics). For a plain call with the built-in decoder
        (no streamer, no per-step outputs returned, no multi-GPU sync, default cache), every step after the first calls
        the decoder's lean cached step (`AudioCapDecoder._step_layers`, 1-D `_step_row` for a single row) directly:
        the same ops, logits processors, token choice and stopping criteria, without transformers' per-step input
        preparation and output bookkeeping (about half of a batch-1 step's time on CPU). Any other call goes to
        transformers' loop."""
        cache = model_kwargs.get("cache")
        if (
            self.training
            or self.config.decoder.model_type != AUDIOCAP_DECODER_TYPE
            or streamer is not None
            or synced_gpus
            or generation_config.return_dict_in_generate
            or not isinstance(cache, EncoderDecoderCache)
            or model_kwargs.get("decoder_attention_mask") is not None
            or model_kwargs.get("encoder_outputs") is None
        ):
            return super()._sample(
                input_ids,
                logits_processor,
                stopping_criteria,
                generation_config,
                synced_gpus,
                streamer,
                **model_kwargs,
            )
        decoder = self.decoder
        encoder_outputs = model_kwargs["encoder_outputs"]
        encoder_index = model_kwargs.get("encoder_index")
        enc_mask = _sdpa_key_mask(getattr(encoder_outputs, "attention_mask", None))
        if enc_mask is not None and encoder_index is not None:
            encoder_index = encoder_index.to(enc_mask.device)
            if not _repeats_each_clip(encoder_index, enc_mask.shape[0]):  # else: per clip, as the keys/values
                enc_mask = enc_mask.index_select(0, encoder_index)
        pad_token_id = generation_config._pad_token_tensor
        has_eos_stopping_criteria = any(hasattr(criteria, "eos_token_id") for criteria in stopping_criteria)
        plain_stopping = _plain_stopping(stopping_criteria)
        if plain_stopping is not None and plain_stopping[1] is not None:
            plain_stopping = plain_stopping[0], plain_stopping[1].to(input_ids.device)
        unfinished = torch.ones(input_ids.shape[0], dtype=torch.long, device=input_ids.device)
        running = input_ids.shape[0]  # rows not finished yet (while all are, padding finished rows is a no-op)
        # first step: the regular forward computes and caches the cross-attention keys/values
        logits = self(
            decoder_input_ids=input_ids,
            encoder_outputs=encoder_outputs,
            encoder_index=encoder_index,
            cache=cache,
            use_cache=True,
            return_dict=True,
        ).logits[:, -1]
        # self-attention keys/values in buffers for the longest caption this call can produce (grown if needed)
        step_cache = _StepCache(
            cache.self_attention_cache, min(decoder.config.max_target_positions, generation_config.max_length)
        )
        weights = decoder._step_weights()
        embed_tokens, embed_positions = decoder.embed_tokens.weight, decoder.embed_positions.weight
        cross_cache = cache.cross_attention_cache
        # oneDNN off once for the whole loop, not per step (see `_cached_step`: only the steps' GELU would use it)
        with (
            _intra_op_threads(decoder.step_num_threads if input_ids.shape[0] <= decoder.step_max_rows else None),
            _without_onednn(decoder._step_without_onednn(logits)),
        ):
            while True:
                scores = logits_processor(input_ids, logits.to(dtype=torch.float32))
                if generation_config.do_sample:
                    next_tokens = torch.multinomial(F.softmax(scores, dim=-1), num_samples=1).squeeze(1)
                else:
                    next_tokens = torch.argmax(scores, dim=-1)
                if has_eos_stopping_criteria and running < input_ids.shape[0]:
                    next_tokens = next_tokens * unfinished + pad_token_id * (1 - unfinished)
                input_ids = torch.cat([input_ids, next_tokens[:, None]], dim=-1)
                if plain_stopping is None:
                    unfinished = unfinished & ~stopping_criteria(input_ids, None)
                else:
                    max_length, eos = plain_stopping
                    if eos is not None:
                        unfinished = unfinished & ~torch.isin(next_tokens, eos)
                    if max_length is not None and input_ids.shape[1] >= max_length:
                        unfinished = torch.zeros_like(unfinished)
                running = int(unfinished.sum())
                if running == 0:
                    step_cache.write_back(cache.self_attention_cache)
                    return input_ids
                position = input_ids.shape[1] - 1
                if position >= decoder.config.max_target_positions:
                    raise ValueError(
                        f"AudioCapDecoder: {position + 1} decoder positions requested but max_target_positions is "
                        f"{decoder.config.max_target_positions} (lower max_length / max_new_tokens)"
                    )
                hidden = F.embedding(next_tokens, embed_tokens) + embed_positions[position]
                hidden = decoder._step_layers(hidden, enc_mask, step_cache, cross_cache, weights)
                logits = decoder._row_logits(hidden)

    def _get_logits_processor(self, *args, **kwargs) -> LogitsProcessorList:
        """transformers' processors, in a list that inspects their signatures once per `generate` (not every step), the
        min-length ones building their end-of-sequence mask once (`_with_cached_eos_masks`)."""
        return _with_cached_eos_masks(super()._get_logits_processor(*args, **kwargs))

    def _reorder_cache(self, cache: Cache, beam_idx: torch.LongTensor) -> Cache:
        """Beam search: reorder only the self-attention cache. `beam_idx` always picks beams of the same clip, and the
        beams of one clip share identical cross-attention keys/values (`generate` repeat_interleaves the encoder
        output), so reordering the cross-attention cache would copy `batch*beams*frames*d_model*2` floats per layer
        per step for nothing."""
        if isinstance(cache, EncoderDecoderCache):
            cache.self_attention_cache.reorder_cache(beam_idx)
        else:
            cache.reorder_cache(beam_idx)
        return cache

    def _prepare_cache_for_generation(
        self, generation_config, model_kwargs, generation_mode, batch_size, max_cache_length
    ) -> None:
        """Default dynamic cache: `EncoderDecoderCache(DynamicCache(), DynamicCache())` with lazily created layers.
        transformers sizes it from `config.decoder.num_hidden_layers`, which for BART maps to *encoder_layers* (wrong
        when they differ from decoder_layers -> IndexError); lazy layers fit any decoder. Other cache kinds: stock."""
        if (
            model_kwargs.get("cache") is None
            and generation_config.use_cache is not False
            and generation_config.cache_implementation in (None, "dynamic")
        ):
            model_kwargs["cache"] = EncoderDecoderCache(DynamicCache(), DynamicCache())
            return
        super()._prepare_cache_for_generation(
            generation_config, model_kwargs, generation_mode, batch_size, max_cache_length
        )

    def _prepare_text_encoder_decoder_kwargs_for_generation(
        self, inputs_tensor, model_kwargs, model_input_name, generation_config
    ):
        """Runs the audio encoder + adapter (+ keyword estimation) once per `generate`."""
        model_kwargs = super()._prepare_text_encoder_decoder_kwargs_for_generation(
            inputs_tensor, model_kwargs, model_input_name, generation_config
        )
        if self._uses_keywords():
            model_kwargs["encoder_outputs"] = self._with_keywords(model_kwargs["encoder_outputs"])
        return model_kwargs

    def _expand_inputs_for_generation(self, expand_size=1, is_encoder_decoder=False, input_ids=None, **model_kwargs):
        """Beam search / several sequences per clip: transformers repeats the encoder output `expand_size` times and
        every decoder layer then projects the same clip's cross-attention keys/values once per beam. With the built-in
        decoder the encoder output stays one row per clip and `encoder_index` (decoder row -> clip) lets each layer
        project once per clip, and the beams attend to their clip's keys/values (`_attend_clips`). The generated
        tokens are the same; `encoder_outputs` in a `return_dict_in_generate` result is then one row per clip."""
        encoder_outputs = model_kwargs.get("encoder_outputs")
        if (
            expand_size == 1
            or self.config.decoder.model_type != AUDIOCAP_DECODER_TYPE
            or encoder_outputs is None
            or model_kwargs.get("encoder_index") is not None
        ):
            return super()._expand_inputs_for_generation(expand_size, is_encoder_decoder, input_ids, **model_kwargs)
        model_kwargs.pop("encoder_outputs")
        input_ids, model_kwargs = super()._expand_inputs_for_generation(
            expand_size, is_encoder_decoder=False, input_ids=input_ids, **model_kwargs
        )
        clips = torch.arange(
            encoder_outputs.last_hidden_state.shape[0], device=encoder_outputs.last_hidden_state.device
        )
        model_kwargs["encoder_outputs"] = encoder_outputs
        model_kwargs["encoder_index"] = clips.repeat_interleave(expand_size)
        return input_ids, model_kwargs

    def _prepare_encoder_decoder_kwargs_for_generation(
        self, inputs_tensor, model_kwargs, model_input_name, generation_config
    ):
        """The same, under the name older transformers callers use."""
        return self._prepare_text_encoder_decoder_kwargs_for_generation(
            inputs_tensor, model_kwargs, model_input_name, generation_config
        )


# transformers' `prepare_inputs_for_generation` calls `inspect.signature(self.forward)` at every decoding step for models
# registered for Auto classes (remote code), ~0.1-0.2 ms of Python each time: precompute it once (the same signature).
AudioCapForConditionalGeneration.forward.__signature__ = inspect.signature(AudioCapForConditionalGeneration.forward)


def _register_for_auto_class() -> None:
    AudioCapConfig.register_for_auto_class("AutoConfig")
    AudioCapForConditionalGeneration.register_for_auto_class("AutoModelForSpeechSeq2Seq")


_register_for_auto_class()


def register_auto_classes() -> None:
    """Register our configs/models with transformers' Auto classes (idempotent). Called once from `hf_audiocap`."""
    registrations = (
        (AutoConfig, AudioCapConfig.model_type, AudioCapConfig),
        (AutoConfig, AudioCapEncoderConfig.model_type, AudioCapEncoderConfig),
        (AutoConfig, AudioCapDecoderConfig.model_type, AudioCapDecoderConfig),
    )
    for auto, key, cls in registrations:
        try:
            auto.register(key, cls, exist_ok=True)
        except ValueError:
            pass
    for auto, config_cls, model_cls in (
        (AutoModelForSpeechSeq2Seq, AudioCapConfig, AudioCapForConditionalGeneration),
        (AutoModel, AudioCapConfig, AudioCapForConditionalGeneration),
        (AutoModel, AudioCapEncoderConfig, AudioCapEncoder),
        (AutoModelForCausalLM, AudioCapDecoderConfig, AudioCapDecoder),
    ):
        try:
            auto.register(config_cls, model_cls, exist_ok=True)
        except ValueError:
            pass


__all__ = [
    "AudioCapDecoder",
    "AudioCapEncoder",
    "AudioCapEncoderOutput",
    "AudioCapForConditionalGeneration",
    "AudioCapPreTrainedModel",
    "register_auto_classes",
    "shift_tokens_right",
]
