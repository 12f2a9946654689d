"""Clotho v2.1 (and SynthCaps, which uses the same layout)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import datasets

from hf_audiocap.data.loaders.files import (
    _caption_n_columns,
    _DirIndex,
    _read_csv,
    _require_columns,
    _resolve_inside,
    _split_sort_key,
)
from hf_audiocap.data.loaders.schema import DatasetFormatError, _clean_captions, _Collector, _finish


def load_clotho(
    root: str | os.PathLike,
    splits: Sequence[str] | str | None = None,
    audio_dirs: Mapping[str, str | os.PathLike] | str | os.PathLike | None = None,
    skip_missing: bool = False,
    *,
    drop_empty_captions: bool = False,
    probe_audio: bool = True,
) -> datasets.DatasetDict:
    """Clotho v2.1 layout: ``root/clotho_captions_{split}.csv`` (``file_name, caption_1..caption_5``) and audio in
    ``root/{split}/`` or ``root/clotho_audio_{split}/`` (or ``audio_dirs[split]``; a single folder applies to every
    split). Splits come from the CSV names (development/validation/evaluation for Clotho, train/validation/test for
    SynthCaps). ``id`` is the file name."""
    root = Path(root)
    found = {p.name[len("clotho_captions_") : -len(".csv")]: p for p in root.glob("clotho_captions_*.csv")}
    if not found:
        raise DatasetFormatError(f"'{root}': no clotho_captions_{{split}}.csv files found")
    if splits is None:
        wanted = sorted(found, key=_split_sort_key)
    else:
        wanted = [splits] if isinstance(splits, str) else list(splits)
        unknown = [s for s in wanted if s not in found]
        if unknown:
            raise DatasetFormatError(
                f"'{root}': no clotho_captions_{{split}}.csv for split(s) {', '.join(unknown)} "
                f"(available: {', '.join(sorted(found, key=_split_sort_key))})"
            )
    index = _DirIndex()
    collectors = []
    for split in wanted:
        csv_path = found[split]
        if isinstance(audio_dirs, Mapping):
            if split not in audio_dirs:
                raise DatasetFormatError(
                    f"audio_dirs has no entry for split {split!r} (keys: {', '.join(audio_dirs)})"
                )
            audio_dir = Path(audio_dirs[split])
        elif audio_dirs is not None:
            audio_dir = Path(audio_dirs)
        else:
            candidates = [root / split, root / f"clotho_audio_{split}"]
            audio_dir = next((c for c in candidates if c.is_dir()), candidates[0])
        audio_dir = Path(os.path.abspath(audio_dir))
        header, rows = _read_csv(csv_path)
        cap_cols = _caption_n_columns(header)
        _require_columns(
            csv_path, header, ["file_name"] + (cap_cols or ["caption_1"]), "file_name, caption_1..caption_5"
        )
        col = _Collector(split, str(audio_dir))
        for line, row in rows:
            where = f"'{csv_path}' line {line}"
            # Real Clotho has file names with a leading space (" Ambience Birds.wav"): keep them verbatim.
            fname = row.get("file_name") or ""
            if not fname.strip():
                raise DatasetFormatError(f"{where}: empty file_name")
            caps = _clean_captions((row.get(c) for c in cap_cols), where, drop_empty_captions, col)
            if not caps:
                col.dropped_clips += 1
                continue
            on_disk = next((n for n in dict.fromkeys([fname, fname.strip()]) if index.has(audio_dir, n)), None)
            path = _resolve_inside(audio_dir, on_disk or fname, where)
            col.add(fname, str(path) if on_disk else None, caps, where)
        collectors.append(col)
    return _finish(collectors, skip_missing, probe_audio)
