"""Hostile and broken input at every entry point, and nothing let in.

The corpus of tests/hostile_corpus.py (zero-byte, truncated header, a header promising more data than the file holds
(decoded as far as it goes), text renamed .wav, random bytes, NaN/Inf, 0 samples, 1 and 6 channels, 8 and 192 kHz,
2 hours; CSVs with a missing column, rows escaping the dataset folder, non-UTF-8, an empty caption, NUL bytes, a
10,000-word caption) goes through the decoder, the loaders, the processor, recipes/train.py,
recipes/evaluate.py, `hf-audiocap caption` and the app: each gives a one-line error naming the file/row, or the
documented handling; nothing already written is damaged; nothing is written outside the output the user named.
Then the security points: safetensors only, remote code only when asked, the app reads only uploads.
docs/reliability.md holds the resulting table.
"""

from __future__ import annotations

import ast
import json
import os
import runpy
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from audiocap_tiny import free_port, save_tiny_model
from hostile_corpus import (
    AUDIO_CASES,
    BAD_AUDIO,
    GOOD_AUDIO,
    MAX_DURATION_S,
    TEXT_CASES,
    broken_dataset,
    dataset_with_audio,
    long_caption,
    write_audio_corpus,
    write_clotho_dataset,
    write_tone,
)
from recipe_helpers import REPO_ROOT, recipe_main, tiny_run_args

from hf_audiocap.data import (
    AudioDecodeError,
    DatasetFormatError,
    check_audio,
    check_audio_files,
    load_audio,
    load_audiocaps,
    load_audiofolder,
    load_clotho,
    load_hf_dataset,
    load_manifest,
)

HEADER_FOUND = [k for k in BAD_AUDIO if k != "nan_inf"]  # everything but NaN/Inf shows before a sample is decoded


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_audio_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return write_clotho_dataset(tmp_path_factory.mktemp("template") / "clotho")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny_model"))


def one_line_naming(message: str, name: str) -> None:
    assert "\n" not in message and name in message, message


# ------------------------------------------------------------------------------------------------------ the decoder
@pytest.mark.parametrize("kind", list(AUDIO_CASES))
def test_decoder(corpus, kind, monkeypatch):
    case, path = AUDIO_CASES[kind], corpus[kind]
    if case.error is None:
        wave = load_audio(path, max_duration=MAX_DURATION_S)
        assert wave.dtype == np.float32 and wave.shape == (case.samples,) and np.isfinite(wave).all()
        assert 0.1 < np.abs(wave).max() < 0.35  # downmixed (not summed) and resampled, at the tone's level
        assert check_audio(path, max_duration=MAX_DURATION_S)[1] > 0
        return
    if case.too_long:  # refused from the header: not one sample is read
        monkeypatch.setattr(sf.SoundFile, "read", lambda *a, **k: pytest.fail("samples were read"))
    with pytest.raises(AudioDecodeError) as err:
        load_audio(path, max_duration=MAX_DURATION_S)
    assert case.error in str(err.value)
    one_line_naming(str(err.value), str(path))
    if kind in HEADER_FOUND or case.too_long:  # the header-only check finds the same problem, with the same words
        with pytest.raises(AudioDecodeError, match=case.error.replace("(", r"\(").replace(")", r"\)")):
            check_audio(path, max_duration=MAX_DURATION_S)
    else:
        check_audio(path, max_duration=MAX_DURATION_S)  # NaN/Inf: only decoding can tell


# ----------------------------------------------------------------------------------------------------- the processor
@pytest.fixture(scope="module")
def processor(model_dir):
    from hf_audiocap import AudioCapProcessor

    return AudioCapProcessor.from_pretrained(model_dir)


@pytest.mark.parametrize("kind", GOOD_AUDIO)
def test_processor_on_decoded_corpus(processor, corpus, kind):
    out = processor(audio=load_audio(corpus[kind]), text="a dog barks", sampling_rate=16000, return_tensors="pt")
    frames = 1 + AUDIO_CASES[kind].samples // 160  # 101 for a second: one frame per 10 ms hop, plus one
    assert tuple(out["input_features"].shape) == (1, 80, frames) and out["input_features"].isfinite().all()
    assert out["labels"][0, -1].item() == processor.tokenizer.eos_token_id


