"""`python tests/streaming_ddp_runner.py ARGS...` runs `recipes/train.py ARGS...` and records, per process, the clip
ids of every training batch in `$STREAM_IDS_DIR/rank<k>.json` (tests/test_streaming.py runs it under torchrun)."""

from __future__ import annotations

import json
import os
import runpy
import sys
from pathlib import Path

from hf_audiocap.training.trainer import AudioCapTrainer

REPO_ROOT = Path(__file__).resolve().parents[1]


def _record_clip_ids() -> None:
    folder = Path(os.environ["STREAM_IDS_DIR"])
    training_step = AudioCapTrainer.training_step
    seen: list[list[str]] = []

    def recording_training_step(self, model, inputs, *args, **kwargs):
        seen.append([str(i) for i in inputs.get("clip_ids") or []])
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"rank{self.args.process_index}.json").write_text(json.dumps(seen))
        return training_step(self, model, inputs, *args, **kwargs)

    AudioCapTrainer.training_step = recording_training_step


if __name__ == "__main__":
    _record_clip_ids()
    sys.argv = [str(REPO_ROOT / "recipes" / "train.py"), *sys.argv[1:]]
    runpy.run_path(sys.argv[0], run_name="__main__")
