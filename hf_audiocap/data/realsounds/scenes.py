"""Scenes of real recordings: SynthCaps' composer and caption grammar over a bank of recordings.

The scene plan (which classes, their roles and timeline), the captions and the mix are SynthCaps' own
(:mod:`hf_audiocap.data.synthcaps`); only the source bank differs: a source is rendered by cutting one recording of
its class from the split's share, lightly augmented so that a model cannot memorise a recording (speed and so pitch
x0.9-1.1, a random band-pass, +-3 dB), placed in its window, at its loudness.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from hf_audiocap.data.audio import load_audio, resample
from hf_audiocap.data.realsounds.classes import CLASSES
from hf_audiocap.data.synthcaps.bank import SourceBank
from hf_audiocap.data.synthcaps.synthesis import _LEVEL_DB, _band, _fade, _shaped_noise_from, apply_loudness

SPEED_RANGE = (0.9, 1.1)
GAIN_JITTER_DB = 3.0


@functools.lru_cache(maxsize=512)
def _load(path: str, sr: int) -> np.ndarray:
    return load_audio(path, sr)


def _min_window(name: str, count=None, tempo=None, loudness=None) -> float:
    return 2.5 if loudness in ("getting louder", "fading") else 2.0


def _energetic_start(x: np.ndarray, length: int, rng: np.random.Generator, sr: int) -> int:
    """A start for a ``length``-sample cut of ``x`` holding at least half the energy of the loudest such cut, so the
    cut is never the silence between two barks."""
    hop = max(1, sr // 50)
    frames = np.add.reduceat(x.astype(np.float64) ** 2, np.arange(0, len(x), hop))
    k = max(1, length // hop)
    if len(frames) <= k:
        return 0
    window = np.convolve(frames, np.ones(k), mode="valid")
    good = np.flatnonzero(window >= 0.5 * window.max())
    return int(min(good[int(rng.integers(len(good)))] * hop, len(x) - length))


def recording_bank(
    recordings: dict[str, list[dict]], root, *, augment: bool = True, picked: list | None = None, sr: int = 16000
) -> SourceBank:
    """A :class:`SourceBank` whose sources are the classes of ``recordings`` (``{class: [record]}``, each record's
    ``file`` relative to ``root``). ``picked`` collects ``(class, recording id)`` for each source rendered."""
    catalogue = tuple(c for c in CLASSES if recordings.get(c.name))
    kinds = {c.name: c.kind for c in catalogue}

    def render(name, n, sr_, rng, *, w0, w1, count, pitch, tempo, loudness, level_db=None):
        recs = recordings[name]
        rec = recs[int(rng.integers(len(recs)))]
        if picked is not None:
            picked.append((name, rec["id"]))
        x = _load(str(root / rec["file"]), sr_)
        if augment:
            speed = rng.uniform(*SPEED_RANGE)
            x = resample(x, sr_, int(round(sr_ / speed)))  # played back at sr_: faster and higher, or slower and lower
            if rng.random() < 0.5:
                x = _shaped_noise_from(x, sr_, _band(rng.uniform(40.0, 400.0), rng.uniform(3000.0, 7000.0), 1.0))
        a, b = max(0, int(w0 * sr_)), min(n, int(w1 * sr_))
        length = b - a
        if len(x) >= length:
            start = _energetic_start(x, length, rng, sr_)
            seg = x[start : start + length]
        elif kinds[name] == "continuous":  # a texture shorter than its window is looped
            seg = np.tile(x, math.ceil(length / len(x)))[:length]
        else:  # an event shorter than its window is heard once
            seg = x
        out = np.zeros(n)
        out[a : a + len(seg)] = _fade(np.asarray(seg, dtype=np.float64).copy(), sr_, 0.02)
        onset, offset = a / sr_, (a + len(seg)) / sr_
        if level_db is None and loudness in _LEVEL_DB and augment:
            level_db = _LEVEL_DB[loudness] + rng.uniform(-GAIN_JITTER_DB, GAIN_JITTER_DB)
        return apply_loudness(out, sr_, onset, offset, loudness, level_db), onset, offset

    return SourceBank("realsounds", catalogue, _min_window, render)
