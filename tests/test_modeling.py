"""Tests of the audio captioning model (tiny random configs, CPU, seconds each)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import transformers
from transformers import (
    ASTConfig,
    AutoConfig,
    AutoModelForSpeechSeq2Seq,
    BartConfig,
    BartForCausalLM,
    ClapAudioConfig,
    GenerationMixin,
    GPT2Config,
    GPT2LMHeadModel,
    Wav2Vec2Config,
    Wav2Vec2Model,
    WhisperConfig,
    WhisperModel,
)
from transformers.trainer_pt_utils import LabelSmoother

from hf_audiocap.configuration_audiocap import AudioCapConfig, AudioCapDecoderConfig, AudioCapEncoderConfig
from hf_audiocap.modeling_audiocap import (
    AudioCapForConditionalGeneration,
    register_auto_classes,
    shift_tokens_right,
)

register_auto_classes()

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
        "dropout": 0.0,
    }
    dec = {
        "d_model": 32,
        "decoder_layers": 2,
        "decoder_attention_heads": 2,
        "decoder_ffn_dim": 64,
        "max_target_positions": 32,
        "dropout": 0.0,
    }
    enc.update(kwargs.pop("encoder", {}))
    dec.update(kwargs.pop("decoder", {}))
    return AudioCapConfig(encoder=enc, decoder=dec, vocab_size=VOCAB, **kwargs)


def tiny_model(seed: int = 0, **kwargs) -> AudioCapForConditionalGeneration:
    torch.manual_seed(seed)
    return AudioCapForConditionalGeneration(tiny_config(**kwargs)).eval()


def batch(lengths=(61, 40, 23), n_mels=N_MELS, seed=0):
    g = torch.Generator().manual_seed(seed)
    frames = max(lengths)
    feats = torch.randn(len(lengths), n_mels, frames, generator=g)
    mask = torch.zeros(len(lengths), frames, dtype=torch.long)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
        feats[i, :, n:] = 0.0
    return feats, mask


def labels_for(n: int, length: int = 7, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(4, VOCAB, (n, length), generator=g)
    for i in range(n):
        end = length - (i % 3)
        labels[i, end - 1] = EOS
        labels[i, end:] = -100
    return labels


# --------------------------------------------------------------------------------------------------------------------
# tiny pretrained parts saved to local folders
# --------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def whisper_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("whisper")
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


@pytest.fixture(scope="module")
def bart_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("bart")
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


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("gpt2")
    torch.manual_seed(3)
    cfg = GPT2Config(
        vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=2, n_positions=48, bos_token_id=SOS, eos_token_id=EOS
    )
    GPT2LMHeadModel(cfg).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def wav2vec2_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("wav2vec2")
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


def composed(encoder_dir=None, decoder_dir=None, seed=0, **kwargs) -> AudioCapForConditionalGeneration:
    torch.manual_seed(seed)
    if decoder_dir is None:
        kwargs.setdefault("vocab_size", VOCAB)
        kwargs.setdefault("decoder_d_model", 32)
        kwargs.setdefault("decoder_decoder_layers", 1)
        kwargs.setdefault("decoder_decoder_attention_heads", 2)
        kwargs.setdefault("decoder_decoder_ffn_dim", 64)
        kwargs.setdefault("decoder_dropout", 0.0)
    return AudioCapForConditionalGeneration.from_encoder_decoder_pretrained(encoder_dir, decoder_dir, **kwargs).eval()


def assert_round_trip(model, tmp_path, inputs, **load_kwargs):
    model.save_pretrained(tmp_path)
    files = os.listdir(tmp_path)
    assert "model.safetensors" in files and not any(f.endswith(".bin") for f in files)
    loaded = AudioCapForConditionalGeneration.from_pretrained(tmp_path, **load_kwargs).eval()
    with torch.no_grad():
        a = model(**inputs).logits
        b = loaded(**inputs).logits
    assert (a - b).abs().max().item() <= 1e-5
    return loaded


# --------------------------------------------------------------------------------------------------------------------
# config / shapes / loss
# --------------------------------------------------------------------------------------------------------------------
def test_default_config_is_the_small_demo_model():
    config = AudioCapConfig()
    assert config.model_type == "audiocap"
    assert (config.encoder.d_model, config.encoder.encoder_layers, config.encoder.encoder_attention_heads) == (
        192,
        3,
        4,
    )
    assert (config.decoder.d_model, config.decoder.decoder_layers, config.decoder.decoder_attention_heads) == (
        192,
        2,
        4,
    )
    assert config.keyword_loss_weight == 0.5
    assert (config.pad_token_id, config.decoder_start_token_id, config.eos_token_id) == (0, 2, 3)
    model = AudioCapForConditionalGeneration(config)
    n_params = sum(p.numel() for p in model.parameters())
    assert 2_500_000 < n_params < 3_500_000, n_params
    assert model.main_input_name == "input_features"
    assert model.generation_config.decoder_start_token_id == 2 and model.generation_config.max_length == 30
    # tied embeddings: one tensor
    assert model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()


def test_config_round_trip_and_sub_configs(tmp_path):
    config = tiny_config(adapter_pooling_stride=2, adapter_pooling_type="max")
    config.save_pretrained(tmp_path)
    again = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(again, AudioCapConfig)
    assert isinstance(again.encoder, AudioCapEncoderConfig) and isinstance(again.decoder, AudioCapDecoderConfig)
    assert again.adapter_pooling_stride == 2 and again.decoder.vocab_size == VOCAB
    assert again.sub_configs == {"encoder": AudioCapEncoderConfig, "decoder": AudioCapDecoderConfig}
    both = AudioCapConfig.from_encoder_decoder_configs(WhisperConfig(d_model=32), BartConfig(vocab_size=VOCAB))
    assert both.decoder.is_decoder and both.decoder.add_cross_attention and both.vocab_size == VOCAB


def test_shapes_and_output_type():
    model = tiny_model()
    feats, mask = batch()
    labels = labels_for(3)
    out = model(input_features=feats, attention_mask=mask, labels=labels)
    assert type(out).__name__ == "Seq2SeqLMOutput"
    assert out.logits.shape == (3, labels.shape[1], VOCAB)
    # 61 frames -> 31 -> 16 encoder frames (4x conv subsampling)
    assert out.encoder_last_hidden_state.shape == (3, 16, 32)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    tup = model(input_features=feats, attention_mask=mask, labels=labels, return_dict=False)
    assert torch.equal(tup[0], out.loss)


def test_loss_equals_manual_cross_entropy():
    model = tiny_model()
    feats, mask = batch()
    labels = labels_for(3)
    out = model(input_features=feats, attention_mask=mask, labels=labels)
    probs = out.logits.double().softmax(-1)
    valid = labels != -100
    target_p = probs.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    manual = (-target_p.log())[valid].mean()
    assert abs(out.loss.item() - manual.item()) < 1e-5
    # decoder inputs = labels shifted right with <sos> first and -100 -> <pad>
    dec_in = shift_tokens_right(labels, PAD, SOS)
    assert dec_in[:, 0].eq(SOS).all() and not dec_in.eq(-100).any()
    again = model(input_features=feats, attention_mask=mask, decoder_input_ids=dec_in)
    assert torch.allclose(again.logits, out.logits, atol=1e-6)
    # gradient-accumulation form used by the Trainer: sum / num_items_in_batch
    n = int(valid.sum())
    ga = model(input_features=feats, attention_mask=mask, labels=labels, num_items_in_batch=torch.tensor(n))
    assert abs(ga.loss.item() - manual.item()) < 1e-5


def _assert_grouped_equals_repeated(model, index=(0, 0, 1, 1, 1)):
    """Captions grouped per clip (`encoder_index`: the clip is encoded once) give the loss, logits and gradients of
    the same (clip, caption) rows with each clip repeated, padding included (clip 1 is shorter than clip 0). Unequal
    groups gather keys/values per row; equal groups attend to their clip's keys/values directly."""
    feats, mask = batch(lengths=(61, 40))
    index = torch.tensor(index)
    labels = labels_for(len(index))
    grouped = model(input_features=feats, attention_mask=mask, labels=labels, encoder_index=index)
    grouped.loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    repeated = model(input_features=feats[index], attention_mask=mask[index], labels=labels)
    repeated.loss.backward()
    assert torch.allclose(grouped.logits, repeated.logits, atol=1e-5)
    assert abs(grouped.loss.item() - repeated.loss.item()) < 1e-5
    assert grads.keys() == {n for n, p in model.named_parameters() if p.grad is not None}
    for name, grad in grads.items():
        assert torch.allclose(grad, dict(model.named_parameters())[name].grad, atol=1e-5), name
    assert grouped.encoder_last_hidden_state.shape[0] == 2  # one row per clip


