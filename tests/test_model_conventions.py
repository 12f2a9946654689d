"""The model follows transformers' conventions, as transformers' own common tests check them: vocabulary resizing,
untied heads, attention weights and hidden states from the call or the config, a base model under
`base_model_prefix`, the `past_key_values` deprecation, every generation mode's dict output and the standard cache
layout, assisted decoding; and the model's files refuse, with one line, what they cannot run."""

from __future__ import annotations

import dataclasses
import json
import warnings

import pytest
import torch
import transformers
from model_helpers import EOS, SOS, VOCAB, batch, labels_for, tiny_config, tiny_model
from packaging.specifiers import SpecifierSet
from transformers import EncoderDecoderCache

from hf_audiocap.configuration_audiocap import (
    AUDIOCAP_FORMAT,
    TRANSFORMERS_REQUIREMENT,
    AudioCapConfig,
    AudioCapConfigError,
    AudioCapDecoderConfig,
    AudioCapEncoderConfig,
    check_transformers_version,
)
from hf_audiocap.configuration_audiocap_prefix import AudioCapPrefixConfig
from hf_audiocap.modeling_audiocap import CACHE_ARG, CACHE_FIELD, AudioCapForConditionalGeneration, AudioCapModel


def inputs(n=3, labels=True):
    feats, mask = batch(lengths=(61, 40, 23)[:n])
    kw = {"input_features": feats, "attention_mask": mask}
    return {**kw, "labels": labels_for(n)} if labels else kw


# --------------------------------------------------------------------------------------------------------------------
# vocabulary and heads
# --------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("tied", [True, False])
def test_resize_token_embeddings_resizes_every_vocabulary_part_and_reloads(tmp_path, tied):
    """Adding tokens to a tokenizer is an everyday fine-tuning step: the embeddings, the LM head, the keyword head and
    the saved vocabulary size all follow, training sees the new ids, and the folder reloads."""
    model = tiny_model(keyword_loss_weight=0.5, tie_word_embeddings=tied)
    before = model.lm_head.weight[:VOCAB].detach().clone()
    model.resize_token_embeddings(VOCAB + 3)
    assert model.config.vocab_size == model.config.decoder.vocab_size == VOCAB + 3
    assert model.get_input_embeddings().weight.shape[0] == VOCAB + 3
    assert model.lm_head.weight.shape[0] == VOCAB + 3
    assert model.get_encoder().keyword_head.out_features == VOCAB + 3
    assert torch.equal(model.lm_head.weight[:VOCAB], before)
    assert (model.lm_head.weight is model.get_input_embeddings().weight) is tied
    new_labels = labels_for(3)
    new_labels[:, 0] = VOCAB + 2  # a new token id: no IndexError in the loss, the embeddings or the keyword targets
    model.train()
    loss = model(**inputs(labels=False), labels=new_labels).loss
    loss.backward()
    assert torch.isfinite(loss)
    model.eval().save_pretrained(tmp_path)
    again = AudioCapForConditionalGeneration.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert (again(**inputs()).logits - model(**inputs()).logits).abs().max() <= 1e-5


def test_untied_head_set_on_the_top_level_config_is_built_saved_and_reloaded(tmp_path):
    config = tiny_config()
    config.tie_word_embeddings = False  # set after the config was made, as transformers' tests do
    torch.manual_seed(0)
    model = AudioCapForConditionalGeneration(config).eval()
    assert model.lm_head.weight is not model.get_input_embeddings().weight
    with torch.no_grad():
        model.lm_head.weight.normal_()  # differs from the embeddings: a tied reload could not reproduce it
    model.save_pretrained(tmp_path)
    again = AudioCapForConditionalGeneration.from_pretrained(tmp_path).eval()
    assert again.lm_head.weight is not again.get_input_embeddings().weight
    assert torch.equal(again.lm_head.weight, model.lm_head.weight)
    with torch.no_grad():
        assert (again(**inputs()).logits - model(**inputs()).logits).abs().max() <= 1e-5


def test_tied_head_is_one_tensor_and_not_saved_twice(tmp_path):
    from safetensors import safe_open

    model = tiny_model()
    assert model.lm_head.weight is model.get_input_embeddings().weight
    model.save_pretrained(tmp_path)
    with safe_open(tmp_path / "model.safetensors", "pt") as f:
        keys = set(f.keys())
    assert "model.decoder.embed_tokens.weight" in keys and "lm_head.weight" not in keys


