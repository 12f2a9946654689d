"""Writers of tiny Debian packages, OpenTTD ``.cat`` and Qt ``.rcc`` containers, and of WAV/Ogg tones, for the tests
of ``hf_audiocap.data.prepare.debian`` and of ``prepare realsounds``: the layouts of the real files, built in memory."""

from __future__ import annotations

import gzip
import io
import lzma
import struct
import tarfile
import zlib

import numpy as np
import soundfile as sf

try:  # as hf_audiocap.data.prepare.debian finds it
    from compression import zstd
except ImportError:
    from backports import zstd

MTIME = 1_700_000_000  # a fixed time, so that the same input builds the same bytes


def wav_bytes(samples: np.ndarray, sr: int) -> bytes:
    """16-bit PCM mono WAV of float samples in [-1, 1]."""
    buf = io.BytesIO()
    sf.write(buf, np.asarray(samples, dtype=np.float32), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def ogg_bytes(samples: np.ndarray, sr: int) -> bytes:
    """Ogg Vorbis mono of float samples in [-1, 1]."""
    buf = io.BytesIO()
    sf.write(buf, np.asarray(samples, dtype=np.float32), sr, format="OGG", subtype="VORBIS")
    return buf.getvalue()


# --- Debian packages ---


def make_ar(members: list[tuple[str, bytes]], gnu_names: bool = False) -> bytes:
    """An ``ar`` archive; names end with '/' as GNU ar writes them when `gnu_names`, else padded with spaces as
    dpkg-deb writes them."""
    out = [b"!<arch>\n"]
    for name, data in members:
        name = name + "/" if gnu_names else name
        header = f"{name:<16}{MTIME:<12}{0:<6}{0:<6}{0o100644:<8o}{len(data):<10}`\n".encode("ascii")
        out += [header, data, b"\n" * (len(data) % 2)]
    return b"".join(out)


def make_tar(files: dict[str, bytes]) -> bytes:
    """An uncompressed tar of ``./path`` entries with their folders first, as dpkg-deb builds a data tar."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        folders = sorted({"/".join(p.split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)})
        for path in ["", *folders]:
            info = tarfile.TarInfo(f"./{path}/" if path else "./")
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, MTIME
            tar.addfile(info)
        for path, data in files.items():
            info = tarfile.TarInfo(f"./{path}")
            info.size, info.mode, info.mtime = len(data), 0o644, MTIME
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _compress(data: bytes, compression: str) -> bytes:
    """`data` compressed as a ``.tar.<compression>`` member: "xz", "gz", "zst" or "none"."""
    if compression == "xz":
        return lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64)
    if compression == "gz":
        return gzip.compress(data, mtime=0)
    if compression == "zst":
        return zstd.compress(data)
    if compression == "none":
        return data
    raise ValueError(f"unknown compression {compression!r}: xz, gz, zst or none")


def make_deb(files: dict[str, bytes], package: str = "pkg", version: str = "1.0-1", compression: str = "xz") -> bytes:
    """A Debian binary package holding `files` ({path without './': bytes}); its control and data tars compressed
    with `compression` ("xz", "gz", "zst" or "none")."""
    suffix = "" if compression == "none" else f".{compression}"
    control = f"Package: {package}\nVersion: {version}\nArchitecture: all\nMaintainer: Tests <tests@example.org>\nDescription: test sounds\n tiny ones\n"
    return make_ar(
        [
            ("debian-binary", b"2.0\n"),
            (f"control.tar{suffix}", _compress(make_tar({"control": control.encode()}), compression)),
            (f"data.tar{suffix}", _compress(make_tar(files), compression)),
        ]
    )


# --- OpenTTD's opensfx.cat ---


def make_opensfx_cat(entries: list[tuple[str, bytes]]) -> bytes:
    """An OpenTTD sound file of (name field, RIFF WAV bytes): the table of (offset | top bit, size) pairs, then per
    sound its length-prefixed NUL-terminated name, the WAV, a 0 byte and its length-prefixed source file name, as
    OpenTTD's catcodec writes them."""
    table, body = [], []
    offset = 8 * len(entries)
    for i, (name, wav) in enumerate(entries):
        title, source = name.encode() + b"\0", f"src/wav/osfx_{i:02d}.wav".encode() + b"\0"
        table.append(struct.pack("<II", offset | 0x80000000, len(wav)))
        chunk = bytes([len(title)]) + title + wav + b"\0" + bytes([len(source)]) + source  # a 0 byte separates
        body.append(chunk)
        offset += len(chunk)
    return b"".join(table + body)


# --- Qt's .rcc ---


def qt_hash(name: str) -> int:
    """Qt's ``qt_hash`` of a name: the order of a folder's children, which Qt searches by binary search."""
    h = 0
    for (unit,) in struct.iter_unpack(">H", name.encode("utf-16-be")):
        h = ((h << 4) + unit) & 0xFFFFFFFF
        h ^= (h & 0xF0000000) >> 23
        h &= 0x0FFFFFFF
    return h


def make_qt_rcc(files: dict[str, bytes], compress: str = "zlib", version: int = 3) -> bytes:
    """A Qt resource file of `files` ({"a/b/c.ogg": bytes}) laid out as ``rcc --binary --format-version N`` writes it
    (header, data, names, tree), each file stored as is ("none"), qCompress-ed ("zlib") or as a zstd frame ("zstd",
    which Qt reads from version 3 on)."""
    flag = {"none": 0, "zlib": 1, "zstd": 4}[compress]
    root: dict = {}
    for path, data in files.items():
        *folders, leaf = path.split("/")
        folder = root
        for name in folders:
            folder = folder.setdefault(name, {})
        folder[leaf] = data
    # breadth first, so that each folder's children are consecutive nodes (sorted by hash, as Qt looks them up)
    nodes, first_child = [("", root)], {}
    for index, (_, value) in enumerate(nodes):
        if isinstance(value, dict):
            first_child[index] = len(nodes)
            nodes.extend(sorted(value.items(), key=lambda item: qt_hash(item[0])))
    blobs, names, tree, name_at = bytearray(), bytearray(), bytearray(), {}
    for index, (name, value) in enumerate(nodes):
        if index and name not in name_at:  # the root has no name of its own
            name_at[name] = len(names)
            names += struct.pack(">HI", len(name), qt_hash(name)) + name.encode("utf-16-be")
        if isinstance(value, dict):
            tree += struct.pack(">IHII", name_at.get(name, 0), 2, len(value), first_child[index])
        else:  # territory 0 (any), language 1 (C): a file for every locale
            tree += struct.pack(">IHHHI", name_at[name], flag, 0, 1, len(blobs))
            blob = _rcc_compress(value, compress)
            blobs += struct.pack(">I", len(blob)) + blob
        if version >= 2:  # the last-modified time, in ms
            tree += struct.pack(">Q", MTIME * 1000)
    header = 24 if version >= 3 else 20
    offsets = (header + len(blobs) + len(names), header, header + len(blobs))  # tree, data, names
    flags = struct.pack(">I", flag) if version >= 3 else b""  # which compressions the files use
    return b"qres" + struct.pack(">4I", version, *offsets) + flags + blobs + names + tree


def _rcc_compress(data: bytes, compress: str) -> bytes:
    if compress == "zlib":  # qCompress: the uncompressed size, big-endian, then a zlib stream
        return struct.pack(">I", len(data)) + zlib.compress(data, 9)
    if compress == "zstd":  # Qt needs the content size in the frame header, which one-shot compress() writes
        return zstd.compress(data)
    return data
