"""What the app's events call (`CaptionService`): decoding checks, batched captions, n-best, spectrogram, live windows;
the process-wide memory settings of a long-running server (`bound_native_memory`) and its launch with safe defaults
(`launch`).

Every caption goes through the shared `Captioner`, as in the CLI and the pipeline: the same decoding checks and windows
(`Captioner.open_windows`: a recording longer than 30 s is captioned window by window and the windows' captions joined,
`join_captions`), so an upload gets the caption the CLI and the pipeline give. Requests are decoded in their own
threads; their waveforms then share forward passes (`_Batcher`: up to `MAX_BATCH_SIZE` at once, requests arriving
while one pass runs go together in the next), and a bad upload gets its own one-line error only.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path

import numpy as np

from hf_audiocap.inference.captioner import DEFAULT_WINDOW_S, join_captions

MAX_DURATION_S = 120.0
MAX_FILE_SIZE = "20mb"
MAX_BATCH_SIZE = 16
LIVE_WINDOW_S = 5.0
LIVE_HOP_S = 1.0
LIVE_HISTORY = 200
MALLOC_TRIM_EVERY_S = 10.0
# a clip whose loudest sample is below this (-80 dBFS) holds no sound to describe: captioned, with a warning
SILENCE_PEAK = 1e-4


class CaptionService:
    """What the app's events call: decoding checks, batched captions, n-best, spectrogram, live windows."""

    def __init__(self, captioner, max_duration_s: float = MAX_DURATION_S, upload_dirs=None):
        self.captioner = captioner
        self.max_duration_s = max_duration_s
        # When set (the app sets Gradio's upload folder), a path outside these folders is refused before it is opened,
        # whatever a client sends (Gradio itself already refuses such paths; this does not rely on it).
        self.upload_dirs = None if upload_dirs is None else [os.path.realpath(d) for d in upload_dirs]
        gen = captioner.model.generation_config
        self.defaults = {
            "num_beams": int(gen.num_beams or 1),
            "max_length": int(gen.max_length or 30),
            "repetition_penalty": float(gen.repetition_penalty or 1.0),
            "no_repeat_ngram_size": int(gen.no_repeat_ngram_size or 0),
            "no_repeat_content_words": bool(getattr(gen, "no_repeat_content_words", False)),
            "style": (captioner.styles or [None])[0],
        }
        self.lock = threading.Lock()  # one forward pass at a time: the CPU is shared between the tabs' events
        self.batcher = _Batcher(self._run_group, max_batch=captioner.batch_size or MAX_BATCH_SIZE)

    # -- decoding settings ------------------------------------------------------------------------------------------
    def generate_kwargs(
        self,
        num_beams=None,
        max_length=None,
        repetition_penalty=None,
        no_repeat_ngram_size=None,
        no_repeat_content_words=None,
        style=None,
    ):
        """Only the settings that differ from the model's own, so defaults give the CLI's and pipeline's caption."""
        self.captioner.check_style(style or None)
        asked = {
            "style": style or None,
            "num_beams": None if num_beams is None else int(num_beams),
            "max_length": None if max_length is None else int(max_length),
            "repetition_penalty": None if repetition_penalty is None else float(repetition_penalty),
            "no_repeat_ngram_size": None if no_repeat_ngram_size is None else int(no_repeat_ngram_size),
            "no_repeat_content_words": None if no_repeat_content_words is None else bool(no_repeat_content_words),
        }
        return {k: v for k, v in asked.items() if v is not None and v != self.defaults[k]}

    # -- audio ------------------------------------------------------------------------------------------------------
    def windows(self, path) -> list[np.ndarray]:
        """The waveforms of an upload's windows, decoded and cut as the CLI and the pipeline do
        (`Captioner.open_windows`), or ValueError with one line naming the file."""
        name = self._upload_name(path)
        _, windows = self.captioner.open_windows(path, DEFAULT_WINDOW_S, max_duration=self.max_duration_s, name=name)
        return [wave for _, _, wave in windows]

    def check(self, path) -> None:
        """What `windows` refuses before decoding a sample, or ValueError with its one line: not an upload, an
        unreadable header, too long, too short to caption (a short clip is decoded whole for it)."""
        name = self._upload_name(path)
        self.captioner.open_windows(path, DEFAULT_WINDOW_S, max_duration=self.max_duration_s, name=name)

    def load(self, path) -> np.ndarray:
        """The whole waveform of an upload (for the n-best list and the spectrogram), with the same checks."""
        from hf_audiocap.data.audio import load_audio

        name = self._upload_name(path)
        return load_audio(path, self.captioner.sampling_rate, max_duration=self.max_duration_s, name=name)

    def _upload_name(self, path) -> str:
        if path is None or path == "":
            raise ValueError("no audio: upload a file or record one first")
        name = Path(path).name
        if not self.is_upload(path):
            raise ValueError(f"cannot decode {name!r}: not an uploaded file (outside the app's upload folder)")
        return name

    def is_upload(self, path) -> bool:
        """Whether `path` lies inside the upload folders (always True when none were set)."""
        if self.upload_dirs is None:
            return True
        real = os.path.realpath(os.fspath(path))
        return any(os.path.commonpath([real, d]) == d for d in self.upload_dirs)

    # -- events -----------------------------------------------------------------------------------------------------
    def caption(
        self,
        path,
        num_beams=None,
        max_length=None,
        repetition_penalty=None,
        no_repeat_ngram_size=None,
        no_repeat_content_words=None,
        style=None,
    ):
        """The `/caption` event: one upload in, `(caption, error)` out. The upload is decoded in the request's own
        thread; its windows then join the next forward pass (`_Batcher`): requests that arrive while one runs share
        the next, so simultaneous users share forward passes. A bad upload only gets its own error. A recording longer
        than one window gets its windows' captions joined, as from the pipeline.

        Not a Gradio `batch=True` function on purpose: Gradio prepares a batch's requests together, so one request
        with an invalid payload (a path outside the upload folder, a malformed file object) failed every request of
        its batch; here each request stands alone until its waveform is ready."""
        try:
            waves = self.windows(path)
            kwargs = self.generate_kwargs(
                num_beams, max_length, repetition_penalty, no_repeat_ngram_size, no_repeat_content_words, style
            )
        except ValueError as err:
            return "", str(err)
        return _joined(self.batcher.submit(waves, tuple(sorted(kwargs.items()))))

    def _run_group(self, waves: list[np.ndarray], key: tuple) -> list[tuple[str, str]]:
        """`(caption, error)` per waveform of one forward pass with the decoding settings `key`."""
        try:
            with self.lock:
                texts = self.captioner.caption_arrays(waves, **dict(key))
        except Exception as err:  # noqa: BLE001 - e.g. invalid decoding settings: report, keep serving
            message = f"captioning failed: {type(err).__name__}: {' '.join(str(err).split())}"
            return [("", message)] * len(waves)
        return [(text, "") for text in texts]

    def details(
        self,
        path,
        num_beams,
        max_length,
        repetition_penalty,
        no_repeat_ngram_size,
        n_best,
        wave=None,
        no_repeat_content_words=None,
        rerank=None,
        style=None,
    ):
        """n-best rows `[caption, score]`, the log-mel spectrogram as an RGB image, and the decoding settings (of
        `wave` when the upload is already decoded). With reranking (`rerank`, else the Captioner's or the model's
        setting), every candidate as `[chosen mark, caption, each scorer's score..., total]` (`nbest_headers`)."""
        wave = self.load(path) if wave is None else wave
        kwargs = self.generate_kwargs(
            num_beams, max_length, repetition_penalty, no_repeat_ngram_size, no_repeat_content_words, style
        )
        if rerank is not None:
            kwargs["rerank"] = rerank
        if self.reranking(rerank) is not None:
            with self.lock:
                reranked = self.captioner.caption_nbest(
                    wave, num_return_sequences=int(n_best), return_candidates=True, **kwargs
                )
            rows = [
                ["✓" if i == reranked.chosen else "", text]
                + [round(s[i], 4) for s in reranked.scores.values()]
                + [round(reranked.total[i], 4)]
                for i, text in enumerate(reranked.candidates)
            ]
            return rows, self.spectrogram(wave), json.dumps({**self.defaults, **kwargs}, sort_keys=True, default=str)
        with self.lock:
            nbest = self.captioner.caption_nbest(wave, num_return_sequences=int(n_best), **kwargs)
        rows = [[text, round(score, 4)] for text, score in nbest]
        settings = {**self.defaults, **kwargs}
        return rows, self.spectrogram(wave), json.dumps(settings, sort_keys=True)

    def reranking(self, rerank=None):
        """The reranking settings the n-best table shows (`rerank`, else the Captioner's or the model's), or None."""
        from hf_audiocap.rerank import RerankSettings

        asked = {**self.captioner.generate_kwargs, **({} if rerank is None else {"rerank": rerank})}
        return RerankSettings.pop_from(asked, self.captioner.model.generation_config)

    def nbest_headers(self, rerank=None) -> list[str]:
        """The n-best table's columns: `caption, score`, or with reranking `chosen, caption, <scorer>..., total`."""
        settings = self.reranking(rerank)
        if settings is None:
            return ["caption", "score"]
        return ["chosen", "caption", *[name for name, w in settings.weights.items() if w > 0], "total"]

    def spectrogram(self, wave: np.ndarray) -> np.ndarray:
        """The model's own log-mel input as an image: low frequencies at the bottom, magma colours."""
        from matplotlib import colormaps

        fe = self.captioner.processor.feature_extractor
        feats = fe(wave, sampling_rate=self.captioner.sampling_rate, return_tensors="np")["input_features"][0]
        lo, hi = np.percentile(feats, 1), np.percentile(feats, 99.5)
        img = np.clip((feats - lo) / max(hi - lo, 1e-6), 0, 1)[::-1]
        rgb = (colormaps["magma"](img)[..., :3] * 255).astype(np.uint8)
        return np.repeat(rgb, 3, axis=0)  # 80 mel bands -> 240 px high

    def live_step(self, chunk, state: dict | None, window_s: float = LIVE_WINDOW_S, hop_s: float = LIVE_HOP_S):
        """One microphone chunk `(sr, int16 samples)` in; the current caption, the history rows and the new state out.
        The state keeps the last `window_s` seconds at the model's rate; a caption is made every `hop_s` seconds."""
        from hf_audiocap.data.audio import load_audio

        sr_model = self.captioner.sampling_rate
        state = dict(state or {"buffer": np.zeros(0, np.float32), "t": 0.0, "next": 0.0, "history": [], "caption": ""})
        if chunk is None:
            return state["caption"], state["history"], state
        sr, data = chunk
        data = np.asarray(data)
        if data.size == 0 or not sr:
            return state["caption"], state["history"], state
        wave = load_audio((data, int(sr)), sr_model, name="microphone")
        keep = int(window_s * sr_model)
        state["buffer"] = np.concatenate([state["buffer"], wave])[-keep:]
        state["t"] += wave.shape[0] / sr_model
        if state["t"] + 1e-6 >= state["next"] and state["buffer"].shape[0] >= int(0.5 * sr_model):
            with self.lock:
                caption = self.captioner.caption_arrays([state["buffer"]])[0]
            start = max(0.0, state["t"] - state["buffer"].shape[0] / sr_model)
            state["caption"] = caption
            state["history"] = [[_clock(start), _clock(state["t"]), caption], *state["history"]][:LIVE_HISTORY]
            state["next"] = state["t"] + hop_s - 0.25 * hop_s  # chunks arrive about every hop: do not skip one
        return state["caption"], state["history"], state


