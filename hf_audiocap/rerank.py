"""Candidates and reranking: generate k captions per clip, then pick one by a scorer or a weighted sum of scorers.

`rerank` is a plain setting, like `no_repeat_content_words` (:mod:`hf_audiocap.generation`): a Captioner / pipeline
keyword, a CLI flag (`--rerank`), an app field, an `evaluate.py` option and a recipe key (`generation_rerank`, saved as
plain attributes of `generation_config.json`, so a saved folder stays loadable by plain transformers). Its value is a
scorer name (``"mbr"``), weighted names (``"logprob:0.5,clap:0.5"``) or a dict (``{"logprob": 0.5, "clap": 0.5}``).
Companion settings: `rerank_candidates` (k >= 2, default 5), `rerank_sampling` (False: the beam search's k best;
True or a float: nucleus sampling of k captions with that top_p, 0.95 for True), `rerank_evidence` (what `mbr`
measures the candidates against: 0, the default, the other candidates; N, N captions sampled from the model) and
`rerank_clap_model` (a transformers CLAP folder or Hub id, needed by `clap`; e.g. ``laion/clap-htsat-unfused``).

The scorers (higher is better):

- ``logprob``: the model's own length-normalised log-probability of the caption (beam search's `sequences_scores`;
  for sampled captions the mean log-probability of their tokens under the model's unwarped distribution). What the
  model believes; it favours short, generic captions.
- ``mbr``: minimum Bayes risk, the candidate's mean CIDEr-D against pseudo-references (the project's CIDEr-D,
  :func:`hf_audiocap.metrics.scorers.cider_d`, on the words of :func:`~hf_audiocap.metrics.text.normalize_caption`):
  an estimate of the caption that maximises expected CIDEr-D against unseen references; no extra model. By default
  the pseudo-references are the clip's other candidates (the candidate the others agree with most). With
  `rerank_evidence=N` they are N captions sampled from the model (nucleus sampling, the top_p of `rerank_sampling`
  or 0.95), duplicates kept, so a caption the model draws often weighs as often: the expectation is then taken under
  the model's own distribution rather than over a beam's near-paraphrases (the hypotheses stay the k candidates;
  benchmarks/RESULTS.md measures both). The idf weights are uniform: counted over one clip's captions they would be
  zero for exactly the n-grams they share, and counted over a batch they would make a clip's caption depend on the
  other clips of its batch.
- ``clap``: cosine similarity of the clip's audio and the caption in a CLAP model's joint embedding (``ClapModel`` +
  ``ClapProcessor``; the audio is resampled to the CLAP extractor's rate by :func:`hf_audiocap.data.audio.load_audio`).
  An independent judge of whether the caption describes this audio, as in SLAM-AAC and the DCASE 2023 winner.

Several scorers (the DCASE 2023 hybrid) are combined per clip: each scorer's scores are z-scored over that clip's
candidates (minus their mean, divided by their standard deviation; 0 when all are equal), so scorers on different
scales weigh as their weights say, then summed with the weights. Candidates that decode to the same text are merged
(the first, best-ranked one is kept).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch

__all__ = [
    "DEFAULT_CANDIDATES",
    "DEFAULT_TOP_P",
    "SCORERS",
    "CandidateBatch",
    "ClapScorer",
    "Reranked",
    "RerankSettings",
    "consensus_cider_d",
    "generate_candidates",
    "parse_rerank",
    "rerank_candidates",
    "sequence_logprobs",
]

DEFAULT_CANDIDATES = 5
DEFAULT_TOP_P = 0.95
SCORERS = ("logprob", "mbr", "clap")
# the generate()/Captioner keywords and generation_config attributes that carry the setting
KEYS = ("rerank", "rerank_candidates", "rerank_sampling", "rerank_clap_model", "rerank_evidence")


def parse_rerank(spec) -> dict[str, float]:
    """``"mbr"``, ``"logprob:0.5,clap:0.5"`` or ``{"logprob": 0.5, "clap": 0.5}`` as ``{scorer: weight}``; a name
    without a weight weighs 1. ValueError (one line) for an unknown scorer, a weight that is not a finite number >= 0,
    or weights that sum to zero."""
    if isinstance(spec, Mapping):
        items = list(spec.items())
    elif isinstance(spec, str):
        items = []
        for part in (p.strip() for p in spec.split(",")):
            if not part:
                continue
            name, _, weight = part.partition(":")
            items.append((name.strip(), weight.strip() or 1.0))
    else:
        raise ValueError(f"rerank: expected a scorer name, 'name:weight,...' or a dict, got {type(spec).__name__}")
    if not items:
        raise ValueError(f"rerank: no scorer given; choose from {', '.join(SCORERS)}")
    weights: dict[str, float] = {}
    for name, weight in items:
        name = str(name).strip().lower()
        if name not in SCORERS:
            raise ValueError(f"rerank: unknown scorer {name!r}; known: {', '.join(SCORERS)}")
        try:
            value = float(weight)
        except (TypeError, ValueError):
            raise ValueError(f"rerank: weight of {name!r} must be a number, got {weight!r}") from None
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"rerank: weight of {name!r} must be a finite number >= 0, got {weight!r}")
        weights[name] = weights.get(name, 0.0) + value
    if sum(weights.values()) <= 0:
        raise ValueError("rerank: the weights sum to zero; give at least one scorer a positive weight")
    return weights


def _parse_sampling(value) -> float | None:
    """`rerank_sampling` as a top_p, or None for beam search."""
    if value is None or value is False:
        return None
    if value is True:
        return DEFAULT_TOP_P
    if isinstance(value, str):
        low = value.strip().lower()
        if low in ("", "false", "no", "off", "beam"):
            return None
        if low in ("true", "yes", "on"):
            return DEFAULT_TOP_P
    try:
        top_p = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"rerank_sampling: expected true/false or a top_p in (0, 1], got {value!r}") from None
    if not 0 < top_p <= 1:
        raise ValueError(f"rerank_sampling: top_p must be in (0, 1], got {value!r}")
    return top_p


@dataclass
class RerankSettings:
    """What a reranked generation needs: the scorers' weights, k, beam search or sampling, the CLAP folder, and
    how many sampled captions `mbr` measures the candidates against (0: the candidates themselves)."""

    weights: dict[str, float]
    candidates: int = DEFAULT_CANDIDATES
    top_p: float | None = None  # None: the beam search's k best; else nucleus sampling with this top_p
    clap_model: str | None = None
    evidence: int = 0

    def __post_init__(self):
        self.weights = parse_rerank(self.weights)
        try:
            self.candidates = int(self.candidates)
        except (TypeError, ValueError):
            raise ValueError(f"rerank_candidates: expected an integer >= 2, got {self.candidates!r}") from None
        if self.candidates < 2:
            raise ValueError(f"rerank_candidates: reranking needs at least 2 candidates, got {self.candidates}")
        self.top_p = _parse_sampling(self.top_p)
        try:
            self.evidence = int(self.evidence or 0)
        except (TypeError, ValueError):
            raise ValueError(f"rerank_evidence: expected an integer >= 0, got {self.evidence!r}") from None
        if self.evidence < 0:
            raise ValueError(f"rerank_evidence: expected an integer >= 0, got {self.evidence}")
        if self.evidence and not self.weights.get("mbr", 0) > 0:
            raise ValueError(
                "rerank_evidence: only the 'mbr' scorer reads sampled pseudo-references; add mbr to rerank"
            )
        if self.weights.get("clap", 0) > 0 and not self.clap_model:
            raise ValueError(
                "rerank: 'clap' needs a CLAP model folder or Hub id (rerank_clap_model / --rerank-clap-model, "
                "e.g. laion/clap-htsat-unfused)"
            )

    def load(self) -> RerankSettings:
        """Loads what the scorers need (the CLAP model and processor, kept for the captions to come), so that a
        folder that is not a CLAP model is one line before any clip is captioned."""
        if self.weights.get("clap", 0) > 0:
            _load_clap(self.clap_model)
        return self

    @classmethod
    def pop_from(cls, kwargs: dict, generation_config=None, default: str | None = None) -> RerankSettings | None:
        """The settings of a call: its `rerank*` keywords (taken out of `kwargs`), else the generation config's plain
        attributes; None when no reranking is asked (`rerank` absent, None, "" or "none") and no `default` given."""
        asked = {key: kwargs.pop(key, None) for key in KEYS}
        for key in KEYS:
            if asked[key] is None:
                asked[key] = getattr(generation_config, key, None)
        spec = default if asked["rerank"] is None else asked["rerank"]
        if spec is None or spec is False or (isinstance(spec, str) and spec.strip().lower() in ("", "none", "off")):
            return None
        return cls(
            weights=spec,
            candidates=DEFAULT_CANDIDATES if asked["rerank_candidates"] is None else asked["rerank_candidates"],
            top_p=asked["rerank_sampling"],
            clap_model=asked["rerank_clap_model"],
            evidence=asked["rerank_evidence"],
        )

    def generate_kwargs(self, kwargs: dict, generation_config=None) -> dict:
        """The call's generate() keywords, changed to return k candidates per clip with what their scores need."""
        kwargs = dict(kwargs)
        k = self.candidates
        if self.top_p is None:
            beams = kwargs.pop("num_beams", None) or getattr(generation_config, "num_beams", None) or 1
            kwargs.update(num_beams=max(int(beams), k), do_sample=False)
        else:
            kwargs.update(num_beams=1, do_sample=True, top_p=self.top_p)
        kwargs.update(num_return_sequences=k, return_dict_in_generate=True, output_scores=True, output_logits=True)
        return kwargs

    def evidence_kwargs(self, kwargs: dict) -> dict:
        """The call's generate() keywords, changed to sample `evidence` captions per clip for `mbr`."""
        top_p = DEFAULT_TOP_P if self.top_p is None else self.top_p
        return {
            **kwargs,
            "num_beams": 1,
            "do_sample": True,
            "top_p": top_p,
            "num_return_sequences": self.evidence,
            "return_dict_in_generate": True,
        }


