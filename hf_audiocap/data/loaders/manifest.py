"""Manifests (CSV / TSV / JSON lines, one row per clip or per caption) and the ``audiofolder`` convention."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets

from hf_audiocap.data.loaders.files import (
    _detect_caption_columns,
    _read_csv,
    _read_jsonl,
    _require_columns,
    _resolve_inside,
    _split_sort_key,
)
from hf_audiocap.data.loaders.schema import DatasetFormatError, _clean_captions, _Collector, _finish

_SPLIT_NAME = re.compile(r"^[\w.-]+$")
_AUDIO_COLUMNS = ("audio", "file_name", "path", "audio_path", "audio_filepath", "filename")


def load_manifest(
    path: str | os.PathLike,
    audio_column: str | None = None,
    caption_columns: str | Sequence[str] | None = None,
    split_column: str | None = None,
    base_dir: str | os.PathLike | None = None,
    *,
    id_column: str | None = None,
    default_split: str = "train",
    skip_missing: bool = False,
    drop_empty_captions: bool = False,
    probe_audio: bool = True,
) -> datasets.DatasetDict:
    """A CSV/TSV or JSON-lines manifest, one row per clip (or per caption: rows with the same id are merged).

    ``audio_column``: default the first of ``audio, file_name, path, audio_path, audio_filepath, filename`` present
    (a JSON value may also be ``{"path": ...}``). ``caption_columns``: default auto-detected: a list-valued (or JSON
    list string) ``captions`` column, else ``caption``, else ``caption_1..caption_N`` (blank cells = fewer refs);
    ``[]`` for a caption-less manifest (``captions`` empty, e.g. for inference). Relative paths are resolved against
    ``base_dir`` (default: the manifest's folder) and must stay inside it. ``id``: ``id_column``, else an ``id``
    column, else the path as written. ``split_column`` rows with a blank split go to ``default_split``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest '{path}' not found")
    suffix = path.suffix.lower()
    header, rows = _read_jsonl(path) if suffix in (".jsonl", ".json", ".ndjson") else _read_csv(path)
    if audio_column is None:
        audio_column = next((c for c in _AUDIO_COLUMNS if c in header), None)
        if audio_column is None:
            _require_columns(path, header, ["audio"], f"an audio path column, one of {', '.join(_AUDIO_COLUMNS)}")
    _require_columns(path, header, [audio_column])
    if caption_columns is None:
        cap_cols = _detect_caption_columns(header)
        if not cap_cols:
            _require_columns(path, header, ["caption"], "captions, caption or caption_1..caption_N")
    else:
        cap_cols = [caption_columns] if isinstance(caption_columns, str) else list(caption_columns)
        _require_columns(path, header, cap_cols)
    multi = len(cap_cols) > 1
    if split_column is not None:
        _require_columns(path, header, [split_column])
    if id_column is not None:
        _require_columns(path, header, [id_column])
    elif "id" in header:
        id_column = "id"
    base = Path(base_dir) if base_dir is not None else path.parent
    collectors: dict[str, _Collector] = {}
    for line, row in rows:
        where = f"'{path}' line {line}"
        split = str(row.get(split_column) or "").strip() if split_column else ""
        split = split or default_split
        if not _SPLIT_NAME.match(split) or split in (".", ".."):
            raise DatasetFormatError(f"{where}: split name {split!r} is not a plain name (letters, digits, . _ -)")
        col = collectors.get(split) or collectors.setdefault(split, _Collector(split, str(base)))
        audio = row.get(audio_column)
        if isinstance(audio, Mapping):
            audio = audio.get("path")
        if not isinstance(audio, str) or not audio.strip():
            raise DatasetFormatError(f"{where}: empty or invalid audio path in column {audio_column!r}")
        rel = audio if os.path.isfile(os.path.join(base, audio)) else audio.strip()
        values: list[Any] = []
        for c in cap_cols:
            v = row.get(c)
            if isinstance(v, str) and c == "captions" and v.lstrip().startswith("["):
                try:
                    v = json.loads(v)
                except json.JSONDecodeError:
                    raise DatasetFormatError(f"{where}: column 'captions' is not a valid JSON list") from None
            values.extend(v if isinstance(v, list) else [v])
        caps = _clean_captions(values, where, drop_empty_captions, col, ignore_blank=multi)
        if cap_cols and not caps:
            if not drop_empty_captions:
                blank = f" (all of {', '.join(cap_cols)} are blank)" if multi else ""
                raise DatasetFormatError(
                    f"{where}: empty caption{blank}; pass drop_empty_captions=True to drop the row"
                )
            col.dropped_clips += 1
            continue
        target = _resolve_inside(base, rel, where)
        clip_id = str(row[id_column]).strip() if id_column else rel.replace(os.sep, "/")
        if not clip_id:
            raise DatasetFormatError(f"{where}: empty id")
        if not target.is_file():
            col.missing.append(rel)
            continue
        col.add(clip_id, str(target), caps, where, merge=True)
    if not collectors:
        raise DatasetFormatError(f"'{path}': no rows")
    ordered = [collectors[s] for s in sorted(collectors, key=_split_sort_key)]
    return _finish(ordered, skip_missing, probe_audio)


def load_audiofolder(
    data_dir: str | os.PathLike,
    caption_columns: str | Sequence[str] | None = None,
    *,
    skip_missing: bool = False,
    drop_empty_captions: bool = False,
    probe_audio: bool = True,
) -> datasets.DatasetDict:
    """The ``audiofolder`` convention: ``metadata.csv`` / ``metadata.jsonl`` with a ``file_name`` column (relative to
    the metadata file) and caption column(s). Either one metadata file at the root (split ``train``, or from a
    ``split`` column) or one per split sub-folder (``data_dir/{split}/metadata.csv``)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"audiofolder '{data_dir}' not found")

    def metadata_in(folder: Path) -> Path | None:
        for name in ("metadata.csv", "metadata.jsonl", "metadata.json"):
            if (folder / name).is_file():
                return folder / name
        return None

    kwargs = {
        "audio_column": "file_name",
        "caption_columns": caption_columns,
        "skip_missing": skip_missing,
        "drop_empty_captions": drop_empty_captions,
        "probe_audio": probe_audio,
    }
    root_meta = metadata_in(data_dir)
    if root_meta is not None:
        header = _read_jsonl(root_meta)[0] if root_meta.suffix != ".csv" else _read_csv(root_meta)[0]
        return load_manifest(
            root_meta, split_column="split" if "split" in header else None, base_dir=data_dir, **kwargs
        )
    parts = {}
    for sub in sorted((p for p in data_dir.iterdir() if p.is_dir()), key=lambda p: _split_sort_key(p.name)):
        meta = metadata_in(sub)
        if meta is not None:
            parts[sub.name] = load_manifest(meta, base_dir=sub, default_split=sub.name, **kwargs)[sub.name]
    if not parts:
        raise DatasetFormatError(
            f"'{data_dir}': no metadata.csv / metadata.jsonl (expected at the root or in split sub-folders)"
        )
    return datasets.DatasetDict(parts)
