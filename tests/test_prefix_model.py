"""The audio-prefix model (audio -> encoder -> projector -> soft tokens in a prompt -> causal LM, LoRA through peft):
its loss against the cross-entropy written out, batch invariance, grouped captions, generation, save/load (also with
trust_remote_code in a fresh interpreter), LoRA, four LM families, and the bad-input messages. Tiny random models."""

from __future__ import annotations

import os

import pytest
import torch
import transformers
from model_helpers import batch
from recipe_helpers import run_without_hf_audiocap
from transformers import AutoConfig

from hf_audiocap.configuration_audiocap import AudioCapConfigError
from hf_audiocap.configuration_audiocap_prefix import AudioCapPrefixConfig
from hf_audiocap.modeling_audiocap_prefix import AudioCapPrefixForConditionalGeneration
from hf_audiocap.tokenization import build_word_tokenizer

pytest.importorskip("peft")

WORDS = ["a dog barks loudly while rain falls on a tin roof", "describe the sound in one sentence", "birds sing"]
ENCODER = {"num_mel_bins": 16, "d_model": 32, "encoder_layers": 1, "encoder_attention_heads": 2, "encoder_ffn_dim": 64}
TINY_LMS = {
    "llama": {"num_key_value_heads": 1, "intermediate_size": 64, "max_position_embeddings": 128},
    "qwen2": {"num_key_value_heads": 1, "intermediate_size": 64, "max_position_embeddings": 128},
    "phi3": {"intermediate_size": 64, "max_position_embeddings": 128, "pad_token_id": 0},
    "gpt2": {"n_embd": 32, "n_layer": 2, "n_head": 2, "n_positions": 128},
}


@pytest.fixture(scope="module")
def tokenizer():
    return build_word_tokenizer(WORDS)


def lm_config(kind: str, vocab: int) -> dict:
    sizes = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2} if kind != "gpt2" else {}
    return {"model_type": kind, "vocab_size": vocab, **sizes, **TINY_LMS[kind]}


def make_model(tokenizer, kind="llama", seed=0, **kwargs) -> AudioCapPrefixForConditionalGeneration:
    config = AudioCapPrefixConfig(
        encoder=ENCODER, lm=lm_config(kind, len(tokenizer)), projector_stack=kwargs.pop("projector_stack", 2), **kwargs
    )
    config.set_prompt(tokenizer)
    torch.manual_seed(seed)
    return AudioCapPrefixForConditionalGeneration(config).eval()


