"""The standard-library readers of Debian packages, OpenTTD ``.cat`` and Qt ``.rcc`` files, on fixtures the writers in
realsounds_helpers build in the real layouts (checked once against the real packages, dpkg-deb and Qt)."""

from __future__ import annotations

import io
import lzma

import numpy as np
import pytest
import soundfile as sf
from realsounds_helpers import make_ar, make_deb, make_opensfx_cat, make_qt_rcc, make_tar, ogg_bytes, wav_bytes

from hf_audiocap.data.prepare import debian
from hf_audiocap.data.prepare.debian import deb_members, opensfx_entries, qt_rcc_entries
from hf_audiocap.data.prepare.downloads import PrepareError

SR = 16000
FILES = {
    "usr/share/games/openttd/baseset/opensfx/opensfx.cat": b"cat" * 7,
    "usr/share/doc/pkg/copyright": b"free\n",
    "usr/share/sounds/odd.bin": b"x",  # an odd size, so the tar pads
}


def _tone(freq: float, seconds: float = 0.2) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _write(tmp_path, data: bytes, name: str = "pkg_1.0-1_all.deb"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _assert_one_line(err: pytest.ExceptionInfo, name: str) -> None:
    message = str(err.value)
    assert name in message and "\n" not in message, message


# --- .deb ---


@pytest.mark.parametrize("compression", ["xz", "gz", "zst", "none"])
def test_deb_round_trip(tmp_path, compression):
    deb = _write(tmp_path, make_deb(FILES, package="opensfx", version="1.0.3-2", compression=compression))
    assert dict(deb_members(deb)) == FILES


def test_deb_select_reads_only_the_chosen_files(tmp_path):
    deb = _write(tmp_path, make_deb(FILES))
    asked = []

    def select(path: str) -> bool:
        asked.append(path)
        return path.endswith(".cat")

    assert list(deb_members(deb, select=select)) == [
        ("usr/share/games/openttd/baseset/opensfx/opensfx.cat", b"cat" * 7)
    ]
    assert sorted(asked) == sorted(FILES)  # regular files only, without './'; folders are not offered


def test_deb_gnu_ar_names_and_odd_members(tmp_path):
    """GNU ar ends names with '/'; a member of odd size is padded to an even offset."""
    data = make_ar(
        [("debian-binary", b"2.0\n"), ("_extra", b"odd"), ("data.tar.xz", lzma.compress(make_tar(FILES)))],
        gnu_names=True,
    )
    assert dict(deb_members(_write(tmp_path, data))) == FILES


def test_deb_zst_without_zstd_says_what_to_install(tmp_path, monkeypatch):
    deb = _write(tmp_path, make_deb(FILES, compression="zst"))
    monkeypatch.setattr(debian, "zstd", None)
    with pytest.raises(PrepareError, match="backports.zstd") as err:
        list(deb_members(deb))
    _assert_one_line(err, str(deb))


def _corrupt_xz() -> bytes:
    good = lzma.compress(make_tar(FILES))
    return good[:40] + bytes(b ^ 0xFF for b in good[40:80]) + good[80:]


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"PK\x03\x04 a zip, not a package", "no ar magic"),
        (make_deb(FILES)[:30], "truncated or bad ar header"),
        (make_deb(FILES)[:-100], "truncated"),
        (make_ar([("debian-binary", b"2.0\n"), ("control.tar.xz", b"")]), "no data.tar member"),
        (make_ar([("debian-binary", b"2.0\n"), ("data.tar.xz", _corrupt_xz())]), "data.tar.xz is corrupt"),
        (make_ar([("data.tar.xz", lzma.compress(make_tar(FILES))[:-30])]), "data.tar.xz is corrupt"),
        (make_ar([("data.tar.gz", b"\x1f\x8b not really gzip")]), "data.tar.gz is corrupt"),
        (make_ar([("data.tar", b"not a tar" * 100)]), "data.tar is corrupt"),
        (make_ar([("data.tar.lz4", b"")]), "unknown compression"),
    ],
    ids=["not-ar", "cut-header", "cut-member", "no-data-tar", "corrupt-xz", "cut-xz", "corrupt-gz", "bad-tar", "lz4"],
)
def test_deb_structural_problems_are_one_line_errors(tmp_path, data, match):
    deb = _write(tmp_path, data)
    with pytest.raises(PrepareError, match=match) as err:
        list(deb_members(deb))
    _assert_one_line(err, str(deb))


# --- OpenTTD .cat ---


