"""Audio synthesis of SynthCaps: vectorised numpy, one function per source signature, and the mix of a scene."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hf_audiocap.data.synthcaps.catalogue import SOURCE_NAMES, SOURCES

SAMPLE_RATE = 16000

# nominal loudness levels: RMS over the active window, dBFS
_LEVEL_DB = {"normal": -20.0, "loud": -12.0, "quiet": -30.0}
_RAMP_DB = (-34.0, -12.0)  # getting louder goes low -> high, fading goes high -> low
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
    return apply_loudness(out, sr, onset, offset, loudness, level_db), onset, offset


def apply_loudness(
    out: np.ndarray, sr: int, onset: float, offset: float, loudness: str, level_db: float | None = None
) -> np.ndarray:
    """``out`` scaled in place to its loudness over its active span [onset, offset] s: the RMS of that span at
    ``level_db`` dBFS (or the loudness' nominal level), or a ramp between two levels for getting louder / fading."""
    n = len(out)
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
    return out


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


def _synthesize_scene(
    rng: np.random.Generator, plan: dict, sr: int = SAMPLE_RATE, render=_render
) -> tuple[np.ndarray, dict]:
    """Mix the sources of ``plan`` (each from ``render``, a bank's renderer) over pink or brown background noise."""
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
        sig, on, off = render(
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
