"""Helpers shared by the inference tests: a tiny random model saved to a folder, and small audio files."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import soundfile as sf

CAPTIONS = [
    "a dog barks twice",
    "rain falls loudly",
    "an engine is running while birds chirp",
    "a small bell rings three times",
]


def free_port() -> int:
    """A free TCP port on loopback, for a server started by a test."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def save_tiny_model(folder: Path, seed: int = 0) -> Path:
    """A 1-layer, 32-wide random AudioCap model + processor saved with save_pretrained (seconds to build). Its weight
    matrices are drawn larger than an initialised model's so that its captions depend on the audio."""
    import torch

    from hf_audiocap import (
        AudioCapConfig,
        AudioCapFeatureExtractor,
        AudioCapForConditionalGeneration,
        AudioCapProcessor,
        build_word_tokenizer,
    )

    tok = build_word_tokenizer(CAPTIONS)
    config = AudioCapConfig(
        vocab_size=len(tok),
        encoder={"d_model": 32, "encoder_layers": 1, "encoder_attention_heads": 2, "encoder_ffn_dim": 64},
        decoder={"d_model": 32, "decoder_layers": 1, "decoder_attention_heads": 2, "decoder_ffn_dim": 64},
    )
    model = AudioCapForConditionalGeneration(config).eval()
    # Every weight matrix drawn afresh, independently of the library's init (which changes): std 0.08 makes the
    # captions of this seed differ from clip to clip (a freshly initialised model says the same thing, or nothing).
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() > 1:
                param.normal_(0.0, 0.08, generator=generator)
    model.generation_config.max_length = 12
    folder = Path(folder)
    model.save_pretrained(folder)
    AudioCapProcessor(AudioCapFeatureExtractor(), tok).save_pretrained(folder)
    return folder


def write_tone(path: Path, seconds: float, sr: int = 16000, freq: float = 440.0, amp: float = 0.3) -> Path:
    t = np.arange(int(round(seconds * sr))) / sr
    sf.write(path, (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr, subtype="PCM_16")
    return Path(path)


def write_long_sparse_wav(path: Path, seconds: float, sr: int = 16000, block_s: float = 60.0) -> Path:
    """A long, mostly silent 16-bit WAV written block by block (a short beep each minute): quick, bounded memory."""
    block = int(block_s * sr)
    remaining = int(round(seconds * sr))
    beep = (0.3 * np.sin(2 * np.pi * 660 * np.arange(sr // 4) / sr)).astype(np.float32)
    with sf.SoundFile(path, "w", samplerate=sr, channels=1, subtype="PCM_16") as fh:
        while remaining > 0:
            n = min(block, remaining)
            chunk = np.zeros(n, dtype=np.float32)
            chunk[: min(n, beep.size)] = beep[: min(n, beep.size)]
            fh.write(chunk)
            remaining -= n
    return Path(path)


def write_overstated_wav(path: Path, seconds: float, declared_seconds: float, sr: int = 16000) -> Path:
    """A 16-bit WAV whose header declares `declared_seconds` but whose data stops after `seconds` (a recording or copy
    cut short): tones that change every 10 s, so the windows of a long one differ."""
    t = np.arange(int(round(declared_seconds * sr))) / sr
    freq = 200.0 + 700.0 * (np.floor(t / 10.0) % 4)
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr, subtype="PCM_16")
    data = Path(path).read_bytes()
    header = data.index(b"data") + 8
    Path(path).write_bytes(data[: header + 2 * int(round(seconds * sr))])
    return Path(path)


def write_bad_files(folder: Path) -> dict[str, Path]:
    """Files every entry point must refuse with a one-line message: empty, not audio, corrupt (a WAV cut inside its
    header), zero-length, one sample (shorter than the model's minimum input)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    empty = folder / "empty.wav"
    empty.write_bytes(b"")
    text = folder / "notes.wav"
    text.write_text("this is not audio at all\n" * 20)
    good = write_tone(folder / "_full.wav", 2.0)
    corrupt = folder / "corrupt.wav"
    corrupt.write_bytes(good.read_bytes()[:20])  # "RIFF....WAVEfmt " and nothing else
    good.unlink()
    zero = folder / "zero.wav"
    sf.write(zero, np.zeros(0, dtype=np.float32), 16000)
    one = folder / "one_sample.wav"
    sf.write(one, np.full(1, 0.5, dtype=np.float32), 16000)
    return {"empty": empty, "not_audio": text, "corrupt": corrupt, "zero_length": zero, "one_sample": one}
