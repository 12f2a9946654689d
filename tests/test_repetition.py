"""Repetition control (`no_repeat_content_words`, hf_audiocap.generation): the processor alone on hand-made word-level,
WordPiece and byte-level BPE vocabularies; both model kinds, pushed to repeat a word, never repeat one with it through
the Captioner; the CLI flag and the recipe key parse; a saved folder's generation_config.json stays plain. Tiny."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList, PreTrainedTokenizerFast

from hf_audiocap.generation import (
    NoRepeatContentWordsLogitsProcessor,
    apply_repetition_control,
    content_word_key,
    has_repeated_content_word,
)
from hf_audiocap.tokenization import build_word_tokenizer

CAPTIONS = ["a dog barks and a man speaks with birds in the distance", "rain falls on a roof"]


def _fast(backend: Tokenizer, **special) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(tokenizer_object=backend, **special)


def wordpiece_tokenizer() -> PreTrainedTokenizerFast:
    vocab = ["[PAD]", "[UNK]", "[SEP]", "a", "dog", "bar", "bark", "##king", "##ing", "##s", "the", ",", "rain", "and"]
    backend = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece()
    return _fast(backend, pad_token="[PAD]", unk_token="[UNK]", eos_token="[SEP]")


def bpe_tokenizer() -> PreTrainedTokenizerFast:
    vocab = ["<eos>", "a", "Ġa", "Ġdog", "ĠDog", "Ġbar", "Ġbark", "king", "ing", "s", ",", "Ġthe", "Ġand", "Ġrain"]
    backend = Tokenizer(models.BPE({t: i for i, t in enumerate(vocab)}, []))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    return _fast(backend, eos_token="<eos>")


def banned(tokenizer, tokens: list[str], prompt: list[str] = ()) -> set[str]:
    """The tokens the processor forbids after `prompt` + `tokens` (one row)."""
    ids = tokenizer.convert_tokens_to_ids([*prompt, *tokens])
    processor = NoRepeatContentWordsLogitsProcessor(tokenizer)
    processor(torch.tensor([ids[: len(prompt)]]), torch.zeros(1, len(tokenizer)))  # first step: the prompt's length
    scores = processor(torch.tensor([ids]), torch.zeros(1, len(tokenizer)))
    return set(tokenizer.convert_ids_to_tokens(torch.nonzero(scores[0] == -float("inf")).flatten().tolist()))


def test_content_words_and_stop_words():
    assert content_word_key("Dog,") == "dog" and content_word_key("the") is None and content_word_key("3") is None
    assert has_repeated_content_word("a dog barks and a dog growls")
    assert not has_repeated_content_word("a dog barks and a man speaks with a dog-less voice")


def test_word_level_vocabulary():
    tok = build_word_tokenizer(CAPTIONS)
    assert banned(tok, ["a", "dog", "barks", "and", "a"]) == {"dog", "barks"}  # stop words stay allowed
    assert banned(tok, ["dog"]) == {"dog"}  # the current word too: a word-level token is a whole word
    assert banned(tok, []) == set()
    assert banned(tok, ["with"], prompt=["dog"]) == set()  # the prompt's words are not counted


def test_wordpiece_vocabulary():
    tok = wordpiece_tokenizer()
    # "barking" said as bar + ##king: "bar ##king" and "bark ##ing" are both refused, as is a new "dog"
    # (and "bar"/"bark" again: a token starting a word ends the current one, "bar bar" repeats it)
    assert banned(tok, ["dog", "bar", "##king", "and", "bar"]) == {"dog", "##king", "bar"}
    assert banned(tok, ["dog", "bar", "##king", "and", "bark"]) == {"dog", "##ing", "bark"}
    assert banned(tok, ["dog", "bar", "##king", "and"]) == {"dog"}  # "bar" starts other words: allowed
    assert banned(tok, ["dog", ",", "the"]) == {"dog"}


def test_byte_level_bpe_vocabulary():
    tok = bpe_tokenizer()
    assert banned(tok, ["a", "Ġdog", "Ġbar", "king", "Ġand"]) == {"Ġdog", "ĠDog"}  # any case
    assert banned(tok, ["a", "Ġdog", "Ġbar", "king", "Ġand", "Ġbar"]) == {"Ġdog", "ĠDog", "king", "Ġbar"}
    assert banned(tok, ["Ġdog", ",", "Ġbark"]) == {"Ġdog", "ĠDog", "Ġbark"}  # "ing" stays: "barking" is new


class Push(LogitsProcessor):
    """Pushes the scores of `ids` up: a random model then repeats those words."""

    def __init__(self, ids, by=50.0):
        self.ids, self.by = ids, by

    def __call__(self, input_ids, scores):
        scores = scores.clone()
        scores[:, self.ids] += torch.tensor(self.by, dtype=scores.dtype)
        return scores


def _captioner(kind: str):
    from hf_audiocap import AudioCapFeatureExtractor, AudioCapProcessor
    from hf_audiocap.inference.captioner import Captioner

    tok = build_word_tokenizer(CAPTIONS)
    torch.manual_seed(0)
    if kind == "encoder-decoder":
        from hf_audiocap import AudioCapConfig, AudioCapForConditionalGeneration

        config = AudioCapConfig(
            vocab_size=len(tok),
            encoder={"d_model": 32, "encoder_layers": 1, "encoder_attention_heads": 2, "encoder_ffn_dim": 64},
            decoder={"d_model": 32, "decoder_layers": 1, "decoder_attention_heads": 2, "decoder_ffn_dim": 64},
        )
        model = AudioCapForConditionalGeneration(config).eval()
        model.generation_config.max_length = 8
    else:
        pytest.importorskip("peft")
        from hf_audiocap.configuration_audiocap_prefix import AudioCapPrefixConfig
        from hf_audiocap.modeling_audiocap_prefix import AudioCapPrefixForConditionalGeneration

        lm = {"model_type": "llama", "vocab_size": len(tok), "hidden_size": 32, "num_hidden_layers": 1}
        lm.update(num_attention_heads=2, num_key_value_heads=1, intermediate_size=64, max_position_embeddings=128)
        encoder = {"d_model": 32, "encoder_layers": 1, "encoder_attention_heads": 2, "encoder_ffn_dim": 64}
        config = AudioCapPrefixConfig(encoder=encoder, lm=lm)
        config.set_prompt(tok)
        model = AudioCapPrefixForConditionalGeneration(config).eval()
        model.generation_config.max_new_tokens = 7
    return Captioner(model=model, processor=AudioCapProcessor(AudioCapFeatureExtractor(), tok), batch_size=2), tok


@pytest.mark.parametrize("kind", ["encoder-decoder", "prefix"])
def test_both_model_kinds_never_repeat_a_content_word(kind):
    captioner, tok = _captioner(kind)
    waves = [np.random.default_rng(i).standard_normal(16000).astype(np.float32) * 0.1 for i in range(2)]
    push = LogitsProcessorList([Push(tok.convert_tokens_to_ids(["dog", "a"]), by=[50.0, 40.0])])
    plain = captioner.caption_arrays(waves, logits_processor=push, num_beams=2)
    assert all(has_repeated_content_word(c) for c in plain), plain  # "dog dog ..." without the control
    controlled = captioner.caption_arrays(waves, logits_processor=push, num_beams=2, no_repeat_content_words=True)
    assert not any(has_repeated_content_word(c) for c in controlled), controlled
    assert all(c.split().count("dog") == 1 for c in controlled), controlled
    # the same through the model's generation config (as a recipe saves it), and n-best (beam search)
    captioner.model.generation_config.no_repeat_content_words = True
    assert captioner.caption_arrays(waves, logits_processor=push, num_beams=2) == controlled
    nbest = captioner.caption_nbest(waves[0], num_return_sequences=2, num_beams=2, logits_processor=push)
    assert not any(has_repeated_content_word(c) for c, _ in nbest), nbest
    # an explicit False in the call wins over the config
    assert captioner.caption_arrays(waves, logits_processor=push, num_beams=2, no_repeat_content_words=False) == plain


def test_apply_repetition_control_keeps_the_call_s_processors():
    tok = build_word_tokenizer(CAPTIONS)
    push = Push([4])
    kwargs = apply_repetition_control({"logits_processor": [push], "num_beams": 2}, GenerationConfig(), tok)
    assert kwargs == {"logits_processor": [push], "num_beams": 2}  # off by default: nothing added
    kwargs = apply_repetition_control({"logits_processor": [push], "no_repeat_content_words": True}, None, tok)
    assert kwargs["logits_processor"][0] is push
    assert isinstance(kwargs["logits_processor"][1], NoRepeatContentWordsLogitsProcessor)


def test_cli_flag_and_recipe_key_parse(tmp_path):
    import argparse

    from transformers import HfArgumentParser

    from hf_audiocap.inference.cli_caption import add_arguments
    from hf_audiocap.training.arguments import AudioCapTrainingArguments

    p = argparse.ArgumentParser()
    add_arguments(p)
    assert p.parse_args(["x.wav", "--no-repeat-content-words"]).no_repeat_content_words is True
    assert p.parse_args(["x.wav", "--allow-repeated-content-words"]).no_repeat_content_words is False
    assert p.parse_args(["x.wav"]).no_repeat_content_words is None  # the model's own setting

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"output_dir: {tmp_path}\ngeneration_no_repeat_content_words: true\nuse_cpu: true\n")
    (args,) = HfArgumentParser(AudioCapTrainingArguments).parse_yaml_file(str(recipe))
    assert args.generation_no_repeat_content_words is True


def test_saved_generation_config_stays_plain(tmp_path):
    """The setting is saved as a plain boolean, readable by transformers' own GenerationConfig (no class to import)."""
    captioner, _ = _captioner("encoder-decoder")
    captioner.model.generation_config.no_repeat_content_words = True
    captioner.model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "generation_config.json").read_text())
    assert saved["no_repeat_content_words"] is True
    assert all(isinstance(v, (bool, int, float, str, list, type(None))) for v in saved.values())
    assert GenerationConfig.from_pretrained(tmp_path).no_repeat_content_words is True


