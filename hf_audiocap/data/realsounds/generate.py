"""Writing the real-sounds scenes in the Clotho layout, as SynthCaps does, so every loader, recipe and entry point
reads them unchanged::

    ROOT/{train,validation,test}/realsounds_{split}_{index:05d}.wav     scenes of 1-3 classes
    ROOT/test_single/realsounds_test_single_{index:05d}.wav            each test recording alone
    ROOT/independent/realsounds_independent_{index:05d}.wav            with --independent: recordings of other packages
    (with ``train_single_share``, that share of the training clips is a training recording alone, as test_single's)
    ROOT/clotho_captions_{split}.csv                                    file_name,caption_1,...,caption_5
    ROOT/realsounds_ground_truth_{split}.jsonl                          classes, recordings, roles and timing per clip
    ROOT/realsounds_info.json                                           seed, sizes, classes and their split recordings

Scenes of a split use only that split's recordings. Each clip depends only on (seed, split, index).
"""

from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from hf_audiocap.data.audio import resample
from hf_audiocap.data.realsounds.scenes import SPEED_RANGE, _energetic_start, _load, recording_bank
from hf_audiocap.data.synthcaps.captions import make_captions
from hf_audiocap.data.synthcaps.generate import _wav_bytes, _write_split, default_workers
from hf_audiocap.data.synthcaps.scenes import MAX_DURATION, _plan_scene
from hf_audiocap.data.synthcaps.synthesis import _LEVEL_DB, _fade, _synthesize_scene

SPLITS = ("train", "validation", "test")
SINGLE_SPLIT = "test_single"
# recordings of packages the corpus never draws from, each alone (`prepare realsounds --independent`)
INDEPENDENT_SPLIT = "independent"
# the splits whose clips are each one recording alone, at its nominal level, without noise or augmentation
SINGLE_SPLITS = (SINGLE_SPLIT, INDEPENDENT_SPLIT)
# what `hf-audiocap prepare realsounds` and the recipes make: 12,000 training clips train no longer than 4,000 (the
# recipes count steps, not epochs), and each clip heard fewer times is memorised less (benchmarks/RESULTS.md)
DEFAULT_SIZES = {"train": 12000, "validation": 150, "test": 300}
# the share of training clips that are one recording alone, as test_single (what a microphone clip is)
DEFAULT_TRAIN_SINGLE_SHARE = 0.15
_SPLIT_IDS = {"train": 0, "validation": 1, "test": 2, SINGLE_SPLIT: 3, INDEPENDENT_SPLIT: 4}
# scenes of 1, 2 and 3 classes, in every split
SIZE_PROBS = (0.35, 0.4, 0.25)


def file_name_for(split: str, index: int) -> str:
    return f"realsounds_{split}_{index:05d}.wav"


def scene_arguments(num_train: int, num_validation: int, num_test: int, train_single_share: float = 0.0) -> dict:
    """The scene arguments realsounds_info.json records (the share only when there is one, so that folders made
    before it existed still match)."""
    args = {"num_train": int(num_train), "num_validation": int(num_validation), "num_test": int(num_test)}
    return {**args, "train_single_share": float(train_single_share)} if train_single_share else args


def _classes_of(split_recordings: dict, split: str) -> dict[str, list[dict]]:
    return {cls: by_split[split] for cls, by_split in split_recordings.items() if by_split.get(split)}


def generate_scene(seed: int, split: str, index: int, split_recordings: dict, root: Path):
    """One scene: (int16 samples, 5 captions, ground-truth record)."""
    recordings = _classes_of(split_recordings, split)
    picked: list = []
    bank = recording_bank(recordings, root, picked=picked)
    rng = np.random.default_rng([int(seed), 7, _SPLIT_IDS[split], int(index)])
    # validation may hold fewer classes than a scene asks for (small classes keep their recordings for training)
    size = min(int(rng.choice(len(SIZE_PROBS), p=SIZE_PROBS)) + 1, len(recordings))
    combo = tuple(sorted(str(c) for c in rng.choice(sorted(recordings), size=size, replace=False)))
    plan = _plan_scene(rng, combo, bank)
    audio, info = _synthesize_scene(rng, plan, render=bank.render)
    captions = make_captions(rng, plan, bank=bank)
    return _pcm(audio), captions, _record(split, index, plan, info, dict(picked), len(audio), bank)


