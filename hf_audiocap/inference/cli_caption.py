"""`hf-audiocap caption PATH... --model M`: caption audio files and folders.

    hf-audiocap caption clip.wav --model outputs/realsounds-demo
    hf-audiocap caption data/ recording.flac --model outputs/realsounds-demo --format json --output captions.json
    hf-audiocap caption long_recording.wav --model outputs/realsounds-demo --window 10 --hop 5 --format srt

Folders are searched recursively for audio files. A recording longer than the window is captioned window by window
(streamed from disk, so memory does not grow with its length) and every caption carries its start and end time.
Windows of all files are batched together through the shared :class:`Captioner`, so a clip gets the same caption here
as in the pipeline, the app and evaluation.

A file that cannot be captioned (missing, empty, not audio, corrupt, zero-length, too long) is reported on stderr in one
line naming it; the other files are still captioned and the exit status is 1 at the end. The output is written only to
`--output` (atomically: a temporary file beside it, then a rename) or to stdout; when no file at all could be
captioned, an existing `--output` is left as it was. Nothing else is written (file names found in folders only appear
inside the output).
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from pathlib import Path

from hf_audiocap.data.atomic import write_atomic
from hf_audiocap.inference.captioner import DEFAULT_MODEL, DEFAULT_WINDOW_S, load_captioner

__all__ = [
    "add_arguments",
    "caption_files",
    "collect_audio_files",
    "format_results",
    "load_captioner",
    "main_from_args",
]

DEFAULT_MAX_DURATION_S = 6 * 3600.0
AUDIO_EXTENSIONS = frozenset(
    ".wav .wave .flac .ogg .oga .opus .mp3 .aif .aiff .aifc .caf .w64 .rf64 .au .snd .m4a .aac .webm .wma".split()
)
FORMATS = ("text", "json", "csv", "srt")


def add_arguments(p) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH", help="audio files, or folders searched recursively")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"saved model folder or Hub id (default: {DEFAULT_MODEL})")
    p.add_argument("--format", choices=FORMATS, default="text", help="output format (default: text)")
    p.add_argument("--output", "-o", default=None, help="file to write (atomically); default: stdout")
    p.add_argument(
        "--window",
        type=float,
        default=DEFAULT_WINDOW_S,
        metavar="S",
        help=f"recordings longer than S seconds are captioned window by window (default: {DEFAULT_WINDOW_S:g})",
    )
    p.add_argument("--hop", type=float, default=None, metavar="S", help="seconds between windows (default: --window)")
    p.add_argument("--batch-size", type=int, default=16, metavar="N", help="windows per forward pass (default: 16)")
    p.add_argument("--num-beams", type=int, default=None, metavar="N", help="beam size (default: the model's)")
    p.add_argument("--max-length", type=int, default=None, metavar="N", help="max caption tokens (default: model's)")
    repetition = p.add_mutually_exclusive_group()
    repetition.add_argument(
        "--no-repeat-content-words",
        dest="no_repeat_content_words",
        action="store_true",
        default=None,
        help="never repeat a content word within a caption (stop words exempt; default: the model's setting)",
    )
    repetition.add_argument(
        "--allow-repeated-content-words",
        dest="no_repeat_content_words",
        action="store_false",
        help="turn off a model's saved no_repeat_content_words",
    )
    p.add_argument(
        "--rerank",
        default=None,
        metavar="SPEC",
        help="generate candidates and pick one by a scorer (logprob, mbr, clap) or a weighted sum "
        "('logprob:0.5,clap:0.5'); 'none' turns off a model's saved setting (default: the model's; hf_audiocap.rerank)",
    )
    p.add_argument("--rerank-candidates", type=int, default=None, metavar="K", help="candidates per clip (default: 5)")
    p.add_argument(
        "--rerank-sampling",
        nargs="?",
        const="true",
        default=None,
        metavar="TOP_P",
        help="sample the candidates (nucleus sampling, top_p 0.95 or TOP_P) instead of the beam search's k best",
    )
    p.add_argument("--rerank-clap-model", default=None, metavar="M", help="CLAP folder or Hub id for 'clap'")
    p.add_argument(
        "--rerank-evidence",
        type=int,
        default=None,
        metavar="N",
        help="mbr: measure the candidates against N captions sampled from the model (default: the other candidates)",
    )
    p.add_argument(
        "--max-duration",
        type=float,
        default=DEFAULT_MAX_DURATION_S,
        metavar="S",
        help=f"refuse files longer than S seconds (default: {DEFAULT_MAX_DURATION_S:g})",
    )
    p.add_argument(
        "--style", default=None, metavar="NAME", help="the corpus style to caption in (a model trained with styles)"
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.add_argument("--trust-remote-code", action="store_true", help="allow a Hub repository's code to run")


def main_from_args(args) -> int:
    if args.window is not None and args.window <= 0:
        raise ValueError(f"--window must be > 0 seconds, got {args.window:g}")
    if args.hop is not None and args.hop <= 0:
        raise ValueError(f"--hop must be > 0 seconds, got {args.hop:g}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    rerank = rerank_kwargs(args)
    output = _check_output(args.output)
    errors: list[str] = []
    files = collect_audio_files(args.paths, errors)
    if args.format == "srt" and len(files) > 1:
        raise ValueError(f"--format srt needs exactly one audio file, got {len(files)}; use json or csv for many")
    captioner = load_captioner(args.model, batch_size=args.batch_size, trust_remote_code=args.trust_remote_code)
    for err in errors:
        print(f"hf-audiocap caption: error: {err}", file=sys.stderr)
    generate_kwargs = {}
    if args.num_beams is not None:
        generate_kwargs["num_beams"] = args.num_beams
    if args.max_length is not None:
        generate_kwargs["max_length"] = args.max_length
    if args.no_repeat_content_words is not None:
        generate_kwargs["no_repeat_content_words"] = args.no_repeat_content_words
    generate_kwargs.update(rerank)
    if args.style is not None:  # checked against the model's styles before any file is captioned
        captioner.check_style(args.style)
        generate_kwargs["style"] = args.style
    if rerank:  # completed by the model's saved settings (e.g. its CLAP folder): checked before any file is captioned
        captioner.check_rerank(generate_kwargs)

    results, failed = caption_files(
        captioner,
        files,
        window_s=args.window,
        hop_s=args.hop,
        max_duration=args.max_duration,
        progress=not args.quiet,
        **generate_kwargs,
    )
    if output is not None and not results and (failed or errors):
        # Nothing was captioned: an earlier output is worth more than an empty one.
        print(f"hf-audiocap caption: error: no file could be captioned; {output!r} not written", file=sys.stderr)
        return 1
    text = format_results(results, args.format)
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        write_atomic(output, text)
    return 1 if (failed or errors) else 0


def rerank_kwargs(args) -> dict:
    """The `rerank*` keywords of the command line, checked before the model is loaded (one-line ValueError)."""
    from hf_audiocap.rerank import RerankSettings

    asked = {
        "rerank": getattr(args, "rerank", None),
        "rerank_candidates": getattr(args, "rerank_candidates", None),
        "rerank_sampling": getattr(args, "rerank_sampling", None),
        "rerank_clap_model": getattr(args, "rerank_clap_model", None),
        "rerank_evidence": getattr(args, "rerank_evidence", None),
    }
    asked = {k: v for k, v in asked.items() if v is not None}
    if asked.get("rerank") and str(asked["rerank"]).strip().lower() not in ("none", "off"):
        # a CLAP folder not given here may be the model's saved one: that one is checked when captioning
        RerankSettings(
            asked["rerank"],
            asked.get("rerank_candidates", 5),
            asked.get("rerank_sampling"),
            asked.get("rerank_clap_model", "(the model's)"),
            asked.get("rerank_evidence", 0),
        )
    elif "rerank_candidates" in asked and asked["rerank_candidates"] < 2:
        k = asked["rerank_candidates"]
        raise ValueError(f"--rerank-candidates: reranking needs at least 2 candidates, got {k}")
    return asked


def collect_audio_files(paths: list[str], errors: list[str]) -> list[str]:
    """Files named directly (any extension: they are checked when decoded) and audio files found recursively in
    folders, in order, without duplicates; missing paths and folders without audio are reported in `errors`."""
    files: list[str] = []
    seen: set[str] = set()

    def add(path: str) -> None:
        key = os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            files.append(path)

    for path in paths:
        if os.path.isdir(path):
            found = sorted(
                str(p) for p in Path(path).rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()
            )
            if not found:
                errors.append(f"no audio files found in folder {path!r}")
            for f in found:
                add(f)
        elif os.path.exists(path):
            add(path)
        else:
            errors.append(f"cannot decode {path!r}: file not found")
    return files


def caption_files(
    captioner,
    files: list[str],
    window_s: float | None = DEFAULT_WINDOW_S,
    hop_s: float | None = None,
    max_duration: float | None = None,
    progress: bool = True,
    **generate_kwargs,
) -> tuple[list[dict], list[str]]:
    """`([{path, duration, segments: [{start, end, caption}]}], failed_paths)`: windows of every file are streamed
    into the captioner's batches; a file whose decoding fails anywhere is reported (stderr) and left out."""
    from tqdm.auto import tqdm

    bar = tqdm(total=len(files), unit="file", file=sys.stderr, disable=not progress or len(files) < 2, leave=False)
    durations: dict[int, float] = {}
    failed: dict[int, str] = {}

    def report(index: int, err: Exception) -> None:
        msg = " ".join(str(err).split()) or type(err).__name__
        if files[index] not in msg:
            msg = f"{files[index]!r}: {type(err).__name__}: {msg}"
        failed[index] = msg
        bar.write(f"hf-audiocap caption: error: {msg}", file=sys.stderr)

    def windows():
        for i, path in enumerate(files):
            try:
                durations[i], file_windows = captioner.open_windows(path, window_s, hop_s, max_duration=max_duration)
                for start, end, wave in file_windows:
                    yield i, start, end, wave
            except Exception as err:  # noqa: BLE001 - any failure of one file must not stop the others
                report(i, err)
            bar.update(1)

    segments: dict[int, list[dict]] = {}
    for i, start, end, caption in captioner.caption_windows(windows(), **generate_kwargs):
        segments.setdefault(i, []).append({"start": round(start, 3), "end": round(end, 3), "caption": caption})
    bar.close()
    results = [
        {"path": path, "duration": round(durations[i], 3), "segments": segments.get(i, [])}
        for i, path in enumerate(files)
        if i not in failed and i in durations
    ]
    return results, [files[i] for i in sorted(failed)]


