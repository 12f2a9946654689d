"""The `hf-audiocap` console script: one subcommand per job, each delegating to the library."""

from __future__ import annotations

import argparse
import sys


def _add_synth(subparsers) -> None:
    from hf_audiocap.data import synthcaps

    p = subparsers.add_parser("synth", help="Generate the SynthCaps dataset (Clotho on-disk layout).")
    synthcaps.add_arguments(p)
    p.set_defaults(func=synthcaps.main_from_args)


def _add_caption(subparsers) -> None:
    from hf_audiocap.inference import cli_caption

    p = subparsers.add_parser(
        "caption",
        help="Caption audio files and folders (long recordings window by window).",
        description=cli_caption.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cli_caption.add_arguments(p)
    p.set_defaults(func=cli_caption.main_from_args)


def _add_prepare(subparsers) -> None:
    from hf_audiocap.data import prepare

    p = subparsers.add_parser(
        "prepare",
        help="Download, verify and lay out a corpus (Clotho, AudioCaps, MACS, WavCaps, realsounds) for the recipes.",
        description=prepare.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    prepare.add_arguments(p)
    p.set_defaults(func=prepare.main_from_args)


def _add_import_whisper_ct2(subparsers) -> None:
    from hf_audiocap import convert_ctranslate2_whisper

    p = subparsers.add_parser(
        "import-whisper-ct2",
        help="Convert a CTranslate2 (faster-whisper) Whisper model to a transformers Whisper folder.",
        description=convert_ctranslate2_whisper.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    convert_ctranslate2_whisper.add_arguments(p)
    p.set_defaults(func=convert_ctranslate2_whisper.main_from_args)


def _add_metrics(subparsers) -> None:
    from hf_audiocap.metrics import commands

    p = subparsers.add_parser(
        "metrics",
        help="Fetch what SPICE and FENSE need (metrics download).",
        description=commands.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands.add_arguments(p)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hf-audiocap", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_synth(subparsers)
    _add_caption(subparsers)
    _add_metrics(subparsers)
    _add_prepare(subparsers)
    _add_import_whisper_ct2(subparsers)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"hf-audiocap {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
