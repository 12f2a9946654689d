"""One inference path for every entry point (evaluate.py, the CLI, the app, the pipeline):
waveforms -> log-mels -> generate -> text, batched, with the model's saved generation settings."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from hf_audiocap.data.audio import AudioDecodeError, audio_info, iter_audio_windows, load_audio

# Recordings longer than this are captioned window by window (the CLI, the pipeline and the app share it).
DEFAULT_WINDOW_S = 30.0


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

        processor = AutoProcessor.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
        model = AutoModelForSpeechSeq2Seq.from_pretrained(
            name_or_path, trust_remote_code=trust_remote_code, use_safetensors=True
        )
        model.eval()
        return cls(model=model, processor=processor, **kwargs)

    @property
    def sampling_rate(self) -> int:
        return self.processor.feature_extractor.sampling_rate

    @torch.inference_mode()
    def caption_arrays(self, waves: Sequence[np.ndarray], return_scores: bool = False, **generate_kwargs):
        """Captions for mono float waveforms at `self.sampling_rate`, in order."""
        kwargs = {**self.generate_kwargs, **generate_kwargs}
        captions, scores = [], []
        for start in range(0, len(waves), self.batch_size):
            chunk = list(waves[start : start + self.batch_size])
            inputs = self.processor(audio=chunk, sampling_rate=self.sampling_rate, return_tensors="pt")
            inputs = {k: v.to(self.model.device) for k, v in inputs.items() if k != "labels"}
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
        """`(duration_s, windows)` of an audio source, windows being `(start_s, end_s, wave)` (see
        :func:`open_source_windows`)."""
        return open_source_windows(source, self.sampling_rate, window_s, hop_s, max_duration=max_duration, name=name)

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
        self, wave: np.ndarray, num_return_sequences: int = 5, **generate_kwargs
    ) -> list[tuple[str, float]]:
        """The n best `(caption, score)` of one waveform by beam search (score: length-normalised log-probability,
        as beam search ranks them), best first; duplicates after decoding are merged."""
        kwargs = {**self.generate_kwargs, **generate_kwargs}
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


def array_windows(
    wave: np.ndarray, sampling_rate: int, window_s: float | None, hop_s: float | None = None, min_last_s: float = 1.0
) -> Iterator[tuple[float, float, np.ndarray]]:
    """`(start_s, end_s, wave)` windows of an in-memory waveform, with exactly the rules of
    :func:`hf_audiocap.data.audio.iter_audio_windows` (windows every `hop_s`; a final partial window when it covers new
    audio and lasts at least `min_last_s`; a clip shorter than one window is one window). `window_s=None`: one window."""
    n = int(wave.shape[0])
    if window_s is None:
        yield 0.0, n / sampling_rate, wave
        return
    hop_s = window_s if hop_s is None else hop_s
    if window_s <= 0 or hop_s <= 0:
        raise ValueError(f"window_s and hop_s must be > 0 (got {window_s}, {hop_s})")
    win, hop = int(round(window_s * sampling_rate)), int(round(hop_s * sampling_rate))
    min_last = max(1, int(round(min_last_s * sampling_rate)))
    start = covered = 0
    while start + win <= n:
        yield start / sampling_rate, (start + win) / sampling_rate, wave[start : start + win]
        covered = start + win
        start += hop
    if n > covered and start < n and (n - start >= min_last or covered == 0):
        yield start / sampling_rate, n / sampling_rate, wave[start:]


def open_source_windows(
    source,
    sampling_rate: int,
    window_s: float | None = DEFAULT_WINDOW_S,
    hop_s: float | None = None,
    max_duration: float | None = None,
    name: str | None = None,
) -> tuple[float, Iterator[tuple[float, float, np.ndarray]]]:
    """`(duration_s, windows)` of any audio source; decoding errors are raised here or while iterating.

    A file on disk longer than `window_s` is streamed from disk in blocks (:func:`iter_audio_windows`: memory does not
    grow with its length); anything else is decoded whole by :func:`load_audio` (so a clip is decoded the same way
    wherever it is captioned) and cut by :func:`array_windows`. `max_duration` is checked from the header before any
    sample is decoded."""
    if isinstance(source, (str, os.PathLike)) and window_s is not None:
        sr, frames, _ = audio_info(source, name=name)
        duration = frames / sr if sr else 0.0
        if max_duration is not None and duration > max_duration:
            raise AudioDecodeError(
                f"cannot decode {name or os.fspath(source)!r}: duration {duration:.1f} s exceeds "
                f"max_duration={max_duration:g} s"
            )
        if duration > window_s:
            return duration, iter_audio_windows(source, window_s, hop_s, sampling_rate=sampling_rate)
    wave = load_audio(source, sampling_rate, max_duration=max_duration, name=name)
    return wave.shape[0] / sampling_rate, array_windows(wave, sampling_rate, window_s, hop_s)
