"""WavCaps (cvssp/WavCaps on the Hugging Face Hub, at a pinned revision): its ChatGPT-written captions (one per clip)
from four sources, AudioSet_SL, BBC_Sound_Effects, FreeSound and SoundBible, and their FLAC audio from the Hub's zip
archives (a source's archive may be split in parts, ``X.z01 .. X.zip``, merged with the system ``zip -s 0`` before
extraction), or from a folder of your own (``--audio-from``).

By default the clips that overlap the Clotho and AudioCaps evaluation sets are left out: the list WavCaps' authors
publish (``blacklist_exclude_test_ac.json``: AudioSet ids of AudioCaps' val/test clips, FreeSound ids of Clotho's
evaluation clips), fetched from their repository; ``--keep-eval-overlap`` keeps them.

Written as a manifest `load_manifest` reads: ``ROOT/wavcaps.csv`` (``id, audio, caption, source``; one split,
``train``) with the audio in ``ROOT/audio/{source}/``. The Hub publishes no MD5s for these files: the card records
each one's sha256 instead, and ``--checksums`` verifies them against a listing of your own."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
from pathlib import Path

from hf_audiocap.data.atomic import write_atomic
from hf_audiocap.data.prepare.archives import extract
from hf_audiocap.data.prepare.card import (
    MISSING_REPORT,
    CorpusCard,
    check_same_corpus,
    clip_list_digest,
    version_label,
    write_card,
)
from hf_audiocap.data.prepare.downloads import (
    PlanSizes,
    PrepareError,
    check_free_space,
    ensure_root,
    fetch,
    file_sha256,
    file_url,
    human_size,
    read_md5_listing,
    remote_exists,
    remote_size,
)

REVISION = "85a0c21e26fa7696a5a74ce54fada99a9b43c6de"
OFFICIAL_SOURCE = f"https://huggingface.co/datasets/cvssp/WavCaps/resolve/{REVISION}/{{name}}"
OVERLAP_URL = "https://raw.githubusercontent.com/XinhaoMei/WavCaps/master/data/json_files/blacklist/blacklist_exclude_test_ac.json"
CAPTION_FILES = {
    "AudioSet_SL": "as_final.json",
    "BBC_Sound_Effects": "bbc_final.json",
    "FreeSound": "fsd_final.json",
    "SoundBible": "sb_final.json",
}
# Which key of the overlap list names each source's clips.
OVERLAP_KEYS = {"AudioSet_SL": "AudioSet", "FreeSound": "FreeSound"}
MANIFEST = "wavcaps.csv"  # named for the corpus, as export() expects
MAX_PARTS = 99  # zip -s names parts .z01 .. .z99


def audio_name(source: str, clip_id: str) -> str:
    """The archive's file name of a clip (AudioSet_SL ids carry a .wav the FLAC files do not)."""
    return clip_id.removesuffix(".wav") + ".flac"