@dataclass
class Reranked:
    """One clip's candidates, each scorer's raw scores, the weighted sum of their per-clip z-scores, the choice."""

    candidates: list[str]
    scores: dict[str, list[float]]
    total: list[float]
    chosen: int

    @property
    def caption(self) -> str:
        return self.candidates[self.chosen]

    def rows(self) -> list[dict]:
        """One dict per candidate: caption, each scorer's score, the combined score, whether it was chosen."""
        return [
            {
                "caption": c,
                **{n: s[i] for n, s in self.scores.items()},
                "total": self.total[i],
                "chosen": i == self.chosen,
            }
            for i, c in enumerate(self.candidates)
        ]


def sequence_logprobs(out, generation_config) -> torch.Tensor:
    """Length-normalised log-probability of every returned sequence of a generate() output: beam search's
    `sequences_scores`, else the mean log-softmax of the raw logits (`output_logits`; the processed `scores`
    otherwise) at each generated token, up to and including the first end-of-sequence token."""
    scores = getattr(out, "sequences_scores", None)
    if scores is not None:
        return scores.float()
    steps = getattr(out, "logits", None) or out.scores
    logp = torch.stack([s.float().log_softmax(-1) for s in steps], dim=1)  # (rows, steps, vocab)
    tokens = out.sequences[:, -logp.shape[1] :]
    token_logp = logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    eos = getattr(generation_config, "eos_token_id", None)
    eos = [] if eos is None else ([eos] if isinstance(eos, int) else list(eos))
    is_eos = torch.zeros_like(tokens, dtype=torch.bool)
    for e in eos:
        is_eos |= tokens == e
    # keep a token when no end-of-sequence token came before it
    keep = (torch.cumsum(is_eos.long(), dim=1) - is_eos.long()) == 0
    token_logp = torch.where(keep, token_logp, torch.zeros_like(token_logp))
    return token_logp.sum(-1) / keep.sum(-1).clamp(min=1)


