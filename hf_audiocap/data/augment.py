"""Training-only augmentations: SpecAugment on log-mels and mixup on waveforms.

Both draw from torch's global RNG, which the Trainer seeds and checkpoints. `recipes/train.py` has `AudioCapTrainer`
apply SpecAugment at the training step, after a resumed run has restored its checkpoint's RNG state, so a resumed run
replays the same masks (tests/test_training_faults.py: bit-identical weights). Mixup is drawn while collating, but the
dataloader collates one batch ahead and a resumed run restores the RNG state only after fetching its first batch: after
a resume from a checkpoint inside an epoch, mixup draws differ from an uninterrupted run's (SpecAugment drawn in the
collator did: weights 5e-3 apart after 12 tiny steps).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class SpecAugment:
    """SpecAugment (Park et al., 2019) without time warping, on `(batch, n_mels, frames)` log-mels.

    Masks are drawn inside each clip's real frames (the attention mask), and masked cells take the
    clip's mean log-mel value, so padding and statistics stay as they were.
    """

    num_time_masks: int = 2
    max_time_width: float = 0.05  # fraction of the clip's real frames
    num_freq_masks: int = 2
    max_freq_width: int = 8  # mel bins

    def __call__(self, features: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        features = features.clone()
        batch, n_mels, _ = features.shape
        lengths = attention_mask.sum(-1).tolist()
        for b in range(batch):
            length = int(lengths[b])
            if length == 0:
                continue
            fill = features[b, :, :length].mean()
            for _ in range(self.num_freq_masks):
                width = int(torch.randint(0, self.max_freq_width + 1, ()).item())
                start = int(torch.randint(0, max(1, n_mels - width), ()).item())
                features[b, start : start + width, :length] = fill
            max_t = max(1, int(self.max_time_width * length))
            for _ in range(self.num_time_masks):
                width = int(torch.randint(0, max_t + 1, ()).item())
                start = int(torch.randint(0, max(1, length - width), ()).item())
                features[b, :, start : start + width] = fill
        return features


@dataclass
class CaptionMixup:
    """Mixup for captioning: two clips are mixed at comparable loudness and their captions joined.

    Following the audio-captioning literature (e.g. DCASE 2022 task 6 systems), the target of a mixed
    clip is both captions joined with "and" (`caption_a and caption_b`), so the model is asked to
    describe everything it hears rather than an interpolated label. Each example is mixed with
    probability `prob` with another example of the same batch; the mix weight is drawn from
    Beta(alpha, alpha) and kept in [0.3, 0.7] so both clips stay audible.
    """

    prob: float = 0.5
    alpha: float = 2.0
    joiner: str = "and"

    def __call__(
        self, waves: list[np.ndarray], captions: list[str] | None
    ) -> tuple[list[np.ndarray], list[str] | None]:
        n = len(waves)
        if n < 2 or self.prob <= 0:
            return waves, captions
        mixed_waves, mixed_captions = list(waves), list(captions) if captions is not None else None
        beta = torch.distributions.Beta(self.alpha, self.alpha)
        for i in range(n):
            if torch.rand(()).item() >= self.prob:
                continue
            j = int(torch.randint(0, n - 1, ()).item())
            j = j + 1 if j >= i else j
            lam = float(beta.sample().clamp(0.3, 0.7))
            a, b = waves[i], waves[j]
            b = np.resize(b, a.shape) if len(b) < len(a) else b[: len(a)]
            # Mix at equal RMS before weighting, so a quiet clip is not drowned by a loud one.
            rms_a = float(np.sqrt(np.mean(a * a)) + 1e-8)
            rms_b = float(np.sqrt(np.mean(b * b)) + 1e-8)
            mixed = lam * a + (1.0 - lam) * b * (rms_a / rms_b)
            peak = float(np.max(np.abs(mixed)))
            mixed_waves[i] = (mixed / peak * 0.99 if peak > 1.0 else mixed).astype(np.float32)
            if mixed_captions is not None:
                mixed_captions[i] = self._join(captions[i], captions[j])
        return mixed_waves, mixed_captions

    def _join(self, a, b):
        if isinstance(a, str):
            return f"{a.rstrip(' .')} {self.joiner} {b.rstrip(' .')}"
        others = list(b) if not isinstance(b, str) else [b]
        return [self._join(cap, others[k % len(others)]) for k, cap in enumerate(a)]
