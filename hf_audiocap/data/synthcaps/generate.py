"""Writing a SynthCaps folder: each clip from (seed, split, index), the Clotho-layout files, `hf-audiocap synth`."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import wave
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from hf_audiocap.data.synthcaps.captions import CAPTIONS_PER_CLIP, MAX_WORDS, MIN_WORDS, make_captions
from hf_audiocap.data.synthcaps.catalogue import CATALOGUE, SOURCES
from hf_audiocap.data.synthcaps.scenes import (
    MAX_DURATION,
    MIN_DURATION,
    _combos_by_size,
    _pick_combo,
    _plan_scene,
    combination_split,
)
from hf_audiocap.data.synthcaps.synthesis import SAMPLE_RATE, _synthesize_scene

GENERATOR_VERSION = "1.0.0"
SPLITS = ("train", "validation", "test")
DEFAULT_NUM_TRAIN = 6000
DEFAULT_NUM_VALIDATION = 200
DEFAULT_NUM_TEST = 200

_SPLIT_IDS = {"train": 0, "validation": 1, "test": 2}


def default_workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def _clip_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), _SPLIT_IDS[split], int(index)])


def file_name_for(split: str, index: int) -> str:
    return f"synthcaps_{split}_{index:05d}.wav"


def generate_clip(seed: int, split: str, index: int, combos: dict[int, list[tuple[str, ...]]] | None = None):
    """One clip: (int16 samples, captions, ground-truth record). Depends only on (seed, split, index)."""
    if combos is None:
        combos = _combos_by_size(seed)[split]
    rng = _clip_rng(seed, split, index)
    combo = _pick_combo(rng, combos, split)
    plan = _plan_scene(rng, combo)
    audio, info = _synthesize_scene(rng, plan)
    captions = make_captions(rng, plan)
    pcm = np.clip(np.round(audio * 32767.0), -32768, 32767).astype("<i2")
    sources = []
    for s in plan["foreground"] + ([plan["background"]] if plan["background"] else []):
        a, spec = plan["attrs"][s], SOURCES[s]
        on, off, level = info["timing"][s]
        sources.append(
            {
                "name": s,
                "synonyms": list(spec.synonyms),
                "kind": spec.kind,
                "role": "background" if s == plan["background"] else "foreground",
                "count": a["count"],
                "pitch": a["pitch"],
                "tempo": a["tempo"],
                "loudness": a["loudness"],
                "level_db": level,
                "onset": on,
                "offset": off,
            }
        )
    order = [x["name"] for x in sorted(sources, key=lambda x: (x["role"] == "background", x["onset"]))]
    record = {
        "file_name": file_name_for(split, index),
        "duration": round(len(pcm) / SAMPLE_RATE, 4),
        "sample_rate": SAMPLE_RATE,
        "relation": plan["relation"],
        "order": order,
        "background": plan["background"],
        "combination": sorted(plan["names"]),
        "sources": sources,
        "noise": info["noise"],
        "noise_db": info["noise_db"],
        "snr_db": info["snr_db"],
        "gain_db": info["gain_db"],
    }
    return pcm, captions, record


def _wav_bytes(pcm: np.ndarray, sr: int = SAMPLE_RATE) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def _work(job: tuple[int, str, int, int, str]) -> list[tuple[list[str], dict]]:
    seed, split, start, stop, audio_dir = job
    combos = _combos_by_size(seed)[split]
    rows = []
    for index in range(start, stop):
        pcm, captions, record = generate_clip(seed, split, index, combos)
        (Path(audio_dir) / record["file_name"]).write_bytes(_wav_bytes(pcm))
        rows.append((captions, record))
    return rows


def _dump_json(obj) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=True, separators=(",", ":"))


def _write_split(out_dir: Path, split: str, rows: list[tuple[list[str], dict]], corpus: str = "synthcaps") -> None:
    """``clotho_captions_{split}.csv`` and ``{corpus}_ground_truth_{split}.jsonl``, rows in clip order."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["file_name", *(f"caption_{i}" for i in range(1, CAPTIONS_PER_CLIP + 1))])
    for captions, record in rows:
        writer.writerow([record["file_name"], *captions])
    (out_dir / f"clotho_captions_{split}.csv").write_bytes(buf.getvalue().encode("utf-8"))
    lines = "".join(_dump_json(record) + "\n" for _, record in rows)
    (out_dir / f"{corpus}_ground_truth_{split}.jsonl").write_bytes(lines.encode("utf-8"))


def _output_names() -> list[str]:
    names = ["synthcaps_info.json"]
    for split in SPLITS:
        names += [split, f"clotho_captions_{split}.csv", f"synthcaps_ground_truth_{split}.jsonl"]
    return names


