"""app.py: the Gradio app served on a loopback port, driven with gradio_client (the `/caption` API, bad uploads,
batching of simultaneous requests, ratings through flagging) and its live-captioning step."""

from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from audiocap_tiny import free_port, save_tiny_model, write_bad_files, write_overstated_wav, write_tone

from hf_audiocap.cli import main as cli_main
from hf_audiocap.data.audio import load_audio
from hf_audiocap.inference.captioner import Captioner, join_captions
from hf_audiocap.inference.ratings import summarize_ratings
from hf_audiocap.inference.service import CaptionService

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import app  # noqa: E402  (importing loads no model)

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny_model"))


@pytest.fixture(scope="module")
def synthcaps_clips(tmp_path_factory):
    from hf_audiocap.data.synthcaps import generate_synthcaps

    out = tmp_path_factory.mktemp("synthcaps")
    generate_synthcaps(out, seed=0, num_train=4, num_validation=2, num_test=2)
    clips = sorted((out / "test").glob("*.wav"))
    assert clips
    return clips


@pytest.fixture(scope="module")
def served(model_dir, tmp_path_factory):
    ratings = tmp_path_factory.mktemp("ratings")
    demo = app.build_app(str(model_dir), ratings_dir=ratings, max_duration_s=30.0, examples_dir=None)
    _, url, _ = app.launch(demo, port=free_port(), prevent_thread_lock=True, quiet=True, max_file_size="2mb")
    assert url.startswith("http://127.0.0.1:")
    client = Client(url, verbose=False)
    yield demo, client, ratings
    client.close() if hasattr(client, "close") else None
    demo.close()


def test_safe_defaults_and_no_model_message(tmp_path, monkeypatch, capsys):
    args = app.parse_args([])
    assert args.host == "127.0.0.1" and args.share is False and args.model == "outputs/realsounds-demo"
    assert app.MAX_FILE_SIZE and app.MAX_DURATION_S > 0
    import os

    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False" and os.environ["HF_HUB_DISABLE_TELEMETRY"].lower() in (
        "1",
        "true",
    )
    monkeypatch.chdir(tmp_path)  # no outputs/realsounds-demo here
    # the server's process-wide settings (oneDNN off, a malloc-trim thread) would outlive this test
    monkeypatch.setattr(app, "bound_native_memory", lambda *args, **kwargs: {})
    assert app.main([]) == 2
    err = capsys.readouterr().err
    assert "make demo" in err and "--model" in err


def test_caption_api_on_a_synthcaps_clip(served, model_dir, synthcaps_clips):
    _, client, _ = served
    clip = synthcaps_clips[0]
    caption, error = client.predict(handle_file(str(clip)), api_name="/caption")  # only the audio argument
    expected = Captioner.from_pretrained(str(model_dir)).caption_arrays([load_audio(clip)])[0]
    assert error == "" and caption == expected and caption  # the CLI's / pipeline's caption
    # Decoding settings are optional inputs of the same endpoint.
    caption3, _ = client.predict(handle_file(str(clip)), 1, 4, 1.0, 0, api_name="/caption")
    assert len(caption3.split()) <= 3
    # what the page's button calls: the same, with the style last (this model has none: the default, None)
    assert client.predict(handle_file(str(clip)), api_name="/caption_in_style") == (caption, "")


def test_bad_uploads_get_clear_errors_and_app_keeps_serving(served, synthcaps_clips, tmp_path):
    _, client, _ = served
    bad = write_bad_files(tmp_path)
    expected = {
        "empty": "empty file (0 bytes)",
        "not_audio": "not an audio file",
        "corrupt": "truncated, corrupt or unsupported audio",
        "zero_length": "zero-length audio",
        "one_sample": "shorter than the model's minimum input",
    }
    for kind, path in bad.items():
        caption, error = client.predict(handle_file(str(path)), api_name="/caption")
        verb = "cannot caption" if kind == "one_sample" else "cannot decode"  # it decodes; it is too short to caption
        assert caption == "" and error.startswith(f"{verb} '{path.name}'") and expected[kind] in error
        assert "\n" not in error
    too_long = write_tone(tmp_path / "long.wav", 31.0)
    caption, error = client.predict(handle_file(str(too_long)), api_name="/caption")
    assert caption == "" and "exceeds max_duration=30 s" in error
    with pytest.raises(Exception, match="(?i)too large|exceed|413|size"):  # over --max-file-size (2mb here)
        client.predict(handle_file(str(write_tone(tmp_path / "big.wav", 70.0))), api_name="/caption")
    silence = tmp_path / "silence.wav"
    import soundfile as sf

    sf.write(silence, np.zeros(16000, np.float32), 16000)
    caption, error = client.predict(handle_file(str(silence)), api_name="/caption")  # silence is fine
    assert error == "" and isinstance(caption, str)
    caption, error = client.predict(handle_file(str(synthcaps_clips[0])), api_name="/caption")
    assert error == "" and caption


