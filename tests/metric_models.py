"""Randomly initialised stand-ins for FENSE's models, built from configs and saved to folders (no download): a
sentence-transformers model (BERT + mean pooling, as paraphrase-TinyBERT-L6-v2) and a fluency-error checkpoint in
FENSE's format (``{"model_type", "num_classes", "state_dict"}``). Used by tests/test_metrics_dcase.py and
benchmarks/bench_metrics.py (with the real architectures' sizes)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# paraphrase-TinyBERT-L6-v2 (sentence embedding) and bert-base-uncased (echecker_clotho_audiocaps_base's backbone)
# (paraphrase-TinyBERT-L6-v2 is General_TinyBERT_v2 6-layer 768-wide, not the 4-layer 312-wide TinyBERT)
TINYBERT_L6 = {"hidden_size": 768, "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 3072}
BERT_BASE = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072}
TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 37}


def save_bert(folder: Path, words, sizes: dict, vocab_size: int | None = None, seed: int = 0) -> Path:
    """A BertModel with random weights and a word-piece tokenizer over ``words`` (plus padding to ``vocab_size``)."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = SPECIAL + sorted({w for s in words for w in re.findall(r"\w+", s.lower())})
    if vocab_size is not None:
        vocab += [f"[unused{i}]" for i in range(max(0, vocab_size - len(vocab)))]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True).save_pretrained(folder)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab), max_position_embeddings=512, **sizes)
    BertModel(config).save_pretrained(folder)
    return folder


def save_sbert(folder: Path, words, sizes: dict = TINY, vocab_size: int | None = None) -> Path:
    """A sentence-transformers folder: BERT + mean pooling."""
    from sentence_transformers import SentenceTransformer, models

    folder = Path(folder)
    bert = save_bert(folder / "bert", words, sizes, vocab_size, seed=1)
    transformer = models.Transformer(str(bert), max_seq_length=128)
    pooling = models.Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    SentenceTransformer(modules=[transformer, pooling], device="cpu").save(str(folder / "sbert"))
    return folder / "sbert"


def save_checker(
    folder: Path, words, sizes: dict = TINY, vocab_size: int | None = None, bias=None
) -> tuple[Path, str]:
    """A FENSE checkpoint (6 classes, the last one "error") over a random BERT saved in ``folder/backbone``;
    ``bias``: the classifier's bias (6 values). Returns (path, its SHA-256)."""
    import torch
    from transformers import AutoModel

    from hf_audiocap.metrics.learned import _checker_module

    folder = Path(folder)
    backbone = save_bert(folder / "backbone", words, sizes, vocab_size, seed=2)
    torch.manual_seed(3)
    checker = _checker_module()(AutoModel.from_pretrained(backbone), 6)
    if bias is not None:
        with torch.no_grad():
            checker.clf.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
    path = folder / "checker.ckpt"
    torch.save({"model_type": str(backbone), "num_classes": 6, "state_dict": checker.state_dict()}, path)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()
