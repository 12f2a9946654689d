"""SynthCaps: layout, determinism, captions, held-out combinations, scoring, CLI, and audible attributes."""

from __future__ import annotations

import csv
import json
import wave
from pathlib import Path

import numpy as np
import pytest

from hf_audiocap.cli import main as cli_main
from hf_audiocap.data import synthcaps as sc

SR = sc.SAMPLE_RATE


def _all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    return sc.generate_synthcaps(
        tmp_path_factory.mktemp("sc") / "ds", seed=3, num_train=6, num_validation=3, num_test=3, workers=1
    )


def _rows(root: Path, split: str) -> list[dict]:
    with (root / f"clotho_captions_{split}.csv").open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_layout_and_header(small):
    for split, n in (("train", 6), ("validation", 3), ("test", 3)):
        raw = (small / f"clotho_captions_{split}.csv").read_bytes()
        assert raw.startswith(b"file_name,caption_1,caption_2,caption_3,caption_4,caption_5\n")
        assert b"\r" not in raw
        rows = _rows(small, split)
        assert len(rows) == n
        for row in rows:
            assert (small / split / row["file_name"]).is_file()
        assert len(list((small / split).glob("*.wav"))) == n
    info = json.loads((small / "synthcaps_info.json").read_text())
    assert info["seed"] == 3 and info["generator_version"] == sc.GENERATOR_VERSION
    assert len(info["sources"]) >= 12


def test_captions_five_per_row_and_word_counts(small):
    for split in sc.SPLITS:
        for row in _rows(small, split):
            caps = [row[f"caption_{i}"] for i in range(1, 6)]
            assert all(caps)
            for cap in caps:
                assert sc.MIN_WORDS <= len(sc.caption_words(cap)) <= sc.MAX_WORDS, cap


def test_audio_format_and_duration(small):
    for split in sc.SPLITS:
        for rec in sc.load_ground_truth(small, split):
            with wave.open(str(small / split / rec["file_name"])) as w:
                assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, SR)
                dur = w.getnframes() / SR
                pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
            assert sc.MIN_DURATION <= dur <= sc.MAX_DURATION
            assert abs(dur - rec["duration"]) < 1e-3
            assert np.abs(pcm).max() > 100  # not silent


def test_ground_truth_consistent_with_csv(small):
    for split in sc.SPLITS:
        rows = _rows(small, split)
        gt = sc.load_ground_truth(small, split)
        assert [r["file_name"] for r in rows] == [g["file_name"] for g in gt]
        for row, rec in zip(rows, gt):
            assert 1 <= len(rec["sources"]) <= 3
            assert rec["relation"] in ("single", "then", "while", "background")
            names = {s["name"] for s in rec["sources"]}
            for s in rec["sources"]:
                assert set(s["synonyms"]) == set(sc.SOURCES[s["name"]].synonyms)
                assert 0 <= s["onset"] < s["offset"] <= rec["duration"] + 1e-6
            for i in range(1, 6):
                cap = row[f"caption_{i}"]
                assert sc.named_sources(cap) == names, (cap, names)
            if rec["relation"] == "then":  # sequential: foreground windows do not overlap
                fg = sorted((s for s in rec["sources"] if s["role"] == "foreground"), key=lambda s: s["onset"])
                assert all(a["offset"] <= b["onset"] for a, b in zip(fg, fg[1:]))
            if rec["background"]:
                bg = next(s for s in rec["sources"] if s["role"] == "background")
                assert bg["kind"] == "continuous"
                assert all(bg["level_db"] < s["level_db"] for s in rec["sources"] if s["role"] == "foreground")


def test_deterministic_and_worker_independent(tmp_path, small):
    again = sc.generate_synthcaps(tmp_path / "b", seed=3, num_train=6, num_validation=3, num_test=3, workers=2)
    assert _all_files(small) == _all_files(again)
    other = sc.generate_synthcaps(tmp_path / "c", seed=4, num_train=6, num_validation=3, num_test=3, workers=1)
    a, c = _all_files(small), _all_files(other)
    assert a.keys() == c.keys()
    assert a["train/synthcaps_train_00000.wav"] != c["train/synthcaps_train_00000.wav"]
    assert a["clotho_captions_train.csv"] != c["clotho_captions_train.csv"]


def test_synonyms_disjoint_and_catalogue_size():
    assert len(sc.CATALOGUE) >= 12
    seen: dict[str, str] = {}
    for spec in sc.CATALOGUE:
        for syn in spec.synonyms:
            assert syn not in seen, f"synonym {syn!r} of {spec.name} also names {seen.get(syn)}"
            seen[syn] = spec.name


def test_held_out_combinations():
    combos = sc.split_combinations(11)
    train, val, test = (set(map(frozenset, combos[s])) for s in sc.SPLITS)
    assert not train & test and not train & val and not val & test
    assert all(len(c) >= 2 for c in val | test)
    for name in sc.SOURCE_NAMES:  # every source in training alone and in combinations
        assert frozenset([name]) in train
        assert any(name in c and len(c) > 1 for c in train)
    # generated clips follow the split
    for split, allowed in (("validation", val), ("test", test)):
        for i in range(4):
            _, _, rec = sc.generate_clip(11, split, i)
            assert frozenset(rec["combination"]) in allowed


