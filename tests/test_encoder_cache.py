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
