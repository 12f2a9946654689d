"""The folder `recipes/train.py` saves is a Hub repository: in a fresh interpreter where hf_audiocap cannot be
imported, `AutoProcessor` + `AutoModelForSpeechSeq2Seq` with `trust_remote_code=True` load it from the copied code
files and caption a clip exactly as the library does."""

from __future__ import annotations

import ast
import json

import pytest
import transformers
from recipe_helpers import run_without_hf_audiocap, shared_tiny_run

CODE_FILES = (
    "configuration_audiocap.py",
    "modeling_audiocap.py",
    "encoders_audiocap.py",
    "processing_audiocap.py",
    "feature_extraction_audiocap.py",
)


@pytest.fixture(scope="module")
def folder():
    return shared_tiny_run()[1]


def test_copied_code_uses_only_relative_imports_of_its_own_files(folder):
    for name in CODE_FILES:
        tree = ast.parse((folder / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("hf_audiocap") for a in node.names), (name, ast.unparse(node))
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                assert not (node.module or "").startswith("hf_audiocap"), (name, ast.unparse(node))


def test_auto_maps(folder):
    processor_config = json.loads((folder / "processor_config.json").read_text())
    assert processor_config["auto_map"]["AutoProcessor"] == "processing_audiocap.AudioCapProcessor"
    fe = processor_config.get("feature_extractor")
    if fe is None:  # a separate preprocessor_config.json
        fe = json.loads((folder / "preprocessor_config.json").read_text())
    assert fe["auto_map"]["AutoFeatureExtractor"] == "feature_extraction_audiocap.AudioCapFeatureExtractor"


@pytest.mark.slow
def test_loads_and_captions_in_a_fresh_interpreter_without_hf_audiocap(folder, tmp_path):
    import numpy as np
    import soundfile as sf
    import torch

    clip = sorted((shared_tiny_run()[0] / "test").glob("*.wav"))[0]
    audio, sr = sf.read(clip, dtype="float32")
    np.save(tmp_path / "audio.npy", audio)
    # what the library itself says for this clip
    processor = transformers.AutoProcessor.from_pretrained(folder)
    model = transformers.AutoModelForSpeechSeq2Seq.from_pretrained(folder).eval()
    with torch.no_grad():
        ids = model.generate(**processor(audio=audio, sampling_rate=sr, return_tensors="pt"))
    expected = processor.batch_decode(ids, skip_special_tokens=True)[0]

    printed = run_without_hf_audiocap(
        f"""
        import numpy as np
        import torch
        from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor

        processor = AutoProcessor.from_pretrained({str(folder)!r}, trust_remote_code=True)
        model = AutoModelForSpeechSeq2Seq.from_pretrained({str(folder)!r}, trust_remote_code=True).eval()
        assert type(processor).__name__ == "AudioCapProcessor", type(processor)
        assert type(processor.feature_extractor).__name__ == "AudioCapFeatureExtractor"
        assert type(processor.feature_extractor).__module__.startswith("transformers_modules")
        audio = np.load({str(tmp_path / "audio.npy")!r})
        inputs = processor(audio=audio, sampling_rate={sr}, return_tensors="pt")
        assert inputs["input_features"].shape[1] == 80 and inputs["attention_mask"].dtype == torch.int64
        with torch.no_grad():
            ids = model.generate(**inputs)
        print("CAPTION:" + processor.batch_decode(ids, skip_special_tokens=True)[0])
        """,
        tmp_path,
        "CAPTION:",
    )
    caption = printed
    assert caption == expected.strip() and caption
