"""`AudioCapProcessor`: the log-mel feature extractor paired with a caption tokenizer.

`processor(audio=..., text=..., sampling_rate=16000, return_tensors="pt")` returns `input_features`,
`attention_mask` (frame-level) and `labels` (token ids ending with eos, no `<sos>`; padded with -100 when batched
with tensors). Any tokenizer works: the word-level one from `build_word_tokenizer`, or a pretrained subword one
(BART's adds eos itself; GPT-2's adds none, so the processor appends `eos_token_id` when the tokenizer did not).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from transformers import AutoTokenizer
from transformers.feature_extraction_utils import BatchFeature
from transformers.processing_utils import ProcessorMixin

from .feature_extraction_audiocap import AudioCapFeatureExtractor

__all__ = ["AudioCapProcessor"]

LABEL_PAD = -100


class AudioCapProcessor(ProcessorMixin):
    """Pairs an `AudioCapFeatureExtractor` with a tokenizer (any `PreTrainedTokenizerBase` with an eos token).

    `save_pretrained(dir)` writes the feature extractor config, the tokenizer files and `processor_config.json`;
    `AudioCapProcessor.from_pretrained(dir)` reloads them without any Auto-class registration (`AutoProcessor` needs
    the registrations listed in the package `__init__`).
    """

    # transformers 5 infers the sub-processors from the `__init__` parameter names ("feature_extractor",
    # "tokenizer"); `attributes` is kept for readers and older code.
    attributes = ["feature_extractor", "tokenizer"]

    def __init__(self, feature_extractor: AudioCapFeatureExtractor, tokenizer: Any, **kwargs: Any):
        if not isinstance(feature_extractor, AudioCapFeatureExtractor):
            raise TypeError(
                f"feature_extractor must be an AudioCapFeatureExtractor, got {type(feature_extractor).__name__}"
            )
        if getattr(tokenizer, "eos_token_id", None) is None:
            raise ValueError(f"the tokenizer ({type(tokenizer).__name__}) has no eos token; labels must end with one")
        super().__init__(feature_extractor, tokenizer, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """The processor of a saved folder or Hub repository. The feature extractor is built by class, so reloading
        needs no AutoFeatureExtractor registration: transformers 5 nests its config in `processor_config.json`, older
        folders have a separate `preprocessor_config.json`. Only public `ProcessorMixin` methods are used."""
        processor_dict, instantiation_kwargs = cls.get_processor_dict(pretrained_model_name_or_path, **kwargs)
        config = processor_dict.get("feature_extractor")
        if isinstance(config, dict):
            feature_extractor = AudioCapFeatureExtractor.from_dict(config)
        else:
            feature_extractor = AudioCapFeatureExtractor.from_pretrained(pretrained_model_name_or_path, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(pretrained_model_name_or_path, **kwargs)
        if "from_dict" in vars(ProcessorMixin):  # newer releases: keyword-only, from_args_and_dict deprecated
            parts = {"feature_extractor": feature_extractor, "tokenizer": tokenizer}
            return cls.from_dict({**processor_dict, **parts}, **instantiation_kwargs)
        return cls.from_args_and_dict([feature_extractor, tokenizer], processor_dict, **instantiation_kwargs)

    def _labels(self, text: str | list[str], return_tensors: str | None) -> Any:
        single = isinstance(text, str)
        texts = [text] if single else list(text)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise ValueError(f"text #{i} is not a string: {type(t).__name__}")
        eos = self.tokenizer.eos_token_id
        bos = self.tokenizer.bos_token_id
        labels = []
        for ids in self.tokenizer(texts, add_special_tokens=True)["input_ids"]:
            ids = list(ids)
            if ids and bos is not None and bos != eos and ids[0] == bos:  # BART-style "<s> ... </s>": no sos in labels
                ids = ids[1:]
            if not ids or ids[-1] != eos:  # GPT-2 style tokenizers add no eos
                ids.append(eos)
            labels.append(ids)
        if return_tensors is None:
            return labels[0] if single else labels
        width = max(len(ids) for ids in labels)
        padded = np.full((len(labels), width), LABEL_PAD, dtype=np.int64)
        for i, ids in enumerate(labels):
            padded[i, : len(ids)] = ids
        return torch.from_numpy(padded) if return_tensors == "pt" else padded

    def __call__(
        self,
        audio: Any = None,
        text: str | list[str] | None = None,
        sampling_rate: int | None = None,
        return_tensors: str | None = None,
        **kwargs: Any,
    ) -> BatchFeature:
        """Featurize `audio` (a 1-D array or a list) and tokenize `text` (a caption or a list) into `labels`.

        Extra kwargs go to the feature extractor (padding, max_length, truncation, pad_to_multiple_of,
        return_attention_mask). Labels start with the first word (no `<sos>`/`<s>`), end with eos, and are padded
        with -100 when `return_tensors` is set.
        """
        if audio is None and text is None:
            raise ValueError("AudioCapProcessor needs audio=, text= or both")
        if return_tensors not in (None, "pt", "np"):
            raise ValueError(f"return_tensors must be None, 'pt' or 'np', got {return_tensors!r}")
        data: dict[str, Any] = {}
        if audio is not None:
            data.update(
                self.feature_extractor(audio, sampling_rate=sampling_rate, return_tensors=return_tensors, **kwargs)
            )
        if text is not None:
            labels = self._labels(text, return_tensors)
            if audio is not None and return_tensors is not None and len(labels) != len(data["input_features"]):
                raise ValueError(f"got {len(data['input_features'])} audio clips but {len(labels)} captions")
            data["labels"] = labels
        return BatchFeature(data)

    def batch_decode(self, sequences: Any, skip_special_tokens: bool = True, **kwargs: Any) -> list[str]:
        """Decode generated ids (or labels: -100 is dropped) to captions, without special tokens."""
        return self.tokenizer.batch_decode(
            _drop_label_pad(sequences), skip_special_tokens=skip_special_tokens, **kwargs
        )

    def decode(self, token_ids: Any, skip_special_tokens: bool = True, **kwargs: Any) -> str:
        """Decode one sequence of ids to a caption, without special tokens."""
        return self.tokenizer.decode(_drop_label_pad(token_ids), skip_special_tokens=skip_special_tokens, **kwargs)

    @property
    def model_input_names(self) -> list[str]:
        return list(self.feature_extractor.model_input_names)


def _drop_label_pad(ids: Any) -> Any:
    if isinstance(ids, (torch.Tensor, np.ndarray)):
        ids = ids.tolist()
    if isinstance(ids, list) and ids and isinstance(ids[0], list):
        return [[i for i in row if i != LABEL_PAD] for row in ids]
    if isinstance(ids, list):
        return [i for i in ids if i != LABEL_PAD]
    return ids