def consensus_cider_d(candidates: list[str], evidence: list[str] | None = None) -> list[float]:
    """Each candidate's CIDEr-D against `evidence` (sampled captions, duplicates kept), else against the other
    candidates (all 0 below two); uniform idf (module doc)."""
    from hf_audiocap.metrics.scorers import CorpusNgrams, DocumentFrequencies, cider_d
    from hf_audiocap.metrics.text import normalize_caption

    if not candidates or (not evidence and len(candidates) < 2):
        return [0.0] * len(candidates)
    words = [normalize_caption(c) for c in candidates]
    if evidence:
        sampled = [normalize_caption(e) for e in evidence]
        refs = [sampled] * len(words)
    else:
        refs = [[w for j, w in enumerate(words) if j != i] for i in range(len(words))]
    uniform = DocumentFrequencies(counts=({}, {}, {}, {}), log_num_clips=1.0)  # idf = 1 - log(max(1, 0)) = 1
    return [float(s) for s in cider_d(CorpusNgrams(words, refs), document_frequencies=uniform)[1]]


@lru_cache(maxsize=2)
def _load_clap(name_or_path: str):
    from transformers import AutoConfig, ClapModel, ClapProcessor

    try:
        # the config first: ClapModel would load another model's folder with random weights and fail at its first clip
        model_type = AutoConfig.from_pretrained(name_or_path).model_type
        if model_type != "clap":
            raise ValueError(f"its model_type is {model_type!r}, not 'clap'")
        model = ClapModel.from_pretrained(name_or_path).eval()
        processor = ClapProcessor.from_pretrained(name_or_path)
    except (OSError, ValueError, TypeError, KeyError) as err:
        reason = " ".join(str(err).split()) or type(err).__name__
        raise ValueError(f"rerank_clap_model {name_or_path!r} is not a loadable CLAP model: {reason[:300]}") from None
    return model, processor


