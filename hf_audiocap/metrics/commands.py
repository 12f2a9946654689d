"""`hf-audiocap metrics download`: fetch what SPICE and FENSE need into the caches, once, while online.

    hf-audiocap metrics download                 # CoreNLP 3.6.0 jars (SPICE), FENSE's checker and sentence model
    hf-audiocap metrics download --only spice --cache_dir /data/metrics --maven_url https://mirror.example/maven2

Each file is verified (the jars against Maven's .sha1, the checker against its SHA-256); an interrupted download
resumes where it stopped on the next run. Afterwards `metrics: dcase2024` works offline.
"""

from __future__ import annotations

import os
import sys

from . import learned, resources


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="metrics_command", required=True)
    d = sub.add_parser("download", help="Fetch SPICE's CoreNLP jars and FENSE's models.", description=__doc__)
    d.add_argument(
        "--cache_dir",
        default=None,
        help=f"where the jars and the checker go (default: ${resources.CACHE_ENV} or {resources.cache_dir()})",
    )
    d.add_argument("--maven_url", default=None, help=f"Maven repository (default: ${resources.MAVEN_ENV} or Central)")
    d.add_argument("--only", choices=["spice", "fense"], default=None, help="fetch only what this metric needs")
    d.add_argument("--quiet", action="store_true", help="no progress bars")
    d.set_defaults(func=main_from_args)


def main_from_args(args) -> int:
    if args.cache_dir:  # the evaluations of this process (and its children) read the same folder
        os.environ[resources.CACHE_ENV] = os.path.abspath(os.path.expanduser(args.cache_dir))
    progress = not args.quiet
    failures = []
    if args.only in (None, "spice"):
        try:
            paths = resources.download_corenlp(args.cache_dir, args.maven_url, progress=progress)
            print("SPICE: " + ", ".join(str(p) for p in paths) + " (SHA-1 verified)")
        except resources.DownloadError as err:
            failures.append(f"SPICE: {err}")
    if args.only in (None, "fense"):
        models = learned.FenseModels.from_env()
        try:
            path = learned.checker_file(models, fetch=True, progress=progress)
            learned.load_checker(path)  # also caches the backbone's config and tokenizer
            print(f"FENSE checker: {path} (SHA-256 verified)")
            learned.load_sbert(models.sbert)
            print(f"FENSE sentence model: {models.sbert} (Hugging Face cache)")
        except learned.ModelUnavailable as err:
            failures.append(f"FENSE: {err}")
    for line in failures:
        print(f"hf-audiocap metrics download: error: {line}", file=sys.stderr)
    return 1 if failures else 0