@pytest.mark.parametrize("index", [(0, 0, 1, 1, 1), (0, 0, 0, 1, 1, 1)])
def test_grouped_captions_equal_repeated_clips(index):
    _assert_grouped_equals_repeated(tiny_model(keyword_loss_weight=0.5).train(), index)  # no dropout; keyword loss on


def test_grouped_captions_equal_repeated_clips_bart_decoder(whisper_dir, bart_dir):
    _assert_grouped_equals_repeated(composed(whisper_dir, bart_dir))  # eval mode: BART's dropout off


def test_label_smoothing_through_the_trainer(tmp_path):
    from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments

    model = tiny_model()
    feats, mask = batch()
    labels = labels_for(3)
    args = Seq2SeqTrainingArguments(output_dir=str(tmp_path), label_smoothing_factor=0.1, report_to=[], use_cpu=True)
    trainer = Seq2SeqTrainer(model=model, args=args)
    assert isinstance(trainer.label_smoother, LabelSmoother)
    inputs = {
        "input_features": feats,
        "attention_mask": mask,
        "labels": labels,
        "decoder_input_ids": model.prepare_decoder_input_ids_from_labels(labels),
    }
    loss = trainer.compute_loss(model, dict(inputs))
    logits = model(**{k: v for k, v in inputs.items() if k != "labels"}).logits
    logp = logits.double().log_softmax(-1)
    valid = labels != -100
    nll = -logp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)[valid].mean()
    smooth = -logp.mean(-1)[valid].mean()
    expected = 0.9 * nll + 0.1 * smooth
    assert abs(loss.item() - expected.item()) < 1e-5
    # epsilon 0 gives back our own loss
    plain = LabelSmoother(epsilon=0.0)(model(**inputs), labels)
    assert abs(plain.item() - model(**inputs).loss.item()) < 1e-5


def test_label_smoothing_in_the_model_keeps_the_keyword_loss_and_an_unsmoothed_eval_loss(tmp_path):
    from transformers import Seq2SeqTrainingArguments

    from hf_audiocap.training.trainer import AudioCapTrainer

    model = tiny_model(keyword_loss_weight=0.5)
    feats, mask = batch()
    labels = labels_for(3)
    inputs = {"input_features": feats, "attention_mask": mask, "labels": labels}
    args = Seq2SeqTrainingArguments(output_dir=str(tmp_path), label_smoothing_factor=0.1, report_to=[], use_cpu=True)
    trainer = AudioCapTrainer(model=model, args=args)
    assert trainer.label_smoother is None and trainer.model_label_smoothing == 0.1
    # the Trainer finds label columns by name ("label" in a forward argument): only `labels`, or no eval loss
    assert trainer.label_names == ["labels"]

    model.train()  # keyword loss on (no dropout in the tiny model)
    smoothed = trainer.compute_loss(model, dict(inputs))
    plain = model(**inputs).loss
    no_keywords = model(**inputs, decoder_input_ids=model.prepare_decoder_input_ids_from_labels(labels)).logits
    logp = no_keywords.double().log_softmax(-1)
    valid = labels != -100
    nll = -logp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)[valid].mean()
    uniform = -logp.mean(-1)[valid].mean()
    keyword_term = plain.item() - nll.item()  # what the keyword head adds on top of the caption NLL
    assert keyword_term > 0.01
    assert abs(smoothed.item() - (0.9 * nll.item() + 0.1 * uniform.item() + keyword_term)) < 1e-5

    model.eval()  # validation: the plain NLL (perplexity = exp of it), no keyword loss
    assert abs(trainer.compute_loss(model, dict(inputs)).item() - nll.item()) < 1e-5


