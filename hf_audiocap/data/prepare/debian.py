"""Readers, standard library only, for Debian packages and the two game-sound containers found inside them.

- ``.deb``: an ``ar`` archive (``!<arch>\\n``, then per member a 60-byte header and its data padded to an even
  length) holding ``debian-binary``, ``control.tar.*`` and ``data.tar.*``; the files live in the data tar.
- OpenTTD's ``opensfx.cat``: a table of little-endian uint32 (offset, size) pairs (the first offset / 8 is the number
  of entries; its top bit marks the newer format and is not part of the offset); at each offset a 1-byte length, a
  NUL-terminated description, then ``size`` bytes of RIFF WAV, a 0 byte, a 1-byte length and the source file name.
- Qt's ``.rcc`` (versions 1-3): a big-endian header (``qres``, version, tree, data and names offsets, for v3 an
  overall flags int), a tree of 14-byte (v1) or 22-byte (v2+, with a uint64 modification time) nodes starting at the
  root, names as uint16 length + uint32 hash + UTF-16BE, and per file a uint32 length + its bytes; file flags 1 =
  zlib (qCompress: 4-byte big-endian size + zlib stream), 2 = directory, 4 = zstd.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import struct
import tarfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from hf_audiocap.data.prepare.downloads import PrepareError

try:  # Python 3.14's zstd module, or its backport for older Pythons
    from compression import zstd
except ImportError:
    try:
        from backports import zstd
    except ImportError:
        zstd = None

AR_MAGIC = b"!<arch>\n"
AR_HEADER = 60
# what a corrupt compressed stream or tar raises, as opposed to bugs in this module
_ZSTD_ERRORS = (zstd.ZstdError,) if zstd else ()
_CORRUPT = (tarfile.TarError, lzma.LZMAError, zlib.error, EOFError, OSError, *_ZSTD_ERRORS)
_RCC_ERRORS = (zlib.error, *_ZSTD_ERRORS)


def deb_members(deb_path, select: Callable[[str], bool] | None = None) -> Iterator[tuple[str, bytes]]:
    """(path, bytes) of each regular file in the package's data tar (path without the leading ``./``), reading only
    those ``select(path)`` accepts. The tar is streamed: memory holds one file at a time, not the package."""
    with _member_tar(deb_path, "data.tar") as tar:
        for info in tar:
            path = info.name.removeprefix("./").lstrip("/")
            if info.isfile() and (select is None or select(path)):
                yield path, tar.extractfile(info).read()


@contextmanager
def _member_tar(deb_path, stem: str):
    """The ar member ``stem`` (+ any compression suffix) of the package, open as a streamed tar."""
    with open(deb_path, "rb") as f:
        name, size = _find_member(f, deb_path, stem)
        try:
            with (
                _decompressed(name, _Slice(f, size), deb_path) as stream,
                tarfile.open(fileobj=stream, mode="r|") as tar,
            ):
                yield tar
                # the tar's end comes before the compressed stream's: read on to its checksum
                while stream.read(1 << 20):
                    pass
        except _CORRUPT as err:
            raise PrepareError(f"'{deb_path}': its {name} is corrupt ({err})") from None


def _find_member(f, deb_path, stem: str) -> tuple[str, int]:
    """Walks the ar headers up to the member named ``stem[.ext]``; leaves ``f`` at its data."""
    if f.read(len(AR_MAGIC)) != AR_MAGIC:
        raise PrepareError(f"'{deb_path}': not a Debian package (no ar magic)")
    file_size, names = os.fstat(f.fileno()).st_size, []
    while header := f.read(AR_HEADER):
        if len(header) < AR_HEADER or header[58:60] != b"`\n":
            raise PrepareError(
                f"'{deb_path}': not a Debian package (truncated or bad ar header at {f.tell() - len(header)})"
            )
        # GNU ar ends names with '/'; dpkg's with spaces
        name, size_field = header[:16].decode("ascii", "replace").rstrip(" ").rstrip("/"), header[48:58]
        try:
            size = int(size_field)
        except ValueError:
            raise PrepareError(f"'{deb_path}': not a Debian package (bad size in the ar header of {name!r})") from None
        if f.tell() + size > file_size:
            raise PrepareError(f"'{deb_path}': truncated ({name} needs {size} bytes, the file ends first)")
        if name == stem or name.startswith(stem + "."):
            return name, size
        names.append(name)
        f.seek(size + size % 2, os.SEEK_CUR)
    raise PrepareError(f"'{deb_path}': no {stem} member in the package (it has {', '.join(names) or 'none'})")


def _decompressed(name: str, raw, deb_path):
    suffix = name.rpartition(".")[2]
    if suffix == "tar":
        return raw
    if suffix == "zst" and zstd is None:
        raise PrepareError(f"'{deb_path}': its {name} needs zstd: pip install backports.zstd (or use Python 3.14)")
    openers = {
        "xz": lzma.LZMAFile,
        "lzma": lzma.LZMAFile,
        "gz": lambda r: gzip.GzipFile(fileobj=r),
        "bz2": bz2.BZ2File,
    }
    if zstd is not None:
        openers["zst"] = zstd.ZstdFile
    if suffix not in openers:
        raise PrepareError(f"'{deb_path}': unknown compression of its {name}")
    return openers[suffix](raw)


class _Slice(io.RawIOBase):
    """The next ``size`` bytes of ``f``, as a file: an ar member, read without copying it into memory."""

    def __init__(self, f, size: int):
        self.f, self.left = f, size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.f.read(min(len(buffer), self.left))
        self.left -= len(data)
        buffer[: len(data)] = data
        return len(data)


def opensfx_entries(data: bytes, name: str) -> list[tuple[str, bytes]]:
    """(description, RIFF WAV bytes) of each sound of an OpenTTD ``.cat``, in table order. The description is the
    entry's own name field, e.g. '"Cow". Original "Cow - Moan 2 - 96kHz.wav" by "Jarred Gib". Edited by "Wuzzy".
    License: Creative Commons Zero 1.0.': the quoted title, then credits and that sound's licence (the file names
    stored after each sound, 'src/wav/osfx_37.wav', say nothing)."""
    if len(data) < 8:
        raise PrepareError(f"'{name}': not an OpenTTD sound file (only {len(data)} bytes)")
    count = (struct.unpack_from("<I", data)[0] & 0x7FFFFFFF) // 8
    if count == 0 or count * 8 > len(data):
        raise PrepareError(f"'{name}': not an OpenTTD sound file (a table of {count} entries does not fit)")
    entries = []
    for i in range(count):
        offset, size = struct.unpack_from("<II", data, 8 * i)
        offset &= 0x7FFFFFFF
        if offset >= len(data) or offset + 1 + data[offset] + size > len(data):
            raise PrepareError(f"'{name}': entry {i} (offset {offset}, {size} bytes) lies past the end ({len(data)})")
        start = offset + 1 + data[offset]
        wav = data[start : start + size]
        if wav[:4] != b"RIFF" or wav[8:12] != b"WAVE":
            raise PrepareError(f"'{name}': entry {i} is not a RIFF WAV (it starts {wav[:12]!r})")
        entries.append((data[offset + 1 : start].rstrip(b"\0").decode("utf-8", "replace"), wav))
    return entries


def qt_rcc_entries(data: bytes, name: str) -> list[tuple[str, bytes]]:
    """(path, decompressed bytes) of each file in a Qt ``.rcc`` resource archive, depth first from the root."""
    if len(data) < 20 or data[:4] != b"qres":
        raise PrepareError(f"'{name}': not a Qt resource file (no qres magic)")
    version, tree, blobs, names = struct.unpack_from(">4I", data, 4)
    if version not in (1, 2, 3) or max(tree, blobs, names) >= len(data):
        raise PrepareError(f"'{name}': unsupported Qt resource version {version} or offsets past the end")
    node_size = 14 if version == 1 else 22
    entries, pending, seen = [], [(0, "")], set()
    while pending:
        index, path = pending.pop()
        pos = tree + index * node_size
        if index in seen or pos + node_size > len(data):
            raise PrepareError(f"'{name}': bad tree node {index} (under {path or '/'!r})")
        seen.add(index)
        name_offset, flags = struct.unpack_from(">IH", data, pos)
        if index:  # the root's name is not stored
            path = f"{path}/{_rcc_name(data, names + name_offset, name)}".lstrip("/")
        if flags & 2:
            count, first = struct.unpack_from(">II", data, pos + 6)
            if tree + (first + count) * node_size > len(data):
                raise PrepareError(f"'{name}': the children of {path or '/'!r} lie past the end")
            pending.extend((child, path) for child in reversed(range(first, first + count)))
        else:
            entries.append(
                (path, _rcc_blob(data, blobs + struct.unpack_from(">I", data, pos + 10)[0], flags, name, path))
            )
    return entries


def _rcc_name(data: bytes, pos: int, name: str) -> str:
    end = pos + 6 + 2 * struct.unpack_from(">H", data, pos)[0] if pos + 6 <= len(data) else len(data) + 1
    if end > len(data):
        raise PrepareError(f"'{name}': a name (at {pos}) lies past the end")
    return data[pos + 6 : end].decode("utf-16-be", "replace")


def _rcc_blob(data: bytes, pos: int, flags: int, name: str, path: str) -> bytes:
    size = struct.unpack_from(">I", data, pos)[0] if pos + 4 <= len(data) else -1
    if size < 0 or pos + 4 + size > len(data):
        raise PrepareError(f"'{name}': the data of {path!r} lies past the end")
    blob = data[pos + 4 : pos + 4 + size]
    try:
        if flags & 1:
            return zlib.decompress(blob[4:])  # qCompress: a 4-byte size, then the zlib stream
        if flags & 4:
            if zstd is None:
                raise PrepareError(f"'{name}': {path!r} needs zstd: pip install backports.zstd (or use Python 3.14)")
            return zstd.decompress(blob)
    except _RCC_ERRORS as err:
        raise PrepareError(f"'{name}': {path!r} does not decompress ({err})") from None
    return blob