def test_vocabulary_size():
    combos = sc._combos_by_size(0)
    vocab: set[str] = set()
    for i in range(60):
        plan = sc._plan_scene(
            np.random.default_rng([0, 9, i]), sc._pick_combo(np.random.default_rng(i), combos["train"], "train")
        )
        for cap in sc.make_captions(np.random.default_rng([1, i]), plan):
            vocab.update(sc.caption_words(cap))
    assert len(vocab) >= 150, len(vocab)


def test_score_sources():
    gt = [
        {"sources": [{"name": "dog", "synonyms": ["dog"]}, {"name": "rain", "synonyms": ["rain"]}]},
        {"sources": [{"name": "bell", "synonyms": ["bell"]}]},
    ]
    perfect = sc.score_sources(["A dog barks while rain falls.", "A church bell rings twice."], gt)
    assert perfect["source_recall"] == 1.0 and perfect["source_precision"] == 1.0
    missing = sc.score_sources(["A puppy yaps loudly.", "A bell rings."], gt)
    assert missing["source_recall"] == pytest.approx(2 / 3) and missing["source_precision"] == 1.0
    extra = sc.score_sources(["A dog barks while rain falls.", "A bell rings as a car honks."], gt)
    assert extra["source_recall"] == 1.0 and extra["source_precision"] == pytest.approx(3 / 4)
    # whole-word matching: "doghouse" and "bells," are handled, punctuation removed
    assert sc.named_sources("The doghouse; bells, ringing!") == {"bell"}
    with pytest.raises(ValueError):
        sc.score_sources(["x"], gt)


def test_cli_and_refuse_overwrite(tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["synth", "--out", str(out), "--seed", "1", "--num-train", "2", "--num-validation", "1", "--num-test", "1"]
    assert cli_main([*args, "--workers", "1"]) == 0
    assert len(_rows(out, "train")) == 2
    assert cli_main(args) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert cli_main([*args, "--overwrite", "--num-train", "3"]) == 0
    assert len(_rows(out, "train")) == 3 and len(list((out / "train").glob("*.wav"))) == 3


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x**2)))


def _centroid(x: np.ndarray) -> float:
    mag = np.abs(np.fft.rfft(x))
    freqs = np.fft.rfftfreq(len(x), 1 / SR)
    return float((mag * freqs).sum() / mag.sum())


@pytest.mark.parametrize("name", sc.SOURCE_NAMES)
def test_loudness_is_audible(name):
    kw = {"count": 2} if sc.SOURCES[name].kind == "discrete" else {}
    loud = sc.synthesize_source(name, 4.0, seed=5, loudness="loud", **kw)
    quiet = sc.synthesize_source(name, 4.0, seed=5, loudness="quiet", **kw)
    assert _rms(loud) > 4 * _rms(quiet)


@pytest.mark.parametrize("name", [s.name for s in sc.CATALOGUE if s.kind != "discrete"])
def test_loudness_change_is_audible(name):
    up = sc.synthesize_source(name, 6.0, seed=2, loudness="getting louder")
    down = sc.synthesize_source(name, 6.0, seed=2, loudness="fading")
    thirds_up = [_rms(p) for p in np.array_split(up, 3)]
    thirds_down = [_rms(p) for p in np.array_split(down, 3)]
    assert thirds_up[0] < thirds_up[1] < thirds_up[2]
    assert thirds_down[0] > thirds_down[1] > thirds_down[2]


@pytest.mark.parametrize("name", [s.name for s in sc.CATALOGUE if s.pitched])
def test_pitch_is_audible(name):
    kw = {"count": 2} if sc.SOURCES[name].kind == "discrete" else {}
    high = sc.synthesize_source(name, 4.0, seed=7, pitch="high", **kw)
    low = sc.synthesize_source(name, 4.0, seed=7, pitch="low", **kw)
    assert _centroid(high) > 1.5 * _centroid(low)


def _count_events(x: np.ndarray, hop: int = 160) -> int:
    frames = np.sqrt(np.mean(x[: len(x) // hop * hop].reshape(-1, hop) ** 2, axis=1))
    active = frames > 0.2 * frames.max()
    return int(np.sum(active[1:] & ~active[:-1]) + active[0])


@pytest.mark.parametrize("name", [s.name for s in sc.CATALOGUE if s.kind == "repetitive"])
def test_tempo_is_audible(name):
    fast = sc.synthesize_source(name, 5.0, seed=1, tempo="fast")
    slow = sc.synthesize_source(name, 5.0, seed=1, tempo="slow")
    assert _count_events(fast) >= 2 * _count_events(slow) >= 4


@pytest.mark.parametrize("count", [1, 2, 3])
def test_count_is_audible(count):
    for name in ("beep", "knocking", "dog", "horn", "whistle"):
        x = sc.synthesize_source(name, 4.0, seed=count, count=count, onset=0.2)
        assert _count_events(x) == count, name
