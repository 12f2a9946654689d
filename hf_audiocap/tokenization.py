"""Word-level caption tokenizer built on the `tokenizers` library.

`build_word_tokenizer(texts)` returns a `transformers.PreTrainedTokenizerFast` (alias of `TokenizersBackend` in
transformers 5) whose backend does all the work, so it saves with `save_pretrained` and reloads with
`AutoTokenizer.from_pretrained(dir)` offline, with identical ids:

- normalizer: NFKC, lowercase, punctuation deleted (see below), whitespace stripped;
- pre-tokenizer: split on whitespace (runs of whitespace never produce an empty word);
- model: `WordLevel` with `<unk>`; special tokens `<pad>`=0, `<unk>`=1, `<sos>`=2, `<eos>`=3;
- post-processor: `$A <eos>`, so `tokenizer(text).input_ids` ends with eos and can be used as labels directly
  (`<sos>` is never added: it is the decoder start token, the model shifts labels right behind it);
- decoding joins the words with single spaces.

Punctuation rule. The default, ``punctuation="delete"``, removes every Unicode punctuation or symbol character
(``\\p{P}``, ``\\p{S}``; apostrophes and hyphens included, so "dog's" -> "dogs", "walkie-talkie" -> "walkietalkie").
It is the rule behind the usual Clotho vocabulary: on the Clotho v2.1 development captions (3,839 clips x 5) it gives
exactly 4,369 words (+4 special tokens = 4,373). Its one drawback is that a missing space after punctuation fuses two
words ("louder,then" -> "louderthen": 5 such words in Clotho development). ``punctuation="space"`` replaces
punctuation by a space instead, which never fuses words ("dog,barking" -> "dog barking") but gives 4,366 words on Clotho
development, so it does not reproduce the published vocabulary size. (The 4,374 that circulates in tutorials counts
an empty-string word produced by splitting on single spaces; whitespace splitting here never produces one.)

The vocabulary is ordered by frequency (descending), ties broken alphabetically, after the 4 special tokens, so the
same captions always give the same ids.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import WordLevel
from transformers import PreTrainedTokenizerFast

PAD_TOKEN, UNK_TOKEN, SOS_TOKEN, EOS_TOKEN = "<pad>", "<unk>", "<sos>", "<eos>"
SPECIAL_TOKENS = (PAD_TOKEN, UNK_TOKEN, SOS_TOKEN, EOS_TOKEN)  # ids 0, 1, 2, 3
PUNCTUATION_PATTERN = r"[\p{P}\p{S}]"
PUNCTUATION_RULES = ("delete", "space")

__all__ = [
    "EOS_TOKEN",
    "PAD_TOKEN",
    "SOS_TOKEN",
    "SPECIAL_TOKENS",
    "UNK_TOKEN",
    "build_word_tokenizer",
    "caption_normalizer",
]


def caption_normalizer(punctuation: str = "delete") -> normalizers.Normalizer:
    """The caption normalizer: NFKC, lowercase, punctuation deleted (or replaced by a space), stripped."""
    if punctuation not in PUNCTUATION_RULES:
        raise ValueError(f"punctuation must be one of {PUNCTUATION_RULES}, got {punctuation!r}")
    replacement = "" if punctuation == "delete" else " "
    return normalizers.Sequence(
        [
            normalizers.NFKC(),
            normalizers.Lowercase(),
            normalizers.Replace(Regex(PUNCTUATION_PATTERN), replacement),
            normalizers.Strip(),
        ]
    )


def build_word_tokenizer(
    texts: Iterable[str],
    min_frequency: int = 1,
    max_vocab_size: int | None = None,
    punctuation: str = "delete",
) -> PreTrainedTokenizerFast:
    """Build a word-level tokenizer from any iterable of caption strings.

    Args:
        texts: the captions to count words in (any iterable of strings; nothing else is read).
        min_frequency: keep words seen at least this many times; rarer words map to `<unk>`.
        max_vocab_size: if set, the total vocabulary size including the 4 special tokens; the most frequent words
            are kept (ties broken alphabetically).
        punctuation: "delete" (default; reproduces the Clotho vocabulary) or "space" (never fuses words).

    Returns:
        a `PreTrainedTokenizerFast` with `pad_token="<pad>"`, `unk_token="<unk>"`, `bos_token="<sos>"`,
        `eos_token="<eos>"`, whose encodings end with `<eos>`.
    """
    if min_frequency < 1:
        raise ValueError(f"min_frequency must be >= 1, got {min_frequency}")
    if max_vocab_size is not None and max_vocab_size < len(SPECIAL_TOKENS):
        raise ValueError(f"max_vocab_size must be >= {len(SPECIAL_TOKENS)} (the special tokens), got {max_vocab_size}")

    normalizer = caption_normalizer(punctuation)
    pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    counts: Counter[str] = Counter()
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"text #{i} is not a string: {type(text).__name__}")
        words = pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text))
        counts.update(word for word, _ in words)
    for special in SPECIAL_TOKENS:  # a caption cannot contain them after normalisation, but be safe
        counts.pop(special, None)

    ordered = sorted((w for w, c in counts.items() if c >= min_frequency), key=lambda w: (-counts[w], w))
    if max_vocab_size is not None:
        ordered = ordered[: max_vocab_size - len(SPECIAL_TOKENS)]
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
    vocab.update({word: i for i, word in enumerate(ordered, start=len(SPECIAL_TOKENS))})

    backend = Tokenizer(WordLevel(vocab=vocab, unk_token=UNK_TOKEN))
    backend.normalizer = normalizer
    backend.pre_tokenizer = pre_tokenizer
    eos_id = vocab[EOS_TOKEN]
    backend.post_processor = processors.TemplateProcessing(
        single=f"$A {EOS_TOKEN}", pair=f"$A {EOS_TOKEN} $B:1 {EOS_TOKEN}:1", special_tokens=[(EOS_TOKEN, eos_id)]
    )
    # No decoder: the tokenizers library joins decoded tokens with single spaces, which is what words need.

    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD_TOKEN,
        unk_token=UNK_TOKEN,
        bos_token=SOS_TOKEN,
        eos_token=EOS_TOKEN,
        clean_up_tokenization_spaces=False,
        model_max_length=1024,
        padding_side="right",
    )