def caption_labels(tokenizer, captions) -> torch.Tensor:
    ids = [tokenizer(c, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for c in captions]
    labels = torch.full((len(ids), max(map(len, ids))), -100)
    for i, row in enumerate(ids):
        labels[i, : len(row)] = torch.tensor(row)
    return labels


CAPTIONS = ["a dog barks", "rain falls on a tin roof loudly", "birds sing"]


def test_loss_is_the_cross_entropy_of_the_caption_tokens_only(tokenizer):
    """Rows built by hand, each run alone through the LM: softmax, gather, minus log, mean over the caption tokens; the
    library's own shifted causal-LM loss gives the same; the gradient reaches no audio or prompt position's logits."""
    model = make_model(tokenizer)
    feats, mask = batch((61, 40, 23))
    labels = caption_labels(tokenizer, CAPTIONS)
    captured = {}
    model.lm.register_forward_hook(lambda mod, args, out: captured.update(logits=out.logits))
    out = model(feats, mask, labels=labels)
    captured["logits"].retain_grad()
    out.loss.backward()

    embed = model.lm.get_input_embeddings()
    before, after = (torch.tensor(model.config.prompt_before_ids), torch.tensor(model.config.prompt_after_ids))
    spans = [(n + 1) // 2 for n in ((61 + 3) // 4, (40 + 3) // 4, (23 + 3) // 4)]  # 2 convs of stride 2, stack 2
    nll, library, grad = [], [], captured["logits"].grad
    for i, span in enumerate(spans):
        caption = labels[i][labels[i] != -100]
        prompt_len = len(before) + span + len(after)
        with torch.no_grad():
            row = torch.cat([embed(before), out.audio_embeds[i, :span], embed(after), embed(caption)])
            logits = model.lm(inputs_embeds=row[None]).logits[0]
            probs = logits.softmax(-1)
            picked = probs[torch.arange(prompt_len - 1, prompt_len - 1 + len(caption)), caption]
            nll.append(-picked.log())
            full_labels = torch.cat([torch.full((prompt_len,), -100), caption])[None]
            library.append(model.lm(inputs_embeds=row[None], labels=full_labels).loss * len(caption))
        # d loss / d logits is zero everywhere but at the positions that predict caption tokens
        assert grad[i, : prompt_len - 1].abs().max() == 0 and grad[i, prompt_len - 1 + len(caption) :].abs().max() == 0
        assert grad[i, prompt_len - 1 : prompt_len - 1 + len(caption)].abs().sum(-1).min() > 0
    manual = torch.cat(nll).mean()
    assert abs(out.loss.item() - manual.item()) < 1e-5
    assert abs(out.loss.item() - (sum(library) / len(torch.cat(nll))).item()) < 1e-5


def test_label_smoothing_and_logged_caption_loss(tokenizer):
    model = make_model(tokenizer).train()
    feats, mask = batch((30, 20, 12))
    labels = caption_labels(tokenizer, CAPTIONS)
    plain = model(feats, mask, labels=labels)
    smoothed = model(feats, mask, labels=labels, smoothing=0.1)
    expected = torch.nn.functional.cross_entropy(
        smoothed.logits.reshape(-1, smoothed.logits.shape[-1]), labels.reshape(-1), label_smoothing=0.1
    )
    assert abs(smoothed.loss.item() - expected.item()) < 1e-5
    assert abs(smoothed.caption_loss.item() - plain.loss.item()) < 1e-6  # the plain cross-entropy, logged
    assert model.eval()(feats, mask, labels=labels).caption_loss is None


def test_caption_logits_alone_equal_padded_in_a_batch_of_longer_clips(tokenizer):
    for kwargs in ({}, {"num_queries": 3, "query_heads": 2}):
        model = make_model(tokenizer, **kwargs)
        feats, mask = batch((61, 40, 23))
        labels = caption_labels(tokenizer, CAPTIONS)
        with torch.no_grad():
            full = model(feats, mask, labels=labels).logits
            gen = model.generate(feats, mask, max_new_tokens=6, output_scores=True, return_dict_in_generate=True)
            for i in (1, 2):
                n, real = int(mask[i].sum()), labels[i] != -100
                alone = model(feats[i : i + 1, :, :n], mask[i : i + 1, :n], labels=labels[i : i + 1]).logits
                assert (alone[0, real] - full[i, real]).abs().max().item() < 1e-4, (kwargs, i)
                one = model.generate(
                    feats[i : i + 1, :, :n], max_new_tokens=6, output_scores=True, return_dict_in_generate=True
                )
                assert torch.equal(one.sequences[0], gen.sequences[i])
                for step_one, step_batch in zip(one.scores, gen.scores):
                    assert (step_one[0] - step_batch[i]).abs().max().item() < 1e-4


def test_grouped_captions_equal_repeated_clips(tokenizer):
    model = make_model(tokenizer)
    feats, mask = batch((40, 23))
    index = torch.tensor([0, 0, 1])
    labels = caption_labels(tokenizer, CAPTIONS)
    with torch.no_grad():
        grouped = model(feats, mask, labels=labels, encoder_index=index)
        repeated = model(feats[index], mask[index], labels=labels)
        assert (grouped.logits - repeated.logits).abs().max().item() < 1e-6
        assert abs(grouped.loss.item() - repeated.loss.item()) < 1e-6
        assert grouped.audio_embeds.shape[0] == 2  # each clip encoded once
        assert torch.equal(
            model.generate(feats, mask, encoder_index=index, max_new_tokens=5),
            model.generate(feats[index], mask[index], max_new_tokens=5),
        )


def test_greedy_and_beam_generation_agree_with_forward(tokenizer):
    model = make_model(tokenizer, kind="qwen2")
    feats, mask = batch((61, 23))
    with torch.no_grad():
        greedy = model.generate(feats, mask, max_new_tokens=6)
        # teacher-forced on its own output, the forward's argmax is that output, token by token
        assert torch.equal(model(feats, mask, labels=greedy).logits.argmax(-1), greedy)
        assert torch.equal(model(feats, mask).logits[:, 0].argmax(-1), greedy[:, 0])
        assert torch.equal(model.generate(feats, mask, max_new_tokens=6, num_beams=1), greedy)
        beam = model.generate(
            feats, mask, max_new_tokens=6, num_beams=3, length_penalty=0.0, output_scores=True,
            return_dict_in_generate=True,
        )  # fmt: skip
        # a beam's score is the sum of its tokens' log-probabilities under the forward pass
        log_probs = model(feats, mask, labels=beam.sequences).logits.log_softmax(-1)
        summed = log_probs.gather(-1, beam.sequences[..., None]).squeeze(-1).sum(-1)
        assert torch.allclose(beam.sequences_scores, summed, atol=1e-4)
        sampled = model.generate(feats, mask, max_new_tokens=6, do_sample=True, top_k=5)
        assert sampled.shape[0] == 2


def test_generation_lengths_and_settings_are_this_models_alone(tokenizer):
    """An LM that comes with its own generation config (a Llama-2's max_length 2048, a chat LM's sampling): captions
    are greedy under this model's config, `max_length` (a call's or a config's) counts caption tokens, and
    transformers prints no max_length/max_new_tokens warning."""
    import logging

    from transformers import AutoModelForCausalLM, GenerationConfig

    fields = lm_config("llama", len(tokenizer))
    lm = AutoModelForCausalLM.from_config(AutoConfig.for_model(fields.pop("model_type"), **fields))
    lm.generation_config = GenerationConfig(max_length=2048, do_sample=True, top_k=0, temperature=2.0)
    config = AudioCapPrefixConfig(encoder=ENCODER, lm=lm.config, projector_stack=2)
    config.set_prompt(tokenizer)
    torch.manual_seed(0)
    model = AudioCapPrefixForConditionalGeneration(config, lm=lm).eval()
    feats, mask = batch((61, 23))
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("transformers").addHandler(handler)
    try:
        with torch.no_grad():
            first = model.generate(feats, mask)
            assert torch.equal(model.generate(feats, mask), first)  # greedy: the LM's sampling does not leak in
            assert model.generate(feats, mask, max_length=3).shape[1] <= 3
            assert model.generate(feats, mask, generation_config=GenerationConfig(max_length=4)).shape[1] <= 4
    finally:
        logging.getLogger("transformers").removeHandler(handler)
    assert not [r.getMessage() for r in records if "max_length" in r.getMessage()]


def test_save_load_round_trip(tokenizer, tmp_path):
    model = make_model(tokenizer, lora_rank=2)
    feats, mask = batch((61, 23))
    labels = caption_labels(tokenizer, CAPTIONS[:2])
    with torch.no_grad():
        for name, param in model.named_parameters():  # adapters away from their zero start, so they show
            if "lora_B" in name:
                param.normal_()
    model.save_pretrained(tmp_path)
    assert "model.safetensors" in os.listdir(tmp_path)
    loaded = transformers.AutoModelForSpeechSeq2Seq.from_pretrained(tmp_path).eval()
    assert type(loaded) is AudioCapPrefixForConditionalGeneration
    assert loaded.config.prompt_after_ids == model.config.prompt_after_ids
    with torch.no_grad():
        assert (
            model(feats, mask, labels=labels).logits - loaded(feats, mask, labels=labels).logits
        ).abs().max() <= 1e-5
    assert torch.equal(model.generate(feats, mask), loaded.generate(feats, mask))


def test_lora_trains_adapters_and_projector_only_and_merges(tokenizer, tmp_path):
    model = make_model(tokenizer, lora_rank=4, freeze_encoder=True).train()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert all(n.startswith("projector.") or "lora_" in n for n in trainable)
    lora_params = 2 * 2 * 4 * (32 + 32)  # 2 layers x (q_proj, v_proj) x rank 4 x (in + out) ... v_proj is 32 -> 16
    lora_params -= 2 * 4 * 16  # v_proj's output: one kv head of width 16
    projector = sum(p.numel() for p in model.projector.parameters())
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == lora_params + projector
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.1)
    feats, mask = batch((40, 23))
    labels = caption_labels(tokenizer, CAPTIONS[:2])
    first = None
    for _ in range(4):
        loss = model(feats, mask, labels=labels).loss
        first = first if first is not None else loss.item()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert loss.item() < first
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)
    model.eval()
    with torch.no_grad():
        adapted = model(feats, mask, labels=labels).logits
        model.merge_and_unload()
        assert not any("lora_" in n for n, _ in model.named_parameters()) and model.config.lora_rank == 0
        assert (model(feats, mask, labels=labels).logits - adapted).abs().max().item() < 1e-5
    model.save_pretrained(tmp_path)
    plain = AudioCapPrefixForConditionalGeneration.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert (plain(feats, mask, labels=labels).logits - adapted).abs().max().item() < 1e-5


