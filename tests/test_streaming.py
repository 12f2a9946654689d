"""`streaming: true`: the training split is a `datasets.IterableDataset` read as training goes (hf source: local
parquet/jsonl streamed with `streaming=True`; other loaders: their index of paths through `to_iterable_dataset`), in the
caption schema with audio undecoded, captions expanded or grouped, shuffled, repeated, and split by node without the
Trainer sharding it again; validation/test stay map-style. Tiny corpus of sine clips written here."""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import datasets
import numpy as np
import pytest
import soundfile as sf
from recipe_helpers import REPO_ROOT, log_history, recipe_main, tiny_run_args, train_losses

from hf_audiocap.data.loaders import CAPTION_FEATURES
from hf_audiocap.data.streaming import (
    load_hf_stream,
    materialize,
    stream_num_shards,
    to_caption_stream,
    training_stream,
)
from hf_audiocap.training.arguments import DataArguments, parse_recipe
from hf_audiocap.training.builders import load_recipe_datasets, training_dataset

SPLITS = {"train": 8, "validation": 3, "test": 3}
TONES = [("a low hum", 220.0), ("a high beep", 1760.0)]


def _rows(root: Path, split: str, n: int) -> list[dict]:
    rows = []
    for i in range(n):
        words, freq = TONES[i % 2]
        path = root / "audio" / f"{split}_{i}.wav"
        t = np.arange(4000) / 16000.0
        sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), 16000)
        rows.append({"id": f"{split}_{i}", "file": path.name, "captions": [f"{words} {i}", f"{words} again"]})
    return rows


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    """Per split: `{split}.jsonl` (relative audio paths, for the manifest loader and the hf json stream) and
    `{split}.parquet` (audio bytes embedded as an `Audio` column); the training parquet is two files (two shards)."""
    root = tmp_path_factory.mktemp("stream_corpus")
    (root / "audio").mkdir()
    struct = datasets.Features(
        {
            "id": datasets.Value("string"),
            "audio": {"bytes": datasets.Value("binary"), "path": datasets.Value("string")},
            "captions": datasets.List(datasets.Value("string")),
        }
    )
    files: dict = {"root": root, "parquet": {}, "jsonl": {}}
    for split, n in SPLITS.items():
        rows = _rows(root, split, n)
        with open(root / f"{split}.jsonl", "w") as f:
            for r in rows:
                f.write(json.dumps({"id": r["id"], "audio": f"audio/{r['file']}", "captions": r["captions"]}) + "\n")
        files["jsonl"][split] = str(root / f"{split}.jsonl")
        embedded = [
            {
                "id": r["id"],
                "audio": {"bytes": (root / "audio" / r["file"]).read_bytes(), "path": r["file"]},
                "captions": r["captions"],
            }
            for r in rows
        ]
        # an Audio column in the parquet metadata (cast from the struct: encoding would need torchcodec)
        table = datasets.Dataset.from_list(embedded, features=struct).cast_column("audio", datasets.Audio())
        parts = [(0, n // 2), (n // 2, n)] if split == "train" else [(0, n)]
        files["parquet"][split] = []
        for k, (a, b) in enumerate(parts):
            path = root / f"{split}-{k}.parquet"
            table.select(range(a, b)).to_parquet(str(path))
            files["parquet"][split].append(str(path))
    return files


@pytest.fixture(autouse=True)
def no_parquet_shutdown_sleep(monkeypatch):
    # datasets sleeps 5 s whenever an iteration over parquet shards read by threads ends (a workaround for an Arrow
    # crash at interpreter exit, apache/arrow#45214): harmless once per training run, 5 s per stream in these tests
    monkeypatch.setattr(datasets.config, "SLEEP_TIME_ON_THREADS_SHUTDOWN", 0)


def _hf_args(corpus, **kw) -> DataArguments:
    cache = str(corpus["root"] / "hf_cache")
    return DataArguments(
        dataset="hf",
        dataset_path="parquet",
        dataset_kwargs={"data_files": corpus["parquet"], "cache_dir": cache},
        streaming=True,
        **kw,
    )


def _training_args(rank=0, world_size=1):
    return SimpleNamespace(data_seed=None, seed=0, process_index=rank, world_size=world_size)


def test_hf_parquet_streams_through_the_builders(corpus):
    data_args = _hf_args(corpus, group_captions=False, shuffle_buffer_size=4)
    clips = load_recipe_datasets(data_args)
    train = clips["train"]
    assert isinstance(train, datasets.IterableDataset) and train.features == CAPTION_FEATURES
    first = next(iter(train))
    assert set(first["audio"]) == {"bytes", "path"} and first["audio"]["bytes"][:4] == b"RIFF"  # undecoded
    assert first["sampling_rate"] == 16000 and first["captions"] == ["a low hum 0", "a low hum again"]
    # validation/test: map-style, grouped, with a length
    assert isinstance(clips["validation"], datasets.Dataset) and len(clips["validation"]) == 3
    assert clips["test"].features == CAPTION_FEATURES and clips["test"][1]["captions"][0] == "a high beep 1"
    # nothing converted into an Arrow cache: the parquet files are read as the stream goes
    assert not list((corpus["root"] / "hf_cache").rglob("*.arrow"))

    rows = training_dataset(train, data_args, _training_args())
    assert isinstance(rows, datasets.IterableDataset)
    assert set(rows.features) == {"id", "audio", "sampling_rate", "caption", "caption_index"}
    # 8 clips x 2 captions, shuffled, repeated without end (max_steps bounds the run): three passes' worth
    read = [(r["id"], r["caption_index"]) for r in itertools.islice(rows, 48)]
    assert len(read) == 48 and set(read) == {(f"train_{i}", k) for i in range(8) for k in (0, 1)}
    assert read[:16] != sorted(read[:16])


def test_on_disk_loader_and_json_stream_give_the_same_clips(corpus):
    manifest = DataArguments(
        dataset="manifest",
        dataset_path=corpus["jsonl"]["train"],
        dataset_kwargs={"default_split": "train", "caption_columns": "captions", "audio_column": "audio"},
        train_split="train",
        eval_split=None,
        test_split=None,
        streaming=True,
        max_train_clips=6,
    )
    train = load_recipe_datasets(manifest)["train"]
    assert isinstance(train, datasets.IterableDataset) and train.num_shards == stream_num_shards(6) == 4
    from_manifest = {r["id"]: r["captions"] for r in train}
    assert sorted(from_manifest) == [f"train_{i}" for i in range(6)]
    json_stream = load_hf_stream("json", "train", data_files=corpus["jsonl"], probe_audio=False)
    rows = list(json_stream)
    assert {r["id"]: r["captions"] for r in rows[:6]} == from_manifest
    assert rows[0]["audio"] == {"bytes": None, "path": "audio/train_0.wav"} and rows[0]["sampling_rate"] == 0
    assert len(materialize(json_stream, limit=5)) == 5
    # a save_to_disk folder streams through to_iterable_dataset (memory-mapped, converted as read)
    saved = corpus["root"] / "saved"
    parquet = load_hf_stream("parquet", "validation", data_files=corpus["parquet"], probe_audio=False)
    datasets.DatasetDict({"train": materialize(parquet)}).save_to_disk(str(saved))
    from_disk = load_hf_stream(saved, "train", probe_audio=False)
    assert [r["id"] for r in from_disk] == ["validation_0", "validation_1", "validation_2"]
    assert next(iter(from_disk))["audio"]["bytes"][:4] == b"RIFF"
    with pytest.raises(ValueError, match="no split test"):
        load_hf_stream(saved, "test")


@pytest.mark.parametrize("source", ["on_disk", "parquet_two_files", "parquet_one_file"])
def test_split_by_node_gives_disjoint_parts_covering_every_row(corpus, source):
    if source == "on_disk":  # 8 clips -> 8 shards: whole shards per node
        stream = to_caption_stream(materialize(load_hf_stream("json", "train", data_files=corpus["jsonl"])))
    else:  # two files: one shard per node; one file: each node keeps one row in two
        files = corpus["parquet"]["train"] if source == "parquet_two_files" else corpus["parquet"]["validation"]
        stream = load_hf_stream("parquet", "train", data_files={"train": files}, probe_audio=False)
    everything = {(r["id"], c) for r in stream for c in r["captions"]}
    opts = {"group_captions": False, "shuffle_buffer_size": 3, "seed": 7}
    parts = []
    for rank in (0, 1):
        part = training_stream(stream, rank=rank, world_size=2, repeat=False, **opts)
        parts.append([(r["id"], r["caption"]) for r in part])
    assert len(parts[0]) == len(set(parts[0])) and len(parts[1]) == len(set(parts[1]))
    assert not set(parts[0]) & set(parts[1])
    assert set(parts[0]) | set(parts[1]) == everything
    assert abs(len(parts[0]) - len(parts[1])) <= 2  # at most a clip's captions apart
    # repeated without end (what training reads)
    endless = [
        [
            (r["id"], r["caption"])
            for r in itertools.islice(training_stream(stream, rank=rank, world_size=2, **opts), 24)
        ]
        for rank in (0, 1)
    ]
    if stream.num_shards % 2 == 0:  # whole shards per node: each node reads its own rows, pass after pass
        assert set(endless[0]) == set(parts[0]) and set(endless[1]) == set(parts[1])
    else:  # one row in two of the same shuffled stream: together the nodes read it once, row after row
        single = training_stream(stream, **opts)
        together = [(r["id"], r["caption"]) for r in itertools.islice(single, 48)]
        assert [row for pair in zip(*endless) for row in pair] == together


def test_recipe_trains_on_a_stream(corpus, tmp_path, monkeypatch):
    import hf_audiocap.training.builders as builders

    streams = []
    monkeypatch.setattr(
        builders, "training_stream", lambda *a, **kw: streams.append(training_stream(*a, **kw)) or streams[-1]
    )
    out = tmp_path / "run"
    args = tiny_run_args(
        corpus["root"],
        out,
        dataset="hf",
        dataset_path="parquet",
        dataset_kwargs=json.dumps({"data_files": corpus["parquet"], "cache_dir": str(tmp_path / "cache")}),
        streaming="true",
        shuffle_buffer_size=8,
        group_captions="false",
        max_steps=6,  # 16 (clip, caption) rows in batches of 4: the stream is read one time and a half
        test_split="null",
        generation_max_length=6,
    )
    recipe_main()(args)
    assert len(streams) == 1 and isinstance(streams[0], datasets.IterableDataset)  # the Trainer read the stream
    losses = train_losses(out)
    assert len(losses) == 6 and all(math.isfinite(x) for x in losses)
    assert max(e["step"] for e in log_history(out)) == 6
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    vocab = json.loads((out / "tokenizer.json").read_text())["model"]["vocab"]
    assert {"hum", "beep", "again", "7"} <= set(vocab)  # built from the streamed training captions


def _parse(tmp_path, *extra):
    return parse_recipe(["--output_dir", str(tmp_path / "out"), "--report_to", "none", "--streaming", "true", *extra])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ((), "streaming: true needs max_steps > 0"),
        (("--max_steps", "10", "--group_captions", "--precompute_features"), "streaming cannot be combined with"),
        (("--max_steps", "10", "--eval_strategy", "epoch"), "eval_strategy: epoch would never trigger; use steps"),
        (("--max_steps", "10", "--save_strategy", "epoch"), "save_strategy: epoch would never trigger"),
        (("--max_steps", "10", "--train_sampling_strategy", "group_by_length"), "needs a map-style training split"),
        (("--max_steps", "10", "--shuffle_buffer_size", "-1"), "shuffle_buffer_size must be >= 0"),
        (("--max_steps", "10", "--dataset", "hf", "--skip_missing"), "skip_missing does not apply to dataset: hf"),
    ],
)
def test_recipe_checks(tmp_path, extra, message):
    with pytest.raises(ValueError, match=message):
        _parse(tmp_path, *extra)


