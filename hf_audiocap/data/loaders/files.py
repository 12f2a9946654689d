"""Reading the files loaders are given (UTF-8 text, CSV, JSON lines, with errors naming the line), their columns and
split names, and the audio paths they name (found with one listing per folder, kept inside their base folder)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from hf_audiocap.data.loaders.schema import DatasetFormatError

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".aiff", ".aif")
_CAPTION_N = re.compile(r"^caption_(\d+)$")
_SPLIT_ORDER = ("train", "development", "dev", "validation", "valid", "val", "evaluation", "eval", "test")


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


def _detect_caption_columns(header: Sequence[str]) -> list[str]:
    if "captions" in header:
        return ["captions"]
    if "caption" in header:
        return ["caption"]
    return _caption_n_columns(header)


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
