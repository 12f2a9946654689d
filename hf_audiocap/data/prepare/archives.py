"""Extraction of 7z (py7zr) and zip (zipfile) archives into a corpus folder, refusing any member that would land
outside it, and never replacing a file already there."""

from __future__ import annotations

import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from hf_audiocap.data.prepare.downloads import PrepareError, check_free_space


@dataclass
class Member:
    name: str
    size: int
    is_dir: bool
    is_link: bool


def members(archive: Path) -> list[Member]:
    """The members of a 7z or zip archive; a damaged archive is a PrepareError naming it."""
    import py7zr

    try:
        if archive.suffix == ".7z":
            with py7zr.SevenZipFile(archive) as z:
                return [Member(i.filename, i.uncompressed or 0, i.is_directory, i.is_symlink) for i in z.list()]
        with zipfile.ZipFile(archive) as z:
            # a zip member is a link when its Unix mode (high 16 bits of external_attr) says S_IFLNK
            return [
                Member(i.filename, i.file_size, i.is_dir(), (i.external_attr >> 16) & 0o170000 == 0o120000)
                for i in z.infolist()
            ]
    except (py7zr.exceptions.ArchiveError, zipfile.BadZipFile, OSError, ValueError) as err:
        raise PrepareError(f"{archive}: not a readable archive ({err})") from None


def extract(archive: Path, target: Path, root: Path, wanted: set[str] | None = None) -> int:
    """Extracts into `target` (flat: members keep only their base name) the files of `archive` whose base name is in
    `wanted` (all when None) and that `target` lacks; returns how many. Every member name is checked first: one that
    would land outside the root (absolute, ``..``, a link) stops everything before a byte is written. Members go to a
    staging folder in the root and are moved into place one by one, so an interrupted extraction leaves only whole
    files behind and the next run extracts the rest."""
    import py7zr

    listed = members(archive)
    for m in listed:
        posix = PurePosixPath(m.name.replace("\\", "/"))
        if posix.is_absolute() or ".." in posix.parts or ":" in posix.parts[0] or m.is_link:
            raise PrepareError(f"{archive}: member {m.name!r} would be written outside {root}; nothing was extracted")
    target.mkdir(parents=True, exist_ok=True)
    have = {p.name for p in target.iterdir()}
    todo = [
        m
        for m in listed
        if not m.is_dir
        and PurePosixPath(m.name).name not in have
        and (wanted is None or PurePosixPath(m.name).name in wanted)
    ]
    if not todo:
        return 0
    check_free_space(root, sum(m.size for m in todo), f"extracting {len(todo)} files of {archive.name}")
    staging = root / f".extracting-{archive.name}"
    shutil.rmtree(staging, ignore_errors=True)  # ours, left by an interrupted run
    try:
        if archive.suffix == ".7z":
            with py7zr.SevenZipFile(archive) as z:
                z.extract(path=staging, targets=[m.name for m in todo])
        else:
            with zipfile.ZipFile(archive) as z:
                z.extractall(staging, [m.name for m in todo])
        for m in todo:
            extracted = staging / m.name
            final = target / extracted.name
            if not final.exists():
                extracted.replace(final)
    except (py7zr.exceptions.ArchiveError, zipfile.BadZipFile, ValueError) as err:
        raise PrepareError(f"{archive}: extraction failed ({err})") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return len(todo)
