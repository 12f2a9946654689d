"""Streamed training splits: a ``datasets.IterableDataset`` in the caption schema, read as training goes.

Large corpora train from a stream instead of a map-style ``Dataset``: the ``hf`` source is read with ``datasets``'
``streaming=True`` (local parquet/json/csv data files, a Hub repository, or a ``save_to_disk`` folder through
``Dataset.to_iterable_dataset``), so nothing is converted or copied up front, and the on-disk loaders' index of paths
becomes an ``IterableDataset`` with ``Dataset.to_iterable_dataset(num_shards=...)``. Either way the rows have the schema
of every loader (``id``, ``audio`` as ``Audio(decode=False)`` {bytes, path}, ``sampling_rate``, ``captions``) and the
audio stays undecoded until the collator decodes one batch: nothing holds more than the shuffle buffer's rows.

:func:`training_stream` turns such a stream into what the Trainer reads: captions expanded to (clip, caption) rows (or
kept grouped), repeated without end (every process then draws exactly ``max_steps`` full batches: ranks whose shards
differ in length never wait for one another at an epoch end), shuffled with a buffer (and a shuffled shard order), and
split by node with ``datasets.distributed.split_dataset_by_node``.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import datasets
from datasets.distributed import split_dataset_by_node

from hf_audiocap.data.loaders import (
    CAPTION_FEATURES,
    DatasetFormatError,
    _hf_row_converter,
    _is_saved_dataset,
    _make_dataset,
    expand_captions,
)

__all__ = ["load_hf_stream", "materialize", "stream_num_shards", "to_caption_stream", "training_stream"]

MAX_STREAM_SHARDS = 1024


def stream_num_shards(num_rows: int, max_shards: int = MAX_STREAM_SHARDS) -> int:
    """Shards for ``Dataset.to_iterable_dataset``: the largest power of two <= min(num_rows, max_shards).

    A power of two divides evenly among 2, 4, 8... processes, so ``split_dataset_by_node`` hands each node whole shards
    (another world size falls back to every node reading all rows and keeping one in ``world_size``, which for an index
    of paths costs little); many small contiguous shards also let the shuffle draw from all over the split and give
    each DataLoader worker its own shards."""
    n = max(1, min(int(num_rows), int(max_shards)))
    return 1 << (n.bit_length() - 1)


def to_caption_stream(dataset: datasets.Dataset, num_shards: int | None = None) -> datasets.IterableDataset:
    """A map-style split of the caption schema (an on-disk loader's index of paths) as an ``IterableDataset``."""
    if len(dataset) == 0:
        raise DatasetFormatError("cannot stream an empty training split")
    return dataset.to_iterable_dataset(num_shards=num_shards or stream_num_shards(len(dataset)))


def load_hf_stream(
    name_or_path: str | os.PathLike,
    split: str,
    audio_column: str = "audio",
    caption_column: str | list[str] | None = None,
    *,
    id_column: str | None = None,
    drop_empty_captions: bool = False,
    probe_audio: bool = True,
    **load_kwargs: Any,
) -> datasets.IterableDataset:
    """One split of any ``datasets`` dataset as a stream in the caption schema (the streamed counterpart of
    :func:`hf_audiocap.data.loaders.load_hf_dataset`, same arguments and row conversion): ``datasets.load_dataset(...,
    streaming=True)`` (a Hub id, ``"parquet"``/``"json"``/``"csv"`` with ``data_files``, a local folder), or a
    ``save_to_disk`` folder read through ``to_iterable_dataset``. Rows are converted as they are read; an empty caption
    or a missing column is raised then (the column checks run now, on the stream's declared or first row's columns)."""
    local = Path(os.fspath(name_or_path))
    source = str(name_or_path)
    where = f"{source} [{split}]"
    if _is_saved_dataset(local):
        loaded = datasets.load_from_disk(str(local), **load_kwargs)  # memory-mapped Arrow files: nothing read yet
        available = list(loaded) if isinstance(loaded, datasets.DatasetDict) else ["train"]  # a lone Dataset: train
        if split not in available:
            raise DatasetFormatError(f"{source}: no split {split} (available: {', '.join(available)})")
        if isinstance(loaded, datasets.DatasetDict):
            loaded = loaded[split]
        stream = loaded.to_iterable_dataset(num_shards=stream_num_shards(len(loaded)))
    else:
        try:
            stream = datasets.load_dataset(os.fspath(name_or_path), split=split, streaming=True, **load_kwargs)
        except ValueError as err:
            if "split" in str(err).lower():
                raise DatasetFormatError(f"{source}: cannot stream split {split!r} ({err})") from None
            raise
    features = stream.features
    cols = list(stream.column_names) if stream.column_names is not None else None
    if cols is None:  # a json/csv stream declares no features: its columns are those of the first row
        first = next(iter(stream.take(1)), None)
        if first is None:
            raise DatasetFormatError(f"{where}: no rows")
        cols = list(first)
    convert, _, cast_audio = _hf_row_converter(
        cols,
        features,
        where,
        split,
        audio_column,
        caption_column,
        id_column,
        drop_empty_captions,
        probe_audio,
        local if local.is_dir() else None,
    )
    if cast_audio:
        stream = stream.cast_column(audio_column, datasets.Audio(decode=False))
    return stream.map(convert, batched=True, with_indices=True, remove_columns=cols, features=CAPTION_FEATURES)


def materialize(stream: datasets.IterableDataset, limit: int | None = None) -> datasets.Dataset:
    """The rows of a (small) stream, at most ``limit``, as an in-memory map-style split of the caption schema: what the
    validation and test splits of a streamed source become (they need ``captions`` grouped and a length)."""
    rows = list(itertools.islice(stream, limit))
    # built as an Arrow table of the schema: `Dataset.from_list` would encode the Audio column (which needs torchcodec)
    return _make_dataset(
        [r["id"] for r in rows],
        [{"bytes": r["audio"]["bytes"], "path": r["audio"]["path"]} for r in rows],
        [r["sampling_rate"] for r in rows],
        [r["captions"] for r in rows],
    )


def training_stream(
    clips: datasets.IterableDataset,
    *,
    group_captions: bool,
    shuffle_buffer_size: int,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
    repeat: bool = True,
) -> datasets.IterableDataset:
    """What the Trainer reads from a streamed training split of clips.

    - ``group_captions`` False: one (clip, caption) row per caption (:func:`expand_captions`, lazily), expanded before
      the shuffle so the captions of a clip are spread over the buffer;
    - ``repeat``: read again from the start when exhausted, without end (``max_steps`` bounds the run): every process
      then gets the same number of full batches, whatever the length of its shards;
    - ``shuffle_buffer_size`` > 0: the shard order is shuffled with ``seed`` and rows are drawn at random from a buffer
      of that many rows (0: the stream's own order). The seed must be the same on every node: the nodes' shard
      assignment is computed from the shuffled shard list;
    - ``world_size`` > 1: ``split_dataset_by_node(rank, world_size)``: this process reads its own shards (whole shards
      when their number divides by ``world_size``, else one row in ``world_size``). The Trainer must not shard it again
      (``AudioCapTrainer(train_split_by_node=True)``).
    """
    ds = clips if group_captions else expand_captions(clips)
    if repeat:
        ds = ds.repeat(None)
    if shuffle_buffer_size > 0:
        ds = ds.shuffle(seed=seed, buffer_size=shuffle_buffer_size)
    if world_size > 1:
        ds = split_dataset_by_node(ds, rank=rank, world_size=world_size)
    return ds
