"""Files written whole or not at all: the CLI's `--output`, the test and evaluation reports, the ratings summary."""

from __future__ import annotations

import os
import tempfile


def write_atomic(path: str | os.PathLike, text: str | bytes, *, durable: bool = True) -> None:
    """Writes `text` (UTF-8; bytes as they are) to a temporary file beside `path`, then renames it over `path`: an existing file is
    either left whole or replaced whole, never half-written, whatever interrupts the write. The temporary file is
    removed on failure; the new file keeps the old one's permissions (or gets the umask's). `durable=False` skips the
    flush to disk (for caches: a file lost in a power cut is made again, and thousands of syncs are slow)."""
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        binary = isinstance(text, bytes)
        with os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        if os.path.exists(path):
            os.chmod(tmp, os.stat(path).st_mode & 0o777)
        else:
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
