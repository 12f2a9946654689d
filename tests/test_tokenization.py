import csv

import pytest
from transformers import AutoTokenizer

from hf_audiocap.tokenization import SPECIAL_TOKENS, build_word_tokenizer

CAPTIONS = [
    "A dog is barking loudly.",
    "A dog barks, then a car passes by!",
    "Rain falls on a tin roof; thunder rumbles.",
    "a DOG is barking",
]


@pytest.fixture(scope="module")
def tok():
    return build_word_tokenizer(CAPTIONS)


def test_special_tokens_and_order(tok):
    assert tok.convert_ids_to_tokens([0, 1, 2, 3]) == list(SPECIAL_TOKENS)
    assert (tok.pad_token_id, tok.unk_token_id, tok.bos_token_id, tok.eos_token_id) == (0, 1, 2, 3)
    assert tok.bos_token == "<sos>"
    # frequency desc, then alphabetical: a(5) dog(3) barking(2) is(2) ...
    assert tok.convert_ids_to_tokens([4, 5, 6, 7]) == ["a", "dog", "barking", "is"]
    assert len(tok) == 4 + len(
        {
            w
            for c in CAPTIONS
            for w in c.lower().replace(".", "").replace(",", "").replace("!", "").replace(";", "").split()
        }
    )


def test_normalisation_ids_eos_unk_decode(tok):
    ids = tok("  A   DOG, is barking!! zebra ").input_ids
    assert ids[-1] == tok.eos_token_id and tok.bos_token_id not in ids
    assert tok.convert_ids_to_tokens(ids) == ["a", "dog", "is", "barking", "<unk>", "<eos>"]
    assert tok.decode(ids, skip_special_tokens=True) == "a dog is barking"
    assert tok.decode(ids) == "a dog is barking <unk> <eos>"
    # NFKC: full-width letters fold to ASCII
    assert tok("\uff24\uff2f\uff27").input_ids == tok("dog").input_ids
    # punctuation is deleted (the Clotho rule): "dog's" -> "dogs", "dog,barking" fuses
    assert tok.backend_tokenizer.normalizer.normalize_str("Dog's bark-ing, ok.") == "dogs barking ok"
    assert tok("").input_ids == [tok.eos_token_id]


def test_deterministic_and_options():
    a = build_word_tokenizer(CAPTIONS)
    b = build_word_tokenizer(reversed(CAPTIONS))
    assert a.get_vocab() == b.get_vocab()
    small = build_word_tokenizer(CAPTIONS, min_frequency=2)
    assert set(small.get_vocab()) == set(SPECIAL_TOKENS) | {"a", "dog", "barking", "is"}
    assert len(build_word_tokenizer(CAPTIONS, max_vocab_size=6)) == 6
    spaced = build_word_tokenizer(["dog,barking"], punctuation="space")
    assert spaced.convert_ids_to_tokens(spaced("dog,barking").input_ids) == ["dog", "barking", "<eos>"]
    with pytest.raises(ValueError):
        build_word_tokenizer(CAPTIONS, punctuation="keep")
    with pytest.raises(ValueError):
        build_word_tokenizer(["ok", 3])


def test_batch_padding(tok):
    batch = tok(["a dog", "rain falls on a roof"], padding=True)
    assert batch.input_ids[0][-1] == tok.pad_token_id and batch.input_ids[0][2] == tok.eos_token_id
    assert batch.attention_mask[0] == [1, 1, 1, 0, 0, 0]


def test_save_load_round_trip(tok, tmp_path):
    tok.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert loaded.get_vocab() == tok.get_vocab()
    for text in CAPTIONS + ["unknown words, here!"]:
        assert loaded(text).input_ids == tok(text).input_ids
    for name in ("pad_token", "unk_token", "bos_token", "eos_token"):
        assert getattr(loaded, name) == getattr(tok, name)
    assert loaded.backend_tokenizer.normalizer.normalize_str("Dog's, OK") == "dogs ok"


def test_clotho_development_vocabulary_size(shared_data):
    path = shared_data / "clotho" / "clotho_captions_development.csv"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3839
    captions = [row[f"caption_{i}"] for row in rows for i in range(1, 6)]
    tok = build_word_tokenizer(captions)
    assert len(tok) == 4373  # 4,369 words + 4 special tokens; no empty-string word
    assert "" not in tok.get_vocab()
    assert len(build_word_tokenizer(captions, punctuation="space")) == 4370  # 4,366 words: nothing fuses
