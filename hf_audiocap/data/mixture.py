"""Several corpora in one run: each loaded by its own loader, drawn by weight for training, scored separately.

A recipe's ``corpora`` lists them::

    corpora:
      - {name: synthcaps, dataset: synthcaps, dataset_path: data/synthcaps, weight: 1}
      - {name: realsounds, dataset: realsounds, dataset_path: data/realsounds, weight: 2,
         extra_test_splits: [test_single]}
    styles: true           # one style token per corpus, named after it (docs/mixtures.md)

Every entry takes the data keys of a single-corpus recipe (``dataset``, ``dataset_path``, ``audio_dir``,
``dataset_kwargs``, ``synth_if_missing``, ``synth_kwargs``, the splits, ``max_train_clips``/``max_eval_clips``,
``skip_missing``) and ``weight`` (its share of the training draws, relative to the others). Every clip carries its
corpus's name in a ``style`` column.

Training draws clips from the corpora by weight (:func:`datasets.interleave_datasets`). ``mixture_stopping_strategy``
says what happens when a corpus runs out: ``all_exhausted`` (default) starts it over until every corpus has been
drawn whole once, so a small corpus is oversampled; ``first_exhausted`` ends the epoch when the first corpus runs out,
so the larger ones are undersampled. Held-out splits stay per corpus, named ``<corpus>/<split>`` in the recipe's
DatasetDict, so validation and test report each corpus under its own prefix (``eval_<corpus>_cider_d``).

Before anything trains, :func:`check_no_leak` refuses a mixture in which a validation or test clip of one corpus is
also a training clip of another, by clip id and by the SHA-1 of its audio.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Iterable

from datasets import Dataset, DatasetDict, IterableDataset, interleave_datasets

# The keys a `corpora` entry may set: the single-corpus data keys it applies to itself.
CORPUS_KEYS = (
    "dataset",
    "dataset_path",
    "audio_dir",
    "dataset_kwargs",
    "synth_if_missing",
    "synth_kwargs",
    "train_split",
    "eval_split",
    "test_split",
    "extra_test_splits",
    "max_train_clips",
    "max_eval_clips",
    "skip_missing",
)
STOPPING_STRATEGIES = ("all_exhausted", "first_exhausted")
COLUMNS = ("id", "audio", "captions", "style")


@dataclasses.dataclass(frozen=True)
class Corpus:
    """One entry of ``corpora``: its name (metric prefix and style name), its training weight and its data keys."""

    name: str
    weight: float
    data: dict

    def held_out(self, split: str) -> str:
        """The key of one of its held-out splits in the recipe's DatasetDict."""
        return f"{self.name}/{split}"


