"""MACS (Multi-Annotator Captioned Soundscapes, Zenodo record 5114771): its captions (MACS.yaml, 2 to 5 per clip)
and its 3,930 clips, which are TAU Urban Acoustic Scenes 2019 development recordings (Zenodo record 2589280, the eight
zip archives that hold them). Written as a manifest `load_manifest` reads: ``ROOT/macs.csv`` (``id, audio,
caption_1..caption_5``, blank cells where a clip has fewer captions) with the audio in ``ROOT/audio/``; a recipe
uses ``dataset: manifest``, ``dataset_path: ROOT/macs.csv``, and its one split, ``train``."""

from __future__ import annotations

import csv
import io
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
    file_md5,
    file_url,
    human_size,
    read_md5_listing,
    remote_size,
    total_size,
)

VERSION = "1"
SPLITS = ("train",)
RECORD_URL = "https://zenodo.org/records/5114771"
# Zenodo's API addresses of a file's bytes, the captions' record and the TAU audio's.
OFFICIAL_SOURCES = {
    "captions": "https://zenodo.org/api/records/5114771/files/{name}/content",
    "audio": "https://zenodo.org/api/records/2589280/files/{name}/content",
}
CAPTION_MD5 = {
    "MACS.yaml": "23fcb2ebd0b109094034ef9e87972256",
    "MACS_competence.csv": "4dfe9f951f0af9f29cb7952ec030370a",
    "LICENSE.txt": "d3086f4517cccc32c1bb3a081b07cfa1",
}
# The TAU Urban Acoustic Scenes 2019 development archives that hold MACS clips (the others hold none).
AUDIO_MD5 = {
    f"TAU-urban-acoustic-scenes-2019-development.audio.{n}.zip": md5
    for n, md5 in (
        (1, "aca4ebfd9ed03d5f747d6ba8c24bc728"),
        (2, "c4f170408ce77c8c70c532bf268d7be0"),
        (3, "c7214a07211f10f3250290d05e72c37e"),
        (9, "3c32a693a6b111ffb957be3c1dd22e9b"),
        (10, "0ffbf60006da520cc761fb74c878b98b"),
        (11, "599055d93b4c11057c29be2df54538d4"),
        (12, "98b8d162ff3665695c4c910e6c372cc8"),
        (13, "a356c08b1a5a21d433eba37ef87587f4"),
    )
}
MANIFEST = "macs.csv"  # named for the corpus, as export() expects


def prepare_macs(config) -> CorpusCard | None:
    root = Path(config.root)
    if config.splits and list(config.splits) != ["train"]:
        raise PrepareError(f"macs has one split, train; not {', '.join(config.splits)}")
    md5s = read_md5_listing(config.checksums, config.timeout) if config.checksums else CAPTION_MD5 | AUDIO_MD5
    version = version_label(VERSION, config.checksums)
    missing_md5 = [n for n in [*CAPTION_MD5, *AUDIO_MD5] if n not in md5s]
    if missing_md5:
        raise PrepareError(f"{missing_md5[0]}: no checksum for it in {config.checksums}")

    def url(name: str) -> str:
        return file_url(config.url or OFFICIAL_SOURCES["captions" if name in CAPTION_MD5 else "audio"], name)

    if config.dry_run:
        sizes, size_of = [], PlanSizes(config.timeout)
        for name in [*CAPTION_MD5, *AUDIO_MD5]:
            sizes.append(size_of(url(name)))
            dest = root / name if name in CAPTION_MD5 else root / "downloads" / name
            print(f"{name}  {human_size(sizes[-1])}  md5 {md5s[name]}\n    from {url(name)}\n    to   {dest}")
        print(f"{len(sizes)} file(s), {total_size(sizes)} in all (the MACS clips are extracted into {root / 'audio'})")
        return None
    ensure_root(root)
    check_same_corpus(root, "macs", version, md5s)

    # 1. Captions, verified; then the clips they name that ROOT/audio lacks.
    for name in CAPTION_MD5:
        _refuse_other_version(root / name, md5s[name], version)
        fetch(url(name), root / name, md5s[name], progress=False, timeout=config.timeout, retries=config.retries,
              backoff=config.backoff)  # fmt: skip
    captions = read_captions(root / "MACS.yaml")
    audio = root / "audio"
    lacking = [n for n in captions if not (audio / n).is_file()]
    if not lacking and (root / MANIFEST).is_file():
        print(f"macs {version}: every clip is in place in {root}; nothing to do")
        return None

    # 2. The archives, one at a time (each is fetched, verified and its MACS clips extracted), until no clip lacks.
    archives = [n for n in AUDIO_MD5 if lacking]
    to_get = [n for n in archives if not (root / "downloads" / n).is_file()]
    check_free_space(root, sum(remote_size(url(n), config.timeout) or 0 for n in to_get), "downloading the archives")
    for name in archives:
        if all((audio / n).is_file() for n in captions):
            break
        dest = root / "downloads" / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        fetch(url(name), dest, md5s[name], progress=config.progress, timeout=config.timeout, retries=config.retries,
              backoff=config.backoff)  # fmt: skip
        extract(dest, audio, root, wanted=set(captions))
        if not config.keep_archives:
            dest.unlink()

    # 3. The manifest, the missing clips (none in the published record) and the card.
    present = [n for n in captions if (audio / n).is_file()]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "audio", *[f"caption_{i}" for i in range(1, 6)]])
    for name in present:
        sentences = captions[name][:5]
        writer.writerow([name, f"audio/{name}", *sentences, *[""] * (5 - len(sentences))])
    write_atomic(root / MANIFEST, out.getvalue())
    missing = [n for n in captions if n not in set(present)]
    card = CorpusCard(
        corpus="macs",
        version=version,
        checksums=config.checksums,
        source=config.url or f"{RECORD_URL} (captions), https://zenodo.org/records/2589280 (audio)",
        files={n: {"md5": md5s[n], "url": url(n)} for n in [*CAPTION_MD5, *AUDIO_MD5]},
        splits={"train": {"clips": len(present), "missing": len(missing)}},
        clip_list_sha256={"train": clip_list_digest(present)},
        notes=[f"Train with `dataset: manifest`, `dataset_path: {root / MANIFEST}` (one split, train)."],
    )
    if missing:
        write_atomic(
            root / MISSING_REPORT, "file_name,reason\n" + "".join(f"{n},not in the archives\n" for n in missing)
        )
        card.missing_report = MISSING_REPORT
    write_card(root, card)
    print(f"macs {version} ready in {root}: {len(present)} clips ({len(missing)} missing); manifest {root / MANIFEST}")
    return card


def read_captions(path: Path) -> dict[str, list[str]]:
    """{clip file name: its captions} from MACS.yaml (``files: [{filename, annotations: [{sentence, ...}]}]``)."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return {
            item["filename"]: [a["sentence"].strip() for a in item["annotations"] if a.get("sentence", "").strip()]
            for item in data["files"]
        }
    except (yaml.YAMLError, KeyError, TypeError, AttributeError) as err:
        raise PrepareError(f"{path}: not the MACS captions file ({type(err).__name__}: {err})") from None


def _refuse_other_version(path: Path, md5: str, version: str) -> None:
    if path.is_file() and file_md5(path) != md5:
        raise PrepareError(
            f"{path}: its md5 is not MACS {version}'s {md5}: this folder holds another version; choose another --root "
            "(nothing was changed)"
        )
