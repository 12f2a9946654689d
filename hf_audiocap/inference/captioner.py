"""One inference path for every entry point (evaluate.py, the CLI, the app, the pipeline):
waveforms -> log-mels -> generate -> text, batched, with the model's saved generation settings."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from hf_audiocap.data.audio import load_audio


@dataclass
class Captioner:
    model: torch.nn.Module
    processor: object
    batch_size: int = 16
    generate_kwargs: dict = field(default_factory=dict)

    @classmethod
    def from_pretrained(cls, name_or_path: str, trust_remote_code: bool = False, **kwargs) -> Captioner:
        """Loads a saved model folder or Hub id (safetensors only; remote code only when asked)."""
        from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor

        import hf_audiocap  # noqa: F401  (registers the Auto classes)

        processor = AutoProcessor.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
        model = AutoModelForSpeechSeq2Seq.from_pretrained(
            name_or_path, trust_remote_code=trust_remote_code, use_safetensors=True
        )
        model.eval()
        return cls(model=model, processor=processor, **kwargs)

    @property
    def sampling_rate(self) -> int:
        return self.processor.feature_extractor.sampling_rate

    @torch.inference_mode()
    def caption_arrays(self, waves: Sequence[np.ndarray], return_scores: bool = False, **generate_kwargs):
        """Captions for mono float waveforms at `self.sampling_rate`, in order."""
        kwargs = {**self.generate_kwargs, **generate_kwargs}
        captions, scores = [], []
        for start in range(0, len(waves), self.batch_size):
            chunk = list(waves[start : start + self.batch_size])
            inputs = self.processor(audio=chunk, sampling_rate=self.sampling_rate, return_tensors="pt")
            inputs = {k: v.to(self.model.device) for k, v in inputs.items() if k != "labels"}
            if return_scores:
                out = self.model.generate(**inputs, return_dict_in_generate=True, output_scores=True, **kwargs)
                sequences = out.sequences
                seq_scores = getattr(out, "sequences_scores", None)
                if seq_scores is None:
                    seq_scores = self.model.compute_transition_scores(out.sequences, out.scores).sum(-1)
                scores.extend(float(s) for s in seq_scores.reshape(len(chunk), -1)[:, 0])
            else:
                sequences = self.model.generate(**inputs, **kwargs)
            texts = self.processor.batch_decode(sequences, skip_special_tokens=True)
            captions.extend(t.strip() for t in texts)
        return (captions, scores) if return_scores else captions

    def caption_sources(self, sources: Iterable, max_duration: float | None = None, **generate_kwargs) -> list[str]:
        """Captions for audio references (paths, bytes, {path, bytes} dicts), decoded by `data.audio` one
        batch at a time so memory holds one batch of audio, not the whole set."""
        sources, captions = list(sources), []
        for start in range(0, len(sources), self.batch_size):
            batch = sources[start : start + self.batch_size]
            waves = [load_audio(s, self.sampling_rate, max_duration=max_duration) for s in batch]
            captions.extend(self.caption_arrays(waves, **generate_kwargs))
        return captions
