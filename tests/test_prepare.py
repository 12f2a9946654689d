"""`hf-audiocap prepare` against a miniature Zenodo-like record on 127.0.0.1 (Range requests, dropped connections,
corrupt bytes) and a stand-in yt-dlp (a clip, a failure, a hang): the layouts it writes load with the project's
loaders and train, downloads resume and verify, a second run fetches nothing, and bad input stops with one line."""

from __future__ import annotations

import json
import shutil
import socket
import time
from pathlib import Path

import pytest
import soundfile as sf
from prepare_helpers import (
    RecordServer,
    audiocaps_csv,
    clotho_record,
    install_stand_in_yt_dlp,
    listing,
    make_7z,
    md5,
    rename_member,
    wav_bytes,
    yt_dlp_calls,
)
from recipe_helpers import make_synthcaps, recipe_main, tiny_run_args

pytest.importorskip("py7zr")

from hf_audiocap.cli import main as cli_main  # noqa: E402
from hf_audiocap.data.loaders import load_audiocaps, load_clotho, load_hf_dataset  # noqa: E402
from hf_audiocap.data.prepare import PrepareConfig, PrepareError, prepare  # noqa: E402


@pytest.fixture(scope="module")
def record_files(tmp_path_factory):
    synth = make_synthcaps(tmp_path_factory.mktemp("synth"), num_train=8, num_validation=3, num_test=3)
    return clotho_record(synth)


@pytest.fixture(scope="module")
def module_server():
    server = RecordServer()
    yield server
    server.shutdown()


@pytest.fixture
def server(module_server, record_files):
    module_server.files = dict(record_files)
    module_server.drop_after, module_server.ranges, module_server.log = {}, True, []
    return module_server


def clotho_config(server, root, **kw) -> PrepareConfig:
    values = {"url": server.url, "checksums": server.checksums_url, "progress": False, "retries": 0, "backoff": 0.0}
    values.update(kw)
    return PrepareConfig("clotho", str(root), **values)


def tree(root: Path) -> dict[str, str]:
    """{relative path: md5} of every file under `root`."""
    return {str(p.relative_to(root)): md5(p.read_bytes()) for p in sorted(root.rglob("*")) if p.is_file()}


# --- Clotho ------------------------------------------------------------------------------------------------------


def test_full_prepare_loads_and_a_second_run_fetches_nothing(server, tmp_path, record_files):
    root = tmp_path / "clotho"
    card = prepare(clotho_config(server, root))
    assert sorted(name for name, _ in server.gets()) == sorted(record_files)  # each file once, the listing too
    clips = load_clotho(root)
    assert {s: len(d) for s, d in clips.items()} == {"development": 8, "validation": 3, "evaluation": 3}
    assert all(len(c) == 5 for c in clips["development"]["captions"])
    assert card.splits["development"] == {"clips": 8, "missing": 0}
    saved = json.loads((root / "corpus_card.json").read_text())
    assert saved["files"]["clotho_audio_validation.7z"]["md5"] == md5(record_files["clotho_audio_validation.7z"])
    assert "| development | 8 | 0 |" in (root / "CORPUS_CARD.md").read_text()
    assert not list(root.rglob("*.part")) and not list(root.glob(".extracting-*"))

    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    server.log = []
    assert prepare(clotho_config(server, root)) is None
    assert server.log == [("GET", "md5sums.txt", None)]  # the checksum listing is read; nothing else is asked for
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == before


