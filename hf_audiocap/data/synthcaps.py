"""SynthCaps: a deterministic procedural audio-captioning benchmark in the Clotho on-disk layout.

Every clip (3-10 s, 16 kHz mono, 16-bit PCM WAV) mixes 1 to 3 synthesised sound sources over pink or brown
background noise. Everything a caption says is audible: the sources themselves (15 spectro-temporal signatures), the
number of discrete events (once / twice / three times), loudness and its change (real gain envelopes), pitch (real
frequency changes), tempo (real event rates) and the temporal relation of the sources (``then`` = sequential and
non-overlapping, ``while`` = overlapping, ``in the background`` = a quieter continuous source under a foreground one).

Each clip gets 5 captions of 6-20 words, drawn from a weighted grammar (a consensus core with variation, like human
annotators). Validation and test hold multi-source combinations (unordered sets of source types) never seen in
training; every single source still appears in training, alone and in combinations.

Layout written by :func:`generate_synthcaps` (the same as Clotho, so the same loader reads it)::

    DIR/{train,validation,test}/synthcaps_{split}_{index:05d}.wav
    DIR/clotho_captions_{split}.csv             file_name,caption_1,...,caption_5
    DIR/synthcaps_ground_truth_{split}.jsonl    one JSON object per clip (sources, attributes, timing, relation)
    DIR/synthcaps_info.json                     seed, arguments, generator version, source catalogue

Default sizes (those of ``make demo``): 6000 train, 200 validation, 200 test clips.
The same seed and arguments give byte-identical files, whatever the number of workers.
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import json
import os
import re
import shutil
import wave
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hf_audiocap.metrics.text import caption_words, normalize_caption

GENERATOR_VERSION = "1.0.0"
SAMPLE_RATE = 16000
SPLITS = ("train", "validation", "test")
DEFAULT_NUM_TRAIN = 6000
DEFAULT_NUM_VALIDATION = 200
DEFAULT_NUM_TEST = 200
MIN_DURATION = 3.0
MAX_DURATION = 10.0
MIN_WORDS = 6
MAX_WORDS = 20
CAPTIONS_PER_CLIP = 5

_SPLIT_IDS = {"train": 0, "validation": 1, "test": 2}
# held-out pairs of source types; triples containing one of them are held out too
_HELD_OUT_PAIRS_PER_SPLIT = 8

# nominal loudness levels: RMS over the active window, dBFS
_LEVEL_DB = {"normal": -20.0, "loud": -12.0, "quiet": -30.0}
_RAMP_DB = (-34.0, -12.0)  # getting louder goes low -> high, fading goes high -> low


def default_workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))


# ----------------------------------------------------------------------------------------------------------------------
# Source catalogue: the lexicon (how captions name and describe a source) and the kind of source.
# kind: "discrete" (countable events), "repetitive" (events at a rate: tempo), "continuous" (a texture)
# subjects: (template with an optional "{adj}" slot, number, verbs as (base, 3rd person, -ing)) -- first = most common
# ----------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceSpec:
    name: str
    kind: str
    pitched: bool
    synonyms: tuple[str, ...]
    subjects: tuple[tuple[str, str, tuple[tuple[str, str, str], ...]], ...]
    loud_adj: tuple[str, ...] = ("loud ",)
    quiet_adj: tuple[str, ...] = ("quiet ", "soft ", "faint ")
    high_adj: tuple[str, ...] = ("high pitched ", "shrill ")
    low_adj: tuple[str, ...] = ("low pitched ", "deep ")
    high_adv: tuple[str, ...] = (" at a high pitch", " in a high tone")
    low_adv: tuple[str, ...] = (" at a low pitch", " in a low tone")
    description: str = ""


def _v(base: str, third: str, ing: str) -> tuple[str, str, str]:
    return (base, third, ing)


CATALOGUE: tuple[SourceSpec, ...] = (
    SourceSpec(
        "beep",
        "discrete",
        True,
        ("beep", "beeps", "beeping", "beeper", "machine", "device"),
        (
            ("a {adj}machine", "sg", (_v("beep", "beeps", "beeping"),)),
            (
                "an {adj}electronic beep",
                "sg",
                (_v("sound", "sounds", "sounding"), _v("go off", "goes off", "going off")),
            ),
            ("a {adj}device", "sg", (_v("beep", "beeps", "beeping"),)),
        ),
        description="pure sine tone bursts",
    ),
    SourceSpec(
        "siren",
        "continuous",
        True,
        ("siren", "sirens", "ambulance", "police"),
        (
            ("a {adj}siren", "sg", (_v("wail", "wails", "wailing"), _v("blare", "blares", "blaring"))),
            ("a {adj}police siren", "sg", (_v("wail", "wails", "wailing"), _v("sound", "sounds", "sounding"))),
            ("an {adj}ambulance siren", "sg", (_v("wail", "wails", "wailing"),)),
        ),
        description="harmonic tone with a slow periodic frequency sweep",
    ),
    SourceSpec(
        "engine",
        "continuous",
        True,
        ("engine", "engines", "motor", "truck", "generator"),
        (
            (
                "an {adj}engine",
                "sg",
                (_v("hum", "hums", "humming"), _v("run", "runs", "running"), _v("idle", "idles", "idling")),
            ),
            ("a {adj}motor", "sg", (_v("hum", "hums", "humming"), _v("drone", "drones", "droning"))),
            ("a {adj}truck engine", "sg", (_v("rumble", "rumbles", "rumbling"), _v("idle", "idles", "idling"))),
            ("a {adj}generator", "sg", (_v("hum", "hums", "humming"),)),
        ),
        high_adj=("high pitched ", "whining "),
        low_adj=("low pitched ", "deep "),
        description="low harmonic hum with firing-rate modulation and rumble",
    ),
    SourceSpec(
        "rain",
        "continuous",
        False,
        ("rain", "raindrops", "rainfall", "raining", "downpour"),
        (
            ("{adj}rain", "mass", (_v("fall", "falls", "falling"), _v("pour", "pours", "pouring"))),
            ("{adj}raindrops", "pl", (_v("fall", "falls", "falling"), _v("patter", "patters", "pattering"))),
            ("the {adj}rain", "mass", (_v("fall", "falls", "falling"), _v("patter", "patters", "pattering"))),
        ),
        loud_adj=("heavy ",),
        quiet_adj=("light ", "gentle "),
        description="high-passed noise with dense droplet clicks",
    ),
    SourceSpec(
        "wind",
        "continuous",
        False,
        ("wind", "winds", "breeze", "gusts"),
        (
            ("the {adj}wind", "mass", (_v("blow", "blows", "blowing"), _v("howl", "howls", "howling"))),
            ("{adj}wind", "mass", (_v("blow", "blows", "blowing"), _v("rush", "rushes", "rushing"))),
            ("a {adj}breeze", "sg", (_v("blow", "blows", "blowing"),)),
            ("{adj}gusts of wind", "pl", (_v("blow", "blows", "blowing"),)),
        ),
        loud_adj=("strong ",),
        quiet_adj=("gentle ", "light "),
        description="low band-passed noise with slow gusting amplitude",
    ),
    SourceSpec(
        "clock",
        "repetitive",
        False,
        ("clock", "clocks"),
        (
            ("a {adj}clock", "sg", (_v("tick", "ticks", "ticking"),)),
            ("an old {adj}clock", "sg", (_v("tick", "ticks", "ticking"),)),
            (
                "a {adj}wall clock",
                "sg",
                (_v("tick", "ticks", "ticking"), _v("tick away", "ticks away", "ticking away")),
            ),
        ),
        description="short resonant tick/tock clicks at a regular rate",
    ),
    SourceSpec(
        "bell",
        "discrete",
        True,
        ("bell", "bells", "church"),
        (
            ("a {adj}bell", "sg", (_v("ring", "rings", "ringing"), _v("chime", "chimes", "chiming"))),
            ("a {adj}church bell", "sg", (_v("ring", "rings", "ringing"), _v("toll", "tolls", "tolling"))),
        ),
        description="inharmonic partials with a long exponential decay",
    ),
    SourceSpec(
        "birds",
        "repetitive",
        True,
        ("bird", "birds", "songbird", "songbirds"),
        (
            ("{adj}birds", "pl", (_v("chirp", "chirps", "chirping"), _v("tweet", "tweets", "tweeting"))),
            ("a {adj}bird", "sg", (_v("chirp", "chirps", "chirping"), _v("sing", "sings", "singing"))),
            ("some {adj}birds", "pl", (_v("chirp", "chirps", "chirping"), _v("sing", "sings", "singing"))),
            ("a {adj}songbird", "sg", (_v("chirp", "chirps", "chirping"),)),
        ),
        description="fast high frequency sweeps (chirps) at a rate",
    ),
    SourceSpec(
        "knocking",
        "discrete",
        False,
        ("knock", "knocks", "knocking", "knocked", "door"),
        (
            ("someone", "sg", (_v("knock on a door", "knocks on a door", "knocking on a door"),)),
            ("a person", "sg", (_v("knock on the door", "knocks on the door", "knocking on the door"),)),
            (
                "somebody",
                "sg",
                (_v("knock on a wooden door", "knocks on a wooden door", "knocking on a wooden door"),),
            ),
        ),
        description="damped low resonance with a short click",
    ),
    SourceSpec(
        "whistle",
        "discrete",
        True,
        ("whistle", "whistles", "whistling", "whistled"),
        (
            ("someone", "sg", (_v("whistle", "whistles", "whistling"),)),
            ("a {adj}whistle", "sg", (_v("blow", "blows", "blowing"), _v("sound", "sounds", "sounding"))),
            ("a person", "sg", (_v("whistle", "whistles", "whistling"),)),
        ),
        description="sustained pure tone with vibrato and breath noise",
    ),
    SourceSpec(
        "water",
        "continuous",
        False,
        ("water", "stream", "faucet", "brook", "creek"),
        (
            ("{adj}water", "mass", (_v("run", "runs", "running"), _v("flow", "flows", "flowing"))),
            ("a {adj}stream", "sg", (_v("flow", "flows", "flowing"), _v("babble", "babbles", "babbling"))),
            ("a {adj}faucet", "sg", (_v("run", "runs", "running"),)),
            ("a {adj}brook", "sg", (_v("babble", "babbles", "babbling"), _v("trickle", "trickles", "trickling"))),
        ),
        description="mid band noise with dense rising bubble chirps",
    ),
    SourceSpec(
        "footsteps",
        "repetitive",
        False,
        ("footsteps", "footstep", "steps", "walks", "walking", "walk"),
        (
            ("someone", "sg", (_v("walk", "walks", "walking"), _v("walk by", "walks by", "walking by"))),
            ("{adj}footsteps", "pl", (_v("sound", "sound", "sounding"), _v("echo", "echo", "echoing"))),
            ("a person", "sg", (_v("walk", "walks", "walking"),)),
            ("{adj}steps", "pl", (_v("sound", "sound", "sounding"),)),
        ),
        description="low thuds with a short scuff at a walking rate",
    ),
    SourceSpec(
        "alarm",
        "repetitive",
        True,
        ("alarm", "alarms", "buzzer", "buzzing"),
        (
            ("an {adj}alarm", "sg", (_v("buzz", "buzzes", "buzzing"), _v("go off", "goes off", "going off"))),
            ("a {adj}buzzer", "sg", (_v("sound", "sounds", "sounding"), _v("buzz", "buzzes", "buzzing"))),
            ("an {adj}alarm", "sg", (_v("sound", "sounds", "sounding"),)),
        ),
        description="square-wave pulses at a rate",
    ),
    SourceSpec(
        "dog",
        "discrete",
        True,
        ("dog", "dogs", "puppy", "hound"),
        (
            ("a {adj}dog", "sg", (_v("bark", "barks", "barking"),)),
            ("a {adj}puppy", "sg", (_v("yap", "yaps", "yapping"), _v("bark", "barks", "barking"))),
            ("a {adj}hound", "sg", (_v("bark", "barks", "barking"),)),
        ),
        loud_adj=(),
        quiet_adj=(),
        high_adj=("small ", "little "),
        low_adj=("big ", "large "),
        high_adv=(" in a high voice", " with a high pitch"),
        low_adv=(" in a deep voice", " with a low pitch"),
        description="harmonic bursts with a falling fundamental and noise",
    ),
    SourceSpec(
        "horn",
        "discrete",
        True,
        ("horn", "horns", "car", "cars", "honk", "honks", "honking"),
        (
            ("a {adj}car horn", "sg", (_v("honk", "honks", "honking"), _v("blare", "blares", "blaring"))),
            ("a {adj}car", "sg", (_v("honk", "honks", "honking"),)),
            ("a {adj}horn", "sg", (_v("honk", "honks", "honking"), _v("sound", "sounds", "sounding"))),
        ),
        description="two-tone sawtooth chord",
    ),
)
SOURCES: dict[str, SourceSpec] = {s.name: s for s in CATALOGUE}
SOURCE_NAMES: tuple[str, ...] = tuple(s.name for s in CATALOGUE)


# ----------------------------------------------------------------------------------------------------------------------
# Scoring: is a source named in a caption?
# ----------------------------------------------------------------------------------------------------------------------


def named_sources(caption: str, catalogue: Sequence[SourceSpec] = CATALOGUE) -> set[str]:
    """Names of the catalogue sources any of whose synonyms occurs (whole words) in ``caption``."""
    padded = f" {normalize_caption(caption)} "
    return {s.name for s in catalogue if any(f" {syn} " in padded for syn in s.synonyms)}


def score_sources(predictions: list[str], ground_truth: list[dict]) -> dict:
    """Micro-averaged source recall / precision of captions against SynthCaps ground truth.

    A source is named when any of its synonyms appears as whole words in the lowercased caption without punctuation.
    Catalogue sources named but absent from the clip are false positives.
    """
    if len(predictions) != len(ground_truth):
        raise ValueError(f"score_sources: {len(predictions)} predictions for {len(ground_truth)} ground-truth clips")
    tp = fp = fn = 0
    for caption, clip in zip(predictions, ground_truth):
        true = {src["name"] for src in clip["sources"]}
        extra = [
            SourceSpec(src["name"], "", False, tuple(src.get("synonyms", ())), ())
            for src in clip["sources"]
            if src["name"] not in SOURCES
        ]
        named = named_sources(caption or "", (*CATALOGUE, *extra))
        tp += len(named & true)
        fp += len(named - true)
        fn += len(true - named)
    return {
        "source_recall": tp / (tp + fn) if tp + fn else 0.0,
        "source_precision": tp / (tp + fp) if tp + fp else 0.0,
        "true_positives": tp,
        "false_positives": fp,
        "false_negatives": fn,
        "num_clips": len(predictions),
    }


def load_ground_truth(dataset_dir: str | os.PathLike, split: str) -> list[dict]:
    """The ground-truth records of ``split``, in the row order of ``clotho_captions_{split}.csv``."""
    root = Path(dataset_dir)
    gt_path = root / f"synthcaps_ground_truth_{split}.jsonl"
    csv_path = root / f"clotho_captions_{split}.csv"
    for path in (gt_path, csv_path):
        if not path.is_file():
            raise FileNotFoundError(f"SynthCaps file not found: '{path}'")
    records = {}
    with gt_path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if line.strip():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ValueError(f"'{gt_path}' line {line_no}: invalid JSON ({err})") from None
                records[rec["file_name"]] = rec
    with csv_path.open(encoding="utf-8", newline="") as f:
        names = [row["file_name"] for row in csv.DictReader(f)]
    missing = [n for n in names if n not in records]
    if missing:
        raise ValueError(f"'{gt_path}' has no record for '{missing[0]}' listed in '{csv_path}'")
    return [records[n] for n in names]


# ----------------------------------------------------------------------------------------------------------------------
# Synthesis: vectorised numpy, one function per source signature
# ----------------------------------------------------------------------------------------------------------------------

_PITCH_FACTOR = {"low": 0.5, "medium": 1.0, "high": 2.0}


def _fade(x: np.ndarray, sr: int, fade_s: float = 0.005) -> np.ndarray:
    k = min(len(x) // 2, max(1, int(fade_s * sr)))
    ramp = np.linspace(0.0, 1.0, k, dtype=np.float64)
    x[:k] *= ramp
    x[len(x) - k :] *= ramp[::-1]
    return x


def _fast_len(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n: FFT sizes with small prime factors only (arbitrary sizes can be 100x slower)."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            p = p35 << max(0, (-(-n // p35) - 1).bit_length())
            best = min(best, p)
            p35 *= 3
        p5 *= 5
    return best


def _shaped_noise(rng: np.random.Generator, n: int, sr: int, gain_fn) -> np.ndarray:
    """White noise shaped in the frequency domain by ``gain_fn(freqs)`` (amplitude)."""
    return _shaped_noise_from(rng.standard_normal(n), sr, gain_fn)


def _shaped_noise_from(x: np.ndarray, sr: int, gain_fn) -> np.ndarray:
    """``x`` filtered in the frequency domain by ``gain_fn(freqs)``, on a fast FFT size (zero-padded, no wrap-around)."""
    n = len(x)
    m = _fast_len(n)
    freqs = np.fft.rfftfreq(m, 1.0 / sr)
    return np.fft.irfft(np.fft.rfft(x, m) * gain_fn(freqs), m)[:n]


def _band(lo: float, hi: float, slope: float = 2.0):
    def gain(f):
        g = 1.0 / (1.0 + (lo / np.maximum(f, 1.0)) ** (2 * slope))
        return g / (1.0 + (f / hi) ** (2 * slope))

    return gain


def _colored(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """1/f^exponent power noise (1 = pink, 2 = brown), unit RMS."""
    x = _shaped_noise(rng, n, SAMPLE_RATE, lambda f: 1.0 / np.maximum(f, 20.0) ** (exponent / 2))
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


def _smooth_random(rng: np.random.Generator, n: int, sr: int, rate_hz: float) -> np.ndarray:
    """A smooth random curve in [0, 1] with about ``rate_hz`` control points per second."""
    k = max(2, int(n / sr * rate_hz) + 2)
    pts = rng.random(k)
    return np.interp(np.linspace(0, k - 1, n), np.arange(k), pts)


def _harmonics(f_inst: np.ndarray, sr: int, amps: Sequence[float], phase0: float = 0.0) -> np.ndarray:
    phase = 2 * np.pi * np.cumsum(f_inst) / sr + phase0
    out = np.zeros_like(phase)
    for k, a in enumerate(amps, 1):
        if a:
            out += a * np.sin(k * phase)
    return out


def _decay(n: int, sr: int, tau: float, attack: float = 0.002) -> np.ndarray:
    t = np.arange(n) / sr
    return np.minimum(1.0, t / max(attack, 1e-4)) * np.exp(-t / tau)


# --- single events (short arrays) -------------------------------------------------------------------------------------


def _ev_beep(rng, sr, pf):
    n = int(rng.uniform(0.18, 0.3) * sr)
    f = 1000.0 * pf * rng.uniform(0.96, 1.04)
    return _fade(_harmonics(np.full(n, f), sr, (1.0,)), sr, 0.006)


def _ev_bell(rng, sr, pf):
    n = int(1.4 * sr)
    f0 = 600.0 * pf * rng.uniform(0.97, 1.03)
    t = np.arange(n) / sr
    out = np.zeros(n)
    for ratio, amp, tau in ((0.5, 0.5, 0.9), (1.0, 1.0, 0.6), (1.19, 0.5, 0.45), (1.56, 0.4, 0.35), (2.0, 0.5, 0.3),
                            (2.51, 0.3, 0.2), (3.01, 0.2, 0.15)):  # fmt: skip
        if f0 * ratio < sr / 2 - 200:
            out += amp * np.sin(2 * np.pi * f0 * ratio * t) * np.exp(-t / tau)
    return _fade(out * np.minimum(1.0, t / 0.002), sr, 0.02)


def _ev_knock(rng, sr, pf):
    n = int(0.12 * sr)
    t = np.arange(n) / sr
    f = rng.uniform(160, 220)
    body = np.sin(2 * np.pi * f * t) * np.exp(-t / 0.025)
    click = np.convolve(rng.standard_normal(n), np.ones(4) / 4, mode="same") * np.exp(-t / 0.006)
    return _fade(body + 0.6 * click, sr, 0.002)


def _ev_whistle(rng, sr, pf):
    n = int(rng.uniform(0.45, 0.8) * sr)
    t = np.arange(n) / sr
    f = 1600.0 * pf * rng.uniform(0.95, 1.05) * (1 + 0.012 * np.sin(2 * np.pi * 5.5 * t)) * (1 + 0.04 * t / t[-1])
    tone = _harmonics(f, sr, (1.0, 0.08))
    breath = np.convolve(rng.standard_normal(n), np.ones(3) / 3, mode="same") * 0.06
    return _fade(tone + breath, sr, 0.03)


def _ev_bark(rng, sr, pf):
    n = int(rng.uniform(0.15, 0.24) * sr)
    t = np.arange(n) / sr
    f0 = 450.0 * pf * rng.uniform(0.93, 1.07)
    f = f0 * (1.3 - 0.45 * t / t[-1])
    tone = _harmonics(f, sr, (1.0, 0.8, 0.6, 0.45, 0.3, 0.2))
    noise = np.convolve(rng.standard_normal(n), np.ones(5) / 5, mode="same")
    env = np.minimum(1.0, t / 0.01) * np.exp(-t / 0.08)
    return _fade((tone + 0.5 * noise) * env, sr, 0.004)


def _ev_horn(rng, sr, pf):
    n = int(rng.uniform(0.35, 0.8) * sr)
    f = 400.0 * pf * rng.uniform(0.96, 1.04)
    amps = (1.0, 0.5, 0.33, 0.25, 0.2, 0.16)
    out = _harmonics(np.full(n, f), sr, amps) + _harmonics(np.full(n, f * 1.26), sr, amps, 1.0)
    return _fade(out, sr, 0.015)


def _ev_tick(rng, sr, pf, k=0):
    n = int(0.03 * sr)
    t = np.arange(n) / sr
    f = (3200.0 if k % 2 == 0 else 2500.0) * rng.uniform(0.98, 1.02)
    return np.sin(2 * np.pi * f * t) * np.exp(-t / 0.003) + 0.3 * rng.standard_normal(n) * np.exp(-t / 0.001)


def _ev_chirp(rng, sr, pf, k=0):
    n = int(rng.uniform(0.05, 0.09) * sr)
    t = np.arange(n) / sr
    f0 = 3500.0 * pf * rng.uniform(0.9, 1.1)
    f0 = min(f0, 6500.0)
    f = f0 * (1.25 - 0.5 * t / t[-1]) if rng.random() < 0.6 else f0 * (0.8 + 0.4 * t / t[-1])
    f = np.minimum(f, sr / 2 - 300)
    env = np.sin(np.pi * t / t[-1]) ** 2
    return _harmonics(f, sr, (1.0, 0.1)) * env


def _ev_step(rng, sr, pf, k=0):
    n = int(0.09 * sr)
    t = np.arange(n) / sr
    thud = np.sin(2 * np.pi * rng.uniform(70, 100) * t) * np.exp(-t / 0.03)
    scuff = np.convolve(rng.standard_normal(n), np.ones(8) / 8, mode="same") * np.exp(-t / 0.02)
    gain = 1.0 if k % 2 == 0 else 0.75
    return _fade((thud + 0.8 * scuff) * gain, sr, 0.002)


def _ev_pulse(rng, sr, pf, k=0, on_s=0.2):
    n = int(on_s * sr)
    f = 800.0 * pf
    return _fade(_harmonics(np.full(n, f), sr, (1.0, 0, 0.33, 0, 0.2, 0, 0.14)), sr, 0.004)


# --- textures (whole window) ------------------------------------------------------------------------------------------


def _tex_siren(rng, n, sr, pf):
    t = np.arange(n) / sr
    fc = 750.0 * pf * rng.uniform(0.95, 1.05)
    rate = rng.uniform(0.35, 0.6)
    f = fc * (1 + 0.3 * np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi)))
    return _harmonics(f, sr, (1.0, 0.35, 0.15))


def _tex_engine(rng, n, sr, pf):
    f0 = 55.0 * pf * rng.uniform(0.93, 1.07)
    f = f0 * (1 + 0.02 * (_smooth_random(rng, n, sr, 1.5) - 0.5))
    tone = _harmonics(f, sr, (1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.25, 0.2, 0.15, 0.1))
    am = 1 + 0.3 * np.sin(2 * np.pi * np.cumsum(f / 2) / sr)
    rumble = _shaped_noise(rng, n, sr, _band(30, 300, 1.5))
    rumble /= np.sqrt(np.mean(rumble**2)) + 1e-12
    return tone * am + 0.4 * rumble


def _tex_rain(rng, n, sr, pf):
    x = rng.standard_normal(n) * 0.3
    drops = rng.random(n) < rng.uniform(60, 140) / sr
    x[drops] += rng.uniform(-6, 6, drops.sum())
    return _shaped_noise_from(x, sr, _band(1500, 7000, 1.0))


def _tex_wind(rng, n, sr, pf):
    x = _shaped_noise(rng, n, sr, _band(120, 700, 1.5))
    gust = 0.25 + 0.75 * _smooth_random(rng, n, sr, 0.7)
    return x * gust


def _tex_water(rng, n, sr, pf):
    bed = _shaped_noise(rng, n, sr, _band(400, 3000, 1.5))
    bed /= np.sqrt(np.mean(bed**2)) + 1e-12
    # rising bubble chirps, vectorised: (events, samples) matrix added with np.add.at
    num = max(1, int(n / sr * rng.uniform(40, 70)))
    length = int(0.02 * sr)
    starts = rng.integers(0, max(1, n - length), num)
    f0 = rng.uniform(600, 2000, num)[:, None]
    tt = np.arange(length)[None, :] / sr
    phase = 2 * np.pi * f0 * (tt + 20.0 * tt**2)  # upward glide
    bub = np.sin(phase) * np.exp(-tt / 0.006) * rng.uniform(0.5, 1.5, num)[:, None]
    out = 0.5 * bed
    np.add.at(out, (starts[:, None] + np.arange(length)[None, :]).ravel(), bub.ravel() * 2.0)
    return out


_EVENT_FNS = {"beep": _ev_beep, "bell": _ev_bell, "knocking": _ev_knock, "whistle": _ev_whistle, "dog": _ev_bark,
              "horn": _ev_horn}  # fmt: skip
_REPEAT_FNS = {"clock": _ev_tick, "birds": _ev_chirp, "footsteps": _ev_step, "alarm": _ev_pulse}
_TEXTURE_FNS = {"siren": _tex_siren, "engine": _tex_engine, "rain": _tex_rain, "wind": _tex_wind, "water": _tex_water}
# events per second for repetitive sources: slow / medium / fast
_RATES = {
    "clock": {"slow": 1.0, "medium": 2.0, "fast": 4.5},
    "birds": {"slow": 1.5, "medium": 3.0, "fast": 7.0},
    "footsteps": {"slow": 1.2, "medium": 2.0, "fast": 3.4},
    "alarm": {"slow": 1.2, "medium": 2.2, "fast": 5.0},
}
# typical event length and gap (s) of discrete sources, to lay out counts
_EVENT_LAYOUT = {
    "beep": (0.3, (0.2, 0.45)),
    "bell": (0.2, (0.7, 1.0)),
    "knocking": (0.12, (0.2, 0.4)),
    "whistle": (0.8, (0.25, 0.5)),
    "dog": (0.24, (0.25, 0.5)),
    "horn": (0.8, (0.25, 0.5)),
}
_TAIL_S = {"bell": 1.2}


def min_window(name: str, count: int | None = None, tempo: str | None = None, loudness: str | None = None) -> float:
    """Shortest window (s) in which a source with these attributes is clearly rendered."""
    spec = SOURCES[name]
    if spec.kind == "discrete":
        ev, (_, gap_hi) = _EVENT_LAYOUT[name]
        c = count or 1
        return c * ev + (c - 1) * gap_hi + _TAIL_S.get(name, 0.0) + 0.05
    if spec.kind == "repetitive":
        return 2.6 if (tempo or "medium") == "slow" else 2.0
    return 2.5 if loudness in ("getting louder", "fading") else 2.0


def _render(
    name: str,
    n: int,
    sr: int,
    rng: np.random.Generator,
    *,
    w0: float,
    w1: float,
    count: int | None,
    pitch: str | None,
    tempo: str | None,
    loudness: str,
    level_db: float | None = None,
) -> tuple[np.ndarray, float, float]:
    """Render one source into a length-``n`` signal, active within [w0, w1] s. Returns (signal, onset, offset)."""
    spec = SOURCES[name]
    pf = _PITCH_FACTOR[pitch or "medium"] if spec.pitched else 1.0
    out = np.zeros(n)
    a, b = max(0, int(w0 * sr)), min(n, int(w1 * sr))
    if b - a < int(0.05 * sr):
        raise ValueError(f"SynthCaps: window [{w0:.2f}, {w1:.2f}] s too short for source '{name}'")
    if spec.kind == "discrete":
        c = count or 1
        _, (g_lo, g_hi) = _EVENT_LAYOUT[name]
        pos = a
        ends = []
        for _ in range(c):
            ev = _EVENT_FNS[name](rng, sr, pf)
            m = min(len(ev), b - pos)
            if m <= 0:
                break
            out[pos : pos + m] += _fade(ev[:m].copy(), sr, 0.002) if m < len(ev) else ev
            ends.append(pos + m)
            pos += len(ev) if name != "bell" else int(0.2 * sr)
            pos += int(rng.uniform(g_lo, g_hi) * sr)
        onset, offset = a / sr, int(max(ends)) / sr
    elif spec.kind == "repetitive":
        rate = _RATES[name][tempo or "medium"] * rng.uniform(0.95, 1.05)
        period = sr / rate
        k_max = int((b - a) / period) + 1
        jitter = rng.uniform(-0.04, 0.04, k_max) * period
        starts = (a + np.arange(k_max) * period + np.abs(jitter)).astype(int)
        ends = []
        for k, s in enumerate(starts):
            if name == "alarm":
                ev = _ev_pulse(rng, sr, pf, k, on_s=min(0.3, 0.5 / rate))
            else:
                ev = _REPEAT_FNS[name](rng, sr, pf, k)
            if s + len(ev) > b:
                break
            out[s : s + len(ev)] += ev
            ends.append(s + len(ev))
        onset, offset = a / sr, int(max(ends) if ends else b) / sr
    else:
        seg = _TEXTURE_FNS[name](rng, b - a, sr, pf)
        out[a:b] = _fade(seg, sr, 0.08)
        onset, offset = a / sr, b / sr
    ia, ib = int(onset * sr), max(int(onset * sr) + 1, int(offset * sr))
    rms = np.sqrt(np.mean(out[ia:ib] ** 2)) + 1e-12
    out /= rms
    if loudness in ("getting louder", "fading"):
        lo, hi = _RAMP_DB
        ramp = np.full(n, lo if loudness == "getting louder" else hi)
        ramp[ia:ib] = np.linspace(lo, hi, ib - ia) if loudness == "getting louder" else np.linspace(hi, lo, ib - ia)
        ramp[ib:] = hi if loudness == "getting louder" else lo
        out *= 10 ** (ramp / 20)
    else:
        out *= 10 ** ((level_db if level_db is not None else _LEVEL_DB[loudness]) / 20)
    return out, onset, offset


def synthesize_source(
    name: str,
    duration: float,
    *,
    seed: int | np.random.Generator = 0,
    sample_rate: int = SAMPLE_RATE,
    count: int | None = None,
    pitch: str | None = None,
    tempo: str | None = None,
    loudness: str = "normal",
    onset: float = 0.0,
    offset: float | None = None,
) -> np.ndarray:
    """Synthesise one source alone (no background noise) as float64 samples in [-1, 1]-ish.

    ``pitch`` in {low, medium, high} (pitched sources), ``tempo`` in {slow, medium, fast} (repetitive sources), ``count``
    1-3 (discrete sources), ``loudness`` in {quiet, normal, loud, getting louder, fading}. The source is active inside
    [onset, offset] seconds (default: the whole clip).
    """
    if name not in SOURCES:
        raise ValueError(f"unknown SynthCaps source '{name}' (known: {', '.join(SOURCE_NAMES)})")
    if loudness not in (*_LEVEL_DB, "getting louder", "fading"):
        raise ValueError(f"unknown loudness '{loudness}'")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    n = int(round(duration * sample_rate))
    sig, _, _ = _render(
        name, n, sample_rate, rng, w0=onset, w1=duration if offset is None else offset, count=count, pitch=pitch,
        tempo=tempo, loudness=loudness,
    )  # fmt: skip
    return sig


# ----------------------------------------------------------------------------------------------------------------------
# Scene sampling: sources, attributes, timeline
# ----------------------------------------------------------------------------------------------------------------------


def combination_split(seed: int) -> dict[str, set[frozenset[str]]]:
    """Seed-chosen held-out source pairs for validation and test (disjoint, each source kept in training pairs)."""
    pairs = [frozenset(p) for p in itertools.combinations(SOURCE_NAMES, 2)]
    for attempt in range(100):
        rng = np.random.default_rng([seed, 7919, attempt])
        order = rng.permutation(len(pairs))
        val = {pairs[i] for i in order[:_HELD_OUT_PAIRS_PER_SPLIT]}
        test = {pairs[i] for i in order[_HELD_OUT_PAIRS_PER_SPLIT : 2 * _HELD_OUT_PAIRS_PER_SPLIT]}
        held = val | test
        if all(sum(1 for p in pairs if s in p and p not in held) >= 8 for s in SOURCE_NAMES):
            return {"validation": val, "test": test}
    raise RuntimeError("cannot choose held-out combinations")  # pragma: no cover


def split_combinations(seed: int) -> dict[str, list[tuple[str, ...]]]:
    """All source combinations (sorted tuples) allowed in each split; val/test ones never occur in train."""
    held = combination_split(seed)
    out: dict[str, list[tuple[str, ...]]] = {"train": [(s,) for s in SOURCE_NAMES], "validation": [], "test": []}
    for size in (2, 3):
        for combo in itertools.combinations(SOURCE_NAMES, size):
            sub = {frozenset(p) for p in itertools.combinations(combo, 2)}
            in_val, in_test = bool(sub & held["validation"]), bool(sub & held["test"])
            if not in_val and not in_test:
                out["train"].append(combo)
            elif in_val and not in_test:
                out["validation"].append(combo)
            elif in_test and not in_val:
                out["test"].append(combo)
    return out


def _choice(rng: np.random.Generator, options: Sequence, decay: float = 0.5):
    """Weighted choice favouring the first options (weights 1, decay, decay^2, ...): a consensus with variation."""
    if len(options) == 1:
        return options[0]
    w = decay ** np.arange(len(options))
    return options[int(rng.choice(len(options), p=w / w.sum()))]


def _sample_attributes(rng: np.random.Generator, name: str, p_salient: float, role: str) -> dict:
    spec = SOURCES[name]
    attrs: dict = {"count": None, "pitch": None, "tempo": None, "loudness": "normal"}
    if spec.kind == "discrete":
        attrs["count"] = int(rng.integers(1, 4))
    if role == "background":
        attrs["loudness"] = "quiet"
        if spec.pitched:
            attrs["pitch"] = "medium"
        return attrs
    if spec.pitched:
        attrs["pitch"] = str(rng.choice(["high", "low"])) if rng.random() < p_salient else "medium"
    if spec.kind == "repetitive":
        attrs["tempo"] = str(rng.choice(["fast", "slow"])) if rng.random() < p_salient else "medium"
    if rng.random() < p_salient:
        options = ["loud", "quiet"] if spec.kind == "discrete" else ["loud", "quiet", "getting louder", "fading"]
        attrs["loudness"] = str(rng.choice(options))
    return attrs


def _plan_scene(rng: np.random.Generator, combo: tuple[str, ...]) -> dict:
    """Choose roles, relation, attributes and the timeline of a clip with the sources of ``combo``."""
    names = [str(x) for x in rng.permutation(list(combo))]
    k = len(names)
    continuous = [s for s in names if SOURCES[s].kind == "continuous"]
    non_discrete = [s for s in names if SOURCES[s].kind != "discrete"]
    structures = []
    if k == 1:
        structures = [("single", None)]
    else:
        structures.append(("then", None))
        if non_discrete:
            structures.append(("while", None))
        for bg in continuous:
            if k == 2 or any(s != bg for s in names):
                structures.append(("then" if k == 3 else "background", bg))
                if k == 3 and any(SOURCES[s].kind != "discrete" for s in names if s != bg):
                    structures.append(("while", bg))
    relation, background = structures[int(rng.integers(len(structures)))]
    fg = [s for s in names if s != background]
    p_salient = {1: 0.6, 2: 0.45, 3: 0.3}[k]
    attrs = {
        s: _sample_attributes(rng, s, p_salient, "background" if s == background else "foreground") for s in names
    }
    needs = {s: min_window(s, **{a: attrs[s][a] for a in ("count", "tempo", "loudness")}) for s in fg}
    windows: dict[str, tuple[float, float]] = {}
    if relation == "then":
        gaps = rng.uniform(0.35, 0.7, len(fg) - 1)
        lead, tail = rng.uniform(0.1, 0.5), rng.uniform(0.1, 0.4)
        # sequential sources must fit in MAX_DURATION: drop repetitions of the longest discrete one, then shrink gaps
        while sum(needs.values()) + gaps.sum() + lead + tail > MAX_DURATION:
            longer = [x for x in fg if (attrs[x]["count"] or 1) > 1]
            if not longer:
                gaps, lead, tail = gaps * 0.5, lead * 0.5, tail * 0.5
                continue
            s = max(longer, key=lambda x: needs[x])
            attrs[s]["count"] -= 1
            needs[s] = min_window(s, **{a: attrs[s][a] for a in ("count", "tempo", "loudness")})
        base = sum(needs.values()) + gaps.sum() + lead + tail
        duration = float(min(MAX_DURATION, max(MIN_DURATION, rng.uniform(base, max(base, MAX_DURATION)))))
        stretchable = [s for s in fg if SOURCES[s].kind != "discrete"]
        extra = max(0.0, duration - base)
        share = rng.dirichlet(np.ones(len(stretchable))) * extra if stretchable else []
        extra_of = dict(zip(stretchable, share))
        t = lead
        for i, s in enumerate(fg):
            length = needs[s] + extra_of.get(s, 0.0)
            windows[s] = (t, min(duration, t + length))
            t += length + (gaps[i] if i < len(gaps) else 0.0)
    else:
        base = max(needs.values()) + 0.8
        duration = float(min(MAX_DURATION, max(MIN_DURATION, rng.uniform(base, max(base, MAX_DURATION)))))
        carriers = [s for s in fg if SOURCES[s].kind != "discrete"] if relation == "while" else fg
        carrier = carriers[0]
        c0 = rng.uniform(0.05, 0.4)
        c1 = duration - rng.uniform(0.05, 0.4)
        windows[carrier] = (c0, c1)
        for s in fg:
            if s == carrier:
                continue
            if SOURCES[s].kind == "discrete":
                slack = max(0.0, (c1 - c0) - needs[s] - 0.4)
                start = c0 + 0.2 + rng.uniform(0, slack)
                windows[s] = (start, min(c1, start + needs[s]))
            else:
                length = max(needs[s], rng.uniform(0.6, 0.9) * (c1 - c0))
                start = c0 + rng.uniform(0, max(0.0, (c1 - c0) - length))
                windows[s] = (start, min(duration, start + length))
    if background:
        windows[background] = (0.0, duration)
    duration = round(duration, 3)
    return {
        "names": names,
        "foreground": fg,
        "background": background,
        "relation": relation,
        "attrs": attrs,
        "windows": windows,
        "duration": duration,
    }


def _synthesize_scene(rng: np.random.Generator, plan: dict, sr: int = SAMPLE_RATE) -> tuple[np.ndarray, dict]:
    n = int(round(plan["duration"] * sr))
    mix = np.zeros(n)
    timing = {}
    fg_levels = [_LEVEL_DB.get(plan["attrs"][s]["loudness"], -26.0) for s in plan["foreground"]]
    for s in plan["foreground"] + ([plan["background"]] if plan["background"] else []):
        a = plan["attrs"][s]
        w0, w1 = plan["windows"][s]
        level = None
        if s == plan["background"]:
            level = min(fg_levels) - rng.uniform(8.0, 12.0)
        sig, on, off = _render(
            s, n, sr, rng, w0=w0, w1=w1, count=a["count"], pitch=a["pitch"], tempo=a["tempo"],
            loudness=a["loudness"], level_db=level,
        )  # fmt: skip
        mix += sig
        timing[s] = (
            round(float(on), 3),
            round(float(off), 3),
            round(float(level if level is not None else _LEVEL_DB.get(a["loudness"], -23.0)), 2),
        )
    noise_kind = "pink" if rng.random() < 0.5 else "brown"
    noise_db = rng.uniform(-54.0, -44.0)
    noise = _colored(rng, n, 1.0 if noise_kind == "pink" else 2.0) * 10 ** (noise_db / 20)
    fg_active = np.zeros(n, dtype=bool)
    for s in plan["foreground"]:
        fg_active[int(timing[s][0] * sr) : int(timing[s][1] * sr)] = True
    fg_rms = np.sqrt(np.mean(mix[fg_active] ** 2)) if fg_active.any() else 1e-6
    mix += noise
    peak = np.max(np.abs(mix))
    scale = 0.98 / peak if peak > 0.98 else 1.0
    info = {
        "timing": timing,
        "noise": noise_kind,
        "noise_db": round(float(noise_db), 2),
        "snr_db": round(float(20 * np.log10(fg_rms / 10 ** (noise_db / 20))), 2),
        "gain_db": round(float(20 * np.log10(scale)), 2),
    }
    return mix * scale, info


# ----------------------------------------------------------------------------------------------------------------------
# Captions
# ----------------------------------------------------------------------------------------------------------------------

_COUNT_ADV = {1: (" once", " one time", " a single time"), 2: (" twice", " two times"), 3: (" three times", " thrice")}
_TEMPO_ADV = {
    "fast": (" quickly", " rapidly", " fast", " at a fast pace", " in quick succession"),
    "slow": (" slowly", " at a slow pace", " at a slow steady rate"),
}
_LOUD_ADV = {"loud": (" loudly", " very loudly"), "quiet": (" quietly", " softly", " faintly")}
_DYN_TAIL = {
    "getting louder": (", getting louder", " and {gets} louder", ", growing louder and louder", " and {grows} louder"),
    "fading": (", fading away", " and {fades} away", ", getting quieter", " and slowly {dies} down"),
}
_DYN_NOMINAL = {
    "getting louder": (" getting louder", " growing louder", " that {gets} louder"),
    "fading": (" fading away", " getting quieter", " that slowly {fades} out"),
}
_AGREE = {"gets": "get", "grows": "grow", "fades": "fade", "dies": "die"}


def _agree(text: str, number: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: m.group(1) if number != "pl" else _AGREE[m.group(1)], text)


def _phrase(rng: np.random.Generator, name: str, attrs: dict, form: str, mention: float) -> tuple[str, str]:
    """One source as a clause: form 'finite' ("a dog barks twice"), 'prog' ("a dog is barking twice"),
    'nominal' ("a dog barking twice") or 'bare' ("a dog", only without attributes). Returns (text, number)."""
    spec = SOURCES[name]
    subject, number, verbs = _choice(rng, spec.subjects, 0.55)
    base, third, ing = _choice(rng, verbs, 0.5)
    adjs, advs, tail = [], [], ""
    has_slot = "{adj}" in subject
    loud = attrs["loudness"]
    if loud in ("loud", "quiet") and rng.random() < mention:
        adj_opts = spec.loud_adj if loud == "loud" else spec.quiet_adj
        if has_slot and adj_opts and rng.random() < 0.5:
            adjs.append(_choice(rng, adj_opts))
        else:
            advs.append(_choice(rng, _LOUD_ADV[loud]))
    if attrs["pitch"] in ("high", "low") and rng.random() < mention:
        adj_opts = spec.high_adj if attrs["pitch"] == "high" else spec.low_adj
        if has_slot and rng.random() < 0.7:
            adjs.append(_choice(rng, adj_opts))
        else:
            advs.append(_choice(rng, spec.high_adv if attrs["pitch"] == "high" else spec.low_adv))
    if attrs["count"] and rng.random() < mention:
        advs.append(_choice(rng, _COUNT_ADV[attrs["count"]]))
    if attrs["tempo"] in ("fast", "slow") and rng.random() < mention:
        advs.append(_choice(rng, _TEMPO_ADV[attrs["tempo"]]))
    if loud in _DYN_TAIL and rng.random() < mention:
        tail = _agree(_choice(rng, _DYN_NOMINAL[loud] if form in ("nominal", "bare") else _DYN_TAIL[loud]), number)
    if form == "bare" and (advs or tail):
        form = "nominal"
    subj = subject.replace("{adj}", "".join(adjs))
    if form == "bare":
        return subj, number
    if form == "finite":
        verb = third if number != "pl" else base
    elif form == "prog":
        verb = ("are " if number == "pl" else "is ") + ing
    else:
        verb = ing
    return f"{subj} {verb}{''.join(advs)}{tail}", number


def _be(number: str) -> str:
    return "are" if number == "pl" else "is"


def _one_caption(rng: np.random.Generator, plan: dict, mention: float) -> str:
    attrs = plan["attrs"]
    fg = plan["foreground"]

    def F(s):  # noqa: N802 - finite or progressive clause
        return _phrase(rng, s, attrs[s], "finite" if rng.random() < 0.6 else "prog", mention)[0]

    def N(s):  # noqa: N802 - nominal
        return _phrase(rng, s, attrs[s], "nominal", mention)

    rel = plan["relation"]
    if rel in ("single", "background"):
        s = fg[0]
        frame = _choice(rng, ("F", "N can be heard", "the sound of N", "you can hear N", "there be N", "N be heard", "a recording of N"), 0.6)  # fmt: skip
        if frame == "F":
            main = F(s)
        else:
            text, number = N(s)
            main = (
                frame.replace("be", _be(number)).replace("N", text)
                if frame in ("there be N", "N be heard")
                else frame.replace("N", text)
            )
    elif rel == "then":
        order = sorted(fg, key=lambda s: plan["windows"][s][0])
        if len(order) == 2:
            a, b = order
            frame = _choice(rng, ("F1, then F2", "F1 and then F2", "first F1, then F2", "F1, followed by N2", "N1 be1 followed by N2", "after N1, F2"), 0.6)  # fmt: skip
            main = _fill(rng, frame, {"1": a, "2": b}, F, N)
        else:
            frame = _choice(rng, ("F1, then F2, then F3", "first F1, then F2 and finally F3", "F1, followed by N2 and then N3", "N1, then N2, then N3"), 0.6)  # fmt: skip
            main = _fill(rng, frame, {"1": order[0], "2": order[1], "3": order[2]}, F, N)
    else:  # while
        if len(fg) == 2:
            frame = _choice(rng, ("F1 while F2", "F1 as F2", "F1 and F2 at the same time", "N1 and N2 can be heard at the same time", "while F2, F1", "N1 together with N2"), 0.6)  # fmt: skip
            main = _fill(rng, frame, {"1": fg[0], "2": fg[1]}, F, N)
        else:
            frame = _choice(rng, ("F1 while F2 and F3", "N1, N2 and N3 at the same time", "F1 as F2 and F3"), 0.6)
            main = _fill(rng, frame, {"1": fg[0], "2": fg[1], "3": fg[2]}, F, N)
    bg = plan["background"]
    if bg:
        frame = _choice(rng, ("M with B in the background", "M while G in the background", "M, with B in the background", "G in the background as M"), 0.6)  # fmt: skip
        b_text = _phrase(rng, bg, attrs[bg], "bare" if rng.random() < 0.5 else "nominal", mention)[0]
        g_text = _phrase(rng, bg, attrs[bg], "finite" if rng.random() < 0.5 else "prog", mention)[0]
        main = frame.replace("M", main).replace("B", b_text).replace("G", g_text)
    return _finish(main)


def _fill(rng, frame: str, slots: dict[str, str], F, N) -> str:  # noqa: N803
    out = frame
    for key, s in slots.items():
        if f"F{key}" in out:
            out = out.replace(f"F{key}", F(s), 1)
        if f"N{key}" in out:
            text, number = N(s)
            out = out.replace(f"be{key}", _be(number)).replace(f"N{key}", text, 1)
    return out


def _finish(text: str) -> str:
    text = re.sub(r"\ba ([aeiou])", r"an \1", text)
    text = re.sub(r"\ban ([^aeiou\W])", r"a \1", text)
    text = " ".join(text.split())
    return text[0].upper() + text[1:] + "."


def make_captions(rng: np.random.Generator, plan: dict, k: int = CAPTIONS_PER_CLIP) -> list[str]:
    """``k`` distinct captions of MIN_WORDS..MAX_WORDS words that name every source of the clip and no other."""
    true = set(plan["names"])
    base_mention = 0.85 if len(true) == 1 else 0.75
    captions: list[str] = []
    for attempt in range(400):
        mention = base_mention if attempt < 200 else base_mention * 0.5
        cap = _one_caption(rng, plan, mention)
        n_words = len(caption_words(cap))
        if not MIN_WORDS <= n_words <= MAX_WORDS or named_sources(cap) != true:
            continue
        if cap in captions and attempt < 300:
            continue
        captions.append(cap)
        if len(captions) == k:
            return captions
    raise RuntimeError(
        f"SynthCaps: cannot phrase a caption for {plan['names']} ({plan['relation']})"
    )  # pragma: no cover


# ----------------------------------------------------------------------------------------------------------------------
# Clip generation and writing
# ----------------------------------------------------------------------------------------------------------------------


def _clip_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), _SPLIT_IDS[split], int(index)])


def _pick_combo(rng: np.random.Generator, combos: dict[int, list[tuple[str, ...]]], split: str) -> tuple[str, ...]:
    sizes = (1, 2, 3) if split == "train" else (2, 3)
    probs = (0.3, 0.4, 0.3) if split == "train" else (0.55, 0.45)
    size = int(rng.choice(sizes, p=probs))
    options = combos[size]
    return options[int(rng.integers(len(options)))]


def file_name_for(split: str, index: int) -> str:
    return f"synthcaps_{split}_{index:05d}.wav"


def generate_clip(seed: int, split: str, index: int, combos: dict[int, list[tuple[str, ...]]] | None = None):
    """One clip: (int16 samples, captions, ground-truth record). Depends only on (seed, split, index)."""
    if combos is None:
        combos = _combos_by_size(seed)[split]
    rng = _clip_rng(seed, split, index)
    combo = _pick_combo(rng, combos, split)
    plan = _plan_scene(rng, combo)
    audio, info = _synthesize_scene(rng, plan)
    captions = make_captions(rng, plan)
    pcm = np.clip(np.round(audio * 32767.0), -32768, 32767).astype("<i2")
    sources = []
    for s in plan["foreground"] + ([plan["background"]] if plan["background"] else []):
        a, spec = plan["attrs"][s], SOURCES[s]
        on, off, level = info["timing"][s]
        sources.append(
            {
                "name": s,
                "synonyms": list(spec.synonyms),
                "kind": spec.kind,
                "role": "background" if s == plan["background"] else "foreground",
                "count": a["count"],
                "pitch": a["pitch"],
                "tempo": a["tempo"],
                "loudness": a["loudness"],
                "level_db": level,
                "onset": on,
                "offset": off,
            }
        )
    order = [x["name"] for x in sorted(sources, key=lambda x: (x["role"] == "background", x["onset"]))]
    record = {
        "file_name": file_name_for(split, index),
        "duration": round(len(pcm) / SAMPLE_RATE, 4),
        "sample_rate": SAMPLE_RATE,
        "relation": plan["relation"],
        "order": order,
        "background": plan["background"],
        "combination": sorted(plan["names"]),
        "sources": sources,
        "noise": info["noise"],
        "noise_db": info["noise_db"],
        "snr_db": info["snr_db"],
        "gain_db": info["gain_db"],
    }
    return pcm, captions, record


def _combos_by_size(seed: int) -> dict[str, dict[int, list[tuple[str, ...]]]]:
    out = {}
    for split, combos in split_combinations(seed).items():
        by_size: dict[int, list[tuple[str, ...]]] = {}
        for c in combos:
            by_size.setdefault(len(c), []).append(c)
        out[split] = by_size
    return out


def _wav_bytes(pcm: np.ndarray, sr: int = SAMPLE_RATE) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def _work(job: tuple[int, str, int, int, str]) -> list[tuple[list[str], dict]]:
    seed, split, start, stop, audio_dir = job
    combos = _combos_by_size(seed)[split]
    rows = []
    for index in range(start, stop):
        pcm, captions, record = generate_clip(seed, split, index, combos)
        (Path(audio_dir) / record["file_name"]).write_bytes(_wav_bytes(pcm))
        rows.append((captions, record))
    return rows


def _dump_json(obj) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=True, separators=(",", ":"))


def _write_split(out_dir: Path, split: str, rows: list[tuple[list[str], dict]]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["file_name", *(f"caption_{i}" for i in range(1, CAPTIONS_PER_CLIP + 1))])
    for captions, record in rows:
        writer.writerow([record["file_name"], *captions])
    (out_dir / f"clotho_captions_{split}.csv").write_bytes(buf.getvalue().encode("utf-8"))
    lines = "".join(_dump_json(record) + "\n" for _, record in rows)
    (out_dir / f"synthcaps_ground_truth_{split}.jsonl").write_bytes(lines.encode("utf-8"))


def _output_names() -> list[str]:
    names = ["synthcaps_info.json"]
    for split in SPLITS:
        names += [split, f"clotho_captions_{split}.csv", f"synthcaps_ground_truth_{split}.jsonl"]
    return names


def check_generated_with(path: str | os.PathLike, synth_kwargs: dict) -> None:
    """Raise unless the SynthCaps folder at ``path`` was generated with ``synth_kwargs`` (arguments of
    :func:`generate_synthcaps`: seed, split sizes), as its ``synthcaps_info.json`` records them: otherwise a recipe
    asking for 6,000 training clips would silently train on an older 2,000-clip folder."""
    path = Path(path)
    info_path = path / "synthcaps_info.json"
    if not synth_kwargs or not info_path.is_file():
        return
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"'{info_path}' is not valid JSON ({err}): regenerate the SynthCaps folder") from None
    made = {"seed": info.get("seed"), **info.get("arguments", {})}
    differ = {k: (made[k], v) for k, v in synth_kwargs.items() if k in made and made[k] != v}
    if differ:
        said = ", ".join(f"{k}={new} (the folder has {old})" for k, (old, new) in differ.items())
        raise ValueError(
            f"SynthCaps at {path} was generated with other arguments than the synth_kwargs: {said}. "
            "Delete the folder (synth_if_missing regenerates it) or point dataset_path elsewhere."
        )


def generate_synthcaps(
    out_dir: str | os.PathLike,
    seed: int = 0,
    num_train: int = DEFAULT_NUM_TRAIN,
    num_validation: int = DEFAULT_NUM_VALIDATION,
    num_test: int = DEFAULT_NUM_TEST,
    workers: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Generate SynthCaps into ``out_dir`` (Clotho layout) and return its path.

    Refuses a non-empty ``out_dir`` unless ``overwrite`` (which removes only SynthCaps' own outputs there).
    The output is byte-identical for the same seed and sizes, whatever ``workers``.
    """
    sizes = {"train": num_train, "validation": num_validation, "test": num_test}
    for split, n in sizes.items():
        if int(n) < 0:
            raise ValueError(f"--num-{split}: expected a count >= 0, got {n}")
    workers = default_workers() if workers is None else int(workers)
    if workers < 1:
        raise ValueError(f"--workers: expected at least 1, got {workers}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"SynthCaps output '{out}' exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"refusing to overwrite non-empty dataset dir '{out}' (pass --overwrite)")
        for name in _output_names():
            p = out / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    out.mkdir(parents=True, exist_ok=True)

    jobs = []
    chunk = 25
    for split in SPLITS:
        (out / split).mkdir(exist_ok=True)
        for start in range(0, sizes[split], chunk):
            jobs.append((int(seed), split, start, min(sizes[split], start + chunk), str(out / split)))
    results: dict[str, list] = {split: [] for split in SPLITS}
    if workers == 1 or len(jobs) <= 1:
        for job in jobs:
            results[job[1]].extend(_work(job))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for job, rows in zip(jobs, pool.map(_work, jobs)):
                results[job[1]].extend(rows)
    for split in SPLITS:
        _write_split(out, split, results[split])

    held = combination_split(int(seed))
    info = {
        "name": "SynthCaps",
        "generator_version": GENERATOR_VERSION,
        "seed": int(seed),
        "arguments": {"num_train": num_train, "num_validation": num_validation, "num_test": num_test},
        "sample_rate": SAMPLE_RATE,
        "duration_range_s": [MIN_DURATION, MAX_DURATION],
        "captions_per_clip": CAPTIONS_PER_CLIP,
        "caption_words": [MIN_WORDS, MAX_WORDS],
        "splits": {split: {"num_clips": sizes[split], "audio_dir": split} for split in SPLITS},
        "held_out_pairs": {k: sorted(sorted(p) for p in v) for k, v in held.items()},
        "sources": [
            {
                "name": s.name,
                "kind": s.kind,
                "pitched": s.pitched,
                "synonyms": list(s.synonyms),
                "signature": s.description,
            }
            for s in CATALOGUE
        ],
    }
    (out / "synthcaps_info.json").write_bytes((json.dumps(info, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    return out


# ----------------------------------------------------------------------------------------------------------------------
# CLI (`hf-audiocap synth`)
# ----------------------------------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="dataset directory to create (Clotho layout)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    parser.add_argument(
        "--num-train", type=int, default=DEFAULT_NUM_TRAIN, help=f"train clips (default {DEFAULT_NUM_TRAIN})"
    )
    parser.add_argument(
        "--num-validation",
        type=int,
        default=DEFAULT_NUM_VALIDATION,
        help=f"validation clips (default {DEFAULT_NUM_VALIDATION})",
    )
    parser.add_argument(
        "--num-test", type=int, default=DEFAULT_NUM_TEST, help=f"test clips (default {DEFAULT_NUM_TEST})"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=default_workers(),
        help="worker processes (default min(2, cpu count)); output does not depend on it",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing SynthCaps dataset in --out")


def main_from_args(args: argparse.Namespace) -> int:
    out = generate_synthcaps(
        args.out,
        seed=args.seed,
        num_train=args.num_train,
        num_validation=args.num_validation,
        num_test=args.num_test,
        workers=args.workers,
        overwrite=args.overwrite,
    )
    total = args.num_train + args.num_validation + args.num_test
    print(f"SynthCaps: wrote {total} clips ({args.num_train}/{args.num_validation}/{args.num_test}) to {out}")
    return 0