# --------------------------------------------------------------------------------------------------------------------
# attentions and hidden states
# --------------------------------------------------------------------------------------------------------------------
def _check_attentions_and_hidden_states(out, layers=2):
    assert len(out.encoder_attentions) == layers and len(out.decoder_attentions) == layers
    assert len(out.cross_attentions) == layers
    batch_size, heads, tgt = 3, 2, 7
    assert out.decoder_attentions[0].shape == (batch_size, heads, tgt, tgt)
    assert out.cross_attentions[0].shape == (batch_size, heads, tgt, 16)  # 61 frames -> 16 encoder positions
    assert out.encoder_attentions[0].shape == (batch_size, heads, 16, 16)
    for weights in (*out.decoder_attentions, *out.cross_attentions, *out.encoder_attentions):
        torch.testing.assert_close(weights.sum(-1), torch.ones_like(weights.sum(-1)))
    # causal: no weight on later positions; padding: no weight on padded frames (clip 2 has 6 real positions)
    assert out.decoder_attentions[0][..., 0, 1:].abs().max() == 0
    assert out.cross_attentions[0][2, ..., 6:].abs().max() == 0
    assert len(out.encoder_hidden_states) == layers + 1 and len(out.decoder_hidden_states) == layers + 1


def test_attentions_and_hidden_states_from_the_call_and_from_the_config():
    model = tiny_model()
    with torch.no_grad():
        plain = model(**inputs())
        asked = model(**inputs(), output_attentions=True, output_hidden_states=True)
    _check_attentions_and_hidden_states(asked)
    assert plain.decoder_attentions is None and plain.encoder_hidden_states is None
    # the attention path that returns weights computes the same logits as SDPA
    torch.testing.assert_close(asked.logits, plain.logits, atol=1e-5, rtol=1e-5)
    # transformers takes output_attentions in a config only with the eager implementation named (our attention gives
    # its weights under any: SDPA cannot, so the softmax is written out when they are asked for)
    model = AudioCapForConditionalGeneration(tiny_config(attn_implementation="eager")).eval()
    model.config.output_attentions = True
    model.config.output_hidden_states = True
    with torch.no_grad():
        _check_attentions_and_hidden_states(model(**inputs()))


def test_generate_returns_every_output_of_every_mode():
    """Greedy, sampling and beam search with `return_dict_in_generate`: scores, logits, attentions and hidden states
    per step, and the same sequences as without them."""
    model = tiny_model(seed=3)
    kw = inputs(labels=False)
    extra = {"output_scores": True, "output_logits": True, "output_attentions": True, "output_hidden_states": True}
    for mode in ({"num_beams": 1}, {"num_beams": 1, "do_sample": True}, {"num_beams": 3}):
        torch.manual_seed(0)
        plain = model.generate(**kw, **mode, max_length=8)
        torch.manual_seed(0)
        out = model.generate(**kw, **mode, max_length=8, return_dict_in_generate=True, **extra)
        assert torch.equal(out.sequences, plain), mode
        steps = out.sequences.shape[1] - 1
        assert len(out.scores) == len(out.logits) == len(out.decoder_attentions) == steps
        assert len(out.cross_attentions) == len(out.decoder_hidden_states) == steps
        rows = 3 * mode["num_beams"]
        assert out.scores[0].shape == (rows, VOCAB) and len(out.decoder_attentions[0]) == 2
        assert len(out.encoder_attentions) == 2 and len(out.encoder_hidden_states) == 3


def test_beam_search_cache_has_one_cross_attention_row_per_beam():
    """The standard `EncoderDecoderCache` layout: every beam row holds its own self- and cross-attention keys."""
    model = tiny_model(seed=4)
    out = model.generate(**inputs(labels=False), num_beams=3, max_length=8, return_dict_in_generate=True)
    cache = getattr(out, CACHE_FIELD)
    assert isinstance(cache, EncoderDecoderCache)
    assert cache.cross_attention_cache.layers[0].keys.shape[0] == 9
    assert cache.self_attention_cache.layers[0].keys.shape[0] == 9


def test_assisted_decoding_gives_the_greedy_caption():
    model = tiny_model(seed=5)
    assistant = tiny_model(seed=6)
    kw = inputs(n=1, labels=False)
    greedy = model.generate(**kw, num_beams=1, max_length=10)
    assisted = model.generate(**kw, num_beams=1, max_length=10, assistant_model=assistant)
    assert torch.equal(assisted, greedy)