def check_generated_with(path: str | os.PathLike, synth_kwargs: dict) -> None:
    """Raise unless the SynthCaps folder at ``path`` was generated with ``synth_kwargs`` (arguments of
    :func:`generate_synthcaps`: seed, split sizes), as its ``synthcaps_info.json`` records them: otherwise a recipe
    asking for 6,000 training clips would silently train on an older 2,000-clip folder."""
    path = Path(path)
    info_path = path / "synthcaps_info.json"
    if not synth_kwargs or not info_path.is_file():
        return
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"'{info_path}' is not valid JSON ({err}): regenerate the SynthCaps folder") from None
    made = {"seed": info.get("seed"), **info.get("arguments", {})}
    differ = {k: (made[k], v) for k, v in synth_kwargs.items() if k in made and made[k] != v}
    if differ:
        said = ", ".join(f"{k}={new} (the folder has {old})" for k, (old, new) in differ.items())
        own = ", ".join(f"{k}: {v}" for k, v in made.items() if v is not None)
        raise ValueError(
            f"SynthCaps at {path} was generated with other arguments than the synth_kwargs: {said}. To train on it, "
            f"give the folder's own: synth_kwargs: {{{own}}}; to generate the dataset asked for, delete the folder "
            "(synth_if_missing: true regenerates it) or point dataset_path elsewhere."
        )


def generate_synthcaps(
    out_dir: str | os.PathLike,
    seed: int = 0,
    num_train: int = DEFAULT_NUM_TRAIN,
    num_validation: int = DEFAULT_NUM_VALIDATION,
    num_test: int = DEFAULT_NUM_TEST,
    workers: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Generate SynthCaps into ``out_dir`` (Clotho layout) and return its path.

    Refuses a non-empty ``out_dir`` unless ``overwrite`` (which removes only SynthCaps' own outputs there).
    The output is byte-identical for the same seed and sizes, whatever ``workers``.
    """
    sizes = {"train": num_train, "validation": num_validation, "test": num_test}
    for split, n in sizes.items():
        if int(n) < 0:
            raise ValueError(f"--num-{split}: expected a count >= 0, got {n}")
    workers = default_workers() if workers is None else int(workers)
    if workers < 1:
        raise ValueError(f"--workers: expected at least 1, got {workers}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"SynthCaps output '{out}' exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"refusing to overwrite non-empty dataset dir '{out}' (pass --overwrite)")
        for name in _output_names():
            p = out / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    out.mkdir(parents=True, exist_ok=True)

    jobs = []
    chunk = 25
    for split in SPLITS:
        (out / split).mkdir(exist_ok=True)
        for start in range(0, sizes[split], chunk):
            jobs.append((int(seed), split, start, min(sizes[split], start + chunk), str(out / split)))
    results: dict[str, list] = {split: [] for split in SPLITS}
    if workers == 1 or len(jobs) <= 1:
        for job in jobs:
            results[job[1]].extend(_work(job))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for job, rows in zip(jobs, pool.map(_work, jobs)):
                results[job[1]].extend(rows)
    for split in SPLITS:
        _write_split(out, split, results[split])

    held = combination_split(int(seed))
    info = {
        "name": "SynthCaps",
        "generator_version": GENERATOR_VERSION,
        "seed": int(seed),
        "arguments": {"num_train": num_train, "num_validation": num_validation, "num_test": num_test},
        "sample_rate": SAMPLE_RATE,
        "duration_range_s": [MIN_DURATION, MAX_DURATION],
        "captions_per_clip": CAPTIONS_PER_CLIP,
        "caption_words": [MIN_WORDS, MAX_WORDS],
        "splits": {split: {"num_clips": sizes[split], "audio_dir": split} for split in SPLITS},
        "held_out_pairs": {k: sorted(sorted(p) for p in v) for k, v in held.items()},
        "sources": [
            {
                "name": s.name,
                "kind": s.kind,
                "pitched": s.pitched,
                "synonyms": list(s.synonyms),
                "signature": s.description,
            }
            for s in CATALOGUE
        ],
    }
    (out / "synthcaps_info.json").write_bytes((json.dumps(info, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    return out


# ----------------------------------------------------------------------------------------------------------------------
# CLI (`hf-audiocap synth`)
# ----------------------------------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="dataset directory to create (Clotho layout)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    parser.add_argument(
        "--num-train", type=int, default=DEFAULT_NUM_TRAIN, help=f"train clips (default {DEFAULT_NUM_TRAIN})"
    )
    parser.add_argument(
        "--num-validation",
        type=int,
        default=DEFAULT_NUM_VALIDATION,
        help=f"validation clips (default {DEFAULT_NUM_VALIDATION})",
    )
    parser.add_argument(
        "--num-test", type=int, default=DEFAULT_NUM_TEST, help=f"test clips (default {DEFAULT_NUM_TEST})"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=default_workers(),
        help="worker processes (default min(2, cpu count)); output does not depend on it",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing SynthCaps dataset in --out")


def main_from_args(args: argparse.Namespace) -> int:
    out = generate_synthcaps(
        args.out,
        seed=args.seed,
        num_train=args.num_train,
        num_validation=args.num_validation,
        num_test=args.num_test,
        workers=args.workers,
        overwrite=args.overwrite,
    )
    total = args.num_train + args.num_validation + args.num_test
    print(f"SynthCaps: wrote {total} clips ({args.num_train}/{args.num_validation}/{args.num_test}) to {out}")
    return 0
