"""The `audio-captioning` pipeline: registered on `import hf_audiocap`, captions paths, arrays, bytes and long audio
through the shared Captioner (same captions as the CLI), and the model card's usage snippet runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from audiocap_tiny import save_tiny_model, write_tone
from transformers import pipeline
from transformers.pipelines import PIPELINE_REGISTRY

import hf_audiocap  # noqa: F401  (registers the task)
from hf_audiocap.data.audio import AudioDecodeError, load_audio
from hf_audiocap.inference.captioner import Captioner, array_windows
from hf_audiocap.inference.pipeline import AudioCaptioningPipeline


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny_model"))


@pytest.fixture(scope="module")
def captioner_pipe(model_dir):
    return pipeline("audio-captioning", model=str(model_dir))


@pytest.fixture(scope="module")
def captioner(model_dir):
    return Captioner.from_pretrained(str(model_dir))


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """25 s of changing tones, so windows have different content."""
    sr = 16000
    t = np.arange(5 * sr) / sr
    parts = [0.3 * np.sin(2 * np.pi * f * t) for f in (100, 2500, 300, 6000, 900)]
    path = tmp_path_factory.mktemp("scene") / "scene.wav"
    sf.write(path, np.concatenate(parts).astype(np.float32), sr, subtype="PCM_16")
    return path


def test_task_registered_by_import():
    impl = PIPELINE_REGISTRY.check_task("audio-captioning")[1]
    assert impl["impl"] is AudioCaptioningPipeline and impl["type"] == "multimodal"
    assert impl["pt"][0].__name__ == "AutoModelForSpeechSeq2Seq"


def test_path_array_bytes_give_the_shared_captioners_caption(captioner_pipe, captioner, tmp_path):
    path = write_tone(tmp_path / "clip.wav", 3.0, freq=900)
    expected = captioner.caption_arrays([load_audio(path)])[0]
    out = captioner_pipe(str(path))
    assert out == {"caption": expected, "duration": 3.0, "segments": [{"start": 0.0, "end": 3.0, "caption": expected}]}
    wave, sr = sf.read(path, dtype="float32")
    assert captioner_pipe(path)["caption"] == expected  # pathlib.Path
    assert captioner_pipe({"array": wave, "sampling_rate": sr})["caption"] == expected
    assert captioner_pipe((wave, sr))["caption"] == expected
    assert captioner_pipe(wave)["caption"] == expected  # a bare array is at the model's rate
    assert captioner_pipe(path.read_bytes())["caption"] == expected
    # Another sampling rate is resampled the way load_audio does it.
    wave_44k = load_audio(path, 44100)
    assert (
        captioner_pipe({"array": wave_44k, "sampling_rate": 44100})["caption"]
        == captioner.caption_arrays([load_audio((wave_44k, 44100))])[0]
    )
    assert [o["caption"] for o in captioner_pipe([str(path), path.read_bytes()])] == [expected, expected]


def test_long_audio_windows(captioner_pipe, captioner, scene):
    out = captioner_pipe(str(scene), window_s=10, hop_s=5)
    spans = [(s["start"], s["end"]) for s in out["segments"]]
    assert out["duration"] == 25.0 and spans == [(0, 10), (5, 15), (10, 20), (15, 25)]
    wave = load_audio(scene)
    expected = captioner.caption_arrays([w for _, _, w in array_windows(wave, 16000, 10, 5)])
    assert [s["caption"] for s in out["segments"]] == expected
    # The same audio in memory is cut into the same windows (one windowing rule, hf_audiocap.data.audio).
    assert captioner_pipe({"array": wave, "sampling_rate": 16000}, window_s=10, hop_s=5) == out
    # Without overlap, with a tail window; window_s=None captions the whole recording in one go.
    spans = [(s["start"], s["end"]) for s in captioner_pipe(str(scene), window_s=10)["segments"]]
    assert spans == [(0, 10), (10, 20), (20, 25)]
    whole = captioner_pipe(str(scene), window_s=None)
    assert whole["segments"] == [{"start": 0.0, "end": 25.0, "caption": captioner.caption_arrays([wave])[0]}]
    # The joined caption merges consecutive repeats.
    joined = [s["caption"] for s in out["segments"]]
    merged = [c for i, c in enumerate(joined) if i == 0 or c != joined[i - 1]]
    assert out["caption"] == "; ".join(merged)


def test_generation_parameters_reach_generate(captioner_pipe, captioner, tmp_path):
    path = write_tone(tmp_path / "clip.wav", 2.0, freq=2500)
    wave = load_audio(path)
    for kwargs in ({"num_beams": 1}, {"num_beams": 4, "max_length": 5}):
        assert captioner_pipe(str(path), **kwargs)["caption"] == captioner.caption_arrays([wave], **kwargs)[0]
    short = captioner_pipe(str(path), max_length=3)["caption"]
    assert len(short.split()) <= 2  # <sos> + at most 2 words


def test_bad_input_one_line_error(captioner_pipe, tmp_path):
    notes = tmp_path / "notes.wav"
    notes.write_text("not audio\n" * 10)
    with pytest.raises(AudioDecodeError, match=r"^cannot decode '.*notes\.wav': not an audio file"):
        captioner_pipe(str(notes))
    with pytest.raises(AudioDecodeError, match="empty file"):
        captioner_pipe(b"")
    with pytest.raises(AudioDecodeError, match="exceeds max_duration"):
        captioner_pipe(str(write_tone(tmp_path / "a.wav", 3.0)), max_duration=2.0)
    with pytest.raises(ValueError, match="unsupported input type"):
        captioner_pipe(3.5)


def test_trust_remote_code_loads_the_same(model_dir, captioner_pipe, tmp_path):
    path = write_tone(tmp_path / "clip.wav", 2.0, freq=300)
    remote = pipeline("audio-captioning", model=str(model_dir), trust_remote_code=True)
    assert remote(str(path)) == captioner_pipe(str(path))


def test_model_card_usage_snippet_runs(model_dir, tmp_path):
    """The card's pipeline snippet, run as written in a fresh interpreter (only the repo id and clip replaced)."""
    from hf_audiocap.training.model_card import TEMPLATE

    snippet = re.search(r"```python\n(.*?)```", TEMPLATE, re.S).group(1)
    assert 'pipeline("audio-captioning"' in snippet
    clip = write_tone(tmp_path / "clip.wav", 2.0)
    code = snippet.replace("{repo_id}", str(model_dir)).replace('"clip.wav"', repr(str(clip)))
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env={**os.environ}, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert proc.stdout.strip()