@pytest.mark.parametrize("kind", sorted(TINY_LMS))
def test_lm_families_train_and_generate_with_lora(tokenizer, kind):
    model = make_model(tokenizer, kind=kind, lora_rank=2).train()
    assert any("lora_" in n for n, p in model.lm.named_parameters() if p.requires_grad)
    feats, mask = batch((40, 23))
    labels = caption_labels(tokenizer, CAPTIONS[:2])
    loss = model(feats, mask, labels=labels).loss
    loss.backward()
    assert torch.isfinite(loss) and model.projector.fc1.weight.grad.abs().sum() > 0
    ids = model.eval().generate(feats, mask, max_new_tokens=4, num_beams=2)
    assert ids.shape[0] == 2 and ids.shape[1] <= 4


def test_chat_template_wraps_the_instruction(tokenizer):
    chat = build_word_tokenizer(WORDS + ["user assistant"])
    chat.chat_template = (
        "{% for m in messages %}user {{ m['content'] }}{% endfor %}{% if add_generation_prompt %} assistant{% endif %}"
    )
    config = AudioCapPrefixConfig(encoder=ENCODER, lm=lm_config("llama", len(chat)))
    config.set_prompt(chat)
    vocab = chat.get_vocab()
    assert config.prompt_before_ids == [vocab["user"]] and config.prompt_after_ids[-1] == vocab["assistant"]


