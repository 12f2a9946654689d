"""Audio decoding: the ONLY place in hf_audiocap that turns files/bytes into waveforms.

Everything goes through ``soundfile`` (libsndfile). The libsndfile bundled with soundfile>=0.12 reads WAV (all PCM
and float subtypes), FLAC, OGG/Vorbis, OGG/Opus, MP3, AIFF, CAF, W64/RF64 and more; see
``soundfile.available_formats()``. Formats libsndfile cannot read (M4A/AAC, WMA, WebM, ...) fall back to
``librosa.load`` (audioread), but only when audioread has a real decoding backend (FFmpeg, GStreamer, CoreAudio or
MAD); otherwise the error says so instead of pretending to try. Mono is obtained by averaging the channels and
resampling uses ``soxr`` (HQ).

Every failure raises :class:`AudioDecodeError` (a ``ValueError``) with one line naming the file.

What is refused is what cannot be decoded: no file, no bytes, not audio, an unreadable header, zero samples, non-finite
samples, a read error inside the data, or more than ``max_duration`` seconds. A container whose header promises more
data than the file holds (a WAV whose RIFF/data size overstates it, an MP3 whose frame count is an estimate) is decoded
as far as its data goes, as libsndfile reads it: an interrupted recording or copy still holds valid audio. Every entry
point (evaluation, the CLI, the pipeline, the app) goes through these functions, so they accept and refuse the same
files, whether a file is decoded whole or streamed window by window (:func:`open_audio_windows`).
"""

from __future__ import annotations

import io
import logging
import os
import re
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

__all__ = [
    "AudioDecodeError",
    "AudioFileNotFoundError",
    "array_windows",
    "audio_info",
    "check_audio",
    "iter_audio_windows",
    "load_audio",
    "open_audio_windows",
    "resample",
    "to_mono",
]

DEFAULT_SAMPLING_RATE = 16000
_RESAMPLE_QUALITY = "HQ"
# Magic numbers of audio containers: a file starting with one of these is "audio we could not decode", anything else
# is "not an audio file".
_AUDIO_MAGIC = (
    b"RIFF",
    b"RF64",
    b"FORM",  # AIFF
    b"fLaC",
    b"OggS",
    b"ID3",  # MP3 with ID3v2 tag
    b"caff",
    b"\x1aE\xdf\xa3",  # Matroska / WebM
    b"0&\xb2u",  # ASF / WMA
    b".snd",
)
# libsndfile's log line for a data chunk whose size overstates the file: "data : 32000 (should be 15978)"
_OVERSTATED_DATA = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_WARNED_OVERSTATED: set[str] = set()
logger = logging.getLogger(__name__)
_FALLBACK_EXTENSIONS = {".m4a", ".mp4", ".aac", ".wma", ".webm", ".mka", ".mkv", ".opus", ".amr", ".3gp", ".ac3"}


class AudioDecodeError(ValueError):
    """An audio source could not be turned into a waveform; the message names the file and the reason."""


class AudioFileNotFoundError(AudioDecodeError, FileNotFoundError):
    """The audio file does not exist (both an :class:`AudioDecodeError` and a ``FileNotFoundError``)."""


# --------------------------------------------------------------------------------------------------------------------
# Source normalisation
# --------------------------------------------------------------------------------------------------------------------


class _Source:
    """A normalised source: either a path on disk, in-memory bytes, or an already-decoded array."""

    __slots__ = ("path", "data", "array", "sr", "name")

    def __init__(self, path=None, data=None, array=None, sr=None, name="<audio>"):
        self.path, self.data, self.array, self.sr, self.name = path, data, array, sr, name

    def open(self) -> Any:
        """Something ``soundfile`` can open (a path or a fresh BytesIO)."""
        return self.path if self.path is not None else io.BytesIO(self.data)

    def head(self, n: int = 16) -> bytes:
        if self.data is not None:
            return bytes(self.data[:n])
        with open(self.path, "rb") as fh:
            return fh.read(n)