def test_past_key_values_still_accepted_with_the_deprecation_warning_of_its_release():
    model = tiny_model(seed=7)
    kw = inputs(labels=False)
    with torch.no_grad():
        enc = model.get_encoder()(**kw)
        first = model(encoder_outputs=enc, decoder_input_ids=torch.full((3, 1), SOS), use_cache=True)
    cache = getattr(first, CACHE_FIELD)
    step = torch.full((3, 1), 5)
    expected = model(encoder_outputs=enc, decoder_input_ids=step, use_cache=True, cache=_copy(cache)).logits
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old = model(encoder_outputs=enc, decoder_input_ids=step, use_cache=True, past_key_values=_copy(cache)).logits
    torch.testing.assert_close(old, expected)
    deprecated = any(issubclass(w.category, FutureWarning) and "past_key_values" in str(w.message) for w in caught)
    assert deprecated is (CACHE_ARG == "cache")  # 5.24 renamed it; before, it is the name generate itself passes
    with pytest.raises(ValueError, match="not both"):
        model(encoder_outputs=enc, decoder_input_ids=step, cache=cache, past_key_values=cache)


def test_return_dict_false_gives_tuples_at_every_level():
    model = tiny_model(seed=8)
    ids = torch.full((3, 2), SOS)
    with torch.no_grad():
        full = model(**inputs(labels=False), decoder_input_ids=ids)
        as_tuple = model(**inputs(labels=False), decoder_input_ids=ids, return_dict=False)
        base = model.base_model(**inputs(labels=False), decoder_input_ids=ids, return_dict=False)
        audio = model.get_encoder()(**inputs(labels=False), return_dict=False)
    assert isinstance(as_tuple, tuple) and torch.equal(as_tuple[0], full.logits)
    assert isinstance(base, tuple) and base[0].shape == (3, 2, 32)
    assert isinstance(audio, tuple) and torch.equal(audio[0], full.encoder_last_hidden_state)
    model.config.return_dict = False
    with torch.no_grad():
        assert isinstance(model(**inputs(labels=False), decoder_input_ids=ids), tuple)


def test_use_cache_off_in_the_config_returns_no_cache():
    model = tiny_model(seed=9)
    ids = torch.full((3, 2), SOS)
    with torch.no_grad():
        assert getattr(model(**inputs(labels=False), decoder_input_ids=ids), CACHE_FIELD) is not None
        model.config.use_cache = False
        assert getattr(model(**inputs(labels=False), decoder_input_ids=ids), CACHE_FIELD) is None


def test_gradient_checkpointing_without_labels_recomputes_the_cross_attention():
    """Training through the base model with checkpointing (no labels, so no loss switching the cache off): the
    recomputed layers project the audio again instead of reading a cache filled by the first pass."""
    model = tiny_model(seed=10).train()
    enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
    enable()
    model.enable_input_require_grads()
    out = model(**inputs(labels=False), decoder_input_ids=torch.full((3, 4), SOS))
    assert getattr(out, CACHE_FIELD) is None
    out.logits.sum().backward()
    assert model.lm_head.weight.grad is not None


def _copy(cache):
    import copy

    return copy.deepcopy(cache)


# --------------------------------------------------------------------------------------------------------------------
# base model
# --------------------------------------------------------------------------------------------------------------------
def test_base_model_is_the_encoder_decoder_under_base_model_prefix(tmp_path):
    model = tiny_model()
    assert model.base_model_prefix == "model" and isinstance(model.base_model, AudioCapModel)
    assert model.base_model is not model and model.base_model is model.model
    # a base model's checkpoint loads into the generation model: every weight but the LM head (tied here) found
    model.base_model.save_pretrained(tmp_path)
    loaded, info = AudioCapForConditionalGeneration.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    with torch.no_grad():
        assert (loaded.eval()(**inputs()).logits - model(**inputs()).logits).abs().max() <= 1e-5
    out = model.base_model(**inputs(labels=False), decoder_input_ids=torch.full((3, 2), SOS))
    assert out.last_hidden_state.shape == (3, 2, 32)


# --------------------------------------------------------------------------------------------------------------------
# what the model's files refuse
# --------------------------------------------------------------------------------------------------------------------
def test_transformers_outside_the_declared_range_stops_with_one_line():
    check_transformers_version(transformers.__version__)
    for version in ("5.15.0", "6.0.0", "4.57.1"):
        with pytest.raises(ImportError) as err:
            check_transformers_version(version)
        message = str(err.value)
        assert "\n" not in message and TRANSFORMERS_REQUIREMENT in message and version in message
    check_transformers_version("5.99.0.dev0")


