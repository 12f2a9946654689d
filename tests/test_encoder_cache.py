"""`cache_encoder_outputs`: a frozen pretrained encoder's states kept per clip give the model the outputs it computes
without the cache, in training and in generation, whatever batch a clip comes in; a clip seen again is not encoded
again; the recipes refuse the cache where it would be wrong."""

from __future__ import annotations

import pytest
import torch
from model_helpers import batch, composed, labels_for, save_whisper

from hf_audiocap.encoders_audiocap import FrozenEncoderCache


def test_cached_states_match_and_clips_are_encoded_once(tmp_path):
    model = composed(encoder_dir=save_whisper(tmp_path / "whisper"))
    model.freeze_encoder()
    feats, mask = batch(lengths=(61, 40, 23))
    labels = labels_for(3)
    with torch.no_grad():
        plain = model(input_features=feats, attention_mask=mask, labels=labels).logits
        plain_gen = model.generate(input_features=feats, attention_mask=mask, num_beams=2, max_length=8)
    cache = FrozenEncoderCache()
    model.model.encoder.frozen_cache = cache
    with torch.no_grad():
        cached = model(input_features=feats, attention_mask=mask, labels=labels).logits
        assert (cache.hits, cache.misses) == (0, 3)
        again = model(input_features=feats, attention_mask=mask, labels=labels).logits
        assert (cache.hits, cache.misses) == (3, 3)
        cached_gen = model.generate(input_features=feats, attention_mask=mask, num_beams=2, max_length=8)
        # the last clip alone, in a batch of its own length: its cached states serve it
        alone = model(input_features=feats[2:, :, :23], attention_mask=mask[2:, :23], labels=labels[2:]).logits
    assert cache.misses == 3
    torch.testing.assert_close(cached, plain, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(again, plain, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(alone, plain[2:], atol=1e-5, rtol=1e-5)
    assert torch.equal(cached_gen, plain_gen)
    # training still flows into the adapter and decoder; the frozen encoder's weights get no gradient
    model.train()
    model(input_features=feats, attention_mask=mask, labels=labels).loss.backward()
    assert all(p.grad is not None for p in model.model.decoder.parameters() if p.requires_grad)
    assert all(p.grad is None for p in model.model.encoder.model.parameters())


@pytest.mark.parametrize(
    "extra, message",
    [
        ("cache_encoder_outputs: true\n", "needs freeze_encoder"),
        ("cache_encoder_outputs: true\nfreeze_encoder: true\nencoder_name_or_path: x\nspec_augment: true\n",
         "spec_augment: false"),
    ],
)  # fmt: skip
def test_cache_needs_a_frozen_encoder_and_fixed_features(tmp_path, extra, message):
    from hf_audiocap.training.arguments import parse_recipe

    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"dataset: synthcaps\ndataset_path: data/synthcaps\noutput_dir: {tmp_path}\nreport_to: none\n{extra}"
    )
    with pytest.raises(ValueError, match=message):
        parse_recipe([str(recipe)])


def test_states_on_disk_serve_a_later_run_of_the_same_encoder_only(tmp_path, monkeypatch, caplog):
    """`encoder_cache_dir`: a second model with a fresh cache on the same folder reads every clip's states from disk
    and never runs the encoder; the logits are those of the plain model; another encoder gets a folder of its own; an
    unreadable file is encoded again and rewritten."""
    import hf_audiocap.encoders_audiocap as encoders
    from hf_audiocap.training.encoder_store import EncoderStateStore, encoder_digest

    whisper = save_whisper(tmp_path / "whisper")
    feats, mask = batch(lengths=(61, 40, 23))
    labels = labels_for(3)

    def cached_model(folder):
        model = composed(encoder_dir=whisper)
        model.freeze_encoder()
        audio = model.model.encoder
        store = EncoderStateStore(folder, encoder_digest(audio.kind, audio.model), description="tiny whisper")
        audio.frozen_cache = FrozenEncoderCache(max_clips=None, store=store)
        return model, audio.frozen_cache, store

    first, cache, store = cached_model(tmp_path / "states")
    with torch.no_grad():
        plain = composed(encoder_dir=whisper)(input_features=feats, attention_mask=mask, labels=labels).logits
        out = first(input_features=feats, attention_mask=mask, labels=labels).logits
    assert (cache.misses, store.written, store.read) == (3, 3, 0)
    files = sorted(store.root.glob("*/*.safetensors"))
    assert len(files) == 3 and (store.root / "encoder.json").exists()

    second, cache2, store2 = cached_model(tmp_path / "states")
    assert store2.root == store.root
    real_encode = encoders.encode_pretrained

    def refuse(*args, **kwargs):
        raise AssertionError("the encoder ran although every clip's states were on disk")

    monkeypatch.setattr(encoders, "encode_pretrained", refuse)
    with torch.no_grad():
        again = second(input_features=feats, attention_mask=mask, labels=labels).logits
        generated = second.generate(input_features=feats, attention_mask=mask, num_beams=2, max_length=8)
    assert (cache2.hits, cache2.misses, store2.written) == (6, 0, 0)  # forward, then generate's one encoder call
    torch.testing.assert_close(out, plain, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(again, plain, atol=1e-5, rtol=1e-5)
    assert generated.shape[0] == 3
    monkeypatch.setattr(encoders, "encode_pretrained", real_encode)

    # an unreadable file: encoded again, and rewritten whole
    files[0].write_bytes(b"not a safetensors file")
    third, cache3, store3 = cached_model(tmp_path / "states")
    with torch.no_grad(), caplog.at_level("WARNING"):
        third(input_features=feats, attention_mask=mask, labels=labels)
    assert (cache3.misses, store3.written) == (1, 1)
    assert "unreadable" in caplog.text and files[0].name in caplog.text
    assert EncoderStateStore(tmp_path / "states", store.root.name).get(bytes.fromhex(files[0].stem)) is not None

    # other weights: another digest, so nothing is shared
    other = composed(encoder_dir=whisper)
    with torch.no_grad():
        next(other.model.encoder.model.parameters()).add_(0.01)
    assert encoder_digest("whisper", other.model.encoder.model) != store.root.name


def test_encoder_cache_dir_needs_the_cache(tmp_path):
    from hf_audiocap.training.arguments import parse_recipe

    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"dataset: synthcaps\ndataset_path: data/synthcaps\noutput_dir: {tmp_path}\nreport_to: none\n"
        f"freeze_encoder: true\nencoder_name_or_path: x\nencoder_cache_dir: {tmp_path / 'states'}\n"
    )
    with pytest.raises(ValueError, match="cache_encoder_outputs"):
        parse_recipe([str(recipe)])


def test_an_encoder_cache_dir_that_cannot_be_written_is_one_line(tmp_path):
    from hf_audiocap.training.encoder_store import EncoderStateStore

    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(ValueError, match=r"^encoder_cache_dir: cannot write in .*file/abc"):
        EncoderStateStore(tmp_path / "file", "abc")


def test_a_store_that_cannot_write_warns_once_and_the_states_still_serve(tmp_path, monkeypatch, caplog):
    """A full disk: one warning, nothing more written, and the run goes on with the states it computed."""
    import hf_audiocap.training.encoder_store as encoder_store

    model = composed(encoder_dir=save_whisper(tmp_path / "whisper"))
    model.freeze_encoder()
    feats, mask = batch(lengths=(61, 40, 23))
    labels = labels_for(3)
    with torch.no_grad():
        plain = model(input_features=feats, attention_mask=mask, labels=labels).logits
    store = encoder_store.EncoderStateStore(tmp_path / "states", "abc")

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(encoder_store, "write_atomic", full)
    model.model.encoder.frozen_cache = FrozenEncoderCache(max_clips=None, store=store)
    with torch.no_grad(), caplog.at_level("WARNING"):
        cached = model(input_features=feats, attention_mask=mask, labels=labels).logits
    assert store.written == 0 and caplog.text.count("No space left on device") == 1
    assert not list(store.root.glob("*/*.safetensors"))
    torch.testing.assert_close(cached, plain, atol=1e-5, rtol=1e-5)
