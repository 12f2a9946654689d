"""The corpus card: what `hf-audiocap prepare` put in a folder (source, version, checksums, clips per split, missing
clips), as ``corpus_card.json`` for programs and ``CORPUS_CARD.md`` for people. Training copies its summary into the
model card, so a reported score names the data it was measured on."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from hf_audiocap.data.atomic import write_atomic
from hf_audiocap.data.prepare.downloads import PrepareError

CARD_JSON = "corpus_card.json"
CARD_MARKDOWN = "CORPUS_CARD.md"
MISSING_REPORT = "missing_clips.csv"


@dataclass
class CorpusCard:
    corpus: str
    version: str
    source: str
    # {file name: {"md5": ..., "url": ...}} for every file fetched whole (captions, archives)
    files: dict = field(default_factory=dict)
    # {split: {"clips": clips with audio, "missing": clips without}}
    splits: dict = field(default_factory=dict)
    # sha256 of each split's sorted clip names: two folders with the same value hold the same clips
    clip_list_sha256: dict = field(default_factory=dict)
    missing_report: str | None = None
    # the checksum listing used instead of the published checksums hf_audiocap pins (--checksums), if any
    checksums: str | None = None
    notes: list = field(default_factory=list)
    # corpora cut from packages (realsounds): one record per recording, with its package, path and licence
    recordings: list = field(default_factory=list)
    prepared_at: str = field(default_factory=lambda: datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    prepared_with: str = ""

    def __post_init__(self):
        if not self.prepared_with:
            from hf_audiocap import __version__

            self.prepared_with = f"hf_audiocap {__version__}"


def read_card(folder: str | os.PathLike) -> dict | None:
    path = Path(folder) / CARD_JSON
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise PrepareError(f"{path}: not a readable corpus card ({err})") from None


def check_same_corpus(folder: Path, corpus: str, version: str, md5s: dict[str, str]) -> None:
    """Refuses a folder that an earlier prepare filled with another corpus or another version of this one (the card
    says so, or a file it lists has another checksum): files already there are never replaced by different ones."""
    card = read_card(folder)
    if card is None:
        return
    where = folder / CARD_JSON
    if card.get("corpus") != corpus:
        raise PrepareError(f"{where}: this folder holds {card.get('corpus')}, not {corpus}; choose another --root")
    if card.get("version") != version:
        raise PrepareError(
            f"{where}: this folder holds {corpus} {card.get('version')}, not {version}; choose another --root"
        )
    for name, info in card.get("files", {}).items():
        if name in md5s and info.get("md5") != md5s[name]:
            raise PrepareError(
                f"{where}: {name} was prepared with md5 {info.get('md5')}, the source now lists {md5s[name]}; "
                "choose another --root"
            )


def version_label(version: str, checksums: str | None) -> str:
    """The version a card records: the corpus's own, marked when the files were checked against a listing of the
    user's (whose address is recorded apart, so that the same files reached another way are the same version)."""
    return version if checksums is None else f"{version}, custom checksums"


def write_card(folder: Path, card: CorpusCard) -> None:
    """Writes the card; what an earlier run recorded for other splits (or files) of the same corpus and version is
    kept, so preparing one split after another describes them all."""
    old = read_card(folder)
    if old and old.get("corpus") == card.corpus and old.get("version") == card.version:
        for name in ("files", "splits", "clip_list_sha256"):
            setattr(card, name, {**old.get(name, {}), **getattr(card, name)})
        card.missing_report = card.missing_report or old.get("missing_report")
    data = asdict(card)
    write_atomic(folder / CARD_JSON, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    write_atomic(folder / CARD_MARKDOWN, _markdown(data))


def _markdown(card: dict) -> str:
    lines = [
        f"# {card['corpus']} {card['version']}",
        "",
        f"Prepared by `hf-audiocap prepare` ({card['prepared_with']}) on {card['prepared_at']} from {card['source']}.",
        "",
        "| split | clips | missing |",
        "|---|---|---|",
    ]
    lines += [f"| {split} | {n['clips']} | {n['missing']} |" for split, n in card["splits"].items()]
    if card["checksums"]:
        lines += ["", f"Files checked against the listing {card['checksums']} (not the published checksums)."]
    if card["missing_report"]:
        lines += ["", f"The missing clips, each with its reason, are listed in `{card['missing_report']}`."]
    if card["files"]:
        lines += ["", "| file | checksum |", "|---|---|"]
        lines += [
            f"| {name} | " + (f"md5 `{info['md5']}`" if info.get("md5") else f"sha256 `{info.get('sha256')}`") + " |"
            for name, info in card["files"].items()
        ]
    if card["clip_list_sha256"]:
        lines += ["", "SHA-256 of each split's sorted clip names (equal values: the same clips):", ""]
        lines += [f"- {split}: `{digest}`" for split, digest in card["clip_list_sha256"].items()]
    licences = _licences(card)
    if licences:
        lines += ["", "Licences of the recordings, by package:", ""] + [f"- {item}" for item in licences]
    licences = _licences(card, independent=True)
    if licences:
        lines += ["", "Licences of the independent split's recordings (other packages; a test set only):", ""]
        lines += [f"- {item}" for item in licences]
    lines += [f"\n{note}" for note in card["notes"]]
    return "\n".join(lines) + "\n"


# realsounds' split of recordings from packages the other splits never draw from: tested on, never trained on
INDEPENDENT = "independent"


def _licences(card: dict, independent: bool = False) -> list[str]:
    """'package version: licence (N recordings)' for a corpus cut from packages, from its recordings' records: those
    of the corpus's splits, or with ``independent`` those of the independent split."""
    counts: dict[tuple, dict[str, int]] = {}
    for r in card.get("recordings", []):
        if r.get("split") and (r["split"] == INDEPENDENT) == independent:
            by_licence = counts.setdefault((r["package"], r["version"]), {})
            by_licence[r["licence"]] = by_licence.get(r["licence"], 0) + 1
    return [
        f"{package} {version}: " + ", ".join(f"{licence} ({n} recordings)" for licence, n in sorted(by.items()))
        for (package, version), by in sorted(counts.items())
    ]


def card_summary(folder: str | os.PathLike) -> str | None:
    """One paragraph for a model card about the corpus card in `folder`; None when there is none."""
    try:
        card = read_card(folder)
    except PrepareError:
        return None
    if not card:
        return None
    counts = ", ".join(
        f"{split} {n['clips']} clips" + (f" ({n['missing']} missing)" if n.get("missing") else "")
        for split, n in card.get("splits", {}).items()
    )
    digests = "; ".join(f"{s} `{d[:16]}`" for s, d in card.get("clip_list_sha256", {}).items())
    return (
        f"Data prepared by `hf-audiocap prepare`: {card.get('corpus')} {card.get('version')} from "
        f"{card.get('source')} ({card.get('prepared_at')}): {counts}."
        + (f" Clip lists (sha256 prefix): {digests}." if digests else "")
        + (" Recordings and their licences: " + "; ".join(_licences(card)) + "." if _licences(card) else "")
        + (
            " The independent split (recordings of other packages, tested on only): "
            + "; ".join(_licences(card, independent=True))
            + "."
            if _licences(card, independent=True)
            else ""
        )
        + (
            f" Missing clips are listed in `{card['missing_report']}` of the data folder."
            if card.get("missing_report")
            else ""
        )
    )


def clip_list_digest(names) -> str:
    import hashlib

    return hashlib.sha256("\n".join(sorted(names)).encode("utf-8")).hexdigest()
