"""What the metrics fetch once and keep: SPICE's Stanford CoreNLP 3.6.0 jars and FENSE's fluency-error checkpoint.

Everything lands in one user cache folder (never site-packages): ``$HF_AUDIOCAP_METRICS_CACHE``, else
``$XDG_CACHE_HOME/hf_audiocap/metrics`` (``~/.cache/hf_audiocap/metrics``). Downloads go through pooch (``retrieve``
with the file's known hash: a cached file whose hash differs is fetched again, a download whose hash differs is deleted
and reported) with a downloader that resumes: the bytes received so far wait in ``<name>.part`` beside the target, and
the next attempt asks the server for the rest (an HTTP ``Range`` request).

* CoreNLP: ``edu.stanford.nlp:stanford-corenlp:3.6.0`` from Maven Central (``$HF_AUDIOCAP_MAVEN_URL`` overrides the
  repository), each jar verified against the SHA-1 that Maven publishes beside it (``<jar>.sha1``), which is kept in
  the cache so that an offline run can check the jar again.
* FENSE's checker: the checkpoint released with FENSE, verified against its published SHA-256.

Evaluations read the cache and fetch only when online (neither ``HF_HUB_OFFLINE`` nor ``HF_AUDIOCAP_METRICS_OFFLINE``
is set); ``hf-audiocap metrics download`` fetches on request.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger("hf_audiocap.metrics")

CACHE_ENV = "HF_AUDIOCAP_METRICS_CACHE"
MAVEN_ENV = "HF_AUDIOCAP_MAVEN_URL"
OFFLINE_ENV = "HF_AUDIOCAP_METRICS_OFFLINE"
MAVEN_CENTRAL = "https://repo1.maven.org/maven2"
CORENLP_PATH = "edu/stanford/nlp/stanford-corenlp/3.6.0"
CORENLP_JARS = ("stanford-corenlp-3.6.0.jar", "stanford-corenlp-3.6.0-models.jar")
DOWNLOAD_COMMAND = "hf-audiocap metrics download"

_CHUNK = 1 << 20  # hashing
_STREAM_CHUNK = 1 << 16  # downloading: what an interruption can lose of the bytes in flight
_TIMEOUT = (10, 60)  # connect, read (seconds)
_VERIFIED: dict[tuple, bool] = {}  # (path, size, mtime, hash) -> matches: each file hashed once per process


class DownloadError(RuntimeError):
    """A metric resource could not be fetched or verified; the message is one line naming the file or URL."""


def request_failure(err: BaseException) -> str:
    """Why a request failed, in a few words: the cause requests nests several levels deep in urllib3's text
    (``Name or service not known``, ``Connection refused``), ``timed out``, or the HTTP status."""
    import requests

    response = getattr(err, "response", None)
    if isinstance(err, requests.HTTPError) and response is not None:
        return f"HTTP {response.status_code}"
    match = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", str(err))
    if match:
        return match.group(1).strip()
    if isinstance(err, requests.Timeout):
        return "timed out"
    return type(err).__name__


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """The metrics' cache folder (argument, then ``$HF_AUDIOCAP_METRICS_CACHE``, then the XDG cache)."""
    if override:
        return Path(override).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "hf_audiocap" / "metrics"


def maven_url(override: str | None = None) -> str:
    return (override or os.environ.get(MAVEN_ENV) or MAVEN_CENTRAL).rstrip("/")


def offline() -> bool:
    """Whether evaluations must not fetch anything (``HF_HUB_OFFLINE`` or ``HF_AUDIOCAP_METRICS_OFFLINE`` set)."""
    return any(
        os.environ.get(k, "").strip().lower() in ("1", "true", "yes", "on") for k in ("HF_HUB_OFFLINE", OFFLINE_ENV)
    )


def file_hash(path: str | os.PathLike, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def hash_matches(path: Path, algorithm: str, expected: str) -> bool:
    """Whether ``path`` has that hash; computed once per process for a given size and modification time."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns, algorithm, expected.lower())
    if key not in _VERIFIED:
        _VERIFIED[key] = file_hash(path, algorithm) == expected.lower()
    return _VERIFIED[key]


@contextlib.contextmanager
def _locked(folder: Path):
    """One download at a time per cache folder (processes of one run may all ask for the same file)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".download.lock", "w") as lock:
        try:
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - Windows: no lock
            pass
        yield