class ClapScorer:
    """Cosine similarity of audio and caption embeddings of a transformers CLAP model (`clap` in the module doc)."""

    def __init__(self, name_or_path: str):
        self.model, self.processor = _load_clap(str(name_or_path))

    @property
    def sampling_rate(self) -> int:
        return int(self.processor.feature_extractor.sampling_rate)

    @torch.inference_mode()
    def __call__(self, waves: list[np.ndarray], sampling_rate: int, candidates: list[list[str]]) -> list[list[float]]:
        """Per clip (`waves[i]` at `sampling_rate`), the similarity of its audio with each of `candidates[i]`."""
        from hf_audiocap.data.audio import load_audio

        device = next(self.model.parameters()).device
        audio = [load_audio((np.asarray(w, dtype=np.float32), int(sampling_rate)), self.sampling_rate) for w in waves]
        fe = self.processor.feature_extractor(audio, sampling_rate=self.sampling_rate, return_tensors="pt")
        fe = {k: v.to(device) for k, v in fe.items()}
        audio_emb = _embedding(self.model.get_audio_features(**fe))
        texts = [c for cands in candidates for c in cands]
        tok = self.processor.tokenizer(texts, padding=True, truncation=True, return_tensors="pt").to(device)
        text_emb = _embedding(self.model.get_text_features(**tok))
        audio_emb = torch.nn.functional.normalize(audio_emb.float(), dim=-1)
        text_emb = torch.nn.functional.normalize(text_emb.float(), dim=-1)
        out, start = [], 0
        for i, cands in enumerate(candidates):
            sims = text_emb[start : start + len(cands)] @ audio_emb[i]
            out.append([float(s) for s in sims])
            start += len(cands)
        return out


def _embedding(features) -> torch.Tensor:
    """get_*_features returns a tensor or (newer releases) an output whose pooler_output is the embedding."""
    return features if isinstance(features, torch.Tensor) else features.pooler_output


def _zscore(values: list[float]) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    std = x.std()
    return (x - x.mean()) / std if std > 1e-12 else np.zeros_like(x)


