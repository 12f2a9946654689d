"""Helpers shared by the recipe tests: a tiny SynthCaps dataset and `recipes/train.py`'s `main` run in-process."""

from __future__ import annotations

import functools
import json
import runpy
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

# A 1-layer, 32-wide model (seconds to train a few steps on 2 cores), as YAML for `--config_overrides`.
TINY_MODEL = (
    "{encoder: {d_model: 32, encoder_layers: 1, encoder_attention_heads: 2, encoder_ffn_dim: 64}, "
    "decoder: {d_model: 32, decoder_layers: 1, decoder_attention_heads: 2, decoder_ffn_dim: 64}}"
)


@functools.cache
def recipe_main(name: str = "train"):
    """`main` of `recipes/<name>.py` (the real entry point, imported by path like `python recipes/<name>.py`)."""
    return runpy.run_path(str(REPO_ROOT / "recipes" / f"{name}.py"), run_name=f"recipes_{name}")["main"]


def make_synthcaps(path: Path, num_train: int = 24, num_validation: int = 6, num_test: int = 6) -> Path:
    from hf_audiocap.data.synthcaps import generate_synthcaps

    generate_synthcaps(path, seed=0, num_train=num_train, num_validation=num_validation, num_test=num_test)
    return Path(path)


def tiny_run_args(data: Path, out: Path, **overrides) -> list[str]:
    """Command-line arguments of a short tiny-model run on SynthCaps at `data`; `overrides` win."""
    values = {
        "dataset": "synthcaps",
        "dataset_path": str(data),
        "output_dir": str(out),
        "config_overrides": TINY_MODEL,
        "group_captions": "true",
        "max_steps": 6,
        "per_device_train_batch_size": 4,
        "per_device_eval_batch_size": 8,
        "learning_rate": "3e-3",
        "warmup_steps": 0,
        "logging_steps": 1,
        "eval_strategy": "no",
        "save_strategy": "no",
        "predict_with_generate": "true",
        "generation_max_length": 12,
        "report_to": "none",
        "dataloader_num_workers": 0,
        "disable_tqdm": "true",
        "seed": 0,
    }
    values.update(overrides)
    argv = []
    for key, value in values.items():
        argv += [f"--{key}", str(value)]
    return argv


def train_losses(out: Path) -> list[float]:
    state = json.loads((Path(out) / "trainer_state.json").read_text())
    return [e["loss"] for e in state["log_history"] if "loss" in e]


def log_history(out: Path) -> list[dict]:
    return json.loads((Path(out) / "trainer_state.json").read_text())["log_history"]


@functools.cache
def shared_tiny_run() -> tuple[Path, Path]:
    """(SynthCaps folder, output folder) of one 16-step tiny run with evaluation every 8 steps, checkpoints and
    TensorBoard, trained once per test process and shared by the test files that only read it."""
    import atexit
    import shutil
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="hf_audiocap_run_"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    data = make_synthcaps(root / "synthcaps")
    out = root / "run"
    recipe_main()(
        tiny_run_args(
            data,
            out,
            max_steps=16,
            logging_steps=2,
            eval_strategy="steps",
            eval_steps=8,
            save_strategy="steps",
            save_steps=8,
            report_to="tensorboard",
            generation_num_beams=2,
        )
    )
    return data, out


def run_without_hf_audiocap(body: str, cwd: Path, marker: str) -> str:
    """Runs `body` (Python source, dedented) in a fresh interpreter where hf_audiocap cannot be imported (only
    transformers' site-packages on the path; -I -S: no user site, no .pth hooks such as the editable install's),
    offline, with its own remote-code module cache under `cwd`; asserts it succeeds and returns what it printed after
    `marker`."""
    import os
    import subprocess
    import sys
    import textwrap

    import transformers

    site = os.path.dirname(os.path.dirname(transformers.__file__))
    guard = f"""
import sys
sys.path[:] = [p for p in sys.path if not p.startswith({str(REPO_ROOT)!r})] + [{site!r}]
try:
    import hf_audiocap
    sys.exit("hf_audiocap must not be importable here")
except ImportError:
    pass
"""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(Path(cwd) / "modules"))
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", guard + textwrap.dedent(body)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.split(marker, 1)[1].strip()