# --------------------------------------------------------------------------------------------------------------------
# generation
# --------------------------------------------------------------------------------------------------------------------
def _strip(seq: list[int]) -> list[int]:
    out = []
    for t in seq[1:]:
        if t == EOS:
            break
        out.append(t)
    return out


def test_generate_modes():
    model = tiny_model()
    feats, mask = batch()
    kw = {"input_features": feats, "attention_mask": mask}
    greedy = model.generate(**kw, num_beams=1, max_length=12)
    assert greedy.shape[0] == 3 and greedy.shape[1] <= 12 and greedy[:, 0].eq(SOS).all()
    beam = model.generate(**kw, num_beams=3, max_length=12)
    assert beam.shape[0] == 3 and beam.shape[1] <= 12
    beam_n = model.generate(**kw, num_beams=3, num_return_sequences=2, max_length=12)
    assert beam_n.shape[0] == 6
    torch.manual_seed(0)
    s1 = model.generate(**kw, do_sample=True, top_k=10, max_length=12, num_beams=1)
    torch.manual_seed(0)
    s2 = model.generate(**kw, do_sample=True, top_k=10, max_length=12, num_beams=1)
    assert torch.equal(s1, s2)
    nr = model.generate(**kw, num_beams=1, no_repeat_ngram_size=1, max_length=20)
    for row in nr.tolist():
        toks = _strip(row)
        toks = [t for t in toks if t != PAD]
        assert len(toks) == len(set(toks)), row
    rp = model.generate(**kw, num_beams=1, repetition_penalty=5.0, max_length=20)
    assert rp.shape[0] == 3
    ml = model.generate(**kw, num_beams=1, min_length=10, max_length=14)
    for row in ml.tolist():
        assert EOS not in row[:10]
    assert ml.shape[1] >= 10
    short = model.generate(**kw, num_beams=3, max_new_tokens=4)
    assert short.shape[1] <= 5


@pytest.mark.parametrize(
    "gen",
    [
        {"max_length": 15},
        {"min_length": 9, "max_length": 14},
        {"max_new_tokens": 6, "repetition_penalty": 3.0},
        {"max_length": 20, "no_repeat_ngram_size": 2},
        {"max_length": 12, "do_sample": True, "top_k": 8, "temperature": 0.7},
        {"max_length": 12, "do_sample": True, "num_return_sequences": 2},
    ],
)
@pytest.mark.parametrize("clips", [3, 1])
def test_lean_decoding_loop_matches_transformers_loop(gen, clips):
    """`_sample`'s lean loop (plain calls) gives the same tokens as transformers' own loop, which
    `return_dict_in_generate=True` selects; padded clips in the batch, finished rows padded. One clip: the single-row
    step (`AudioCapDecoder._step_row`)."""
    model = tiny_model(seed=8)
    feats, mask = batch()
    feats, mask = feats[-clips:], mask[-clips:]
    kw = {"input_features": feats, "attention_mask": mask, "num_beams": 1, **gen}
    forward_calls = []
    hook = model.decoder.register_forward_hook(lambda *a: forward_calls.append(1))
    torch.manual_seed(0)
    lean = model.generate(**kw)
    assert len(forward_calls) == 1  # only the first step went through the module; the rest took the lean loop
    torch.manual_seed(0)
    reference = model.generate(**kw, return_dict_in_generate=True).sequences
    hook.remove()
    assert len(forward_calls) > 2 and lean.shape[1] > 3 and torch.equal(lean, reference)


def test_generation_config_saved(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path)
    gen = json.loads((tmp_path / "generation_config.json").read_text())
    assert gen["decoder_start_token_id"] == SOS and gen["eos_token_id"] == EOS and gen["pad_token_id"] == PAD
    assert gen["max_length"] == 30 and gen["num_beams"] == 3


@pytest.mark.parametrize("num_beams", [1, 3])
def test_cache_matches_no_cache(num_beams):
    model = tiny_model(seed=5)
    feats, mask = batch()
    kw = {"input_features": feats, "attention_mask": mask, "num_beams": num_beams, "max_length": 15}
    with_cache = model.generate(**kw, use_cache=True)
    without = model.generate(**kw, use_cache=False)
    assert torch.equal(with_cache, without)


def test_incremental_decoding_matches_full_forward():
    model = tiny_model(seed=6)
    feats, mask = batch()
    ids = torch.cat([torch.full((3, 1), SOS), torch.randint(4, VOCAB, (3, 6))], dim=1)
    enc = model.get_encoder()(input_features=feats, attention_mask=mask)
    full = model(encoder_outputs=enc, decoder_input_ids=ids, use_cache=False).logits
    cache = None
    steps = []
    for t in range(ids.shape[1]):
        out = model(encoder_outputs=enc, decoder_input_ids=ids[:, t : t + 1], cache=cache, use_cache=True)
        cache = out.cache
        steps.append(out.logits)
    assert torch.allclose(torch.cat(steps, 1), full, atol=1e-5)
    # the cross-attention keys/values were computed once and reused
    assert all(cache.is_updated.values())


