"""Imports run one way: the package root does not import the inference stack or the app (the `audio-captioning`
pipeline task is registered by name and imported when a pipeline is built), the data collator does not import the
model, and SCST uses the metrics' public modules only."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run(code: str) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO / "tests")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _imported(module: str, top_level_only: bool = False) -> set[str]:
    """The `hf_audiocap` modules a module's source imports (relative imports resolved)."""
    path = Path(importlib.util.find_spec(module).origin)
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    nodes = tree.body if top_level_only else ast.walk(tree)
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return {n for n in names if n.split(".")[0] == "hf_audiocap" and _is_module(n)}


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # `from package.module import name`: `package.module.name` is no module
        return False


def test_package_import_loads_neither_inference_nor_gradio_and_readme_pipeline_runs(tmp_path):
    """README's three lines: `import hf_audiocap`, then `pipeline("audio-captioning", model=FOLDER)`."""
    code = f"""
import json, sys
import hf_audiocap
before = sorted(m for m in sys.modules if m.startswith(("hf_audiocap.inference", "gradio")))
from audiocap_tiny import save_tiny_model
from pathlib import Path
folder = save_tiny_model(Path({str(tmp_path)!r}))
from transformers import pipeline
import numpy as np
captioner = pipeline("audio-captioning", model=str(folder))
out = captioner(np.zeros(16000, np.float32))
print(json.dumps({{"before": before, "kind": type(captioner).__name__, "caption": out["caption"]}}))
"""
    result = _run(code)
    assert result["before"] == []
    assert result["kind"] == "AudioCaptioningPipeline" and isinstance(result["caption"], str)


def _within_data(module: str, seen: set[str]) -> set[str]:
    """`module`'s top-level hf_audiocap imports, followed through the data package (what importing it loads besides
    the package root, whose public names include the model)."""
    found = set()
    for name in _imported(module, top_level_only=True):
        found.add(name)
        if name.startswith("hf_audiocap.data") and name not in seen:
            seen.add(name)
            found |= _within_data(name, seen)
    return found


def test_collator_does_not_import_the_model():
    imported = _within_data("hf_audiocap.data.collator", set())
    assert not [n for n in imported if n.startswith("hf_audiocap.modeling_audiocap")], sorted(imported)


def test_scst_uses_public_metrics_modules_only():
    imported = _imported("hf_audiocap.training.scst")
    private = [n for n in imported if n.startswith("hf_audiocap.metrics.") and n.split(".")[2].startswith("_")]
    assert private == [] and "hf_audiocap.metrics.scorers" in imported


def test_metrics_import_neither_training_nor_inference_at_import():
    """`evaluate_main` composes data, inference and metrics, inside the function: importing the metrics package (or
    its report) loads no training or inference module."""
    result = _run(
        "import json, sys\nimport hf_audiocap.metrics.report\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('hf_audiocap.training', "
        "'hf_audiocap.inference')))))"
    )
    assert result == []