def test_importing_the_package_under_a_transformers_out_of_range_prints_one_line():
    import subprocess
    import sys

    fake = (
        "import importlib.metadata as m; real = m.version; "
        "m.version = lambda name: '5.15.0' if name == 'transformers' else real(name); import hf_audiocap"
    )
    run = subprocess.run([sys.executable, "-c", fake], capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and run.stdout == ""
    assert run.stderr.splitlines() == [
        f"hf_audiocap needs transformers{SpecifierSet(TRANSFORMERS_REQUIREMENT)} (found transformers 5.15.0): "
        f"pip install 'transformers{SpecifierSet(TRANSFORMERS_REQUIREMENT)}'"
    ]


def test_declared_range_is_the_one_setup_cfg_installs():
    import configparser
    from pathlib import Path

    setup = configparser.ConfigParser()
    setup.read(Path(__file__).resolve().parents[1] / "setup.cfg")
    requirements = [r.strip() for r in setup["options"]["install_requires"].splitlines() if r.strip()]
    assert f"transformers{TRANSFORMERS_REQUIREMENT}" in requirements


def _saved_config(tmp_path, **edit):
    model = tiny_model()
    model.save_pretrained(tmp_path)
    path = tmp_path / "config.json"
    config = json.loads(path.read_text())
    for key, value in edit.items():
        if "." in key:
            part, field = key.split(".")
            config[part][field] = value
        else:
            config[key] = value
    path.write_text(json.dumps(config))
    return path


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        ({"encoder.model_type": "not-a-model"}, "encoder: unsupported model_type 'not-a-model'"),
        ({"decoder.model_type": "bert"}, "decoder: unsupported model_type 'bert'"),
        ({"audiocap_format": AUDIOCAP_FORMAT + 1}, "saved by a newer hf_audiocap"),
        ({"audiocap_format": 1}, "saved by hf_audiocap 0.1"),
    ],
)
def test_bad_config_json_is_refused_with_one_line_naming_the_file(tmp_path, edit, expected):
    path = _saved_config(tmp_path, **edit)
    for load in (AudioCapForConditionalGeneration.from_pretrained, transformers.AutoConfig.from_pretrained):
        with pytest.raises(AudioCapConfigError, match=expected) as err:
            load(tmp_path)
        message = str(err.value)
        assert "\n" not in message and str(path) in message, message


def test_fields_this_code_does_not_read_are_kept_with_one_warning_line(tmp_path, caplog):
    """transformers keeps any attribute set on a config through save and load; so do we, saying which ones this
    version of the code does not read (a folder whose fields change what the model computes has a newer format)."""
    _saved_config(tmp_path, keyword_pooling="max", **{"encoder.summary_token": True})
    with caplog.at_level("WARNING"):
        config = AudioCapConfig.from_pretrained(tmp_path)
    assert config.keyword_pooling == "max" and config.encoder.summary_token is True
    lines = [r.getMessage() for r in caplog.records if "not read" in r.getMessage()]
    assert len(lines) == 1 and "keyword_pooling" in lines[0] and "encoder.summary_token" in lines[0]
    caplog.clear()
    _saved_config(tmp_path, transformers_version="5.99.0", some_new_transformers_field=1)
    with caplog.at_level("WARNING"):
        assert AudioCapConfig.from_pretrained(tmp_path).some_new_transformers_field == 1
    assert not [r for r in caplog.records if "not read" in r.getMessage()]  # a newer transformers' own, maybe


def test_saved_and_reloaded_config_equals_the_original(tmp_path):
    config = tiny_config()
    config.save_pretrained(tmp_path)
    again = AudioCapConfig.from_pretrained(tmp_path)
    assert again.to_dict() == config.to_dict()
    again.transformers_version = config.transformers_version  # stamped when saved, as on any transformers config
    assert again == config


