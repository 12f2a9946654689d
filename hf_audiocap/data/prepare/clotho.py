"""Clotho v2.1 from its Zenodo record into the layout `load_clotho` reads: ``ROOT/clotho_captions_{split}.csv`` and
the audio in ``ROOT/{split}/``; the archives are kept in ``ROOT/downloads/``."""

from __future__ import annotations

import csv
import io
from pathlib import Path

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

VERSION = "2.1"
SPLITS = ("development", "validation", "evaluation")
RECORD_URL = "https://zenodo.org/records/4783391"
# Zenodo's API address of a file's bytes; the record page's links redirect here.
OFFICIAL_SOURCE = "https://zenodo.org/api/records/4783391/files/{name}/content"
# The MD5s Zenodo publishes for record 4783391 (the caption CSVs' match ../shared/data/PROVENANCE.csv).
MD5 = {
    "clotho_captions_development.csv": "d4090b39ce9f2491908eebf4d5b09bae",
    "clotho_captions_validation.csv": "5879e023032b22a2c930aaa0528bead4",
    "clotho_captions_evaluation.csv": "1b16b9e57cf7bdb7f13a13802aeb57e2",
    "clotho_audio_development.7z": "c8b05bc7acdb13895bb3c6a29608667e",
    "clotho_audio_validation.7z": "7dba730be08bada48bd15dc4e668df59",
    "clotho_audio_evaluation.7z": "4569624ccadf96223f19cb59fe4f849f",
}


def prepare_clotho(config) -> CorpusCard | None:
    """Fetches, verifies and extracts the splits `config.splits` into `config.root`; returns the card written (None for
    a dry run, or when everything was already in place)."""
    root = Path(config.root)
    splits = config.splits or list(SPLITS)
    source = config.url or OFFICIAL_SOURCE
    md5s = read_md5_listing(config.checksums, config.timeout) if config.checksums else MD5
    version = version_label(VERSION, config.checksums)
    wanted = {split: (f"clotho_captions_{split}.csv", f"clotho_audio_{split}.7z") for split in splits}
    for name in (n for pair in wanted.values() for n in pair):
        if name not in md5s:
            raise PrepareError(f"{name}: no checksum for it in {config.checksums or 'the pinned Clotho listing'}")
    if not config.dry_run:
        ensure_root(root)
        check_same_corpus(root, "clotho", version, md5s)

    # 1. What is already in place: captions with their published checksum, audio folders holding every clip.
    plan, complete = [], {}
    for split, (captions, archive) in wanted.items():
        csv_path = root / captions
        if csv_path.is_file() and file_md5(csv_path) != md5s[captions]:
            raise PrepareError(
                f"{csv_path}: its md5 is not Clotho {version}'s {md5s[captions]}: this folder holds another version "
                "of the captions; choose another --root (nothing was changed)"
            )
        complete[split] = csv_path.is_file() and not _missing_audio(root, split)
        if not csv_path.is_file():
            plan.append((captions, csv_path))
        if not complete[split]:
            plan.append((archive, root / "downloads" / archive))
    if config.dry_run:
        _print_plan(plan, source, md5s, config)
        return None
    if not plan:
        print(f"clotho {version}: every file of {', '.join(splits)} is in place in {root}; nothing to do")
        return None

    # 2. Free disk for what must be downloaded (the extracted audio is checked again from the archive's header).
    to_get = [(name, dest) for name, dest in plan if not dest.is_file()]  # one on disk is verified by fetch
    sizes = [remote_size(file_url(source, name), config.timeout) for name, _ in to_get]
    check_free_space(root, sum(s or 0 for s in sizes), f"downloading {len(to_get)} file(s)")

    # 3. Fetch (verified, resumable), then extract each split's audio.
    for name, dest in plan:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fetch(
            file_url(source, name),
            dest,
            md5s[name],
            progress=config.progress,
            timeout=config.timeout,
            retries=config.retries,
            backoff=config.backoff,
        )
    missing = {}
    for split, (_, archive) in wanted.items():
        if not complete[split]:
            extract(root / "downloads" / archive, root / split, root)
            if not config.keep_archives:
                (root / "downloads" / archive).unlink()
        missing[split] = _missing_audio(root, split)

    # 4. The card, and the clips the archives lacked (none in the published record).
    card = CorpusCard(
        corpus="clotho",
        version=version,
        checksums=config.checksums,
        source=source if config.url else RECORD_URL,
        files={name: {"md5": md5s[name], "url": file_url(source, name)} for pair in wanted.values() for name in pair},
    )
    for split in splits:
        names = _caption_file_names(root / wanted[split][0])
        card.splits[split] = {"clips": len(names) - len(missing[split]), "missing": len(missing[split])}
        card.clip_list_sha256[split] = clip_list_digest(set(names) - set(missing[split]))
    if any(missing.values()):
        _write_missing(root, missing)
        card.missing_report = MISSING_REPORT
    write_card(root, card)
    counts = ", ".join(f"{s} {n['clips']}" for s, n in card.splits.items())
    print(f"clotho {version} ready in {root}: {counts} clips")
    return card


def _caption_file_names(csv_path: Path) -> list[str]:
    with open(csv_path, encoding="utf-8", newline="") as fh:
        return [row["file_name"] for row in csv.DictReader(fh)]


def _missing_audio(root: Path, split: str) -> list[str]:
    """Clips of the split's captions found in neither folder `load_clotho` looks in (taking names as they are or
    stripped, as the loader does: real Clotho has names with a leading space)."""
    csv_path = root / f"clotho_captions_{split}.csv"
    folders = [root / split, root / f"clotho_audio_{split}"]
    have = {p.name for folder in folders if folder.is_dir() for p in folder.iterdir()}
    return [n for n in _caption_file_names(csv_path) if n not in have and n.strip() not in have]


def _write_missing(root: Path, missing: dict[str, list[str]]) -> None:
    from hf_audiocap.data.atomic import write_atomic

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["split", "file_name", "reason"])
    for split, names in missing.items():
        writer.writerows([split, name, "not in the archive"] for name in names)
    write_atomic(root / MISSING_REPORT, out.getvalue())


def _print_plan(plan, source: str, md5s: dict[str, str], config) -> None:
    if not plan:
        print(f"clotho: everything is in place in {config.root}; nothing would be fetched")
        return
    sizes, size_of = [], PlanSizes(config.timeout)
    for name, dest in plan:
        url = file_url(source, name)
        sizes.append(size_of(url))
        print(f"{name}  {human_size(sizes[-1])}  md5 {md5s[name]}\n    from {url}\n    to   {dest}")
    print(f"{len(plan)} file(s), {total_size(sizes)} in all (the archives are extracted into {config.root}/<split>/)")
