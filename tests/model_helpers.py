"""Tiny random models, inputs and pretrained parts saved to folders, shared by the model tests (CPU, milliseconds)."""

from __future__ import annotations

import os

import torch
from transformers import (
    BartConfig,
    BartForCausalLM,
    GPT2Config,
    GPT2LMHeadModel,
    Wav2Vec2Config,
    Wav2Vec2Model,
    WhisperConfig,
    WhisperModel,
)

from hf_audiocap.configuration_audiocap import AudioCapConfig
from hf_audiocap.modeling_audiocap import AudioCapForConditionalGeneration  # importing hf_audiocap registers it

N_MELS = 16
VOCAB = 40
PAD, UNK, SOS, EOS = 0, 1, 2, 3


def tiny_config(**kwargs) -> AudioCapConfig:
    enc = {
        "num_mel_bins": N_MELS,
        "d_model": 32,
        "encoder_layers": 2,
        "encoder_attention_heads": 2,
        "encoder_ffn_dim": 64,
    }
    dec = {
        "d_model": 32,
        "decoder_layers": 2,
        "decoder_attention_heads": 2,
        "decoder_ffn_dim": 64,
        "max_target_positions": 32,
    }
    enc.update(kwargs.pop("encoder", {}))
    dec.update(kwargs.pop("decoder", {}))
    return AudioCapConfig(encoder=enc, decoder=dec, vocab_size=kwargs.pop("vocab_size", VOCAB), **kwargs)


def tiny_model(seed: int = 0, **kwargs) -> AudioCapForConditionalGeneration:
    torch.manual_seed(seed)
    return AudioCapForConditionalGeneration(tiny_config(**kwargs)).eval()


def batch(lengths=(61, 40, 23), n_mels=N_MELS, seed=0):
    """Random log-mels of clips of `lengths` frames, padded with zeros, and their frame mask."""
    g = torch.Generator().manual_seed(seed)
    frames = max(lengths)
    feats = torch.randn(len(lengths), n_mels, frames, generator=g)
    mask = torch.zeros(len(lengths), frames, dtype=torch.long)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
        feats[i, :, n:] = 0.0
    return feats, mask


def labels_for(n: int, length: int = 7, seed: int = 0) -> torch.Tensor:
    """Labels ending with eos, rows of three lengths padded with -100."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(4, VOCAB, (n, length), generator=g)
    for i in range(n):
        end = length - (i % 3)
        labels[i, end - 1] = EOS
        labels[i, end:] = -100
    return labels


def assert_round_trip(model, folder, inputs, **load_kwargs):
    """save_pretrained -> from_pretrained gives the same logits (<= 1e-5), from safetensors only."""
    model.save_pretrained(folder)
    files = os.listdir(folder)
    assert "model.safetensors" in files and not any(f.endswith(".bin") for f in files)
    loaded = AudioCapForConditionalGeneration.from_pretrained(folder, **load_kwargs).eval()
    with torch.no_grad():
        assert (model(**inputs).logits - loaded(**inputs).logits).abs().max().item() <= 1e-5
    return loaded


def check_batch_invariance(model, feats, mask, labels):
    """A clip's logits (to 1e-4) and 3-beam caption are the same alone as padded in the batch."""
    with torch.no_grad():
        full = model(input_features=feats, attention_mask=mask, labels=labels).logits
        gen_batch = model.generate(input_features=feats, attention_mask=mask, num_beams=3, max_length=10)
        for i in range(feats.shape[0]):
            n = int(mask[i].sum())
            one_f, one_m = feats[i : i + 1, :, :n], mask[i : i + 1, :n]
            alone = model(input_features=one_f, attention_mask=one_m, labels=labels[i : i + 1]).logits
            assert (alone - full[i : i + 1]).abs().max().item() < 1e-4, i
            gen_one = model.generate(input_features=one_f, attention_mask=one_m, num_beams=3, max_length=10)
            assert torch.equal(gen_one[0], gen_batch[i, : gen_one.shape[1]]), (i, gen_one, gen_batch[i])


def composed(encoder_dir=None, decoder_dir=None, seed=0, **kwargs) -> AudioCapForConditionalGeneration:
    """`from_encoder_decoder_pretrained` with tiny built-in parts where no folder is given."""
    torch.manual_seed(seed)
    if decoder_dir is None:
        kwargs.setdefault("vocab_size", VOCAB)
        kwargs.setdefault("decoder_d_model", 32)
        kwargs.setdefault("decoder_decoder_layers", 1)
        kwargs.setdefault("decoder_decoder_attention_heads", 2)
        kwargs.setdefault("decoder_decoder_ffn_dim", 64)
    return AudioCapForConditionalGeneration.from_encoder_decoder_pretrained(encoder_dir, decoder_dir, **kwargs).eval()


def save_whisper(path):
    torch.manual_seed(1)
    cfg = WhisperConfig(
        num_mel_bins=N_MELS,
        d_model=32,
        encoder_layers=2,
        encoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_layers=1,
        decoder_attention_heads=2,
        decoder_ffn_dim=64,
        max_source_positions=64,
        max_target_positions=32,
        vocab_size=60,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
        decoder_start_token_id=2,
        begin_suppress_tokens=None,
    )
    WhisperModel(cfg).save_pretrained(path)
    return str(path)


def save_bart(path):
    """A BART decoder with more decoder than encoder layers (caches must be sized by the decoder's)."""
    torch.manual_seed(2)
    cfg = BartConfig(
        vocab_size=VOCAB,
        d_model=32,
        encoder_layers=1,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=48,
        pad_token_id=PAD,
        bos_token_id=SOS,
        eos_token_id=EOS,
        decoder_start_token_id=SOS,
        forced_eos_token_id=None,
    )
    BartForCausalLM(cfg).save_pretrained(path)
    return str(path)


def save_gpt2(path):
    torch.manual_seed(3)
    cfg = GPT2Config(
        vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=2, n_positions=48, bos_token_id=SOS, eos_token_id=EOS
    )
    GPT2LMHeadModel(cfg).save_pretrained(path)
    return str(path)


def save_wav2vec2(path):
    torch.manual_seed(4)
    cfg = Wav2Vec2Config(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(8, 8),
        conv_stride=(5, 4),
        conv_kernel=(10, 8),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
        vocab_size=VOCAB,
    )
    Wav2Vec2Model(cfg).save_pretrained(path)
    return str(path)
