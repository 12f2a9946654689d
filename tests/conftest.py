import os
from pathlib import Path

import pytest

# Every test runs offline: nothing may reach the Hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only real data beside the checkout; tests skip with a reason when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (only present beside the project checkout in CI)")
    return SHARED_DATA


# tiny pretrained parts (transformers' Whisper, BART, GPT-2, wav2vec2) saved to folders, for the model tests
@pytest.fixture(scope="session")
def whisper_dir(tmp_path_factory):
    from model_helpers import save_whisper

    return save_whisper(tmp_path_factory.mktemp("whisper"))


@pytest.fixture(scope="session")
def bart_dir(tmp_path_factory):
    from model_helpers import save_bart

    return save_bart(tmp_path_factory.mktemp("bart"))


@pytest.fixture(scope="session")
def gpt2_dir(tmp_path_factory):
    from model_helpers import save_gpt2

    return save_gpt2(tmp_path_factory.mktemp("gpt2"))


@pytest.fixture(scope="session")
def wav2vec2_dir(tmp_path_factory):
    from model_helpers import save_wav2vec2

    return save_wav2vec2(tmp_path_factory.mktemp("wav2vec2"))
