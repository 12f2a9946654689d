"""A real Chromium (Debian's, driven by Playwright) uses the app: uploads a SynthCaps clip and sees its caption, then
captions its (fake) microphone live. Screenshots go to test-artifacts/ (gitignored)."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import pytest
from audiocap_tiny import free_port, save_tiny_model

from hf_audiocap.data.audio import load_audio
from hf_audiocap.inference.captioner import Captioner

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

sync_api = pytest.importorskip("playwright.sync_api")
if not os.path.exists(CHROMIUM):
    pytest.skip(f"{CHROMIUM} not installed (make browser-deps)", allow_module_level=True)

sys.path.insert(0, str(REPO))
import app  # noqa: E402


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny_model"))


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    from hf_audiocap.data.synthcaps import generate_synthcaps

    out = tmp_path_factory.mktemp("synthcaps")
    generate_synthcaps(out, seed=0, num_train=4, num_validation=2, num_test=2)
    return sorted((out / "test").glob("*.wav"))[0]


@pytest.fixture(scope="module")
def url(model_dir, tmp_path_factory):
    demo = app.build_app(str(model_dir), ratings_dir=tmp_path_factory.mktemp("ratings"), examples_dir=None)
    _, local_url, _ = app.launch(demo, port=free_port(), prevent_thread_lock=True, quiet=True)
    yield local_url
    demo.close()


@pytest.fixture
def browser(tmp_path, clip):
    """A fresh Chromium profile whose microphone plays `clip` (looped)."""
    ARTIFACTS.mkdir(exist_ok=True)
    fake_mic = tmp_path / "mic.wav"
    shutil.copy(clip, fake_mic)
    args = [
        *CHROMIUM_FLAGS,
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={fake_mic}",
    ]
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            user_data_dir=str(tmp_path / "profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=args,
            viewport={"width": 1280, "height": 1000},
        )
        try:
            yield context
        finally:
            context.close()


def test_upload_a_clip_and_see_its_caption(browser, url, clip, model_dir):
    expected = Captioner.from_pretrained(str(model_dir)).caption_arrays([load_audio(clip)])[0]
    page = browser.new_page()
    page.goto(url, wait_until="domcontentloaded")
    page.locator("#caption").wait_for(timeout=60_000)
    page.locator("input[type=file]").first.set_input_files(str(clip))
    page.get_by_role("button", name="Caption", exact=True).click()
    box = page.locator("#caption textarea")
    sync_api.expect(box).to_have_value(expected, timeout=60_000)
    sync_api.expect(page.get_by_text("n-best (beam search)")).to_be_visible()
    page.wait_for_timeout(1500)  # let the spectrogram and n-best table render for the screenshot
    page.screenshot(path=str(ARTIFACTS / "browser_caption_clip.png"), full_page=True)


def test_live_microphone_captions_appear(browser, url):
    page = browser.new_page()
    page.goto(url, wait_until="domcontentloaded")
    page.locator("#caption").wait_for(timeout=60_000)
    page.get_by_role("tab", name="Live").click()
    page.get_by_role("button", name="Record", exact=False).first.click()
    box = page.locator("#live-caption textarea")
    sync_api.expect(box).not_to_have_value("", timeout=60_000)
    page.wait_for_timeout(3500)  # a few more hops: the history grows
    page.screenshot(path=str(ARTIFACTS / "browser_live.png"), full_page=True)
    history = page.locator("#live-history")
    sync_api.expect(history).to_contain_text("00:0", timeout=10_000)  # timestamped rows
    stamps = re.findall(r"\d\d:\d\d\.\d", history.inner_text())
    assert len(stamps) >= 4, stamps  # at least two timestamped captions (from, to) in the history


def test_a_bad_upload_shows_one_message_and_logs_no_traceback(browser, url, tmp_path, capfd):
    """A clip too short to caption (two toasts once: the caption's warning, then the n-best's error) and a corrupt
    file: one toast each, and nothing in the server's log."""
    from audiocap_tiny import write_bad_files

    bad = write_bad_files(tmp_path / "bad")
    page = browser.new_page()
    page.goto(url, wait_until="domcontentloaded")
    page.locator("#caption").wait_for(timeout=60_000)
    capfd.readouterr()
    for kind, says in (("one_sample", "cannot caption 'one_sample.wav'"), ("corrupt", "cannot decode 'corrupt.wav'")):
        page.locator("input[type=file]").first.set_input_files(str(bad[kind]))
        page.get_by_role("button", name="Caption", exact=True).click()
        sync_api.expect(page.locator(".toast-body").filter(has_text=says)).to_have_count(1, timeout=30_000)
        page.wait_for_timeout(3000)  # time for a second message, were one to come
        assert page.locator(".toast-body").count() == 1, kind
        page.locator(".toast-body button").first.click()  # close it
        sync_api.expect(page.locator(".toast-body")).to_have_count(0, timeout=10_000)
        page.get_by_role("button", name="Clear").first.click()
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err