def _fail(name: str, reason: str, cls: type[AudioDecodeError] = AudioDecodeError) -> AudioDecodeError:
    return cls(f"cannot decode {name!r}: {reason}")


def _normalise(source: Any, name: str | None) -> _Source:
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        return _check_path(path, name or path)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        src = _Source(data=data, name=name or "<bytes>")
        if not data:
            raise _fail(src.name, "empty file (0 bytes)")
        return src
    if isinstance(source, tuple) and len(source) == 2:
        array, sr = source
        return _Source(array=array, sr=sr, name=name or "<array>")
    if isinstance(source, Mapping):
        if source.get("array") is not None:
            sr = source.get("sampling_rate", source.get("sample_rate"))
            return _Source(array=source["array"], sr=sr, name=name or str(source.get("path") or "<array>"))
        data, path = source.get("bytes"), source.get("path")
        if data:  # datasets.Audio(decode=False) stores {bytes, path}: bytes win when present
            return _Source(data=bytes(data), name=name or str(path or "<bytes>"))
        if path:
            return _check_path(os.fspath(path), name or os.fspath(path))
        label = name or str(path or "<audio dict>")
        if data is not None:
            raise _fail(label, "empty file (0 bytes)")
        raise _fail(label, "audio dict has neither 'bytes' nor 'path' nor 'array'")
    if hasattr(source, "read"):  # an open binary file
        return _normalise(source.read(), name or getattr(source, "name", None) or "<file object>")
    if isinstance(source, np.ndarray):
        raise _fail(name or "<array>", "a bare array has no sampling rate; pass (array, sampling_rate)")
    raise _fail(name or repr(source)[:80], f"unsupported audio source type {type(source).__name__}")


def _check_path(path: str, name: str) -> _Source:
    if not os.path.exists(path):
        raise _fail(name, "file not found", AudioFileNotFoundError)
    if os.path.isdir(path):
        raise _fail(name, "is a directory, not an audio file")
    if os.path.getsize(path) == 0:
        raise _fail(name, "empty file (0 bytes)")
    return _Source(path=path, name=name)


def _looks_like_audio(head: bytes) -> bool:
    if head.startswith(_AUDIO_MAGIC):
        return True
    if len(head) >= 8 and head[4:8] == b"ftyp":  # MP4 / M4A
        return True
    return len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0  # MPEG audio frame sync


def _fallback_available() -> bool:
    try:
        import audioread

        return any(b.__name__ != "RawAudioFile" for b in audioread.available_backends())
    except Exception:  # pragma: no cover - audioread missing or broken
        return False


def _open_error(src: _Source, err: Exception) -> AudioDecodeError:
    msg = re.sub(r"^Error opening (?:'.*'|<.*>): ", "", str(err)).strip()
    if not _looks_like_audio(src.head(16)):
        return _fail(src.name, f"not an audio file (libsndfile: {msg})")
    return _fail(src.name, f"truncated, corrupt or unsupported audio (libsndfile: {msg})")


# --------------------------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------------------------


def audio_info(source: Any, *, name: str | None = None) -> tuple[int, int, int]:
    """``(sampling_rate, num_frames, channels)`` read from the header, without decoding the samples.

    Accepts the same sources as :func:`load_audio`. For MP3 the frame count is libsndfile's estimate.
    """
    src = _normalise(source, name)
    if src.array is not None:
        arr = np.asarray(src.array)
        frames, channels = _array_layout(arr)
        return int(src.sr or 0), frames, channels
    try:
        info = sf.info(src.open())
    except (sf.LibsndfileError, RuntimeError) as err:
        raise _open_error(src, err) from None
    return int(info.samplerate), int(info.frames), int(info.channels)


