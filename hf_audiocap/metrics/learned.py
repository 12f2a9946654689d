"""FENSE, its fluency-error rate and SPIDEr-FL (Zhou et al. 2022, "Can audio captions be evaluated with image caption
metrics?"), with the definitions aac-metrics uses:

* ``sbert_sim``: per clip, the mean cosine similarity of the candidate's sentence embedding with each reference's
  (sentence-transformers ``paraphrase-TinyBERT-L6-v2``, embeddings normalised);
* ``fer``: per clip 1 when the fluency-error checker released with FENSE (a BERT classifier; ``bert-base-uncased``
  for ``echecker_clotho_audiocaps_base``) gives the candidate an error probability (sigmoid of its last logit) above
  0.9, else 0; the corpus value is the fraction of clips with an error;
* ``fense = sbert_sim * (1 - 0.9 * fer)`` and ``spider_fl = spider * (1 - 0.9 * fer)`` per clip; corpus values are
  means over clips.

As aac-metrics' ``evaluate``, the captions scored are the PTB-tokenized ones (lower case, punctuation removed); the
checker then removes any remaining non-word characters and lower-cases, as FENSE does. The checker reads at most 64
tokens per caption, as FENSE; captions are batched by length (padding to the longest of a batch, not to 64: the same
logits to float rounding, ~4x less work on short captions).

Models: the sentence-transformers model is read from the Hugging Face cache (fetched there when online); the checker's
checkpoint from the metrics cache (``<cache>/fense``, fetched when online and verified against its SHA-256), loaded
weights-only (``torch.load(weights_only=True)``), its backbone built from its config (the ``model_type`` the checkpoint
names) without downloading that backbone's weights. ``HF_AUDIOCAP_SBERT_MODEL``, ``HF_AUDIOCAP_FLUENCY_CHECKER`` (URL or
file) and ``HF_AUDIOCAP_FLUENCY_CHECKER_SHA256`` choose others (the tests use tiny random ones).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hf_audiocap.hub import PretrainedUnavailableError, check_pretrained

from . import resources

logger = logging.getLogger("hf_audiocap.metrics")

SBERT_MODEL = "sentence-transformers/paraphrase-TinyBERT-L6-v2"
CHECKER_URL = "https://github.com/blmoistawinde/fense/releases/download/V0.1/echecker_clotho_audiocaps_base.ckpt"
CHECKER_SHA256 = "1a719f090af70614bbdb9f9437530b7e133c48cfa4a58d964de0d47fc974a2fa"
ERROR_THRESHOLD = 0.9
PENALTY = 0.9
MAX_CHECKER_TOKENS = 64
_NON_WORD = re.compile(r"[^\w\s]")


@dataclass(frozen=True)
class FenseModels:
    """Which models FENSE uses; :meth:`from_env` reads the environment overrides."""

    sbert: str = SBERT_MODEL
    checker: str = CHECKER_URL  # URL (fetched into the cache) or a local file
    checker_sha256: str | None = CHECKER_SHA256  # None: not verified (a local file of your own)
    # captions per model call (FENSE uses 32; results are the same up to float rounding): 128 measured 1.4x faster
    # than 32 for the checker on 2 CPU cores
    batch_size: int = 128
    device: str | None = None  # None: cuda when available, else cpu

    @classmethod
    def from_env(cls) -> FenseModels:
        checker = os.environ.get("HF_AUDIOCAP_FLUENCY_CHECKER") or CHECKER_URL
        sha = os.environ.get("HF_AUDIOCAP_FLUENCY_CHECKER_SHA256")
        if sha is None:
            sha = CHECKER_SHA256 if checker == CHECKER_URL else None
        return cls(sbert=os.environ.get("HF_AUDIOCAP_SBERT_MODEL") or SBERT_MODEL, checker=checker,
                   checker_sha256=sha or None)  # fmt: skip

    def checker_path(self) -> Path:
        if "://" in self.checker:
            return resources.cache_dir() / "fense" / self.checker.rsplit("/", 1)[-1]
        return Path(self.checker).expanduser()


class ModelUnavailable(RuntimeError):
    """A FENSE model cannot be had here; the message is one line."""


def checker_file(models: FenseModels, fetch: bool | None = None, progress: bool = False) -> Path:
    """The checker checkpoint, verified (fetched when missing or corrupt and ``fetch``, default: when online)."""
    path = models.checker_path()
    fetch = not resources.offline() if fetch is None else fetch
    remote = "://" in models.checker
    if path.is_file() and (
        models.checker_sha256 is None or resources.hash_matches(path, "sha256", models.checker_sha256)
    ):
        return path
    hint = f"run `{resources.DOWNLOAD_COMMAND}` when online" if remote else "replace it"
    if remote and fetch:
        try:
            return resources.fetch_verified(models.checker, path, "sha256", models.checker_sha256, progress=progress)
        except resources.DownloadError as err:
            raise ModelUnavailable(f"FENSE's fluency checker: {err}: {hint}") from None
    if remote and resources.offline():
        hint += " (offline now)"
    if path.is_file():
        raise ModelUnavailable(
            f"FENSE's fluency checker {path} is corrupt (its SHA-256 is not {models.checker_sha256}): {hint}"
        )
    raise ModelUnavailable(f"FENSE's fluency checker is not in {path.parent} ({path.name}): {hint}")


def _checker_module():
    import torch

    class FluencyChecker(torch.nn.Module):
        """FENSE's ``BERTFlatClassifier``: a BERT encoder, dropout and a linear layer on the first token's state."""

        def __init__(self, encoder, num_classes: int) -> None:
            super().__init__()
            self.encoder = encoder
            self.dropout = torch.nn.Dropout(encoder.config.hidden_dropout_prob)
            self.clf = torch.nn.Linear(encoder.config.hidden_size, num_classes)

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            state = self.encoder(input_ids, attention_mask, token_type_ids).last_hidden_state[:, 0, :]
            return self.clf(self.dropout(state))

    return FluencyChecker


def load_checker(path: Path, device: str = "cpu"):
    """(checker module in eval mode, its tokenizer) from a FENSE checkpoint: ``{"model_type", "num_classes",
    "state_dict"}``, read weights-only. Raises :class:`ModelUnavailable` with one line naming the file."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - unpickling errors come in many types
        raise ModelUnavailable(
            f"{path} is not a weights-only FENSE checkpoint ({type(err).__name__}: {err})".splitlines()[0]
        ) from None
    if not isinstance(state, dict) or not {"model_type", "num_classes", "state_dict"} <= set(state):
        raise ModelUnavailable(f"{path} is not a FENSE checkpoint (needs model_type, num_classes and state_dict)")
    try:
        check_pretrained(state["model_type"], remedy=f"run `{resources.DOWNLOAD_COMMAND}` when online")
        config = AutoConfig.from_pretrained(state["model_type"])
        tokenizer = AutoTokenizer.from_pretrained(state["model_type"])
    except (OSError, PretrainedUnavailableError) as err:
        raise ModelUnavailable(
            f"FENSE's checker needs the config and tokenizer of {state['model_type']!r}: {err}".splitlines()[0]
        ) from None
    with torch.random.fork_rng(devices=[]):  # building the backbone draws random weights: leave training's RNG alone
        checker = _checker_module()(AutoModel.from_config(config), int(state["num_classes"]))
    weights = dict(state["state_dict"])
    weights.pop("encoder.embeddings.position_ids", None)  # a buffer older transformers saved; now not persistent
    try:
        checker.load_state_dict(weights)
    except RuntimeError as err:
        raise ModelUnavailable(f"{path} does not fit a {state['model_type']} checker: {err}".splitlines()[0]) from None
    return checker.eval().to(device), tokenizer


