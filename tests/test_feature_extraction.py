import numpy as np
import pytest
import torch

from hf_audiocap.feature_extraction_audiocap import AudioCapFeatureExtractor, FeatureExtractionError

SR = 16000


def librosa_log_mel(y, fe):
    librosa = pytest.importorskip("librosa")
    mel = librosa.feature.melspectrogram(
        y=np.asarray(y, dtype=np.float64), sr=fe.sampling_rate, n_fft=fe.n_fft, hop_length=fe.hop_length,
        win_length=fe.win_length, window="hann", center=True, pad_mode="constant", power=2.0,
        n_mels=fe.feature_size, fmin=fe.f_min, fmax=fe.f_max or fe.sampling_rate / 2, htk=False, norm="slaney",
    )  # fmt: skip
    return np.log(mel + fe.log_offset)


@pytest.fixture(scope="module")
def fe():
    return AudioCapFeatureExtractor()


def test_matches_librosa_on_noise_and_full_scale_sine(fe):
    rng = np.random.default_rng(0)
    t = np.arange(SR) / SR
    signals = (0.3 * rng.standard_normal(12345), np.sin(2 * np.pi * 440 * t), 0.5 * np.sin(2 * np.pi * 7000 * t))
    # float32 audio, and float64 audio kept in float64 (rounding a full-scale tone to float32 would cost 1e-4)
    for y in [s.astype(np.float32) for s in signals] + [signals[1]]:
        out = fe(y, sampling_rate=SR, return_tensors="np")
        feats = out["input_features"]
        assert feats.dtype == np.float32 and feats.shape == (1, 80, 1 + len(y) // 160)
        assert out["attention_mask"].dtype == np.int64 and out["attention_mask"].all()
        np.testing.assert_allclose(feats[0], librosa_log_mel(y, fe), atol=1e-4, rtol=0)


def test_matches_librosa_on_a_real_clip(fe, shared_data):
    librosa = pytest.importorskip("librosa")
    clips = sorted((shared_data / "real_clips" / "clotho").glob("*.wav"))
    if not clips:
        pytest.skip("no real Clotho clip found")
    y, _ = librosa.load(clips[0], sr=SR, mono=True, duration=5.0)  # resampled to 16 kHz with soxr
    feats = fe(y, sampling_rate=SR, return_tensors="pt")["input_features"][0].numpy()
    np.testing.assert_allclose(feats, librosa_log_mel(y, fe), atol=1e-4, rtol=0)


def test_non_default_settings_match_librosa():
    fe = AudioCapFeatureExtractor(feature_size=64, n_fft=400, win_length=400, hop_length=200, f_min=50.0, f_max=7000.0)
    y = np.random.default_rng(1).uniform(-1, 1, 8000).astype(np.float32)
    np.testing.assert_allclose(fe(y, sampling_rate=SR)["input_features"][0], librosa_log_mel(y, fe), atol=1e-4, rtol=0)


def test_batch_padding_invariance_and_mask(fe):
    rng = np.random.default_rng(2)
    clips = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (16000, 4321, 400, 16159)]
    out = fe(clips, sampling_rate=SR, return_tensors="pt")
    feats, mask = out["input_features"], out["attention_mask"]
    frames = [1 + len(c) // 160 for c in clips]
    assert feats.shape == (4, 80, max(frames)) and feats.dtype == torch.float32  # longest clip, not 30 s
    assert mask.dtype == torch.int64 and mask.sum(1).tolist() == frames
    for i, (clip, t) in enumerate(zip(clips, frames)):
        alone = fe(clip, sampling_rate=SR, return_tensors="pt")["input_features"][0]
        assert torch.equal(feats[i, :, :t], alone)
        assert (feats[i, :, t:] == fe.padding_value).all()
        assert (mask[i, :t] == 1).all() and (mask[i, t:] == 0).all()


def test_padding_options(fe):
    clips = [np.zeros(1600, np.float32), np.zeros(3200, np.float32)]
    assert fe(clips, sampling_rate=SR, padding="max_length", max_length=16000)["input_features"].shape == (2, 80, 101)
    assert fe(clips, sampling_rate=SR, pad_to_multiple_of=8)["input_features"].shape == (2, 80, 24)
    cut = fe(clips, sampling_rate=SR, truncation=True, max_length=1600, return_tensors="pt")
    assert cut["input_features"].shape == (2, 80, 11) and cut["attention_mask"].all()
    unpadded = fe(clips, sampling_rate=SR, padding=False)
    assert [f.shape for f in unpadded["input_features"]] == [(80, 11), (80, 21)]
    assert "attention_mask" not in fe(clips, sampling_rate=SR, return_attention_mask=False)
    # digital silence stays finite: log(log_offset)
    assert np.allclose(unpadded["input_features"][0], np.log(fe.log_offset))


@pytest.mark.parametrize(
    ("audio", "kwargs", "match"),
    [
        (np.zeros(1600, np.float32), {"sampling_rate": 44100}, "44100 Hz"),
        (np.zeros(0, np.float32), {}, "empty"),
        ([np.zeros(400, np.float32), np.zeros(0, np.float32)], {}, "clip #1 is empty"),
        (np.array([0.0, np.nan] + [0.0] * 398, np.float32), {}, "non-finite"),
        ([np.zeros(400, np.float32), np.array([np.inf] * 400, np.float32)], {}, "clip #1 contains non-finite"),
        (
            np.zeros(1, np.float32),
            {},
            r"clip #0 has 1 sample\(s\) \(0.06 ms\): shorter than the model's minimum input",
        ),
        ([np.zeros(400, np.float32), np.zeros(399, np.float32)], {}, "clip #1 has 399 sample.*400 samples \\(25 ms"),
        (np.zeros((2, 1600), np.float32), {}, "shape"),
        ([np.zeros((1600, 2), np.float32)], {}, "clip #0 has shape"),
        (np.zeros(1600, np.int16), {}, "int16"),
        ([], {}, "empty list"),
    ],
)
def test_bad_inputs(fe, audio, kwargs, match):
    kwargs.setdefault("sampling_rate", SR)
    with pytest.raises(FeatureExtractionError, match=match):
        fe(audio, **kwargs)
    assert issubclass(FeatureExtractionError, ValueError)


def test_save_load_round_trip(tmp_path):
    fe = AudioCapFeatureExtractor(feature_size=64, log_offset=1e-5, padding_value=-1.0)
    fe.save_pretrained(tmp_path)
    text = (tmp_path / "preprocessor_config.json").read_text()
    assert "AudioCapFeatureExtractor" in text and "_mel" not in text and "_window" not in text
    loaded = AudioCapFeatureExtractor.from_pretrained(tmp_path)
    assert loaded.to_dict() == fe.to_dict()
    y = np.random.default_rng(3).standard_normal(5000).astype(np.float32)
    assert np.array_equal(loaded(y, sampling_rate=SR)["input_features"], fe(y, sampling_rate=SR)["input_features"])


def test_auto_feature_extractor_when_registered(tmp_path):
    import hf_audiocap

    if not hasattr(hf_audiocap, "AudioCapConfig"):
        pytest.skip(
            "AutoFeatureExtractor registration is wired by the package __init__ (AudioCapConfig not exported yet)"
        )
    from transformers import AutoFeatureExtractor

    AudioCapFeatureExtractor().save_pretrained(tmp_path)
    assert isinstance(AutoFeatureExtractor.from_pretrained(tmp_path), AudioCapFeatureExtractor)


def test_whisper_log_mode_matches_whisper_feature_extractor_and_is_batch_invariant():
    from transformers import WhisperFeatureExtractor

    wave = np.random.default_rng(0).standard_normal(16000 * 5).astype(np.float32) * 0.1
    fe = AudioCapFeatureExtractor(n_fft=400, win_length=400, log_mode="whisper")
    ours = fe(wave, sampling_rate=16000, return_tensors="np")["input_features"][0]
    whisper = WhisperFeatureExtractor(feature_size=80, chunk_length=5)(wave, sampling_rate=16000, return_tensors="np")
    whisper = whisper["input_features"][0]
    # Whisper reflects at the edges and drops the last frame; we zero-pad: compare the interior frames.
    np.testing.assert_allclose(ours[:, 2 : whisper.shape[1] - 2], whisper[:, 2:-2], atol=1e-4)
    alone = fe(wave[:16000], sampling_rate=16000, return_tensors="np")["input_features"][0]
    batch = fe([wave[:16000], wave], sampling_rate=16000, return_tensors="np")["input_features"][0]
    np.testing.assert_array_equal(batch[:, : alone.shape[1]], alone)


def test_unknown_log_mode_is_rejected():
    with pytest.raises(ValueError, match="log_mode"):
        AudioCapFeatureExtractor(log_mode="db")


def test_normalization_statistics_standardise_and_travel_with_the_config(tmp_path):
    from hf_audiocap.feature_extraction_audiocap import compute_normalization

    rng = np.random.default_rng(1)
    waves = [rng.standard_normal(16000 * k).astype(np.float32) * 0.05 for k in (1, 2, 3)]
    fe = AudioCapFeatureExtractor()
    mean, std = compute_normalization(fe, waves)
    normed = AudioCapFeatureExtractor(do_normalize=True, mean=mean, std=std)
    feats = [normed(w, sampling_rate=16000, return_tensors="np")["input_features"][0] for w in waves]
    flat = np.concatenate([f.ravel() for f in feats])
    assert abs(flat.mean()) < 1e-3 and abs(flat.std() - 1.0) < 1e-3
    raw = fe(waves[0], sampling_rate=16000, return_tensors="np")["input_features"][0]
    np.testing.assert_allclose(feats[0], (raw - mean) / std, atol=1e-4)
    normed.save_pretrained(tmp_path)
    again = AudioCapFeatureExtractor.from_pretrained(tmp_path)
    assert (again.do_normalize, again.mean, again.std) == (True, mean, std)
    with pytest.raises(ValueError, match="std"):
        AudioCapFeatureExtractor(std=0.0)


def test_features_can_be_trained_on_when_no_clip_is_padded(fe):
    """Equal-length clips: the model drops the all-ones mask, so the features reach the first conv untouched; they
    must be ordinary tensors (an inference-mode tensor there failed the backward pass of a training step)."""
    from hf_audiocap import AudioCapConfig, AudioCapForConditionalGeneration

    rng = np.random.default_rng(0)
    clips = [(0.1 * rng.standard_normal(8000)).astype(np.float32) for _ in range(2)]
    batch = fe(clips, sampling_rate=16000, return_tensors="pt")
    assert not batch["input_features"].is_inference() and bool(batch["attention_mask"].all())
    model = AudioCapForConditionalGeneration(AudioCapConfig(vocab_size=16)).train()
    labels = torch.tensor([[4, 5, 3], [6, 3, -100]])
    model(**batch, labels=labels).loss.backward()
    assert model.get_encoder().model.convs[0].weight.grad is not None
