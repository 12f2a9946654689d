"""From the packages to the recording bank: every recording the class table names, decoded, downmixed, resampled to
the corpus rate, trimmed of leading and trailing silence, and written as ``recordings/<class>/<id>.wav``; then each
class's recordings split between train, validation and test.

A package's recordings are written with a record of each (``recordings/<package>.json``) once all of them are in
place, so an interrupted run redoes only the package it was reading. A recording that does not decode is skipped and
listed, not fatal; two recordings with the same samples keep the first.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import wave
from pathlib import Path

import numpy as np

from hf_audiocap.data.atomic import write_atomic
from hf_audiocap.data.audio import AudioDecodeError, load_audio
from hf_audiocap.data.prepare.debian import deb_members, opensfx_entries, qt_rcc_entries
from hf_audiocap.data.prepare.downloads import PrepareError
from hf_audiocap.data.realsounds.classes import MIN_RECORDINGS, RECORDINGS
from hf_audiocap.data.realsounds.packages import DebianPackage

SAMPLE_RATE = 16000
MAX_SECONDS = 15.0  # longer recordings keep their first 15 s: scenes use at most 10 s of one
SPLIT_SHARES = {"test": 0.2, "validation": 0.15}
# A class holds out validation recordings only when at least this many remain for training: a class of 4-5 recordings
# gains more from one more training recording than validation gains from it (benchmarks/realsounds_probe.py: a
# linear probe on frozen Whisper-base features names 0.43 of the test recordings when a validation recording is held
# out of every class, 0.51 under this rule).
MIN_TRAIN = 4


def wanted_by_package(table: dict[str, tuple[str, ...]] | None = None) -> dict[str, list[tuple[str, str, str | None]]]:
    """package -> [(class, path in the package, entry in a container or None)] from ``table`` (the class table's
    recordings by default)."""
    out: dict[str, list] = {}
    for cls, names in (RECORDINGS if table is None else table).items():
        for name in names:
            package, rest = name.split(":", 1)
            path, _, entry = rest.partition("#")
            out.setdefault(package, []).append((cls, path, entry or None))
    return out


def recording_id(cls: str, package: str, path: str, entry: str | None) -> str:
    stem = entry if entry and not entry.isdigit() else Path(path).name + (f"-{entry}" if entry else "")
    stem = re.sub(r"[^A-Za-z0-9]+", "_", Path(stem).stem if not (entry or "").isdigit() else stem).strip("_")
    return f"{cls}-{package.split('-')[0]}-{stem}".lower()


def extract_package(package: DebianPackage, deb: Path, root: Path, table: dict | None = None) -> list[dict]:
    """Writes the recordings of ``package`` (from its verified ``deb``) under ``root/recordings``; returns one record
    per recording ``table`` (default: the class table) names: written, or skipped with its reason."""
    record_path = root / "recordings" / f"{package.name}.json"
    if record_path.is_file():
        return json.loads(record_path.read_text(encoding="utf-8"))
    wanted = wanted_by_package(table).get(package.name, [])
    paths = {path for _, path, _ in wanted}
    files = dict(deb_members(deb, select=paths.__contains__))
    records, seen = [], set()
    for cls, path, entry in wanted:
        rid = recording_id(cls, package.name, path, entry)
        record = {"id": rid, "class": cls, "package": package.name, "version": package.version,
                  "deb_sha256": package.sha256, "path": path + (f"#{entry}" if entry else ""), "licence": package.licence}  # fmt: skip
        try:
            data, title = _member(files, deb, path, entry)
            if title:
                record["title"], licence = _opensfx_title(title)
                record["licence"] = licence or record["licence"]
            label = f"{package.name}:{record['path']}"
            wav = _clean(load_audio(data, SAMPLE_RATE, name=label), label)
        except (AudioDecodeError, PrepareError) as err:
            records.append({**record, "skipped": str(err)})
            continue
        digest = hashlib.sha256(wav.tobytes()).hexdigest()
        if digest in seen:
            records.append({**record, "skipped": "the same samples as an earlier recording"})
            continue
        seen.add(digest)
        out = root / "recordings" / cls / f"{rid}.wav"
        out.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(out, _wav_bytes(wav))
        records.append({**record, "file": str(out.relative_to(root)), "duration": round(len(wav) / SAMPLE_RATE, 3),
                        "samples_sha256": digest})  # fmt: skip
    write_atomic(record_path, json.dumps(records, indent=1) + "\n")
    return records


def _member(files: dict[str, bytes], deb: Path, path: str, entry: str | None) -> tuple[bytes, str | None]:
    if path not in files:
        raise PrepareError(f"{deb.name}: no file {path}")
    if entry is None:
        return files[path], None
    if path.endswith(".cat"):
        entries = opensfx_entries(files[path], path)
        index = int(entry)
        if index >= len(entries):
            raise PrepareError(f"{deb.name}:{path}: no entry {index} (it has {len(entries)})")
        title, data = entries[index]
        return data, title
    found = [data for name, data in qt_rcc_entries(files[path], path) if name == entry or name.endswith("/" + entry)]
    if not found:
        raise PrepareError(f"{deb.name}:{path}: no entry {entry}")
    return found[0], None


def _opensfx_title(title: str) -> tuple[str, str | None]:
    """OpenSFX names each sound '"Title". Original ... License: NAME.': the title, and that sound's licence."""
    match = re.search(r"License:\s*(.+?)\.?\s*$", title)
    return title.split('"')[1] if title.count('"') >= 2 else title, match.group(1) if match else None