PROCESSOR_BAD = {
    "nan_samples": ({"audio": np.array([0.0, np.nan, np.inf] * 200, np.float32)}, "non-finite"),
    "zero_samples": ({"audio": np.zeros(0, np.float32)}, "empty"),
    "six_channels_array": ({"audio": np.zeros((6, 16000), np.float32)}, "shape"),
    "rate_192k_array": ({"audio": np.zeros(192000, np.float32), "sampling_rate": 192000}, "192000 Hz"),
    "bytes_caption": ({"text": [b"caf\xe9"]}, "text #0 is not a string: bytes"),
    "not_a_caption": ({"text": [None]}, "text #0 is not a string: NoneType"),
}


@pytest.mark.parametrize("kind", list(PROCESSOR_BAD))
def test_processor_refuses(processor, kind):
    kwargs, match = PROCESSOR_BAD[kind]
    with pytest.raises(ValueError, match=match) as err:
        processor(**{"sampling_rate": 16000, **kwargs})
    assert "\n" not in str(err.value)


def test_processor_empty_and_10000_word_captions(processor):
    eos = processor.tokenizer.eos_token_id
    assert processor(text="")["labels"] == [eos]  # documented: loaders refuse empty captions before this point
    labels = processor(text=[long_caption(), "a dog"], return_tensors="pt")["labels"]
    assert labels.shape == (2, 10_001) and labels[1, 2].item() == eos and labels[1, 3].item() == -100


# ------------------------------------------------------------------------------------------------------- the loaders
def _load(layout: str, root: Path):
    if layout == "clotho":
        return load_clotho(root)
    if layout == "manifest":
        return load_manifest(root / "clotho_captions_train.csv", audio_column="file_name", base_dir=root / "train")
    shutil.copyfile(root / "clotho_captions_train.csv", root / "train" / "metadata.csv")
    return load_audiofolder(root)


@pytest.mark.parametrize("layout", ["clotho", "manifest", "audiofolder"])
@pytest.mark.parametrize("kind", list(TEXT_CASES))
def test_loaders_on_broken_csvs(template, tmp_path, layout, kind):
    root = broken_dataset(template, tmp_path / "data", kind)
    case = TEXT_CASES[kind]
    if case.error is None:  # the 10,000-word caption is kept whole (labels are truncated later, in training)
        clips = _load(layout, root)["train"]
        assert clips.num_rows == 8 and len(clips[0]["captions"][0].split()) == 10_000
        return
    with pytest.raises(DatasetFormatError) as err:
        _load(layout, root)
    assert case.error in str(err.value)
    one_line_naming(str(err.value), "line 2" if kind != "missing_column" else ".csv")


@pytest.mark.parametrize("kind", list(AUDIO_CASES))
def test_loaders_never_decode_and_check_audio_files_lists_bad_clips(template, corpus, tmp_path, kind):
    root = dataset_with_audio(template, tmp_path / "data", corpus[kind])
    clips = load_clotho(root)  # the loaders only read headers (a warning for an unreadable one)
    assert clips["train"].num_rows == 8
    if kind in GOOD_AUDIO or kind == "nan_inf":
        check_audio_files(clips, max_duration=MAX_DURATION_S, where="data")
        return
    with pytest.raises(DatasetFormatError) as err:
        check_audio_files(clips, max_duration=MAX_DURATION_S, where="data")
    msg = str(err.value)
    assert msg.startswith("data: unusable audio in train: 1 of 8 clip(s); first 1: cannot decode ")
    assert AUDIO_CASES[kind].error in msg
    one_line_naming(msg, "clip_00.wav")


def test_check_audio_files_counts_every_bad_clip(template, corpus, tmp_path):
    root = dataset_with_audio(template, tmp_path / "data", corpus["zero_bytes"], row=0)
    for row, kind in enumerate(["text_as_wav", "truncated_header", "zero_samples", "two_hours", "random_bytes"], 1):
        shutil.copyfile(corpus[kind], root / "train" / f"clip_{row:02d}.wav")
    with pytest.raises(DatasetFormatError, match=r"6 of 8 clip\(s\); first 5: .*clip_00.wav': empty file") as err:
        check_audio_files(load_clotho(root), max_duration=MAX_DURATION_S)
    assert str(err.value).count("cannot decode") == 5