def test_loads_in_a_fresh_interpreter_without_hf_audiocap(tokenizer, tmp_path):
    model = make_model(tokenizer, num_queries=2, query_heads=2)
    feats, mask = batch((40, 23))
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    torch.save({"feats": feats, "mask": mask}, tmp_path / "inputs.pt")
    with torch.no_grad():
        expected = model.generate(feats, mask, max_new_tokens=5).tolist()
    printed = run_without_hf_audiocap(
        f"""
        import torch
        from transformers import AutoModelForSpeechSeq2Seq

        model = AutoModelForSpeechSeq2Seq.from_pretrained({str(folder)!r}, trust_remote_code=True).eval()
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        inputs = torch.load({str(tmp_path / "inputs.pt")!r})
        with torch.no_grad():
            print("IDS:" + repr(model.generate(inputs["feats"], inputs["mask"], max_new_tokens=5).tolist()))
        """,
        tmp_path,
        "IDS:",
    )
    assert printed == repr(expected)


def test_bad_inputs_fail_in_one_line(tokenizer):
    lm = lm_config("llama", len(tokenizer))

    def message(make) -> str:
        with pytest.raises((AudioCapConfigError, ValueError)) as err:
            make()
        assert "\n" not in str(err.value)
        return str(err.value)

    assert "no causal-LM head" in message(lambda: AudioCapPrefixConfig(lm={"model_type": "vit"}))
    assert "placeholder" in message(lambda: AudioCapPrefixConfig(lm=lm, prompt_template="Describe the sound."))
    no_eos = build_word_tokenizer(WORDS)
    no_eos.eos_token = None
    assert "end-of-sequence" in message(lambda: AudioCapPrefixConfig(lm=lm).set_prompt(no_eos))
    assert "match no layer" in message(lambda: make_model(tokenizer, lora_rank=2, lora_target_modules=["query_key"]))
    short = AudioCapPrefixConfig(encoder=ENCODER, lm={**lm, "max_position_embeddings": 12}, projector_stack=1)
    short.set_prompt(tokenizer)
    feats, mask = batch((61, 23))
    model = AudioCapPrefixForConditionalGeneration(short)
    assert "reads at most 12" in message(lambda: model(feats, mask))


