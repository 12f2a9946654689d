"""AudioCaps v1 into the layout the audiocaps recipes read: ``ROOT/{train,val,test}.csv`` (the published CSVs) and
``ROOT/audio/{split}/{youtube_id}_{start_time}.wav`` (``audio_dir: ROOT/audio``), each clip the 10 s the captions
describe, mono at the corpus rate. Audio comes from YouTube through yt-dlp (FFmpeg cuts the section), or from a
folder the user already has (``--audio-from``). Clips that cannot be had are listed in ``ROOT/missing_clips.csv``."""

from __future__ import annotations

import csv
import io
import os
import shlex
import shutil
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from hf_audiocap.data.atomic import write_atomic
from hf_audiocap.data.prepare.card import (
    MISSING_REPORT,
    CorpusCard,
    check_same_corpus,
    clip_list_digest,
    version_label,
    write_card,
)
from hf_audiocap.data.prepare.downloads import (
    PrepareError,
    ensure_root,
    fetch,
    file_md5,
    file_url,
    human_size,
    read_md5_listing,
)

VERSION = "1"
SPLITS = ("train", "val", "test")
OFFICIAL_SOURCE = "https://raw.githubusercontent.com/cdjkim/audiocaps/master/dataset/{name}"
# The CSVs of github.com/cdjkim/audiocaps (dataset/, unchanged since the 2019 release; ../shared/data/PROVENANCE.csv).
MD5 = {
    "train.csv": "be909c34c4aa154f53acab960a1e998b",
    "val.csv": "29adf3a58afc406fa3a9bd785e20db51",
    "test.csv": "9775aec3f52037d12cacda132dd5316d",
}
CLIP_SECONDS = 10.0
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg")
# yt-dlp's messages for clips that no retry will bring back, by the reason reported for them.
PERMANENT = {
    "private": ("private video",),
    "removed": (
        "video unavailable",
        "has been removed",
        "account associated with this video has been terminated",
        "no longer available",
    ),
    "region-blocked": ("not available in your country", "blocked it in your country", "geo restrict"),
    "sign-in required": ("sign in to confirm", "confirm your age", "members-only"),
}
# After this many clips in a row fail for no reason YouTube gave (no network, yt-dlp broken), the run stops.
GIVE_UP_AFTER = 10


@dataclass
class Clip:
    split: str
    youtube_id: str
    start_time: str

    @property
    def name(self) -> str:
        return f"{self.youtube_id}_{self.start_time}"


