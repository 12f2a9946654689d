"""`hf-audiocap prepare`: from nothing to a training-ready corpus in the layout the project's loaders read.

    hf-audiocap prepare clotho --root data/clotho           # recipes/clotho/*.yaml run right after
    hf-audiocap prepare audiocaps --root data/audiocaps     # recipes/audiocaps/*.yaml (audio_dir: data/audiocaps/audio)
    hf-audiocap prepare macs --root data/macs               # dataset: manifest, dataset_path: data/macs/macs.csv
    hf-audiocap prepare wavcaps --root data/wavcaps --splits SoundBible    # data/wavcaps/wavcaps.csv likewise
    hf-audiocap prepare realsounds --root data/realsounds   # real recordings from Debian packages, as scenes

Every file fetched whole is checked against its published checksum; a partial download resumes; a second run that
finds everything in place fetches nothing; a folder already holding another corpus or version is refused, never
overwritten. ``corpus_card.json`` / ``CORPUS_CARD.md`` record what was prepared, and training copies that record into
the model card.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from hf_audiocap.data.prepare.card import CARD_JSON, CorpusCard, card_summary, read_card
from hf_audiocap.data.prepare.downloads import PrepareError
from hf_audiocap.data.prepare.wavcaps import OVERLAP_URL

CORPORA = ("clotho", "audiocaps", "macs", "wavcaps", "realsounds")

__all__ = [
    "CARD_JSON",
    "CORPORA",
    "CorpusCard",
    "PrepareConfig",
    "PrepareError",
    "card_summary",
    "prepare",
    "read_card",
]


@dataclass
class PrepareConfig:
    corpus: str = field(metadata={"help": f"The corpus to prepare: {', '.join(CORPORA)}."})
    root: str = field(metadata={"help": "The folder to prepare it in (created if absent); the recipes' dataset_path."})
    splits: list[str] | None = field(
        default=None,
        metadata={"help": "Splits to prepare (default: all; clotho: development validation evaluation; "
                  "audiocaps: train val test; macs: train; wavcaps, its sources: AudioSet_SL BBC_Sound_Effects FreeSound "
                  "SoundBible)."},
    )  # fmt: skip
    dry_run: bool = field(
        default=False, metadata={"help": "List what would be fetched, its size and where it would go; fetch nothing."}
    )
    url: str | None = field(
        default=None,
        metadata={"help": "Where the corpus files come from: a URL template with {name}, a base URL or a local "
                  "folder (a mirror, a copy you have, a test server). Default: the official address (Clotho: Zenodo "
                  "record 4783391; AudioCaps: the CSVs of github.com/cdjkim/audiocaps)."},
    )  # fmt: skip
    checksums: str | None = field(
        default=None,
        metadata={"help": "An MD5 listing ('<md5>  <file name>' lines, as md5sum writes them; a URL or a file) "
                  "replacing the published checksums hf_audiocap pins, for another release of the corpus."},
    )  # fmt: skip
    keep_archives: bool = field(
        default=True,
        metadata={"help": "Keep the downloaded archives in ROOT/downloads after extraction (--no-keep-archives "
                  "deletes each once its audio is in place)."},
    )  # fmt: skip
    timeout: float = field(default=60.0, metadata={"help": "Seconds a download may wait for the server."})
    retries: int = field(
        default=3, metadata={"help": "Retries of a failed download (a dropped connection, a YouTube clip)."}
    )
    backoff: float = field(
        default=2.0, metadata={"help": "Seconds before the first retry; each further retry waits twice as long."}
    )
    progress: bool = field(default=True, metadata={"help": "Show progress bars (--no-progress hides them)."})
    audio_from: str | None = field(
        default=None,
        metadata={"help": "audiocaps, wavcaps: take the clips from this folder of yours instead of downloading them "
                  "(AudioCaps: found by the names the loader accepts, {youtube_id}_{start_time}.wav, "
                  "Y{youtube_id}.wav, ...; WavCaps: {source}/{id}.flac or {id}.flac; linked or copied, never moved)."},
    )  # fmt: skip
    jobs: int = field(default=4, metadata={"help": "audiocaps: YouTube downloads run at once."})
    clip_timeout: float = field(
        default=120.0, metadata={"help": "audiocaps: seconds one clip's download may take before it is killed."}
    )
    sample_rate: int = field(default=32000, metadata={"help": "audiocaps: the rate clips are written at (Hz)."})
    max_clips: int | None = field(
        default=None, metadata={"help": "audiocaps: fetch at most the first N clips of each split (a trial run)."}
    )
    youtube_url: str = field(
        default="https://www.youtube.com/watch?v={youtube_id}",
        metadata={"help": "audiocaps: the address of a clip's video, with {youtube_id}."},
    )
    yt_dlp: str = field(default="yt-dlp", metadata={"help": "audiocaps: the yt-dlp executable."})
    yt_dlp_args: str = field(
        default="", metadata={"help": "audiocaps: extra yt-dlp arguments (e.g. '--cookies cookies.txt')."}
    )
    ffmpeg: str = field(default="ffmpeg", metadata={"help": "audiocaps: the FFmpeg executable yt-dlp cuts with."})
    keep_eval_overlap: bool = field(
        default=False,
        metadata={"help": "wavcaps: keep the clips that overlap the Clotho and AudioCaps evaluation sets (left out "
                  "by default, as listed by WavCaps' authors)."},
    )  # fmt: skip
    overlap_url: str = field(
        default=OVERLAP_URL,
        metadata={"help": "wavcaps: the list of those clips (a URL or a file; default: WavCaps' repository)."},
    )
    zip: str = field(default="zip", metadata={"help": "wavcaps: the zip executable that merges split archives."})
    seed: int = field(default=0, metadata={"help": "realsounds: the seed of the recording split and the scenes."})
    num_train: int | None = field(default=None, metadata={"help": "realsounds: training scenes (default 12000)."})
    num_validation: int | None = field(default=None, metadata={"help": "realsounds: validation scenes (default 150)."})
    num_test: int | None = field(default=None, metadata={"help": "realsounds: test scenes (default 300)."})
    train_single_share: float | None = field(
        default=None,
        metadata={"help": "realsounds: the share of training clips that are one training recording alone, without "
                  "noise (the condition of the test_single set); the rest are scenes (default 0.15)."},
    )  # fmt: skip
    independent: bool = field(
        default=False,
        metadata={"help": "realsounds: also fetch the packages of the `independent` split and write it: recordings of "
                  "the corpus's classes from other packages, each alone, that no other split draws from (--dry-run "
                  "lists them and their sizes)."},
    )  # fmt: skip
    to_datasets: str | None = field(
        default=None,
        metadata={"help": "Also save the prepared corpus as an Arrow DatasetDict (the loaders' schema, audio bytes "
                  "embedded) with save_to_disk into this folder; `dataset: hf` reads it."},
    )  # fmt: skip
    push_to_hub: str | None = field(
        default=None, metadata={"help": "Also push that DatasetDict to this Hub dataset repository (needs a login)."}
    )

    def __post_init__(self):
        if self.corpus not in CORPORA:
            raise PrepareError(f"unknown corpus {self.corpus!r}; known: {', '.join(CORPORA)}")
        if isinstance(self.splits, str):
            self.splits = [self.splits]
        if self.audio_from and self.corpus not in ("audiocaps", "wavcaps"):
            raise PrepareError("--audio-from applies to audiocaps and wavcaps only")
        if self.independent and self.corpus != "realsounds":
            raise PrepareError("--independent applies to realsounds only")
        if self.jobs < 1 or self.retries < 0 or self.timeout <= 0 or self.clip_timeout <= 0:
            raise PrepareError("--jobs must be >= 1, --retries >= 0, --timeout and --clip-timeout > 0")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One option per PrepareConfig field, its help the field's (the first two positional or required)."""
    for f in dataclasses.fields(PrepareConfig):
        helptext = f.metadata["help"]
        if f.name == "corpus":
            parser.add_argument("corpus", choices=CORPORA, help=helptext)
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.type == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default, help=helptext)
        elif f.name == "splits":
            parser.add_argument(flag, nargs="+", default=None, help=helptext)
        else:
            kind = {"float": float, "int": int, "int | None": int, "float | None": float}.get(f.type, str)
            required = f.default is dataclasses.MISSING
            parser.add_argument(
                flag, type=kind, required=required, default=None if required else f.default, help=helptext
            )