def load_sbert(name: str, device: str = "cpu"):
    import torch

    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise ModelUnavailable("FENSE needs sentence-transformers: pip install 'hf_audiocap[metrics]'") from None
    if "/" in name:  # a Hub id or a path (a bare name is expanded by sentence-transformers itself)
        try:
            check_pretrained(name, remedy=f"run `{resources.DOWNLOAD_COMMAND}` when online")
        except PretrainedUnavailableError as err:
            raise ModelUnavailable(f"FENSE's sentence model {err}") from None
    try:
        with torch.random.fork_rng(devices=[]):
            model = SentenceTransformer(name, device=device)
    except Exception as err:  # noqa: BLE001 - OSError offline, ValueError for odd folders, ...
        where = "offline: not in the Hugging Face cache; " if resources.offline() else ""
        raise ModelUnavailable(
            f"FENSE's sentence model {name!r} cannot be loaded ({where}{type(err).__name__}: {err}".splitlines()[0]
            + f"); run `{resources.DOWNLOAD_COMMAND}` when online"
        ) from None
    return model.eval()


_LOADED: dict = {}


def _device(models: FenseModels) -> str:
    if models.device:
        return models.device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def get_models(models: FenseModels, need_sbert: bool = True):
    """(sentence model or None, checker, tokenizer), loaded once per process."""
    device = _device(models)
    key = (models.checker, models.checker_sha256, device)
    if key not in _LOADED:
        _LOADED[key] = load_checker(checker_file(models), device)
    sbert = None
    if need_sbert:
        skey = ("sbert", models.sbert, device)
        if skey not in _LOADED:
            _LOADED[skey] = load_sbert(models.sbert, device)
        sbert = _LOADED[skey]
    return sbert, *_LOADED[key]


