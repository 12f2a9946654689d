"""One inference path for every entry point (evaluate.py, the CLI, the app, the pipeline):
audio -> windows -> log-mels -> generate -> text, batched, with the model's saved generation settings.

The CLI and the app load their model with :func:`load_captioner`, decode and window every file with
:meth:`Captioner.open_windows` (the checks and windowing rule of :mod:`hf_audiocap.data.audio`), and the pipeline and
the app give one caption per recording with :func:`join_captions`: a file gets the same caption wherever it is asked
for.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from hf_audiocap.configuration_audiocap import resolve_style
from hf_audiocap.data.audio import array_windows, load_audio, open_audio_windows
from hf_audiocap.feature_extraction_audiocap import too_short_for
from hf_audiocap.generation import apply_repetition_control
from hf_audiocap.hub import PretrainedUnavailableError, check_pretrained
from hf_audiocap.rerank import KEYS as RERANK_KEYS
from hf_audiocap.rerank import Reranked, RerankSettings, generate_candidates, rerank_candidates

__all__ = ["DEFAULT_MODEL", "DEFAULT_WINDOW_S", "Captioner", "array_windows", "join_captions", "load_captioner"]

# Recordings longer than this are captioned window by window (the CLI, the pipeline and the app share it).
DEFAULT_WINDOW_S = 30.0
# What `make demo` trains, and what the CLI and the app load unless told otherwise.
DEFAULT_MODEL = "outputs/realsounds-demo"


@dataclass
class Captioner:
    model: torch.nn.Module
    processor: object
    batch_size: int = 16
    generate_kwargs: dict = field(default_factory=dict)

    @classmethod
    def from_pretrained(cls, name_or_path: str, trust_remote_code: bool = False, **kwargs) -> Captioner:
        """Loads a saved model folder or Hub id (safetensors only; remote code only when asked)."""
        from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor

        import hf_audiocap  # noqa: F401  (registers the Auto classes)

        check_pretrained(name_or_path)
        processor = AutoProcessor.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
        model = AutoModelForSpeechSeq2Seq.from_pretrained(
            name_or_path, trust_remote_code=trust_remote_code, use_safetensors=True
        )
        model.eval()
        return cls(model=model, processor=processor, **kwargs)

    @property
    def sampling_rate(self) -> int:
        return self.processor.feature_extractor.sampling_rate

    def _generate_kwargs(self, generate_kwargs: dict) -> dict:
        """The Captioner's settings, then the call's, with `no_repeat_content_words` (the call's, else the model's
        generation config's) turned into its logits processor (:mod:`hf_audiocap.generation`) and `style` checked
        against the model's (:meth:`check_style`)."""
        kwargs = {**self.generate_kwargs, **generate_kwargs}
        if kwargs.get("style") is None:
            kwargs.pop("style", None)
        else:
            self.check_style(kwargs["style"])
        return apply_repetition_control(kwargs, self.model.generation_config, self.processor.tokenizer)

    @property
    def styles(self) -> list[str]:
        """The styles the model was trained with (docs/mixtures.md), the default first; empty without styles."""
        styles = list(getattr(self.model.config, "styles", None) or [])
        default = getattr(self.model.config, "default_style", None)
        return [default, *(s for s in styles if s != default)] if default in styles else styles

    def check_style(self, style: str | None) -> None:
        """One-line ValueError for a style the model does not have (or any style, for a model without styles)."""
        if style is not None:  # the check the model's own config makes (either model kind)
            resolve_style(getattr(self.model.config, "styles", None), style)

    def check_rerank(self, generate_kwargs: dict | None = None) -> None:
        """Loads what reranking with these settings (else the Captioner's, completed by the model's saved ones) needs,
        a CLAP model say: a bad folder is one line before any clip, not at the first caption. Companion settings
        (`rerank_evidence`, ...) asked for where nothing is reranked are refused in one line rather than ignored."""
        kwargs = {**self.generate_kwargs, **(generate_kwargs or {})}
        asked = [key for key in RERANK_KEYS[1:] if kwargs.get(key) is not None]
        settings = RerankSettings.pop_from(kwargs, self.model.generation_config)
        if settings is not None:
            settings.load()
        elif asked and kwargs.get("rerank") is None:
            raise ValueError(
                f"{', '.join(asked)} given without rerank, and this model saved none: nothing would be reranked; "
                "add rerank (e.g. mbr)"
            )

    @torch.inference_mode()
    def caption_arrays(self, waves: Sequence[np.ndarray], return_scores: bool = False, **generate_kwargs):
        """Captions for mono float waveforms at `self.sampling_rate`, in order."""
        captions, scores = [], []
        for start in range(0, len(waves), self.batch_size):
            chunk = list(waves[start : start + self.batch_size])
            inputs = self.processor(audio=chunk, sampling_rate=self.sampling_rate, return_tensors="pt")
            inputs = {k: v.to(self.model.device) for k, v in inputs.items() if k != "labels"}
            kwargs = self._generate_kwargs(generate_kwargs)  # a fresh repetition processor per call
            settings = RerankSettings.pop_from(kwargs, self.model.generation_config)
            if settings is not None:  # k candidates per clip, one picked (hf_audiocap.rerank)
                reranked = self._rerank(chunk, inputs, settings, kwargs)
                captions.extend(r.caption for r in reranked)
                scores.extend(r.total[r.chosen] for r in reranked)
                continue
            if return_scores:
                out = self.model.generate(**inputs, return_dict_in_generate=True, output_scores=True, **kwargs)
                sequences = out.sequences
                seq_scores = getattr(out, "sequences_scores", None)
                if seq_scores is None:
                    seq_scores = self.model.compute_transition_scores(out.sequences, out.scores).sum(-1)
                scores.extend(float(s) for s in seq_scores.reshape(len(chunk), -1)[:, 0])
            else:
                sequences = self.model.generate(**inputs, **kwargs)
            texts = self.processor.batch_decode(sequences, skip_special_tokens=True)
            captions.extend(t.strip() for t in texts)
        return (captions, scores) if return_scores else captions

    @torch.inference_mode()
    def caption_candidates(self, waves: Sequence[np.ndarray], **generate_kwargs) -> list[Reranked]:
        """Every clip's candidates with each scorer's scores and the chosen one (:class:`hf_audiocap.rerank.Reranked`),
        by the call's `rerank*` settings, else the model's saved ones, else `rerank="logprob"` (the beam n-best)."""
        results = []
        for start in range(0, len(waves), self.batch_size):
            chunk = list(waves[start : start + self.batch_size])
            inputs = self.processor(audio=chunk, sampling_rate=self.sampling_rate, return_tensors="pt")
            inputs = {k: v.to(self.model.device) for k, v in inputs.items() if k != "labels"}
            kwargs = self._generate_kwargs(generate_kwargs)
            settings = RerankSettings.pop_from(kwargs, self.model.generation_config, default="logprob")
            results.extend(self._rerank(chunk, inputs, settings, kwargs))
        return results

    def _rerank(self, waves: list[np.ndarray], inputs: dict, settings: RerankSettings, kwargs: dict) -> list[Reranked]:
        batch = generate_candidates(self.model, inputs, settings, kwargs, self.processor.tokenizer)
        return rerank_candidates(batch.texts, settings, batch.logprobs, waves, self.sampling_rate, batch.evidence)

    def caption_sources(self, sources: Iterable, max_duration: float | None = None, **generate_kwargs) -> list[str]:
        """Captions for audio references (paths, bytes, {path, bytes} dicts), decoded by `data.audio` one
        batch at a time so memory holds one batch of audio, not the whole set."""
        sources, captions = list(sources), []
        for start in range(0, len(sources), self.batch_size):
            batch = sources[start : start + self.batch_size]
            waves = [load_audio(s, self.sampling_rate, max_duration=max_duration) for s in batch]
            captions.extend(self.caption_arrays(waves, **generate_kwargs))
        return captions

    # ------------------------------------------------------------------------------------------------------------
    # Windowing: long recordings are captioned window by window, the same way for every entry point.
    # ------------------------------------------------------------------------------------------------------------
    def caption_windows(self, windows: Iterable[tuple], **generate_kwargs) -> Iterator[tuple]:
        """`(key, start_s, end_s, caption)` for a stream of `(key, start_s, end_s, wave)` windows, in order.

        The stream is consumed lazily, `batch_size` windows at a time (windows of different sources share a batch),
        so memory holds one batch of audio however long the stream is."""
        batch: list[tuple] = []
        for item in windows:
            batch.append(item)
            if len(batch) == self.batch_size:
                yield from self._caption_window_batch(batch, generate_kwargs)
                batch = []
        if batch:
            yield from self._caption_window_batch(batch, generate_kwargs)

    def _caption_window_batch(self, batch: list[tuple], generate_kwargs: dict) -> Iterator[tuple]:
        captions = self.caption_arrays([w for _, _, _, w in batch], **generate_kwargs)
        for (key, start, end, _), caption in zip(batch, captions):
            yield key, start, end, caption

    def open_windows(
        self,
        source,
        window_s: float | None = DEFAULT_WINDOW_S,
        hop_s: float | None = None,
        max_duration: float | None = None,
        name: str | None = None,
    ) -> tuple[float, Iterator[tuple[float, float, np.ndarray]]]:
        """`(duration_s, windows)` of an audio source, windows being `(start_s, end_s, wave)` at the model's rate
        (:func:`hf_audiocap.data.audio.open_audio_windows`: a long file is streamed from disk)."""
        duration, windows = open_audio_windows(
            source, self.sampling_rate, window_s, hop_s, max_duration=max_duration, name=name
        )
        extractor = self.processor.feature_extractor
        window = getattr(extractor, "win_length", None) or getattr(extractor, "n_fft", 0)
        too_short = too_short_for(round(duration * self.sampling_rate), window, self.sampling_rate)
        if too_short:
            label = name or (os.fspath(source) if isinstance(source, (str, os.PathLike)) else "the audio")
            raise ValueError(f"cannot caption {label!r}: it {too_short}")
        return duration, windows

    def caption_source(
        self,
        source,
        window_s: float | None = DEFAULT_WINDOW_S,
        hop_s: float | None = None,
        max_duration: float | None = None,
        name: str | None = None,
        **generate_kwargs,
    ) -> dict:
        """`{"duration": s, "segments": [{"start", "end", "caption"}]}` for one source (path, bytes, dict,
        `(array, sr)`); a file longer than the window is streamed from disk window by window."""
        duration, windows = self.open_windows(source, window_s, hop_s, max_duration, name)
        segments = [
            {"start": round(s, 3), "end": round(e, 3), "caption": c}
            for _, s, e, c in self.caption_windows(((None, s, e, w) for s, e, w in windows), **generate_kwargs)
        ]
        return {"duration": round(duration, 3), "segments": segments}

    @torch.inference_mode()
    def caption_nbest(
        self, wave: np.ndarray, num_return_sequences: int = 5, return_candidates: bool = False, **generate_kwargs
    ) -> list[tuple[str, float]] | Reranked:
        """The n best `(caption, score)` of one waveform by beam search (score: length-normalised log-probability,
        as beam search ranks them), best first; duplicates after decoding are merged.

        With reranking (the call's `rerank*` settings or the model's saved ones, :mod:`hf_audiocap.rerank`), the
        reranker's candidates by combined score, the chosen one first. `return_candidates=True` returns the
        :class:`~hf_audiocap.rerank.Reranked` itself: every candidate, each scorer's scores and the chosen one
        (without reranking asked: `rerank="logprob"` over `num_return_sequences` beam candidates, at least 2)."""
        if return_candidates or RerankSettings.pop_from(dict(generate_kwargs), self.model.generation_config):
            generate_kwargs.setdefault("rerank_candidates", max(2, int(num_return_sequences)))
            (reranked,) = self.caption_candidates([wave], **generate_kwargs)
            if return_candidates:
                return reranked
            order = sorted(range(len(reranked.candidates)), key=lambda i: (i != reranked.chosen, -reranked.total[i]))
            return [(reranked.candidates[i], reranked.total[i]) for i in order]
        kwargs = self._generate_kwargs(generate_kwargs)
        num_beams = max(int(kwargs.pop("num_beams", None) or self.model.generation_config.num_beams or 1), 1)
        n = max(1, min(int(num_return_sequences), num_beams))
        inputs = self.processor(audio=[wave], sampling_rate=self.sampling_rate, return_tensors="pt")
        inputs = {k: v.to(self.model.device) for k, v in inputs.items() if k != "labels"}
        out = self.model.generate(
            **inputs,
            num_beams=num_beams,
            num_return_sequences=n,
            return_dict_in_generate=True,
            output_scores=True,
            **kwargs,
        )
        scores = getattr(out, "sequences_scores", None)
        if scores is None:  # greedy: one sequence, its summed log-probability over its length
            scores = self.model.compute_transition_scores(out.sequences, out.scores).sum(-1)
            scores = scores / max(1, len(out.scores))
        texts = self.processor.batch_decode(out.sequences, skip_special_tokens=True)
        nbest: dict[str, float] = {}
        for text, score in zip(texts, scores.tolist()):
            nbest.setdefault(text.strip(), float(score))
        return list(nbest.items())


def join_captions(captions: Sequence[str]) -> str:
    """One caption for a recording from its windows' captions, in order: consecutive repeats merged, joined by "; "."""
    kept = [c for i, c in enumerate(captions) if i == 0 or c != captions[i - 1]]
    return "; ".join(kept)


def load_captioner(model: str = DEFAULT_MODEL, batch_size: int = 16, trust_remote_code: bool = False) -> Captioner:
    """The :class:`Captioner` of a saved model folder or Hub id, with a one-line error saying what to do when the
    model is missing or cannot be loaded (FileNotFoundError / ValueError)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no "Loading weights" bar in the middle of the output
    if model == DEFAULT_MODEL and not os.path.isdir(model):
        raise FileNotFoundError(f"no model at {model!r}: run `make demo` first to train one, or pass --model")
    looks_local = model.startswith((".", "/", "~")) or model.strip("/").count("/") > 1  # Hub ids are `org/name`
    if looks_local and not os.path.isdir(os.path.expanduser(model)):
        raise FileNotFoundError(f"model folder {model!r} not found")
    model = os.path.expanduser(model)
    try:
        return Captioner.from_pretrained(model, trust_remote_code=trust_remote_code, batch_size=batch_size)
    except PretrainedUnavailableError:  # already one line naming the model
        raise
    except (OSError, ValueError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if not trust_remote_code and "trust_remote_code" in str(err):
            reason = "it asks to run its own code, which runs only with --trust-remote-code (read that code first)"
        raise ValueError(f"cannot load model {model!r}: {reason}") from None
