import csv
import io
import struct

import numpy as np
import pytest
import soundfile as sf

from hf_audiocap.data import audio as audio_mod
from hf_audiocap.data.audio import (
    AudioDecodeError,
    AudioFileNotFoundError,
    array_windows,
    audio_info,
    check_audio,
    iter_audio_windows,
    load_audio,
    open_audio_windows,
)

SR = 16000


def tone(freq=440.0, sr=SR, seconds=1.0, channels=1, amp=0.5):
    t = np.arange(int(sr * seconds)) / sr
    x = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return x if channels == 1 else np.stack([x] * channels, axis=1)


def peak_hz(x, sr):
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.argmax(spec) * sr / len(x)


FORMATS = [
    ("wav", "WAV", "PCM_16"),
    ("flac", "FLAC", "PCM_16"),
    ("ogg", "OGG", "VORBIS"),
    ("mp3", "MP3", "MPEG_LAYER_III"),
]


@pytest.mark.parametrize("ext,fmt,subtype", FORMATS)
def test_load_formats(tmp_path, ext, fmt, subtype):
    path = tmp_path / f"tone.{ext}"
    sf.write(path, tone(sr=44100, seconds=1.0, channels=2), 44100, format=fmt, subtype=subtype)
    wav = load_audio(path)
    assert wav.dtype == np.float32 and wav.ndim == 1 and np.isfinite(wav).all()
    assert abs(len(wav) - SR) < 0.01 * SR  # lossy codecs may pad a few ms
    assert abs(peak_hz(wav, SR) - 440) < 5
    assert audio_info(path)[0] == 44100 and audio_info(path)[2] == 2


def test_real_clips(shared_data):
    root = shared_data / "real_clips"
    with open(root / "manifest.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 34
    exts = set()
    for row in rows:
        path = root / row["file_name"]
        exts.add(path.suffix)
        wav = load_audio(path)
        assert wav.dtype == np.float32 and wav.ndim == 1, path
        assert np.isfinite(wav).all(), path
        assert abs(len(wav) / SR - float(row["duration_s"])) < 0.02, path
        sr, frames, ch = audio_info(path)
        assert (sr, ch) == (int(row["sample_rate"]), int(row["channels"])), path
    assert exts == {".wav", ".mp3", ".oga"}


def test_stereo_downmix(tmp_path):
    left = np.full(8000, 0.5, np.float32)
    right = np.full(8000, 0.1, np.float32)
    path = tmp_path / "st.wav"
    sf.write(path, np.stack([left, right], axis=1), SR, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(path), 0.3, atol=1e-6)


@pytest.mark.parametrize("sr", [8000, 11025, 96000])
def test_resampling(tmp_path, sr):
    path = tmp_path / f"r{sr}.wav"
    sf.write(path, tone(freq=1000, sr=sr, seconds=2.0), sr)
    wav = load_audio(path)
    assert len(wav) == 2 * SR
    assert abs(peak_hz(wav, SR) - 1000) < 2
    assert 0.45 < np.abs(wav[1000:-1000]).max() < 0.55
    native = load_audio(path, sampling_rate=None)
    assert len(native) == 2 * sr


def test_silence_is_valid(tmp_path):
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(SR, np.float32), SR)
    assert not load_audio(path).any()


def test_bytes_dict_array_sources(tmp_path):
    path = tmp_path / "a.flac"
    sf.write(path, tone(sr=22050), 22050)
    data = path.read_bytes()
    ref = load_audio(path)
    np.testing.assert_array_equal(load_audio(data), ref)
    np.testing.assert_array_equal(load_audio(io.BytesIO(data)), ref)
    # datasets.Audio(decode=False) dicts: bytes win over a (here nonexistent) path
    np.testing.assert_array_equal(load_audio({"bytes": data, "path": "elsewhere/a.flac"}), ref)
    np.testing.assert_array_equal(load_audio({"bytes": None, "path": str(path)}), ref)
    arr = tone(sr=22050)
    np.testing.assert_allclose(load_audio((arr, 22050)), ref, atol=1e-3)
    np.testing.assert_allclose(load_audio({"array": arr, "sampling_rate": 22050}), ref, atol=1e-3)
    int16 = (arr * 32767).astype(np.int16)
    np.testing.assert_allclose(load_audio((int16, 22050)), ref, atol=2e-3)
    stereo_cf = np.stack([arr, arr])  # (channels, frames)
    np.testing.assert_allclose(load_audio((stereo_cf, 22050)), ref, atol=1e-3)
    assert audio_info(data) == (22050, 22050, 1)