def _cli_json(path, model_dir, capsys) -> dict:
    code = cli_main(["caption", str(path), "--model", str(model_dir), "--format", "json", "--quiet"])
    out, err = capsys.readouterr()
    assert code == 0, err
    (result,) = json.loads(out)
    return result


def test_app_and_cli_caption_an_overstated_wav_header_alike(served, model_dir, tmp_path, capsys):
    """A WAV whose header promises more data than it holds is decoded as far as its data goes, by the one decoding
    path of the CLI and the app: both caption it, with the caption of the same samples in a complete file."""
    import soundfile as sf

    _, client, _ = served
    short = write_overstated_wav(tmp_path / "cut_short.wav", 1.5, declared_seconds=3.0)
    cli = _cli_json(short, model_dir, capsys)
    app_caption, app_error = client.predict(handle_file(str(short)), api_name="/caption")
    complete = tmp_path / "complete.wav"
    sf.write(complete, sf.read(short, dtype="int16")[0], 16000, subtype="PCM_16")
    expected = _cli_json(complete, model_dir, capsys)["segments"][0]["caption"]
    assert cli["duration"] == 1.5 and [s["caption"] for s in cli["segments"]] == [expected]
    assert (app_caption, app_error) == (expected, "")

    # Longer than one window (streamed from disk by both): the app joins the CLI's window captions.
    long = write_overstated_wav(tmp_path / "long_cut_short.wav", 45.0, declared_seconds=80.0)
    cli = _cli_json(long, model_dir, capsys)
    assert cli["duration"] == 45.0 and [(s["start"], s["end"]) for s in cli["segments"]] == [(0, 30), (30, 45)]
    service = CaptionService(Captioner.from_pretrained(str(model_dir)), max_duration_s=120.0)
    assert service.caption(str(long)) == (join_captions([s["caption"] for s in cli["segments"]]), "")


def test_simultaneous_requests_are_batched(served, synthcaps_clips, tmp_path):
    demo, client, _ = served
    bad = write_bad_files(tmp_path)["not_audio"]
    captioner = demo.caption_service.captioner
    sizes = []
    original = captioner.caption_arrays

    def recording(waves, *args, **kwargs):
        sizes.append(len(waves))
        return original(waves, *args, **kwargs)

    captioner.caption_arrays = recording
    try:
        files = [synthcaps_clips[i % len(synthcaps_clips)] for i in range(11)] + [bad]
        jobs = [client.submit(handle_file(str(f)), api_name="/caption") for f in files]
        results = [job.result(timeout=120) for job in jobs]
    finally:
        del captioner.caption_arrays
    assert all(error == "" and caption for caption, error in results[:-1])  # a bad upload in a batch hurts no one
    assert results[-1][0] == "" and "not an audio file" in results[-1][1]
    assert len({c for c, _ in results[:-1] if c}) >= 1
    assert sum(sizes) == 11 and max(sizes) > 1, sizes  # simultaneous requests shared forward passes


