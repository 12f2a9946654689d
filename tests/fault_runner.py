"""`python tests/fault_runner.py ARGS...` runs `recipes/train.py ARGS...` as `python recipes/train.py` would, and can
stop at a chosen point so that a test SIGKILLs it exactly there (tests/test_training_faults.py):

- `FAULT_PAUSE_AT_STEP=N`: before training step N + 1 (N optimizer steps done, between two checkpoint saves);
- `FAULT_PAUSE_IN_SAVE=N`: in the middle of writing `checkpoint-N` (its weights written; optimizer, scheduler, RNG
  state, trainer state and completion manifest not yet).

On pausing it writes its pid into the file `FAULT_SIGNAL` and sleeps until it is killed.
"""

from __future__ import annotations

import os
import runpy
import sys
import time
from pathlib import Path

from hf_audiocap.training.trainer import AudioCapTrainer

REPO_ROOT = Path(__file__).resolve().parents[1]


def _pause() -> None:
    Path(os.environ["FAULT_SIGNAL"]).write_text(str(os.getpid()))
    while True:
        time.sleep(1)


def _install_pauses() -> None:
    at_step = int(os.environ.get("FAULT_PAUSE_AT_STEP", -1))
    in_save = int(os.environ.get("FAULT_PAUSE_IN_SAVE", -1))
    training_step, save_model = AudioCapTrainer.training_step, AudioCapTrainer.save_model

    def paused_training_step(self, *args, **kwargs):
        if self.state.global_step == at_step:
            _pause()
        return training_step(self, *args, **kwargs)

    def paused_save_model(self, output_dir=None, _internal_call=False):
        save_model(self, output_dir, _internal_call)
        if _internal_call and self.state.global_step == in_save:
            _pause()

    AudioCapTrainer.training_step = paused_training_step
    AudioCapTrainer.save_model = paused_save_model


if __name__ == "__main__":
    _install_pauses()
    script = REPO_ROOT / "recipes" / "train.py"
    sys.argv = [str(script), *sys.argv[1:]]
    runpy.run_path(str(script), run_name="__main__")