def check_audio(source: Any, *, max_duration: float | None = None, name: str | None = None) -> tuple[int, int, int]:
    """Everything :func:`load_audio` checks before reading a sample: ``(sampling_rate, num_frames, channels)`` of a
    source whose header is readable, not empty and not longer than ``max_duration`` seconds.

    Reads the header only (microseconds per file), so a whole dataset can be checked before training or evaluation
    starts. What only decoding finds (NaN/Inf samples, corruption inside compressed data) is left to
    :func:`load_audio`. A container libsndfile cannot open but the audioread fallback may decode gives
    ``(0, 0, 0)`` (its header is checked when it is decoded). Raises :class:`AudioDecodeError` with the same one-line
    messages as :func:`load_audio`.
    """
    src = _normalise(source, name)
    if src.array is not None:
        wav, sr = _from_array(src)
        _check_duration(src.name, wav.shape[0], sr, max_duration)
        if wav.shape[0] == 0:
            raise _fail(src.name, "zero-length audio (0 samples)")
        return sr, int(wav.shape[0]), _array_layout(np.asarray(src.array))[1]
    try:
        info = sf.info(src.open())
    except (sf.LibsndfileError, RuntimeError) as err:
        refused = _unreadable(src, err)
        if refused is not None:
            raise refused from None
        return 0, 0, 0
    sr, frames, channels = int(info.samplerate), int(info.frames), int(info.channels)
    if sr <= 0 or channels <= 0:
        raise _fail(src.name, f"invalid header ({sr} Hz, {channels} channels)")
    _check_duration(src.name, frames, sr, max_duration)
    if frames == 0:
        raise _fail(src.name, "zero-length audio (0 samples)")
    return sr, frames, channels


def load_audio(
    source: Any,
    sampling_rate: int | None = DEFAULT_SAMPLING_RATE,
    *,
    max_duration: float | None = None,
    name: str | None = None,
) -> np.ndarray:
    """Decode ``source`` into a float32 mono 1-D waveform at ``sampling_rate`` Hz.

    ``source`` is a path (str / Path), raw file bytes, an open binary file, a ``{"path", "bytes"}`` dict as stored by
    ``datasets.Audio(decode=False)`` (bytes preferred when present), an ``(array, sampling_rate)`` tuple or an
    ``{"array", "sampling_rate"}`` dict. ``sampling_rate=None`` keeps the native rate. ``max_duration`` (seconds) is
    checked from the header before any sample is read. ``name`` overrides the label used in error messages.

    Raises :class:`AudioDecodeError` (``AudioFileNotFoundError`` for a missing file) with a one-line message.
    """
    src = _normalise(source, name)
    if src.array is not None:
        wav, native_sr = _from_array(src)
        _check_duration(src.name, wav.shape[0], native_sr, max_duration)
    else:
        wav, native_sr = _decode(src, max_duration)
    if wav.shape[0] == 0:
        raise _fail(src.name, "zero-length audio (0 samples)")
    if not np.isfinite(wav).all():
        raise _fail(src.name, "contains non-finite samples (NaN/Inf)")
    if sampling_rate is not None and native_sr != sampling_rate:
        wav = resample(wav, native_sr, sampling_rate)
    return np.ascontiguousarray(wav, dtype=np.float32)


def to_mono(wav: np.ndarray) -> np.ndarray:
    """Average a ``(frames, channels)`` array to ``(frames,)`` float32."""
    wav = np.asarray(wav)
    if wav.ndim == 1:
        return wav.astype(np.float32, copy=False)
    if wav.shape[1] == 1:
        return wav[:, 0].astype(np.float32, copy=False)
    return wav.mean(axis=1, dtype=np.float64).astype(np.float32)


