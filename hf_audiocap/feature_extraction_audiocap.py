"""Log-mel feature extractor for audio captioning (the Whisper layout, padded to the longest clip of the batch).

Features are ``log(mel_power + log_offset)`` of a centered STFT, computed in float32 with torch and matching
``librosa.feature.melspectrogram(y, sr, n_fft, hop_length, win_length, window="hann", center=True,
pad_mode="constant", power=2.0, n_mels, fmin, fmax, htk=False, norm="slaney")`` followed by the same log to 1e-4.

Default choices and why:

- 16 kHz, 80 mels, 25 ms Hann window (``win_length=400``), 10 ms hop (``hop_length=160``), ``n_fft=512``: the window
  is zero-padded to a power-of-two FFT (as librosa does when ``win_length < n_fft``), which is faster than a 400-point
  FFT and gives 257 frequency bins.
- ``center=True`` with ZERO padding (librosa's default ``pad_mode="constant"``, not torch's "reflect"), each clip
  framed in its own zero-padded row: a clip in a batch gives exactly the same features for its real frames as alone.
  Clips shorter than one window (``win_length`` samples: 25 ms by default) are refused (``too_short_for``): their
  log-mels would be mostly the window's zero padding.
- ``log_offset=1e-6`` (features are ``log(mel + 1e-6)``; ~60 dB below the mel power of unit-variance noise): the log
  stays finite on digital silence, the floor is low enough to keep quiet sounds, and it is a common choice.
- Slaney mel scale and Slaney (area) normalisation, as librosa's defaults.

Frames: a clip of ``n`` samples has ``1 + n // hop_length`` frames (``center=True``). A batch is padded to its
longest clip (never to a fixed duration); padding frames hold ``padding_value`` and are 0 in the frame-level
``attention_mask``.

Precision: the Hann window, the windowed frames and the FFT are float64; the power is cast to float32 for the mel
matmul and the log. Far from a loud tone, a Hann window's leakage depends on its exact shape, and float32 rounding
(of the window, of the windowed frames, or inside a float32 FFT) leaves a noise floor ~1e-7 below the loudest bin that
the log turns into 1e-4 .. 7e-4 errors on full-scale sines and chirps with ``log_offset=1e-6`` (only a floor as high
as 1e-4 would hide it, and that squashes quiet sounds). In float64 the features match librosa-float64 to ~1e-6 on any
signal at any ``log_offset``, for ~1.7x the time of an all-float32 path. Output features are float32.

Speed: each clip is copied once into a zero-padded row in its own precision; its frames are strided views of that
row, windowed, FFT'd (``torch.fft.rfft``), cast to float32, squared and projected on the mel filters in cache-sized
chunks of frames, without complex ``abs``/``sqrt`` (the complex spectrum viewed as interleaved real and imaginary parts
is squared in place and multiplied by a mel matrix whose rows are duplicated for them); frames past a clip's end are
not computed. See benchmarks/bench_features.py.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from transformers.audio_utils import mel_filter_bank
from transformers.feature_extraction_sequence_utils import SequenceFeatureExtractor
from transformers.feature_extraction_utils import BatchFeature
from transformers.utils import logging

logger = logging.get_logger(__name__)

__all__ = ["AudioCapFeatureExtractor", "FeatureExtractionError"]

_CHUNK_FRAMES = 512  # frames per rfft/matmul call: keeps the intermediates in cache (measured best of 128..1001)
_MEL_GROUPS = 4  # mel bands are projected in this many groups, each on the span of bins its filters use


def too_short_for(num_samples: int, window: int, sampling_rate: int) -> str | None:
    """Why a clip of `num_samples` cannot be captioned, or None: less than one analysis window of log-mels is the
    window's zero padding, and a caption of it would confidently describe silence."""
    if num_samples >= window:
        return None
    return (
        f"has {num_samples} sample(s) ({1000 * num_samples / sampling_rate:.2f} ms): shorter than the model's minimum "
        f"input of one analysis window, {window} samples ({1000 * window / sampling_rate:.0f} ms at {sampling_rate} Hz)"
    )


class FeatureExtractionError(ValueError):
    """Bad input to the feature extractor (wrong rate, shape, dtype, empty or non-finite audio)."""


