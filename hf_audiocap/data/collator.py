"""The data collator: audio references and captions in, padded model inputs out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from hf_audiocap.data.audio import load_audio
from hf_audiocap.data.augment import CaptionMixup


@dataclass
class AudioCaptionCollator:
    """Decodes each example's audio, extracts log-mels padded to the longest clip of the batch (with
    the frame `attention_mask`), and tokenizes its caption into `labels` padded with -100. The model shifts the
    labels into its decoder input itself (teacher forcing), so the collator needs no model.

    An example's text may be one caption (a (clip, caption) example) or the list of its captions (a
    clip with grouped references): then every caption becomes a label row and `encoder_index` tells the
    model which clip each row describes, so the clip is encoded once for all of its captions.
    Examples without the text column (clips to caption) get no labels. Augmentations apply only when
    `training` is True.

    Examples that carry precomputed log-mels (an `input_features` column of (frames, n_mels) arrays, see
    `hf_audiocap.data.features`) are not decoded: their features are padded exactly as the feature extractor pads
    a batch (same values, same mask). With `return_clip_ids`, the batch also holds `clip_ids` (the examples' `id`),
    which `AudioCapTrainer` pops before the forward, to name a batch whose loss is not finite. With
    `return_references`, it holds `references`: each clip's captions as text (the rewards of self-critical training).

    With `style_token_ids` (a model trained with styles, docs/mixtures.md), each example's `style` is the token its
    decoder sees after the start token: the batch holds `decoder_input_ids` (`[start, style, caption...]`, or
    `[start, style]` for clips to caption, the prompt `generate` continues) and the labels gain a first position,
    -100, where the style would be predicted: the style is given, never learnt as a guess. With `style_order` (an
    audio-prefix model trained with styles), the batch holds `style_index`, each row's style in that order: the
    model puts the style's text before the caption.
    """

    processor: Any
    audio_column: str = "audio"
    text_column: str = "caption"
    max_duration: float | None = None
    max_label_length: int | None = None
    input_name: str = "input_features"
    training: bool = False
    mixup: CaptionMixup | None = None
    return_clip_ids: bool = False
    return_references: bool = False
    style_token_ids: dict | None = None
    decoder_start_token_id: int | None = None
    style_order: list | None = None

    @property
    def sampling_rate(self) -> int:
        return self.processor.feature_extractor.sampling_rate

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if not examples:
            raise ValueError("cannot collate an empty batch")
        precomputed = "input_features" in examples[0]
        if not precomputed:
            waves = [
                load_audio(
                    ex[self.audio_column], self.sampling_rate, max_duration=self.max_duration, name=ex.get("id")
                )
                for ex in examples
            ]
        captions = [ex[self.text_column] for ex in examples] if self.text_column in examples[0] else None
        if self.training and self.mixup is not None:
            if precomputed:
                raise ValueError("mixup mixes waveforms: it cannot apply to precomputed log-mels")
            waves, captions = self.mixup(waves, captions)
        references = None
        if self.return_references and captions is not None:
            references = [list(c) if isinstance(c, (list, tuple)) else [c] for c in captions]
        encoder_index = None
        if captions is not None and isinstance(captions[0], (list, tuple)):
            for ex, caps in zip(examples, captions):
                if not caps:
                    raise ValueError(f"clip {ex.get('id')!r} has no captions")
            encoder_index = torch.tensor([i for i, caps in enumerate(captions) for _ in caps])
            captions = [c for caps in captions for c in caps]
        if precomputed:
            batch = self._pad_features([ex["input_features"] for ex in examples])
        else:
            batch = dict(self.processor(audio=waves, sampling_rate=self.sampling_rate, return_tensors="pt"))
        if captions is not None:
            batch["labels"] = self.processor(text=captions, return_tensors="pt")["labels"]
        if encoder_index is not None:
            batch["encoder_index"] = encoder_index
        if self.input_name != "input_features" and "input_features" in batch:
            batch[self.input_name] = batch.pop("input_features")
        if captions is not None:
            labels = batch["labels"]
            if self.max_label_length is not None and labels.shape[1] > self.max_label_length:
                # Truncate the words, not the stop signal: over-long captions still end with eos.
                too_long = (labels != -100).sum(-1) > self.max_label_length
                labels = labels[:, : self.max_label_length].clone()
                labels[too_long, -1] = self.processor.tokenizer.eos_token_id
                batch["labels"] = labels
        if self.style_token_ids is not None or self.style_order is not None:
            rows = encoder_index.tolist() if encoder_index is not None else range(len(examples))
            self._add_style(batch, [examples[i].get("style") for i in rows], [ex.get("id") for ex in examples])
        if self.return_clip_ids:
            batch["clip_ids"] = [ex.get("id") for ex in examples]
        if references is not None:
            batch["references"] = references
        return batch

    def _add_style(self, batch: dict, styles: list, clip_ids: list) -> None:
        """`decoder_input_ids` starting `[start, style]` and labels shifted one place right behind -100 (see above)."""
        known = self.style_order if self.style_order is not None else list(self.style_token_ids)
        unknown = [(i, s) for i, s in zip(clip_ids, styles) if s not in known]
        if unknown:
            raise ValueError(
                f"clip {unknown[0][0]!r}: style {unknown[0][1]!r} is not one of the model's ({', '.join(known)})"
            )
        if self.style_order is not None:
            batch["style_index"] = torch.tensor([self.style_order.index(s) for s in styles])
            return
        labels = batch.get("labels")
        styles_ids = torch.tensor([self.style_token_ids[s] for s in styles]).unsqueeze(1)
        start = torch.full_like(styles_ids, self.decoder_start_token_id)
        if labels is None:
            batch["decoder_input_ids"] = torch.cat([start, styles_ids], 1)
            return
        pad = self.processor.tokenizer.pad_token_id
        words = labels[:, :-1].masked_fill(labels[:, :-1] == -100, pad)
        batch["decoder_input_ids"] = torch.cat([start, styles_ids, words], 1)
        batch["labels"] = torch.cat([torch.full_like(styles_ids, -100), labels], 1)

    def _pad_features(self, per_clip: list) -> dict[str, torch.Tensor]:
        """(frames, n_mels) log-mels of each clip -> (batch, n_mels, longest) float32 + (batch, longest) int64 mask."""
        feats = [torch.from_numpy(np.asarray(f, dtype=np.float32)) for f in per_clip]
        frames = torch.tensor([f.shape[0] for f in feats])
        total = int(frames.max())
        fe = self.processor.feature_extractor
        out = torch.full((len(feats), fe.feature_size, total), float(fe.padding_value))
        for i, f in enumerate(feats):
            out[i, :, : f.shape[0]] = f.T
        mask = (torch.arange(total).unsqueeze(0) < frames.unsqueeze(1)).to(torch.int64)
        return {"input_features": out, "attention_mask": mask}