@dataclass
class ResumingDownloader:
    """A pooch downloader that resumes: bytes go to ``part`` (kept after an interruption) and a later call asks for
    the rest with ``Range: bytes=<size of part>-``; a server that answers with the whole file (200) restarts it."""

    part: Path
    progress: bool = False

    def __call__(self, url: str, output_file, pooch=None, check_only: bool = False):
        import requests

        if check_only:
            return requests.head(url, timeout=_TIMEOUT, allow_redirects=True).ok
        have = self.part.stat().st_size if self.part.exists() else 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        with requests.get(url, headers=headers, stream=True, timeout=_TIMEOUT) as response:
            if response.status_code == 416:  # the part is already whole (or longer than the file): start again
                self.part.unlink(missing_ok=True)
                return self(url, output_file, pooch)
            response.raise_for_status()
            if response.status_code != 206:
                have = 0
            total = response.headers.get("Content-Length")
            total = int(total) + have if total is not None else None
            bar = None
            if self.progress:
                from tqdm.auto import tqdm

                bar = tqdm(total=total, initial=have, unit="B", unit_scale=True, file=sys.stderr, leave=False,
                           desc=self.part.name.removesuffix(".part"))  # fmt: skip
            try:
                with open(self.part, "ab" if have else "wb") as f:
                    for block in response.iter_content(_STREAM_CHUNK):
                        f.write(block)
                        if bar is not None:
                            bar.update(len(block))
            finally:
                if bar is not None:
                    bar.close()
        size = self.part.stat().st_size
        if total is not None and size != total:
            raise DownloadError(f"{url}: got {size} of {total} bytes; run the download again to resume")
        # pooch hashes output_file and moves it over the target (or deletes it when the hash differs)
        shutil.move(str(self.part), os.fspath(output_file))


def fetch_verified(url: str, target: Path, algorithm: str, expected: str, progress: bool = False) -> Path:
    """``target`` holding ``url``'s bytes with that hash: kept if it already matches, else (re)downloaded, resuming a
    previous partial download. Raises :class:`DownloadError` (one line naming the file) on a hash mismatch or a
    network error; a mismatching download is deleted so that the next attempt starts afresh."""
    import pooch
    import requests

    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    with _locked(target.parent):
        if target.is_file() and hash_matches(target, algorithm, expected):
            return target
        if target.is_file():
            logger.warning("%s does not match its %s %s: fetching it again", target, algorithm.upper(), expected)
        try:
            pooch_logger = pooch.get_logger()
            level = pooch_logger.level
            pooch_logger.setLevel(logging.WARNING)
            try:
                path = pooch.retrieve(
                    url,
                    known_hash=f"{algorithm}:{expected}",
                    fname=target.name,
                    path=target.parent,
                    downloader=ResumingDownloader(part, progress=progress),
                )
            finally:
                pooch_logger.setLevel(level)
        except ValueError as err:  # pooch: the downloaded file's hash differs (and it deleted the file)
            part.unlink(missing_ok=True)
            got = re.search(r"but got (\w+)", str(err))
            raise DownloadError(
                f"{target.name} downloaded from {url} does not match its {algorithm.upper()} {expected}"
                + (f" (got {got.group(1)})" if got else "")
                + "; deleted"
            ) from None
        except requests.RequestException as err:
            kept = f"; {part.stat().st_size} bytes kept in {part} to resume" if part.exists() else ""
            raise DownloadError(f"cannot download {url} ({request_failure(err)}){kept}") from None
    return Path(path)


# ---------------------------------------------------------------------------------------------------- CoreNLP jars
def _read_sha1(url: str) -> str:
    import requests

    try:
        response = requests.get(url, timeout=_TIMEOUT)
        response.raise_for_status()
    except requests.RequestException as err:
        raise DownloadError(f"cannot download {url} ({request_failure(err)})") from None
    words = response.text.split()
    if not words or not re.fullmatch(r"[0-9a-fA-F]{40}", words[0]):
        raise DownloadError(f"{url} is not a SHA-1 checksum file (got {response.text[:60]!r})")
    return words[0].lower()


def download_corenlp(cache: str | os.PathLike | None = None, base_url: str | None = None, progress: bool = False):
    """Fetch (or check) both CoreNLP 3.6.0 jars into ``<cache>/corenlp``; returns their paths."""
    folder = cache_dir(cache) / "corenlp"
    base = maven_url(base_url)
    paths = []
    for jar in CORENLP_JARS:
        url = f"{base}/{CORENLP_PATH}/{jar}"
        sha1 = _read_sha1(url + ".sha1")
        path = fetch_verified(url, folder / jar, "sha1", sha1, progress=progress)
        (folder / f"{jar}.sha1").write_text(sha1 + "\n", encoding="ascii")
        paths.append(path)
    return paths


def corenlp_jars(cache: str | os.PathLike | None = None) -> tuple[list[Path] | None, str | None]:
    """(the two jars, None) when they are cached and match their recorded SHA-1, else (None, one-line reason)."""
    folder = cache_dir(cache) / "corenlp"
    paths = []
    for jar in CORENLP_JARS:
        path, sums = folder / jar, folder / f"{jar}.sha1"
        if not path.is_file():
            return None, f"SPICE needs Stanford CoreNLP 3.6.0 ({jar} not in {folder})"
        if not sums.is_file():
            return None, f"SPICE's {path} has no recorded SHA-1 ({sums.name}, written when the download is verified)"
        expected = sums.read_text(encoding="ascii").split()[0] if sums.stat().st_size else ""
        if not hash_matches(path, "sha1", expected):
            return None, f"SPICE's {path} is corrupt (its SHA-1 differs from Maven's {expected or '(empty)'})"
        paths.append(path)
    return paths, None