def test_merge_refuses_what_it_cannot_merge_in_one_line(tokenizer, tmp_path):
    """`recipes/merge_lora.py`'s export: a missing folder is named as one, a prefix folder without LoRA adapters and an
    encoder-decoder folder are refused; either model class given the other kind's folder names both model_types."""
    from model_helpers import tiny_config

    from hf_audiocap.modeling_audiocap import AudioCapForConditionalGeneration
    from hf_audiocap.training.prefix import export_merged

    make_model(tokenizer).save_pretrained(tmp_path / "plain")
    AudioCapForConditionalGeneration(tiny_config()).save_pretrained(tmp_path / "encdec")
    with pytest.raises(FileNotFoundError, match=r"nothing-here: no such folder$"):
        export_merged(tmp_path / "nothing-here", tmp_path / "out")
    with pytest.raises(ValueError, match=r"plain has no LoRA adapters"):
        export_merged(tmp_path / "plain", tmp_path / "out")
    with pytest.raises(ValueError, match=r"encdec holds a model of model_type 'audiocap', not an audio-prefix"):
        export_merged(tmp_path / "encdec", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(AudioCapConfigError, match=r"AudioCapPrefixConfig of model_type 'audiocap'"):
        AudioCapPrefixForConditionalGeneration.from_pretrained(tmp_path / "encdec")
    with pytest.raises(
        AudioCapConfigError, match=r"configuration_audiocap\.AudioCapConfig of model_type 'audiocap_prefix'"
    ):
        AudioCapForConditionalGeneration.from_pretrained(tmp_path / "plain")


def test_gradient_checkpointing_gives_the_same_gradients(tokenizer):
    grads = []
    for checkpointing in (False, True):
        model = make_model(tokenizer, lora_rank=2).train()
        if checkpointing:
            # the name transformers 5.24 gives it, or the one before (5.16)
            getattr(model, "activation_checkpointing_enable", model.gradient_checkpointing_enable)()
            assert any(getattr(m, "gradient_checkpointing", False) for m in model.lm.modules())
        feats, mask = batch((40, 23))
        model(feats, mask, labels=caption_labels(tokenizer, CAPTIONS[:2])).loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad})
    assert grads[0].keys() == grads[1].keys() and any("lora_A" in n for n in grads[0])
    for name, grad in grads[0].items():
        assert torch.allclose(grad, grads[1][name], atol=1e-6), name