def test_recipe_check_runs_before_training(tmp_path):
    _parse(tmp_path, "--max_steps", "10")  # a valid streaming recipe parses
    with pytest.raises(ValueError, match="needs max_steps > 0"):
        recipe_main()(tiny_run_args(tmp_path, tmp_path / "x", streaming="true", max_steps=-1))
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_two_processes_read_disjoint_parts(corpus, tmp_path):
    """torchrun, 2 CPU processes (gloo): each trains on its own part of the stream (the Trainer does not shard it a
    second time, nor dispatch rank 0's batches), every clip is read by one process, and the replicas stay equal."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_"))}
    env.update(
        OMP_NUM_THREADS="1",
        HF_HUB_OFFLINE="1",
        STREAM_IDS_DIR=str(tmp_path / "ids"),
        HF_AUDIOCAP_WEIGHTS_DIGEST_DIR=str(tmp_path / "digest"),
    )
    args = tiny_run_args(
        corpus["root"],
        tmp_path / "ddp",
        dataset="hf",
        dataset_path="parquet",
        dataset_kwargs=json.dumps({"data_files": corpus["parquet"], "cache_dir": str(tmp_path / "cache")}),
        streaming="true",
        shuffle_buffer_size=4,
        group_captions="true",  # rows are clips: 4 per process, batches of 2, 4 steps = each part read twice
        per_device_train_batch_size=2,
        max_steps=4,
        eval_split="null",
        test_split="null",
        normalize_features="false",
    )
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29583"]
    cmd += [str(REPO_ROOT / "tests" / "streaming_ddp_runner.py"), *args]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    seen = [json.loads((tmp_path / "ids" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [len(s) for s in seen] == [4, 4]  # 4 steps on each process, each a full batch of 2 clips
    parts = [{i for batch in s for i in batch} for s in seen]
    assert not parts[0] & parts[1], parts
    assert parts[0] | parts[1] == {f"train_{i}" for i in range(8)}
    # each process trained on every row of its own part, in order: nothing sharded a second time (accelerate's
    # IterableDatasetShard would keep one batch in two of it; dispatching would send rank 0's rows to both)
    stream = load_hf_stream("parquet", "train", data_files=corpus["parquet"], probe_audio=False)
    for rank in (0, 1):
        own = training_stream(stream, group_captions=True, shuffle_buffer_size=4, seed=0, rank=rank, world_size=2)
        assert [i for batch in seen[rank] for i in batch] == [r["id"] for r in itertools.islice(own, 8)], rank
    digests = [json.loads((tmp_path / "digest" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert digests[0]["sha256"] == digests[1]["sha256"] and digests[0]["world_size"] == 2
