"""Gradio app: caption a clip, caption the microphone live, and rate captions.

    python app.py                                   # the model of `make demo` (outputs/realsounds-demo)
    python app.py --model path/or/hub-id --port 7860 [--host 0.0.0.0] [--share] [--ratings outputs/ratings]

Tabs:
- "Caption a clip": upload or record; the caption, the n-best list with scores (beam search), the log-mel spectrogram,
  decoding controls and style, examples (held-out real recordings of `make demo`'s corpus when present, and of the
  independent split's other packages after `make independent`), and a rating
  (good / wrong + an optional corrected caption) saved with a copy of the audio by Gradio's flagging (CSV) under
  `--ratings` (summarise with `python recipes/evaluate.py --ratings DIR`).
- "Live": streaming microphone; every hop (~1 s) the last window (~5 s) of a rolling buffer is captioned; the current
  caption and a timestamped history are shown.

API (gradio_client): `/caption` takes an audio file (and optional decoding settings) and returns `(caption, error)`.
The events call `hf_audiocap.inference.service.CaptionService`: each request is decoded alone, then up to 16 share a
forward pass, and every caption goes through the shared `Captioner` (the CLI's and the pipeline's model loading,
decoding checks and 30-s windows). A bad upload, or a request Gradio refuses, gives an empty caption and a one-line
`error` (or an error event) for that request only.

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
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from hf_audiocap.inference.captioner import DEFAULT_MODEL, load_captioner  # noqa: E402
from hf_audiocap.inference.service import (  # noqa: E402
    LIVE_HOP_S,
    LIVE_WINDOW_S,
    MAX_BATCH_SIZE,
    MAX_DURATION_S,
    MAX_FILE_SIZE,
    SILENCE_PEAK,
    CaptionService,
    bound_native_memory,
    launch,
)

DEFAULT_RATINGS_DIR = "outputs/ratings"
# each held-out test recording of the real-sounds corpus alone: sounds the default model never heard in training
EXAMPLES_DIR = Path(__file__).resolve().parent / "data" / "realsounds" / "test_single"


def build_app(
    model_path: str = DEFAULT_MODEL,
    ratings_dir: str | os.PathLike = DEFAULT_RATINGS_DIR,
    max_duration_s: float = MAX_DURATION_S,
    trust_remote_code: bool = False,
    captioner=None,
    examples_dir: str | os.PathLike | None = EXAMPLES_DIR,
    rerank: str | None = None,
):
    """The Blocks app (queue configured); loads the model unless a `captioner` is given. `rerank`: caption by
    reranking candidates (hf_audiocap.rerank; default: the model's saved setting)."""
    import gradio as gr
    from gradio.utils import get_upload_folder

    if captioner is None:
        captioner = load_captioner(model_path, batch_size=MAX_BATCH_SIZE, trust_remote_code=trust_remote_code)
    if rerank is not None:  # every caption and the n-best table follow it; the /caption inputs stay as they are
        captioner.generate_kwargs = {**captioner.generate_kwargs, "rerank": rerank}
        captioner.check_rerank()  # one line now (a bad CLAP folder too), not at the first event
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
                    # a model trained on several corpora writes in the style of the one chosen (docs/mixtures.md)
                    style = gr.Dropdown(
                        captioner.styles, value=d["style"], label="Style", visible=bool(captioner.styles)
                    )
                    caption_btn = gr.Button("Caption", variant="primary")
                    examples = sorted(Path(examples_dir).glob("*.wav"))[::4][:8] if examples_dir else []
                    # beside them, where `make independent` made it, recordings of the same classes by other people
                    others = (
                        sorted((Path(examples_dir).parent / "independent").glob("*.wav"))[::6][:8] if examples else []
                    )
                    if others:
                        gr.Examples(
                            [[str(p)] for p in others],
                            inputs=[audio],
                            label="Recordings of other packages (never heard)",
                        )
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
                    reranking = service.reranking()
                    headers = service.nbest_headers()
                    nbest = gr.Dataframe(
                        headers=headers,
                        label="n-best (beam search)" if reranking is None else "candidates (reranked; ✓ chosen)",
                        interactive=False,
                        wrap=True,
                        column_widths=["82%", "18%"] if reranking is None else None,
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

        # The model's saved no_repeat_content_words applies: a toggle here would add an input to the public /caption
        # API and break its clients' five-value requests.
        def details(path, beams, length, penalty, ngram, n, style=None):
            try:
                wave = service.load(path)
                shown = service.details(path, beams, length, penalty, ngram, n, wave=wave, style=style)
            except ValueError as err:
                raise refuse(str(err)) from None
            if float(np.abs(wave).max()) < SILENCE_PEAK:
                gr.Warning(f"{Path(path).name!r} is silent (its loudest sample is below -80 dBFS): the caption "
                           "describes no sound in it", title="Silent clip")  # fmt: skip
            return shown

        def caption_in_style(path, beams, length, penalty, ngram, style=None):
            return service.caption(path, beams, length, penalty, ngram, style=style)

        # The public /caption API keeps its five inputs (raw HTTP clients send exactly those) and captions in the
        # model's default style; /caption_in_style, what the page's button calls, takes the style as a sixth.
        decoding_inputs = [num_beams, max_length, repetition_penalty, no_repeat]
        # decoded in parallel, then batched by the service
        batched = {"concurrency_limit": MAX_BATCH_SIZE, "concurrency_id": "caption"}
        (
            caption_btn.click(check_upload, [audio], None, api_visibility="private")
            .success(
                caption_in_style,
                [audio, *decoding_inputs, style],
                [caption, error],
                api_name="caption_in_style",
                **batched,
            )  # fmt: skip
            .then(show_error, [error], None, api_visibility="private")
            .success(
                details,
                [audio, *decoding_inputs, n_best, style],
                [nbest, spectrogram, decoding],
                api_visibility="private",
            )
        )
        api_only = gr.Button(visible=False)
        api_only.click(service.caption, [audio, *decoding_inputs], [caption, error], api_name="caption", **batched)

        flagger = gr.CSVLogger(dataset_file_name="ratings.csv", verbose=False)
        flagger.setup([audio, caption, corrected, model_box, decoding], ratings_dir)

        def rate(label):
            def _rate(audio_payload, caption_text, corrected_text, model_name, decoding_json):
                if not audio_payload or not caption_text:
                    gr.Warning("Caption a clip first, then rate its caption.")
                    return "Nothing rated yet."
                path = audio_payload.get("path") if isinstance(audio_payload, dict) else None
                if not path or not service.is_upload(path):  # flagging copies this file into the ratings folder
                    raise gr.Error("Only an uploaded clip can be rated.", title="Cannot rate", print_exception=False)
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
    p.add_argument("--rerank", default=None, metavar="SPEC", help="caption by reranking candidates: logprob, mbr, "
                   "clap or 'logprob:0.5,mbr:0.5' (default: the model's setting; 'none': off); the n-best table then "
                   "shows every candidate with its scores")  # fmt: skip
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    bound_native_memory()
    try:
        demo = build_app(args.model, args.ratings, args.max_duration, args.trust_remote_code, rerank=args.rerank)
    except (FileNotFoundError, ValueError) as err:
        print(f"app.py: error: {err}", file=sys.stderr)
        return 2
    launch(demo, host=args.host, port=args.port, share=args.share, max_file_size=args.max_file_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