@pytest.mark.parametrize("clips", [3, 1])
def test_lean_cached_step_matches_layer_path_and_restores_threads(clips):
    """Cached one-token inference steps take `AudioCapDecoder._cached_step` (direct F.* calls; one row: the 1-D
    `_step_row`) on `step_num_threads` intra-op threads: same logits as the module-by-module path, and torch's thread
    count is restored after."""
    model = tiny_model(seed=7)
    feats, mask = batch()
    feats, mask = feats[:clips], mask[:clips]
    ids = torch.cat([torch.full((clips, 1), SOS), torch.randint(4, VOCAB, (clips, 5))], dim=1)
    threads_before = torch.get_num_threads()
    seen = []
    decoder = model.get_decoder()
    original = decoder._cached_step  # bound method

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return original(*args, **kwargs)

    decoder._cached_step = spy
    try:
        with torch.inference_mode():
            enc = model.get_encoder()(input_features=feats, attention_mask=mask)
            cache, steps = None, []
            for t in range(ids.shape[1]):
                out = model(encoder_outputs=enc, decoder_input_ids=ids[:, t : t + 1], cache=cache, use_cache=True)
                cache = out.cache
                steps.append(out.logits)
    finally:
        del decoder._cached_step
    lean = torch.cat(steps, 1)
    assert len(seen) == ids.shape[1]  # every step; the first one projects the cross-attention keys/values first
    assert torch.get_num_threads() == threads_before
    full = model(encoder_outputs=model.get_encoder()(input_features=feats, attention_mask=mask), decoder_input_ids=ids)
    assert torch.allclose(lean, full.logits, atol=1e-5)
    onednn_before = torch._C._get_mkldnn_enabled()  # (app.py's server setup turns it off process-wide)
    torch._C._set_mkldnn_enabled(True)
    try:
        out = model.generate(input_features=feats, attention_mask=mask, num_beams=1, max_length=10)
        assert torch._C._get_mkldnn_enabled()  # the step's native-GELU switch is restored
    finally:
        torch._C._set_mkldnn_enabled(onednn_before)
    assert torch.get_num_threads() == threads_before and out.shape[0] == clips


def test_step_cache_matches_dynamic_cache_and_writes_back():
    """The lean loop's preallocated self-attention buffers (`_StepCache`) return what a `DynamicCache` updated the same
    way returns, grow past their capacity, and leave the `DynamicCache` holding every position afterwards."""
    from transformers.cache_utils import DynamicCache

    from hf_audiocap.modeling_audiocap import _StepCache

    g = torch.Generator().manual_seed(0)
    reference, cache = DynamicCache(), DynamicCache()
    for layer in range(2):
        first = torch.randn(3, 2, 2, 4, generator=g), torch.randn(3, 2, 2, 4, generator=g)
        reference.update(*first, layer)
        cache.update(*first, layer)
    steps = _StepCache(cache, capacity=3)  # room for one new position: the next ones make it grow
    for _ in range(4):
        for layer in range(2):
            new = torch.randn(3, 2, 1, 4, generator=g), torch.randn(3, 2, 1, 4, generator=g)
            expected = reference.update(*new, layer)
            got = steps.update(*new, layer)
            assert all(torch.equal(a, b) for a, b in zip(expected, got))
    steps.write_back(cache)
    for ref_layer, layer in zip(reference.layers, cache.layers):
        assert torch.equal(ref_layer.keys, layer.keys) and torch.equal(ref_layer.values, layer.values)
    assert cache.get_seq_length() == 6


def test_plain_stopping_matches_transformers_criteria():
    """The lean loop's shortcut for `generate`'s own criteria (max length, end-of-sequence ids) stops exactly the rows
    transformers' `StoppingCriteriaList` stops; any other criterion keeps the list."""
    from transformers.generation.stopping_criteria import (
        EosTokenCriteria,
        MaxLengthCriteria,
        StoppingCriteriaList,
        StopStringCriteria,
    )

    from hf_audiocap.modeling_audiocap import _plain_stopping

    criteria = StoppingCriteriaList([MaxLengthCriteria(max_length=6), EosTokenCriteria(eos_token_id=[EOS, 7])])
    max_length, eos = _plain_stopping(criteria)
    assert max_length == 6 and sorted(eos.tolist()) == [EOS, 7]
    g = torch.Generator().manual_seed(0)
    for length in (3, 5, 6, 7):
        ids = torch.randint(4, VOCAB, (6, length), generator=g)
        ids[:2, -1] = EOS
        ids[2, -1] = 7
        expected = criteria(ids, None)
        got = torch.isin(ids[:, -1], eos) | (length >= max_length)
        assert torch.equal(expected, got)
    assert _plain_stopping(StoppingCriteriaList([MaxLengthCriteria(max_length=4)])) == (4, None)
    custom = StoppingCriteriaList([*criteria, StopStringCriteria.__new__(StopStringCriteria)])
    assert _plain_stopping(custom) is None


@pytest.mark.parametrize("length", [3, 5, 8])
def test_min_length_processors_with_cached_eos_mask_give_transformers_scores(length):
    """The min-length processors that build their end-of-sequence mask once score exactly as transformers' own, below,
    at and above the minimum; `generate` uses them and still never ends a caption early."""
    from transformers.generation.logits_process import MinLengthLogitsProcessor, MinNewTokensLengthLogitsProcessor

    from hf_audiocap.modeling_audiocap import _with_cached_eos_masks

    stock = [MinLengthLogitsProcessor(5, [EOS, 7]), MinNewTokensLengthLogitsProcessor(2, 4, EOS)]
    fast = _with_cached_eos_masks(stock)
    assert [type(p).__name__ for p in fast] == ["_MinLengthLogitsProcessor", "_MinNewTokensLengthLogitsProcessor"]
    ids = torch.randint(4, VOCAB, (3, length))
    for _ in range(2):  # the second call uses the cached mask
        scores = torch.randn(3, VOCAB)
        for slow, quick in zip(stock, fast):
            assert torch.equal(slow(ids, scores), quick(ids, scores))
    model = tiny_model(seed=3)
    feats, mask = batch()
    out = model.generate(input_features=feats, attention_mask=mask, num_beams=1, min_new_tokens=6, max_new_tokens=8)
    assert not (out[:, 1:7] == EOS).any()


