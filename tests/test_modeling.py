"""Tests of the built-in audio captioning model (tiny random configs, CPU, seconds each)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import transformers
from model_helpers import (
    EOS,
    N_MELS,
    PAD,
    SOS,
    VOCAB,
    assert_round_trip,
    batch,
    check_batch_invariance,
    labels_for,
    tiny_config,
    tiny_model,
)
from transformers import AutoConfig, AutoModelForSpeechSeq2Seq, BartConfig, WhisperConfig
from transformers.modeling_outputs import Seq2SeqLMOutput
from transformers.trainer_pt_utils import LabelSmoother

from hf_audiocap.configuration_audiocap import AudioCapConfig, AudioCapDecoderConfig, AudioCapEncoderConfig
from hf_audiocap.modeling_audiocap import CACHE_FIELD, AudioCapForConditionalGeneration, shift_tokens_right


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
    assert {k: v for k, v in again.to_dict().items() if k != "_name_or_path"} == {
        k: v for k, v in config.to_dict().items() if k != "_name_or_path"
    }
    both = AudioCapConfig.from_encoder_decoder_configs(WhisperConfig(d_model=32), BartConfig(vocab_size=VOCAB))
    assert both.decoder.is_decoder and both.decoder.add_cross_attention and both.vocab_size == VOCAB


def test_shapes_and_output_type():
    model = tiny_model()
    feats, mask = batch()
    labels = labels_for(3)
    out = model(input_features=feats, attention_mask=mask, labels=labels)
    assert isinstance(out, Seq2SeqLMOutput) and type(out).__name__ == "AudioCapSeq2SeqLMOutput"
    assert out.caption_loss is None and out.keyword_loss is None  # parts of the objective: training mode only
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


@pytest.mark.parametrize("grouped", [False, True])
def test_training_cross_entropy_equals_the_validation_loss_of_the_same_batch(grouped):
    # the training objective (smoothed, + keyword term) differs from the validation loss; the plain cross-entropy the
    # training pass reports beside it is the validation loss of the same batch (dropout and augmentation off)
    model = tiny_model(keyword_loss_weight=0.5)
    feats, mask = batch()
    labels = labels_for(6 if grouped else 3)
    inputs = {"input_features": feats, "attention_mask": mask, "labels": labels}
    if grouped:  # one clip encoded once for two caption rows
        inputs["encoder_index"] = torch.tensor([0, 0, 1, 1, 2, 2])
    model.train()
    trained = model(**inputs, smoothing=0.2)
    model.eval()
    validated = model(**inputs)
    assert trained.keyword_loss is not None and trained.keyword_loss > 0
    assert trained.loss - trained.caption_loss > 0.1  # the objective is not the cross-entropy ...
    assert abs(trained.caption_loss.item() - validated.loss.item()) < 1e-4  # ... but this is, to 1e-4
    assert not trained.caption_loss.requires_grad  # logged, not optimised: no second backward path
    # normalised by the Trainer's token count: the objective is rescaled, the logged cross-entropy stays the mean
    model.train()
    tokens = int(labels.ne(-100).sum())
    scaled = model(**inputs, smoothing=0.2, num_items_in_batch=2 * tokens)
    assert abs(scaled.caption_loss.item() - trained.caption_loss.item()) < 1e-6
    assert abs(scaled.keyword_loss.item() - trained.keyword_loss.item()) < 1e-6


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


def test_generation_config_saved(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path)
    gen = json.loads((tmp_path / "generation_config.json").read_text())
    assert gen["decoder_start_token_id"] == SOS and gen["eos_token_id"] == EOS and gen["pad_token_id"] == PAD
    assert gen["max_length"] == 30 and gen.get("num_beams", 1) == 1  # greedy unless a recipe sets beams


@pytest.mark.parametrize("num_beams", [1, 3])
def test_cache_matches_no_cache(num_beams):
    model = tiny_model(seed=5)
    feats, mask = batch()
    kw = {"input_features": feats, "attention_mask": mask, "num_beams": num_beams, "max_length": 15}
    with_cache = model.generate(**kw, use_cache=True)
    without = model.generate(**kw, use_cache=False)
    assert torch.equal(with_cache, without)


@pytest.mark.parametrize("num_beams", [1, 3])
def test_generate_under_bf16_autocast(num_beams):
    # boolean attention masks and a float32 loss keep mixed precision safe: generation runs under autocast (what
    # `bf16: true` evaluation does) and gives valid captions, the loss stays a finite float32
    model = tiny_model(seed=7)
    feats, mask = batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model.generate(
            input_features=feats,
            attention_mask=mask,
            num_beams=num_beams,
            max_length=12,
            output_scores=True,
            return_dict_in_generate=True,
        )
        loss = model(input_features=feats, attention_mask=mask, labels=labels_for(3)).loss
    ids = out.sequences
    assert ids.shape[0] == 3 and 1 < ids.shape[1] <= 12 and ids[:, 0].eq(SOS).all()
    assert ids.min() >= 0 and ids.max() < VOCAB
    assert all(bool(torch.isfinite(s).any(-1).all()) for s in out.scores)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


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
        cache = getattr(out, CACHE_FIELD)
        steps.append(out.logits)
    assert torch.allclose(torch.cat(steps, 1), full, atol=1e-5)
    # the cross-attention keys/values were computed once and reused
    assert all(cache.is_updated.values())


# --------------------------------------------------------------------------------------------------------------------
# batch invariance
# --------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("pooling", [(1, "avg"), (2, "avg"), (3, "max")])
def test_batch_invariance_builtin(pooling):
    stride, kind = pooling
    model = tiny_model(seed=7, adapter_pooling_stride=stride, adapter_pooling_type=kind)
    feats, mask = batch(lengths=(23, 61, 40, 17))
    # garbage in the padded region must not matter either
    feats = feats + (1 - mask[:, None, :].float()) * 5.0
    check_batch_invariance(model, feats, mask, labels_for(4))


def test_batch_invariance_conv2d_front_end(tmp_path):
    """The Conv2d stem (conv_channels > 0) masks padded frames the same way, and its linear map is saved and loaded."""
    model = tiny_model(seed=3, encoder={"conv_channels": 4})
    encoder = model.get_encoder().model
    assert isinstance(encoder.convs[0], torch.nn.Conv2d) and encoder.conv_proj.in_features == 4 * (N_MELS // 4)
    feats, mask = batch(lengths=(23, 61, 40, 17))
    feats = feats + (1 - mask[:, None, :].float()) * 5.0
    check_batch_invariance(model, feats, mask, labels_for(4))
    assert_round_trip(model, tmp_path, {"input_features": feats, "attention_mask": mask, "labels": labels_for(4)})


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


# --------------------------------------------------------------------------------------------------------------------
# save / load
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
    audio = model.get_encoder()
    assert all(p.grad is None for p in audio.model.parameters())
    assert all(not p.requires_grad for p in audio.model.parameters())
    assert audio.adapter.proj.weight.grad is not None and audio.keyword_head.weight.grad is not None
    assert model.lm_head.weight.grad is not None


def test_gradient_checkpointing_matches():
    feats, mask = batch()
    labels = labels_for(3)
    grads = []
    for gc in (False, True):
        model = tiny_model(seed=9).train()
        if gc:
            enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
            enable()  # 5.24 renamed it; the old name still works there, with a warning
            assert all(layer.gradient_checkpointing for layer in model.get_decoder().layers)
            assert all(layer.gradient_checkpointing for layer in model.get_encoder().model.layers)
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
    with pytest.raises(ValueError, match="encoder: unsupported model_type 'not-a-model'"):
        AudioCapConfig(encoder={"model_type": "not-a-model"})
    with pytest.raises(ValueError, match="encoder: unsupported model_type 'bart'"):
        AudioCapConfig(encoder=BartConfig().to_dict())
    with pytest.raises(ValueError, match="decoder: unsupported model_type 'bert'"):
        AudioCapConfig(decoder={"model_type": "bert"})
    with pytest.raises(ValueError, match="adapter_pooling_type"):
        AudioCapConfig(adapter_pooling_type="median")


def test_keyword_loss_is_training_only_and_teaches_the_encoder(tmp_path):
    feats, mask = batch()
    labels = labels_for(3)
    plain = tiny_model(seed=0, keyword_loss_weight=0.0)
    model = tiny_model(seed=0, keyword_loss_weight=0.5)
    assert model.get_encoder().keyword_head is not None and plain.get_encoder().keyword_head is None
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
    assert model.get_encoder().keyword_head.weight.grad.abs().sum() > 0
    conv = next(p for n, p in model.named_parameters() if "convs" in n)
    assert conv.grad is not None and conv.grad.abs().sum() > 0
    model.eval().save_pretrained(tmp_path)
    again = AudioCapForConditionalGeneration.from_pretrained(tmp_path)
    assert again.config.keyword_loss_weight == 0.5 and again.get_encoder().keyword_head is not None
    with pytest.raises(ValueError, match="keyword_loss_weight"):
        tiny_config(keyword_loss_weight=-1.0)


def test_keyword_term_scale_does_not_grow_with_the_vocabulary():
    # balanced over the words present and absent: about 2 x log 2 at initialisation whatever the vocabulary size
    for vocab in (99, 50265):
        model = tiny_model(vocab_size=vocab, keyword_loss_weight=0.5).train()
        with torch.no_grad():
            model.model.encoder.keyword_head.weight.zero_()
            model.model.encoder.keyword_head.bias.zero_()
        feats, mask = batch()
        labels = labels_for(3)
        out = model(input_features=feats, attention_mask=mask, labels=labels)
        assert out.keyword_loss.item() == pytest.approx(2 * math.log(2), abs=1e-5), vocab


def test_encoder_learning_rate_puts_the_encoder_weights_in_groups_of_their_own(tmp_path):
    from hf_audiocap.training.arguments import AudioCapTrainingArguments
    from hf_audiocap.training.trainer import AudioCapTrainer, audio_encoder

    model = tiny_model()
    args = AudioCapTrainingArguments(
        output_dir=str(tmp_path), learning_rate=1e-3, encoder_learning_rate=2e-5, weight_decay=0.01, warmup_steps=2,
        report_to=[], use_cpu=True,
    )  # fmt: skip
    trainer = AudioCapTrainer(model=model, args=args)
    trainer.create_optimizer_and_scheduler(num_training_steps=10)
    groups = trainer.optimizer.param_groups
    encoder = {id(p) for p in audio_encoder(model).parameters()}
    placed = [id(p) for g in groups for p in g["params"]]
    assert sorted(placed) == sorted(id(p) for p in model.parameters() if p.requires_grad)  # each weight once
    for g in groups:
        in_encoder = {id(p) in encoder for p in g["params"]}
        assert len(in_encoder) == 1 and g["initial_lr"] == (2e-5 if in_encoder.pop() else 1e-3)
    assert {g["weight_decay"] for g in groups} == {0.0, 0.01}  # transformers' decay split is kept
    for _ in range(5):  # one schedule for all: the rates keep their ratio
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
    assert {round(g["lr"] / g["initial_lr"], 9) for g in groups} == {
        round(trainer.lr_scheduler.get_last_lr()[0] / 1e-3, 9)
    }