# --------------------------------------------------------------------------------------------------------------------
# Output formats
# --------------------------------------------------------------------------------------------------------------------
def format_results(results: list[dict], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(results, indent=2, ensure_ascii=False) + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["path", "start", "end", "caption"])
        for r in results:
            for s in r["segments"]:
                writer.writerow([r["path"], f"{s['start']:.3f}", f"{s['end']:.3f}", s["caption"]])
        return buf.getvalue()
    if fmt == "srt":
        blocks = []
        for r in results:
            for k, s in enumerate(r["segments"], 1):
                blocks.append(f"{k}\n{srt_time(s['start'])} --> {srt_time(s['end'])}\n{s['caption']}\n")
        return "\n".join(blocks)
    if fmt == "text":
        lines = []
        for r in results:
            if len(r["segments"]) == 1:
                lines.append(f"{r['path']}\t{r['segments'][0]['caption']}")
            else:
                lines.extend(
                    f"{r['path']}\t[{clock(s['start'])} - {clock(s['end'])}]\t{s['caption']}" for s in r["segments"]
                )
        return "".join(line + "\n" for line in lines)
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def srt_time(seconds: float) -> str:
    ms = int(round(seconds * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d},{ms:03d}"


def clock(seconds: float) -> str:
    return srt_time(seconds).replace(",", ".")


# --------------------------------------------------------------------------------------------------------------------
# Output file
# --------------------------------------------------------------------------------------------------------------------
def _check_output(output: str | None) -> str | None:
    """Fails before any work when the output cannot be written (it is never created anywhere else)."""
    if output is None or output == "-":
        return None
    if os.path.isdir(output):
        raise ValueError(f"--output {output!r} is a folder; give a file path")
    parent = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"--output {output!r}: folder {parent!r} does not exist")
    return output
