"""Repetition control at generation time: never say the same content word twice in one caption.

`no_repeat_content_words` is a plain boolean: a recipe key (`generation_no_repeat_content_words`, saved as a custom
attribute of the model's `generation_config.json`), a CLI flag (`--no-repeat-content-words`), a Captioner/pipeline
keyword and an app checkbox. The processor itself is never saved: it needs the tokenizer, so it is built at generate
time from the tokenizer's vocabulary (:func:`apply_repetition_control`, called by the Captioner and the trainer) and a
saved folder stays loadable by plain transformers. `model.generate(...)` called directly does not apply it: pass
``logits_processor=LogitsProcessorList([NoRepeatContentWordsLogitsProcessor(tokenizer)])`` there.

A *content word* is a word (lower-cased, punctuation dropped) with a letter in it that is not in :data:`STOP_WORDS`.
The exempt words are the glue of audio captions ("a dog barks and a man speaks while birds sing in the distance"):
articles, conjunctions, prepositions, the copula and "someone"/"something", which a fluent caption legitimately
repeats; forbidding them would force ungrammatical captions. Content words (nouns, verbs, adjectives, adverbs) are
what a degenerate caption loops on ("a dog barks and a dog barks").

How words are found in token ids, whatever the tokenizer: every token is decoded after a reference token; a token
whose text then starts with a space starts a word (word-level vocabularies: every token; byte-level BPE "Ġdog",
SentencePiece "▁dog", WordPiece "dog" but not "##s"), a token without letters or digits (punctuation, special tokens)
ends a word, and any other token continues the current word. At each step, per beam row, the processor forbids:

1. a token that starts a word equal to a content word already generated, or to the word it would end (the current
   one): "dog" after "a dog barks", in any case ("Ġdog", "ĠDog", "Ġdog," all start the word "dog");
2. a token that would complete a content word already generated from the current partial word, whatever the split:
   after "... barking" (Ġbar + king), "king" after "Ġbar" and "ing" after "Ġbark".

Not covered (by design, kept cheap and predictable): a word repeated with a different ending (after "dog", "dogs"
spelled "Ġdogs" is allowed; spelled "Ġdog" + "s" it is not, as its first token already is "dog"); a repeated word that
begins with a token covered by neither rule, because its pieces cross the said word's boundary (e.g. "barkings" as
"Ġbar" + "kings"). Words of the prompt (the prefix model's text prompt, the decoder start token) are not counted.
"""

from __future__ import annotations

import re
import weakref

import torch
from transformers import LogitsProcessor, LogitsProcessorList

__all__ = [
    "STOP_WORDS",
    "NoRepeatContentWordsLogitsProcessor",
    "apply_repetition_control",
    "content_word_key",
    "has_repeated_content_word",
]

# Function words a caption may say as often as it needs: articles, conjunctions, common prepositions, the copula and
# the indefinite pronouns of captions ("someone", "something"). Small and fixed on purpose: a content word wrongly
# exempted only loses the control, a function word wrongly forbidden breaks the caption's grammar.
STOP_WORDS = frozenset(
    """a an the and or but while with without in on of is are was were be being been then as by at to from into onto
    over under through near for off up down out it its his her their there this that these those some someone
    something somebody one another other each both several also too very""".split()
)

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


def content_word_key(text: str) -> str | None:
    """The content word a word's text stands for (lower case, punctuation dropped), or None for a stop word, a number
    or no word."""
    key = "".join(_WORD.findall(text.lower()))
    if not key or key in STOP_WORDS or not any(c.isalpha() for c in key):
        return None
    return key


def has_repeated_content_word(caption: str) -> bool:
    """Whether a caption says a content word more than once (how the benchmark counts)."""
    seen: set[str] = set()
    for word in caption.split():
        key = content_word_key(word)
        if key is not None:
            if key in seen:
                return True
            seen.add(key)
    return False


