"""A miniature Zenodo-like record on a local HTTP server (with Range requests), and a stand-in yt-dlp, for the
`hf-audiocap prepare` tests: everything the real corpora's servers do that prepare relies on, offline."""

from __future__ import annotations

import csv
import hashlib
import io
import re
import socket
import struct
import sys
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

# Clotho split -> the SynthCaps split whose clips and captions stand in for it
CLOTHO_FROM_SYNTH = {"development": "train", "validation": "validation", "evaluation": "test"}


class RecordServer(ThreadingHTTPServer):
    """Serves `files` ({name: bytes}) at ``/records/1/files/<name>``, answering Range requests with 206 unless
    `ranges` is False. `drop_after[name] = n` sends the first n bytes of the next GET of `name` and then drops the
    connection. Every request is logged as (method, name, Range header)."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.drop_after: dict[str, int] = {}
        self.ranges = True
        self.log: list[tuple[str, str, str | None]] = []
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/records/1/files/{{name}}"

    @property
    def checksums_url(self) -> str:
        return self.url.format(name="md5sums.txt")

    def gets(self) -> list[tuple[str, str | None]]:
        return [(name, rng) for method, name, rng in self.log if method == "GET"]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_HEAD(self):
        self._serve(head=True)

    def do_GET(self):
        self._serve(head=False)

    def _serve(self, head: bool) -> None:
        server: RecordServer = self.server
        name = unquote(urlparse(self.path).path).rsplit("/", 1)[-1]
        rng = self.headers.get("Range")
        server.log.append((self.command, name, rng))
        data = server.files.get(name)
        if data is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start = 0
        if rng and server.ranges:
            start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if head:
            return
        cut = server.drop_after.pop(name, None) if not head else None
        if cut is None:
            self.wfile.write(body)
            return
        self.wfile.write(body[:cut])
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    def log_message(self, *args):
        pass


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def listing(files: dict[str, bytes]) -> bytes:
    return "".join(f"{md5(data)}  {name}\n" for name, data in files.items() if name != "md5sums.txt").encode()


def make_7z(members: dict[str, bytes]) -> bytes:
    import py7zr

    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w") as z:
        z.set_encoded_header_mode(False)  # a plain header, so that tests can rewrite a member's name
        for arcname, data in members.items():
            z.writestr(data, arcname)
    return buf.getvalue()


def rename_member(archive: bytes, old: str, new: str) -> bytes:
    """`archive` with member `old` renamed `new` (same length), the header CRCs recomputed: how a hostile archive with
    a member py7zr itself would refuse to write (``../x``) is made."""
    raw = bytearray(archive)
    o, n = old.encode("utf-16-le"), new.encode("utf-16-le")
    assert len(o) == len(n) and raw.count(o) == 1
    i = raw.index(o)
    raw[i : i + len(o)] = n
    offset, size = struct.unpack_from("<QQ", raw, 12)
    struct.pack_into("<I", raw, 28, zlib.crc32(raw[32 + offset : 32 + offset + size]))
    struct.pack_into("<I", raw, 8, zlib.crc32(bytes(raw[12:32])))
    return bytes(raw)


def clotho_record(synth: Path) -> dict[str, bytes]:
    """A miniature Clotho v2.1 record from a SynthCaps folder: caption CSVs, one 7z archive per split whose members
    sit in a folder named for the split (as in the real archives), and the MD5 listing."""
    files = {}
    for split, synth_split in CLOTHO_FROM_SYNTH.items():
        files[f"clotho_captions_{split}.csv"] = (synth / f"clotho_captions_{synth_split}.csv").read_bytes()
        members = {f"{split}/{p.name}": p.read_bytes() for p in sorted((synth / synth_split).glob("*.wav"))}
        files[f"clotho_audio_{split}.7z"] = make_7z(members)
    files["md5sums.txt"] = listing(files)
    return files


def wav_bytes(seconds: float, rate: int = 44100, channels: int = 2) -> bytes:
    import numpy as np
    import soundfile as sf

    t = np.arange(int(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * 440 * t)
    buf = io.BytesIO()
    sf.write(buf, np.stack([tone] * channels, axis=1), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def audiocaps_csv(clips: dict[str, list[str]]) -> bytes:
    """An AudioCaps CSV: {youtube_id: captions}, every clip starting at 30 s."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["audiocap_id", "youtube_id", "start_time", "caption"])
    n = 100
    for yid, captions in clips.items():
        for caption in captions:
            n += 1
            writer.writerow([n, yid, 30, caption])
    return out.getvalue().encode()