@pytest.mark.parametrize("num_beams", [1, 3])
def test_generate_under_bf16_autocast(num_beams):
    """The lean decoding step follows autocast (bf16 activations against fp32 weights), alone and in a batch."""
    model = tiny_model(seed=1)
    feats, mask = batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        one = model.generate(input_features=feats[:1], attention_mask=mask[:1], num_beams=num_beams, max_length=10)
        three = model.generate(input_features=feats, attention_mask=mask, num_beams=num_beams, max_length=10)
    assert one.shape[0] == 1 and three.shape[0] == 3 and one.shape[1] > 1


def test_encoder_inference_path_gives_the_training_path_numbers():
    """Eval mode without autograd, encoder layers add and activate in place (`_inference_forward`): the same hidden
    states, bit for bit, as with autograd on, padded clips included; the input is never modified."""
    model = tiny_model(seed=4)
    feats, mask = batch()
    encoder = model.get_encoder()
    with_grad = encoder(input_features=feats, attention_mask=mask, output_hidden_states=True)
    with torch.inference_mode():
        inference = encoder(input_features=feats, attention_mask=mask, output_hidden_states=True)
    assert torch.equal(with_grad.last_hidden_state, inference.last_hidden_state)
    assert all(torch.equal(a, b) for a, b in zip(with_grad.hidden_states, inference.hidden_states))


# --------------------------------------------------------------------------------------------------------------------
# batch invariance
# --------------------------------------------------------------------------------------------------------------------
def _check_batch_invariance(model, feats, mask, labels):
    with torch.no_grad():
        full = model(input_features=feats, attention_mask=mask, labels=labels).logits
        gen_batch = model.generate(input_features=feats, attention_mask=mask, num_beams=3, max_length=10)
        for i in range(feats.shape[0]):
            n = int(mask[i].sum())
            one_f, one_m = feats[i : i + 1, :, :n], mask[i : i + 1, :n]
            alone = model(input_features=one_f, attention_mask=one_m, labels=labels[i : i + 1]).logits
            assert (alone - full[i : i + 1]).abs().max().item() < 1e-4, i
            gen_one = model.generate(input_features=one_f, attention_mask=one_m, num_beams=3, max_length=10)
            row = gen_batch[i, : gen_one.shape[1]]
            assert torch.equal(gen_one[0], row), (i, gen_one, gen_batch[i])


@pytest.mark.parametrize("pooling", [(1, "avg"), (2, "avg"), (3, "max")])
def test_batch_invariance_builtin(pooling):
    stride, kind = pooling
    model = tiny_model(seed=7, adapter_pooling_stride=stride, adapter_pooling_type=kind)
    feats, mask = batch(lengths=(23, 61, 40, 17))
    # garbage in the padded region must not matter either
    feats = feats + (1 - mask[:, None, :].float()) * 5.0
    _check_batch_invariance(model, feats, mask, labels_for(4))


def test_batch_invariance_summary_token():
    """The clip-statistics position (masked mean/std/max) is the same for a clip alone and padded with garbage."""
    model = tiny_model(seed=11, encoder={"summary_token": True})
    feats, mask = batch(lengths=(23, 61, 40, 17))
    feats = feats + (1 - mask[:, None, :].float()) * 5.0
    _check_batch_invariance(model, feats, mask, labels_for(4))
    enc = model.get_encoder()(input_features=feats, attention_mask=mask)
    assert enc.attention_mask.sum(-1).tolist() == [1 + 6, 1 + 16, 1 + 10, 1 + 5]


@pytest.mark.parametrize("memory", [0, 4])
def test_batch_invariance_cnn_front_end_and_keyword_memory(memory):
    """The 2-D CNN front end (odd lengths: a half-real last pooled frame) and the keyword memory appended to the
    audio states keep a clip's logits and captions the same alone and padded in a batch, garbage padding included."""
    model = tiny_model(seed=9, encoder={"conv2d_channels": [4, 8]}, keyword_memory_tokens=memory)
    feats, mask = batch(lengths=(23, 61, 40, 17))
    feats = feats + (1 - mask[:, None, :].float()) * 5.0
    _check_batch_invariance(model, feats, mask, labels_for(4))
    enc = model.get_encoder()(input_features=feats, attention_mask=mask)
    assert enc.last_hidden_state.shape[1] == 16  # ceil(61 / 4) frames; keyword memory is added by the model
    out = model._with_keywords(enc)
    assert out.last_hidden_state.shape[1] == 16 + memory and out.keyword_logits.shape == (4, VOCAB)
    assert out.attention_mask[:, 16:].all() and out.attention_mask[:, :16].sum(-1).tolist() == [6, 16, 10, 5]


def test_keyword_statistics_are_batch_invariant_and_reach_the_keyword_head(tmp_path):
    """The keyword head also reads the clip's per-band log-mel statistics (masked: garbage padding ignored)."""
    model = tiny_model(seed=12, keyword_statistics=True, keyword_memory_tokens=3)
    feats, mask = batch(lengths=(23, 61, 40, 17))
    feats = feats + (1 - mask[:, None, :].float()) * 5.0
    _check_batch_invariance(model, feats, mask, labels_for(4))
    enc = model.get_encoder()(input_features=feats, attention_mask=mask)
    n = int(mask[0].sum())
    expected = torch.cat([feats[0, :, :n].mean(-1), feats[0, :, :n].std(-1, unbiased=False), feats[0, :, :n].amax(-1)])
    assert torch.allclose(enc.clip_statistics[0], expected, atol=1e-5)
    train = model.train()
    train(input_features=feats, attention_mask=mask, labels=labels_for(4)).loss.backward()
    assert train.keyword_stats_norm.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="keyword_statistics"):
        tiny_config(keyword_loss_weight=0.0, keyword_statistics=True)


