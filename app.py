"""Gradio app: caption a clip, caption the microphone live, and rate captions.

    python app.py                                   # the model of `make demo` (outputs/realsounds-demo)
    python app.py --model path/or/hub-id --port 7860 [--host 0.0.0.0] [--share] [--ratings outputs/ratings]

Tabs:
- "Caption a clip": upload or record; the caption, the n-best list with scores (beam search), the log-mel spectrogram,
  decoding controls, examples (held-out real recordings of `make demo`'s corpus when present), and a rating (good / wrong + an optional corrected
  caption) saved with a copy of the audio by Gradio's flagging (CSV) under `--ratings`
  (summarise with `python recipes/evaluate.py --ratings DIR`).
- "Live": streaming microphone; every hop (~1 s) the last window (~5 s) of a rolling buffer is captioned; the current
  caption and a timestamped history are shown.

API (gradio_client): `/caption` takes an audio file (and optional decoding settings) and returns `(caption, error)`;
up to 16 requests are decoded at once and their waveforms share forward passes (requests arriving while one pass runs
go together in the next), so simultaneous users share the model. A bad upload, or a request Gradio refuses, gives an
empty caption and a one-line `error` (or an error event) for that request only. Every caption goes through the shared
`Captioner` as in the CLI and the pipeline: the same model loading (`load_captioner`), the same decoding checks and
windows (`Captioner.open_windows`: a recording longer than 30 s is captioned window by window and the windows' captions
joined, `join_captions`), so an upload is captioned as by the CLI and the pipeline.

Safe defaults: binds 127.0.0.1 unless --host, no share link unless --share, uploads limited in size (--max-file-size)
and duration (--max-duration), Gradio analytics and Hub telemetry off. The model is loaded by `build_app`, not on
import. Files: only uploads (inside Gradio's upload folder) are read, whatever path a client sends (Gradio refuses
others, and the app checks again); the app writes only to Gradio's temporary folder (files older than 2 h are deleted
every 30 min) and to the --ratings folder (see docs/reliability.md).
"""

from __future__ import annotations

import os
import tempfile

# Before gradio / huggingface_hub are imported: nothing is reported anywhere.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
# Gradio keeps a small record of the last N events in memory (10,000 by default): 1,000 are plenty for its queue
# estimates and keep a long-running server's memory from growing for the first 10,000 requests.
os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", "1000")
# Gradio imports matplotlib around every event, which writes its font cache to ~/.cache/matplotlib: keep it in the
# temporary folder instead (unless the user chose a folder).
os.environ.setdefault(
    "MPLCONFIGDIR",
    os.path.join(os.environ.get("GRADIO_TEMP_DIR") or os.path.join(tempfile.gettempdir(), "gradio"), "matplotlib"),
)

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from hf_audiocap.inference.captioner import (  # noqa: E402
    DEFAULT_MODEL,
    DEFAULT_WINDOW_S,
    join_captions,
    load_captioner,
)

