"""A corpus of hostile and broken inputs, generated (never committed) for tests/test_hostile_inputs.py.

Audio (:func:`write_audio_corpus`): every case is a file whose name says what it is, with the outcome every entry
point must give: ``error`` is a substring of the one-line error naming the file, ``None`` means the file is valid
audio and must be captioned/used (channels downmixed, rate resampled; a WAV whose header promises more data than it
holds is decoded as far as its data goes, ``samples`` at 16 kHz). The 2-hour file is a real 2-hour FLAC of
silence at 8 kHz (180 kB, written in blocks in under a second): refused from its header wherever a maximum duration
applies, streamed window by window by the caption CLI.

Datasets (:func:`write_clotho_dataset`, :data:`TEXT_CASES`): a small Clotho-layout dataset of good clips, and
functions that break it the ways a real CSV breaks (missing column, a row escaping the dataset folder, non-UTF-8,
an empty caption, NUL bytes) plus a 10,000-word caption, which is valid (kept; labels are truncated in training).

The same corpus is fed to the loaders, the processor, recipes/train.py, recipes/evaluate.py, the CLI and the app;
docs/reliability.md records the outcome table.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

MAX_DURATION_S = 30.0  # the maximum duration the tests give the entry points that take one
WAV_HEADER_BYTES = 44  # soundfile's 16-bit PCM WAV header; the samples follow


@dataclass(frozen=True)
class AudioCase:
    kind: str
    file_name: str
    error: str | None  # substring of the one-line error; None: valid audio
    header_ok: bool  # libsndfile reads the header (the loaders' probe gets a sampling rate)
    too_long: bool = False  # refused only where a maximum duration applies (header check, nothing decoded)
    samples: int = 16000  # valid audio: its length once decoded at 16 kHz


AUDIO_CASES = {
    c.kind: c
    for c in [
        AudioCase("zero_bytes", "zero_bytes.wav", "empty file (0 bytes)", header_ok=False),
        AudioCase("truncated_header", "truncated_header.wav", "truncated, corrupt or unsupported", header_ok=False),
        AudioCase("truncated_data", "truncated_data.wav", None, header_ok=True, samples=8000),
        AudioCase("text_as_wav", "text_as_wav.wav", "not an audio file", header_ok=False),
        AudioCase("random_bytes", "random_bytes.wav", "not an audio file", header_ok=False),
        AudioCase("nan_inf", "nan_inf.wav", "non-finite samples (NaN/Inf)", header_ok=True),
        AudioCase("zero_samples", "zero_samples.wav", "zero-length audio (0 samples)", header_ok=True),
        AudioCase("mono_16k", "mono_16k.wav", None, header_ok=True),
        AudioCase("six_channels", "six_channels_48k.wav", None, header_ok=True),
        AudioCase("rate_8k", "rate_8k.wav", None, header_ok=True),
        AudioCase("rate_192k", "rate_192k.wav", None, header_ok=True),
        AudioCase("two_hours", "two_hours_8k.flac", "exceeds max_duration", header_ok=True, too_long=True),
    ]
}
BAD_AUDIO = [k for k, c in AUDIO_CASES.items() if c.error and not c.too_long]
GOOD_AUDIO = [k for k, c in AUDIO_CASES.items() if c.error is None]


def _tone(seconds: float, sr: int, freq: float = 440.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    x = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    if channels == 1:
        return x
    # distinct channels (a different gain each), so a downmix bug would show
    return np.stack([x * (1 - 0.1 * c) for c in range(channels)], axis=1)


def write_tone(path: Path, seconds: float = 1.0, sr: int = 16000, freq: float = 440.0, channels: int = 1) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, _tone(seconds, sr, freq, channels), sr, subtype="PCM_16")
    return path


def write_two_hours(path: Path, sr: int = 8000) -> Path:
    """A real 2-hour FLAC of digital silence, written 10 minutes at a time (bounded memory, ~0.6 s, ~180 kB)."""
    block = np.zeros(600 * sr, np.int16)
    with sf.SoundFile(path, "w", samplerate=sr, channels=1, subtype="PCM_16", format="FLAC") as fh:
        for _ in range(12):
            fh.write(block)
    return Path(path)


def write_audio_corpus(folder: Path) -> dict[str, Path]:
    """Writes every :data:`AUDIO_CASES` file into `folder`; returns ``{kind: path}``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    p = {kind: folder / case.file_name for kind, case in AUDIO_CASES.items()}
    p["zero_bytes"].write_bytes(b"")
    good = write_tone(folder / "_good.wav", 1.0)
    raw = good.read_bytes()
    good.unlink()
    p["truncated_header"].write_bytes(raw[:20])  # "RIFF....WAVEfmt " and nothing else
    p["truncated_data"].write_bytes(raw[: WAV_HEADER_BYTES + 16000])  # the header promises twice the data
    p["text_as_wav"].write_text("id,caption\nthis is a CSV file renamed to .wav\n" * 20)
    p["random_bytes"].write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    sf.write(p["nan_inf"], np.array([0.0, 0.1, np.nan, -0.1, np.inf, -np.inf] * 800, np.float32), 16000, "FLOAT")
    sf.write(p["zero_samples"], np.zeros((0, 1), np.float32), 16000)
    write_tone(p["mono_16k"], 1.0, 16000, freq=500)
    write_tone(p["six_channels"], 1.0, 48000, freq=700, channels=6)
    write_tone(p["rate_8k"], 1.0, 8000, freq=300)
    write_tone(p["rate_192k"], 1.0, 192000, freq=2000)
    write_two_hours(p["two_hours"])
    return p