def test_keyword_max_pooling_is_batch_invariant_and_scores_frames(tmp_path):
    """keyword_pooling "max": frame-level keyword logits, masked max over frames (garbage padding never wins)."""
    model = tiny_model(seed=13, keyword_pooling="max", keyword_statistics=True, keyword_memory_tokens=2)
    feats, mask = batch(lengths=(23, 61, 40, 17))
    feats = feats + (1 - mask[:, None, :].float()) * 5.0
    _check_batch_invariance(model, feats, mask, labels_for(4))
    with torch.no_grad():
        enc = model.get_encoder()(input_features=feats, attention_mask=mask)
        states, width = enc.last_hidden_state, enc.last_hidden_state.shape[-1]
        n = int(enc.attention_mask[3].sum())  # the shortest clip: only its real frames count
        logits = model._with_keywords(enc).keyword_logits  # (appends the keyword memory to enc's states)
        head = model.keyword_head
        expected = (states[3, :n] @ head.weight[:, :width].T).amax(0) + head.bias
        expected += model.keyword_stats_norm(enc.clip_statistics[3]) @ head.weight[:, width:].T
    assert torch.allclose(logits[3], expected, atol=1e-5)
    inputs = {"input_features": feats, "attention_mask": mask, "labels": labels_for(4)}
    reloaded = assert_round_trip(model, tmp_path, inputs)
    assert reloaded.config.keyword_pooling == "max"
    with pytest.raises(ValueError, match="keyword_pooling"):
        tiny_config(keyword_pooling="attention")


def test_conv_front_end_keeps_the_audio_at_unit_scale():
    """He-normal conv init: unit-variance log-mels leave the conv front end at RMS ~1, on par with the sinusoidal
    positions added next (with normal(0, 0.02) they came out at ~0.04 and the encoder saw mostly positions)."""
    model = AudioCapForConditionalGeneration(AudioCapConfig())
    encoder = model.get_encoder().model
    x = torch.randn(2, encoder.config.num_mel_bins, 400)
    with torch.no_grad():
        for conv in encoder.convs:
            x = torch.nn.functional.gelu(conv(x))
    assert 0.5 < x.pow(2).mean().sqrt().item() < 2.0


def test_cnn_front_end_and_keyword_memory_train_save_and_reload(tmp_path):
    model = tiny_model(seed=10, encoder={"conv2d_channels": [4, 8]}, keyword_memory_tokens=3).train()
    feats, mask = batch()
    loss = model(input_features=feats, attention_mask=mask, labels=labels_for(3)).loss
    loss.backward()
    assert (
        model.encoder.model.convs2d[0].weight.grad.abs().sum() > 0 and model.keyword_embed.weight.grad.abs().sum() > 0
    )
    ids = torch.full((3, 4), SOS)
    assert_round_trip(
        model.eval(), tmp_path, {"input_features": feats, "attention_mask": mask, "decoder_input_ids": ids}
    )
    with pytest.raises(ValueError, match="keyword_memory_tokens"):
        tiny_config(keyword_loss_weight=0.0, keyword_memory_tokens=2)


def test_batch_invariance_whisper_encoder(whisper_dir):
    model = composed(whisper_dir, None, seed=8)
    feats, mask = batch(lengths=(23, 61, 40))
    _check_batch_invariance(model, feats, mask, labels_for(3))


# --------------------------------------------------------------------------------------------------------------------
# save / load, pretrained compositions
# --------------------------------------------------------------------------------------------------------------------
def test_round_trip_builtin(tmp_path):
    model = tiny_model(adapter_pooling_stride=2)
    feats, mask = batch()
    loaded = assert_round_trip(
        model, tmp_path, {"input_features": feats, "attention_mask": mask, "labels": labels_for(3)}
    )
    kw = {"input_features": feats, "attention_mask": mask, "max_length": 10}
    assert torch.equal(model.generate(**kw), loaded.generate(**kw))
    auto = AutoModelForSpeechSeq2Seq.from_pretrained(tmp_path)
    assert isinstance(auto, AudioCapForConditionalGeneration)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["auto_map"]["AutoModelForSpeechSeq2Seq"] == "modeling_audiocap.AudioCapForConditionalGeneration"
    assert cfg["auto_map"]["AutoConfig"] == "configuration_audiocap.AudioCapConfig"


def test_whisper_encoder_builtin_decoder(whisper_dir, tmp_path):
    model = composed(whisper_dir, None)
    assert model.config.encoder.model_type == "whisper"
    # the pretrained encoder weights were loaded, not re-initialised
    ref = WhisperModel.from_pretrained(whisper_dir).encoder
    assert torch.equal(model.encoder.model.conv1.weight, ref.conv1.weight)
    feats, mask = batch()  # 61 frames: far from Whisper's 3000
    out = model(input_features=feats, attention_mask=mask, labels=labels_for(3))
    assert out.encoder_last_hidden_state.shape[1] == 31  # Whisper's 2x subsampling
    assert_round_trip(model, tmp_path, {"input_features": feats, "attention_mask": mask, "labels": labels_for(3)})
    assert model.generate(input_features=feats, attention_mask=mask, max_length=8).shape[0] == 3


def test_whisper_encoder_bart_decoder(whisper_dir, bart_dir, tmp_path):
    model = composed(whisper_dir, bart_dir)
    assert type(model.decoder).__name__ == "BartForCausalLM"
    feats, mask = batch()
    inputs = {"input_features": feats, "attention_mask": mask, "labels": labels_for(3)}
    loaded = assert_round_trip(model, tmp_path, inputs)
    for beams in (1, 3):
        kw = {"input_features": feats, "attention_mask": mask, "num_beams": beams, "max_length": 10}
        a = model.generate(**kw)
        assert torch.equal(a, loaded.generate(**kw))
        assert torch.equal(a, model.generate(**kw, use_cache=False))
    _check_batch_invariance(model, feats, mask, labels_for(3))