@pytest.mark.parametrize(
    "cls, field, value",
    [
        (AudioCapEncoderConfig, "d_model", 256),
        (AudioCapDecoderConfig, "decoder_layers", 3),
        (AudioCapConfig, "keyword_loss_weight", 0.0),
        (AudioCapPrefixConfig, "projector_stack", 2),
    ],
)
def test_configs_declare_their_fields_and_differ_where_they_differ(cls, field, value):
    # each field is a dataclass field, as in transformers' own configs: equality, the known keys of a recipe's
    # config_overrides and the unknown-field warning all read them (configs with a custom __init__ compared equal
    # whatever their own fields held)
    assert field in {f.name for f in dataclasses.fields(cls)}
    assert cls() == cls() and cls() != cls(**{field: value})


def test_labels_longer_than_the_decoder_and_eos_free_generation_are_handled():
    model = tiny_model()
    with pytest.raises(ValueError, match="32 positions"):
        model(**inputs(labels=False), labels=torch.full((3, 40), 5))
    out = model.generate(**inputs(labels=False), num_beams=1, max_length=32, min_length=32)
    assert out.shape[1] == 32 and not (out[:, 1:] == EOS).any()


def test_shipped_classes_override_no_private_transformers_method():
    # the files saved with a model run on every declared transformers only through its public API
    from hf_audiocap.configuration_audiocap import AudioCapConfig
    from hf_audiocap.configuration_audiocap_prefix import AudioCapPrefixConfig
    from hf_audiocap.feature_extraction_audiocap import AudioCapFeatureExtractor
    from hf_audiocap.modeling_audiocap import AudioCapForConditionalGeneration, AudioCapModel, AudioCapPreTrainedModel
    from hf_audiocap.modeling_audiocap_prefix import AudioCapPrefixForConditionalGeneration
    from hf_audiocap.processing_audiocap import AudioCapProcessor

    for cls in (
        AudioCapConfig,
        AudioCapPrefixConfig,
        AudioCapFeatureExtractor,
        AudioCapProcessor,
        AudioCapPreTrainedModel,
        AudioCapModel,
        AudioCapForConditionalGeneration,
        AudioCapPrefixForConditionalGeneration,
    ):
        theirs = [base for base in cls.__mro__ if base.__module__.startswith("transformers.")]
        for name in vars(cls):
            if name.startswith("_") and not name.startswith("__") and any(hasattr(b, name) for b in theirs):
                # what transformers documents for subclasses to set or override (`_auto_class`: set by the public
                # `register_for_auto_class`; `_init_weights`: the documented initialisation hook)
                assert name in {"_tied_weights_keys", "_no_split_modules", "_supports_sdpa", "_supports_flash_attn",
                                "_supports_flex_attn", "_supports_attention_backend", "_can_compile_fullgraph",
                                "_keys_to_ignore_on_load_unexpected", "_keys_to_ignore_on_load_missing",
                                "_skip_keys_device_placement", "_init_weights", "_auto_class"}, (cls.__name__, name)  # fmt: skip


def test_a_folder_saved_with_key_biases_loads_silently_and_computes_the_same(tmp_path, capfd, caplog):
    """Folders saved before 2026-12-05 hold a bias on every attention's keys, which today's layout leaves out (as
    Whisper's does): q.(k + b) adds the same q.b to a query's every score, which the softmax cancels. Such a folder
    loads without a word about unexpected weights and gives the logits the model with those biases gave."""
    from safetensors.torch import load_file, save_file

    from hf_audiocap.encoders_audiocap import AudioCapAttention

    model = tiny_model()
    model.save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    torch.manual_seed(1)
    for name, module in model.named_modules():
        if isinstance(module, AudioCapAttention):
            biased = torch.nn.Linear(*module.k_proj.weight.shape[::-1])
            biased.weight.data.copy_(module.k_proj.weight)
            biased.bias.data.normal_(0.0, 1.0)
            module.k_proj = biased
            weights[f"{name}.k_proj.bias"] = biased.bias.detach().clone()
    attentions = [m for m in model.modules() if isinstance(m, AudioCapAttention)]  # encoder; decoder self and cross
    assert len(attentions) >= 3 and sum(k.endswith("k_proj.bias") for k in weights) == len(attentions)
    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with torch.no_grad():
        before = model(**inputs()).logits
    capfd.readouterr()
    with caplog.at_level("INFO"):
        loaded = AudioCapForConditionalGeneration.from_pretrained(tmp_path).eval()
    out, err = capfd.readouterr()
    said = out + err + caplog.text
    assert "k_proj" not in said and "UNEXPECTED" not in said.upper(), said
    assert not any(k.endswith("k_proj.bias") for k in loaded.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs()).logits, before, rtol=0, atol=1e-5)