def test_checkpoint_without_the_lm_weights_reloads_them_by_name(tokenizer, tmp_path):
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    lm_dir = tmp_path / "lm"
    torch.manual_seed(5)
    AutoModelForCausalLM.from_config(AutoConfig.for_model(**lm_config("llama", len(tokenizer)))).save_pretrained(
        lm_dir
    )
    lm = AutoModelForCausalLM.from_pretrained(lm_dir)
    config = AudioCapPrefixConfig(
        encoder=ENCODER,
        lm=lm.config,
        projector_stack=2,
        lora_rank=2,
        lm_name_or_path=str(lm_dir),
        save_lm_weights=False,
    )
    config.set_prompt(tokenizer)
    model = AudioCapPrefixForConditionalGeneration(config, lm=lm).eval()
    feats, mask = batch((40, 23))
    with torch.no_grad():  # a given LM keeps its attention settings (its padding mask honoured)
        alone = model(feats[1:, :, :23], mask[1:, :23]).logits
        assert (alone - model(feats, mask).logits[1:]).abs().max().item() < 1e-4
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_()
    model.save_pretrained(tmp_path / "model")
    saved = load_file(tmp_path / "model" / "model.safetensors")
    assert not set(saved) & set(model.lm_weight_names()) and any("lora_A" in k for k in saved)
    assert {k for k in saved if not k.startswith("lm.")} == {k for k in model.state_dict() if not k.startswith("lm.")}
    loaded = AudioCapPrefixForConditionalGeneration.from_pretrained(tmp_path / "model").eval()
    labels = caption_labels(tokenizer, CAPTIONS[:2])
    with torch.no_grad():
        assert (
            model(feats, mask, labels=labels).logits - loaded(feats, mask, labels=labels).logits
        ).abs().max() <= 1e-5
    # merged adapters change the LM's weights: from then on they are saved with the model
    loaded.merge_and_unload().save_pretrained(tmp_path / "merged")
    assert set(loaded.lm_weight_names()) <= set(load_file(tmp_path / "merged" / "model.safetensors"))
    with pytest.raises(AudioCapConfigError, match="save_lm_weights=False needs"):
        AudioCapPrefixConfig(lm=lm.config, save_lm_weights=False)


@pytest.mark.parametrize("kind", ["whisper", "wav2vec2"])
def test_pretrained_encoders_feed_the_prefix(tokenizer, tmp_path, request, kind):
    from hf_audiocap.encoders_audiocap import load_pretrained_encoder

    folder = request.getfixturevalue(f"{kind}_dir")
    encoder = load_pretrained_encoder(folder, AutoConfig.from_pretrained(folder), use_safetensors=True)
    config = AudioCapPrefixConfig(encoder=encoder.config, lm=lm_config("llama", len(tokenizer)), freeze_encoder=True)
    config.set_prompt(tokenizer)
    torch.manual_seed(0)
    model = AudioCapPrefixForConditionalGeneration(config, encoder=encoder).eval()
    assert not any(p.requires_grad for p in model.encoder.parameters())
    if kind == "wav2vec2":  # samples and their mask
        g = torch.Generator().manual_seed(0)
        audio, mask = torch.randn(2, 3200, generator=g), torch.ones(2, 3200, dtype=torch.long)
        mask[1, 1600:] = 0
        inputs, alone = {"input_values": audio, "attention_mask": mask}, {"input_values": audio[1:, :1600]}
    else:
        feats, mask = batch((61, 23))
        inputs, alone = {"input_features": feats, "attention_mask": mask}, {"input_features": feats[1:, :, :23]}
    labels = caption_labels(tokenizer, CAPTIONS[:2])
    with torch.no_grad():
        full = model(**inputs, labels=labels).logits
        one = model(**alone, labels=labels[1:]).logits
        real = labels[1] != -100
        assert (one[0, real] - full[1, real]).abs().max().item() < 1e-4
        model.save_pretrained(tmp_path)
        loaded = AudioCapPrefixForConditionalGeneration.from_pretrained(tmp_path).eval()
        assert (loaded(**inputs, labels=labels).logits - full).abs().max().item() <= 1e-5
        assert model.generate(**inputs, max_new_tokens=4).shape[0] == 2