def prepare_audiocaps(config) -> CorpusCard | None:
    root = Path(config.root)
    splits = config.splits or list(SPLITS)
    source = config.url or OFFICIAL_SOURCE
    md5s = read_md5_listing(config.checksums, config.timeout) if config.checksums else MD5
    version = version_label(VERSION, config.checksums)
    for split in splits:
        if f"{split}.csv" not in md5s:
            raise PrepareError(
                f"{split}.csv: no checksum for it in {config.checksums or 'the pinned AudioCaps listing'}"
            )
    if config.dry_run:
        return _print_plan(root, splits, source, config)
    ensure_root(root)
    check_same_corpus(root, "audiocaps", version, md5s)
    audio_from = Path(config.audio_from) if config.audio_from else None
    if audio_from is not None and not audio_from.is_dir():
        raise PrepareError(f"--audio-from {audio_from}: no such folder")
    if audio_from is None:
        _check_tools(config)

    # 1. Captions: the published CSVs, verified (a CSV of another release already in ROOT stops the run).
    for split in splits:
        path = root / f"{split}.csv"
        if path.is_file() and file_md5(path) != md5s[path.name]:
            raise PrepareError(
                f"{path}: its md5 is not AudioCaps {version}'s {md5s[path.name]}: this folder holds other captions; "
                "choose another --root (nothing was changed)"
            )
        fetch(file_url(source, path.name), path, md5s[path.name], progress=False, timeout=config.timeout,
              retries=config.retries, backoff=config.backoff)  # fmt: skip

    # 2. Audio: every clip not yet in ROOT/audio/{split}/, from the user's folder or from YouTube.
    clips = {split: read_clips(root / f"{split}.csv") for split in splits}
    todo = [c for split in splits for c in clips[split][: config.max_clips or None] if not _on_disk(root, c)]
    failures: dict[str, tuple[str, str]] = {}
    if todo:
        if audio_from is not None:
            failures = _copy_from(audio_from, root, todo)
        else:
            failures = _download_all(root, todo, config)
    elif (root / "corpus_card.json").is_file():
        print(f"audiocaps {version}: every clip of {', '.join(splits)} is in place in {root}; nothing to do")
        return None

    # 3. The missing-clips report and the card, over every split prepared so far (a reason recorded by an earlier
    #    run is kept for a clip this run did not try again).
    earlier = _read_report(root / MISSING_REPORT)
    listed = [s for s in SPLITS if s in splits or (root / f"{s}.csv").is_file()] + [
        s for s in splits if s not in SPLITS
    ]
    card = CorpusCard(
        corpus="audiocaps",
        version=version,
        checksums=config.checksums,
        source=(source if config.url else "https://github.com/cdjkim/audiocaps")
        + (f"; audio from {audio_from}" if audio_from else "; audio from YouTube via yt-dlp"),
        files={f"{s}.csv": {"md5": md5s[f"{s}.csv"], "url": file_url(source, f"{s}.csv")} for s in splits},
        notes=[
            f"Clips from {audio_from}, as they were there (linked or copied)."
            if audio_from
            else f"Clips: {CLIP_SECONDS:g} s from each start_time, mono, {config.sample_rate} Hz, 16-bit WAV."
        ],
    )
    rows = []
    for split in listed:
        split_clips = clips[split] if split in clips else read_clips(root / f"{split}.csv")
        present = [c.name for c in split_clips if _on_disk(root, c)]
        missing = [c for c in split_clips if not _on_disk(root, c)]
        for c in missing:
            fallback = earlier.get((split, c.name), ("not attempted", "beyond --max-clips"))
            rows.append([split, c.youtube_id, c.start_time, *failures.get(c.name, fallback)])
        card.splits[split] = {"clips": len(present), "missing": len(missing)}
        card.clip_list_sha256[split] = clip_list_digest(present)
    out = io.StringIO()
    csv.writer(out).writerows([["split", "youtube_id", "start_time", "reason", "detail"], *rows])
    write_atomic(root / MISSING_REPORT, out.getvalue())
    card.missing_report = MISSING_REPORT
    write_card(root, card)
    counts = ", ".join(f"{s} {n['clips']}/{n['clips'] + n['missing']}" for s, n in card.splits.items())
    print(
        f"audiocaps {version} in {root}: {counts} clips; {len(rows)} missing, listed with their reasons in "
        f"{root / MISSING_REPORT} (train with skip_missing: true, and report the clip-list digests in "
        f"{root / 'CORPUS_CARD.md'})"
    )
    return card


def _read_report(path: Path) -> dict[tuple[str, str], tuple[str, str]]:
    """{(split, clip name): (reason, detail)} of an earlier run's missing-clips report."""
    if not path.is_file():
        return {}
    with open(path, encoding="utf-8", newline="") as fh:
        return {
            (r["split"], f"{r['youtube_id']}_{r['start_time']}"): (r["reason"], r["detail"])
            for r in csv.DictReader(fh)
        }


def read_clips(csv_path: Path) -> list[Clip]:
    """The clips of an AudioCaps CSV in file order, one per (youtube_id, start_time), named as `load_audiocaps`
    names them."""
    from hf_audiocap.data.loaders.audiocaps import _norm_time

    clips: dict[tuple[str, str], Clip] = {}
    with open(csv_path, encoding="utf-8", newline="") as fh:
        for line, row in enumerate(csv.DictReader(fh), 2):
            yid = (row.get("youtube_id") or "").strip()
            if not yid or "/" in yid or "\\" in yid or yid in (".", ".."):
                raise PrepareError(f"{csv_path} line {line}: youtube_id {yid!r} is not a YouTube id")
            start = _norm_time((row.get("start_time") or "").strip(), f"{csv_path} line {line}")
            clips.setdefault((yid, start), Clip(csv_path.stem, yid, start))
    return list(clips.values())


