"""Caption dataset loaders: every loader returns a ``datasets.DatasetDict`` with ONE schema (see docs/CONVENTIONS.md).

    id             string   unique within a split
    audio          datasets.Audio(decode=False): struct {bytes, path}; loaders reading from disk store the absolute
                   path and ``bytes=None`` (decode later with :func:`hf_audiocap.data.audio.load_audio`)
    sampling_rate  int32    native rate from the file header, 0 when unknown (unreadable header, ``probe_audio=False``)
    captions       list[string]  the reference captions of the clip

Audio is never decoded here (and never through ``datasets``' own decoder, which needs torchcodec + FFmpeg).

Bad input policy (shared by all loaders):

* a CSV/JSONL without the expected columns -> :class:`DatasetFormatError` naming the file and the columns;
* text that is not valid UTF-8 -> :class:`DatasetFormatError` naming the file and line;
* an empty caption -> :class:`DatasetFormatError` naming the file and line; with ``drop_empty_captions=True`` the empty
  caption is dropped (a clip left with no caption is dropped) and one warning gives the count. In manifests with
  ``caption_1..caption_N`` columns, blank cells are simply fewer references: only a row with no caption at all counts;
* audio files that do not exist -> one :class:`MissingAudioError` (also a ``FileNotFoundError``) giving the count per
  split and the first 5; with ``skip_missing=True`` those clips are skipped and one warning per split says how many;
* a manifest row whose audio path resolves outside the base folder (``../../etc/passwd``, an absolute path elsewhere;
  also an AudioCaps id with a path separator, a relative path of an ``hf`` dataset leaving its folder) ->
  :class:`DatasetFormatError` naming the row; a split name that is not a plain name (``a/b``, ``..``) likewise;
* NUL bytes in a text file (a binary or UTF-16 file) -> :class:`DatasetFormatError` naming the file and line;
* audio that cannot be used is NOT decoded here: :func:`check_audio_files` checks every clip's header (readable, not
  empty, not over a maximum duration) in one pass, which ``recipes/train.py`` and
  ``recipes/evaluate.py`` run before anything else.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
import soundfile as sf
from datasets.table import InMemoryTable

__all__ = [
    "audio_durations",
    "CAPTION_FEATURES",
    "DatasetFormatError",
    "LOADERS",
    "MissingAudioError",
    "expand_captions",
    "load_audiocaps",
    "load_audiofolder",
    "load_caption_dataset",
    "load_clotho",
    "load_hf_dataset",
    "load_manifest",
    "register_loader",
    "check_audio_files",
]

CAPTION_FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "audio": datasets.Audio(decode=False),
        "sampling_rate": datasets.Value("int32"),
        "captions": datasets.List(datasets.Value("string")),
    }
)
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".aiff", ".aif")
_CAPTION_N = re.compile(r"^caption_(\d+)$")
_SPLIT_ORDER = ("train", "development", "dev", "validation", "valid", "val", "evaluation", "eval", "test")
_MAX_LISTED = 5
_SPLIT_NAME = re.compile(r"^[\w.-]+$")


class DatasetFormatError(ValueError):
    """A caption dataset file is malformed; the message names the file (and row/line when relevant)."""


class MissingAudioError(DatasetFormatError, FileNotFoundError):
    """Audio files referenced by a caption dataset do not exist."""


# --------------------------------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    """Read a UTF-8 text file (BOM tolerated); invalid UTF-8 is an error naming the line."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DatasetFormatError(
            f"'{path}' line {line}: not valid UTF-8 (byte 0x{data[err.start]:02x} at offset {err.start})"
        ) from None
    nul = data.find(b"\x00")
    if nul >= 0:
        line = data[:nul].count(b"\n") + 1
        raise DatasetFormatError(f"'{path}' line {line}: NUL byte at offset {nul} (a binary file, or not UTF-8 text?)")
    return text