# The stand-in yt-dlp: what it does depends on the video id (its last argument, after ?v=). It logs each call.
STAND_IN_YT_DLP = r"""#!{python}
import os, sys, time
args = sys.argv[1:]
video = args[-1].rsplit("v=", 1)[-1]
out = args[args.index("--output") + 1]
log = os.path.join(os.path.dirname(os.path.abspath(__file__)), "calls.log")
with open(log, "a") as fh:
    fh.write(video + " " + args[args.index("--download-sections") + 1] + "\n")
if video.startswith("private"):
    sys.exit(print("ERROR: [youtube] " + video + ": Private video. Sign in if you've been granted access", file=sys.stderr) or 1)
if video.startswith("gone"):
    sys.exit(print("ERROR: [youtube] " + video + ": Video unavailable. This video has been removed by the uploader", file=sys.stderr) or 1)
if video.startswith("hang"):
    time.sleep(60)
if video.startswith("flaky"):
    marker = os.path.join(os.path.dirname(log), video + ".tried")
    if not os.path.exists(marker):
        open(marker, "w").close()
        sys.exit(print("ERROR: unable to download video data: HTTP Error 503: Service Unavailable", file=sys.stderr) or 1)
with open(os.path.join(os.path.dirname(log), "clip.wav"), "rb") as src, open(out.replace("%(ext)s", "wav"), "wb") as dst:
    dst.write(src.read())
"""


