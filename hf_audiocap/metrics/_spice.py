"""SPICE 1.0 (pycocoevalcap's ``spice-1.0.jar`` and its ``lib/``) with the CoreNLP 3.6.0 jars from the metrics cache.

pycocoevalcap's own ``Spice`` downloads a CoreNLP zip from Stanford's site into site-packages (unreachable today),
writes its temporary files and LMDB cache there too, and runs ``java -jar spice-1.0.jar``, whose ``main`` fails on
Java 15+ (see :mod:`hf_audiocap.metrics._spice_worker`). Here the jars come from the cache
(:mod:`hf_audiocap.metrics.resources`), SPICE runs in a child process (:mod:`._spice_worker`) with the module opens
its cache needs, its temporary files live in a temporary folder, and its cache of parses in the metrics cache.

Settings (environment): ``HF_AUDIOCAP_SPICE_THREADS`` (CoreNLP threads; default: CPU count),
``HF_AUDIOCAP_SPICE_MEMORY`` (the JVM's -Xmx; default 8G, as pycocoevalcap), ``HF_AUDIOCAP_SPICE_CACHE=0`` (no cache
of parses).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from . import resources
from ._java import pycocoevalcap_dir

_DOWNLOAD_TRIED = False


def spice_dir() -> Path:
    return pycocoevalcap_dir() / "spice"


def java_version(jvm_path: str) -> int | None:
    """Major version of the JVM at ``jvm_path`` (its ``release`` file), None when unknown."""
    for parent in list(Path(jvm_path).resolve().parents)[:5]:
        release = parent / "release"
        if release.is_file():
            m = re.search(r'JAVA_VERSION="(\d+)(?:\.(\d+))?', release.read_text(errors="replace"))
            if m:
                major = int(m.group(1))
                return int(m.group(2) or 0) if major == 1 else major
    return None


def java_problem() -> str | None:
    """None when a Java runtime that can run SPICE is installed, else a one-line reason."""
    try:
        import jpype

        path = jpype.getDefaultJVMPath()
    except Exception as err:  # noqa: BLE001 - JPype raises its own JVMNotFoundException
        return f"SPICE needs a Java runtime (8 or newer; install e.g. default-jre-headless): none found ({err})".split(
            "\n"
        )[0]
    version = java_version(path)
    if version is not None and version < 8:
        return f"SPICE needs Java 8 or newer; the Java at {path} is {version}"
    return None


def spice_missing_reason(fetch: bool | None = None) -> str | None:
    """None when SPICE can run here, else a one-line reason. Online (see :func:`resources.offline`) and without the
    jars, the first call fetches them (``fetch`` forces either way)."""
    global _DOWNLOAD_TRIED
    jar = spice_dir() / "spice-1.0.jar"
    if not jar.is_file():
        return f"SPICE jar missing: {jar} (reinstall pycocoevalcap)"
    problem = java_problem()
    if problem:
        return problem
    _, reason = resources.corenlp_jars()
    if reason is None:
        return None
    fetch = (not resources.offline() and not _DOWNLOAD_TRIED) if fetch is None else fetch
    if fetch:
        _DOWNLOAD_TRIED = True
        try:
            resources.download_corenlp(progress=True)
            _, reason = resources.corenlp_jars()
        except resources.DownloadError as err:
            reason = f"{reason}; fetching failed: {err}"
        if reason is None:
            return None
    where = "offline now" if resources.offline() else "or set HF_AUDIOCAP_METRICS_CACHE to a folder that has them"
    return f"{reason}: run `{resources.DOWNLOAD_COMMAND}` when online ({where})"


def classpath() -> list[str]:
    jars, reason = resources.corenlp_jars()
    if reason is not None:
        raise RuntimeError(reason)
    lib = spice_dir() / "lib"
    return [str(spice_dir() / "spice-1.0.jar"), *map(str, jars), *sorted(str(p) for p in lib.glob("*.jar"))]


@contextlib.contextmanager
def _parse_cache():
    """SPICE's LMDB cache of parses, or None when disabled or another process is using it (LMDB over one folder from
    two SPICE processes has been seen to hang: the second runs without a cache)."""
    if os.environ.get("HF_AUDIOCAP_SPICE_CACHE", "1").strip().lower() in ("0", "false", "no", "off"):
        yield None
        return
    folder = resources.cache_dir() / "spice_cache"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / "spice_cache.lock", "w") as lock:
        try:
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except (ImportError, OSError):
            yield None
            return
        yield str(folder)


def spice(hyps: list[str], refs: list[list[str]]) -> tuple[float, np.ndarray]:
    """SPICE of each clip (``All`` f-score, NaN where SPICE gives none) and their mean, as pycocoevalcap's
    ``Spice().compute_score`` on the same (tokenized) captions. Only call when :func:`spice_missing_reason` is None."""
    items = [{"image_id": i, "test": h, "refs": list(rr)} for i, (h, rr) in enumerate(zip(hyps, refs))]
    threads = int(os.environ.get("HF_AUDIOCAP_SPICE_THREADS") or os.cpu_count() or 1)
    memory = os.environ.get("HF_AUDIOCAP_SPICE_MEMORY", "8G")
    with tempfile.TemporaryDirectory(prefix="hf_audiocap_spice_") as tmp, _parse_cache() as cache:
        in_path, out_path = os.path.join(tmp, "input.json"), os.path.join(tmp, "output.json")
        with open(in_path, "w", encoding="utf-8") as f:
            json.dump(items, f)
        cmd = [sys.executable, "-m", "hf_audiocap.metrics._spice_worker", in_path, out_path,
               "--classpath", os.pathsep.join(classpath()), "--threads", str(threads), "--max_memory", memory]  # fmt: skip
        if cache is not None:
            cmd += ["--cache", cache]
        proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
        if proc.returncode != 0 or not os.path.isfile(out_path):
            lines = [line for line in proc.stderr.splitlines() if line.strip()]
            line = lines[-1].removeprefix("SPICE failed: ") if lines else f"exited with status {proc.returncode}"
            raise RuntimeError(line)
        with open(out_path, encoding="utf-8") as f:
            results = json.load(f)
    by_id = {int(item["image_id"]): _float(item["scores"]["All"]["f"]) for item in results}
    scores = np.array([by_id[i] for i in range(len(items))], dtype=np.float64)
    return float(np.mean(scores)) if len(scores) else math.nan, scores


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