class _VocabularyWords:
    """Per token of a tokenizer: how it acts on words (start / continue / end) and its text, with the lookups the
    processor needs. Built once per tokenizer (one batched decode of the vocabulary)."""

    START, CONTINUE, BOUNDARY = 0, 1, 2

    def __init__(self, tokenizer):
        size = len(tokenizer)
        reference = tokenizer.encode("a", add_special_tokens=False)[:1]
        if not reference:
            raise ValueError("no_repeat_content_words: the tokenizer cannot encode the word 'a'")
        prefix = tokenizer.decode(reference, skip_special_tokens=True)
        texts = tokenizer.batch_decode(
            [reference + [i] for i in range(size)], skip_special_tokens=True, clean_up_tokenization_spaces=False
        )
        self.kinds: list[int] = []
        self.pieces: list[str] = []
        self.start_ids: dict[str, list[int]] = {}  # content word -> the tokens that start it
        self.continue_ids: dict[str, list[int]] = {}  # lower-cased piece -> the tokens that continue a word with it
        for token_id, text in enumerate(texts):
            rest = text[len(prefix) :] if text.startswith(prefix) else ""
            piece = rest.strip().lower()
            if not _WORD.search(piece):
                kind = self.BOUNDARY
            elif rest[:1].isspace():
                kind = self.START
                key = content_word_key(piece)
                if key is not None:
                    self.start_ids.setdefault(key, []).append(token_id)
            else:
                kind = self.CONTINUE
                self.continue_ids.setdefault(piece, []).append(token_id)
            self.kinds.append(kind)
            self.pieces.append(piece)

    def words(self, ids: list[int]) -> tuple[set[str], str]:
        """The content words completed in `ids`, and the current (possibly partial) word."""
        said: set[str] = set()
        current = ""
        for token_id in ids:
            kind = self.kinds[token_id] if 0 <= token_id < len(self.kinds) else self.BOUNDARY
            if kind == self.CONTINUE:
                current += self.pieces[token_id]
                continue
            key = content_word_key(current)
            if key is not None:
                said.add(key)
            current = self.pieces[token_id] if kind == self.START else ""
        return said, current

    def forbidden(self, ids: list[int]) -> list[int]:
        said, current = self.words(ids)
        banned: list[int] = []
        ended = content_word_key(current)  # a token starting a word ends the current one
        for word in said | ({ended} if ended else set()):
            banned.extend(self.start_ids.get(word, ()))
        for word in said:
            if len(word) > len(current) and word.startswith(current):
                banned.extend(self.continue_ids.get(word[len(current) :], ()))
        return banned


_TABLES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _vocabulary_words(tokenizer) -> _VocabularyWords:
    try:
        table = _TABLES.get(tokenizer)
    except TypeError:  # not weakly referenceable: no cache
        return _VocabularyWords(tokenizer)
    if table is None or len(table.kinds) != len(tokenizer):
        table = _TABLES[tokenizer] = _VocabularyWords(tokenizer)
    return table


class NoRepeatContentWordsLogitsProcessor(LogitsProcessor):
    """Forbids (score -inf) the tokens that would repeat a content word already generated in the row (module doc).

    Args:
        tokenizer: the model's tokenizer (a processor's `.tokenizer` is taken too); word-level or subword.
    """

    def __init__(self, tokenizer):
        tokenizer = getattr(tokenizer, "tokenizer", tokenizer)
        self.words = _vocabulary_words(tokenizer)
        self.prompt_length: int | None = None  # the ids before the first generated one (set at the first step)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.prompt_length is None:
            self.prompt_length = input_ids.shape[1]
        generated = input_ids[:, self.prompt_length :].tolist()
        rows, cols = [], []
        for row, ids in enumerate(generated):
            banned = [i for i in self.words.forbidden(ids) if i < scores.shape[1]]
            rows.extend([row] * len(banned))
            cols.extend(banned)
        if rows:
            scores = scores.clone()
            scores[torch.tensor(rows, device=scores.device), torch.tensor(cols, device=scores.device)] = -float("inf")
        return scores


def apply_repetition_control(generate_kwargs: dict, generation_config, tokenizer) -> dict:
    """`generate_kwargs` ready for `model.generate`: `no_repeat_content_words` (the call's, else the generation
    config's custom attribute, else off) taken out and, when on, a fresh :class:`NoRepeatContentWordsLogitsProcessor`
    added to the call's `logits_processor`."""
    kwargs = dict(generate_kwargs)
    asked = kwargs.pop("no_repeat_content_words", None)
    if asked is None:
        asked = getattr(generation_config, "no_repeat_content_words", False)
    if not asked:
        return kwargs
    processors = LogitsProcessorList(kwargs.pop("logits_processor", None) or [])
    processors.append(NoRepeatContentWordsLogitsProcessor(tokenizer))
    kwargs["logits_processor"] = processors
    return kwargs
