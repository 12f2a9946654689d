"""Log-mels computed once, with `datasets.map`, into a cache that later runs load (`precompute_features`).

`precompute_log_mels(clips, feature_extractor, cache_dir)` adds an `input_features` column: each clip's log-mels,
float32 `(frames, n_mels)` (an `Array2D` with a free first dimension, read back as numpy arrays; the collator pads them
to the Whisper layout exactly as the feature extractor pads a batch: the extractor zero-pads each clip on its own, so
a clip's features do not depend on its batch). The result is written to `<cache_dir>/log_mels-<fingerprint>.arrow`,
where the fingerprint hashes, explicitly, everything the features depend on:

- every setting of the feature extractor (`to_dict()`: rate, n_fft, hop_length, win_length, n_mels, log mode and
  offset, normalisation mean/std, ...), so changing one computes a new cache;
- the clips: their ids and audio references (a path with the file's size and modification time, or the embedded bytes);
- `max_duration` and `FORMAT_VERSION` (bumped whenever the computation itself changes).

`datasets` writes the file under a temporary name and renames it when it is complete: a run killed while computing
leaves no cache to trust (only a stray `tmp*` file), and any later run, a resumed one included, finds the complete
cache and memory-maps it instead of decoding the audio again.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import datasets
from datasets.fingerprint import Hasher

from hf_audiocap.data.audio import load_audio

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
_IGNORED_SETTINGS = ("processor_class",)  # bookkeeping of the saved config, not a feature setting


def default_cache_dir() -> Path:
    return Path(datasets.config.HF_DATASETS_CACHE) / "hf_audiocap_log_mels"


def log_mel_fingerprint(clips: datasets.Dataset, feature_extractor, max_duration: float | None = None) -> str:
    """Hash of what the log-mels of `clips` depend on (see the module docstring)."""
    settings = {k: v for k, v in feature_extractor.to_dict().items() if k not in _IGNORED_SETTINGS}
    hasher = Hasher()
    hasher.update(FORMAT_VERSION)
    hasher.update(json.dumps(settings, sort_keys=True, default=str))
    hasher.update(max_duration)
    hasher.update(clips["id"])
    for audio in clips["audio"]:
        if audio.get("bytes") is not None:
            hasher.update(audio["bytes"])
            continue
        try:
            stat = os.stat(audio["path"])
            hasher.update((audio["path"], stat.st_size, stat.st_mtime_ns))
        except OSError:  # decoding will name the missing file
            hasher.update((audio["path"], None))
    return hasher.hexdigest()


def _log_mels(batch: dict, feature_extractor, max_duration: float | None) -> dict:
    sr = feature_extractor.sampling_rate
    out = []
    for audio, clip_id in zip(batch["audio"], batch["id"]):
        wave = load_audio(audio, sr, max_duration=max_duration, name=clip_id)
        out.append(feature_extractor(wave, sampling_rate=sr, return_tensors="np")["input_features"][0].T)
    return {"input_features": out}


def precompute_log_mels(
    clips: datasets.Dataset,
    feature_extractor,
    cache_dir: str | Path | None = None,
    max_duration: float | None = None,
) -> datasets.Dataset:
    """`clips` with an `input_features` column of (frames, n_mels) float32 log-mels, loaded from the cache when it
    holds them, else computed (every clip decoded once) and written there."""
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    fingerprint = log_mel_fingerprint(clips, feature_extractor, max_duration)
    cache_file = cache_dir / f"log_mels-{fingerprint}.arrow"
    features = clips.features.copy()
    features["input_features"] = datasets.Array2D(shape=(None, feature_extractor.feature_size), dtype="float32")
    cached = cache_file.is_file()
    mapped = clips.map(
        _log_mels,
        fn_kwargs={"feature_extractor": feature_extractor, "max_duration": max_duration},
        batched=True,
        batch_size=16,
        writer_batch_size=64,  # rows held in memory before writing: bounded by 64 clips' log-mels
        features=features,
        cache_file_name=str(cache_file),
        load_from_cache_file=True,
        new_fingerprint=fingerprint,
        desc="Computing log-mels",
    )
    logger.info("log-mels of %d clips %s %s", len(clips), "loaded from" if cached else "computed into", cache_file)
    return mapped.with_format("numpy", columns=["input_features"], output_all_columns=True)