def main_from_args(args: argparse.Namespace) -> int:
    names = {f.name for f in dataclasses.fields(PrepareConfig)}
    prepare(PrepareConfig(**{k: v for k, v in vars(args).items() if k in names}))
    return 0


def prepare(config: PrepareConfig) -> CorpusCard | None:
    """Prepares `config.corpus` in `config.root`; returns the card written (None: a dry run, or nothing to do)."""
    if config.corpus == "clotho":
        from hf_audiocap.data.prepare.clotho import prepare_clotho as run
    elif config.corpus == "realsounds":
        from hf_audiocap.data.prepare.realsounds import prepare_realsounds as run
    elif config.corpus == "macs":
        from hf_audiocap.data.prepare.macs import prepare_macs as run
    elif config.corpus == "wavcaps":
        from hf_audiocap.data.prepare.wavcaps import prepare_wavcaps as run
    else:
        from hf_audiocap.data.prepare.audiocaps import prepare_audiocaps as run
    card = run(config)
    if not config.dry_run and (config.to_datasets or config.push_to_hub):
        export(config)
    return card


def export(config: PrepareConfig):
    """The prepared folder as a DatasetDict through the project's own loader, each clip's bytes embedded so the
    saved folder or Hub repository stands alone; missing clips are left out (the card lists them)."""
    from hf_audiocap.data.loaders import load_audiocaps, load_clotho, load_manifest

    root = Path(config.root)
    if config.corpus in ("clotho", "realsounds"):
        clips = load_clotho(root, config.splits, skip_missing=True)
    elif config.corpus in ("macs", "wavcaps"):
        clips = load_manifest(root / f"{config.corpus}.csv", skip_missing=True)
    else:
        clips = load_audiocaps(root, root / "audio", config.splits, skip_missing=True)

    def embed(row):
        path = row["audio"]["path"]
        return {"audio": {"bytes": Path(path).read_bytes(), "path": Path(path).name}}

    clips = clips.map(embed, desc="embedding audio")
    if config.to_datasets:
        clips.save_to_disk(config.to_datasets)
        print(f"saved {', '.join(f'{s} {len(d)}' for s, d in clips.items())} clips to {config.to_datasets}")
    if config.push_to_hub:
        clips.push_to_hub(config.push_to_hub)
        print(f"pushed to https://huggingface.co/datasets/{config.push_to_hub}")
    return clips