def _clean(wav: np.ndarray, label: str) -> np.ndarray:
    """Leading and trailing silence (40 dB under the peak) trimmed, at most MAX_SECONDS, peak-normalised."""
    import librosa

    if len(wav) < SAMPLE_RATE // 10:
        raise AudioDecodeError(f"{label}: shorter than 0.1 s ({len(wav)} samples)")
    trimmed, _ = librosa.effects.trim(wav, top_db=40)
    trimmed = trimmed[: int(MAX_SECONDS * SAMPLE_RATE)]
    peak = float(np.max(np.abs(trimmed))) if trimmed.size else 0.0
    if trimmed.size < SAMPLE_RATE // 10 or peak < 1e-4:
        raise AudioDecodeError(f"{label}: silent")
    return (trimmed / peak * 0.9).astype(np.float32)


def _wav_bytes(wav: np.ndarray) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(np.clip(np.round(wav * 32767), -32768, 32767).astype("<i2").tobytes())
    return buf.getvalue()


def split_recordings(records: list[dict], seed: int = 0) -> tuple[dict[str, dict[str, list[dict]]], list[str]]:
    """``{class: {split: [record]}}`` over the classes with at least MIN_RECORDINGS written recordings, and the
    classes left out. Per class, recordings are ordered by a hash of (seed, id), then the first 20% (at least one)
    go to test, the next 15% (at least one) to validation when MIN_TRAIN recordings remain for train (none
    otherwise), and the rest to train: deterministic, and no recording is in two splits."""
    by_class: dict[str, list[dict]] = {}
    for r in records:
        if "file" in r:
            by_class.setdefault(r["class"], []).append(r)
    out, dropped = {}, []
    for cls in RECORDINGS:
        recs = sorted(by_class.get(cls, []), key=lambda r: hashlib.sha256(f"{seed}:{r['id']}".encode()).hexdigest())
        if len(recs) < MIN_RECORDINGS:
            dropped.append(f"{cls} ({len(recs)} recordings)")
            continue
        n_test = max(1, round(SPLIT_SHARES["test"] * len(recs)))
        n_val = max(1, round(SPLIT_SHARES["validation"] * len(recs)))
        if len(recs) - n_test - n_val < MIN_TRAIN:
            n_val = 0
        out[cls] = {
            "test": recs[:n_test],
            "validation": recs[n_test : n_test + n_val],
            "train": recs[n_test + n_val :],
        }
    if out and not any(splits["validation"] for splits in out.values()):
        raise PrepareError(f"realsounds: no class has the {MIN_TRAIN + 2} recordings a validation split needs")
    return out, dropped