def _bad_files(tmp_path):
    good = tmp_path / "good.wav"
    sf.write(good, tone(seconds=0.5), SR)
    raw = good.read_bytes()
    flac = tmp_path / "good.flac"
    sf.write(flac, tone(seconds=2.0), SR)
    files = {
        "missing": (tmp_path / "nope.wav", "file not found"),
        "empty": (tmp_path / "empty.wav", "empty file (0 bytes)"),
        "text": (tmp_path / "text.wav", "not an audio file"),
        "truncated_header": (tmp_path / "trunc_head.wav", "corrupt"),
        "corrupt_flac": (tmp_path / "corrupt.flac", "corrupt"),
        "zero_length": (tmp_path / "zero.wav", "zero-length audio (0 samples)"),
        "nan": (tmp_path / "nan.wav", "non-finite"),
        "directory": (tmp_path, "is a directory"),
    }
    files["empty"][0].write_bytes(b"")
    files["text"][0].write_text("this is not audio at all, just words\n")
    files["truncated_header"][0].write_bytes(raw[:20])
    data = bytearray(flac.read_bytes())
    data[len(data) // 2 :] = b"\x00\xff" * (len(data) - len(data) // 2 >> 1) + b"\x00" * (
        (len(data) - len(data) // 2) % 2
    )
    files["corrupt_flac"][0].write_bytes(bytes(data))
    sf.write(files["zero_length"][0], np.zeros((0, 1), np.float32), SR)
    sf.write(files["nan"][0], np.array([0.0, np.nan, 0.1, np.inf], np.float32), SR, subtype="FLOAT")
    return files


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "empty",
        "text",
        "truncated_header",
        "corrupt_flac",
        "zero_length",
        "nan",
        "directory",
    ],
)
def test_bad_inputs_name_the_file(tmp_path, case):
    path, reason = _bad_files(tmp_path)[case]
    with pytest.raises(AudioDecodeError) as err:
        load_audio(path)
    msg = str(err.value)
    assert str(path) in msg and reason in msg and "\n" not in msg
    if case == "missing":
        assert isinstance(err.value, AudioFileNotFoundError) and isinstance(err.value, FileNotFoundError)


def test_overstated_wav_header_decodes_the_data_there(tmp_path):
    """A WAV whose RIFF and data sizes promise more than the file holds (a recording or copy cut short) is decoded as
    far as its data goes, as libsndfile reads it, by every path: whole, from bytes, header check, streamed windows."""
    full = tmp_path / "full.wav"
    sf.write(full, tone(seconds=2.0), SR, subtype="PCM_16")
    raw = full.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(raw[: raw.index(b"data") + 8 + 2 * 12345])  # 12,345 of the 32,000 samples the header promises
    expected = load_audio(full)[:12345]
    np.testing.assert_array_equal(load_audio(cut), expected)
    np.testing.assert_array_equal(load_audio(cut.read_bytes()), expected)
    assert check_audio(cut) == audio_info(cut) == (SR, 12345, 1)
    streamed = list(iter_audio_windows(cut, window_s=0.25, block_s=0.1, min_last_s=0.2))
    assert [(s, e) for s, e, _ in streamed] == [(0.0, 0.25), (0.25, 0.5), (0.5, 0.75)]  # + a 0.02 s tail: too short
    np.testing.assert_array_equal(np.concatenate([w for _, _, w in streamed]), expected[:12000])
    # 0.77 s, shorter than a 1-s window: decoded whole, one window
    duration, windows = open_audio_windows(cut, SR, window_s=1.0, max_duration=1.0)
    assert duration == 12345 / SR
    ((start, end, window),) = list(windows)
    assert (start, end) == (0.0, 12345 / SR)
    np.testing.assert_array_equal(window, expected)
    with pytest.raises(AudioDecodeError, match=r"cut.wav.*exceeds max_duration=0.5 s"):
        load_audio(cut, max_duration=0.5)