def parse_corpora(entries: list) -> list[Corpus]:
    """``corpora`` from a recipe, checked: a list of mappings, each with a unique ``name`` (letters, digits, ``_``,
    ``-``), a weight > 0 and only known keys; the weights may not sum to zero."""
    if not isinstance(entries, list) or len(entries) < 2:
        raise ValueError("corpora: expected a list of at least two corpora (one corpus: use dataset/dataset_path)")
    corpora = []
    for i, entry in enumerate(entries):
        where = f"corpora[{i}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected a mapping with name, dataset, dataset_path, weight, got {entry!r}")
        entry = dict(entry)
        name = entry.pop("name", None)
        if not isinstance(name, str) or not name or not all(c.isalnum() or c in "_-" for c in name):
            raise ValueError(f"{where}: `name` must be a word (letters, digits, _ or -), got {name!r}")
        where = f"corpora[{i}] ({name})"
        weight = entry.pop("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight > 0:
            raise ValueError(f"{where}: weight must be a number > 0, got {weight!r}")
        unknown = sorted(set(entry) - set(CORPUS_KEYS))
        if unknown:
            raise ValueError(
                f"{where}: unknown key(s) {', '.join(unknown)}; known: name, weight, {', '.join(CORPUS_KEYS)}"
            )
        if "dataset_path" not in entry:
            raise ValueError(f"{where}: needs dataset_path")
        corpora.append(Corpus(name, float(weight), entry))
    names = [c.name for c in corpora]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(
            f"corpora: the name {twice[0]!r} is used twice (each corpus's name is its style and metric prefix)"
        )
    return corpora


def recipe_styles(data_args) -> list[str]:
    """The style names a recipe trains with: its corpora's (with `styles`), its `style`, or none."""
    if data_args.corpora and data_args.styles:
        return [c.name for c in parse_corpora(data_args.corpora)]
    return [data_args.style] if data_args.style else []


def with_style(clips: DatasetDict, name: str) -> DatasetDict:
    """Every split's clips captioned under the style ``name`` (the ``style`` column)."""
    return DatasetDict({split: _with_style(ds, name) for split, ds in clips.items()})


def corpus_data_args(data_args, corpus: Corpus):
    """The single-corpus DataArguments of one corpus: the recipe's data settings, its own keys over them."""
    return dataclasses.replace(data_args, corpora=[], styles=False, **corpus.data)


def mixture_datasets(data_args, load) -> DatasetDict:
    """The recipe's clips for ``corpora``: ``load(corpus_data_args)`` per corpus (the single-corpus loading), a
    ``style`` column naming the corpus, the training splits interleaved by weight under ``data_args.train_split``, the
    held-out splits under ``<corpus>/<split>``; refused if a held-out clip is another corpus's training clip."""
    corpora = parse_corpora(data_args.corpora)
    trains, out = [], {}
    for corpus in corpora:
        sub = corpus_data_args(data_args, corpus)
        clips = load(sub)
        for split, ds in clips.items():
            ds = _with_style(ds, corpus.name)
            if split == sub.train_split:
                trains.append(ds)
            else:
                out[corpus.held_out(split)] = ds
    check_no_leak(corpora, trains, out)
    weights = [c.weight for c in corpora]
    seed = data_args.mixture_seed
    mixed = interleave_datasets(
        trains,
        probabilities=[w / sum(weights) for w in weights],
        seed=seed,
        stopping_strategy=data_args.mixture_stopping_strategy,
    )
    return DatasetDict({data_args.train_split: mixed, **out})


def _with_style(ds, name: str):
    """The shared columns only (loaders differ in their extra ones) and the corpus name as ``style``."""
    if isinstance(ds, IterableDataset):
        return ds.map(lambda row: {"style": name}).select_columns(list(COLUMNS))
    ds = ds.select_columns([c for c in COLUMNS if c in ds.column_names and c != "style"])
    return ds.add_column("style", [name] * len(ds))


def _audio_size(audio) -> int | None:
    """A clip's audio size in bytes (a stat, not a read); None for a file that is not there."""
    data = audio.get("bytes") if isinstance(audio, dict) else None
    if data is not None:
        return len(data)
    path = audio.get("path") if isinstance(audio, dict) else audio
    return os.path.getsize(path) if path and os.path.isfile(path) else None


def audio_digest(audio) -> str:
    """SHA-1 of a clip's audio: its file's bytes, or the bytes it carries."""
    data = audio.get("bytes") if isinstance(audio, dict) else None
    if data is None:
        path = audio.get("path") if isinstance(audio, dict) else audio
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha1").hexdigest()
    return hashlib.sha1(data).hexdigest()


def check_no_leak(corpora: list[Corpus], trains: list, held_out: dict) -> None:
    """Refuse (one line naming the clips) a held-out clip of one corpus that is a training clip of another, by id or
    by audio content (SHA-1; only the training files of a held-out file's exact size are read, so a corpus of
    WavCaps' size costs a stat per file). A streamed training split cannot be read ahead: it is not checked here
    (docs/mixtures.md)."""
    held = []  # (split key, owner, clip id, audio, size)
    for key, ds in held_out.items():
        owner = key.split("/", 1)[0]
        held += [(key, owner, i, a, _audio_size(a)) for i, a in zip(ds["id"], _audio(ds))]
    sizes = {size for *_, size in held if size is not None}
    by_id, by_digest = {}, {}
    for corpus, train in zip(corpora, trains):
        if isinstance(train, IterableDataset):
            continue
        for clip_id, audio in zip(train["id"], _audio(train)):
            by_id.setdefault(clip_id, corpus.name)
            if _audio_size(audio) in sizes:
                by_digest.setdefault(audio_digest(audio), (corpus.name, clip_id))
    leaks = []
    for key, owner, clip_id, audio, size in held:
        other = by_id.get(clip_id)
        if other is not None and other != owner:
            leaks.append(f"{key} {clip_id} (id of a {other} training clip)")
            continue
        hit = by_digest.get(audio_digest(audio)) if size is not None and by_digest else None
        if hit is not None and hit[0] != owner:
            leaks.append(f"{key} {clip_id} (same audio as {hit[0]} training clip {hit[1]})")
    if leaks:
        more = f" and {len(leaks) - 3} more" if len(leaks) > 3 else ""
        raise ValueError(f"corpora: held-out clips that another corpus trains on: {'; '.join(leaks[:3])}{more}")


def _audio(ds: Dataset) -> Iterable:
    """The ``audio`` column: {bytes, path} (the loaders never decode it)."""
    return ds["audio"]