class _Batcher:
    """Groups waveforms submitted from many threads into forward passes: one worker thread takes everything queued
    (at most `max_batch`, grouped by decoding settings) each time it is free, so a request arriving while the model is
    idle runs at once and requests arriving while it is busy share the next pass."""

    def __init__(self, run, max_batch: int):
        import queue

        self._run, self._max = run, max(1, int(max_batch))
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self._start = threading.Lock()

    def submit(self, waves: list[np.ndarray], key: tuple) -> list[tuple[str, str]]:
        """Blocks until the waveforms (one request's windows) have been captioned: `(caption, error)` each."""
        items = [
            {"wave": w, "key": key, "done": threading.Event(), "result": ("", "captioning failed")} for w in waves
        ]
        with self._start:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._loop, name="caption-batcher", daemon=True)
                self._worker.start()
        for item in items:
            self._queue.put(item)
        for item in items:
            item["done"].wait()
        return [item["result"] for item in items]

    def _loop(self) -> None:
        import queue

        while True:
            batch = [self._queue.get()]
            while len(batch) < self._max:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            groups: dict[tuple, list[dict]] = {}
            for item in batch:
                groups.setdefault(item["key"], []).append(item)
            for key, items in groups.items():
                try:
                    results = self._run([it["wave"] for it in items], key)
                except BaseException as err:  # noqa: BLE001 - the worker must outlive any failure
                    results = [("", f"captioning failed: {type(err).__name__}: {err}")] * len(items)
                for item, result in zip(items, results):
                    item["result"] = result
                    item["wave"] = None
                    item["done"].set()