def test_overstated_wav_header_is_named_in_one_warning(tmp_path, caplog, monkeypatch):
    """Decoded as far as its data goes, with one warning naming the file and both lengths, once per file (a training
    run decodes a clip every epoch); whole and streamed alike; a complete file gives none."""
    import hf_audiocap.data.audio as audio

    full = tmp_path / "full.wav"
    sf.write(full, tone(seconds=2.0), SR, subtype="PCM_16")
    raw = full.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(raw[: raw.index(b"data") + 8 + 2 * 8000])  # 0.5 s of the 2 s the header promises
    monkeypatch.setattr(audio, "_WARNED_OVERSTATED", set())
    with caplog.at_level("WARNING", logger="hf_audiocap.data.audio"):
        load_audio(full)
        list(iter_audio_windows(full, window_s=0.5))
        assert not caplog.records
        load_audio(cut)
        load_audio(cut)
        audio._WARNED_OVERSTATED.clear()
        list(iter_audio_windows(cut, window_s=0.25))
    lines = [r.getMessage() for r in caplog.records]
    expected = f"{str(cut)!r}: the header promises 2.00 s of audio but the file holds 0.50 s (cut short?): decoded as"
    assert len(lines) == 2 and all(line.startswith(expected) for line in lines)


WINDOW_CASES = [  # (seconds, window_s, hop_s, min_last_s) -> window spans
    ((25.0, 10.0, 5.0, 1.0), [(0, 10), (5, 15), (10, 20), (15, 25)]),
    ((25.0, 10.0, None, 1.0), [(0, 10), (10, 20), (20, 25)]),
    ((20.5, 10.0, None, 1.0), [(0, 10), (10, 20)]),  # a 0.5 s tail is dropped
    ((21.5, 10.0, None, 1.0), [(0, 10), (10, 20), (20, 21.5)]),  # a 1.5 s tail is kept
    ((3.0, 10.0, None, 1.0), [(0, 3)]),  # shorter than a window: one window
    ((0.5, 10.0, None, 1.0), [(0, 0.5)]),  # shorter than min_last_s too: still one window
    ((12.0, 4.0, 3.0, 2.0), [(0, 4), (3, 7), (6, 10), (9, 12)]),
]


@pytest.mark.parametrize("case,spans", WINDOW_CASES)
def test_one_windowing_rule_in_memory_and_streamed(tmp_path, case, spans):
    """The windowing rule for long audio gives the same windows, sample for sample, whether the audio is in memory or
    streamed from disk in blocks of any size (no resampling here: the samples are exactly the decoded ones)."""
    seconds, window_s, hop_s, min_last_s = case
    path = tmp_path / "clip.wav"
    sf.write(path, tone(freq=330.0, seconds=seconds), SR, subtype="PCM_16")
    wave = load_audio(path)
    in_memory = list(array_windows(wave, SR, window_s, hop_s, min_last_s))
    assert [(s, e) for s, e, _ in in_memory] == spans
    for s, e, w in in_memory:
        np.testing.assert_array_equal(w, wave[int(s * SR) : int(e * SR)])
    for block_s in (0.7, 3.0, 100.0):
        streamed = list(iter_audio_windows(path, window_s, hop_s, block_s=block_s, min_last_s=min_last_s))
        assert [(s, e) for s, e, _ in streamed] == spans
        for (_, _, a), (_, _, b) in zip(streamed, in_memory):
            np.testing.assert_array_equal(a, b)