def test_ids_and_splits_cannot_name_files_outside_the_dataset(tmp_path):
    write_tone(tmp_path / "secret.wav")
    audio = tmp_path / "audiocaps" / "audio"
    write_tone(audio / "abc_0.wav")
    (tmp_path / "audiocaps" / "train.csv").write_text(
        "audiocap_id,youtube_id,start_time,caption\n1,abc,0,a dog barks\n2,../../secret,0,escaped\n"
    )
    with pytest.raises(DatasetFormatError, match=r"train.csv' line 3: youtube_id '../../secret' contains a path sep"):
        load_audiocaps(tmp_path / "audiocaps", audio)
    manifest = tmp_path / "m.csv"
    write_tone(tmp_path / "a.wav")
    manifest.write_text("audio,caption,split\na.wav,a dog barks,../../evil\n")
    with pytest.raises(DatasetFormatError, match=r"m.csv' line 2: split name '../../evil' is not a plain name"):
        load_manifest(manifest, split_column="split")
    import datasets

    saved = tmp_path / "hf"
    datasets.Dataset.from_dict({"audio": ["../secret.wav"], "caption": ["escaped"]}).save_to_disk(str(saved))
    with pytest.raises(DatasetFormatError, match=r"row 0: audio path '../secret.wav' points outside"):
        load_hf_dataset(saved)


# ------------------------------------------------------------------------------------------------ recipes/train.py
def _train_args(data: Path, out: Path, **overrides) -> list[str]:
    values = {
        "dataset": "clotho",
        "eval_split": "null",
        "test_split": "null",
        "max_steps": 2,
        "max_duration": MAX_DURATION_S,
    }
    return tiny_run_args(data, out, **{**values, **overrides})


@pytest.mark.parametrize("kind", HEADER_FOUND + ["two_hours"])
def test_train_refuses_bad_audio_before_anything_runs(template, corpus, tmp_path, kind):
    data = dataset_with_audio(template, tmp_path / "data", corpus[kind])
    out = tmp_path / "run"
    with pytest.raises(DatasetFormatError) as err:
        recipe_main()(_train_args(data, out))
    assert AUDIO_CASES[kind].error in str(err.value)
    one_line_naming(str(err.value), "clip_00.wav")
    assert not out.exists()  # nothing started, nothing written