def _joined(window_results: list[tuple[str, str]]) -> tuple[str, str]:
    """One request's `(caption, error)` from its windows': the first error, else the captions joined."""
    errors = [err for _, err in window_results if err]
    if errors:
        return "", errors[0]
    return join_captions([caption for caption, _ in window_results]), ""


def _clock(seconds: float) -> str:
    m, s = divmod(seconds, 60)
    return f"{int(m):02d}:{s:04.1f}"


def bound_native_memory(trim_every_s: float = MALLOC_TRIM_EVERY_S) -> dict:
    """What keeps the server's native memory flat under load; process-wide, so only `python app.py` does it.

    1. Convolutions and GELU run with PyTorch's own CPU kernels instead of oneDNN's (unless HF_AUDIOCAP_ONEDNN=1).
       oneDNN compiles and caches kernels per input shape (up to 1024), and a server sees a new shape with almost
       every forward pass (clip lengths and batch sizes vary), so that cache keeps growing.
    2. Every `trim_every_s` seconds, glibc's `malloc_trim(0)` hands freed heap pages back to the system: decoding
       clips of every length in 16 request threads leaves freed memory in glibc's arenas, which RSS keeps counting.
    The measurements behind both: docs/experiments.md ("App memory under load"). Returns what was done."""
    import ctypes
    import ctypes.util

    import torch

    done = {"onednn_off": False, "malloc_trim_every_s": None}
    if os.environ.get("HF_AUDIOCAP_ONEDNN", "").lower() not in ("1", "true", "yes"):
        torch.backends.mkldnn.enabled = False
        done["onednn_off"] = True
    libc_name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(libc_name) if libc_name and sys.platform.startswith("linux") else None
    if trim_every_s and libc is not None and hasattr(libc, "malloc_trim"):

        def trim() -> None:
            while True:
                threading.Event().wait(trim_every_s)
                libc.malloc_trim(0)

        threading.Thread(target=trim, name="malloc-trim", daemon=True).start()
        done["malloc_trim_every_s"] = trim_every_s
    return done


def launch(demo, host: str = "127.0.0.1", port: int | None = None, share: bool = False, **kwargs):
    """Launches with the safe defaults: loopback, no share link, a maximum upload size."""
    return demo.launch(
        server_name=host,
        server_port=port,
        share=share,
        max_file_size=kwargs.pop("max_file_size", MAX_FILE_SIZE),
        ssr_mode=False,
        show_error=True,
        # Gradio keeps every browser/client session's state in memory, 10,000 sessions by default: 1,000 here
        state_session_capacity=kwargs.pop("state_session_capacity", 1000),
        **kwargs,
    )