def prepare_wavcaps(config) -> CorpusCard | None:
    root = Path(config.root)
    sources = list(config.splits or CAPTION_FILES)
    unknown = [s for s in sources if s not in CAPTION_FILES]
    if unknown:
        raise PrepareError(f"wavcaps has no source {unknown[0]!r}; its sources: {', '.join(CAPTION_FILES)}")
    md5s = read_md5_listing(config.checksums, config.timeout) if config.checksums else {}
    source_url = config.url or OFFICIAL_SOURCE
    version = version_label(f"cvssp/WavCaps@{REVISION[:12]}", config.checksums)

    def get(name: str, dest: Path, progress: bool = False) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fetch(file_url(source_url, name), dest, md5s.get(name), progress=progress, timeout=config.timeout,
              retries=config.retries, backoff=config.backoff)  # fmt: skip

    if config.dry_run:
        size_of = PlanSizes(config.timeout)
        for source in sources:
            name = f"json_files/{source}/{CAPTION_FILES[source]}"
            size = size_of(file_url(source_url, name))
            print(f"{name}  {human_size(size)}\n    from {file_url(source_url, name)}\n    to   {root / name}")
            if not config.audio_from:
                print(f"Zip_files/{source}/{source}.zip (and its parts)\n    to   {root / 'downloads' / source}")
        return None
    ensure_root(root)
    check_same_corpus(root, "wavcaps", version, md5s)

    # 1. Captions, then the published overlap with the Clotho/AudioCaps evaluation clips, left out.
    captions: dict[str, dict[str, str]] = {}
    for source in sources:
        path = root / "json_files" / source / CAPTION_FILES[source]
        get(f"json_files/{source}/{CAPTION_FILES[source]}", path)
        captions[source] = read_captions(path)
    for source, name in CAPTION_FILES.items():  # sources an earlier run prepared stay in the manifest
        if source not in captions and (root / "json_files" / source / name).is_file():
            captions[source] = read_captions(root / "json_files" / source / name)
    removed = 0
    if not config.keep_eval_overlap:
        overlap_path = root / "json_files" / "blacklist_exclude_test_ac.json"
        overlap_path.parent.mkdir(parents=True, exist_ok=True)
        fetch(config.overlap_url, overlap_path, md5s.get(overlap_path.name), progress=False, timeout=config.timeout,
              retries=config.retries, backoff=config.backoff)  # fmt: skip
        overlap = read_overlap(overlap_path)
        for source, key in OVERLAP_KEYS.items():
            if source in captions:
                excluded = set(overlap.get(key, ())) & set(captions[source])
                removed += len(excluded)
                captions[source] = {i: c for i, c in captions[source].items() if i not in excluded}
        print(
            f"wavcaps: {removed} clips overlapping the Clotho/AudioCaps evaluation sets left out ({config.overlap_url})"
        )

    # 2. Audio for the clips kept, source by source.
    failures: dict[str, str] = {}
    for source in sources:
        audio = root / "audio" / source
        wanted = {audio_name(source, i) for i in captions[source]}
        lacking = {n for n in wanted if not (audio / n).is_file()}
        if not lacking:
            continue
        if config.audio_from:
            _link_from(Path(config.audio_from), source, audio, lacking)
        else:
            archive = _archive(source, root, source_url, get, config)
            extract(archive, audio, root, wanted=lacking)
            if not config.keep_archives:
                shutil.rmtree(root / "downloads" / source, ignore_errors=True)
        failures.update({n: "not in the archive" if not config.audio_from else "not in --audio-from"
                         for n in lacking if not (audio / n).is_file()})  # fmt: skip

    # 3. Manifest, missing clips, card.
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "audio", "caption", "source"])
    card = CorpusCard(
        corpus="wavcaps",
        version=version,
        checksums=config.checksums,
        source=config.url or f"https://huggingface.co/datasets/cvssp/WavCaps (revision {REVISION})",
        notes=[
            f"Train with `dataset: manifest`, `dataset_path: {root / MANIFEST}` (one split, train).",
            f"{removed} clips overlapping the Clotho/AudioCaps evaluation sets were left out ({config.overlap_url})."
            if not config.keep_eval_overlap
            else "The clips overlapping the Clotho/AudioCaps evaluation sets were KEPT (--keep-eval-overlap).",
        ],
    )
    missing_rows = []
    for source in captions:
        audio = root / "audio" / source
        present = []
        for clip_id, caption in captions[source].items():
            name = audio_name(source, clip_id)
            if (audio / name).is_file():
                writer.writerow([f"{source}/{clip_id}", f"audio/{source}/{name}", caption, source])
                present.append(name)
            else:
                missing_rows.append([source, clip_id, failures.get(name, "not in the archive")])
        card.splits[source] = {"clips": len(present), "missing": len(captions[source]) - len(present)}
        card.clip_list_sha256[source] = clip_list_digest(present)
    for source in captions:
        path = root / "json_files" / source / CAPTION_FILES[source]
        card.files[path.name] = {
            "sha256": file_sha256(path),
            "md5": md5s.get(path.name, ""),
            "url": file_url(source_url, f"json_files/{source}/{path.name}"),
        }
    write_atomic(root / MANIFEST, out.getvalue())
    if missing_rows:
        text = io.StringIO()
        csv.writer(text).writerows([["source", "id", "reason"], *missing_rows])
        write_atomic(root / MISSING_REPORT, text.getvalue())
        card.missing_report = MISSING_REPORT
    write_card(root, card)
    counts = ", ".join(f"{s} {n['clips']}" for s, n in card.splits.items())
    print(f"wavcaps ready in {root}: {counts} clips ({len(missing_rows)} missing); manifest {root / MANIFEST}")
    return card


def read_captions(path: Path) -> dict[str, str]:
    """{clip id: caption} from a WavCaps JSON file (``{"data": [{"id", "caption", ...}]}``, or the bare list)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        rows = data["data"] if isinstance(data, dict) else data
        return {str(row["id"]): row["caption"].strip() for row in rows if row.get("caption", "").strip()}
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise PrepareError(f"{path}: not a WavCaps captions file ({type(err).__name__}: {err})") from None


def read_overlap(path: Path) -> dict[str, list[str]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {key: [str(v) for v in values] for key, values in data.items()}
    except (ValueError, AttributeError, TypeError) as err:
        raise PrepareError(f"{path}: not a WavCaps overlap list ({err})") from None


def _archive(source: str, root: Path, source_url: str, get, config) -> Path:
    """The source's archive on disk, whole: the ``.zip`` and any ``.z01, .z02, ...`` parts fetched (each resumable),
    and split archives merged by ``zip -s 0`` into ``{source}_merged.zip`` (zipfile reads no split archives)."""
    folder = root / "downloads" / source
    merged = folder / f"{source}_merged.zip"
    if merged.is_file():
        return merged
    base = f"Zip_files/{source}/{source}"
    parts = []
    for n in range(1, MAX_PARTS + 1):
        name = f"{base}.z{n:02d}"
        if not (folder / Path(name).name).is_file() and not remote_exists(file_url(source_url, name), config.timeout):
            break
        parts.append(name)
    sizes = [remote_size(file_url(source_url, n), config.timeout) for n in [*parts, f"{base}.zip"]]
    check_free_space(root, 2 * sum(s or 0 for s in sizes), f"downloading {source}'s archive")
    for name in [*parts, f"{base}.zip"]:
        get(name, folder / Path(name).name, progress=config.progress)
    main = folder / f"{source}.zip"
    if not parts:
        return main
    zip_exe = shutil.which(config.zip)
    if zip_exe is None:
        raise PrepareError(f"{main}: a split archive; merging it needs `{config.zip}` (apt install zip)")
    tmp = folder / f".partial-{merged.name}"  # zip wants the .zip suffix
    done = subprocess.run([zip_exe, "-q", "-s", "0", str(main), "--out", str(tmp)], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        raise PrepareError(
            f"{main}: zip -s 0 could not merge its parts ({(done.stderr or done.stdout).strip()[:200]})"
        )
    os.replace(tmp, merged)
    return merged


def _link_from(folder: Path, source: str, audio: Path, lacking: set[str]) -> None:
    audio.mkdir(parents=True, exist_ok=True)
    for name in lacking:
        found = next((p for p in (folder / source / name, folder / name) if p.is_file()), None)
        if found is None:
            continue
        try:
            os.link(found, audio / name)
        except OSError:
            shutil.copyfile(found, audio / name)
