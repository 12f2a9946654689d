"""`hf-audiocap prepare realsounds`: real recordings from Debian's free sound packages, as scenes in the Clotho layout.

    hf-audiocap prepare realsounds --root data/realsounds [--independent] [--dry-run] [--url MIRROR]

1. fetch each pinned package (apt-get download, or HTTP from a mirror), checked against its pinned SHA-256;
2. read the recordings the class table names out of it (standard library only: ``ar``, ``tar``, OpenTTD's ``.cat``,
   Qt's ``.rcc``), decode, downmix and resample them to 16 kHz;
3. split each class's recordings between train, validation and test;
4. compose scenes of each split's recordings with SynthCaps' composer and caption grammar, and each test recording
   alone (``test_single``);
5. with ``--independent``, also fetch the packages of the independent split and write each of its recordings alone
   (``independent``): recordings of the same classes that no other split draws from, made by other people.

``corpus_card.json`` / ``CORPUS_CARD.md`` record the package, version, SHA-256, path inside the package and licence
of every recording. A second run finds everything in place and fetches nothing.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from hf_audiocap.data.atomic import write_atomic
from hf_audiocap.data.prepare.card import INDEPENDENT, CorpusCard, check_same_corpus, clip_list_digest, write_card
from hf_audiocap.data.prepare.downloads import PrepareError, check_free_space, ensure_root, human_size
from hf_audiocap.data.realsounds.classes import INDEPENDENT_RECORDINGS, RECORDINGS
from hf_audiocap.data.realsounds.packages import DEBIAN_MIRROR, INDEPENDENT_PACKAGES, PACKAGES, fetch_package

CORPUS, VERSION = "realsounds", "1.0"
# room for the scenes written beside the packages (12,000 training scenes of ~7 s at 16 kHz take ~2.7 GB)
SCENE_BYTES_PER_CLIP = 260_000


def scene_sizes(config) -> dict:
    from hf_audiocap.data.realsounds.generate import DEFAULT_SIZES

    return {
        f"num_{split}": int(getattr(config, f"num_{split}") if getattr(config, f"num_{split}") is not None else n)
        for split, n in DEFAULT_SIZES.items()
    }


def single_share(config) -> float:
    from hf_audiocap.data.realsounds.generate import DEFAULT_TRAIN_SINGLE_SHARE

    return DEFAULT_TRAIN_SINGLE_SHARE if config.train_single_share is None else float(config.train_single_share)


def prepare_realsounds(config) -> CorpusCard | None:
    from hf_audiocap.data.realsounds.generate import INDEPENDENT_SPLIT, generate_scenes, scene_arguments
    from hf_audiocap.data.realsounds.recordings import split_recordings

    root = Path(config.root)
    sizes = scene_sizes(config)
    packages = _packages(PACKAGES, RECORDINGS)
    # a folder that has the independent split keeps it (and its card lists it) when run again without --independent
    info_path = root / "realsounds_info.json"
    made = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else None
    keep = config.independent or bool(made and INDEPENDENT_SPLIT in made)
    independent = _packages(INDEPENDENT_PACKAGES, INDEPENDENT_RECORDINGS) if keep else []
    clash = table_ids(INDEPENDENT_RECORDINGS) & table_ids(RECORDINGS) if independent else set()
    if clash:  # one file name for two recordings: the second would overwrite the first
        raise PrepareError(f"realsounds: the independent split names recordings the corpus also has: {sorted(clash)}")
    if config.dry_run:
        _print_plan(packages, independent, root, config.url, sizes)
        return None
    ensure_root(root)
    check_same_corpus(root, CORPUS, VERSION, {})
    downloads = root / "downloads"
    downloads.mkdir(exist_ok=True)
    # a package whose recordings are all in place needs no archive (kept or not)
    missing = [
        p for p in packages + independent
        if not (root / "recordings" / f"{p.name}.json").is_file() and not (downloads / p.file_name).is_file()
    ]  # fmt: skip
    check_free_space(root, sum(p.size for p in missing) + SCENE_BYTES_PER_CLIP * sum(sizes.values()), "realsounds")
    records, fetched = _extract(config, packages, RECORDINGS, root, downloads)
    # every package is fetched before any clip is written: one that cannot be had stops the run with nothing new
    more, n = _extract(config, independent, INDEPENDENT_RECORDINGS, root, downloads)
    fetched += n
    by_class, dropped = split_recordings(records, seed=config.seed)
    if not by_class:
        raise PrepareError(f"{root}: no class has enough recordings ({', '.join(dropped)})")
    share = single_share(config)
    if (
        not made
        or made.get("seed") != config.seed
        or made.get("arguments") != scene_arguments(**sizes, train_single_share=share)
    ):
        for split in ("train", "validation", "test", "test_single"):
            shutil.rmtree(root / split, ignore_errors=True)
        counts = generate_scenes(root, by_class, seed=config.seed, train_single_share=share, **sizes)
        made = None
    else:
        counts = made["splits"]
    if independent:
        counts[INDEPENDENT_SPLIT] = _independent_split(root, more, records, by_class, config.seed, made)
        records += more
    card = _card(root, records, by_class, dropped, counts)
    write_card(root, card)
    _write_recordings_table(root, records, by_class)
    print(
        f"realsounds: {len(by_class)} classes, {sum(len(r) for s in by_class.values() for r in s.values())} "
        f"recordings ({fetched} package(s) fetched); scenes {counts} in {root}"
    )
    return card


def table_ids(table: dict) -> set[str]:
    """The recording ids (and so file names) of the recordings ``table`` names."""
    from hf_audiocap.data.realsounds.recordings import recording_id, wanted_by_package

    return {
        recording_id(c, package, path, e)
        for package, items in wanted_by_package(table).items()
        for c, path, e in items
    }


def _packages(pinned, table: dict) -> list:
    wanted = {name.split(":", 1)[0] for names in table.values() for name in names}
    return [p for p in pinned if p.name in wanted]


def _extract(config, packages: list, table: dict, root: Path, downloads: Path) -> tuple[list[dict], int]:
    """The records of every recording ``table`` names in ``packages``, each package fetched unless its recordings are
    in place; and how many packages were fetched."""
    from hf_audiocap.data.realsounds.recordings import extract_package

    records, fetched = [], 0
    for package in packages:
        if not (root / "recordings" / f"{package.name}.json").is_file():
            fetched += fetch_package(
                package, downloads, url=config.url, progress=config.progress, timeout=config.timeout,
                retries=config.retries, backoff=config.backoff,
            )  # fmt: skip
        records += extract_package(package, downloads / package.file_name, root, table)
        if not config.keep_archives:
            (downloads / package.file_name).unlink(missing_ok=True)
    return records, fetched


def _independent_split(
    root: Path, records: list[dict], corpus: list[dict], by_class: dict, seed: int, made: dict | None
) -> int:
    """Writes the independent split (unless the folder already holds it for these recordings): each recording of a
    class the corpus keeps, alone. Marks each record with its split, as the corpus's recordings are; one with the
    samples of a ``corpus`` recording is skipped."""
    from hf_audiocap.data.realsounds.generate import INDEPENDENT_SPLIT, generate_independent, independent_listing

    samples = {r["samples_sha256"] for r in corpus if "samples_sha256" in r}
    for r in records:
        if r.get("samples_sha256") in samples:
            r.pop("file")
            r["skipped"] = "the same samples as a recording of the corpus"
    kept = [r for r in records if "file" in r and r["class"] in by_class]
    for r in kept:
        r["split"] = INDEPENDENT_SPLIT
    if not kept:
        raise PrepareError(f"{root}: no recording of the independent split belongs to a class of the corpus")
    if made and made.get(INDEPENDENT_SPLIT) == independent_listing(kept) and (root / INDEPENDENT_SPLIT).is_dir():
        return made["splits"][INDEPENDENT_SPLIT]
    return generate_independent(root, kept, seed=seed)


def _print_plan(packages, independent, root: Path, url: str | None, sizes: dict) -> None:
    source = url or ("apt-get download, else " + DEBIAN_MIRROR if shutil.which("apt-get") else DEBIAN_MIRROR)
    print(f"realsounds: {len(packages)} Debian packages from {source} into {root / 'downloads'}")
    for group, table in ((packages, RECORDINGS), (independent, INDEPENDENT_RECORDINGS)):
        if group is independent and independent:
            print(f"  and {len(independent)} for the independent split (recordings alone, never trained on):")
        for p in group:
            n = sum(name.startswith(p.name + ":") for names in table.values() for name in names)
            print(f"  {p.name} {p.version}  {human_size(p.size):>9}  {n:3d} recordings  {p.licence}")
    total = sum(p.size for p in packages + independent)
    print(
        f"  total {human_size(total)}; then scenes {sizes} (about {human_size(SCENE_BYTES_PER_CLIP * sum(sizes.values()))})"
    )


def _card(root: Path, records: list[dict], by_class: dict, dropped: list[str], counts: dict) -> CorpusCard:
    splits = {split: {"clips": n, "missing": 0} for split, n in counts.items()}
    digests = {}
    for split in counts:
        csv_path = root / f"clotho_captions_{split}.csv"
        if csv_path.is_file():
            names = [line.split(",", 1)[0] for line in csv_path.read_text(encoding="utf-8").splitlines()[1:]]
            digests[split] = clip_list_digest(names)
    files = {}
    for p in PACKAGES + INDEPENDENT_PACKAGES:
        if any(r["package"] == p.name for r in records):
            files[p.file_name] = {"sha256": p.sha256, "package": p.name, "version": p.version, "licence": p.licence}
    skipped = [f"{r['package']}:{r['path']}: {r['skipped']}" for r in records if "skipped" in r]
    notes = [
        f"{len(by_class)} classes, each with at least 4 distinct recordings, split by recording: "
        + ", ".join(f"{cls} {sum(len(v) for v in s.values())}" for cls, s in by_class.items())
        + ". Every recording, its package, version, SHA-256 of the package, path inside it and licence: "
        "`recordings.md` and `corpus_card.json` (`recordings`)."
    ]
    if dropped:
        notes.append("Classes left out (fewer than 4 recordings): " + ", ".join(dropped) + ".")
    independent = [r for r in records if r.get("split") == INDEPENDENT]
    if independent:
        notes.append(
            f"The independent split: {len(independent)} recordings of {len({r['class'] for r in independent})} classes "
            f"from {len({r['package'] for r in independent})} other packages, each alone; no other split draws from "
            "those packages."
        )
    if skipped:
        notes.append("Recordings skipped: " + "; ".join(skipped) + ".")
    return CorpusCard(
        corpus=CORPUS, version=VERSION, source="Debian bookworm packages", files=files, splits=splits,
        clip_list_sha256=digests, notes=notes, recordings=[{**r, "split": _split_of(r, by_class)} for r in records],
    )  # fmt: skip


def _split_of(record: dict, by_class: dict) -> str | None:
    if record.get("split"):
        return record["split"]
    for split, recs in by_class.get(record["class"], {}).items():
        if any(r["id"] == record["id"] for r in recs):
            return split
    return None


def _write_recordings_table(root: Path, records: list[dict], by_class: dict) -> None:
    lines = ["# realsounds: the recordings", "", "| class | split | id | package | path in the package | licence |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for r in records:
        split = _split_of(r, by_class) or ("skipped: " + r["skipped"] if "skipped" in r else "class left out")
        lines.append(f"| {r['class']} | {split} | {r['id']} | {r['package']} {r['version']} | `{r['path']}` | "
                     f"{r['licence']} |")  # fmt: skip
    write_atomic(root / "recordings.md", "\n".join(lines) + "\n")
