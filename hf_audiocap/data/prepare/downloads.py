"""Verified, resumable downloads and the checks every corpus shares (writable root, free disk, checksum listings).

pooch does the verification and caching: a file already in place with its published checksum is not fetched again,
a new one is written to a temporary file and moved into place only once its checksum matches. pooch's own HTTP
downloader starts every download from zero, so :class:`ResumableDownloader` (a pooch downloader: any callable taking
``(url, output_file, pooch)``) keeps the bytes received so far in ``NAME.part`` and asks for the rest with an HTTP
Range request, through requests (which pooch itself uses).
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from urllib.parse import quote, urlparse

# Bytes read at a time: a dropped connection loses at most this much of what had arrived.
CHUNK = 1 << 16
# Seconds a --dry-run waits for a server to accept a connection before it says the server cannot be reached.
DRY_RUN_CONNECT_TIMEOUT_S = 5.0


class PrepareError(ValueError):
    """A problem the user can fix, said in one line that names the file (the CLI prints it without a traceback)."""


def file_url(source: str, name: str) -> str:
    """Where `name` comes from: `source` is a template with ``{name}``, a base URL, or a local folder."""
    if "{name}" in source:
        return source.format(name=quote(name))
    if _is_remote(source):
        return f"{source.rstrip('/')}/{quote(name)}"
    return str(Path(_local_path(source)) / name)


def _is_remote(url: str) -> bool:
    return urlparse(url).scheme in ("http", "https")


def _local_path(url: str) -> str:
    return urlparse(url).path if url.startswith("file://") else url


def ensure_root(root: Path) -> Path:
    """Creates `root` and checks that files can be written there, before anything is fetched."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=root, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise PrepareError(f"--root {root}: cannot write there ({err.strerror or err})") from None
    return root


def check_free_space(folder: Path, need: int, what: str) -> None:
    """Refuses to start `what` when the disk holding `folder` has less than `need` bytes free (plus 1% slack), rather
    than failing half-way with a disk full."""
    free = shutil.disk_usage(folder).free
    if need * 1.01 > free:
        raise PrepareError(f"{folder}: {what} needs {human_size(need)} but the disk has {human_size(free)} free")


def human_size(n: float | None) -> str:
    if n is None:
        return "size unknown"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def total_size(sizes: list[int | None]) -> str:
    """The sum of `sizes` for a plan, saying when some could not be told."""
    known = sum(s for s in sizes if s is not None)
    unknown = sum(s is None for s in sizes)
    return human_size(known) + (f" + {unknown} file(s) of unknown size" if unknown else "")


def remote_size(url: str, timeout: float | tuple[float, float]) -> int | None:
    """The size a download will have (HTTP Content-Length, or a local file's size); None when it cannot be told."""
    import requests

    try:
        return _remote_size(url, timeout)
    except requests.RequestException:
        return None


def _remote_size(url: str, timeout: float | tuple[float, float]) -> int | None:
    """`remote_size`, raising what requests raises when the server cannot be reached or answers with an error."""
    import requests

    if not _is_remote(url):
        path = Path(_local_path(url))
        return path.stat().st_size if path.is_file() else None
    response = requests.head(url, allow_redirects=True, timeout=timeout)
    response.raise_for_status()
    length = response.headers.get("content-length")
    return int(length) if length and length.isdigit() else None


