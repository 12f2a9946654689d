"""`precompute_features`: log-mels computed once with `datasets.map` into a cache that is reused (not recomputed) by a
later run, never trusted half-written, invalidated by any feature-extractor setting; the collator pads precomputed
log-mels exactly as it featurizes decoded audio. (A real SIGKILLed run reusing it: tests/test_training_faults.py.)"""

from __future__ import annotations

import os

import datasets
import pyarrow as pa
import pytest
import torch
from audiocap_tiny import CAPTIONS, write_tone
from datasets.table import InMemoryTable

import hf_audiocap.data.features as features_module
from hf_audiocap import AudioCapFeatureExtractor, AudioCapProcessor, build_word_tokenizer
from hf_audiocap.data.collator import AudioCaptionCollator
from hf_audiocap.data.features import log_mel_fingerprint, precompute_log_mels
from hf_audiocap.data.loaders import CAPTION_FEATURES


@pytest.fixture(scope="module")
def clip_rows(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    rows = {"id": [], "audio": [], "sampling_rate": [], "captions": []}
    for i, seconds in enumerate((0.5, 1.3, 0.9, 1.1)):
        path = write_tone(folder / f"clip{i}.wav", seconds, freq=300.0 + 150 * i)
        rows["id"].append(f"clip{i}")
        rows["audio"].append({"bytes": None, "path": str(path)})
        rows["sampling_rate"].append(16000)
        rows["captions"].append(CAPTIONS[i : i + 2])
    return rows


def _clips(rows) -> datasets.Dataset:
    """A fresh Dataset object each time, as a new process (a restarted run) would load it (built as the loaders do)."""
    table = pa.table(rows, schema=CAPTION_FEATURES.arrow_schema)
    return datasets.Dataset(InMemoryTable(table), info=datasets.DatasetInfo(features=CAPTION_FEATURES.copy()))


@pytest.fixture()
def decode_counter(monkeypatch):
    calls = []
    real = features_module.load_audio

    def counting(audio, *args, **kwargs):
        calls.append(kwargs.get("name"))
        return real(audio, *args, **kwargs)

    monkeypatch.setattr(features_module, "load_audio", counting)
    return calls


def _cache_files(cache) -> dict:
    return {p.name: p.stat().st_mtime_ns for p in cache.glob("log_mels-*.arrow")}


def test_precomputed_log_mels_collate_like_decoded_audio(clip_rows, tmp_path):
    fe = AudioCapFeatureExtractor(do_normalize=True, mean=-6.0, std=4.0, padding_value=-1.5)
    processor = AudioCapProcessor(fe, build_word_tokenizer(CAPTIONS))
    collator = AudioCaptionCollator(processor, text_column="captions", return_clip_ids=True)
    raw = _clips(clip_rows)
    pre = precompute_log_mels(raw, fe, tmp_path / "cache")
    assert pre[1]["input_features"].shape == (fe.num_frames(int(1.3 * 16000)), 80)
    decoded, cached = collator([raw[i] for i in range(4)]), collator([pre[i] for i in range(4)])
    assert decoded.keys() == cached.keys()
    for key in decoded:
        if key == "clip_ids":
            assert decoded[key] == cached[key] == ["clip0", "clip1", "clip2", "clip3"]
        else:
            assert decoded[key].dtype == cached[key].dtype and torch.equal(decoded[key], cached[key]), key


def test_log_mel_cache_is_reused_and_never_trusted_half_written(clip_rows, tmp_path, decode_counter, monkeypatch):
    fe, cache = AudioCapFeatureExtractor(hop_length=320), tmp_path / "cache"

    # A run interrupted while computing (here at the third clip) leaves no cache file that a later run would load.
    counting = features_module.load_audio

    def interrupted(audio, *args, name=None, **kwargs):
        if name == "clip2":
            raise KeyboardInterrupt
        return counting(audio, *args, name=name, **kwargs)

    monkeypatch.setattr(features_module, "load_audio", interrupted)
    with pytest.raises(KeyboardInterrupt):
        precompute_log_mels(_clips(clip_rows), fe, cache)
    assert _cache_files(cache) == {}
    monkeypatch.setattr(features_module, "load_audio", counting)
    decode_counter.clear()

    first = precompute_log_mels(_clips(clip_rows), fe, cache)
    assert decode_counter == ["clip0", "clip1", "clip2", "clip3"]
    files = _cache_files(cache)
    assert len(files) == 1
    # the next run (a new Dataset object, a new feature extractor with the same settings) loads it: nothing decoded
    again = precompute_log_mels(_clips(clip_rows), AudioCapFeatureExtractor(hop_length=320), cache)
    assert decode_counter == ["clip0", "clip1", "clip2", "clip3"] and _cache_files(cache) == files
    assert again.cache_files[0]["filename"] == str(cache / next(iter(files)))
    for a, b in zip(first, again):
        assert (a["input_features"] == b["input_features"]).all() and a["captions"] == b["captions"]


@pytest.mark.parametrize(
    "change",
    [{"hop_length": 320}, {"feature_size": 64}, {"do_normalize": True, "mean": -5.0, "std": 3.0}, {"n_fft": 1024}],
    ids=["hop_length", "n_mels", "normalisation", "n_fft"],
)
def test_log_mel_cache_is_invalidated_by_a_feature_setting(clip_rows, tmp_path, decode_counter, change):
    cache, base = tmp_path / "cache", AudioCapFeatureExtractor()
    precompute_log_mels(_clips(clip_rows), base, cache)
    changed_fe = AudioCapFeatureExtractor(**change)
    assert log_mel_fingerprint(_clips(clip_rows), changed_fe) != log_mel_fingerprint(_clips(clip_rows), base)
    changed = precompute_log_mels(_clips(clip_rows), changed_fe, cache)
    assert len(decode_counter) == 8 and len(_cache_files(cache)) == 2  # recomputed into a second cache
    expected = changed_fe(
        features_module.load_audio(clip_rows["audio"][1], 16000), sampling_rate=16000, return_tensors="np"
    )["input_features"][0]
    assert torch.equal(torch.from_numpy(changed[1]["input_features"]), torch.from_numpy(expected.T.copy()))


def test_log_mel_cache_is_invalidated_by_an_edited_audio_file(clip_rows, tmp_path):
    fe = AudioCapFeatureExtractor()
    before = log_mel_fingerprint(_clips(clip_rows), fe)
    assert log_mel_fingerprint(_clips(clip_rows), fe, max_duration=30.0) != before
    path = clip_rows["audio"][0]["path"]
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    try:
        assert log_mel_fingerprint(_clips(clip_rows), fe) != before
    finally:
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_precompute_features_arguments_are_checked():
    from hf_audiocap.training.arguments import DataArguments

    with pytest.raises(ValueError, match="precompute_features needs group_captions: true"):
        DataArguments(precompute_features=True)
    with pytest.raises(ValueError, match="mixup mixes waveforms"):
        DataArguments(precompute_features=True, group_captions=True, mixup_prob=0.3)
    assert DataArguments(precompute_features=True, group_captions=True).features_cache_dir is None