def pick_single(seed: int, index: int, split_recordings: dict, share: float) -> dict | None:
    """The training recording that training clip ``index`` is made of alone (a class, then one of its training
    recordings, uniformly), or None for a scene; about ``share`` of the clips. Drawn from a stream of its own, so the
    other clips are the scenes they would be without it."""
    rng = np.random.default_rng([int(seed), 9, _SPLIT_IDS["train"], int(index)])
    if share <= 0 or rng.random() >= share:
        return None
    recordings = _classes_of(split_recordings, "train")
    recs = recordings[sorted(recordings)[int(rng.integers(len(recordings)))]]
    return recs[int(rng.integers(len(recs)))]


def generate_single(seed: int, index: int, record: dict, root: Path, split: str = SINGLE_SPLIT):
    """One recording alone: no other source, no noise; up to MAX_DURATION s of it (its most energetic part), at the
    nominal level. Test recordings are not augmented; a training recording is sped up or slowed down (x0.9-1.1) as in
    the scenes, so that a model cannot memorise it."""
    cls = record["class"]
    bank = recording_bank({cls: [record]}, root, augment=False)
    rng = np.random.default_rng([int(seed), 7, _SPLIT_IDS[split], int(index)])
    plan = _plan_scene(rng, (cls,), bank)
    plan["attrs"][cls]["loudness"] = "normal"
    captions = make_captions(rng, plan, bank=bank)
    x = _load(str(root / record["file"]), 16000).astype(np.float64)
    if split == "train":
        x = resample(x, 16000, int(round(16000 / rng.uniform(*SPEED_RANGE))))
    length = min(len(x), int(MAX_DURATION * 16000))
    start = _energetic_start(x, length, rng, 16000)
    x = _fade(x[start : start + length].copy(), 16000, 0.02)
    x *= 10 ** (_LEVEL_DB["normal"] / 20) / (np.sqrt(np.mean(x**2)) + 1e-12)
    x *= min(1.0, 0.98 / (np.max(np.abs(x)) + 1e-12))
    plan.update(foreground=[cls], background=None, relation="single", windows={cls: (0.0, length / 16000)})
    info = {"timing": {cls: (0.0, round(length / 16000, 3), _LEVEL_DB["normal"])}, "noise": None}
    return _pcm(x), captions, _record(split, index, plan, info, {cls: record["id"]}, len(x), bank)


def _pcm(audio: np.ndarray) -> np.ndarray:
    return np.clip(np.round(audio * 32767.0), -32768, 32767).astype("<i2")


def _record(split, index, plan, info, picked, n, bank) -> dict:
    sources = []
    for s in plan["foreground"] + ([plan["background"]] if plan["background"] else []):
        on, off, level = info["timing"][s]
        sources.append({
            "name": s, "synonyms": list(bank.sources[s].synonyms), "recording": picked.get(s),
            "role": "background" if s == plan["background"] else "foreground",
            "loudness": plan["attrs"][s]["loudness"], "level_db": level, "onset": on, "offset": off,
        })  # fmt: skip
    return {
        "file_name": file_name_for(split, index),
        "duration": round(n / 16000, 4),
        "relation": plan["relation"],
        "background": plan["background"],
        "combination": sorted(plan["names"]),
        "sources": sources,
        "noise": info.get("noise"),
    }


