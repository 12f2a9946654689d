"""Data-parallel training on CPU: `recipes/train.py` under `torchrun --nproc_per_node 2` (gloo) ends with identical
weights on both ranks and logs the same training loss as one process with the same global batch.

(`accelerate launch --cpu --num_processes 2` silently starts ONE process; torchrun, or `accelerate launch
--config_file recipes/accelerate_configs/cpu_2proc.yaml`, starts two.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from recipe_helpers import REPO_ROOT, log_history, make_synthcaps, recipe_main, tiny_run_args

# dropout 0 so that both runs compute the same function; non-grouped (clip, caption) pairs
NO_DROPOUT_MODEL = (
    "{encoder: {d_model: 32, encoder_layers: 1, encoder_attention_heads: 2, encoder_ffn_dim: 64, dropout: 0.0}, "
    "decoder: {d_model: 32, decoder_layers: 1, decoder_attention_heads: 2, decoder_ffn_dim: 64, dropout: 0.0}}"
)


def run_args(data, out, batch):
    return tiny_run_args(
        data,
        out,
        config_overrides=NO_DROPOUT_MODEL,
        group_captions="false",
        per_device_train_batch_size=batch,
        max_steps=4,
        test_split="null",
        eval_split="null",
        learning_rate="1e-3",
    )


@pytest.mark.slow
def test_two_processes_match_one_process(tmp_path, monkeypatch):
    data = make_synthcaps(tmp_path / "synthcaps", num_train=8, num_validation=2, num_test=2)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_"))}
    env.update(OMP_NUM_THREADS="1", HF_AUDIOCAP_WEIGHTS_DIGEST_DIR=str(tmp_path / "digest2"), HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29571"]
    cmd += [str(REPO_ROOT / "recipes" / "train.py"), *run_args(data, tmp_path / "ddp", batch=4)]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]

    digests = [json.loads((tmp_path / "digest2" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(d["world_size"] == 2 and d["step"] == 4 for d in digests), digests
    assert digests[0]["sha256"] == digests[1]["sha256"], "the replicas diverged"

    # one process, the same global batch (2 x 4 = 8 pairs)
    monkeypatch.setenv("HF_AUDIOCAP_WEIGHTS_DIGEST_DIR", str(tmp_path / "digest1"))
    recipe_main()(run_args(data, tmp_path / "single", batch=8))
    ddp = [e["loss"] for e in log_history(tmp_path / "ddp") if "loss" in e]
    single = [e["loss"] for e in log_history(tmp_path / "single") if "loss" in e]
    assert len(ddp) == len(single) == 4
    # same examples per step and the loss normalised by the global token count (num_items_in_batch): equal up to
    # float32 summation order (all-reduce of two partial sums vs one sum)
    assert ddp == pytest.approx(single, rel=1e-4), (ddp, single)