def test_validation_generation_gets_the_processor(monkeypatch):
    """The trainer's generation pass (predict_with_generate) turns the generation config's setting into the processor,
    beside the pass's own settings; the loss pass is left alone."""
    from types import SimpleNamespace

    from transformers import Seq2SeqTrainer

    from hf_audiocap.training.trainer import AudioCapTrainer

    captioner, _ = _captioner("encoder-decoder")
    captioner.model.generation_config.no_repeat_content_words = True
    seen = []
    monkeypatch.setattr(
        Seq2SeqTrainer, "prediction_step", lambda self, m, i, plo, ignore_keys=None, **kw: seen.append(kw)
    )
    trainer = object.__new__(AudioCapTrainer)  # only what prediction_step reads
    trainer.args = SimpleNamespace(predict_with_generate=True)
    trainer.processing_class = captioner.processor
    trainer.accelerator = SimpleNamespace(unwrap_model=lambda model: model)
    trainer._generation_kwargs = {"num_beams": 2}
    trainer.prediction_step(captioner.model, {}, prediction_loss_only=False)
    trainer.prediction_step(captioner.model, {}, prediction_loss_only=True)
    assert seen[0]["num_beams"] == 2
    assert isinstance(seen[0]["logits_processor"][0], NoRepeatContentWordsLogitsProcessor)
    assert "logits_processor" not in seen[1]


def test_app_service_passes_the_checkbox():
    """The app's checkbox reaches the Captioner only when it differs from the model's saved setting."""
    from hf_audiocap.inference.service import CaptionService

    captioner, _ = _captioner("encoder-decoder")
    service = CaptionService(captioner)
    assert service.defaults["no_repeat_content_words"] is False
    assert service.generate_kwargs(no_repeat_content_words=True) == {"no_repeat_content_words": True}
    assert service.generate_kwargs(no_repeat_content_words=False) == {}
