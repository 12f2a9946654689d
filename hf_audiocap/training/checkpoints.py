"""Checkpoints that are either complete or never resumed from.

The Trainer writes `checkpoint-N/` file by file (weights, optimizer, scheduler, RNG states, `trainer_state.json`), so a
run killed in the middle leaves a folder that looks like a checkpoint, and transformers' `get_last_checkpoint` picks
it. `AudioCapTrainer` writes `checkpoint_complete.json` last: the size of every file of the folder, each file flushed
to disk (fsync) first, the manifest itself written under a temporary name and renamed. A folder is complete when its
manifest is there and every file it lists has the listed size; `last` is the newest complete folder. Older
checkpoints are deleted (`save_total_limit`) only once the new one is complete, and a folder about to be written
again (after a resume) is emptied first, so it is never complete before its new files are.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

logger = logging.getLogger(__name__)

MANIFEST_NAME = "checkpoint_complete.json"
_STEP = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")


def mark_complete(folder: str | Path) -> None:
    """Flush every file of `folder` to disk, then atomically write the manifest that makes it a complete checkpoint."""
    folder = Path(folder)
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST_NAME):
        with open(path, "rb") as f:
            os.fsync(f.fileno())
        files[path.relative_to(folder).as_posix()] = path.stat().st_size
    tmp = folder / f".{MANIFEST_NAME}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"files": files}, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, folder / MANIFEST_NAME)
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)  # the rename itself
    finally:
        os.close(fd)


def incomplete_reason(folder: str | Path) -> str | None:
    """None for a complete checkpoint, else why it is not (one line)."""
    folder = Path(folder)
    try:
        listed = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))["files"]
    except FileNotFoundError:
        return f"no {MANIFEST_NAME} (the run stopped while writing it)"
    except (ValueError, KeyError, TypeError) as err:
        return f"unreadable {MANIFEST_NAME} ({err})"
    for name, size in listed.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != size:
            return f"{name} has {path.stat().st_size} bytes, the manifest says {size}"
    return None


def checkpoint_folders(output_dir: str | Path) -> list[Path]:
    """`checkpoint-N` folders of `output_dir`, newest (highest N) first."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in output_dir.iterdir() if p.is_dir() and (m := _STEP.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def last_complete_checkpoint(output_dir: str | Path) -> str | None:
    """The newest complete checkpoint folder of `output_dir` (None when there is none); incomplete ones are skipped
    with a warning naming them."""
    for folder in checkpoint_folders(output_dir):
        reason = incomplete_reason(folder)
        if reason is None:
            return str(folder)
        logger.warning("not resuming from %s: incomplete, %s", folder, reason)
    return None


def resolve_checkpoint(resume_from_checkpoint: str | bool | None, output_dir: str | Path) -> str | None:
    """What `Trainer.train(resume_from_checkpoint=...)` should load: `last` (or True) is the newest complete
    checkpoint of `output_dir` (None, a fresh start, when there is none); a folder is checked to be complete."""
    if resume_from_checkpoint in (None, False, ""):
        return None
    if resume_from_checkpoint is True or resume_from_checkpoint == "last":
        found = last_complete_checkpoint(output_dir)
        if found is None:
            logger.info("no complete checkpoint in %s: training from the start", output_dir)
        else:
            logger.info("resuming from %s, the newest complete checkpoint", found)
        return found
    folder = Path(resume_from_checkpoint)
    if not folder.is_dir():
        raise FileNotFoundError(f"resume_from_checkpoint: no checkpoint folder at {folder}")
    reason = incomplete_reason(folder)
    if reason is not None and (folder / MANIFEST_NAME).exists():
        raise ValueError(f"resume_from_checkpoint: {folder} is incomplete: {reason}")
    if reason is not None:
        logger.warning("%s has no %s (written by another tool?): resuming from it as asked", folder, MANIFEST_NAME)
    return str(folder)
