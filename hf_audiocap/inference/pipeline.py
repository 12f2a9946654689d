"""The `audio-captioning` pipeline task of transformers, registered when `hf_audiocap` is imported.

    import hf_audiocap  # registers the task
    from transformers import pipeline

    captioner = pipeline("audio-captioning", model="outputs/realsounds-demo")
    captioner("clip.wav")                                   # {"caption": ..., "duration": ..., "segments": [...]}
    captioner({"array": wave, "sampling_rate": 44100})      # or (wave, 44100), or raw file bytes
    captioner("recording.wav", window_s=10, hop_s=5)        # one segment per window, with start/end seconds
    captioner("clip.wav", num_beams=5, max_length=20)       # any generate() argument
    captioner("clip.wav", no_repeat_content_words=True)     # never repeat a content word (hf_audiocap.generation)
    captioner("clip.wav", rerank="mbr", rerank_candidates=5)  # 5 candidates, the consensus one (hf_audiocap.rerank)

Everything runs through the shared :class:`~hf_audiocap.inference.captioner.Captioner` and its windowing, so a clip
gets the same caption here as with `hf-audiocap caption` and in the app: audio up to `window_s` seconds (default 30) is
captioned whole; a longer file on disk is streamed window by window with bounded memory.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from transformers import AutoModelForSpeechSeq2Seq, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from hf_audiocap import PIPELINE_TASK as TASK
from hf_audiocap.inference.captioner import DEFAULT_WINDOW_S, Captioner, join_captions

_PREPROCESS_KEYS = ("window_s", "hop_s", "max_duration")


class AudioCaptioningPipeline(Pipeline):
    """Audio in (a path, file bytes, `{"array", "sampling_rate"}`, `(array, sampling_rate)`, or a 1-D array at the
    model's sampling rate), caption out: `{"caption", "duration", "segments": [{"start", "end", "caption"}]}`.

    `caption` is the caption of the whole clip when it fits in one window; for longer audio it joins the windows'
    captions (consecutive repeats merged) with "; " (`join_captions`, as the app does). Parameters (at construction or
    per call): `window_s` (seconds, or None to caption the audio whole), `hop_s` (default: `window_s`), `max_duration`
    (refuse longer audio, checked from the header), `windows_per_batch`, and any `generate()` argument (`num_beams`,
    `max_length`, ...), or `no_repeat_content_words` (:mod:`hf_audiocap.generation`), or `rerank`,
    `rerank_candidates`, `rerank_sampling`, `rerank_clap_model`, `rerank_evidence` (:mod:`hf_audiocap.rerank`).
    """

    _load_processor = True
    _load_feature_extractor = False
    _load_tokenizer = False
    _load_image_processor = False
    _pipeline_calls_generate = False  # generation settings are the Captioner's: the model's generation config + ours

    def __init__(self, *args, **kwargs):
        self._windows_per_batch = kwargs.pop("windows_per_batch", 16)
        super().__init__(*args, **kwargs)
        self._captioner = None

    @property
    def captioner(self) -> Captioner:
        if self._captioner is None:
            self._captioner = Captioner(model=self.model, processor=self.processor, batch_size=self._windows_per_batch)
        return self._captioner

    def _sanitize_parameters(self, generate_kwargs: dict | None = None, **kwargs):
        preprocess = {key: kwargs.pop(key) for key in _PREPROCESS_KEYS if key in kwargs}
        forward = {"generate_kwargs": {**(generate_kwargs or {}), **kwargs}} if (generate_kwargs or kwargs) else {}
        return preprocess, forward, {}

    def __call__(self, inputs, **kwargs):
        """One input gives one result; a list gives a list (each input captioned in turn, its windows batched)."""
        if "windows_per_batch" in kwargs:
            self._windows_per_batch = kwargs.pop("windows_per_batch")
            self._captioner = None
        if isinstance(inputs, list):
            return [super(AudioCaptioningPipeline, self).__call__(x, **kwargs) for x in inputs]
        return super().__call__(inputs, **kwargs)

    def preprocess(self, inputs: Any, window_s: float | None = DEFAULT_WINDOW_S, hop_s=None, max_duration=None):
        if isinstance(inputs, os.PathLike):
            source = os.fspath(inputs)
        elif isinstance(inputs, (str, bytes, bytearray, memoryview, tuple)):
            source = inputs
        elif isinstance(inputs, dict):
            array = inputs.get("array", inputs.get("raw"))
            if array is not None:  # {"array"/"raw", "sampling_rate"} as in datasets and the ASR pipeline
                source = {"array": array, "sampling_rate": inputs.get("sampling_rate", inputs.get("sample_rate"))}
            else:
                source = inputs  # {"path", "bytes"} as stored by datasets.Audio(decode=False)
        elif isinstance(inputs, np.ndarray):
            source = (inputs, self.captioner.sampling_rate)  # a bare array is taken to be at the model's rate
        else:
            raise ValueError(
                f"audio-captioning: unsupported input type {type(inputs).__name__}; pass a path, bytes, "
                "{'array', 'sampling_rate'} or (array, sampling_rate)"
            )
        return {"source": source, "window_s": window_s, "hop_s": hop_s, "max_duration": max_duration}

    def _forward(self, model_inputs: dict, generate_kwargs: dict | None = None):
        source = model_inputs["source"]
        return self.captioner.caption_source(
            source,
            window_s=model_inputs["window_s"],
            hop_s=model_inputs["hop_s"],
            max_duration=model_inputs["max_duration"],
            **(generate_kwargs or {}),
        )

    def postprocess(self, model_outputs: dict) -> dict:
        segments = model_outputs["segments"]
        caption = join_captions([s["caption"] for s in segments])
        return {"caption": caption, "duration": model_outputs["duration"], "segments": segments}


def register_pipeline() -> None:
    """Registers the `audio-captioning` task with transformers' pipeline registry with this class (idempotent). It
    replaces the class's dotted name that `import hf_audiocap` registers, so the class also knows its task
    (`Pipeline.save_pretrained` writes it as a custom pipeline)."""
    registered = PIPELINE_REGISTRY.supported_tasks.get(TASK)
    if registered is not None and registered["impl"] is AudioCaptioningPipeline:
        return
    PIPELINE_REGISTRY.supported_tasks.pop(TASK, None)  # the name from `import hf_audiocap`: no "overwriting" warning
    PIPELINE_REGISTRY.register_pipeline(
        TASK,
        pipeline_class=AudioCaptioningPipeline,
        pt_model=AutoModelForSpeechSeq2Seq,
        type="multimodal",  # audio in, text out (as automatic-speech-recognition)
    )


register_pipeline()
