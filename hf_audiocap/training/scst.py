"""Self-critical sequence training (SCST): fine-tune a captioner on the CIDEr-D of its own sampled captions.

Rennie et al. 2017 ("Self-critical sequence training for image captioning"), with the baseline of Luo 2020 ("A better
variant of self-critical sequence training"): for each clip, `k` captions are sampled from the model; each gets its
CIDEr-D against the clip's references as reward, minus the mean reward of the clip's other `k - 1` samples as
baseline; the loss is the REINFORCE estimate `-(reward - baseline) * log p(sampled token)`, averaged over the sampled
tokens. It is the standard last stage of audio captioning systems trained for CIDEr-D / SPIDEr (DCASE task 6): a model
first trained with cross-entropy learns to put its probability mass on the consensus wording that CIDEr-D rewards.

CIDEr-D here is the metric's own (`hf_audiocap.metrics.scorers.cider_d`, the one the caption metrics report), with
the document frequencies counted once over the training references (as in Rennie et al.), on the words of
`hf_audiocap.metrics.text.caption_words` (lower case, punctuation removed: PTB's words on plain captions, without a JVM
call per step).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hf_audiocap.metrics.scorers import CIDER_SIGMA, CorpusNgrams, DocumentFrequencies, cider_d
from hf_audiocap.metrics.text import caption_words, normalize_caption

__all__ = ["CiderDReward", "caption_words", "sampled_labels", "scst_loss"]


class CiderDReward:
    """CIDEr-D of candidate captions against their clip's references, document frequencies from a fixed corpus.

    `corpus`: the reference sets of the training clips (one list of captions per clip)."""

    def __init__(self, corpus: list[list[str]], sigma: float = CIDER_SIGMA):
        if not corpus:
            raise ValueError("CiderDReward needs the training references (one list of captions per clip), got none")
        self.sigma = sigma
        self.document_frequencies = DocumentFrequencies.from_references(
            [[normalize_caption(ref) for ref in refs] for refs in corpus]
        )

    def __call__(self, candidates: list[str], references: list[list[str]]):
        """CIDEr-D of `candidates[i]` against `references[i]` (a list of captions), one float per candidate."""
        if len(candidates) != len(references):
            raise ValueError(f"{len(candidates)} candidates but {len(references)} reference sets")
        corpus = CorpusNgrams(
            [normalize_caption(c) for c in candidates], [[normalize_caption(r) for r in refs] for refs in references]
        )
        return cider_d(corpus, self.sigma, document_frequencies=self.document_frequencies)[1]


def sampled_labels(sequences: torch.Tensor, eos_token_id: int | list[int]) -> torch.Tensor:
    """Generated sequences `(rows, 1 + T)` (decoder start first) -> labels `(rows, T)`: the sampled tokens up to and
    including the first `<eos>`, -100 after it (finished rows are padded by `generate`)."""
    labels = sequences[:, 1:].clone()
    eos = torch.as_tensor(eos_token_id, device=labels.device).reshape(-1)
    is_eos = torch.isin(labels, eos)
    after_eos = (is_eos.long().cumsum(-1) - is_eos.long()) > 0
    return labels.masked_fill(after_eos, -100)


def clip_styles(inputs: dict, clips: int) -> dict:
    """Each clip's style as the collator gave it to the clip's caption rows (a model trained with styles): the
    encoder-decoder's decoder prompt `[start, style]` (`decoder_input_ids`), or the audio-prefix model's
    `style_index`, one row per clip; {} for a model without styles."""
    given = inputs.get("style_index")
    name = "style_index"
    if given is None and inputs.get("decoder_input_ids") is not None:
        given, name = inputs["decoder_input_ids"][:, :2], "decoder_input_ids"
    if given is None:
        return {}
    rows = inputs.get("encoder_index")
    if rows is None:
        return {name: given}
    first = [rows.tolist().index(c) for c in range(clips)]
    return {name: given[torch.tensor(first, device=given.device)]}


def scst_loss(
    model,
    inputs: dict,
    references: list[list[str]],
    reward: CiderDReward,
    decode,
    num_samples: int = 5,
    max_length: int = 32,
    sampling: str = "sample",
) -> tuple[torch.Tensor, float]:
    """SCST loss of one batch of clips and the mean reward of its samples.

    `inputs`: the clips' encoder inputs (`input_features`/`input_values` and `attention_mask`, one row per clip; the
    training batch's caption rows are not used); `references[c]`: clip c's captions; `decode`: token ids -> captions.
    Sampling runs without gradients and without dropout; the log-probabilities of the sampled tokens are then computed
    by a teacher-forced forward in the model's training mode, each clip encoded once for its `num_samples` rows. A
    model trained with styles samples each clip's captions in the clip's style (:func:`clip_styles`), which is given,
    not sampled: it earns no reward and gets no gradient.
    `sampling="beam"`: the samples are the clip's `num_samples` best beams instead of random draws (the variant of
    Cornia et al. 2020, "Meshed-memory transformer"): the reward then ranks the captions beam search produces."""
    if num_samples < 2:
        raise ValueError("SCST needs at least 2 samples per clip (each sample's baseline is the others' mean reward)")
    audio = {k: v for k, v in inputs.items() if k in ("input_features", "input_values", "attention_mask")}
    clips = next(iter(audio.values())).shape[0]
    if len(references) != clips:
        raise ValueError(f"{clips} clips in the batch but {len(references)} reference sets")
    unwrapped = getattr(model, "module", model)
    was_training = unwrapped.training
    unwrapped.eval()
    if sampling == "sample":  # the model's own distribution: no processor may reshape it (p(sample) = the forward's)
        search = {"do_sample": True, "num_beams": 1, "top_k": 0, "top_p": 1.0, "temperature": 1.0}
    elif sampling == "beam":
        search = {"do_sample": False, "num_beams": num_samples, "length_penalty": 1.0, "early_stopping": True}
    else:
        raise ValueError(f"sampling must be 'sample' or 'beam', got {sampling!r}")
    styles = clip_styles(inputs, clips) if getattr(unwrapped.config, "styles", None) else {}
    with torch.no_grad():
        sequences = unwrapped.generate(
            **audio,
            **styles,
            **search,
            repetition_penalty=1.0,
            no_repeat_ngram_size=0,
            min_length=0,
            num_return_sequences=num_samples,
            max_length=max_length,
        )
    unwrapped.train(was_training)

    rewards = reward(decode(sequences), [refs for refs in references for _ in range(num_samples)])
    per_clip = torch.tensor(rewards, dtype=torch.float32).view(clips, num_samples)
    baseline = (per_clip.sum(1, keepdim=True) - per_clip) / (num_samples - 1)
    advantage = (per_clip - baseline).view(-1).to(sequences.device)

    encoder_index = torch.arange(clips, device=sequences.device).repeat_interleave(num_samples)
    if getattr(unwrapped.config, "is_encoder_decoder", True):
        labels = sampled_labels(sequences, unwrapped.generation_config.eos_token_id)
        if "decoder_input_ids" in styles:  # sequences start [start, style]: the style's position is not sampled
            labels[:, : styles["decoder_input_ids"].shape[1] - 1] = -100
        logits = model(**audio, decoder_input_ids=sequences[:, :-1], encoder_index=encoder_index).logits
    else:  # the audio-prefix model: generate returns the caption tokens alone, and reads its caption from labels
        labels = sampled_labels(F.pad(sequences, (1, 0)), unwrapped.generation_config.eos_token_id)
        if "style_index" in styles:
            styles = {"style_index": styles["style_index"].repeat_interleave(num_samples)}
        logits = model(**audio, **styles, labels=labels, encoder_index=encoder_index).logits
    valid = labels != -100
    token_logp = F.log_softmax(logits.float(), dim=-1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    loss = -(advantage[:, None] * token_logp * valid).sum() / valid.sum().clamp(min=1)
    return loss, float(rewards.mean())
