"""Data-parallel training on CPU: `recipes/train.py` under `torchrun --nproc_per_node 2` (gloo) ends with identical
weights on both ranks and logs the same training loss as one process with the same global batch. The SCST loss is
scaled for gradient accumulation and several processes as the cross-entropy is, and a stream split by node is read
whole by its own process (on the toy captioner of test_training_faults.py, so on every transformers of the range).

(`accelerate launch --cpu --num_processes 2` silently starts ONE process; torchrun, or `accelerate launch
--config_file recipes/accelerate_configs/cpu_2proc.yaml`, starts two.)

`python tests/test_distributed.py OUT` is the toy two-process worker that test_toy_two_processes runs under torchrun.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from recipe_helpers import REPO_ROOT, log_history, make_synthcaps, recipe_main, tiny_run_args
from test_training_faults import ToyCaptioner, toy_clips, toy_trainer

from hf_audiocap.training.trainer import scst_loss_share

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
    # the plain cross-entropy logged beside the objective is token-weighted over both processes: that of one process
    parts = {
        run: [e[key] for e in log_history(tmp_path / run) if "loss" in e for key in ("caption_loss", "keyword_loss")]
        for run in ("ddp", "single")
    }
    assert len(parts["ddp"]) == 8 and parts["ddp"] == pytest.approx(parts["single"], abs=2e-4), parts


# --- SCST loss scaling and a stream split by node, on the toy captioner ------------------------------------------------


def toy_scst_loss(model, inputs, references, reward, decode, num_samples=5, max_length=32, sampling="sample"):
    """Stands for `scst.scst_loss` (which samples with `generate`): the mean over the batch's clips of a differentiable
    function of each clip, and a mean reward."""
    logits = model(input_features=inputs["input_features"], attention_mask=inputs["attention_mask"])["logits"]
    return logits.logsumexp(-1).mean(), 0.5


def constant_scst_loss(model, inputs, *args, **kwargs):
    """An SCST loss of exactly 1 for every batch (a gradient of zero)."""
    logits = model(input_features=inputs["input_features"], attention_mask=inputs["attention_mask"])["logits"]
    return 1.0 + 0.0 * logits.sum(), 0.5


def _scst_args(**overrides) -> dict:
    values = {
        "train_clips": toy_clips(16),
        "scst": True,
        "optim": "sgd",  # the step follows the gradient's scale (Adam would normalise a wrongly scaled one away)
        "learning_rate": 0.5,
        "max_steps": 2,
        "train_sampling_strategy": "sequential",
        "trainer_kwargs": {"scst_reward": object()},
    }
    values.update(overrides)
    return values


def test_scst_loss_share():
    assert scst_loss_share(4, None, 2, True) == 1.0  # the Trainer divides by the accumulated batches itself
    assert scst_loss_share(torch.tensor(4), torch.tensor(12), 1, True) == pytest.approx(1 / 3)
    # label tokens of both processes counted: DDP averages the gradients, so the share is multiplied back by 2
    assert scst_loss_share(torch.tensor(4), torch.tensor(16), 2, True) == pytest.approx(0.5)
    assert scst_loss_share(torch.tensor(4), torch.tensor(8), 2, False) == pytest.approx(0.5)


@pytest.mark.parametrize("counts_tokens", [True, False], ids=["num_items_in_batch", "no_num_items_in_batch"])
def test_scst_loss_is_scaled_for_gradient_accumulation(tmp_path, monkeypatch, counts_tokens):
    """An SCST loss of 1 on every batch logs 1 at every optimizer step: 3 batches accumulated, and the last, shorter
    accumulation of an epoch (10 clips in batches of 2: steps of 3 + 2 batches), whether the Trainer counts the label
    tokens of the step (a model that takes `num_items_in_batch`) or divides by the number of batches itself."""
    import hf_audiocap.training.trainer as trainer_module

    monkeypatch.setattr(trainer_module, "scst_loss", constant_scst_loss)
    model = ToyCaptioner()
    model.accepts_loss_kwargs = counts_tokens
    trainer = toy_trainer(
        tmp_path / "scst",
        model=model,
        **_scst_args(train_clips=toy_clips(10), gradient_accumulation_steps=3, max_steps=4),
    )
    trainer.train()
    logged = [e for e in trainer.state.log_history if "loss" in e]
    assert [e["loss"] for e in logged] == pytest.approx([1.0] * 4, abs=1e-6)
    assert [e["scst_reward"] for e in logged] == [0.5] * 4


@pytest.mark.slow  # two real processes (~7 s of imports each)
def test_toy_two_processes(tmp_path, monkeypatch):
    """torchrun, 2 CPU processes (gloo), the worker below:
    1. SCST with 2 accumulated batches of 2 clips per process logs the same losses and ends with the same weights as
       one process accumulating 2 batches of 4 (the same 8 clips per optimizer step; plain SGD, so a wrongly scaled
       gradient would move the weights by another amount);
    2. a stream split by node (`train_split_by_node`) is read by each process whole and in order, disjoint from the
       other's (accelerate would dispatch rank 0's batches, or shard the part again)."""
    import hf_audiocap.training.trainer as trainer_module

    env = {k: v for k, v in os.environ.items() if not k.startswith(("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_"))}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29577"]
    cmd += [str(Path(__file__)), str(tmp_path / "ddp")]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    ranks = [json.loads((tmp_path / "ddp" / f"rank{r}.json").read_text()) for r in (0, 1)]

    monkeypatch.setattr(trainer_module, "scst_loss", toy_scst_loss)
    single = toy_trainer(
        tmp_path / "single",
        **_scst_args(per_device_train_batch_size=4, gradient_accumulation_steps=2),
    )
    single.train()
    losses = [e["loss"] for e in single.state.log_history if "loss" in e]
    start = ToyCaptioner().state_dict()
    for rank in ranks:
        assert rank["scst_losses"] == pytest.approx(losses, rel=1e-5), (rank["scst_losses"], losses)
        for name, value in single.model.state_dict().items():
            theirs = torch.tensor(rank["scst_weights"][name])
            assert not torch.allclose(value, start[name]), name  # the weights moved
            torch.testing.assert_close(theirs, value, rtol=1e-5, atol=1e-6)

    parts = [rank["stream_ids"] for rank in ranks]
    assert sorted(parts[0] + parts[1]) == sorted(f"clip{i}" for i in range(8)) and not set(parts[0]) & set(parts[1])
    from datasets.distributed import split_dataset_by_node

    for r, part in enumerate(parts):
        own = split_dataset_by_node(toy_clips(8).to_iterable_dataset(num_shards=4), rank=r, world_size=2)
        assert part == [row["id"] for row in own], r


def _two_process_worker(out: Path) -> None:
    """Under torchrun: the SCST run, then the stream, each process writing what it saw to `out/rank<k>.json`."""
    from datasets.distributed import split_dataset_by_node

    import hf_audiocap.training.trainer as trainer_module

    rank = int(os.environ["RANK"])
    trainer_module.scst_loss = toy_scst_loss
    scst = toy_trainer(out / "scst", **_scst_args(gradient_accumulation_steps=2))
    scst.train()
    seen = {
        "scst_losses": [e["loss"] for e in scst.state.log_history if "loss" in e],
        "scst_weights": {k: v.tolist() for k, v in scst.model.state_dict().items()},
        "stream_ids": [],
    }
    training_step = trainer_module.AudioCapTrainer.training_step

    def recording_training_step(self, model, inputs, *args, **kwargs):
        seen["stream_ids"] += list(inputs["clip_ids"])
        return training_step(self, model, inputs, *args, **kwargs)

    trainer_module.AudioCapTrainer.training_step = recording_training_step
    part = split_dataset_by_node(toy_clips(8).to_iterable_dataset(num_shards=4), rank=rank, world_size=2)
    stream = toy_trainer(out / "stream", train_clips=part, max_steps=2, trainer_kwargs={"train_split_by_node": True})
    stream.train()
    (out / f"rank{rank}.json").write_text(json.dumps(seen))
    # as recipes/train.py ends, then without interpreter finalisation (see test_fsdp's worker)
    trainer_module.end_distributed()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    _two_process_worker(Path(sys.argv[1]))
