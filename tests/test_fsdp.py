"""Fully sharded data-parallel training (FSDP2) with the wrap policy `recipes/accelerate_configs/fsdp.yaml` gives.

accelerate runs FSDP on accelerators only (on a CPU machine it falls back to plain data-parallel), so these tests take
the two steps it would take: the policy from fsdp.yaml (accelerate's own `set_auto_wrap_policy` and
`fsdp2_prepare_auto_wrap_policy`, as its `fsdp2_prepare_model` calls them) must
shard every encoder and decoder/LM layer of each model kind, and the layers it picks, sharded with torch's
`fully_shard` over 2 CPU processes (gloo), must train as one process does: same losses, same weights, LoRA's frozen
weights untouched.

`python tests/test_fsdp.py OUT` is the two-process worker that test_two_sharded_processes_match_one_process runs under
torchrun.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from model_helpers import batch, composed, save_bart, save_whisper, tiny_model
from recipe_helpers import REPO_ROOT

pytest.importorskip("peft")
from test_prefix_model import WORDS, caption_labels, make_model  # noqa: E402  (needs peft)

from hf_audiocap.tokenization import build_word_tokenizer  # noqa: E402

FSDP_CONFIG = REPO_ROOT / "recipes" / "accelerate_configs" / "fsdp.yaml"
STEPS = 3


def wrap_policy(model):
    """The predicate accelerate derives from fsdp.yaml for `model`: which modules get their own FSDP unit."""
    from accelerate.utils import FullyShardedDataParallelPlugin
    from accelerate.utils.fsdp_utils import fsdp2_prepare_auto_wrap_policy

    cfg = yaml.safe_load(FSDP_CONFIG.read_text())["fsdp_config"]
    plugin = FullyShardedDataParallelPlugin(
        fsdp_version=cfg["fsdp_version"],
        auto_wrap_policy=cfg["fsdp_auto_wrap_policy"].lower(),
        transformer_cls_names_to_wrap=cfg.get("fsdp_transformer_layer_cls_to_wrap"),
    )
    plugin.set_auto_wrap_policy(model)  # the two calls of accelerate's fsdp2_prepare_model, in its order
    return fsdp2_prepare_auto_wrap_policy(plugin, model)


def prefix_model(kind: str = "llama", **kwargs):
    return make_model(build_word_tokenizer(WORDS), kind, **kwargs)


def layer_count(model) -> int:
    """Encoder layers + decoder (or LM) layers."""
    config = model.config
    if config.model_type == "audiocap_prefix":
        lm = config.lm
        return config.encoder.encoder_layers + getattr(lm, "num_hidden_layers", getattr(lm, "n_layer", 0))
    return config.encoder.encoder_layers + config.decoder.decoder_layers


@pytest.mark.parametrize(
    "build",
    [
        lambda tmp: tiny_model(),
        lambda tmp: composed(save_whisper(tmp / "whisper"), save_bart(tmp / "bart")),
        lambda tmp: prefix_model("llama"),
        lambda tmp: prefix_model("gpt2"),
        lambda tmp: prefix_model("qwen2", lora_rank=4, freeze_lm=True),
    ],
    ids=["encoder-decoder", "whisper-bart", "prefix-llama", "prefix-gpt2", "prefix-qwen2-lora"],
)
def test_fsdp_yaml_shards_every_layer_of_each_model_kind(build, tmp_path):
    """Each encoder layer and each decoder/LM layer is its own unit, and nothing else is: the model's
    `_no_split_modules` gathered from its parts and narrowed to the classes it holds (a name matching no module, as
    the built-in decoder's layer in a prefix model or BartEncoderLayer beside a BART decoder, would stop accelerate
    before training)."""
    model = build(tmp_path)
    wrapped = [name for name, module in model.named_modules() if wrap_policy(model)(module)]
    assert len(wrapped) == layer_count(model) >= 3, wrapped


def train_steps(model, shards, steps: int = STEPS, sharded: bool = False) -> list[float]:
    """AdamW steps on the mean of the shards' losses (one process: all shards; a sharded rank: its own, the
    gradients averaged by FSDP)."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = sum(model(feats, mask, labels=labels).loss for feats, mask, labels in shards) / len(shards)
        loss.backward()
        optimizer.step()
        if sharded:  # the loss of the global batch: the mean of the ranks' losses
            loss = loss.detach().clone()
            torch.distributed.all_reduce(loss)
            loss /= torch.distributed.get_world_size()
        losses.append(loss.item())
    return losses