def _read_csv(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """(header, [(line_number, row)]) of a CSV with CRLF or LF line endings and quoted fields."""
    text = _read_text(path)
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise DatasetFormatError(f"'{path}': empty file, expected a CSV header") from None
    except csv.Error as err:
        raise DatasetFormatError(f"'{path}' line 1: malformed CSV ({err})") from None
    rows = []
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            raise DatasetFormatError(f"'{path}' line {reader.line_num}: malformed CSV ({err})") from None
        if not values or all(not v.strip() for v in values):
            continue  # blank line
        if len(values) > len(header):
            raise DatasetFormatError(
                f"'{path}' line {reader.line_num}: {len(values)} fields but the header has {len(header)} "
                "(unquoted comma in a field?)"
            )
        rows.append((reader.line_num, dict(zip(header, values))))
    return header, rows


def _read_jsonl(path: Path) -> tuple[list[str], list[tuple[int, dict[str, Any]]]]:
    """(column names in first-seen order, [(line_number, row)]) of JSON lines (or a .json array of objects)."""
    text = _read_text(path)
    rows: list[tuple[int, dict[str, Any]]] = []
    if path.suffix.lower() == ".json" and text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as err:
            raise DatasetFormatError(f"'{path}' line {err.lineno}: invalid JSON ({err.msg})") from None
        rows = [(i + 1, item) for i, item in enumerate(items)]
    else:
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append((lineno, json.loads(line)))
            except json.JSONDecodeError as err:
                raise DatasetFormatError(f"'{path}' line {lineno}: invalid JSON ({err.msg})") from None
    columns: dict[str, None] = {}
    for lineno, row in rows:
        if not isinstance(row, dict):
            raise DatasetFormatError(f"'{path}' line {lineno}: expected a JSON object, got {type(row).__name__}")
        columns.update(dict.fromkeys(row))
    return list(columns), rows


def _require_columns(path: Path, header: Sequence[str], required: Sequence[str], expected: str | None = None) -> None:
    missing = [c for c in required if c not in header]
    if missing:
        raise DatasetFormatError(
            f"'{path}': missing column(s) {', '.join(missing)} (expected {expected or ', '.join(required)}; "
            f"found {', '.join(header) or 'none'})"
        )


def _caption_n_columns(header: Iterable[str]) -> list[str]:
    found = [(int(m.group(1)), c) for c in header if (m := _CAPTION_N.match(c))]
    return [c for _, c in sorted(found)]


def _split_sort_key(name: str) -> tuple[int, str]:
    return (_SPLIT_ORDER.index(name) if name in _SPLIT_ORDER else len(_SPLIT_ORDER), name)


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


class _DirIndex:
    """File names of a folder, listed once (50k ``stat`` calls would be slow on network storage)."""

    def __init__(self) -> None:
        self._cache: dict[str, frozenset[str]] = {}

    def has(self, folder: Path, rel: str) -> bool:
        if "/" in rel or os.sep in rel:
            return (folder / rel).is_file()
        key = str(folder)
        if key not in self._cache:
            try:
                self._cache[key] = frozenset(e.name for e in os.scandir(folder) if not e.is_dir())
            except (FileNotFoundError, NotADirectoryError):
                self._cache[key] = frozenset()
        return rel in self._cache[key]


def _resolve_inside(base: Path, rel: str, where: str) -> Path:
    """Join ``rel`` to ``base`` (lexically, symlinks allowed) and refuse anything that escapes ``base``."""
    base_abs = Path(os.path.abspath(base))
    target = Path(os.path.normpath(base_abs / os.path.expanduser(rel)))
    if target != base_abs and base_abs not in target.parents:
        raise DatasetFormatError(
            f"{where}: audio path {rel!r} points outside the base folder '{base_abs}' (pass base_dir= to widen it)"
        )
    return target


# --------------------------------------------------------------------------------------------------------------------
# Clotho (and SynthCaps, which uses the same layout)
# --------------------------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------------------------
# AudioCaps
# --------------------------------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------------------------------
# Manifests (CSV / JSON lines) and audiofolder
# --------------------------------------------------------------------------------------------------------------------

_AUDIO_COLUMNS = ("audio", "file_name", "path", "audio_path", "audio_filepath", "filename")


def _detect_caption_columns(header: Sequence[str]) -> list[str]:
    if "captions" in header:
        return ["captions"]
    if "caption" in header:
        return ["caption"]
    return _caption_n_columns(header)


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


# --------------------------------------------------------------------------------------------------------------------
# Any datasets dataset (local or Hub)
# --------------------------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------------------------
# Checking every clip's audio before a run
# --------------------------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------------------------
# Registry and training expansion
# --------------------------------------------------------------------------------------------------------------------

LOADERS: dict[str, Callable[..., datasets.DatasetDict]] = {
    "clotho": load_clotho,
    "audiocaps": load_audiocaps,
    "manifest": load_manifest,
    "audiofolder": load_audiofolder,
    "hf": load_hf_dataset,
}


def register_loader(name: str, fn: Callable[..., datasets.DatasetDict]) -> None:
    """Add a loader to the registry used by :func:`load_caption_dataset`."""
    LOADERS[name] = fn


def load_caption_dataset(source: str, *args: Any, **kwargs: Any) -> datasets.DatasetDict:
    """Dispatch to a registered loader by name, e.g. ``load_caption_dataset("clotho", root="data/clotho")``."""
    if source not in LOADERS:
        raise ValueError(f"unknown caption dataset loader {source!r}; known loaders: {', '.join(sorted(LOADERS))}")
    return LOADERS[source](*args, **kwargs)


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
