"""`hf-audiocap caption`: formats, windows and timestamps, folders, bad files, atomic output, bounded memory."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from audiocap_tiny import save_tiny_model, write_bad_files, write_long_sparse_wav, write_tone

from hf_audiocap.cli import main
from hf_audiocap.data.audio import load_audio
from hf_audiocap.inference.captioner import Captioner


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny_model"))


@pytest.fixture(scope="module")
def captioner(model_dir):
    return Captioner.from_pretrained(str(model_dir))


@pytest.fixture
def clips(tmp_path):
    folder = tmp_path / "clips"
    (folder / "sub").mkdir(parents=True)
    a = write_tone(folder / "a.wav", 2.0, freq=300)
    b = write_tone(folder / "sub" / "b.flac", 3.0, freq=900)
    (folder / "readme.txt").write_text("not audio, and not picked up from a folder")
    return folder, [a, b]


def run(argv, capsys):
    code = main(["caption", *map(str, argv), "--quiet"])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_format_and_folder_recursion(model_dir, captioner, clips, capsys):
    folder, (a, b) = clips
    code, out, err = run([folder, "--model", model_dir, "--format", "json"], capsys)
    assert code == 0, err
    results = json.loads(out)
    assert [r["path"] for r in results] == [str(a), str(b)]  # recursive, sorted, .txt ignored
    assert [r["duration"] for r in results] == [2.0, 3.0]
    for r, path in zip(results, (a, b)):
        assert r["segments"] == [
            {"start": 0.0, "end": r["duration"], "caption": captioner.caption_arrays([load_audio(path)])[0]}
        ]


def test_text_csv_srt_formats(model_dir, clips, capsys):
    folder, (a, b) = clips
    code, text, _ = run([a, b, "--model", model_dir], capsys)
    assert code == 0
    lines = text.splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"{a}\t") and lines[1].startswith(f"{b}\t")
    code, out, _ = run([a, b, "--model", model_dir, "--format", "csv"], capsys)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["path"], r["start"], r["end"]) for r in rows] == [
        (str(a), "0.000", "2.000"),
        (str(b), "0.000", "3.000"),
    ]
    assert [r["caption"] for r in rows] == [line.split("\t")[1] for line in lines]
    code, out, _ = run([a, "--model", model_dir, "--format", "srt"], capsys)
    assert out.startswith(f"1\n00:00:00,000 --> 00:00:02,000\n{rows[0]['caption']}\n")
    code, _, err = run([a, b, "--model", model_dir, "--format", "srt"], capsys)
    assert code == 2 and "exactly one audio file" in err


def test_long_file_windows_and_timestamps(model_dir, captioner, tmp_path, capsys):
    long = write_tone(tmp_path / "long.wav", 25.0, freq=200)
    code, out, err = run([long, "--model", model_dir, "--format", "json", "--window", "10", "--hop", "5"], capsys)
    assert code == 0, err
    (result,) = json.loads(out)
    assert result["duration"] == 25.0
    spans = [(s["start"], s["end"]) for s in result["segments"]]
    assert spans == [(0.0, 10.0), (5.0, 15.0), (10.0, 20.0), (15.0, 25.0)]
    wave = load_audio(long)
    expected = captioner.caption_arrays([wave[int(s * 16000) : int(e * 16000)] for s, e in spans])
    assert [s["caption"] for s in result["segments"]] == expected  # streamed windows = the same audio in memory
    # No overlap by default, and a final partial window covers the tail.
    code, out, _ = run([long, "--model", model_dir, "--format", "json", "--window", "10"], capsys)
    assert [(s["start"], s["end"]) for s in json.loads(out)[0]["segments"]] == [(0, 10), (10, 20), (20, 25)]


def test_bad_files_reported_others_captioned(model_dir, clips, tmp_path, capsys):
    folder, (a, b) = clips
    bad = write_bad_files(folder / "bad")
    missing = tmp_path / "missing.wav"
    code, out, err = run([folder, missing, "--model", model_dir, "--format", "json"], capsys)
    assert code == 1
    assert [r["path"] for r in json.loads(out)] == [str(a), str(b)]  # the good files are still captioned
    err_lines = [line for line in err.splitlines() if line.strip()]
    for path in [*bad.values(), missing]:
        (line,) = [x for x in err_lines if str(path) in x]  # exactly one line per bad file, naming it
        verb = "cannot caption" if path == bad["one_sample"] else "cannot decode"
        assert line.startswith(f"hf-audiocap caption: error: {verb}")
    assert "empty file" in err and "not an audio file" in err and "zero-length" in err and "truncated" in err
    assert "1 sample(s) (0.06 ms): shorter than the model's minimum input" in err
    assert "Traceback" not in err


def test_over_duration_limit(model_dir, clips, capsys):
    folder, (a, b) = clips
    code, out, err = run([a, b, "--model", model_dir, "--format", "json", "--max-duration", "2.5"], capsys)
    assert code == 1 and [r["path"] for r in json.loads(out)] == [str(a)]
    assert f"{str(b)!r}: duration 3.0 s exceeds max_duration=2.5 s" in err


def test_output_written_atomically_and_only_there(model_dir, clips, tmp_path, capsys):
    folder, (a, b) = clips
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target = out_dir / "captions.json"
    target.write_text("previous results\n")
    # A failure before captioning (model missing) leaves the existing output untouched.
    code, _, err = run([a, "--model", tmp_path / "no_such_model", "--output", target], capsys)
    assert code == 2 and "not found" in err and target.read_text() == "previous results\n"
    code, stdout, _ = run([a, b, "--model", model_dir, "--format", "json", "--output", target], capsys)
    assert code == 0 and stdout == ""
    assert [r["path"] for r in json.loads(target.read_text())] == [str(a), str(b)]
    assert sorted(os.listdir(out_dir)) == ["captions.json"]  # no temporary file left behind
    # A missing output folder is refused before any work and nothing is created.
    code, _, err = run([a, "--model", model_dir, "--output", tmp_path / "nope" / "c.json"], capsys)
    assert code == 2 and "does not exist" in err and not (tmp_path / "nope").exists()


def test_default_model_missing_says_make_demo(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    wav = write_tone(tmp_path / "a.wav", 1.0)
    code, _, err = run([wav], capsys)
    assert code == 2 and "make demo" in err and "--model" in err


_RSS_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys
    from hf_audiocap.cli import main
    code = main(["caption", sys.argv[1], "--model", sys.argv[2], "--window", "30", "--format", "json",
                 "--output", sys.argv[3], "--quiet"])
    print(json.dumps({"code": code, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
    """
)