def test_an_interrupted_download_resumes_where_it_stopped(server, tmp_path, record_files, capsys):
    root = tmp_path / "clotho"
    archive = record_files["clotho_audio_development.7z"]
    half = len(archive) // 2
    server.drop_after["clotho_audio_development.7z"] = half
    assert cli_main(["prepare", "clotho", "--root", str(root), "--url", server.url, "--checksums",
                     server.checksums_url, "--retries", "0", "--no-progress"]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "clotho_audio_development.7z" in err and "rerun to resume" in err
    kept = (root / "downloads" / "clotho_audio_development.7z.part").stat().st_size
    assert 0 < kept <= half  # what arrived, but for the last chunk read

    server.log = []
    prepare(clotho_config(server, root))
    assert ("clotho_audio_development.7z", f"bytes={kept}-") in server.gets()
    assert md5((root / "downloads" / "clotho_audio_development.7z").read_bytes()) == md5(archive)
    assert len(load_clotho(root)["development"]) == 8


def test_a_dropped_connection_is_retried_in_the_same_run(server, tmp_path):
    server.drop_after["clotho_audio_validation.7z"] = 150_000
    prepare(clotho_config(server, tmp_path / "c", retries=2, splits=["validation"]))
    gets = [rng for name, rng in server.gets() if name == "clotho_audio_validation.7z"]
    assert gets[0] is None and gets[1].startswith("bytes=") and gets[1] != "bytes=0-" and len(gets) == 2


def test_a_corrupt_archive_or_part_is_detected_and_fetched_again(server, tmp_path, record_files):
    root = tmp_path / "clotho"
    prepare(clotho_config(server, root, splits=["validation"]))
    archive = root / "downloads" / "clotho_audio_validation.7z"
    archive.write_bytes(archive.read_bytes()[:-10] + b"corrupted!")  # a damaged archive, and a clip gone with it
    first = sorted((root / "validation").iterdir())[0]
    first.unlink()
    server.log = []
    prepare(clotho_config(server, root, splits=["validation"]))
    assert server.gets().count(("clotho_audio_validation.7z", None)) == 1
    assert md5(archive.read_bytes()) == md5(record_files["clotho_audio_validation.7z"]) and first.is_file()

    # a .part whose bytes are not the file's: the resumed download fails its checksum, one fresh download follows
    archive.unlink()
    shutil.rmtree(root / "validation")
    (root / "downloads" / "clotho_audio_validation.7z.part").write_bytes(b"x" * 50)
    server.log = []
    prepare(clotho_config(server, root, splits=["validation"]))
    assert [g for g in server.gets() if g[0] == "clotho_audio_validation.7z"] == [
        ("clotho_audio_validation.7z", "bytes=50-"),
        ("clotho_audio_validation.7z", None),
    ]
    assert len(load_clotho(root, "validation")["validation"]) == 3


def test_a_wrong_checksum_stops_naming_the_file(server, tmp_path, capsys):
    root = tmp_path / "clotho"
    good = server.files["clotho_audio_evaluation.7z"]
    server.files["clotho_audio_evaluation.7z"] = good[:-1] + bytes([good[-1] ^ 1])
    code = cli_main(["prepare", "clotho", "--root", str(root), "--url", server.url, "--checksums",
                     server.checksums_url, "--retries", "0", "--no-progress", "--splits", "evaluation"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "clotho_audio_evaluation.7z: checksum mismatch" in err and md5(good) in err
    assert not (root / "downloads" / "clotho_audio_evaluation.7z").exists()
    assert not list((root / "downloads").glob("*.part")) and not (root / "evaluation").exists()


def test_an_archive_member_leaving_the_root_is_refused(server, tmp_path):
    hostile = make_7z({"validation/a.wav": wav_bytes(1.0), "xx_evil.wav": b"evil"})
    server.files["clotho_audio_validation.7z"] = rename_member(hostile, "xx_evil.wav", "../evil.wav")
    server.files["md5sums.txt"] = listing(server.files)
    root = tmp_path / "clotho"
    with pytest.raises(PrepareError, match=r"clotho_audio_validation.7z: member '\.\./evil.wav' would be written"):
        prepare(clotho_config(server, root, splits=["validation"]))
    assert not (tmp_path / "evil.wav").exists() and not (root / "validation").exists()


def test_one_split_after_another_the_card_describes_both(server, tmp_path):
    root = tmp_path / "clotho"
    prepare(clotho_config(server, root, splits=["validation"]))
    card = prepare(clotho_config(server, root, splits=["evaluation"]))
    assert card.splits == {"validation": {"clips": 3, "missing": 0}, "evaluation": {"clips": 3, "missing": 0}}
    assert set(card.files) == {f"clotho_{kind}_{split}.{ext}" for kind, ext in (("captions", "csv"), ("audio", "7z"))
                               for split in ("validation", "evaluation")}  # fmt: skip
    assert "custom checksums" in card.version and card.checksums == server.checksums_url


def test_dry_run_lists_files_sizes_and_destinations_and_fetches_nothing(server, tmp_path, capsys, record_files):
    root = tmp_path / "clotho"
    prepare(clotho_config(server, root, dry_run=True, splits=["validation"]))
    out = capsys.readouterr().out
    assert f"{len(record_files['clotho_audio_validation.7z']) / 1000:.1f} KB" in out
    assert str(root / "downloads" / "clotho_audio_validation.7z") in out and "clotho_captions_validation.csv" in out
    assert server.gets() == [("md5sums.txt", None)] and not root.exists()
    # a server that answers with an error (a proxy's 404): said once, naming it; the sizes are then unknown
    del server.files["clotho_audio_validation.7z"], server.files["clotho_captions_validation.csv"]
    prepare(clotho_config(server, root, dry_run=True, splits=["validation"]))
    out = capsys.readouterr().out
    host = server.url.split("/")[2]
    assert out.count(f"{host}: answered 404") == 1 and "clotho_audio_validation.7z  size unknown" in out


@pytest.mark.parametrize("host", ["closed port", "no-such-host.invalid"])
def test_dry_run_says_once_within_seconds_that_a_server_cannot_be_reached(tmp_path, capsys, host):
    """A closed port on 127.0.0.1, or a host no resolver knows: one line naming the host, then the plan without
    asking that server again (sizes unknown)."""
    if host == "closed port":
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            host = f"127.0.0.1:{probe.getsockname()[1]}"
    start = time.monotonic()
    prepare(PrepareConfig("clotho", str(tmp_path / "clotho"), url=f"http://{host}/files", dry_run=True))
    out = capsys.readouterr().out
    assert time.monotonic() - start < 5
    assert out.count("cannot be reached") == 1 and out.startswith(f"{host}: cannot be reached (")
    assert "clotho_audio_evaluation.7z  size unknown" in out and not (tmp_path / "clotho").exists()


def test_bad_input_says_one_thing_and_keeps_what_was_downloaded(server, tmp_path, monkeypatch):
    # no network: nothing listens on the address
    with pytest.raises(PrepareError, match=r"clotho_captions_validation.csv: cannot download .*Connection refused"):
        prepare(clotho_config(server, tmp_path / "a", url="http://127.0.0.1:9/{name}", splits=["validation"]))
    # a root that cannot be written (a file stands where a folder should be)
    (tmp_path / "file").write_text("")
    with pytest.raises(PrepareError, match=r"--root .*file/clotho: cannot write there"):
        prepare(clotho_config(server, tmp_path / "file" / "clotho"))
    # a full disk: refused before the download starts
    root = tmp_path / "clotho"
    prepare(clotho_config(server, root, splits=["validation"]))
    kept = tree(root)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 100, 100))
    with pytest.raises(PrepareError, match=r"clotho: downloading 2 file\(s\) needs .* KB but the disk has 100 B free"):
        prepare(clotho_config(server, root, splits=["evaluation"]))
    monkeypatch.undo()
    # a disk that fills during a download: one line, and the bytes received are kept for the next run
    import errno

    import hf_audiocap.data.prepare.downloads as downloads

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(downloads.os, "fsync", full)
    with pytest.raises(PrepareError, match=r"clotho_captions_evaluation.csv: the disk is full .* kept in .*\.part"):
        prepare(clotho_config(server, root, splits=["evaluation"]))
    assert (root / "clotho_captions_evaluation.csv.part").stat().st_size > 0
    monkeypatch.undo()
    (root / "clotho_captions_evaluation.csv.part").unlink()
    # a root holding another version of the captions
    other = dict(server.files)
    other["clotho_captions_validation.csv"] = other["clotho_captions_validation.csv"].replace(b"a ", b"the ", 1)
    server.files["md5sums.txt"] = listing(other)
    with pytest.raises(PrepareError, match=r"corpus_card.json: clotho_captions_validation.csv was prepared with md5"):
        prepare(clotho_config(server, root, splits=["validation"]))
    (root / "corpus_card.json").unlink()
    with pytest.raises(PrepareError, match=r"clotho_captions_validation.csv: its md5 is not Clotho"):
        prepare(clotho_config(server, root, splits=["validation"]))
    kept.pop("corpus_card.json")
    assert tree(root) == kept  # nothing downloaded was lost or replaced


# --- AudioCaps ---------------------------------------------------------------------------------------------------

CAPTIONS = ["a dog barks", "a man speaks", "rain falls on a roof", "a car passes by", "birds sing loudly"]


@pytest.fixture
def audiocaps_server(server):
    train = {f"ok{i:09d}": [CAPTIONS[i % 5]] for i in range(6)}
    train |= {"private0001": ["a bell rings"], "gone0000001": ["water runs"], "hang0000001": ["a door closes"]}
    train["flaky000001"] = ["people talk"]
    server.files = {
        "train.csv": audiocaps_csv(train),
        "val.csv": audiocaps_csv({"okval000001": CAPTIONS, "okval000002": CAPTIONS[::-1]}),
        "test.csv": audiocaps_csv({"oktest00001": CAPTIONS, "gonetest001": CAPTIONS}),
    }
    server.files["md5sums.txt"] = listing(server.files)
    return server


def audiocaps_config(server, root, bin_dir, **kw) -> PrepareConfig:
    yt_dlp, ffmpeg = install_stand_in_yt_dlp(bin_dir)
    values = {"url": server.url, "checksums": server.checksums_url, "progress": False, "retries": 1, "backoff": 0.0,
                  "yt_dlp": str(yt_dlp), "ffmpeg": str(ffmpeg), "clip_timeout": 2.0, "jobs": 4}  # fmt: skip
    values.update(kw)
    return PrepareConfig("audiocaps", str(root), **values)


def test_audiocaps_downloads_clips_and_reports_the_missing(audiocaps_server, tmp_path):
    root, bin_dir = tmp_path / "audiocaps", tmp_path / "bin"
    started = time.monotonic()
    card = prepare(audiocaps_config(audiocaps_server, root, bin_dir))
    elapsed = time.monotonic() - started
    assert elapsed < 12, elapsed  # the hung clip is killed at its timeout (twice: one retry), concurrently
    info = sf.info(root / "audio" / "train" / "ok000000000_30.wav")
    assert (info.samplerate, info.channels, info.frames) == (32000, 1, 320000)  # 12 s stereo in, 10 s mono out
    calls = yt_dlp_calls(bin_dir)
    assert "ok000000000 *30-40" in calls and calls.count("flaky000001 *30-40") == 2
    assert calls.count("private0001 *30-40") == 1  # a private video is not retried
    report = (root / "missing_clips.csv").read_text().splitlines()
    reasons = {line.split(",")[1]: line.split(",")[3] for line in report[1:]}
    assert reasons == {"private0001": "private", "gone0000001": "removed", "hang0000001": "timeout",
                       "gonetest001": "removed"}  # fmt: skip
    assert card.splits == {"train": {"clips": 7, "missing": 3}, "val": {"clips": 2, "missing": 0},
                           "test": {"clips": 1, "missing": 1}}  # fmt: skip
    clips = load_audiocaps(root, root / "audio", skip_missing=True)
    assert {s: len(d) for s, d in clips.items()} == {"train": 7, "val": 2, "test": 1}
    with pytest.raises(FileNotFoundError, match="3 of 10"):
        load_audiocaps(root, root / "audio", "train")
    # a second run asks only for the clips still missing, and writes none of the others again
    before = tree(root / "audio")
    (bin_dir / "calls.log").unlink()
    prepare(audiocaps_config(audiocaps_server, root, bin_dir, clip_timeout=1.0, retries=0))
    assert sorted(c.split()[0] for c in yt_dlp_calls(bin_dir)) == sorted(reasons)
    assert tree(root / "audio") == before
    # a run on one split keeps the other splits' counts and reasons
    prepare(audiocaps_config(audiocaps_server, root, bin_dir, splits=["test"], retries=0))
    assert "private0001,30,private" in (root / "missing_clips.csv").read_text()
    assert set(json.loads((root / "corpus_card.json").read_text())["splits"]) == {"train", "val", "test"}


def test_audiocaps_from_a_folder_with_only_some_clips(audiocaps_server, tmp_path, capsys):
    mine = tmp_path / "my_clips"
    mine.mkdir()
    (mine / "Yok000000001.wav").write_bytes(wav_bytes(10.0, 16000, 1))
    (mine / "okval000001_30.flac").write_bytes(b"")
    sf.write(mine / "okval000001_30.flac", [0.0] * 16000, 16000)
    root = tmp_path / "audiocaps"
    prepare(audiocaps_config(audiocaps_server, root, tmp_path / "bin", audio_from=str(mine), splits=["train", "val"]))
    out = capsys.readouterr().out
    assert f"--audio-from {mine}: 10 of 12 clips are not there" in out
    assert (root / "audio" / "train" / "ok000000001_30.wav").is_file() and (mine / "Yok000000001.wav").is_file()
    assert (root / "audio" / "val" / "okval000001_30.flac").is_file()
    assert not yt_dlp_calls(tmp_path / "bin")
    assert "not in --audio-from" in (root / "missing_clips.csv").read_text()
    with pytest.raises(PrepareError, match="--audio-from .*nowhere: no such folder"):
        prepare(audiocaps_config(audiocaps_server, root, tmp_path / "bin", audio_from=str(tmp_path / "nowhere")))


def test_audiocaps_without_network_stops_and_keeps_the_clips(audiocaps_server, tmp_path, monkeypatch):
    import hf_audiocap.data.prepare.audiocaps as audiocaps

    monkeypatch.setattr(audiocaps, "GIVE_UP_AFTER", 2)
    root = tmp_path / "audiocaps"
    config = audiocaps_config(audiocaps_server, root, tmp_path / "bin", jobs=1, retries=0, splits=["val"])
    prepare(config)
    kept = tree(root / "audio")
    (root / "audio" / "val" / "okval000001_30.wav").unlink()
    kept.pop("val/okval000001_30.wav")
    dead = audiocaps_config(audiocaps_server, root, tmp_path / "bin", jobs=1, retries=0,
                            youtube_url="https://example.invalid/?v=hang{youtube_id}", clip_timeout=0.5)  # fmt: skip
    with pytest.raises(PrepareError, match=r"2 clips in a row failed .*is the network down"):
        prepare(dead)
    assert tree(root / "audio") == kept


# --- what the prepared folders are for ---------------------------------------------------------------------------


@pytest.mark.slow
def test_training_runs_on_prepared_folders_and_names_its_data(audiocaps_server, record_files, tmp_path):
    server, audiocaps_files = audiocaps_server, dict(audiocaps_server.files)
    server.files = dict(record_files)
    root = tmp_path / "clotho"
    prepare(clotho_config(server, root))
    out = tmp_path / "run"
    args = tiny_run_args(root, out, dataset="clotho", train_split="development", eval_split="validation",
                         test_split="None", max_steps=3, predict_with_generate="false")  # fmt: skip
    recipe_main()(args)
    card = (out / "README.md").read_text()
    assert "Data prepared by `hf-audiocap prepare`: clotho 2.1, custom checksums from http://127.0.0.1" in card
    assert "development 8 clips" in card

    server.files = audiocaps_files
    ac = tmp_path / "audiocaps"
    prepare(audiocaps_config(server, ac, tmp_path / "bin", clip_timeout=1.0, retries=0))
    out = tmp_path / "run_ac"
    args = tiny_run_args(ac, out, dataset="audiocaps", audio_dir=ac / "audio", train_split="train", eval_split="val",
                         test_split="None", skip_missing="true", max_steps=3, predict_with_generate="false")  # fmt: skip
    recipe_main()(args)
    assert "train 6 clips (4 missing)" in (out / "README.md").read_text()  # no retry: the flaky clip too


def test_to_datasets_saves_the_loader_schema_with_audio_embedded(server, tmp_path, monkeypatch):
    import datasets

    pushed = {}
    monkeypatch.setattr(datasets.DatasetDict, "push_to_hub", lambda self, repo: pushed.update({repo: self}))
    root, saved = tmp_path / "clotho", tmp_path / "arrow"
    prepare(clotho_config(server, root, splits=["validation", "evaluation"], to_datasets=str(saved),
                          push_to_hub="me/clotho-mini"))  # fmt: skip
    assert pushed["me/clotho-mini"]["evaluation"][0]["audio"]["bytes"][:4] == b"RIFF"  # the Hub copy stands alone
    shutil.rmtree(root)  # the saved dataset stands alone
    clips = load_hf_dataset(saved)
    assert {s: len(d) for s, d in clips.items()} == {"validation": 3, "evaluation": 3}
    row = clips["validation"][0]
    assert len(row["captions"]) == 5 and row["audio"]["bytes"][:4] == b"RIFF" and row["sampling_rate"] == 16000


def test_cli_prepare_help_names_every_option(capsys):
    with pytest.raises(SystemExit):
        cli_main(["prepare", "--help"])
    text = capsys.readouterr().out
    for option in ("--root", "--splits", "--dry-run", "--to-datasets", "--push-to-hub", "--url", "--checksums",
                   "--audio-from", "--jobs", "--clip-timeout", "--retries", "--keep-archives"):  # fmt: skip
        assert option in text


# --- MACS ----------------------------------------------------------------------------------------------------------


def test_macs_captions_and_only_its_clips_from_the_archives_that_hold_them(server, tmp_path):
    from prepare_helpers import MACS_CLIPS, macs_record, make_zip

    from hf_audiocap.data.loaders import load_manifest

    server.files = macs_record()
    root = tmp_path / "macs"
    config = PrepareConfig("macs", str(root), url=server.url, checksums=server.checksums_url, progress=False)
    card = prepare(config)
    fetched = [name for name, _ in server.gets()]
    assert fetched[:4] == ["md5sums.txt", "MACS.yaml", "MACS_competence.csv", "LICENSE.txt"]
    assert [n.split(".")[-2] for n in fetched[4:]] == ["1", "2"]  # every clip found: the other six are not fetched
    assert sorted(p.name for p in (root / "audio").iterdir()) == sorted(MACS_CLIPS)
    clips = load_manifest(root / "macs.csv")["train"]
    assert {row["id"]: row["captions"] for row in clips} == MACS_CLIPS
    assert card.splits == {"train": {"clips": 3, "missing": 0}}
    server.log = []
    assert prepare(config) is None and server.gets() == [("md5sums.txt", None)]

    # a zip member leaving the root stops the run before anything is written
    (root / "audio" / "tram-vienna-285-8639-a.wav").unlink()
    server.files["TAU-urban-acoustic-scenes-2019-development.audio.1.zip"] = make_zip({"../../evil.wav": b"x"})
    server.files["md5sums.txt"] = listing(server.files)
    (root / "corpus_card.json").unlink()  # the listing changed: this stands for a new root holding the old files
    with pytest.raises(PrepareError, match=r"audio.1.zip: member '\.\./\.\./evil.wav' would be written outside"):
        prepare(config)
    assert not (tmp_path / "evil.wav").exists() and not (root.parent.parent / "evil.wav").exists()


# --- WavCaps -------------------------------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("zip") is None, reason="the split-archive case needs the zip executable")
def test_wavcaps_leaves_out_the_eval_overlap_and_merges_split_archives(server, tmp_path, capsys):
    from prepare_helpers import wavcaps_record

    from hf_audiocap.data.loaders import load_manifest

    server.files = wavcaps_record(tmp_path / "record")
    assert "FreeSound.z02" in server.files  # the FreeSound archive is split in parts
    root = tmp_path / "wavcaps"
    config = PrepareConfig("wavcaps", str(root), url=server.url, progress=False,
                           overlap_url=server.url.format(name="blacklist_exclude_test_ac.json"))  # fmt: skip
    card = prepare(config)
    assert "wavcaps: 2 clips overlapping the Clotho/AudioCaps evaluation sets left out" in capsys.readouterr().out
    rows = load_manifest(root / "wavcaps.csv")["train"]
    assert sorted(rows["id"]) == ["AudioSet_SL/Yabcdefghijk.wav", "BBC_Sound_Effects/NHU05", "FreeSound/1001",
                                  "FreeSound/1002", "FreeSound/1003", "SoundBible/2219"]  # fmt: skip
    assert card.splits["BBC_Sound_Effects"] == {"clips": 1, "missing": 1}
    assert "BBC_Sound_Effects,NHU06,not in the archive" in (root / "missing_clips.csv").read_text()
    assert not (root / "audio" / "FreeSound" / "327991.flac").exists()
    assert "sha256" in json.loads((root / "corpus_card.json").read_text())["files"]["fsd_final.json"]
    server.log = []
    prepare(config)
    assert server.gets() == []

    kept = PrepareConfig("wavcaps", str(tmp_path / "all"), url=server.url, progress=False, keep_eval_overlap=True,
                         splits=["FreeSound"])  # fmt: skip
    prepare(kept)
    assert (tmp_path / "all" / "audio" / "FreeSound" / "327991.flac").is_file()