# --------------------------------------------------------------------------------------------------------------------
# Datasets
# --------------------------------------------------------------------------------------------------------------------
CLOTHO_HEADER = "file_name,caption_1,caption_2,caption_3,caption_4,caption_5"
WORDS = "a dog barks while rain falls on the roof and birds sing near an engine".split()


def long_caption(words: int = 10_000) -> str:
    return " ".join(WORDS[i % len(WORDS)] for i in range(words))


def write_clotho_dataset(root: Path, clips: int = 8, split: str = "train") -> Path:
    """A valid Clotho-layout dataset: `root/clotho_captions_{split}.csv` and `clips` short tones in `root/{split}/`."""
    root = Path(root)
    rows = [CLOTHO_HEADER]
    for i in range(clips):
        name = f"clip_{i:02d}.wav"
        write_tone(root / split / name, 1.0 + 0.25 * (i % 3), 16000, freq=200 + 150 * i)
        caps = [f"{WORDS[(i + k) % len(WORDS)]} {WORDS[(2 * i + k) % len(WORDS)]} sound {k}" for k in range(5)]
        rows.append(",".join([name, *caps]))
    (root / f"clotho_captions_{split}.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


def _csv(root: Path, split: str = "train") -> Path:
    return Path(root) / f"clotho_captions_{split}.csv"


def _replace_row(root: Path, row: int, new: str | bytes) -> None:
    path = _csv(root)
    lines = path.read_bytes().split(b"\n")
    lines[row + 1] = new if isinstance(new, bytes) else new.encode("utf-8")
    path.write_bytes(b"\n".join(lines))


def _caps(text: str) -> str:
    return ",".join([text] * 5)


def _missing_column(root: Path) -> None:
    path = _csv(root)
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(",".join(line.split(",")[1:]) for line in lines) + "\n", encoding="utf-8")


def _escape_relative(root: Path) -> None:
    outside = write_tone(Path(root).parent / f"{Path(root).name}_outside.wav", 1.0)
    _replace_row(root, 0, f"../../{outside.name},{_caps('escaped')}")


def _escape_absolute(root: Path) -> None:
    outside = write_tone(Path(root).parent / f"{Path(root).name}_outside_abs.wav", 1.0)
    _replace_row(root, 0, f"{outside.resolve()},{_caps('escaped')}")


def _etc_passwd(root: Path) -> None:
    _replace_row(root, 0, f"../../../../../../../../etc/passwd,{_caps('escaped')}")


def _non_utf8(root: Path) -> None:
    _replace_row(root, 0, b"clip_00.wav," + b",".join([b"caf\xe9 noise \xff\xfe"] * 5))


def _empty_caption(root: Path) -> None:
    _replace_row(root, 0, "clip_00.wav,,,,,")


def _nul_bytes(root: Path) -> None:
    _replace_row(root, 0, b"clip_00.wav," + b",".join([b"a\x00b"] * 5))


def _long_caption(root: Path) -> None:
    _replace_row(root, 0, f"clip_00.wav,{long_caption()},a dog barks,rain falls,birds sing,an engine runs")


@dataclass(frozen=True)
class TextCase:
    kind: str
    apply: Callable[[Path], None]
    error: str | None  # substring of the loader's one-line error; None: accepted


TEXT_CASES = {
    c.kind: c
    for c in [
        TextCase("missing_column", _missing_column, "missing column(s) file_name"),
        TextCase("path_escape_relative", _escape_relative, "points outside the base folder"),
        TextCase("path_escape_absolute", _escape_absolute, "points outside the base folder"),
        TextCase("path_etc_passwd", _etc_passwd, "points outside the base folder"),
        TextCase("non_utf8_caption", _non_utf8, "not valid UTF-8"),
        TextCase("empty_caption", _empty_caption, "empty caption"),
        TextCase("nul_bytes", _nul_bytes, "NUL"),
        TextCase("caption_10000_words", _long_caption, None),
    ]
}


def broken_dataset(template: Path, dest: Path, kind: str) -> Path:
    """A copy of the dataset at `template` broken the :data:`TEXT_CASES` way `kind`."""
    shutil.copytree(template, dest)
    TEXT_CASES[kind].apply(dest)
    return Path(dest)


def dataset_with_audio(template: Path, dest: Path, audio: Path, row: int = 0) -> Path:
    """A copy of the dataset at `template` whose clip `row` is replaced by the file `audio` (same file name)."""
    shutil.copytree(template, dest)
    name = f"clip_{row:02d}.wav"
    shutil.copyfile(audio, Path(dest) / "train" / name)
    return Path(dest)
