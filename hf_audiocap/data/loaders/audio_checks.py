"""Reading every clip's audio header before a run: unusable files, and clip durations, without decoding a sample."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import datasets

from hf_audiocap.data.loaders.schema import _MAX_LISTED, DatasetFormatError


def _map_headers(
    dataset: datasets.Dataset, fn: Callable[[Any, str], Any], batch_size: int, num_threads: int
) -> Iterable[Any]:
    """``fn(audio, name)`` for every row of ``dataset`` in order (``name``: the audio's path, else the clip id, else
    ``row i``), reading the ``audio`` column ``batch_size`` rows at a time (bounded memory with embedded bytes) and
    running ``fn`` on ``num_threads`` threads (header reads on network storage)."""
    from concurrent.futures import ThreadPoolExecutor

    def call(item):
        audio, clip_id = item
        name = (audio or {}).get("path") or clip_id if isinstance(audio, Mapping) else clip_id
        return fn(audio, str(name))

    columns = ["audio", "id"] if "id" in dataset.column_names else ["audio"]
    done = 0
    with ThreadPoolExecutor(max_workers=max(1, num_threads)) as pool:
        for batch in dataset.select_columns(columns).iter(batch_size=batch_size):
            ids = batch.get("id") or [f"row {done + i}" for i in range(len(batch["audio"]))]
            done += len(ids)
            yield from pool.map(call, zip(batch["audio"], ids))


def check_audio_files(
    dataset: datasets.Dataset | datasets.DatasetDict,
    *,
    max_duration: float | None = None,
    where: str = "",
    batch_size: int = 256,
    num_threads: int = 8,
) -> None:
    """Checks the header of every clip's audio (:func:`hf_audiocap.data.audio.check_audio`: readable, not empty, at
    most ``max_duration`` seconds) without decoding any sample, so a bad file stops a training or
    evaluation run before it starts instead of hours into it. Raises one :class:`DatasetFormatError` giving the count
    per split and the first 5 reasons (each naming its file). Reads the ``audio`` column ``batch_size`` rows at a time
    (bounded memory with embedded bytes) and the headers on ``num_threads`` threads (network storage)."""
    from hf_audiocap.data.audio import AudioDecodeError, check_audio

    splits = dataset.items() if isinstance(dataset, datasets.DatasetDict) else [("", dataset)]

    def check(audio, name: str) -> str | None:
        try:
            check_audio(audio, max_duration=max_duration, name=name)
        except AudioDecodeError as err:
            return str(err)
        return None

    problems: list[str] = []
    counts: list[str] = []
    for split, ds in splits:
        if "audio" not in ds.column_names:
            raise DatasetFormatError(
                f"{where or 'dataset'}: no 'audio' column (columns: {', '.join(ds.column_names)})"
            )
        bad = 0
        for reason in _map_headers(ds, check, batch_size, num_threads):
            if reason is not None:
                bad += 1
                if len(problems) < _MAX_LISTED:
                    problems.append(reason)
        if bad:
            counts.append(f"{split + ': ' if split else ''}{bad:,} of {ds.num_rows:,}")
    if counts:
        raise DatasetFormatError(
            f"{where + ': ' if where else ''}unusable audio in {'; '.join(counts)} clip(s); first {len(problems)}: "
            + "; ".join(problems)
            + " (fix or remove these clips)"
        )


def audio_durations(dataset: datasets.Dataset, *, batch_size: int = 256, num_threads: int = 8) -> list[float]:
    """Each clip's duration in seconds from its header (no sample decoded), in row order: the lengths that
    ``train_sampling_strategy: group_by_length`` batches by. A clip only the audioread fallback can open reports
    0.0 (its length is unknown until decoded). Headers that cannot be read raise as in :func:`check_audio_files`."""
    from hf_audiocap.data.audio import check_audio

    def duration(audio, name: str) -> float:
        sr, frames, _ = check_audio(audio, name=name)
        return frames / sr if sr else 0.0

    return list(_map_headers(dataset, duration, batch_size, num_threads))