def data_shards():
    """Two shards of two clips each (one per rank), captions of several lengths."""
    tokenizer = build_word_tokenizer(WORDS)
    captions = ["a dog barks", "rain falls on a tin roof loudly", "birds sing", "a dog barks while birds sing"]
    feats, mask = batch((61, 40, 23, 52), seed=1)
    labels = caption_labels(tokenizer, captions)
    return [(feats[i : i + 2], mask[i : i + 2], labels[i : i + 2]) for i in (0, 2)]


VARIANTS = {"full": {"freeze_lm": False}, "lora": {"lora_rank": 4, "freeze_lm": True}}


def _worker(out: Path) -> None:
    """Under torchrun: each variant's model sharded by fsdp.yaml's policy, trained on this rank's shard; rank k
    writes the losses and the gathered full weights to `out/<variant>-rank<k>.pt`."""
    import torch.distributed as dist
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import FSDPModule, fully_shard

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    mesh = init_device_mesh("cpu", (dist.get_world_size(),))
    out.mkdir(parents=True, exist_ok=True)
    for variant, kwargs in VARIANTS.items():
        model = prefix_model("llama", **kwargs)  # eval mode: no dropout, so one process computes the same function
        policy = wrap_policy(model)
        for module in [m for m in model.modules() if policy(m)]:
            fully_shard(module, mesh=mesh)
        fully_shard(model, mesh=mesh)
        units = sum(isinstance(m, FSDPModule) for m in model.modules())
        losses = train_steps(model, [data_shards()[rank]], sharded=True)
        weights = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True))
        torch.save({"losses": losses, "units": units, "weights": weights}, out / f"{variant}-rank{rank}.pt")
    # Tear down together, then leave without interpreter finalisation: a rank whose peer has already closed its
    # sockets, or whose gloo threads still hold tensors while Python shuts down, can abort in C++ after all its work
    # is written ("terminate called without an active exception", seen once in CI).
    dist.barrier()
    dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@pytest.mark.slow  # two real processes (~7 s of imports each)
def test_two_sharded_processes_match_one_process(tmp_path):
    """torchrun, 2 CPU processes: the prefix model sharded layer by layer (and the root), trained in full and with
    LoRA, gives each rank the losses and gathered weights of one process training on both shards (AdamW, so a wrongly
    averaged gradient would move the weights by another amount), and LoRA leaves the LM's own weights bit-identical."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_"))}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29591"]
    proc = subprocess.run([*cmd, __file__, str(tmp_path)], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=400)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    for variant, kwargs in VARIANTS.items():
        single = prefix_model("llama", **kwargs)
        start = {k: v.clone() for k, v in single.state_dict().items()}
        losses = train_steps(single, data_shards())
        for rank in (0, 1):
            sharded = torch.load(tmp_path / f"{variant}-rank{rank}.pt", weights_only=True)
            assert sharded["units"] == layer_count(single) + 1, sharded["units"]  # the layers and the root
            assert sharded["losses"] == pytest.approx(losses, rel=1e-5), (variant, sharded["losses"], losses)
            assert sharded["weights"].keys() == start.keys()
            for name, value in single.state_dict().items():
                theirs = sharded["weights"][name]
                torch.testing.assert_close(
                    theirs, value, rtol=1e-5, atol=1e-6, msg=lambda m, where=f"{variant} {name}": f"{where}: {m}"
                )
                trained = "lora_" in name or not name.startswith("lm.") or variant == "full"
                if not trained:
                    assert torch.equal(theirs, start[name]), f"{variant}: frozen {name} changed"
        moved = [n for n, v in single.state_dict().items() if not torch.equal(v, start[n])]
        assert moved and any("lora_" in n for n in moved) == (variant == "lora")


if __name__ == "__main__":
    _worker(Path(sys.argv[1]))