class AudioCapFeatureExtractor(SequenceFeatureExtractor):
    r"""Log-mel spectrogram feature extractor.

    Args:
        feature_size (`int`, defaults to 80): number of mel bands (``n_mels``).
        sampling_rate (`int`, defaults to 16000): the rate the audio must be at, in Hz.
        n_fft (`int`, defaults to 512): FFT size (a power of two is fastest); ``win_length <= n_fft``.
        hop_length (`int`, defaults to 160): samples between frames (10 ms at 16 kHz).
        win_length (`int`, defaults to 400): periodic Hann window length (25 ms at 16 kHz), zero-padded to ``n_fft``.
        f_min (`float`, defaults to 0.0), f_max (`float`, *optional*): mel range in Hz; ``None`` means ``sr / 2``.
        mel_scale (`str`, defaults to "slaney"): "slaney" (librosa's default) or "htk".
        mel_norm (`str`, *optional*, defaults to "slaney"): "slaney" (area normalisation, librosa's default) or None.
        log_offset (`float`, defaults to 1e-6): features are ``log(mel + log_offset)``; must be > 0.
        log_mode (`str`, defaults to "natural"): "natural" is ``log(mel + log_offset)``; "whisper" is Whisper's
            normalisation, for pretrained Whisper encoders: ``log10(max(mel, 1e-10))`` floored at the clip's maximum
            minus 8, then ``(x + 4) / 4`` (the maximum is taken over the clip's real frames, so a clip padded in a
            batch keeps its features). Use it with ``n_fft=400, win_length=400``; unlike Whisper, nothing is padded
            to 30 s and the edges are zero-padded, not reflected.
        do_normalize (`bool`, defaults to False): standardise the log-mels with a fixed `mean` and `std` (as AST does with
            its dataset statistics): ``(x - mean) / std`` on real frames. Models trained from scratch learn much faster
            on standardised inputs; the statistics travel with the saved config, so inference matches training.
        mean (`float`), std (`float`): the statistics used by `do_normalize` (see `compute_normalization`).
        padding_value (`float`, defaults to 0.0): the feature value of padding frames.
        return_attention_mask (`bool`, defaults to True): return the frame-level mask by default.
    """

    model_input_names = ["input_features", "attention_mask"]

    def __init__(
        self,
        feature_size: int = 80,
        sampling_rate: int = 16000,
        n_fft: int = 512,
        hop_length: int = 160,
        win_length: int = 400,
        f_min: float = 0.0,
        f_max: float | None = None,
        mel_scale: str = "slaney",
        mel_norm: str | None = "slaney",
        log_offset: float = 1e-6,
        padding_value: float = 0.0,
        return_attention_mask: bool = True,
        log_mode: str = "natural",
        do_normalize: bool = False,
        mean: float = 0.0,
        std: float = 1.0,
        **kwargs: Any,
    ):
        super().__init__(
            feature_size=feature_size,
            sampling_rate=sampling_rate,
            padding_value=padding_value,
            return_attention_mask=return_attention_mask,
            **kwargs,
        )
        if not 0 < win_length <= n_fft:
            raise ValueError(f"win_length must be in (0, n_fft={n_fft}], got {win_length}")
        if hop_length <= 0:
            raise ValueError(f"hop_length must be > 0, got {hop_length}")
        if not log_offset > 0:
            raise ValueError(f"log_offset must be > 0 (log of silence must stay finite), got {log_offset}")
        if not std > 0:
            raise ValueError(f"std must be > 0, got {std}")
        if log_mode not in ("natural", "whisper"):
            raise ValueError(f"log_mode must be 'natural' or 'whisper', got {log_mode!r}")
        nyquist = sampling_rate / 2
        if f_max is not None and not f_min < f_max <= nyquist:
            raise ValueError(f"need f_min < f_max <= sampling_rate / 2 = {nyquist}, got f_min={f_min}, f_max={f_max}")
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.win_length = win_length
        self.f_min = f_min
        self.f_max = f_max
        self.mel_scale = mel_scale
        self.mel_norm = mel_norm
        self.log_offset = log_offset
        self.log_mode = log_mode
        self.do_normalize = do_normalize
        self.mean = float(mean)
        self.std = float(std)
        self._build_tables()

    def _build_tables(self) -> None:
        """Precompute the padded window and the transposed mel matrix (derived, never serialised)."""
        f_max = self.sampling_rate / 2 if self.f_max is None else self.f_max
        n_bins = self.n_fft // 2 + 1
        filters = mel_filter_bank(  # (n_bins, n_mels), identical to librosa.filters.mel(...).T
            num_frequency_bins=n_bins,
            num_mel_filters=self.feature_size,
            min_frequency=self.f_min,
            max_frequency=f_max,
            sampling_rate=self.sampling_rate,
            norm=self.mel_norm,
            mel_scale=self.mel_scale,
        )
        # rfft output viewed as real is (..., bins, 2) = re, im interleaved: square it in place and multiply by the
        # mel matrix with each row duplicated, which sums re^2 + im^2 inside the matmul (no complex abs, no sqrt).
        mel = torch.from_numpy(filters.astype(np.float32))
        self._mel_interleaved_t = mel.repeat_interleave(2, dim=0).T.contiguous()  # (n_mels, 2 * bins)
        # The filters are narrow at low frequencies: in groups of consecutive mel bands, each group only needs the span
        # of bins its filters cover (4 groups: a quarter of the multiply-adds of the dense product, measured faster).
        self._mel_groups = []
        bounds = np.linspace(0, self.feature_size, min(_MEL_GROUPS, self.feature_size) + 1).round().astype(int)
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            cols = torch.nonzero(self._mel_interleaved_t[lo:hi].any(0)).flatten()
            a, b = (int(cols[0]), int(cols[-1]) + 1) if cols.numel() else (0, 1)
            self._mel_groups.append((int(lo), int(hi), a, b, self._mel_interleaved_t[lo:hi, a:b].contiguous()))
        left = (self.n_fft - self.win_length) // 2
        # float64: the far spectral leakage of a Hann window depends on its exact shape; a float32-rounded window
        # adds a noise floor ~1e-7 below the loudest bin, which the log turns into ~1e-4 errors on loud pure tones.
        window = torch.hann_window(self.win_length, periodic=True, dtype=torch.float64)
        # Only the span of frequency bins the filters use is computed; the window is centered in n_fft like librosa.
        self._window = torch.nn.functional.pad(window, (left, self.n_fft - self.win_length - left))

    def to_dict(self) -> dict[str, Any]:
        output = super().to_dict()
        for key in [k for k in output if k.startswith("_")]:
            del output[key]
        return output

    def num_frames(self, num_samples: int) -> int:
        """Frames of a clip of `num_samples` samples (``center=True``)."""
        return 1 + num_samples // self.hop_length

    # ------------------------------------------------------------------------------------------------------------
    def _validate(self, raw_speech: Any) -> list[np.ndarray]:
        if isinstance(raw_speech, torch.Tensor):
            raw_speech = raw_speech.detach().cpu().numpy()
        if isinstance(raw_speech, np.ndarray):
            if raw_speech.ndim != 1:
                raise FeatureExtractionError(
                    f"expected one mono clip as a 1-D array or a list of them, got an array of shape "
                    f"{tuple(raw_speech.shape)} (pass a batch as a list; average channels for stereo)"
                )
            clips = [raw_speech]
        elif isinstance(raw_speech, (list, tuple)):
            if len(raw_speech) == 0:
                raise FeatureExtractionError("expected at least one clip, got an empty list")
            if all(isinstance(v, numbers.Real) for v in raw_speech):  # a single clip given as a list of floats
                clips = [np.asarray(raw_speech, dtype=np.float32)]
            else:
                clips = [
                    c.detach().cpu().numpy() if isinstance(c, torch.Tensor) else np.asarray(c) for c in raw_speech
                ]
        else:
            raise FeatureExtractionError(
                f"expected a 1-D float array or a list of them, got {type(raw_speech).__name__}"
            )
        for i, clip in enumerate(clips):
            if clip.ndim != 1:
                raise FeatureExtractionError(
                    f"clip #{i} has shape {tuple(clip.shape)}; expected a 1-D mono array (average channels for stereo)"
                )
            if clip.size == 0:
                raise FeatureExtractionError(f"clip #{i} is empty (0 samples)")
            too_short = too_short_for(clip.size, self.win_length, self.sampling_rate)
            if too_short:
                raise FeatureExtractionError(f"clip #{i} {too_short}")
            if not np.issubdtype(clip.dtype, np.floating):
                raise FeatureExtractionError(
                    f"clip #{i} has dtype {clip.dtype}; expected floating-point samples in [-1, 1] "
                    f"(e.g. divide int16 PCM by 32768)"
                )
        return clips

    def __call__(
        self,
        raw_speech: np.ndarray | Sequence[np.ndarray] | torch.Tensor | Sequence[float],
        sampling_rate: int | None = None,
        return_tensors: str | None = None,
        padding: bool | str = "longest",
        max_length: int | None = None,
        truncation: bool = False,
        pad_to_multiple_of: int | None = None,
        return_attention_mask: bool | None = None,
        **kwargs: Any,
    ) -> BatchFeature:
        """Featurize one clip (1-D float array) or a list of clips.

        Args:
            raw_speech: a 1-D float array (torch tensor or list of floats also accepted) or a list of them, mono,
                at `self.sampling_rate`.
            sampling_rate: the rate of `raw_speech`; a mismatch raises (resample first). Strongly recommended.
            return_tensors: "pt", "np" or None (numpy arrays; a list of per-clip arrays when not padded).
            padding: "longest"/True (default: pad to the longest clip of the batch), "max_length" (pad to
                `max_length` samples), or False/"do_not_pad" (clips of different lengths then come back as a list
                and need `return_tensors=None`).
            max_length: a length in SAMPLES, used by padding="max_length" and truncation=True.
            truncation: cut clips longer than `max_length` samples.
            pad_to_multiple_of: round the number of FRAMES up to a multiple of this (e.g. for a strided encoder).
            return_attention_mask: return the (batch, frames) int64 mask; defaults to `self.return_attention_mask`.

        Returns:
            BatchFeature with `input_features` float32 (batch, n_mels, frames) and `attention_mask` int64
            (batch, frames), 1 for frames computed from real samples.
        """
        if sampling_rate is None:
            logger.warning_once(
                f"No sampling_rate passed to {type(self).__name__}; assuming {self.sampling_rate} Hz. "
                "Pass sampling_rate= to catch rate mismatches."
            )
        elif int(sampling_rate) != self.sampling_rate:
            raise FeatureExtractionError(
                f"audio is at {sampling_rate} Hz but {type(self).__name__} expects {self.sampling_rate} Hz; "
                f"resample it first"
            )
        if padding is True:
            padding = "longest"
        elif padding is False:
            padding = "do_not_pad"
        if padding not in ("longest", "max_length", "do_not_pad"):
            raise ValueError(f"padding must be 'longest', 'max_length', 'do_not_pad', True or False, got {padding!r}")
        if (padding == "max_length" or truncation) and (max_length is None or max_length <= 0):
            raise ValueError("padding='max_length' and truncation=True need a positive max_length (in samples)")
        if pad_to_multiple_of is not None and pad_to_multiple_of <= 0:
            raise ValueError(f"pad_to_multiple_of must be a positive number of frames, got {pad_to_multiple_of}")
        if return_attention_mask is None:
            return_attention_mask = self.return_attention_mask

        clips = self._validate(raw_speech)
        if truncation:
            clips = [c[:max_length] for c in clips]
        lengths = [len(c) for c in clips]
        frames = [self.num_frames(n) for n in lengths]

        if padding == "do_not_pad" and len(set(frames)) > 1:
            if return_tensors is not None:
                raise ValueError("clips of different lengths need padding (or return_tensors=None) to be batched")
            per_clip = [self._extract([c], [n], [t], t)[0].numpy() for c, n, t in zip(clips, lengths, frames)]
            data: dict[str, Any] = {"input_features": per_clip}
            if return_attention_mask:
                data["attention_mask"] = [np.ones(t, dtype=np.int64) for t in frames]
            return BatchFeature(data)

        total = max(frames)
        if padding == "max_length":
            total = max(total, self.num_frames(max_length))
        if pad_to_multiple_of is not None:
            total = -(-total // pad_to_multiple_of) * pad_to_multiple_of

        features = self._extract(clips, lengths, frames, total)
        # NaN/inf samples make NaN/inf features; one reduction is much cheaper than isfinite() on the input.
        if not bool(torch.isfinite(features.sum())):
            bad = next(i for i, c in enumerate(clips) if not np.isfinite(c).all())
            raise FeatureExtractionError(f"clip #{bad} contains non-finite samples (NaN or inf)")

        data = {"input_features": features}
        if return_attention_mask:
            mask = torch.arange(total).unsqueeze(0) < torch.tensor(frames).unsqueeze(1)
            data["attention_mask"] = mask.to(torch.int64)
        if return_tensors != "pt":
            data = {k: v.numpy() for k, v in data.items()}
        return BatchFeature(data, tensor_type=return_tensors)

    # no_grad, not inference_mode: inference tensors cannot enter autograd, and a training batch of equal-length
    # clips (no padding, so no masking op in between) reached the first conv as one and failed in backward.
    @torch.no_grad()
    def _extract(self, clips: list[np.ndarray], lengths: list[int], frames: list[int], total: int) -> torch.Tensor:
        """Log-mel features (batch, n_mels, total) of validated clips; frames past each clip's own are padding."""
        n_fft, hop, half = self.n_fft, self.hop_length, self.n_fft // 2
        # Each clip is copied once into a zero-padded row (centered, pad_mode="constant"); frame t reads samples
        # [t * hop, t * hop + n_fft). The row keeps the clips' precision (float32 audio stays float32: multiplied by
        # the float64 window it gives exact float64 frames, see "Precision").
        dtype = torch.float64 if any(c.dtype == np.float64 for c in clips) else torch.float32
        padded = torch.zeros(max(lengths) + n_fft, dtype=dtype)
        out = torch.empty(len(clips), self.feature_size, total)
        window = self._window
        for i, (clip, n, t_clip) in enumerate(zip(clips, lengths, frames)):
            padded[half : half + n] = torch.from_numpy(clip)
            padded[half + n : half + n + n_fft].zero_()
            for start in range(0, t_clip, _CHUNK_FRAMES):
                m = min(_CHUNK_FRAMES, t_clip - start)
                chunk = padded.as_strided((m, n_fft), (hop, 1), start * hop) * window
                # (m, bins) complex -> (m, 2 * bins) real view (no copy) -> float32 -> re^2, im^2 in place
                spectrum = torch.view_as_real(torch.fft.rfft(chunk)).reshape(m, -1).float().square_()
                # per group (bands, 2 bins) @ (2 bins, m): written straight into the (batch, n_mels, frames) layout
                for lo, hi, a, b, mel_t in self._mel_groups:
                    out[i, lo:hi, start : start + m] = mel_t @ spectrum[:, a:b].T
            real = out[i, :, :t_clip]
            if self.log_mode == "whisper":
                real.clamp_(min=1e-10).log10_()
                real.clamp_(min=float(real.max()) - 8.0).add_(4.0).div_(4.0)
            else:
                real.add_(self.log_offset).log_()
            if self.do_normalize:
                real.sub_(self.mean).div_(self.std)
            out[i, :, t_clip:] = self.padding_value
        return out


def compute_normalization(
    feature_extractor: AudioCapFeatureExtractor, waves: Sequence[np.ndarray]
) -> tuple[float, float]:
    """Mean and standard deviation of the (unnormalised) log-mels of `waves`, over every real frame and mel bin:
    the statistics to set as `mean` / `std` with `do_normalize=True`."""
    total = total_sq = count = 0.0
    raw = AudioCapFeatureExtractor(**{**feature_extractor.to_dict(), "do_normalize": False})
    for wave in waves:
        feats = raw(wave, sampling_rate=raw.sampling_rate, return_tensors="pt")["input_features"][0].double()
        total += float(feats.sum())
        total_sq += float((feats * feats).sum())
        count += feats.numel()
    if count == 0:
        raise ValueError("compute_normalization needs at least one clip")
    mean = total / count
    return mean, max(float(np.sqrt(max(total_sq / count - mean * mean, 0.0))), 1e-6)