@pytest.mark.parametrize("kind", [k for k, c in TEXT_CASES.items() if c.error])
def test_train_refuses_broken_csvs(template, tmp_path, kind):
    data = broken_dataset(template, tmp_path / "data", kind)
    with pytest.raises(DatasetFormatError, match=TEXT_CASES[kind].error.replace("(", r"\(").replace(")", r"\)")):
        recipe_main()(_train_args(data, tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_train_nan_samples_stop_with_the_clip_named(template, corpus, tmp_path):
    # Only decoding finds NaN/Inf: here the log-mel statistics (first 256 clips) decode it before training starts;
    # beyond them the collator raises the same error at the first batch holding the clip.
    data = dataset_with_audio(template, tmp_path / "data", corpus["nan_inf"])
    with pytest.raises(AudioDecodeError, match=r"clip_00.wav'?: contains non-finite samples"):
        recipe_main()(_train_args(data, tmp_path / "run"))
    with pytest.raises(AudioDecodeError, match=r"clip_00.wav'?: contains non-finite samples"):
        recipe_main()(_train_args(data, tmp_path / "run2", normalize_features="false"))


def test_train_on_odd_but_valid_audio_and_a_10000_word_caption(template, corpus, tmp_path):
    data = broken_dataset(template, tmp_path / "data", "caption_10000_words")
    for row, kind in enumerate(GOOD_AUDIO, 1):  # 1 and 6 channels, 8 kHz, 192 kHz, a header promising more data
        shutil.copyfile(corpus[kind], data / "train" / f"clip_{row:02d}.wav")
    out = tmp_path / "run"
    recipe_main()(_train_args(data, out, max_label_length=48))
    assert (out / "model.safetensors").is_file()
    state = json.loads((out / "trainer_state.json").read_text())
    assert all(np.isfinite(e["loss"]) for e in state["log_history"] if "loss" in e)


@pytest.mark.slow  # a fresh interpreter (imports torch and transformers)
def test_train_command_line_error_is_one_line(template, corpus, tmp_path):
    data = dataset_with_audio(template, tmp_path / "data", corpus["text_as_wav"])
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "recipes" / "train.py"), *_train_args(data, tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("train.py: error: ") and "clip_00.wav': not an audio file" in last
    assert "Traceback" not in proc.stderr


# --------------------------------------------------------------------------------------------- recipes/evaluate.py
def _evaluate(model_dir: Path, data: Path, out: Path, *extra: str):
    module = runpy.run_path(str(REPO_ROOT / "recipes" / "evaluate.py"), run_name="recipes_evaluate")
    from hf_audiocap.metrics.report import evaluate_main

    argv = ["--model", str(model_dir), "--dataset", "clotho", "--dataset_path", str(data), "--split", "train"]
    return evaluate_main(module["parse_args"]([*argv, "--output_dir", str(out), "--batch_size", "4", *extra]))


def _previous_results(out: Path) -> dict[str, str]:
    out.mkdir(parents=True, exist_ok=True)
    files = {"evaluate_train_predictions.jsonl": '{"id": "old"}\n', "evaluate_train_metrics.json": '{"old": 1}\n'}
    for name, text in files.items():
        (out / name).write_text(text)
    return files


@pytest.mark.parametrize("kind", [*HEADER_FOUND, "two_hours", "nan_inf"])
def test_evaluate_bad_audio_leaves_earlier_results_intact(model_dir, template, corpus, tmp_path, kind):
    data = dataset_with_audio(template, tmp_path / "data", corpus[kind], row=5)
    out = tmp_path / "out"
    before = _previous_results(out)
    with pytest.raises((DatasetFormatError, AudioDecodeError)) as err:
        _evaluate(model_dir, data, out, "--max_duration", str(MAX_DURATION_S))
    assert AUDIO_CASES[kind].error in str(err.value)
    one_line_naming(str(err.value), "clip_05.wav")
    assert {p.name: p.read_text() for p in out.iterdir()} == before


@pytest.mark.parametrize("kind", [k for k, c in TEXT_CASES.items() if c.error])
def test_evaluate_broken_csvs(model_dir, template, tmp_path, kind):
    data = broken_dataset(template, tmp_path / "data", kind)
    with pytest.raises(DatasetFormatError, match=TEXT_CASES[kind].error.replace("(", r"\(").replace(")", r"\)")):
        _evaluate(model_dir, data, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # starts the metrics' JVM
def test_evaluate_odd_but_valid_audio_and_a_10000_word_reference(model_dir, template, corpus, tmp_path):
    data = broken_dataset(template, tmp_path / "data", "caption_10000_words")
    for row, kind in enumerate(GOOD_AUDIO, 1):
        shutil.copyfile(corpus[kind], data / "train" / f"clip_{row:02d}.wav")
    out = tmp_path / "out"
    metrics = _evaluate(model_dir, data, out)
    assert np.isfinite(metrics["cider_d"]) and np.isfinite(metrics["bleu_4"])
    rows = [json.loads(line) for line in (out / "evaluate_train_predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and len(rows[0]["references"][0].split()) == 10_000
    written = sorted(p.name for p in out.iterdir())
    assert written == [
        "evaluate_train_metrics.json",
        "evaluate_train_per_caption.csv",
        "evaluate_train_predictions.jsonl",
    ]


# ---------------------------------------------------------------------------------------------- hf-audiocap caption
def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


HOSTILE_NAMES = [
    "-rf --output x.wav",
    "..wav",
    "$(touch pwned).wav",
    "a\nb.wav",
    "..%2f..%2fescape.wav",
    "\u202eevaw.wav",
    "x" * 200 + ".wav",
]


def test_cli_reports_each_bad_file_and_writes_only_its_output(model_dir, corpus, tmp_path, capsys):
    from hf_audiocap.cli import main

    root = tmp_path / "root"
    inputs = root / "inputs"
    shutil.copytree(corpus["mono_16k"].parent, inputs)
    for name in HOSTILE_NAMES:
        shutil.copyfile(corpus["mono_16k"], inputs / name)
    out_dir = root / "out"
    out_dir.mkdir()
    target = out_dir / "captions.json"
    before = _tree(root)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        code = main(
            ["caption", str(inputs), "--model", str(model_dir), "--format", "json", "--output", str(target)]
            + ["--max-duration", "3600", "--quiet"]
        )
    finally:
        os.chdir(cwd)
    _, err = capsys.readouterr()
    assert code == 1  # bad files -> exit status 1, the others captioned
    results = {Path(r["path"]).name: r for r in json.loads(target.read_text())}
    assert set(results) == {AUDIO_CASES[k].file_name for k in GOOD_AUDIO} | set(HOSTILE_NAMES)
    assert all(r["segments"][0]["caption"] for r in results.values())
    lines = [line for line in err.splitlines() if line.strip()]
    for kind in [*BAD_AUDIO, "two_hours"]:
        (line,) = [x for x in lines if AUDIO_CASES[kind].file_name in x]
        assert line.startswith("hf-audiocap caption: error: cannot decode") and AUDIO_CASES[kind].error in line
    assert "exceeds max_duration=3600 s" in err and "Traceback" not in err
    after = _tree(root)
    changed = {p for p in after if before.get(p) != after[p]}
    assert changed == {str(target)}, changed  # nothing else written, whatever the input file names
    assert not list(tmp_path.rglob("pwned")) and not list(Path(REPO_ROOT).glob("pwned"))


def test_cli_run_with_nothing_captioned_keeps_the_earlier_output(model_dir, corpus, tmp_path, capsys):
    from hf_audiocap.cli import main

    target = tmp_path / "captions.json"
    target.write_text("earlier results\n")
    bad = [str(corpus[k]) for k in BAD_AUDIO]
    code = main(["caption", *bad, "--model", str(model_dir), "--output", str(target), "--quiet"])
    _, err = capsys.readouterr()
    assert code == 1 and target.read_text() == "earlier results\n"
    assert (
        err.strip().splitlines()[-1]
        == f"hf-audiocap caption: error: no file could be captioned; {str(target)!r} not written"
    )
    assert sorted(os.listdir(tmp_path)) == ["captions.json"]  # no temporary file left


# ---------------------------------------------------------------------------------------------------------- the app
@pytest.fixture(scope="module")
def served(model_dir, tmp_path_factory):
    sys.path.insert(0, str(REPO_ROOT))
    from gradio_client import Client

    import app

    root = tmp_path_factory.mktemp("app")
    (root / "cwd").mkdir()
    cwd = os.getcwd()
    os.chdir(root / "cwd")  # the app must write nothing here
    try:
        demo = app.build_app(
            str(model_dir), ratings_dir=root / "ratings", max_duration_s=MAX_DURATION_S, examples_dir=None
        )
        _, url, _ = app.launch(demo, port=free_port(), prevent_thread_lock=True, quiet=True, max_file_size="2mb")
        client = Client(url, verbose=False)
        yield demo, client, url, root
        demo.close()
    finally:
        os.chdir(cwd)


@pytest.mark.parametrize("kind", list(AUDIO_CASES))
def test_app_on_corpus(served, corpus, kind):
    from gradio_client import handle_file

    _, client, _, _ = served
    caption, error = client.predict(handle_file(str(corpus[kind])), api_name="/caption")
    case = AUDIO_CASES[kind]
    if case.error is None:
        assert error == "" and caption
    else:
        assert caption == "" and error.startswith(f"cannot decode '{case.file_name}'") and case.error in error
        assert "\n" not in error


def _raw_call(url: str, api: str, data: list) -> str:
    """A client that does not use gradio_client: posts any JSON it likes, returns the event stream's text."""
    import httpx

    r = httpx.post(f"{url}gradio_api/call/{api}", json={"data": data}, timeout=30)
    if r.status_code != 200:
        return f"HTTP {r.status_code} {r.text}"
    return httpx.get(f"{url}gradio_api/call/{api}/{r.json()['event_id']}", timeout=60).text


def test_app_reads_no_path_a_client_names(served, corpus, tmp_path):
    import httpx

    demo, _, url, root = served
    secret = write_tone(tmp_path / "secret.wav")
    for path in ["/etc/passwd", str(secret), str(corpus["mono_16k"]), f"{tmp_path}/../{tmp_path.name}/secret.wav"]:
        payload = {"path": path, "meta": {"_type": "gradio.FileData"}, "orig_name": "x.wav"}
        for api, data in [("caption", [payload, 1, 12, 1.0, 0]), ("rate_good", [payload, "c", "", "m", "{}"])]:
            text = _raw_call(url, api, data)
            assert "event: error" in text and "not uploaded by a user" in text, text
        assert httpx.get(f"{url}gradio_api/file={path}", timeout=30).status_code == 403
    assert not (root / "ratings").exists() or not list((root / "ratings").rglob("*.wav"))  # nothing was copied
    # and the app's own check, should Gradio ever let one through
    service = demo.caption_service
    for path in ["/etc/passwd", str(secret)]:
        with pytest.raises(ValueError, match="not an uploaded file"):
            service.load(path)


def test_app_many_clients_good_and_bad_files(served, corpus):
    """Good files, bad files and payloads naming server paths at once: each request gets its own answer (a refused
    payload must not fail the good requests that share a forward pass with it)."""
    from gradio_client import Client, handle_file

    _, _, url, _ = served
    kinds = list(AUDIO_CASES) * 2
    results: dict[int, tuple] = {}
    refused: list[str] = []

    def client_thread(offset: int) -> None:
        client = Client(url, verbose=False)
        jobs = [
            (i, client.submit(handle_file(str(corpus[kinds[i]])), api_name="/caption"))
            for i in range(offset, len(kinds), 4)
        ]
        for i, job in jobs:
            results[i] = job.result(timeout=120)

    def hostile_thread() -> None:
        payload = {"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}, "orig_name": "x.wav"}
        for _ in range(6):
            refused.append(_raw_call(url, "caption", [payload, 1, 12, 1.0, 0]))

    threads = [threading.Thread(target=client_thread, args=(k,)) for k in range(4)]
    threads.append(threading.Thread(target=hostile_thread))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == len(kinds)
    for i, (caption, error) in results.items():
        case = AUDIO_CASES[kinds[i]]
        assert (error == "" and caption) if case.error is None else (caption == "" and case.error in error), (i, error)
    assert len(refused) == 6 and all("not uploaded by a user" in text for text in refused)


def test_app_wrote_nothing_outside_its_folders(served, corpus):
    import csv

    from gradio.utils import get_upload_folder
    from gradio_client import handle_file

    _, client, _, root = served
    caption, _ = client.predict(handle_file(str(corpus["six_channels"])), api_name="/caption")
    assert "Saved" in client.predict(
        handle_file(str(corpus["six_channels"])), caption, "", "m", "{}", api_name="/rate_good"
    )
    assert list((root / "cwd").iterdir()) == []  # nothing in the working folder
    written = [p for p in root.rglob("*") if p.is_file()]
    assert written and all((root / "ratings") in p.parents for p in written)  # only the ratings asked for
    with open(root / "ratings" / "ratings.csv", newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    assert (root / "ratings") in Path(row["Audio"]).parents  # the rated clip was copied from the upload folder
    assert Path(get_upload_folder()).is_dir()


# ------------------------------------------------------------------------------------------------- nothing let in
SOURCES = [
    *sorted((REPO_ROOT / "hf_audiocap").rglob("*.py")),
    REPO_ROOT / "app.py",
    *sorted((REPO_ROOT / "recipes").glob("*.py")),
]


def test_no_code_turns_trust_remote_code_on():
    for path in SOURCES + sorted((REPO_ROOT / "benchmarks").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.keyword) and node.arg == "trust_remote_code":
                assert not (isinstance(node.value, ast.Constant) and node.value.value is True), (path, node.lineno)


def test_no_code_unpickles():
    for path in SOURCES:
        text = path.read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = ast.unparse(node.func.value)
                if (owner, node.func.attr) in {
                    ("torch", "load"),
                    ("pickle", "load"),
                    ("pickle", "loads"),
                    ("np", "load"),
                }:
                    kw = {k.arg: ast.unparse(k.value) for k in node.keywords}
                    assert kw.get("weights_only") == "True" or kw.get("allow_pickle") == "False", (path, node.lineno)


def test_entry_points_leave_remote_code_off_unless_asked():
    sys.path.insert(0, str(REPO_ROOT))
    import app
    from hf_audiocap.training.arguments import ModelArguments

    assert app.parse_args([]).trust_remote_code is False
    assert app.parse_args(["--trust-remote-code"]).trust_remote_code is True
    evaluate = runpy.run_path(str(REPO_ROOT / "recipes" / "evaluate.py"), run_name="recipes_evaluate")
    assert evaluate["parse_args"](["--model", "m"]).trust_remote_code is False
    assert ModelArguments().trust_remote_code is False
    import argparse

    from hf_audiocap.inference import cli_caption

    parser = argparse.ArgumentParser()
    cli_caption.add_arguments(parser)
    assert parser.parse_args(["x.wav"]).trust_remote_code is False


def test_trainer_checkpoint_loads_are_weights_only():
    """Resuming reads optimizer/scheduler/scaler/RNG files and, without model.safetensors, pytorch_model.bin with
    torch.load: transformers passes weights_only=True to every such call (checked here, so an upgrade that changes it
    fails this test)."""
    import transformers.trainer as trainer_module

    calls = 0
    for node in ast.walk(ast.parse(Path(trainer_module.__file__).read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "torch.load":
            calls += 1
            kw = {k.arg: ast.unparse(k.value) for k in node.keywords}
            assert kw.get("weights_only") == "True", node.lineno
    assert calls >= 5


class _Evil:
    """Unpickling this creates a marker file: proof that a pickle was run."""

    marker = ""

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickled_weights_are_refused_never_unpickled(model_dir, tmp_path, capsys):
    import torch
    from transformers import AutoModelForSpeechSeq2Seq

    from hf_audiocap import AudioCapForConditionalGeneration
    from hf_audiocap.cli import main
    from hf_audiocap.inference.captioner import Captioner

    folder = tmp_path / "pickled"
    shutil.copytree(model_dir, folder)
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "PICKLE_RAN"
    evil = _Evil()
    evil.marker = str(marker)
    torch.save({"model.weight": evil}, folder / "pytorch_model.bin")
    for load in (
        lambda: Captioner.from_pretrained(str(folder)),
        lambda: AudioCapForConditionalGeneration.from_pretrained(folder),
        lambda: AutoModelForSpeechSeq2Seq.from_pretrained(folder),
    ):
        # transformers' own refusal under use_safetensors=True, which the model classes default to
        with pytest.raises(OSError, match="no file named model.safetensors"):
            load()
    assert main(["caption", str(model_dir / "config.json"), "--model", str(folder), "--quiet"]) == 2
    assert "cannot load model" in capsys.readouterr().err
    assert not marker.exists()


def test_remote_code_is_not_run_unless_asked(model_dir, tmp_path, capsys):
    from hf_audiocap.cli import main
    from hf_audiocap.inference.captioner import Captioner

    folder = tmp_path / "remote"
    shutil.copytree(model_dir, folder)  # a complete model folder whose config asks for its own code
    marker = tmp_path / "CODE_RAN"
    code = f"open({str(marker)!r}, 'w').write('ran')\nfrom transformers import PretrainedConfig\n"
    (folder / "configuration_evil.py").write_text(
        code + "class EvilConfig(PretrainedConfig):\n    model_type = 'evil'\n"
    )
    (folder / "modeling_evil.py").write_text(code)
    config = json.loads((folder / "config.json").read_text())
    config.update(
        model_type="evil",
        auto_map={
            "AutoConfig": "configuration_evil.EvilConfig",
            "AutoModelForSpeechSeq2Seq": "modeling_evil.EvilModel",
        },
    )
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="trust_remote_code"):
        Captioner.from_pretrained(str(folder))
    wav = write_tone(tmp_path / "a.wav")
    assert main(["caption", str(wav), "--model", str(folder), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"hf-audiocap caption: error: cannot load model '{folder}'") and "--trust-remote-code" in err
    assert not marker.exists()