def test_rating_saved_through_flagging(served, synthcaps_clips):
    _, client, ratings = served
    clip = synthcaps_clips[1]
    caption, _ = client.predict(handle_file(str(clip)), api_name="/caption")
    status = client.predict(handle_file(str(clip)), caption, "", "tiny", "{}", api_name="/rate_good")
    assert "good" in status
    status = client.predict(handle_file(str(clip)), caption, "a dog barks twice", "tiny", "{}", api_name="/rate_wrong")
    assert "wrong" in status and "corrected" in status
    assert "Nothing rated" in client.predict(None, "", "", "tiny", "{}", api_name="/rate_good")
    with open(ratings / "ratings.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["flag"] for r in rows] == ["good", "wrong"]
    assert rows[1]["Caption"] == caption and rows[1]["Corrected caption"] == "a dog barks twice"
    saved_audio = Path(rows[0]["Audio"])
    assert saved_audio.is_file() and ratings in saved_audio.parents  # the audio is kept with its rating
    assert saved_audio.read_bytes() == clip.read_bytes()
    summary = summarize_ratings(ratings)
    assert (summary["good"], summary["wrong"], summary["with_correction"], summary["good_rate"]) == (1, 1, 1, 0.5)


def test_live_step_rolling_window(model_dir):
    captioner = Captioner.from_pretrained(str(model_dir))
    service = CaptionService(captioner)
    sr = 48000
    t = np.arange(sr) / sr
    state, seen = None, []
    for k in range(8):  # eight 1-s microphone chunks at 48 kHz, int16, changing pitch
        chunk = (0.3 * 32767 * np.sin(2 * np.pi * (200 + 300 * k) * t)).astype(np.int16)
        caption, history, state = service.live_step((sr, chunk), state)
        seen.append(caption)
        assert state["buffer"].shape[0] == min(k + 1, 5) * 16000  # the last 5 s only
    assert len(history) == 8 and history[0][:2] == ["00:03.0", "00:08.0"]  # newest first, timestamps
    assert caption == captioner.caption_arrays([state["buffer"]])[0]
    caption2, history2, state2 = service.live_step(None, state)  # no chunk: nothing changes
    assert (caption2, history2) == (caption, history)


def test_spectrogram_and_nbest(model_dir, synthcaps_clips):
    service = CaptionService(Captioner.from_pretrained(str(model_dir)))
    rows, image, settings = service.details(str(synthcaps_clips[0]), 4, 12, 1.0, 0, 3)
    assert 1 <= len(rows) <= 3 and all(isinstance(s, float) for _, s in rows)
    assert [s for _, s in rows] == sorted([s for _, s in rows], reverse=True)
    assert image.dtype == np.uint8 and image.shape[0] == 240 and image.shape[2] == 3
    assert '"num_beams": 4' in settings


def test_a_bad_upload_gets_one_message_and_no_traceback(served, tmp_path, recwarn):
    """The 'Caption a clip' chain (check, caption, error, n-best) run step by step as Gradio runs it: a too-short
    clip, a corrupt file or text gets one error that stops the chain, marked not to print a traceback in the server
    log; a silent clip is captioned with one warning; a good clip gets no message."""
    import gradio as gr
    import soundfile as sf
    from gradio.utils import get_upload_folder

    demo, _, _ = served
    steps = {f.fn.__name__: f.fn for f in demo.fns.values() if getattr(f, "fn", None) is not None}
    service = demo.caption_service
    uploads = Path(get_upload_folder()) / tmp_path.name  # where Gradio puts uploads: the only files the app reads
    bad = write_bad_files(uploads)
    silence = uploads / "silence.wav"
    sf.write(silence, np.zeros(16000, np.float32), 16000)
    good = write_tone(uploads / "tone.wav", 2.0)

    def messages(path) -> list[str]:
        recwarn.clear()
        try:
            steps["check_upload"](str(path))
            _, error = service.caption(str(path))
            steps["show_error"](error)
            steps["details"](str(path), None, None, None, None, 3)
        except gr.Error as err:
            assert err.print_exception is False
            return [err.message] + [str(w.message) for w in recwarn]
        return [str(w.message) for w in recwarn]

    for kind in ("one_sample", "corrupt", "not_audio", "empty"):
        said = messages(bad[kind])
        assert len(said) == 1 and bad[kind].name in said[0] and "\n" not in said[0], (kind, said)
    assert messages(silence) == ["'silence.wav' is silent (its loudest sample is below -80 dBFS): the caption "
                                 "describes no sound in it"]  # fmt: skip
    assert messages(good) == []
    shutil.rmtree(uploads)


def test_examples_folder_absent_says_how_to_get_them(model_dir, tmp_path):
    import gradio as gr

    demo = app.build_app(str(model_dir), ratings_dir=tmp_path / "r", examples_dir=tmp_path / "test_single")
    notes = [b.value for b in demo.blocks.values() if isinstance(b, gr.Markdown) and b.elem_id == "examples-missing"]
    assert len(notes) == 1 and "`make demo`" in notes[0]
    assert "`hf-audiocap prepare realsounds --root data/realsounds`" in notes[0]


def test_examples_hold_out_recordings_and_the_independent_splits(model_dir, tmp_path):
    """The app offers held-out recordings of the corpus and, where the folder has it, of the independent split."""
    import gradio as gr

    from hf_audiocap.data.synthcaps.generate import _wav_bytes

    def shown(demo):
        labels = [b.label for b in demo.blocks.values() if isinstance(b, gr.Dataset)]
        missing = [b for b in demo.blocks.values() if isinstance(b, gr.Markdown) and b.elem_id == "examples-missing"]
        return sorted(labels), len(missing)

    for split in ("test_single", "independent"):
        (tmp_path / split).mkdir()
        for i in range(3):
            (tmp_path / split / f"{split}_{i}.wav").write_bytes(_wav_bytes(np.zeros(1600, dtype="<i2")))
        demo = app.build_app(str(model_dir), ratings_dir=tmp_path / "r", examples_dir=tmp_path / "test_single")
        if split == "test_single":  # no independent split yet: the held-out ones alone, and no note that none exist
            assert shown(demo) == (["Held-out real recordings"], 0)
    assert shown(demo) == (["Held-out real recordings", "Recordings of other packages (never heard)"], 0)