def _cat_entries() -> list[tuple[str, bytes]]:
    return [
        ('"Cow". Original "moo.wav" by "Someone". License: Creative Commons Zero 1.0.', wav_bytes(_tone(220), SR)),
        ("plain name", wav_bytes(_tone(330, 0.05), SR)),
        ('"Unused/Nothing". Trivial empty sound file.', wav_bytes(np.zeros(0, np.float32), SR)),
    ]


def test_opensfx_round_trip_in_table_order():
    entries = _cat_entries()
    got = opensfx_entries(make_opensfx_cat(entries), "opensfx.cat")
    assert got == entries
    samples, sr = sf.read(io.BytesIO(got[0][1]), dtype="float32")
    assert sr == SR and np.allclose(samples, _tone(220), atol=1e-4)


@pytest.mark.parametrize(
    ("cut", "match"),
    [
        (lambda cat: cat[:5], "only 5 bytes"),
        (lambda cat: b"\xff\xff\xff\x7f" + cat[4:], "does not fit"),
        (lambda cat: cat[:-40], "entry 2 .* lies past the end"),
        (lambda cat: cat[:8] + (10**6).to_bytes(4, "little") + cat[12:], "entry 1 .* lies past the end"),
        (lambda cat: cat.replace(b"RIFF", b"RIFX", 1), "entry 0 is not a RIFF WAV"),
    ],
    ids=["tiny", "huge-table", "cut", "offset-past-end", "not-riff"],
)
def test_opensfx_bad_files_name_the_file_and_entry(cut, match):
    with pytest.raises(PrepareError, match=match) as err:
        opensfx_entries(cut(make_opensfx_cat(_cat_entries())), "sfx/opensfx.cat")
    _assert_one_line(err, "sfx/opensfx.cat")


# --- Qt .rcc ---


def _rcc_files() -> dict[str, bytes]:
    animals = "gcompris/src/activities/explore_farm_animals/resource/animals"
    return {
        f"{animals}/cow.ogg": ogg_bytes(_tone(200), SR),
        f"{animals}/dog.wav": wav_bytes(_tone(400), SR),
        "gcompris/src/core/resource/sounds/bleep.wav": wav_bytes(_tone(800, 0.05), SR),
        "gcompris/src/core/qmldir": b"module core\n" * 20,
        "top.txt": "été".encode(),
    }


@pytest.mark.parametrize(("compress", "version"), [("zlib", 3), ("zstd", 3), ("none", 3), ("zlib", 2), ("none", 1)])
def test_qt_rcc_round_trip(compress, version):
    files = _rcc_files()
    got = qt_rcc_entries(make_qt_rcc(files, compress=compress, version=version), "animals.rcc")
    assert dict(got) == files and len(got) == len(files)
    for path, data in got:
        if path.endswith((".ogg", ".wav")):
            samples, sr = sf.read(io.BytesIO(data))
            assert sr == SR and len(samples) > 0


def test_qt_rcc_zstd_without_zstd_names_the_entry(monkeypatch):
    rcc = make_qt_rcc({"a/b.ogg": b"abc"}, compress="zstd")
    monkeypatch.setattr(debian, "zstd", None)
    with pytest.raises(PrepareError, match="'a/b.ogg' needs zstd") as err:
        qt_rcc_entries(rcc, "x.rcc")
    _assert_one_line(err, "x.rcc")


def _set_u32(data: bytes, at: int, value: int) -> bytes:
    return data[:at] + value.to_bytes(4, "big") + data[at + 4 :]


@pytest.mark.parametrize(
    ("spoil", "match"),
    [
        (lambda rcc: b"QRES" + rcc[4:], "no qres magic"),
        (lambda rcc: _set_u32(rcc, 4, 9), "unsupported Qt resource version 9"),
        (lambda rcc: _set_u32(rcc, 8, len(rcc) + 5), "offsets past the end"),
        (lambda rcc: _set_u32(rcc, 12, len(rcc) - 30), "lies past the end"),
        (lambda rcc: rcc[:32] + b"\x00" * 4 + rcc[36:], "does not decompress"),
    ],
    ids=["magic", "version", "tree-offset", "data-offset", "corrupt-zlib"],
)
def test_qt_rcc_bad_files_name_the_file(spoil, match):
    with pytest.raises(PrepareError, match=match) as err:
        qt_rcc_entries(spoil(make_qt_rcc(_rcc_files())), "rcc/animals.rcc")
    _assert_one_line(err, "rcc/animals.rcc")