def test_gpt2_decoder_with_cross_attention(gpt2_dir, tmp_path):
    model = composed(
        None,
        gpt2_dir,
        encoder_num_mel_bins=N_MELS,
        encoder_d_model=32,
        encoder_encoder_layers=1,
        encoder_encoder_attention_heads=2,
        encoder_encoder_ffn_dim=64,
    )
    assert model.decoder.config.add_cross_attention
    feats, mask = batch()
    inputs = {"input_features": feats, "attention_mask": mask, "labels": labels_for(3)}
    loaded = assert_round_trip(model, tmp_path, inputs)
    for beams in (1, 3):
        kw = {"input_features": feats, "attention_mask": mask, "num_beams": beams, "max_length": 10}
        a = model.generate(**kw)
        assert torch.equal(a, model.generate(**kw, use_cache=False))
        assert torch.equal(a, loaded.generate(**kw))


def test_wav2vec2_encoder_waveform_input(wav2vec2_dir, tmp_path):
    model = composed(wav2vec2_dir, None)
    assert model.get_encoder().main_input_name == "input_values"
    g = torch.Generator().manual_seed(0)
    wav = torch.randn(2, 1600, generator=g)
    smask = torch.ones(2, 1600, dtype=torch.long)
    smask[1, 1000:] = 0
    inputs = {"input_values": wav, "attention_mask": smask, "labels": labels_for(2)}
    out = model(**inputs)
    enc = model.get_encoder()(input_values=wav, attention_mask=smask)
    lengths = model.encoder.model._get_feat_extract_output_lengths(torch.tensor([1600, 1000]))
    assert enc.attention_mask.sum(-1).tolist() == lengths.tolist()
    assert torch.isfinite(out.loss)
    gen = model.generate(input_values=wav, attention_mask=smask, max_length=8)
    assert gen.shape[0] == 2
    assert_round_trip(model, tmp_path, inputs)


def test_ast_encoder(tmp_path):
    cfg = ASTConfig(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_length=64,
        num_mel_bins=N_MELS,
        patch_size=16,
        frequency_stride=10,
        time_stride=10,
    )
    torch.manual_seed(0)
    model = AudioCapForConditionalGeneration(
        AudioCapConfig(encoder=cfg.to_dict(), decoder=tiny_config().decoder.to_dict(), vocab_size=VOCAB)
    ).eval()
    feats, mask = batch()  # 61 frames -> zero padded to AST's fixed 64
    inputs = {"input_features": feats, "attention_mask": mask, "labels": labels_for(3)}
    assert torch.isfinite(model(**inputs).loss)
    assert model.generate(input_features=feats, attention_mask=mask, max_length=8).shape[0] == 3
    long_feats, long_mask = batch(lengths=(90, 70))  # longer than max_length: truncated
    assert model(input_features=long_feats, attention_mask=long_mask, labels=labels_for(2)).logits.shape[0] == 2
    assert_round_trip(model, tmp_path, inputs)


def test_clap_audio_encoder(tmp_path):
    cfg = ClapAudioConfig(
        spec_size=64,
        window_size=4,
        num_mel_bins=N_MELS,
        hidden_size=32,
        patch_embeds_hidden_size=8,
        depths=[1, 1],
        num_attention_heads=[2, 2],
        patch_stride=[4, 4],
        patch_size=4,
        enable_fusion=False,
        projection_dim=16,
    )
    torch.manual_seed(0)
    model = AudioCapForConditionalGeneration(
        AudioCapConfig(encoder=cfg.to_dict(), decoder=tiny_config().decoder.to_dict(), vocab_size=VOCAB)
    ).eval()
    feats, mask = batch()
    inputs = {"input_features": feats, "attention_mask": mask, "labels": labels_for(3)}
    assert torch.isfinite(model(**inputs).loss)
    assert model.generate(input_features=feats, attention_mask=mask, max_length=8).shape[0] == 3
    assert_round_trip(model, tmp_path, inputs)


def test_trust_remote_code_in_fresh_interpreter(tmp_path):
    model = tiny_model()
    folder = tmp_path / "saved"
    model.save_pretrained(folder)
    assert (folder / "modeling_audiocap.py").exists() and (folder / "configuration_audiocap.py").exists()
    feats, mask = batch()
    torch.save({"f": feats, "m": mask}, tmp_path / "inputs.pt")
    with torch.no_grad():
        expected = model.generate(input_features=feats, attention_mask=mask, max_length=10)
        expected_logits = model(input_features=feats, attention_mask=mask, labels=labels_for(3)).logits
    torch.save({"g": expected, "l": expected_logits, "labels": labels_for(3)}, tmp_path / "expected.pt")
    site = os.path.dirname(os.path.dirname(transformers.__file__))
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = textwrap.dedent(
        f"""
        import sys
        sys.path[:] = [p for p in sys.path if not p.startswith({repo!r})] + [{site!r}]
        import torch
        try:
            import hf_audiocap
            sys.exit("hf_audiocap must not be importable here")
        except ImportError:
            pass
        from transformers import AutoModelForSpeechSeq2Seq
        model = AutoModelForSpeechSeq2Seq.from_pretrained({str(folder)!r}, trust_remote_code=True).eval()
        inp = torch.load({str(tmp_path / "inputs.pt")!r})
        exp = torch.load({str(tmp_path / "expected.pt")!r})
        with torch.no_grad():
            logits = model(input_features=inp["f"], attention_mask=inp["m"], labels=exp["labels"]).logits
            gen = model.generate(input_features=inp["f"], attention_mask=inp["m"], max_length=10)
        assert (logits - exp["l"]).abs().max() <= 1e-5, (logits - exp["l"]).abs().max()
        assert torch.equal(gen, exp["g"]), (gen, exp["g"])
        print("OK", type(model).__name__)
        """
    )
    # -S: no site processing, so the editable-install hook of hf_audiocap (a .pth file) never runs; only the
    # installed packages' directory is put on sys.path
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["HF_HUB_OFFLINE"] = "1"
    env["HF_MODULES_CACHE"] = str(tmp_path / "modules")
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "OK AudioCapForConditionalGeneration" in proc.stdout