def rerank_candidates(
    candidates: list[list[str]],
    settings: RerankSettings,
    logprobs: list[list[float]] | None = None,
    waves: list[np.ndarray] | None = None,
    sampling_rate: int | None = None,
    evidence: list[list[str]] | None = None,
) -> list[Reranked]:
    """Scores and picks one candidate per clip. `candidates[i]`: clip i's captions (duplicates merged, the first
    kept); `logprobs[i]`: their log-probabilities (for `logprob`); `waves[i]` at `sampling_rate` (for `clap`);
    `evidence[i]`: captions sampled for the clip, `mbr`'s pseudo-references (none: the candidates themselves)."""
    clips, clip_logprobs = [], []
    for i, cands in enumerate(candidates):
        kept: dict[str, float] = {}
        for j, text in enumerate(cands):
            kept.setdefault(text, logprobs[i][j] if logprobs is not None else float("nan"))
        clips.append(list(kept))
        clip_logprobs.append(list(kept.values()))
    used = [name for name in SCORERS if settings.weights.get(name, 0) > 0]
    per_scorer: dict[str, list[list[float]]] = {}
    for name in used:
        if name == "logprob":
            if logprobs is None:
                raise ValueError("rerank: 'logprob' needs the candidates' log-probabilities")
            per_scorer[name] = clip_logprobs
        elif name == "mbr":
            per_scorer[name] = [consensus_cider_d(c, evidence[i] if evidence else None) for i, c in enumerate(clips)]
        else:
            if waves is None or sampling_rate is None:
                raise ValueError("rerank: 'clap' needs the audio; it cannot rerank without it (use logprob or mbr)")
            per_scorer[name] = ClapScorer(settings.clap_model)(waves, sampling_rate, clips)
    results = []
    for i, cands in enumerate(clips):
        total = sum(settings.weights[name] * _zscore(per_scorer[name][i]) for name in used)
        results.append(
            Reranked(
                candidates=cands,
                scores={name: [round(float(s), 6) for s in per_scorer[name][i]] for name in used},
                total=[round(float(t), 6) for t in np.broadcast_to(total, (len(cands),))],
                chosen=int(np.argmax(total)) if len(cands) else 0,
            )
        )
    return results


@dataclass
class CandidateBatch:
    """What a reranked generation gave: per clip, its candidates' texts, ids and log-probabilities, and the captions
    sampled as `mbr`'s pseudo-references (empty without `rerank_evidence`)."""

    texts: list[list[str]] = field(default_factory=list)
    sequences: list[torch.Tensor] = field(default_factory=list)
    logprobs: list[list[float]] = field(default_factory=list)
    evidence: list[list[str]] = field(default_factory=list)


def generate_candidates(model, inputs: dict, settings: RerankSettings, kwargs: dict, tokenizer) -> CandidateBatch:
    """k candidates per clip of `inputs` from `model.generate` (either model kind), decoded by `tokenizer`, and
    with `settings.evidence`, that many sampled captions per clip (a second generate() call)."""
    out = model.generate(**inputs, **settings.generate_kwargs(kwargs, model.generation_config))
    logprobs = sequence_logprobs(out, model.generation_config).reshape(-1, settings.candidates)
    texts = [t.strip() for t in tokenizer.batch_decode(out.sequences, skip_special_tokens=True)]
    k = settings.candidates
    batch = CandidateBatch()
    for i in range(logprobs.shape[0]):
        batch.texts.append(texts[i * k : (i + 1) * k])
        batch.sequences.append(out.sequences[i * k : (i + 1) * k])
        batch.logprobs.append([float(x) for x in logprobs[i]])
    if settings.evidence:
        sampled = model.generate(**inputs, **settings.evidence_kwargs(kwargs)).sequences
        texts = [t.strip() for t in tokenizer.batch_decode(sampled, skip_special_tokens=True)]
        n = settings.evidence
        batch.evidence = [texts[i * n : (i + 1) * n] for i in range(len(batch.texts))]
    return batch