class PlanSizes:
    """The sizes a `--dry-run` plan shows, asked of each server with a connect timeout of at most
    `DRY_RUN_CONNECT_TIMEOUT_S` (a plan is a look, not a download worth waiting for): a server that cannot be reached
    is said once, in one line naming its host, and not asked again; its files' sizes are unknown (None). A server that
    answers with an error status (a 404 from a proxy, a moved file) is said once too."""

    def __init__(self, timeout: float):
        self.timeout = (min(DRY_RUN_CONNECT_TIMEOUT_S, timeout), timeout)
        self.unreachable: dict[str, str] = {}
        self.refusing: set[str] = set()  # hosts that answered a request with an error status (said once)

    def __call__(self, url: str) -> int | None:
        import requests

        host = urlparse(url).netloc
        if host in self.unreachable:
            return None
        try:
            return _remote_size(url, self.timeout)
        except (requests.ConnectionError, requests.Timeout) as err:
            self.unreachable[host] = _reason(err)
            print(
                f"{host}: cannot be reached ({self.unreachable[host]}): the sizes of its files are unknown, and a run "
                "needs it (or --url naming a mirror or a local folder)",
                flush=True,
            )
            return None
        except requests.HTTPError as err:
            if host not in self.refusing:  # a proxy or a moved file: say it, once per server
                self.refusing.add(host)
                status = err.response.status_code if err.response is not None else "an error"
                print(f"{host}: answered {status} for {url.rsplit('/', 1)[-1]} (so its size is unknown)", flush=True)
            return None
        except requests.RequestException:
            return None


def read_md5_listing(source: str, timeout: float = 60.0) -> dict[str, str]:
    """``{file name: md5}`` from an ``md5sum``-style listing (``<md5>  <name>`` per line), a URL or a local file."""
    import requests

    try:
        if _is_remote(source):
            response = requests.get(source, timeout=timeout)
            response.raise_for_status()
            text = response.text
        else:
            text = Path(_local_path(source)).read_text(encoding="utf-8")
    except (OSError, requests.RequestException) as err:
        raise PrepareError(f"checksum listing {source}: cannot read it ({_reason(err)})") from None
    listing = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        match = re.fullmatch(r"([0-9a-fA-F]{32}) [ *](.+)", line.rstrip("\r"))
        if not match:
            raise PrepareError(f"checksum listing {source} line {number}: expected '<md5>  <file name>', got {line!r}")
        listing[match.group(2)] = match.group(1).lower()
    if not listing:
        raise PrepareError(f"checksum listing {source}: no '<md5>  <file name>' lines")
    return listing


def file_md5(path: Path) -> str:
    import pooch

    return pooch.file_hash(str(path), alg="md5")


def file_sha256(path: Path) -> str:
    import pooch

    return pooch.file_hash(str(path), alg="sha256")


class ResumableDownloader:
    """A pooch downloader that resumes: bytes arrive in ``part`` (a fixed name beside the destination, so it outlives
    an interrupted run), a later call asks the server for the rest with ``Range: bytes=N-``, and the complete file is
    moved to pooch's temporary file, which pooch then verifies and moves into place (deleting it when the checksum is
    wrong, so a corrupt download is never resumed from)."""

    def __init__(self, part: Path, *, progress: bool, timeout: float, label: str):
        self.part, self.progress, self.timeout, self.label = part, progress, timeout, label
        self.resumed_from = 0

    def __call__(self, url: str, output_file: str, pooch=None) -> None:
        if not _is_remote(url):
            source = Path(_local_path(url))
            if not source.is_file():
                raise PrepareError(f"{self.label}: no such file {source}")
            shutil.copyfile(source, self.part)
            os.replace(self.part, output_file)
            return
        import requests
        from tqdm.auto import tqdm

        offset = self.part.stat().st_size if self.part.exists() else 0
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        with requests.get(url, headers=headers, stream=True, timeout=self.timeout) as response:
            if response.status_code == 416 and offset:  # the part is already as long as the file, or longer
                self.part.unlink()
                return self(url, output_file, pooch)
            response.raise_for_status()
            if offset and response.status_code != 206:  # the server ignored the Range header: whole file again
                offset = 0
            self.resumed_from = offset
            length = response.headers.get("content-length")
            total = offset + int(length) if length and length.isdigit() else None
            with (
                open(self.part, "ab" if offset else "wb") as fh,
                tqdm(
                    total=total,
                    initial=offset,
                    unit="B",
                    unit_scale=True,
                    desc=self.label,
                    disable=not self.progress,
                    leave=False,
                ) as bar,
            ):
                for chunk in response.iter_content(CHUNK):
                    fh.write(chunk)
                    bar.update(len(chunk))
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(self.part, output_file)