def install_stand_in_yt_dlp(folder: Path) -> tuple[Path, Path]:
    """(yt-dlp, ffmpeg) stand-ins in `folder`: the yt-dlp writes a 12 s 44.1 kHz stereo clip (prepare must cut it to
    10 s mono at the corpus rate), fails, or hangs, by video id; the ffmpeg is never run (yt-dlp would run it)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "clip.wav").write_bytes(wav_bytes(12.0))
    yt_dlp = folder / "yt-dlp"
    yt_dlp.write_text(STAND_IN_YT_DLP.replace("{python}", sys.executable))
    ffmpeg = folder / "ffmpeg"
    ffmpeg.write_text("#!/bin/sh\nexit 1\n")
    for exe in (yt_dlp, ffmpeg):
        exe.chmod(0o755)
    return yt_dlp, ffmpeg


def yt_dlp_calls(folder: Path) -> list[str]:
    log = folder / "calls.log"
    return log.read_text().split("\n")[:-1] if log.exists() else []


def make_zip(members: dict[str, bytes]) -> bytes:
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for arcname, data in members.items():
            z.writestr(arcname, data)
    return buf.getvalue()


MACS_CLIPS = {
    "airport-lisbon-1000-40000-a.wav": ["people talk in a hall", "an announcement echoes"],
    "park-helsinki-241-7162-a.wav": ["birds sing", "wind blows", "a child shouts", "leaves rustle", "a dog barks"],
    "tram-vienna-285-8639-a.wav": ["a tram rings its bell", "a tram moves", "people chat"],
}


def macs_record() -> dict[str, bytes]:
    """A miniature MACS: its captions YAML (2, 5 and 3 captions) and the eight TAU archive names prepare fetches, the
    MACS clips in the first two (beside a TAU clip MACS does not caption), the rest holding only other clips."""
    import yaml

    from hf_audiocap.data.prepare.macs import AUDIO_MD5

    files = {
        "MACS.yaml": yaml.safe_dump(
            {
                "files": [
                    {"filename": n, "annotations": [{"sentence": c, "annotator_id": 1, "tags": []} for c in caps]}
                    for n, caps in MACS_CLIPS.items()
                ]
            }  # fmt: skip
        ).encode(),
        "MACS_competence.csv": b"annotator_id\tcompetence\n1\t0.9\n",
        "LICENSE.txt": b"miniature\n",
    }
    folder = "TAU-urban-acoustic-scenes-2019-development/audio/"
    names = list(MACS_CLIPS)
    for i, archive in enumerate(AUDIO_MD5):
        members = {f"{folder}other-{i}.wav": wav_bytes(0.5, 16000, 1)}
        if i == 0:
            members |= {folder + names[0]: wav_bytes(1.0, 16000, 1), folder + names[1]: wav_bytes(1.2, 16000, 1)}
        if i == 1:
            members[folder + names[2]] = wav_bytes(0.8, 16000, 1)
        files[archive] = make_zip(members)
    files["md5sums.txt"] = listing(files)
    return files


def flac_bytes(seconds: float, seed: int) -> bytes:
    """Noise, which FLAC cannot shrink: archives of a few of these are big enough to be split in parts."""
    import numpy as np
    import soundfile as sf

    noise = np.random.default_rng(seed).uniform(-0.5, 0.5, int(seconds * 16000))
    buf = io.BytesIO()
    sf.write(buf, noise, 16000, format="FLAC")
    return buf.getvalue()


def wavcaps_record(tmp: Path) -> dict[str, bytes]:
    """A miniature WavCaps: a captions JSON per source (one clip of AudioSet_SL and one of FreeSound on the overlap
    list), the overlap list, single zips for three sources (BBC's lacking one clip) and FreeSound's split in parts by
    `zip -s 100k` (Info-ZIP 3.0 corrupts files across 64k parts), as the Hub's big sources are."""
    import json
    import shutil
    import subprocess

    clips = {
        "AudioSet_SL": {"Yabcdefghijk.wav": "a man talks", "YvfY_TJq7n_U.wav": "ducks quack"},
        "BBC_Sound_Effects": {"NHU05": "a lion roars", "NHU06": "the sea"},
        "FreeSound": {"1001": "rain falls", "1002": "a bell rings", "1003": "wind blows", "327991": "a door"},
        "SoundBible": {"2219": "an airplane lands"},
    }
    names = {"AudioSet_SL": "as_final.json", "BBC_Sound_Effects": "bbc_final.json", "FreeSound": "fsd_final.json",
             "SoundBible": "sb_final.json"}  # fmt: skip
    files = {}
    for source, caps in clips.items():
        rows = [{"id": i, "caption": c, "duration": 3.0} for i, c in caps.items()]
        files[names[source]] = json.dumps(rows if source == "SoundBible" else {"data": rows}).encode()
    files["blacklist_exclude_test_ac.json"] = json.dumps(
        {"AudioSet": ["YvfY_TJq7n_U.wav"], "FreeSound": ["327991"]}
    ).encode()
    audio = {source: {i.removesuffix(".wav") + ".flac": flac_bytes(3.0, n) for n, i in enumerate(caps)}
             for source, caps in clips.items()}  # fmt: skip
    audio["BBC_Sound_Effects"].pop("NHU06.flac")
    for source in ("AudioSet_SL", "BBC_Sound_Effects", "SoundBible"):
        files[f"{source}.zip"] = make_zip({f"data/waveforms/{source}_flac/{n}": b for n, b in audio[source].items()})
    folder = tmp / "FreeSound_flac"
    folder.mkdir(parents=True)
    for name, data in audio["FreeSound"].items():
        (folder / name).write_bytes(data)
    subprocess.run([shutil.which("zip"), "-q", "-r", "-s", "100k", str(tmp / "FreeSound.zip"), "FreeSound_flac"],
                   cwd=tmp, check=True)  # fmt: skip
    for part in sorted(tmp.glob("FreeSound.z*")):
        files[part.name] = part.read_bytes()
    return files