# --------------------------------------------------------------------------------------------------------------------
# training features
# --------------------------------------------------------------------------------------------------------------------
def test_frozen_encoder_has_no_grads():
    model = tiny_model(freeze_encoder=True).train()
    feats, mask = batch()
    model(input_features=feats, attention_mask=mask, labels=labels_for(3)).loss.backward()
    assert all(p.grad is None for p in model.encoder.model.parameters())
    assert all(not p.requires_grad for p in model.encoder.model.parameters())
    assert model.encoder.adapter.proj.weight.grad is not None
    assert model.decoder.lm_head.weight.grad is not None


def test_gradient_checkpointing_matches():
    feats, mask = batch()
    labels = labels_for(3)
    grads = []
    for gc in (False, True):
        model = tiny_model(seed=9).train()
        if gc:
            model.activation_checkpointing_enable()  # transformers 5.24's name for gradient_checkpointing_enable
            assert all(layer.gradient_checkpointing for layer in model.decoder.layers)
            assert all(layer.gradient_checkpointing for layer in model.encoder.model.layers)
        loss = model(input_features=feats, attention_mask=mask, labels=labels).loss
        loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        assert torch.allclose(grads[0][name], grads[1][name], atol=1e-6), name


def test_training_step_reduces_loss():
    model = tiny_model(seed=10).train()
    feats, mask = batch()
    labels = labels_for(3)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(15):
        loss = model(input_features=feats, attention_mask=mask, labels=labels).loss
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first * 0.7


# --------------------------------------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------------------------------------
def test_bad_inputs(tmp_path):
    model = tiny_model()
    feats, mask = batch()
    with pytest.raises(ValueError, match=r"n_mels=16"):
        model(input_features=torch.randn(2, 80, 50), labels=labels_for(2))
    with pytest.raises(ValueError, match="empty batch"):
        model(input_features=torch.zeros(0, N_MELS, 50), labels=torch.zeros(0, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="32 positions"):
        model(input_features=feats, attention_mask=mask, labels=torch.full((3, 40), 5))
    with pytest.raises(ValueError, match="no valid frame"):
        model(input_features=feats, attention_mask=torch.zeros_like(mask), labels=labels_for(3))
    with pytest.raises(ValueError, match="labels"):
        model(input_features=feats, attention_mask=mask)
    with pytest.raises(ValueError, match="cannot load the encoder"):
        AudioCapForConditionalGeneration.from_encoder_decoder_pretrained(str(tmp_path / "no-such-encoder"), None)
    with pytest.raises(ValueError, match="unknown model_type 'not-a-model'"):
        AudioCapConfig(encoder={"model_type": "not-a-model"})
    with pytest.raises(ValueError, match="unsupported encoder model_type 'bart'"):
        AudioCapForConditionalGeneration(AudioCapConfig(encoder=BartConfig().to_dict()))
    with pytest.raises(ValueError, match="adapter_pooling_type"):
        AudioCapConfig(adapter_pooling_type="median")


def test_keyword_loss_is_training_only_and_teaches_the_encoder(tmp_path):
    feats, mask = batch()
    labels = labels_for(3)
    plain = tiny_model(seed=0, keyword_loss_weight=0.0)
    model = tiny_model(seed=0, keyword_loss_weight=0.5)
    assert model.keyword_head is not None and plain.keyword_head is None
    # evaluation loss (and so perplexity) is the plain caption cross-entropy
    model.load_state_dict(plain.state_dict(), strict=False)
    with torch.no_grad():
        eval_loss = model(input_features=feats, attention_mask=mask, labels=labels).loss
        plain_loss = plain(input_features=feats, attention_mask=mask, labels=labels).loss
    torch.testing.assert_close(eval_loss, plain_loss)
    model.train()
    train_loss = model(input_features=feats, attention_mask=mask, labels=labels).loss
    assert train_loss > eval_loss  # the keyword term is added in training
    train_loss.backward()
    assert model.keyword_head.weight.grad.abs().sum() > 0
    conv = next(p for n, p in model.named_parameters() if "convs" in n)
    assert conv.grad is not None and conv.grad.abs().sum() > 0
    model.eval().save_pretrained(tmp_path)
    again = AudioCapForConditionalGeneration.from_pretrained(tmp_path)
    assert again.config.keyword_loss_weight == 0.5 and again.keyword_head is not None
    with pytest.raises(ValueError, match="keyword_loss_weight"):
        tiny_config(keyword_loss_weight=-1.0)


@pytest.mark.parametrize(
    "gen",
    [
        {"num_beams": 3, "max_length": 12},
        {"num_beams": 3, "num_return_sequences": 2, "max_length": 12, "use_cache": False},
        {"num_beams": 1, "do_sample": True, "num_return_sequences": 2, "max_length": 12},
    ],
)
def test_beams_share_their_clip_encoder_output(gen, monkeypatch):
    """Beam search and several sequences per clip keep the encoder output at one row per clip (`encoder_index` maps
    beams to clips): the same sequences and scores as transformers' repeated encoder output, padded clips included."""
    model = tiny_model(seed=9)
    feats, mask = batch()
    kw = {"input_features": feats, "attention_mask": mask, "return_dict_in_generate": True, "output_scores": True}
    seen = []
    hook = model.decoder.register_forward_hook(
        lambda m, a, kwargs, out: seen.append(kwargs["encoder_hidden_states"].shape[0]), with_kwargs=True
    )
    torch.manual_seed(0)
    shared = model.generate(**kw, **gen)
    assert seen[0] == feats.shape[0]  # one row per clip reached the decoder
    monkeypatch.setattr(type(model), "_expand_inputs_for_generation", GenerationMixin._expand_inputs_for_generation)
    seen.clear()
    torch.manual_seed(0)
    repeated = model.generate(**kw, **gen)
    hook.remove()
    assert seen[0] > feats.shape[0]
    assert torch.equal(shared.sequences, repeated.sequences)
    for a, b in zip(shared.scores, repeated.scores):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