def resample(wav: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample a mono float32 waveform with soxr (HQ)."""
    if orig_sr == target_sr:
        return wav
    if orig_sr <= 0 or target_sr <= 0:
        raise ValueError(f"invalid sampling rates {orig_sr} -> {target_sr}")
    return soxr.resample(wav, orig_sr, target_sr, quality=_RESAMPLE_QUALITY).astype(np.float32, copy=False)


# --------------------------------------------------------------------------------------------------------------------
# Windows of long audio: one rule, whether the audio is in memory or streamed from disk
# --------------------------------------------------------------------------------------------------------------------


class _WindowCutter:
    """The windowing rule: windows of ``window_s`` seconds starting every ``hop_s`` seconds (default: ``window_s``, no
    overlap); a final partial window when it covers audio that no earlier window did and lasts at least ``min_last_s``
    (audio shorter than one window is one window). Fed samples in pieces (:meth:`push`), it keeps only what later
    windows still need, so a stream is cut with bounded memory."""

    def __init__(self, sampling_rate: int, window_s: float, hop_s: float | None = None, min_last_s: float = 1.0):
        hop_s = window_s if hop_s is None else hop_s
        if window_s <= 0 or hop_s <= 0:
            raise ValueError(f"window_s and hop_s must be > 0 (got {window_s}, {hop_s})")
        self.sr = sampling_rate
        self.win, self.hop = int(round(window_s * sampling_rate)), int(round(hop_s * sampling_rate))
        self.min_last = max(1, int(round(min_last_s * sampling_rate)))
        self.buf = np.zeros(0, dtype=np.float32)  # samples from absolute index `buf_start`
        self.buf_start = 0
        self.next_start = 0  # absolute start of the next window
        self.covered = 0  # absolute end of the last window given

    def push(self, samples: np.ndarray) -> Iterator[tuple[float, float, np.ndarray]]:
        """The windows that the samples so far complete."""
        self.buf = np.concatenate([self.buf, samples]) if self.buf.size else samples
        while self.next_start + self.win <= self.buf_start + self.buf.size:
            lo = self.next_start - self.buf_start
            yield self._window(self.next_start, self.buf[lo : lo + self.win])
            self.covered = self.next_start + self.win
            self.next_start += self.hop
        drop = min(self.next_start - self.buf_start, self.buf.size)
        if drop > 0:
            self.buf = self.buf[drop:]
            self.buf_start += drop

    def finish(self) -> Iterator[tuple[float, float, np.ndarray]]:
        """The final partial window, if the rule gives one."""
        end = self.buf_start + self.buf.size
        if end > self.covered and self.next_start < end:
            if end - self.next_start >= self.min_last or self.covered == 0:
                yield self._window(self.next_start, self.buf[self.next_start - self.buf_start :])

    def _window(self, start: int, wave: np.ndarray) -> tuple[float, float, np.ndarray]:
        return start / self.sr, (start + wave.shape[0]) / self.sr, wave.copy()


def array_windows(
    wave: np.ndarray, sampling_rate: int, window_s: float | None, hop_s: float | None = None, min_last_s: float = 1.0
) -> Iterator[tuple[float, float, np.ndarray]]:
    """``(start_s, end_s, wave)`` windows of an in-memory waveform (the rule of :class:`_WindowCutter`, as for a
    streamed file); ``window_s=None``: the whole waveform as one window."""
    if window_s is None:
        yield 0.0, wave.shape[0] / sampling_rate, wave
        return
    cutter = _WindowCutter(sampling_rate, window_s, hop_s, min_last_s)
    yield from cutter.push(wave)
    yield from cutter.finish()


def iter_audio_windows(
    path: str | os.PathLike,
    window_s: float,
    hop_s: float | None = None,
    sampling_rate: int = DEFAULT_SAMPLING_RATE,
    block_s: float = 10.0,
    *,
    min_last_s: float = 1.0,
    name: str | None = None,
) -> Iterator[tuple[float, float, np.ndarray]]:
    """Stream ``(start_s, end_s, window)`` from a long file with bounded memory (windows as :func:`array_windows`).

    The file is read from disk ``block_s`` seconds at a time (``SoundFile.read``), downmixed and resampled
    incrementally with ``soxr.ResampleStream``; at most about ``window_s + block_s`` seconds are held in memory.
    Refuses what :func:`load_audio` refuses, with the same messages (a read error or non-finite samples name the
    time where they were met)."""
    if block_s <= 0:
        raise ValueError(f"block_s must be > 0 (got {block_s})")
    cutter = _WindowCutter(sampling_rate, window_s, hop_s, min_last_s)
    src = _check_path(os.fspath(path), name or os.fspath(path))
    name = src.name
    try:
        fh = sf.SoundFile(src.path)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise _open_error(src, err) from None

    with fh:
        in_sr = fh.samplerate
        if fh.frames == 0:
            raise _fail(name, "zero-length audio (0 samples)")
        _warn_if_overstated(fh, name)
        block = max(1, int(round(block_s * in_sr)))
        stream = soxr.ResampleStream(in_sr, sampling_rate, 1, dtype="float32", quality=_RESAMPLE_QUALITY)
        read_in = 0
        eof = False
        while not eof:
            try:
                chunk = fh.read(block, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError) as err:
                raise _fail(name, f"truncated or corrupt audio after {read_in / in_sr:.2f} s ({err})") from None
            read_in += chunk.shape[0]
            eof = chunk.shape[0] < block  # not fh.frames: MP3 frame counts are estimates
            mono = to_mono(chunk)
            if not np.isfinite(mono).all():
                raise _fail(name, f"contains non-finite samples (NaN/Inf) near {read_in / in_sr:.2f} s")
            if in_sr != sampling_rate:
                mono = stream.resample_chunk(mono, last=eof)
            yield from cutter.push(mono)
        if read_in == 0:
            raise _fail(name, "zero-length audio (0 samples)")
        yield from cutter.finish()


def open_audio_windows(
    source: Any,
    sampling_rate: int,
    window_s: float | None,
    hop_s: float | None = None,
    *,
    max_duration: float | None = None,
    name: str | None = None,
) -> tuple[float, Iterator[tuple[float, float, np.ndarray]]]:
    """``(duration_s, windows)`` of any audio source, windows being ``(start_s, end_s, wave)`` at ``sampling_rate``.

    A file on disk longer than ``window_s`` is streamed in blocks (:func:`iter_audio_windows`: memory does not grow
    with its length); anything else is decoded whole by :func:`load_audio` and cut by :func:`array_windows`. Either
    way the header is checked first (:func:`check_audio`: readable, not empty, within ``max_duration``) and the same
    files are refused, here or while iterating."""
    if isinstance(source, (str, os.PathLike)) and window_s is not None:
        sr, frames, _ = check_audio(source, max_duration=max_duration, name=name)
        duration = frames / sr if sr else 0.0  # 0: a container only the fallback decoder reads, decoded whole
        if duration > window_s:
            return duration, iter_audio_windows(source, window_s, hop_s, sampling_rate=sampling_rate, name=name)
    wave = load_audio(source, sampling_rate, max_duration=max_duration, name=name)
    return wave.shape[0] / sampling_rate, array_windows(wave, sampling_rate, window_s, hop_s)


# --------------------------------------------------------------------------------------------------------------------
# Internals
# --------------------------------------------------------------------------------------------------------------------


def _array_layout(arr: np.ndarray) -> tuple[int, int]:
    if arr.ndim == 1:
        return arr.shape[0], 1
    if arr.ndim == 2:
        # (channels, frames) or (frames, channels): the channel axis is the short one.
        return (arr.shape[1], arr.shape[0]) if arr.shape[0] < arr.shape[1] else (arr.shape[0], arr.shape[1])
    raise ValueError(f"expected a 1-D or 2-D audio array, got shape {arr.shape}")


def _from_array(src: _Source) -> tuple[np.ndarray, int]:
    if not src.sr or int(src.sr) <= 0:
        raise _fail(src.name, f"invalid or missing sampling rate {src.sr!r} for an in-memory array")
    arr = np.asarray(src.array)
    if arr.ndim not in (1, 2):
        raise _fail(src.name, f"expected a 1-D or 2-D audio array, got shape {arr.shape}")
    if np.issubdtype(arr.dtype, np.integer):
        arr = arr.astype(np.float32) / float(-np.iinfo(arr.dtype).min if arr.dtype.kind == "i" else 1 << 15)
    elif not np.issubdtype(arr.dtype, np.floating):
        raise _fail(src.name, f"unsupported array dtype {arr.dtype}")
    if arr.ndim == 2 and arr.shape[0] < arr.shape[1]:
        arr = arr.T
    return to_mono(arr), int(src.sr)


def _check_duration(name: str, frames: int, sr: int, max_duration: float | None) -> None:
    if max_duration is not None and sr > 0 and frames / sr > max_duration:
        raise _fail(name, f"duration {frames / sr:.1f} s exceeds max_duration={max_duration:g} s")


def _decode(src: _Source, max_duration: float | None) -> tuple[np.ndarray, int]:
    try:
        fh = sf.SoundFile(src.open())
    except (sf.LibsndfileError, RuntimeError) as err:
        return _decode_fallback(src, err, max_duration)
    with fh:
        sr, frames = int(fh.samplerate), int(fh.frames)
        _check_duration(src.name, frames, sr, max_duration)
        _warn_if_overstated(fh, src.name)
        try:
            data = fh.read(dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as err:
            raise _fail(src.name, f"truncated or corrupt audio (libsndfile: {err})") from None
    return to_mono(data), sr


def _unreadable(src: _Source, err: Exception) -> AudioDecodeError | None:
    """The error for a source libsndfile cannot open, or None when the audioread fallback will try it."""
    ext = Path(src.path or src.name).suffix.lower()
    if src.path is None or ext not in _FALLBACK_EXTENSIONS:
        return _open_error(src, err)
    if not _fallback_available():
        return _fail(
            src.name,
            f"libsndfile cannot read {ext} files and no fallback decoder is available "
            "(audioread found no FFmpeg/GStreamer/CoreAudio/MAD backend); convert it to WAV/FLAC/OGG/MP3",
        )
    return None


def _decode_fallback(src: _Source, err: Exception, max_duration: float | None) -> tuple[np.ndarray, int]:
    """librosa/audioread for containers libsndfile does not read, only when a real backend exists."""
    refused = _unreadable(src, err)
    if refused is not None:
        raise refused from None
    import librosa

    if max_duration is not None:
        try:
            dur = librosa.get_duration(path=src.path)
        except Exception as err2:
            raise _fail(src.name, f"cannot read header via audioread ({err2})") from None
        if dur > max_duration:
            raise _fail(src.name, f"duration {dur:.1f} s exceeds max_duration={max_duration:g} s")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wav, sr = librosa.load(src.path, sr=None, mono=True)
    except Exception as err2:
        raise _fail(src.name, f"fallback decoder failed ({type(err2).__name__}: {err2})") from None
    return wav.astype(np.float32, copy=False), int(sr)


def _warn_if_overstated(fh: sf.SoundFile, name: str) -> None:
    """One warning naming a file whose header promises more samples than it holds (decoded as far as its data goes).
    libsndfile itself notices it, reads what is there, and records both sizes in its log (``data : N (should be M)``);
    a file is named once per process, not at every epoch or window."""
    match = _OVERSTATED_DATA.search(fh.extra_info)
    if match is None or name in _WARNED_OVERSTATED:
        return
    declared, held = int(match.group(1)), int(match.group(2))
    if declared <= held:
        return
    if len(_WARNED_OVERSTATED) >= 10_000:  # a server meets new upload names for as long as it runs
        _WARNED_OVERSTATED.clear()
    _WARNED_OVERSTATED.add(name)
    seconds = fh.frames / fh.samplerate
    logger.warning(
        "%r: the header promises %.2f s of audio but the file holds %.2f s (cut short?): decoded as far as its data goes",
        name, seconds * declared / max(held, 1), seconds,
    )  # fmt: skip