def _on_disk(root: Path, clip: Clip) -> bool:
    folder = root / "audio" / clip.split
    return any((folder / f"{clip.name}{ext}").is_file() for ext in AUDIO_EXTENSIONS)


def _check_tools(config) -> None:
    if shutil.which(config.yt_dlp) is None:
        raise PrepareError(
            f"{config.yt_dlp}: not found; `pip install 'hf_audiocap[download]'` installs yt-dlp, or give "
            "--audio-from DIR, a folder of clips you have"
        )
    if shutil.which(config.ffmpeg) is None:
        raise PrepareError(f"{config.ffmpeg}: not found; yt-dlp needs FFmpeg to cut clips (apt install ffmpeg)")


def _copy_from(folder: Path, root: Path, todo: list[Clip]) -> dict[str, tuple[str, str]]:
    """Links (or, across file systems, copies) each clip found in the user's `folder` under the names
    `load_audiocaps` accepts; never moves or changes the user's files."""
    from hf_audiocap.data.loaders import AUDIOCAPS_TEMPLATES
    from hf_audiocap.data.loaders.audiocaps import _find_audio
    from hf_audiocap.data.loaders.files import _DirIndex

    index, failures = _DirIndex(), {}
    for clip in todo:
        search = [folder / d for d in (clip.split, "validation", "valid") if (folder / d).is_dir()] + [folder]
        fields = {
            "youtube_id": clip.youtube_id,
            "start_time": clip.start_time,
            "end_time": f"{float(clip.start_time) + CLIP_SECONDS:g}",
            "audiocap_id": "",
            "split": clip.split,
        }
        found = _find_audio(search, AUDIOCAPS_TEMPLATES, list(AUDIO_EXTENSIONS), fields, index)
        if found is None:
            failures[clip.name] = ("not in --audio-from", str(folder))
            continue
        dest = root / "audio" / clip.split / f"{clip.name}{Path(found).suffix}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(found, dest)
        except OSError:
            shutil.copyfile(found, dest)
    if failures:
        print(
            f"--audio-from {folder}: {len(failures)} of {len(todo)} clips are not there (listed in {MISSING_REPORT})"
        )
    return failures


def _download_all(root: Path, todo: list[Clip], config) -> dict[str, tuple[str, str]]:
    """Downloads `todo` with `config.jobs` yt-dlp processes at a time; returns {clip name: (reason, detail)} of the
    clips that could not be had. Stops (keeping every clip already written) when GIVE_UP_AFTER clips in a row fail
    for no reason YouTube gave: a dead network would otherwise be tried against every clip."""
    from tqdm.auto import tqdm

    staging = root / "audio" / ".downloading"
    staging.mkdir(parents=True, exist_ok=True)
    failures: dict[str, tuple[str, str]] = {}
    stop, lock, streak = threading.Event(), threading.Lock(), [0, ""]
    with (
        ThreadPoolExecutor(max_workers=config.jobs) as pool,
        tqdm(total=len(todo), unit="clip", desc="audiocaps", disable=not config.progress) as bar,
    ):
        futures = {pool.submit(_download_clip, root, staging, clip, config, stop): clip for clip in todo}
        for future in as_completed(futures):
            clip, result = futures[future], future.result()
            bar.update(1)
            if result is None:
                with lock:
                    streak[0] = 0
                continue
            failures[clip.name] = result
            with lock:
                streak[0] = streak[0] + 1 if result[0] in ("error", "timeout") else 0
                streak[1] = result[1]
                if streak[0] >= GIVE_UP_AFTER:
                    stop.set()
    shutil.rmtree(staging, ignore_errors=True)
    if stop.is_set():
        raise PrepareError(
            f"{config.yt_dlp}: {GIVE_UP_AFTER} clips in a row failed ({streak[1]}); is the network down? The clips "
            f"already in {root / 'audio'} are kept; rerun to continue"
        )
    return failures