def remote_exists(url: str, timeout: float) -> bool:
    """Whether the server (or folder) has `url`: True on 200, False on 404; anything else is a PrepareError, so an
    unreachable server is not taken for a missing file."""
    import requests

    if not _is_remote(url):
        return Path(_local_path(url)).is_file()
    try:
        response = requests.head(url, allow_redirects=True, timeout=timeout)
    except requests.RequestException as err:
        raise PrepareError(f"cannot reach {url} ({_reason(err)})") from None
    if response.status_code == 404:
        return False
    if not response.ok:
        raise PrepareError(f"{url} answered HTTP {response.status_code}")
    return True


def fetch(
    url: str,
    dest: Path,
    md5: str | None,
    *,
    progress: bool = True,
    timeout: float = 60.0,
    retries: int = 3,
    backoff: float = 2.0,
    sha256: str | None = None,
) -> bool:
    """Makes `dest` the file at `url` with checksum `md5` (or `sha256`): nothing is fetched when `dest` already has it (returns
    False); otherwise it is downloaded (resuming a partial ``dest.part``), verified, and moved into place (True). A
    dropped connection is retried `retries` times, waiting `backoff` seconds and doubling; a wrong checksum raises
    :class:`PrepareError` naming the file, after one fresh try when the bad file had been resumed. With `md5` None
    (a source that publishes no checksums) a file already in place is kept as it is."""
    import pooch
    import requests

    if dest.is_file() and (file_sha256(dest) == sha256 if sha256 else md5 is None or file_md5(dest) == md5):
        return False
    pooch.get_logger().setLevel("WARNING")  # our progress bars and summary say what pooch's info lines would
    part = dest.with_name(dest.name + ".part")
    attempt, fresh_try_done = 0, False
    while True:
        downloader = ResumableDownloader(part, progress=progress, timeout=timeout, label=dest.name)
        try:
            known = f"sha256:{sha256}" if sha256 else f"md5:{md5}" if md5 else None
            pooch.retrieve(url, known_hash=known, fname=dest.name, path=dest.parent, downloader=downloader)
            return True
        except requests.HTTPError as err:
            status = err.response.status_code if err.response is not None else "?"
            raise PrepareError(f"{dest.name}: {url} answered HTTP {status}") from None
        except requests.RequestException as err:
            if attempt >= retries:
                kept = (
                    f"; the {human_size(part.stat().st_size)} received are kept in {part}: rerun to resume"
                    if part.exists() and part.stat().st_size
                    else "; rerun when the server can be reached"
                )
                raise PrepareError(f"{dest.name}: cannot download {url} ({_reason(err)}){kept}") from None
            time.sleep(backoff * 2**attempt)
            attempt += 1
        except OSError as err:
            if err.errno == errno.ENOSPC:
                raise PrepareError(
                    f"{dest}: the disk is full ({human_size(part.stat().st_size if part.exists() else 0)} received "
                    f"are kept in {part}; free some space and rerun to resume)"
                ) from None
            raise PrepareError(f"{dest}: {err.strerror or err}") from None
        except ValueError as err:
            if isinstance(err, PrepareError):
                raise
            got = re.search(r"but got (\w+)", str(err))
            if downloader.resumed_from and not fresh_try_done:  # the kept part may have been the bad bit
                fresh_try_done = True
                continue
            raise PrepareError(
                f"{dest.name}: checksum mismatch for {url}: expected "
                + (f"sha256 {sha256}" if sha256 else f"md5 {md5}")
                + f", got {got.group(1) if got else '?'} "
                "(the download was deleted; the source holds a different version, or the transfer was corrupted)"
            ) from None


def _reason(err: BaseException) -> str:
    """The cause of a requests/OS error, short: requests nests urllib3's reason (``[Errno 111] Connection refused``)
    several levels deep in one long string."""
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    text = str(err)
    match = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    if match:
        return match.group(1).strip()
    if "timed out" in text.lower():
        return "timed out"
    return re.sub(r"\s+", " ", text)[:200] or type(err).__name__
