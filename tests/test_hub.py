"""Pretrained parts named by Hub id that cannot be loaded here (offline and not cached, or the Hub unreachable): one
line naming the part, within a second, from the helper and from the places that load parts (the prefix recipe's
model builder, the captioner)."""

from __future__ import annotations

import socket
import time
from types import SimpleNamespace

import pytest
from huggingface_hub import constants

from hf_audiocap.hub import PretrainedNotFoundError, PretrainedUnavailableError, check_pretrained


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path / "hub"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_offline_and_not_cached_is_one_line(empty_cache, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(
        PretrainedUnavailableError, match=r"^Qwen/Qwen2-0\.5B: offline .* not in the local cache: pass a"
    ):
        check_pretrained("Qwen/Qwen2-0.5B")


def test_a_cached_repository_and_a_folder_pass_offline(empty_cache, tmp_path, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    snapshot = empty_cache / "models--org--tiny" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (empty_cache / "models--org--tiny" / "refs").mkdir()
    (empty_cache / "models--org--tiny" / "refs" / "main").write_text("abc")
    check_pretrained("org/tiny")
    check_pretrained(tmp_path)


def test_a_missing_folder_is_named_as_a_folder():
    with pytest.raises(PretrainedNotFoundError, match=r"^\./outputs/nothing-here: no such folder$"):
        check_pretrained("./outputs/nothing-here")


def test_an_unreachable_hub_is_said_within_seconds(empty_cache, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    start = time.monotonic()
    with pytest.raises(
        PretrainedUnavailableError, match=r"^org/tiny: not in the local cache, and the Hub .* cannot be"
    ):
        check_pretrained("org/tiny")
    assert time.monotonic() - start < 5


def test_the_prefix_builder_and_the_captioner_check_before_loading(empty_cache, monkeypatch):
    from hf_audiocap.inference.captioner import load_captioner
    from hf_audiocap.training.arguments import ModelArguments
    from hf_audiocap.training.prefix import build_prefix_model

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    args = ModelArguments(model_kind="prefix", decoder_name_or_path="Qwen/Qwen2-0.5B")
    with pytest.raises(PretrainedUnavailableError, match=r"^Qwen/Qwen2-0\.5B: offline"):
        build_prefix_model(args, SimpleNamespace(tokenizer=None), SimpleNamespace())
    with pytest.raises(PretrainedUnavailableError, match=r"^org/captioner: offline"):
        load_captioner("org/captioner")
