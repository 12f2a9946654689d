"""SpecAugment: what it masks, and what it must leave alone (padding frames)."""

from __future__ import annotations

import torch

from hf_audiocap.data.augment import SpecAugment

N_MELS, FRAMES = 64, 40


def batch():
    torch.manual_seed(0)
    features = torch.randn(6, N_MELS, FRAMES)
    mask = torch.ones(6, FRAMES, dtype=torch.long)
    mask[1, 25:] = 0  # a shorter clip, padded
    return features, mask


def test_spec_augment_masks_only_real_frames_with_the_clip_mean():
    features, mask = batch()
    out = SpecAugment(num_time_masks=2, max_time_width=0.2, num_freq_masks=2, max_freq_width=8)(features, mask)
    assert torch.equal(out[1, :, 25:], features[1, :, 25:])
    for b in range(len(features)):
        real = int(mask[b].sum())
        changed = out[b, :, :real] != features[b, :, :real]
        fill = features[b, :, :real].mean()
        assert torch.allclose(out[b, :, :real][changed], fill.expand(int(changed.sum())))
        # every masked cell lies in a masked band of mel bins (all real frames) or a masked run of frames (all bins)
        rows, cols = changed.all(dim=1), changed.all(dim=0)
        assert torch.equal(changed, rows[:, None] | cols[None, :])
    assert any((out[b] != features[b]).any() for b in range(len(features)))


def test_spec_augment_draws_from_torch_rng():
    """Drawn from torch's global RNG, which the Trainer seeds and restores on resume (tests/test_training_faults.py)."""
    features, mask = batch()
    torch.manual_seed(3)
    first = SpecAugment()(features, mask)
    torch.manual_seed(3)
    assert torch.equal(SpecAugment()(features, mask), first)