def test_bad_bytes_and_dicts(tmp_path):
    with pytest.raises(AudioDecodeError, match="not an audio file"):
        load_audio(b"hello there")
    with pytest.raises(AudioDecodeError, match="clip7.wav.*not an audio file"):
        load_audio({"bytes": b"hello there", "path": "clip7.wav"})
    with pytest.raises(AudioDecodeError, match="sampling rate"):
        load_audio(np.zeros(10, np.float32))
    with pytest.raises(AudioDecodeError, match="non-finite"):
        load_audio((np.array([0.0, np.nan], np.float32), SR))
    with pytest.raises(AudioDecodeError, match="zero-length"):
        load_audio((np.zeros(0, np.float32), SR))


def _sparse_wav(path, seconds, sr=SR):
    """A valid 16-bit mono WAV header for `seconds` of audio, the data left as a sparse hole (no disk, no RAM)."""
    n = int(seconds * sr) * 2
    header = b"RIFF" + struct.pack("<I", 36 + n) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, sr, sr * 2, 2, 16)
    with open(path, "wb") as fh:
        fh.write(header + b"data" + struct.pack("<I", n))
        fh.truncate(44 + n)


def test_max_duration_checked_from_header(tmp_path, monkeypatch):
    path = tmp_path / "two_hours.wav"
    _sparse_wav(path, 2 * 3600)
    assert audio_info(path) == (SR, 2 * 3600 * SR, 1)

    def no_read(*args, **kwargs):
        raise AssertionError("samples were read")

    monkeypatch.setattr(audio_mod.sf.SoundFile, "read", no_read)
    with pytest.raises(AudioDecodeError, match=r"two_hours.wav.*duration 7200.0 s exceeds max_duration=30 s"):
        load_audio(path, max_duration=30)


def _record_reads(monkeypatch):
    calls = []
    original = sf.SoundFile.read

    def spy(self, frames=-1, *args, **kwargs):
        calls.append(frames)
        return original(self, frames, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", spy)
    return calls


def test_iter_audio_windows_streams_in_blocks(tmp_path, monkeypatch):
    sr_in = 44100
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(60 * sr_in)).astype(np.float32)
    path = tmp_path / "long.wav"
    sf.write(path, np.stack([x, x], axis=1), sr_in, subtype="FLOAT")
    full = load_audio(path)

    calls = _record_reads(monkeypatch)
    windows = list(iter_audio_windows(path, window_s=10.0, hop_s=5.0, block_s=2.0))
    assert [(s, e) for s, e, _ in windows] == [(float(s), float(s + 10)) for s in range(0, 51, 5)]
    assert all(w.shape == (10 * SR,) and w.dtype == np.float32 for _, _, w in windows)
    # never reads the whole file at once: every read asks for one 2 s block
    assert calls and all(0 < f <= 2 * sr_in for f in calls) and len(calls) >= 30
    # the incremental resampler gives the same signal as one-shot resampling
    for start, _, w in windows:
        ref = full[int(start * SR) : int(start * SR) + 10 * SR]
        assert np.abs(w[100:-100] - ref[100:-100]).max() < 1e-3


def test_iter_audio_windows_partial_and_short(tmp_path):
    path = tmp_path / "65s.wav"
    sf.write(path, tone(sr=8000, seconds=65.0), 8000)
    spans = [(s, e) for s, e, _ in iter_audio_windows(path, 30.0)]
    assert spans == [(0.0, 30.0), (30.0, 60.0), (60.0, 65.0)]

    path = tmp_path / "30.5s.wav"
    sf.write(path, tone(seconds=30.5), SR)
    assert [(s, e) for s, e, _ in iter_audio_windows(path, 10.0)] == [(0.0, 10.0), (10.0, 20.0), (20.0, 30.0)]

    path = tmp_path / "short.flac"
    sf.write(path, tone(sr=48000, seconds=3.0), 48000)
    (start, end, w), *rest = list(iter_audio_windows(path, 10.0))
    assert not rest and (start, end) == (0.0, 3.0) and len(w) == 3 * SR

    with pytest.raises(AudioDecodeError, match="nope.wav"):
        next(iter_audio_windows(tmp_path / "nope.wav", 10.0))