def test_bf16_autocast_forward_and_generate(tokenizer):
    """Under bf16 autocast (what the Trainer's bf16 runs; on CPU here) the loss stays float32 and near fp32's."""
    model = make_model(tokenizer, lora_rank=2)
    feats, mask = batch((40, 23))
    labels = caption_labels(tokenizer, CAPTIONS[:2])
    with torch.no_grad():
        full = model(feats, mask, labels=labels).loss
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = model(feats, mask, labels=labels).loss
            ids = model.generate(feats, mask, max_new_tokens=4, num_beams=2)
    assert half.dtype == torch.float32 and abs(half.item() - full.item()) < 0.05
    assert ids.shape[0] == 2


def test_resize_token_embeddings_resizes_the_lm_and_reloads(tokenizer, tmp_path):
    model = make_model(tokenizer)
    model.resize_token_embeddings(len(tokenizer) + 3, mean_resizing=False)
    assert model.config.vocab_size == model.config.lm.vocab_size == len(tokenizer) + 3
    feats, mask = batch((40, 23))
    labels = caption_labels(tokenizer, CAPTIONS[:2])
    model.save_pretrained(tmp_path)
    loaded = AudioCapPrefixForConditionalGeneration.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        logits = model(feats, mask, labels=labels).logits
        assert logits.shape[-1] == len(tokenizer) + 3
        assert (loaded(feats, mask, labels=labels).logits - logits).abs().max().item() <= 1e-5


def test_encoder_learning_rate_reaches_the_prefix_models_encoder(tokenizer, tmp_path):
    """`encoder_learning_rate` on the audio prefix + LM: the encoder's weights, and only they, get that rate."""
    from hf_audiocap.training.arguments import AudioCapTrainingArguments
    from hf_audiocap.training.trainer import AudioCapTrainer

    model = make_model(tokenizer, freeze_lm=False)
    args = AudioCapTrainingArguments(output_dir=str(tmp_path), learning_rate=1e-3, encoder_learning_rate=1e-5,
                                     report_to=[], use_cpu=True)  # fmt: skip
    optimizer = AudioCapTrainer(model=model, args=args).create_optimizer()
    rate = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    assert {rate[id(p)] for p in model.encoder.parameters()} == {1e-5}
    assert {rate[id(p)] for n, p in model.named_parameters() if not n.startswith("encoder.")} == {1e-3}
    assert len(rate) == sum(p.requires_grad for p in model.parameters())


def test_a_frozen_encoders_cached_states_serve_the_prefix_model(tokenizer, whisper_dir):
    """`cache_encoder_outputs` on the prefix model: the same logits and captions, each clip encoded once."""
    from hf_audiocap.encoders_audiocap import FrozenEncoderCache, load_pretrained_encoder
    from hf_audiocap.training.builders import frozen_cache

    encoder = load_pretrained_encoder(whisper_dir, AutoConfig.from_pretrained(whisper_dir), use_safetensors=True)
    config = AudioCapPrefixConfig(encoder=encoder.config, lm=lm_config("llama", len(tokenizer)), freeze_encoder=True)
    config.set_prompt(tokenizer)
    torch.manual_seed(0)
    model = AudioCapPrefixForConditionalGeneration(config, encoder=encoder).eval()
    feats, mask = batch((61, 23))
    labels = caption_labels(tokenizer, CAPTIONS[:2])
    with torch.no_grad():
        plain = model(input_features=feats, attention_mask=mask, labels=labels).logits
        plain_gen = model.generate(input_features=feats, attention_mask=mask, max_new_tokens=4)
        assert frozen_cache(model) is None
        model.frozen_cache = FrozenEncoderCache()
        cached = model(input_features=feats, attention_mask=mask, labels=labels).logits
        cached_gen = model.generate(input_features=feats, attention_mask=mask, max_new_tokens=4)
    cache = frozen_cache(model)
    assert (cache.misses, cache.hits) == (2, 2)
    torch.testing.assert_close(cached, plain, atol=1e-5, rtol=1e-5)
    assert torch.equal(cached_gen, plain_gen)
