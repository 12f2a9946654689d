"""AudioCaps v1: its CSVs, and its clips found by name in a folder of your own."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import datasets

from hf_audiocap.data.loaders.files import _DirIndex, _read_csv, _require_columns, _split_sort_key
from hf_audiocap.data.loaders.schema import DatasetFormatError, _clean_captions, _Collector, _finish

AUDIOCAPS_TEMPLATES = (
    "{youtube_id}_{start_time}",
    "{youtube_id}",
    "Y{youtube_id}",
    "Y{youtube_id}_{start_time}",
    "{audiocap_id}",
    "Y{youtube_id}_{start_time}.000_{end_time}.000",
)
_AUDIOCAPS_SPLIT_DIRS = {"val": ("val", "validation", "valid"), "validation": ("validation", "val", "valid")}


def _norm_time(value: str, where: str) -> str:
    try:
        t = float(value)
    except ValueError:
        raise DatasetFormatError(f"{where}: start_time {value!r} is not a number") from None
    return str(int(t)) if t.is_integer() else str(t)


def load_audiocaps(
    csv_dir: str | os.PathLike,
    audio_dir: str | os.PathLike,
    splits: Sequence[str] | str | None = None,
    skip_missing: bool = False,
    audio_template: str | Sequence[str] | None = None,
    *,
    extensions: Sequence[str] = (".wav", ".flac", ".mp3", ".ogg"),
    drop_empty_captions: bool = False,
    probe_audio: bool = True,
) -> datasets.DatasetDict:
    """AudioCaps v1: ``csv_dir/{train,val,test}.csv`` (``audiocap_id, youtube_id, start_time, caption``), rows grouped
    by ``(youtube_id, start_time)`` into clips (1 caption in train, 5 in val/test). ``id`` is
    ``{youtube_id}_{start_time}``; split names are the CSV stems.

    Audio is looked for in ``audio_dir/{split}/`` (``val`` also in ``validation/``) and then ``audio_dir/``, named by
    ``audio_template`` (a ``str.format`` template or a list tried in order; fields ``youtube_id``, ``start_time``,
    ``end_time`` (start + 10), ``audiocap_id`` (first of the clip), ``split``, and optionally ``ext`` (no dot: ``"Y{youtube_id}.{ext}"``); without
    ``{ext}`` each of ``extensions`` is tried). The default tries :data:`AUDIOCAPS_TEMPLATES`.
    """
    csv_dir, audio_dir = Path(csv_dir), Path(os.path.abspath(audio_dir))
    found = {p.stem: p for p in csv_dir.glob("*.csv") if p.stem in ("train", "val", "validation", "test")}
    if splits is None:
        if not found:
            raise DatasetFormatError(f"'{csv_dir}': no AudioCaps train.csv / val.csv / test.csv found")
        wanted = sorted(found, key=_split_sort_key)
    else:
        wanted = [splits] if isinstance(splits, str) else list(splits)
        for s in wanted:
            if not (csv_dir / f"{s}.csv").is_file():
                raise DatasetFormatError(
                    f"'{csv_dir}': no {s}.csv for split {s!r} (found: {', '.join(found) or 'none'})"
                )
            found[s] = csv_dir / f"{s}.csv"
    templates = [audio_template] if isinstance(audio_template, str) else list(audio_template or AUDIOCAPS_TEMPLATES)
    exts = [e if e.startswith(".") else f".{e}" for e in extensions]
    index = _DirIndex()
    collectors = []
    for split in wanted:
        csv_path = found[split]
        header, rows = _read_csv(csv_path)
        _require_columns(csv_path, header, ["audiocap_id", "youtube_id", "start_time", "caption"])
        search = [audio_dir / d for d in _AUDIOCAPS_SPLIT_DIRS.get(split, (split,))] + [audio_dir]
        search = [d for d in search if d.is_dir()] or [audio_dir]
        col = _Collector(split, str(audio_dir))
        clips: dict[tuple[str, str], dict[str, Any]] = {}
        for line, row in rows:
            where = f"'{csv_path}' line {line}"
            yid = row["youtube_id"].strip()
            if not yid:
                raise DatasetFormatError(f"{where}: empty youtube_id")
            for field_name, value in (("youtube_id", yid), ("audiocap_id", row["audiocap_id"].strip())):
                if "/" in value or "\\" in value or value in (".", ".."):  # would name a file outside audio_dir
                    raise DatasetFormatError(f"{where}: {field_name} {value!r} contains a path separator")
            start = _norm_time(row["start_time"].strip(), where)
            clip = clips.setdefault((yid, start), {"audiocap_id": row["audiocap_id"].strip(), "captions": []})
            clip["captions"].extend(_clean_captions([row["caption"]], where, drop_empty_captions, col))
        for (yid, start), clip in clips.items():
            clip_id = f"{yid}_{start}"
            if not clip["captions"]:
                col.dropped_clips += 1
                continue
            fields = {
                "youtube_id": yid,
                "start_time": start,
                "end_time": _norm_time(str(float(start) + 10), clip_id),
                "audiocap_id": clip["audiocap_id"],
                "split": split,
            }
            path = _find_audio(search, templates, exts, fields, index)
            col.add(clip_id, path, clip["captions"], f"'{csv_path}' clip {clip_id}")
        collectors.append(col)
    return _finish(collectors, skip_missing, probe_audio)


def _find_audio(folders, templates, exts, fields, index: _DirIndex) -> str | None:
    for folder in folders:
        for tpl in templates:
            names = (
                [tpl.format(ext=e[1:], **fields) for e in exts]
                if "{ext" in tpl
                else [tpl.format(**fields) + e for e in exts]
            )
            for name in names:
                if index.has(folder, name):
                    return str(folder / name)
    return None
