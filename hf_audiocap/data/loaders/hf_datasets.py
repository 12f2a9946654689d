"""Any ``datasets`` dataset with an audio column: a ``save_to_disk`` folder or anything ``load_dataset`` accepts."""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import datasets
import soundfile as sf

from hf_audiocap.data.loaders.files import _detect_caption_columns, _resolve_inside
from hf_audiocap.data.loaders.schema import CAPTION_FEATURES, DatasetFormatError


def _is_saved_dataset(p: Path) -> bool:
    return p.is_dir() and ((p / "dataset_dict.json").is_file() or (p / "state.json").is_file())


def load_hf_dataset(
    name_or_path: str | os.PathLike,
    audio_column: str = "audio",
    caption_column: str | Sequence[str] | None = None,
    split: str | Sequence[str] | None = None,
    *,
    id_column: str | None = None,
    drop_empty_captions: bool = False,
    probe_audio: bool = True,
    **load_kwargs: Any,
) -> datasets.DatasetDict:
    """Any ``datasets`` dataset with an audio column: a ``save_to_disk`` folder (``load_from_disk``) or anything
    ``datasets.load_dataset`` accepts (Hub id, works offline from the cache; local script/files; ``load_kwargs`` are
    passed on). The audio column is cast to ``Audio(decode=False)`` (never decoded by ``datasets``); a string column
    is taken as paths. ``caption_column``: default the first of ``captions`` (list), ``caption``,
    ``caption_1..N``. ``id``: ``id_column``, else an ``id`` column, else the audio path, else ``{split}-{row}``."""
    local = Path(os.fspath(name_or_path))
    if _is_saved_dataset(local):
        loaded = datasets.load_from_disk(str(local), **load_kwargs)
    else:
        one = split if isinstance(split, str) else None
        loaded = datasets.load_dataset(os.fspath(name_or_path), split=one, **load_kwargs)
        if isinstance(loaded, datasets.Dataset):
            loaded = datasets.DatasetDict({one or "train": loaded})
    if isinstance(loaded, datasets.Dataset):
        loaded = datasets.DatasetDict({split if isinstance(split, str) else "train": loaded})
    elif split is not None:
        wanted = [split] if isinstance(split, str) else list(split)
        unknown = [s for s in wanted if s not in loaded]
        if unknown:
            raise DatasetFormatError(
                f"{name_or_path}: no split(s) {', '.join(unknown)} (available: {', '.join(loaded)})"
            )
        loaded = datasets.DatasetDict({s: loaded[s] for s in wanted})
    if not isinstance(loaded, datasets.DatasetDict):
        raise DatasetFormatError(f"{name_or_path}: streaming/iterable datasets are not supported here")
    base = local if local.is_dir() else None
    return datasets.DatasetDict(
        {
            name: _convert_hf_split(
                ds,
                name,
                str(name_or_path),
                audio_column,
                caption_column,
                id_column,
                drop_empty_captions,
                probe_audio,
                base,
            )
            for name, ds in loaded.items()
        }
    )


def _convert_hf_split(ds, split, source, audio_column, caption_column, id_column, drop_empty, probe, base):
    cols = list(ds.column_names)
    where = f"{source} [{split}]"
    convert, counts, cast_audio = _hf_row_converter(
        cols, ds.features, where, split, audio_column, caption_column, id_column, drop_empty, probe, base
    )
    if cast_audio:
        ds = ds.cast_column(audio_column, datasets.Audio(decode=False))
    kwargs: dict[str, Any] = {}
    cache_files = [f["filename"] for f in ds.cache_files]
    if cache_files and not os.access(os.path.dirname(cache_files[0]), os.W_OK):
        kwargs["keep_in_memory"] = True  # read-only source folder: do not try to write the cache next to it
    converted = ds.map(
        convert,
        batched=True,
        with_indices=True,
        remove_columns=cols,
        features=CAPTION_FEATURES,
        desc=f"Converting {split}",
        load_from_cache_file=False,
        **kwargs,
    )
    if counts["captions"] or counts["clips"]:
        warnings.warn(
            f"{where}: dropped {counts['captions']} empty caption(s) and {counts['clips']} clip(s) without captions",
            stacklevel=3,
        )
    return converted


def _hf_row_converter(cols, features, where, split, audio_column, caption_column, id_column, drop_empty, probe, base):
    """(convert, counts, cast_audio): the batched ``map`` function turning rows of a ``datasets`` split with columns
    ``cols`` into the caption schema (shared by the map-style and the streamed loaders), the dropped-caption counts it
    updates, and whether the audio column is an ``Audio`` feature to cast to ``decode=False`` first. ``features``
    None (a stream whose types are unknown): the audio column's type is read from each value (path or {bytes, path})."""
    if audio_column not in cols:
        raise DatasetFormatError(f"{where}: no audio column {audio_column!r} (columns: {', '.join(cols)})")
    feature = features[audio_column] if features is not None else None
    cast_audio = isinstance(feature, datasets.Audio)
    if not (
        feature is None
        or cast_audio
        or (isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string"))
    ):
        raise DatasetFormatError(f"{where}: column {audio_column!r} is {feature}, expected an Audio or string column")
    if caption_column is None:
        cap_cols = _detect_caption_columns(cols)
        if not cap_cols:
            raise DatasetFormatError(
                f"{where}: no caption column (expected captions, caption or caption_1..N; columns: {', '.join(cols)})"
            )
    else:
        cap_cols = [caption_column] if isinstance(caption_column, str) else list(caption_column)
        missing = [c for c in cap_cols if c not in cols]
        if missing:
            raise DatasetFormatError(
                f"{where}: missing caption column(s) {', '.join(missing)} (columns: {', '.join(cols)})"
            )
    if id_column is None and "id" in cols:
        id_column = "id"
    multi = len(cap_cols) > 1
    counts = {"captions": 0, "clips": 0}

    def convert(batch, indices):
        out = {"id": [], "audio": [], "sampling_rate": [], "captions": []}
        for j, idx in enumerate(indices):
            row_where = f"{where} row {idx}"
            audio = batch[audio_column][j]
            if isinstance(audio, str):
                p = Path(audio)
                if base is not None and not p.is_absolute():
                    audio = str(_resolve_inside(base, audio, row_where))
                audio = {"bytes": None, "path": audio}
            audio = {"bytes": (audio or {}).get("bytes"), "path": (audio or {}).get("path")}
            values: list[Any] = []
            for c in cap_cols:
                v = batch[c][j]
                values.extend(v if isinstance(v, list) else [v])
            caps = []
            for v in values:
                text = "" if v is None else str(v).strip()
                if text:
                    caps.append(text)
                elif not multi and not drop_empty:
                    raise DatasetFormatError(
                        f"{row_where}: empty caption (pass drop_empty_captions=True to drop them)"
                    )
                elif not multi:
                    counts["captions"] += 1
            if not caps:
                if not drop_empty:
                    raise DatasetFormatError(f"{row_where}: no caption")
                counts["clips"] += 1
                continue
            if id_column is not None:
                clip_id = str(batch[id_column][j])
            elif audio["path"]:
                clip_id = str(audio["path"])
            else:
                clip_id = f"{split}-{idx}"
            rate = 0
            if probe and (audio["bytes"] or audio["path"]):
                try:
                    target = io.BytesIO(audio["bytes"]) if audio["bytes"] else audio["path"]
                    rate = int(sf.info(target).samplerate)
                except Exception:
                    rate = 0
            out["id"].append(clip_id)
            out["audio"].append(audio)
            out["sampling_rate"].append(rate)
            out["captions"].append(caps)
        return out

    return convert, counts, cast_audio
