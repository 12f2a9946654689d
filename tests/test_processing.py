import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from hf_audiocap.feature_extraction_audiocap import AudioCapFeatureExtractor
from hf_audiocap.processing_audiocap import AudioCapProcessor
from hf_audiocap.tokenization import build_word_tokenizer

SR = 16000
CAPTIONS = ["A dog is barking loudly.", "Rain falls on a tin roof.", "A car passes by on a wet road."]


def byte_level_bpe(style: str) -> PreTrainedTokenizerFast:
    """A tiny local stand-in for BART's ("bart": <s> ... </s>) or GPT-2's ("gpt2": no specials added) tokenizer."""
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    specials = ["<s>", "<pad>", "</s>", "<unk>"] if style == "bart" else ["<|endoftext|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    backend.train_from_iterator(CAPTIONS * 3, trainer=trainer)
    if style == "bart":
        backend.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
        return PreTrainedTokenizerFast(
            tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
        )
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<|endoftext|>", eos_token="<|endoftext|>")


def audio(lengths=(16000, 8000, 3000)):
    rng = np.random.default_rng(0)
    return [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in lengths]


@pytest.fixture(scope="module", params=["word", "bart", "gpt2"])
def processor(request):
    tok = build_word_tokenizer(CAPTIONS) if request.param == "word" else byte_level_bpe(request.param)
    return AudioCapProcessor(AudioCapFeatureExtractor(), tok)


def test_call_returns_features_mask_and_labels(processor):
    tok = processor.tokenizer
    texts = [CAPTIONS[0], "Rain falls.", CAPTIONS[2]]
    out = processor(audio=audio(), text=texts, sampling_rate=SR, return_tensors="pt")
    assert out["input_features"].shape == (3, 80, 101) and out["input_features"].dtype == torch.float32
    assert out["attention_mask"].shape == (3, 101)
    labels = out["labels"]
    assert labels.dtype == torch.int64 and labels.shape[0] == 3
    for row in labels.tolist():
        real = [i for i in row if i != -100]
        assert real[-1] == tok.eos_token_id  # ends with eos, also for GPT-2 which adds none
        assert real[0] != tok.bos_token_id or tok.bos_token_id == tok.eos_token_id  # no <sos>/<s> in labels
        assert row[len(real) :] == [-100] * (len(row) - len(real))  # padded with -100 only at the end
    assert (labels == -100).any()
    assert [c.lower().rstrip(".") for c in processor.batch_decode(labels)] == [c.lower().rstrip(".") for c in texts]
    assert processor.decode(labels[1]).lower().rstrip(".") == "rain falls"


def test_text_only_and_audio_only(processor):
    labels = processor(text="A dog is barking.")["labels"]
    assert isinstance(labels, list) and labels[-1] == processor.tokenizer.eos_token_id
    out = processor(audio=audio()[0], sampling_rate=SR)
    assert set(out) == {"input_features", "attention_mask"}
    with pytest.raises(ValueError, match="2 audio clips but 3 captions"):
        processor(audio=audio()[:2], text=CAPTIONS, sampling_rate=SR, return_tensors="pt")
    with pytest.raises(ValueError):
        processor()


def test_save_load_round_trip(processor, tmp_path):
    processor.save_pretrained(tmp_path)
    loaded = AudioCapProcessor.from_pretrained(tmp_path)
    assert loaded.feature_extractor.to_dict() == processor.feature_extractor.to_dict()
    assert loaded.tokenizer.get_vocab() == processor.tokenizer.get_vocab()
    a = processor(audio=audio(), text=CAPTIONS, sampling_rate=SR, return_tensors="pt")
    b = loaded(audio=audio(), text=CAPTIONS, sampling_rate=SR, return_tensors="pt")
    for key in ("input_features", "attention_mask", "labels"):
        assert torch.equal(a[key], b[key])


def test_word_level_labels_exact():
    tok = build_word_tokenizer(CAPTIONS)
    processor = AudioCapProcessor(AudioCapFeatureExtractor(), tok)
    out = processor(text=["a dog", "a dog is barking loudly"], return_tensors="np")
    dog, a = tok.convert_tokens_to_ids(["dog", "a"])
    assert out["labels"][0].tolist() == [a, dog, 3, -100, -100, -100]
    assert 2 not in out["labels"]  # <sos> is the decoder start token, never a label


def test_auto_processor_when_registered(tmp_path):
    import hf_audiocap

    if not hasattr(hf_audiocap, "AudioCapConfig"):
        pytest.skip("AutoProcessor registration is wired by the package __init__ (AudioCapConfig not exported yet)")
    from transformers import AutoProcessor

    AudioCapProcessor(AudioCapFeatureExtractor(), build_word_tokenizer(CAPTIONS)).save_pretrained(tmp_path)
    assert isinstance(AutoProcessor.from_pretrained(tmp_path), AudioCapProcessor)