def _download_clip(root: Path, staging: Path, clip: Clip, config, stop: threading.Event) -> tuple[str, str] | None:
    """One clip: yt-dlp fetches its section (FFmpeg cuts it), then it is decoded, made mono at the corpus rate,
    trimmed to 10 s and written whole into place. Returns None on success, else (reason, detail)."""
    work = staging / clip.name
    start = float(clip.start_time)
    command = [
        config.yt_dlp,
        "--quiet",
        "--no-warnings",
        "--no-playlist",
        "--no-progress",
        "--format",
        "bestaudio/best",
        "--download-sections",
        f"*{start:g}-{start + CLIP_SECONDS:g}",
        "--extract-audio",
        "--audio-format",
        "wav",
        "--ffmpeg-location",
        shutil.which(config.ffmpeg) or config.ffmpeg,
        "--output",
        str(work / "clip.%(ext)s"),
        *shlex.split(config.yt_dlp_args),
        config.youtube_url.format(youtube_id=clip.youtube_id),
    ]
    result = ("error", "not attempted")
    for attempt in range(config.retries + 1):
        if stop.is_set():
            return ("not attempted", "the run stopped")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        code, stderr = _run(command, config.clip_timeout)
        if code == 0:
            result = _finish_clip(work, root / "audio" / clip.split / f"{clip.name}.wav", config.sample_rate)
        else:
            result = ("timeout", f"no clip after {config.clip_timeout:g} s") if code is None else _reason(stderr)
        if result is None or result[0] in PERMANENT:
            break
        if attempt < config.retries:
            time.sleep(config.backoff * 2**attempt)
    shutil.rmtree(work, ignore_errors=True)
    return result


def _run(command: list[str], timeout: float) -> tuple[int | None, str]:
    """Runs `command` in its own process group, so that on timeout yt-dlp AND the FFmpeg it started are killed;
    returns (exit code, stderr), the code None after a timeout."""
    proc = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, errors="replace", start_new_session=True
    )
    try:
        _, stderr = proc.communicate(timeout=timeout)
        return proc.returncode, stderr
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return None, ""


def _reason(stderr: str) -> tuple[str, str]:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    detail = next((line for line in reversed(lines) if "ERROR" in line), lines[-1] if lines else "no message")
    lowered = detail.lower()
    for reason, phrases in PERMANENT.items():
        if any(p in lowered for p in phrases):
            return reason, detail[:300]
    return "error", detail[:300]


def _finish_clip(work: Path, dest: Path, sample_rate: int) -> tuple[str, str] | None:
    import numpy as np
    import soundfile as sf

    from hf_audiocap.data.audio import load_audio

    # the converted .wav first: anything else is an intermediate yt-dlp left behind
    files = sorted((p for p in work.iterdir() if p.is_file()), key=lambda p: p.suffix != ".wav")
    if not files:
        return ("error", "yt-dlp exited without writing a file")
    try:
        wav = load_audio(str(files[0]), sampling_rate=sample_rate)[: int(CLIP_SECONDS * sample_rate)]
    except Exception as err:  # any decoder failure is this clip's, reported, not the run's
        return ("unreadable", str(err)[:300])
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = work / "final.wav"
    sf.write(tmp, np.asarray(wav, dtype=np.float32), sample_rate, subtype="PCM_16", format="WAV")
    os.replace(tmp, dest)
    return None


def _print_plan(root: Path, splits, source: str, config) -> None:
    origin = f"from {config.audio_from}" if config.audio_from else "from YouTube"
    clip_size = human_size(CLIP_SECONDS * config.sample_rate * 2)
    for split in splits:
        csv_path = root / f"{split}.csv"
        where = root / "audio" / split
        if not csv_path.is_file():
            print(
                f"{split}.csv from {file_url(source, f'{split}.csv')} to {csv_path}, then its clips {origin} into {where}"
            )
            continue
        clips = read_clips(csv_path)[: config.max_clips or None]
        todo = sum(not _on_disk(root, c) for c in clips)
        print(f"{split}: {todo} of {len(clips)} clips to fetch {origin} into {where} ({clip_size} each)")
