"""Checkpoints that are either complete or never resumed from.

The Trainer writes `checkpoint-N/` file by file (weights, optimizer, scheduler, RNG states, `trainer_state.json`), so a
run killed in the middle leaves a folder that looks like a checkpoint, and transformers' `get_last_checkpoint` picks
it. `CheckpointCompletionCallback` (added by `AudioCapTrainer`) writes `checkpoint_complete.json` last, in `on_save`,
once every process has written its part: the size of every file of the folder, each file flushed to disk (fsync)
first, the manifest itself written under a temporary name and renamed. A folder is complete when its manifest is there
and every file it lists has the listed size; `last` is the newest complete folder. Older checkpoints are deleted
(`save_total_limit`) only once the new one is complete, by the callback: `AudioCapTrainingArguments` keeps the limit in
`checkpoint_total_limit` and gives transformers none, whose own rotation runs inside its save, before `on_save`. A
folder about to be written again (after a resume) is emptied first, at the step's end, so it is never complete before
its new files are. A run stopped by Ctrl-C says which checkpoint `last` is and the command resuming from it
(`exit_on_interrupt`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shlex
import shutil
import sys
from pathlib import Path

from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from hf_audiocap.data.atomic import write_atomic

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
    write_atomic(folder / MANIFEST_NAME, json.dumps({"files": files}, indent=1, sort_keys=True))
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


def resume_command(argv: list[str] | None, script: str = "recipes/train.py") -> str:
    """The command line of a run (`argv`: its recipe and overrides; None: this program's) that resumes it from its
    newest complete checkpoint: the same arguments, any resume_from_checkpoint replaced by `last`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    kept, i = [], 0
    while i < len(argv):
        key = argv[i].partition("=")[0].replace("-", "_")
        if key == "__resume_from_checkpoint":
            if "=" not in argv[i] and i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                i += 1  # its value
        else:
            kept.append(argv[i])
        i += 1
    return shlex.join(["python", script, *kept, "--resume_from_checkpoint", "last"])


@contextlib.contextmanager
def exit_on_interrupt(
    output_dir: str | Path, argv: list[str] | None, script: str = "recipes/train.py", say: bool = True
):
    """Ctrl-C inside (KeyboardInterrupt) ends the program with exit code 130 (128 + SIGINT) and, where `say` (the main
    process), one line naming the newest complete checkpoint of `output_dir` and the command resuming from it, instead
    of a traceback."""
    try:
        yield
    except KeyboardInterrupt:
        if say:
            last = last_complete_checkpoint(output_dir)
            command = resume_command(argv, script)
            if last:
                line = f"interrupted: the last complete checkpoint is {last}; resume with: {command}"
            else:
                line = (
                    f"interrupted before the first complete checkpoint (none in {output_dir}); start again with: "
                    f"{command}"
                )
            print(f"\n{line}", file=sys.stderr, flush=True)
        raise SystemExit(130) from None


def checkpoint_folder(output_dir: str | Path, step: int) -> Path:
    """Where the Trainer writes the checkpoint of `step`."""
    return Path(output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{step}"


def _step(folder: Path) -> int:
    return int(_STEP.match(folder.name).group(1))


def _remove(folder: Path) -> None:
    """Delete a checkpoint folder, its manifest first: a deletion cut short leaves a folder that is incomplete."""
    (folder / MANIFEST_NAME).unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)


def rotate_checkpoints(
    output_dir: str | Path, limit: int | None, current: str | Path, best: str | Path | None = None
) -> list[Path]:
    """Once `current` is complete, keep `limit` checkpoints of `output_dir`: `current`, the best one (as transformers,
    both even past the limit) and the newest complete ones before `current`; delete every other `checkpoint-N` folder:
    older complete ones, incomplete ones (never resumed from), and those after `current` (left by a run this one
    resumed before them: it writes its own). `limit` None or <= 0: nothing is deleted. Returns the deleted folders."""
    if limit is None or limit <= 0:
        return []
    current = Path(current)
    kept = {current.resolve()}
    if best is not None and Path(best).is_dir():
        kept.add(Path(best).resolve())
    for folder in checkpoint_folders(output_dir):  # newest first
        if len(kept) >= limit:
            break
        if _step(folder) < _step(current) and incomplete_reason(folder) is None:
            kept.add(folder.resolve())
    deleted = [folder for folder in checkpoint_folders(output_dir) if folder.resolve() not in kept]
    for folder in deleted:
        logger.info("deleting %s (save_total_limit %d)", folder, limit)
        _remove(folder)
    return deleted


class CheckpointCompletionCallback(TrainerCallback):
    """Makes the Trainer's checkpoints complete or ignored, through callback events only.

    - `on_step_end` / `on_epoch_end` (after transformers' own flow callback has decided `control.should_save`): when a
      save may follow and `checkpoint-<step>` already exists (written by a run this one resumed before it), it is
      emptied, so that it never looks complete while its new files are written;
    - `on_save` (after the Trainer has written the whole folder): once every process has written its part (its RNG
      state), the main process writes the manifest, then deletes old checkpoints beyond `args.checkpoint_total_limit`
      (see `rotate_checkpoints`);
    - `on_train_end`: with a limit of 1 and a best checkpoint, only that one is kept (what transformers does at the end).

    transformers must not rotate checkpoints itself (its rotation runs inside its save, before `on_save`, and can delete
    the last complete checkpoint while the new one is still incomplete): `args.save_total_limit` must be None and the
    limit is read from `args.checkpoint_total_limit` (`AudioCapTrainingArguments` and `AudioCapTrainer` move it there).
    The folder is `<output_dir>/checkpoint-<global_step>`, where the Trainer writes it (a hyperparameter search, whose
    trials write elsewhere, is not supported)."""

    def on_train_begin(self, args, state, control, **kwargs):
        if args.save_total_limit is not None:
            raise ValueError(
                "save_total_limit is set on the Trainer's arguments: transformers would delete old checkpoints before the "
                "new one is complete; set checkpoint_total_limit instead (AudioCapTrainingArguments moves it there)"
            )

    def on_step_end(self, args, state, control, **kwargs):
        self._empty_before_save(args, state, control)

    def on_epoch_end(self, args, state, control, **kwargs):
        self._empty_before_save(args, state, control)

    def on_save(self, args, state, control, **kwargs):
        from accelerate import PartialState

        PartialState().wait_for_everyone()  # every process has written its part of the folder
        if not args.should_save:
            return
        folder = checkpoint_folder(args.output_dir, state.global_step)
        if not folder.is_dir():
            logger.warning("no checkpoint folder at %s after a save: not marked complete", folder)
            return
        mark_complete(folder)
        rotate_checkpoints(
            args.output_dir, getattr(args, "checkpoint_total_limit", None), folder, state.best_model_checkpoint
        )

    def on_train_end(self, args, state, control, **kwargs):
        best = state.best_model_checkpoint
        if getattr(args, "checkpoint_total_limit", None) == 1 and best and args.should_save and Path(best).is_dir():
            rotate_checkpoints(args.output_dir, 1, best)

    @staticmethod
    def _empty_before_save(args, state, control) -> None:
        # save_strategy "best" decides whether to save only after the evaluation that follows this event
        may_save = control.should_save or (args.save_strategy == "best" and control.should_evaluate)
        if not may_save:
            return
        from accelerate import PartialState

        folder = checkpoint_folder(args.output_dir, state.global_step)
        if args.should_save and folder.is_dir():
            logger.info("emptying %s: this run writes it again", folder)
            _remove(folder)
        PartialState().wait_for_everyone()  # no process writes into the folder before it is emptied