def _work(job) -> list[tuple[list[str], dict]]:
    seed, split, start, stop, split_recordings, root, single_share = job
    root = Path(root)
    rows = []
    for index in range(start, stop):
        alone = pick_single(seed, index, split_recordings, single_share) if split == "train" else None
        if split in SINGLE_SPLITS:
            pcm, captions, record = generate_single(seed, index, split_recordings[index], root, split=split)
        elif alone is not None:
            pcm, captions, record = generate_single(seed, index, alone, root, split="train")
        else:
            pcm, captions, record = generate_scene(seed, split, index, split_recordings, root)
        (root / split / record["file_name"]).write_bytes(_wav_bytes(pcm))
        rows.append((captions, record))
    return rows


def generate_scenes(
    root: str | os.PathLike,
    split_recordings: dict[str, dict[str, list[dict]]],
    *,
    seed: int = 0,
    num_train: int = DEFAULT_SIZES["train"],
    num_validation: int = DEFAULT_SIZES["validation"],
    num_test: int = DEFAULT_SIZES["test"],
    train_single_share: float = 0.0,
    workers: int | None = None,
) -> dict[str, int]:
    """Writes the scenes of every split and the single-recording test set into ``root``; returns clips per split.
    ``train_single_share`` of the training clips are a training recording alone, the condition of test_single."""
    root = Path(root)
    sizes = {"train": int(num_train), "validation": int(num_validation), "test": int(num_test)}
    singles = [r for by_split in split_recordings.values() for r in by_split["test"]]
    jobs = []
    for split, n in sizes.items():
        jobs += [
            (seed, split, a, min(n, a + 50), split_recordings, str(root), train_single_share) for a in range(0, n, 50)
        ]
    jobs += [
        (seed, SINGLE_SPLIT, a, min(len(singles), a + 50), singles, str(root), 0.0) for a in range(0, len(singles), 50)
    ]
    for split in (*SPLITS, SINGLE_SPLIT):
        (root / split).mkdir(parents=True, exist_ok=True)
    results: dict[str, list] = {split: [] for split in (*SPLITS, SINGLE_SPLIT)}
    workers = default_workers() if workers is None else workers
    if workers == 1:
        done = list(map(_work, jobs))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            done = list(pool.map(_work, jobs))
    for job, rows in zip(jobs, done):
        results[job[1]].extend(rows)
    for split, rows in results.items():
        _write_split(root, split, rows, corpus="realsounds")
    info = {
        "name": "realsounds",
        "seed": int(seed),
        "arguments": scene_arguments(
            **{f"num_{k}": n for k, n in sizes.items()}, train_single_share=train_single_share
        ),
        "sample_rate": 16000,
        "splits": {split: len(rows) for split, rows in results.items()},
        "classes": {
            cls: {split: [r["id"] for r in recs] for split, recs in by_split.items()}
            for cls, by_split in split_recordings.items()
        },
    }
    (root / "realsounds_info.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return {split: len(rows) for split, rows in results.items()}


def generate_independent(root: str | os.PathLike, records: list[dict], *, seed: int = 0) -> int:
    """Writes each of ``records`` (recordings of packages the corpus never draws from) alone as the independent
    split, as test_single holds the test recordings, and lists them in realsounds_info.json; returns its clips."""
    root = Path(root)
    shutil.rmtree(root / INDEPENDENT_SPLIT, ignore_errors=True)
    (root / INDEPENDENT_SPLIT).mkdir(parents=True)
    rows = _work((seed, INDEPENDENT_SPLIT, 0, len(records), records, str(root), 0.0))
    _write_split(root, INDEPENDENT_SPLIT, rows, corpus="realsounds")
    info_path = root / "realsounds_info.json"
    info = json.loads(info_path.read_text(encoding="utf-8"))
    info["splits"][INDEPENDENT_SPLIT] = len(rows)
    info[INDEPENDENT_SPLIT] = independent_listing(records)
    info_path.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return len(rows)


def independent_listing(records: list[dict]) -> dict[str, list[str]]:
    """{class: [recording id]} of the independent split, as realsounds_info.json records it."""
    out: dict[str, list[str]] = {}
    for r in records:
        out.setdefault(r["class"], []).append(r["id"])
    return out