def _progress() -> bool:
    return sys.stderr.isatty()


class _TextCache:
    """Results per distinct sentence of one model, kept across calls (bounded, oldest dropped first): a run's
    validation references are encoded once for all its evaluations, and a caption predicted for many clips is
    scored once. Exact: every sentence's value is computed alone of the others in its batch."""

    def __init__(self, limit: int = 200_000) -> None:
        self.limit, self.values = limit, {}

    def get(self, sentences: list[str], compute) -> list:
        missing = list(dict.fromkeys(s for s in sentences if s not in self.values))
        if missing:
            for sentence, value in zip(missing, compute(missing)):
                self.values[sentence] = value
            while len(self.values) > self.limit:
                self.values.pop(next(iter(self.values)))
        return [self.values[s] for s in sentences]


def _cache_of(model) -> _TextCache:
    """The cache that lives on the loaded model itself (a new model, a new cache)."""
    cache = getattr(model, "_hf_audiocap_text_cache", None)
    if cache is None:
        cache = _TextCache()
        model._hf_audiocap_text_cache = cache
    return cache


def _error_probabilities(checker, tokenizer, sentences: list[str], batch_size: int) -> np.ndarray:
    import torch
    from tqdm.auto import tqdm

    texts = [_NON_WORD.sub("", s).lower() for s in sentences]
    encoded = tokenizer(texts, truncation=True, max_length=MAX_CHECKER_TOKENS)
    order = np.argsort([len(ids) for ids in encoded["input_ids"]], kind="stable")
    device = next(checker.parameters()).device
    probs = np.zeros(len(texts))
    batches = range(0, len(texts), batch_size)
    with torch.inference_mode():
        for start in tqdm(batches, desc="FENSE fluency", unit="batch", disable=not _progress() or len(batches) < 8,
                          leave=False, file=sys.stderr):  # fmt: skip
            idx = order[start : start + batch_size]
            batch = tokenizer.pad({k: [encoded[k][i] for i in idx] for k in encoded}, return_tensors="pt")
            batch = {k: v.to(device) for k, v in batch.items()}
            logits = checker(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
            probs[idx] = torch.sigmoid(logits[:, -1].float()).cpu().numpy()
    return probs


def error_probabilities(checker, tokenizer, sentences: list[str], batch_size: int = 32) -> np.ndarray:
    """The checker's probability that each sentence has a fluency error (sigmoid of its last logit); each distinct
    sentence is run once per process (batched by length, with progress on a terminal)."""
    compute = lambda missing: _error_probabilities(checker, tokenizer, missing, batch_size)  # noqa: E731
    return np.asarray(_cache_of(checker).get(list(sentences), compute), dtype=np.float64)


def sentence_similarity(sbert, candidates: list[str], references: list[list[str]], batch_size: int = 32) -> np.ndarray:
    """Per clip: mean cosine similarity of the candidate's embedding with each of its references' embeddings."""
    flat = [r for rr in references for r in rr]
    clip = np.repeat(np.arange(len(references)), [len(rr) for rr in references])

    def encode(missing):
        show = _progress() and len(missing) >= 512
        emb = sbert.encode(missing, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True,
                           show_progress_bar=show)  # fmt: skip
        return list(emb.astype(np.float64))

    emb = np.stack(_cache_of(sbert).get(list(candidates) + flat, encode))
    cand, refs = emb[: len(candidates)], emb[len(candidates) :]
    dots = np.einsum("ij,ij->i", cand[clip], refs)
    return np.bincount(clip, weights=dots, minlength=len(references)) / np.maximum(
        np.bincount(clip, minlength=len(references)), 1
    )


def penalize(scores: np.ndarray, has_error: np.ndarray, penalty: float = PENALTY) -> np.ndarray:
    """FENSE's penalty: a score times ``1 - penalty`` where the checker found an error, unchanged elsewhere."""
    return scores * (1.0 - penalty * has_error)
