"""A model folder saved under one transformers release loads with `trust_remote_code` under another, in a fresh
interpreter without hf_audiocap, and gives the same greedy and 3-beam tokens, both ways.

`make test-oldest` runs the model tests in a second environment with the oldest transformers the project declares and
points `AUDIOCAP_OTHER_PYTHON` at the main environment's interpreter (the newest); without it these tests skip."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import transformers
from model_helpers import batch, tiny_model

OTHER_PYTHON = os.environ.get("AUDIOCAP_OTHER_PYTHON")
pytestmark = pytest.mark.skipif(not OTHER_PYTHON, reason="AUDIOCAP_OTHER_PYTHON (a second environment) not set")

# Saves a tiny model (when asked) or loads one with trust_remote_code, then writes the greedy and 3-beam tokens of
# three padded clips. Run with -I -S so only the environment's own packages are importable, not hf_audiocap.
SCRIPT = textwrap.dedent(
    """
    import json, sys
    sys.path.append(sys.argv[1])
    import torch, transformers
    try:
        import hf_audiocap
        sys.exit("hf_audiocap must not be importable here")
    except ImportError:
        pass
    from transformers import AutoModelForSpeechSeq2Seq
    folder, inputs, out = sys.argv[2:5]
    model = AutoModelForSpeechSeq2Seq.from_pretrained(folder, trust_remote_code=True).eval()
    data = torch.load(inputs)
    kw = {"input_features": data["f"], "attention_mask": data["m"], "max_length": 10}
    tokens = {f"beams{b}": model.generate(**kw, num_beams=b).tolist() for b in (1, 3)}
    json.dump({"version": transformers.__version__, **tokens}, open(out, "w"))
    """
)


def _site_packages(python: str) -> str:
    code = "import os, transformers; print(os.path.dirname(os.path.dirname(transformers.__file__)))"
    return subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def _tokens_in(python: str, folder: Path, inputs: Path, tmp_path: Path) -> dict:
    out = tmp_path / f"tokens-{abs(hash(python))}.json"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / f"modules-{abs(hash(python))}"))
    proc = subprocess.run(
        [python, "-I", "-S", "-c", SCRIPT, _site_packages(python), str(folder), str(inputs), str(out)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(out.read_text())


def test_a_folder_saved_here_loads_there_and_back_with_the_same_tokens(tmp_path):
    feats, mask = batch()
    inputs = tmp_path / "inputs.pt"
    torch.save({"f": feats, "m": mask}, inputs)
    here = tiny_model(seed=3)
    with torch.no_grad():
        for param in here.parameters():  # larger weights than an initialised model's: captions that vary by clip
            if param.dim() > 1:
                param.normal_(0.0, 0.08)
    folder = tmp_path / "saved-here"
    here.save_pretrained(folder)
    expected = {
        f"beams{b}": here.generate(input_features=feats, attention_mask=mask, max_length=10, num_beams=b)
        for b in (1, 3)
    }
    there = _tokens_in(OTHER_PYTHON, folder, inputs, tmp_path)
    assert there["version"] != transformers.__version__, "the second environment runs the same transformers"
    for key, tokens in expected.items():
        assert there[key] == tokens.tolist(), (key, transformers.__version__, "->", there["version"])
    # and back: the folder as the other release saves it (its code rewrites config.json on save) loads here
    resave = textwrap.dedent(
        f"""
        import sys
        sys.path.append(sys.argv[1])
        from transformers import AutoModelForSpeechSeq2Seq
        model = AutoModelForSpeechSeq2Seq.from_pretrained({str(folder)!r}, trust_remote_code=True)
        model.save_pretrained({str(tmp_path / "saved-there")!r})
        """
    )
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules-resave"), "HF_HUB_OFFLINE": "1"}
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(
        [OTHER_PYTHON, "-I", "-S", "-c", resave, _site_packages(OTHER_PYTHON)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    saved_by = json.loads((tmp_path / "saved-there" / "config.json").read_text())["transformers_version"]
    assert saved_by == there["version"]
    back = _tokens_in(sys.executable, tmp_path / "saved-there", inputs, tmp_path)
    for key, tokens in expected.items():
        assert back[key] == tokens.tolist(), (key, there["version"], "->", transformers.__version__)