DEFAULT_RATINGS_DIR = "outputs/ratings"
# each held-out test recording of the real-sounds corpus alone: sounds the default model never heard in training
EXAMPLES_DIR = Path(__file__).resolve().parent / "data" / "realsounds" / "test_single"
MAX_FILE_SIZE = "20mb"
MAX_DURATION_S = 120.0
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
        }
        self.lock = threading.Lock()  # one forward pass at a time: the CPU is shared between the tabs' events
        self.batcher = _Batcher(self._run_group, max_batch=captioner.batch_size or MAX_BATCH_SIZE)

    # -- decoding settings ------------------------------------------------------------------------------------------
    def generate_kwargs(self, num_beams=None, max_length=None, repetition_penalty=None, no_repeat_ngram_size=None):
        """Only the settings that differ from the model's own, so defaults give the CLI's and pipeline's caption."""
        asked = {
            "num_beams": None if num_beams is None else int(num_beams),
            "max_length": None if max_length is None else int(max_length),
            "repetition_penalty": None if repetition_penalty is None else float(repetition_penalty),
            "no_repeat_ngram_size": None if no_repeat_ngram_size is None else int(no_repeat_ngram_size),
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
    def caption(self, path, num_beams=None, max_length=None, repetition_penalty=None, no_repeat_ngram_size=None):
        """The `/caption` event: one upload in, `(caption, error)` out. The upload is decoded in the request's own
        thread; its windows then join the next forward pass (`_Batcher`): requests that arrive while one runs share
        the next, so simultaneous users share forward passes. A bad upload only gets its own error. A recording longer
        than one window gets its windows' captions joined, as from the pipeline.

        Not a Gradio `batch=True` function on purpose: Gradio prepares a batch's requests together, so one request
        with an invalid payload (a path outside the upload folder, a malformed file object) failed every request of
        its batch; here each request stands alone until its waveform is ready."""
        try:
            waves = self.windows(path)
        except ValueError as err:
            return "", str(err)
        kwargs = self.generate_kwargs(num_beams, max_length, repetition_penalty, no_repeat_ngram_size)
        return _joined(self.batcher.submit(waves, tuple(sorted(kwargs.items()))))

    def caption_batch(self, paths, num_beams, max_length, repetition_penalty, no_repeat_ngram_size):
        """Lists in, `(captions, errors)` out (each request as :meth:`caption`, one forward pass per group of
        decoding settings when called from one thread)."""
        waves: dict[tuple, list[tuple[int, np.ndarray]]] = {}
        captions, errors = [""] * len(paths), [""] * len(paths)
        for i, path in enumerate(paths):
            try:
                windows = self.windows(path)
            except ValueError as err:
                errors[i] = str(err)
                continue
            kwargs = self.generate_kwargs(num_beams[i], max_length[i], repetition_penalty[i], no_repeat_ngram_size[i])
            waves.setdefault(tuple(sorted(kwargs.items())), []).extend((i, w) for w in windows)
        results: dict[int, list[tuple[str, str]]] = {}
        for key, items in waves.items():
            for (i, _), result in zip(items, self._run_group([w for _, w in items], key)):
                results.setdefault(i, []).append(result)
        for i, window_results in results.items():
            captions[i], errors[i] = _joined(window_results)
        return captions, errors

    def _run_group(self, waves: list[np.ndarray], key: tuple) -> list[tuple[str, str]]:
        """`(caption, error)` per waveform of one forward pass with the decoding settings `key`."""
        try:
            with self.lock:
                texts = self.captioner.caption_arrays(waves, **dict(key))
        except Exception as err:  # noqa: BLE001 - e.g. invalid decoding settings: report, keep serving
            message = f"captioning failed: {type(err).__name__}: {' '.join(str(err).split())}"
            return [("", message)] * len(waves)
        return [(text, "") for text in texts]

    def details(self, path, num_beams, max_length, repetition_penalty, no_repeat_ngram_size, n_best, wave=None):
        """n-best rows `[caption, score]`, the log-mel spectrogram as an RGB image, and the decoding settings (of
        `wave` when the upload is already decoded)."""
        wave = self.load(path) if wave is None else wave
        kwargs = self.generate_kwargs(num_beams, max_length, repetition_penalty, no_repeat_ngram_size)
        with self.lock:
            nbest = self.captioner.caption_nbest(wave, num_return_sequences=int(n_best), **kwargs)
        rows = [[text, round(score, 4)] for text, score in nbest]
        settings = {**self.defaults, **kwargs}
        return rows, self.spectrogram(wave), json.dumps(settings, sort_keys=True)

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


def build_app(
    model_path: str = DEFAULT_MODEL,
    ratings_dir: str | os.PathLike = DEFAULT_RATINGS_DIR,
    max_duration_s: float = MAX_DURATION_S,
    trust_remote_code: bool = False,
    captioner=None,
    examples_dir: str | os.PathLike | None = EXAMPLES_DIR,
):
    """The Blocks app (queue configured); loads the model unless a `captioner` is given."""
    import gradio as gr
    from gradio.utils import get_upload_folder

    if captioner is None:
        captioner = load_captioner(model_path, batch_size=MAX_BATCH_SIZE, trust_remote_code=trust_remote_code)
    service = CaptionService(captioner, max_duration_s=max_duration_s, upload_dirs=[get_upload_folder()])
    d = service.defaults
    ratings_dir = Path(ratings_dir)

    # delete_cache: every 30 min, uploads and rendered images older than 2 h leave the temporary folder (Gradio keeps
    # them until the server stops otherwise), so a long-running app does not fill the disk.
    with gr.Blocks(title="hf_audiocap: audio captioning", analytics_enabled=False, delete_cache=(1800, 7200)) as demo:
        gr.Markdown(
            f"# Audio captioning\nModel: `{model_path}`. An audio clip in, one English sentence out "
            f"(clips up to {max_duration_s:g} s)."
        )
        with gr.Tab("Caption a clip"):
            with gr.Row():
                with gr.Column():
                    audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Audio")
                    with gr.Accordion("Decoding", open=False):
                        num_beams = gr.Slider(1, 10, value=d["num_beams"], step=1, label="Beams")
                        max_length = gr.Slider(2, 100, value=d["max_length"], step=1, label="Max length (tokens)")
                        repetition_penalty = gr.Slider(
                            1.0, 2.0, value=d["repetition_penalty"], step=0.05, label="Repetition penalty"
                        )
                        no_repeat = gr.Slider(0, 5, value=d["no_repeat_ngram_size"], step=1, label="No-repeat n-gram")
                        n_best = gr.Slider(1, 10, value=5, step=1, label="n-best list size")
                    caption_btn = gr.Button("Caption", variant="primary")
                    examples = sorted(Path(examples_dir).glob("*.wav"))[::4][:8] if examples_dir else []
                    if examples:
                        gr.Examples([[str(p)] for p in examples], inputs=[audio], label="Held-out real recordings")
                    elif examples_dir:  # a fresh clone: the recordings are prepared, not committed
                        gr.Markdown(
                            f"No example recordings in `{examples_dir}`: `make demo` prepares them (or "
                            "`hf-audiocap prepare realsounds --root data/realsounds`).",
                            elem_id="examples-missing",
                        )
                with gr.Column():
                    caption = gr.Textbox(label="Caption", interactive=False, elem_id="caption")
                    error = gr.Textbox(label="Error", visible=False)
                    nbest = gr.Dataframe(
                        headers=["caption", "score"],
                        label="n-best (beam search)",
                        interactive=False,
                        wrap=True,
                        column_widths=["82%", "18%"],
                    )
                    spectrogram = gr.Image(label="Log-mel spectrogram", type="numpy", interactive=False)
                    decoding = gr.Textbox(label="Decoding", visible=False)
                    model_box = gr.Textbox(value=str(model_path), label="Model", visible=False)
                    with gr.Group():
                        gr.Markdown("**Is this caption right?**")
                        corrected = gr.Textbox(label="Corrected caption", placeholder="optional: what it should say")
                        with gr.Row():
                            good_btn = gr.Button("Good")
                            wrong_btn = gr.Button("Wrong")
                        rating_status = gr.Markdown(elem_id="rating-status")

        with gr.Tab("Live"):
            gr.Markdown(
                f"Speak or play sounds: every {LIVE_HOP_S:g} s the last {LIVE_WINDOW_S:g} s are captioned "
                "(model's decoding settings)."
            )
            mic = gr.Audio(sources=["microphone"], streaming=True, type="numpy", label="Microphone")
            live_caption = gr.Textbox(label="Now", interactive=False, elem_id="live-caption")
            live_history = gr.Dataframe(
                headers=["from", "to", "caption"], label="History", interactive=False, elem_id="live-history"
            )
            live_state = gr.State(None)
            clear_btn = gr.Button("Clear history")

        # -- events -------------------------------------------------------------------------------------------------
        # A bad upload gets exactly one message: the first step that refuses it raises an error that ends the chain
        # (so no later step says it again), without a traceback in the server log (the one line says it all).
        def refuse(message: str) -> gr.Error:
            return gr.Error(message, title="Cannot caption this audio", print_exception=False)

        def check_upload(path):
            try:
                service.check(path)
            except ValueError as err:
                raise refuse(str(err)) from None

        def show_error(message):
            if message:
                raise refuse(message)

        def details(path, beams, length, penalty, ngram, n):
            try:
                wave = service.load(path)
                shown = service.details(path, beams, length, penalty, ngram, n, wave=wave)
            except ValueError as err:
                raise refuse(str(err)) from None
            if float(np.abs(wave).max()) < SILENCE_PEAK:
                gr.Warning(f"{Path(path).name!r} is silent (its loudest sample is below -80 dBFS): the caption "
                           "describes no sound in it", title="Silent clip")  # fmt: skip
            return shown

        decoding_inputs = [num_beams, max_length, repetition_penalty, no_repeat]
        (
            caption_btn.click(check_upload, [audio], None, api_visibility="private")
            .success(
                service.caption,
                [audio, *decoding_inputs],
                [caption, error],
                api_name="caption",
                concurrency_limit=MAX_BATCH_SIZE,  # decoded in parallel, then batched by service.batcher
                concurrency_id="caption",
            )
            .then(show_error, [error], None, api_visibility="private")
            .success(
                details, [audio, *decoding_inputs, n_best], [nbest, spectrogram, decoding], api_visibility="private"
            )
        )

        flagger = gr.CSVLogger(dataset_file_name="ratings.csv", verbose=False)
        flagger.setup([audio, caption, corrected, model_box, decoding], ratings_dir)

        def rate(label):
            def _rate(audio_payload, caption_text, corrected_text, model_name, decoding_json):
                if not audio_payload or not caption_text:
                    gr.Warning("Caption a clip first, then rate its caption.")
                    return "Nothing rated yet."
                path = audio_payload.get("path") if isinstance(audio_payload, dict) else None
                if not path or not service.is_upload(path):  # flagging copies this file into the ratings folder
                    raise gr.Error(
                        "Only an uploaded clip can be rated.", title="Cannot rate this audio", print_exception=False
                    )
                flagger.flag(
                    [audio_payload, caption_text, corrected_text, model_name, decoding_json], flag_option=label
                )
                return f"Saved: **{label}**" + (" with a corrected caption." if corrected_text else ".")

            return _rate

        rating_inputs = [audio, caption, corrected, model_box, decoding]
        good_btn.click(rate("good"), rating_inputs, [rating_status], preprocess=False, api_name="rate_good")
        wrong_btn.click(rate("wrong"), rating_inputs, [rating_status], preprocess=False, api_name="rate_wrong")

        def live(chunk, state):
            try:
                return service.live_step(chunk, state)
            except ValueError as err:  # an odd chunk: say so, keep listening
                gr.Warning(str(err))
                state = state or {}
                return state.get("caption", ""), state.get("history", []), state

        mic.stream(
            live,
            [mic, live_state],
            [live_caption, live_history, live_state],
            stream_every=LIVE_HOP_S,
            time_limit=3600,
            api_visibility="private",
            concurrency_limit=4,
        )
        clear_btn.click(
            lambda: ("", [], None), None, [live_caption, live_history, live_state], api_visibility="private"
        )

    demo.queue(max_size=256, default_concurrency_limit=2)
    demo.caption_service = service
    return demo


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


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"local folder or Hub id (default: {DEFAULT_MODEL})")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=None, help="port (default: 7860 or the next free one)")
    p.add_argument("--share", action="store_true", help="create a public gradio.live link (off by default)")
    p.add_argument("--ratings", default=DEFAULT_RATINGS_DIR, help="folder where ratings are saved (CSV + audio)")
    p.add_argument("--max-file-size", default=MAX_FILE_SIZE, help="largest upload accepted (default: 20mb)")
    p.add_argument("--max-duration", type=float, default=MAX_DURATION_S, help="longest clip accepted, in seconds")
    p.add_argument("--trust-remote-code", action="store_true", help="allow a Hub repository's code to run")
    return p.parse_args(argv)


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


def main(argv=None) -> int:
    args = parse_args(argv)
    bound_native_memory()
    try:
        demo = build_app(args.model, args.ratings, args.max_duration, args.trust_remote_code)
    except (FileNotFoundError, ValueError) as err:
        print(f"app.py: error: {err}", file=sys.stderr)
        return 2
    launch(demo, host=args.host, port=args.port, share=args.share, max_file_size=args.max_file_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