def _peak_rss(wav, model_dir, out):
    proc = subprocess.run(
        [sys.executable, "-c", _RSS_SCRIPT, str(wav), str(model_dir), str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        # A fixed mmap threshold: glibc's dynamic one keeps freed batch buffers in the heap, which adds tens of MB of
        # allocator noise to the peak that has nothing to do with the recording's length.
        env={**os.environ, "OMP_NUM_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": str(1 << 20)},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_hour_long_file_bounded_memory(model_dir, tmp_path):
    """An hour of 16 kHz audio is 230 MB as float32; streamed, its peak RSS stays within a few MB of a 10-minute file's
    (both fill whole batches of 16 windows of 30 s, so the difference is what grows with the length)."""
    short = write_long_sparse_wav(tmp_path / "ten_minutes.wav", 600.0)
    hour = write_long_sparse_wav(tmp_path / "hour.wav", 3600.0)
    base = _peak_rss(short, model_dir, tmp_path / "short.json")
    peak = _peak_rss(hour, model_dir, tmp_path / "hour.json")
    assert base["code"] == 0 and peak["code"] == 0
    (result,) = json.loads((tmp_path / "hour.json").read_text())
    assert result["duration"] == 3600.0 and len(result["segments"]) == 120
    assert result["segments"][-1] == {**result["segments"][-1], "start": 3570.0, "end": 3600.0}
    growth = peak["peak_rss_mb"] - base["peak_rss_mb"]
    print(f"peak RSS: 10 min {base['peak_rss_mb']:.0f} MB, 1 h {peak['peak_rss_mb']:.0f} MB (+{growth:.0f} MB)")
    assert growth < 30, f"peak RSS grew by {growth:.0f} MB for an hour-long file (the whole file is 230 MB)"
    assert np.isfinite(growth)
