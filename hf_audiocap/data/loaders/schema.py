"""The caption schema every loader returns, its errors, the missing-audio / empty-caption policy that builds it, and
its expansion to one row per caption for training."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import datasets
import pyarrow as pa
import soundfile as sf
from datasets.table import InMemoryTable

CAPTION_FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "audio": datasets.Audio(decode=False),
        "sampling_rate": datasets.Value("int32"),
        "captions": datasets.List(datasets.Value("string")),
    }
)
_MAX_LISTED = 5


class DatasetFormatError(ValueError):
    """A caption dataset file is malformed; the message names the file (and row/line when relevant)."""


class MissingAudioError(DatasetFormatError, FileNotFoundError):
    """Audio files referenced by a caption dataset do not exist."""


class _Collector:
    """Accumulates clips of one split, checks ids, and counts dropped captions / missing audio."""

    def __init__(self, split: str, source: str):
        self.split, self.source = split, source
        self.ids: list[str] = []
        self.paths: list[str] = []
        self.captions: list[list[str]] = []
        self.index: dict[str, int] = {}
        self.missing: list[str] = []
        self.dropped_captions = 0
        self.dropped_clips = 0

    def add(self, clip_id: str, path: str | None, captions: list[str], where: str, merge: bool = False) -> None:
        if path is None:
            self.missing.append(clip_id)
            return
        if clip_id in self.index:
            if not merge:
                raise DatasetFormatError(f"{where}: duplicate id {clip_id!r} in split {self.split!r}")
            i = self.index[clip_id]
            if self.paths[i] != path:
                raise DatasetFormatError(f"{where}: id {clip_id!r} already used for a different audio file")
            self.captions[i].extend(captions)
            return
        self.index[clip_id] = len(self.ids)
        self.ids.append(clip_id)
        self.paths.append(path)
        self.captions.append(list(captions))


def _clean_captions(values: Iterable[Any], where: str, drop_empty: bool, col: _Collector, ignore_blank=False):
    """Strip captions; an empty one is an error (or dropped and counted with ``drop_empty``)."""
    out = []
    for v in values:
        text = "" if v is None else str(v).strip()
        if text:
            out.append(text)
        elif ignore_blank:
            continue
        elif drop_empty:
            col.dropped_captions += 1
        else:
            raise DatasetFormatError(f"{where}: empty caption (pass drop_empty_captions=True to drop empty captions)")
    return out


def _probe_rate(path: str, bad: list[str]) -> int:
    try:
        return int(sf.info(path).samplerate)
    except Exception:
        bad.append(path)
        return 0


def _finish(collectors: Sequence[_Collector], skip_missing: bool, probe_audio: bool) -> datasets.DatasetDict:
    """Missing-audio policy, warnings, header probing, and the Arrow tables."""
    missing = [c for c in collectors if c.missing]
    if missing and not skip_missing:
        total = sum(len(c.missing) for c in missing)
        per_split = "; ".join(
            f"{c.split}: {len(c.missing):,} of {len(c.missing) + len(c.ids):,}"
            + (f" in '{c.source}'" if c.source else "")
            for c in missing
        )
        first = [m for c in missing for m in c.missing][:_MAX_LISTED]
        raise MissingAudioError(
            f"{total:,} audio file(s) missing ({per_split}); first {len(first)}: "
            f"{', '.join(repr(f) for f in first)} (pass skip_missing=True to skip them)"
        )
    out = {}
    for c in collectors:
        if c.missing:
            warnings.warn(
                f"split {c.split!r}: skipped {len(c.missing):,} clip(s) whose audio is missing"
                + (f" in '{c.source}'" if c.source else "")
                + f" (first {min(len(c.missing), _MAX_LISTED)}: {', '.join(repr(m) for m in c.missing[:_MAX_LISTED])})",
                stacklevel=3,
            )
        if c.dropped_captions or c.dropped_clips:
            warnings.warn(
                f"split {c.split!r}: dropped {c.dropped_captions} empty caption(s) and {c.dropped_clips} clip(s) "
                "left without captions",
                stacklevel=3,
            )
        bad: list[str] = []
        rates = [_probe_rate(p, bad) for p in c.paths] if probe_audio else [0] * len(c.paths)
        if bad:
            warnings.warn(
                f"split {c.split!r}: {len(bad)} audio file(s) have a header soundfile cannot read (sampling_rate=0; "
                f"they will fail at decode time), first: {', '.join(repr(b) for b in bad[:_MAX_LISTED])}",
                stacklevel=3,
            )
        out[c.split] = _make_dataset(c.ids, [{"bytes": None, "path": p} for p in c.paths], rates, c.captions)
    return datasets.DatasetDict(out)


def _make_dataset(ids, audio, rates, captions) -> datasets.Dataset:
    table = pa.table(
        {"id": ids, "audio": audio, "sampling_rate": rates, "captions": captions},
        schema=CAPTION_FEATURES.arrow_schema,
    )
    return datasets.Dataset(InMemoryTable(table), info=datasets.DatasetInfo(features=CAPTION_FEATURES.copy()))


def expand_captions(dataset: datasets.Dataset | datasets.DatasetDict | datasets.IterableDataset, **map_kwargs: Any):
    """One row per (clip, caption) for training: ``captions`` is replaced by ``caption`` (string) and
    ``caption_index`` (int32); other columns are repeated. Evaluation should keep ``captions`` grouped. An
    ``IterableDataset`` (a streamed split, with known features) is expanded lazily, as it is read."""
    if isinstance(dataset, datasets.DatasetDict):
        return datasets.DatasetDict({k: expand_captions(v, **map_kwargs) for k, v in dataset.items()})
    if dataset.column_names is None or dataset.features is None:
        raise ValueError("expand_captions: the stream's columns are unknown (map it to the caption schema first)")
    if "captions" not in dataset.column_names:
        raise ValueError(f"expand_captions: no 'captions' column (columns: {', '.join(dataset.column_names)})")
    others = [c for c in dataset.column_names if c != "captions"]
    features = datasets.Features({c: dataset.features[c] for c in others})
    features["caption"] = datasets.Value("string")
    features["caption_index"] = datasets.Value("int32")

    def explode(batch):
        out: dict[str, list] = {c: [] for c in [*others, "caption", "caption_index"]}
        for j, caps in enumerate(batch["captions"]):
            for k, cap in enumerate(caps):
                for c in others:
                    out[c].append(batch[c][j])
                out["caption"].append(cap)
                out["caption_index"].append(k)
        return out

    if not isinstance(dataset, datasets.IterableDataset):
        map_kwargs.setdefault("desc", "Expanding captions")
    return dataset.map(explode, batched=True, remove_columns=dataset.column_names, features=features, **map_kwargs)
