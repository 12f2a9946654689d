import json
import os

import datasets
import numpy as np
import pytest
import soundfile as sf

from hf_audiocap.data import (
    CAPTION_FEATURES,
    DatasetFormatError,
    MissingAudioError,
    expand_captions,
    load_audio,
    load_audiocaps,
    load_audiofolder,
    load_caption_dataset,
    load_clotho,
    load_hf_dataset,
    load_manifest,
)


def write_wav(path, sr=8000, seconds=0.25, channels=1):
    path.parent.mkdir(parents=True, exist_ok=True)
    x = np.full((int(sr * seconds), channels), 0.1, np.float32)
    sf.write(path, x, sr)
    return path


def write_text(path, text, newline="\n"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.replace("\n", newline).encode("utf-8"))
    return path


def check_schema(dd):
    assert isinstance(dd, datasets.DatasetDict)
    for ds in dd.values():
        assert ds.features == CAPTION_FEATURES, ds.features


# ---------------------------------------------------------------------------------------------------------------- Clotho

CLOTHO_HEADER = "file_name,caption_1,caption_2,caption_3,caption_4,caption_5\n"


@pytest.fixture
def clotho_root(tmp_path):
    root = tmp_path / "clotho"
    write_text(
        root / "clotho_captions_development.csv",
        CLOTHO_HEADER
        + '"rain, heavy.wav",Rain falls hard.,"Rain, heavy, on a roof.",Water drops.,It rains.,A storm.\n'
        + "dog bark.wav,A dog barks.,A dog barks twice.,Barking.,A dog.,Dog barking loudly.\n",
        newline="\r\n",
    )
    write_text(
        root / "clotho_captions_validation.csv",
        CLOTHO_HEADER + "bird.wav,Birds sing.,A bird chirps.,Chirping.,Birds.,Birds in the morning.\n",
        newline="\r\n",
    )
    write_wav(root / "development" / "rain, heavy.wav", sr=44100)
    write_wav(root / "development" / "dog bark.wav", sr=22050, channels=2)
    write_wav(root / "clotho_audio_validation" / "bird.wav", sr=48000)
    return root


def test_clotho_layout(clotho_root):
    dd = load_clotho(clotho_root)
    check_schema(dd)
    assert list(dd) == ["development", "validation"]
    dev = dd["development"]
    assert dev["id"] == ["rain, heavy.wav", "dog bark.wav"]
    assert dev[0]["captions"][1] == "Rain, heavy, on a roof."
    assert all(len(c) == 5 for c in dev["captions"])
    assert dev["sampling_rate"] == [44100, 22050]
    assert dev[0]["audio"] == {"bytes": None, "path": str(clotho_root / "development" / "rain, heavy.wav")}
    assert dd["validation"][0]["audio"]["path"].endswith("clotho_audio_validation/bird.wav")
    assert len(load_audio(dev[1]["audio"])) == 4000  # 0.25 s at 16 kHz
    assert list(load_clotho(clotho_root, splits="validation")) == ["validation"]
    # an explicit mapping
    dd = load_clotho(
        clotho_root, splits=["validation"], audio_dirs={"validation": clotho_root / "clotho_audio_validation"}
    )
    assert dd["validation"].num_rows == 1


def test_clotho_missing_audio(clotho_root):
    (clotho_root / "development" / "dog bark.wav").unlink()
    with pytest.raises(MissingAudioError, match=r"1 audio file\(s\) missing \(development: 1 of 2.*'dog bark.wav'"):
        load_clotho(clotho_root)
    with pytest.warns(UserWarning, match="skipped 1 clip"):
        dd = load_clotho(clotho_root, skip_missing=True)
    assert dd["development"]["id"] == ["rain, heavy.wav"]


def test_clotho_bad_csvs(clotho_root):
    csv_path = clotho_root / "clotho_captions_validation.csv"
    write_text(csv_path, "file_name,text\nbird.wav,Birds.\n")
    with pytest.raises(DatasetFormatError, match=r"clotho_captions_validation.csv': missing column\(s\) caption_1"):
        load_clotho(clotho_root)
    write_text(csv_path, CLOTHO_HEADER + "bird.wav,Birds sing.,,Chirping.,Birds.,Birds.\n", newline="\r\n")
    with pytest.raises(DatasetFormatError, match=r"clotho_captions_validation.csv' line 2: empty caption"):
        load_clotho(clotho_root)
    with pytest.warns(UserWarning, match="dropped 1 empty caption"):
        dd = load_clotho(clotho_root, splits="validation", drop_empty_captions=True)
    assert len(dd["validation"][0]["captions"]) == 4
    csv_path.write_bytes(CLOTHO_HEADER.encode() + b"bird.wav,caf\xe9,b,c,d,e\r\n")
    with pytest.raises(DatasetFormatError, match=r"clotho_captions_validation.csv' line 2: not valid UTF-8"):
        load_clotho(clotho_root)
    with pytest.raises(DatasetFormatError, match="available: development, validation"):
        load_clotho(clotho_root, splits=["evaluation"])


def test_real_clotho_csvs(shared_data, tmp_path):
    root = shared_data / "clotho"
    with pytest.raises(MissingAudioError, match=r"development: 3,839 of 3,839"):
        load_clotho(root, splits="development")
    # dummy (empty) audio files: the real CSV parses into 3,839 clips x 5 captions
    dummy = tmp_path / "dev"
    dummy.mkdir()
    import csv

    with open(root / "clotho_captions_development.csv", newline="", encoding="utf-8") as fh:
        names = [row["file_name"] for row in csv.DictReader(fh)]
    for name in names:
        (dummy / name).touch()
    dd = load_clotho(root, splits="development", audio_dirs={"development": dummy}, probe_audio=False)
    dev = dd["development"]
    assert dev.num_rows == 3839 and sum(len(c) for c in dev["captions"]) == 19195
    assert sum("," in i for i in dev["id"]) == 134
    assert set(dev["sampling_rate"]) == {0}


# ------------------------------------------------------------------------------------------------------------- AudioCaps


@pytest.fixture
def audiocaps_dirs(tmp_path):
    csv_dir = tmp_path / "csv"
    write_text(
        csv_dir / "train.csv",
        'audiocap_id,youtube_id,start_time,caption\n1,aaa,30,A man speaks\n2,bbb,0,"Rain, then thunder"\n',
    )
    val = "audiocap_id,youtube_id,start_time,caption\n"
    for k in range(5):
        val += f"{10 + k},ccc,130,Caption {k} of ccc\n{20 + k},ddd,40,Caption {k} of ddd\n"
    write_text(csv_dir / "val.csv", val)
    audio = tmp_path / "audio"
    write_wav(audio / "train" / "aaa_30.wav", sr=16000)
    write_wav(audio / "train" / "bbb_0.flac", sr=32000)
    write_wav(audio / "ccc_130.mp3", sr=16000)  # split folder missing for val: the root is searched too
    write_wav(audio / "validation" / "ddd_40.ogg", sr=48000)
    return csv_dir, audio


def test_audiocaps_layout(audiocaps_dirs):
    csv_dir, audio = audiocaps_dirs
    dd = load_audiocaps(csv_dir, audio)
    check_schema(dd)
    assert list(dd) == ["train", "val"]
    assert dd["train"]["id"] == ["aaa_30", "bbb_0"]
    assert dd["train"]["captions"] == [["A man speaks"], ["Rain, then thunder"]]
    assert dd["train"]["sampling_rate"] == [16000, 32000]
    val = dd["val"]
    assert val["id"] == ["ccc_130", "ddd_40"]
    assert val["captions"][1] == [f"Caption {k} of ddd" for k in range(5)]
    assert val["sampling_rate"] == [16000, 48000]
    assert val[1]["audio"]["path"] == str(audio / "validation" / "ddd_40.ogg")


def test_audiocaps_templates_and_missing(audiocaps_dirs, tmp_path):
    csv_dir, _ = audiocaps_dirs
    audio = tmp_path / "ytaudio"
    write_wav(audio / "Yaaa.wav")
    write_wav(audio / "Ybbb.wav")
    dd = load_audiocaps(csv_dir, audio, splits="train", audio_template="Y{youtube_id}.{ext}")
    assert dd["train"].num_rows == 2
    with pytest.raises(MissingAudioError, match=r"val: 2 of 2.*'ccc_130', 'ddd_40'"):
        load_audiocaps(csv_dir, audio)
    write_text(csv_dir / "test.csv", "audiocap_id,youtube_id,caption\n1,x,hi\n")
    with pytest.raises(DatasetFormatError, match=r"test.csv': missing column\(s\) start_time"):
        load_audiocaps(csv_dir, audio, splits="test")


def test_real_audiocaps_csvs(shared_data):
    csv_dir, audio = shared_data / "audiocaps", shared_data / "real_clips" / "audiocaps"
    with pytest.raises(MissingAudioError, match=r"train: 49,838 of 49,838"):
        load_audiocaps(csv_dir, audio, splits="train")
    with pytest.warns(UserWarning) as record:
        dd = load_audiocaps(csv_dir, audio, splits=["val", "test"], skip_missing=True)
    messages = [str(w.message) for w in record]
    assert len(messages) == 2
    assert messages[0].startswith("split 'val': skipped 494 clip(s)")
    assert messages[1].startswith("split 'test': skipped 973 clip(s)")
    assert sorted(dd["test"]["id"]) == ["FhimNYClv40_40", "z1ax0QPpd14_170"]
    assert dd["val"]["id"] == ["sShpyu2l4YQ_0"]
    assert all(len(c) == 5 for c in list(dd["test"]["captions"]) + list(dd["val"]["captions"]))


# ------------------------------------------------------------------------------------------------- manifest, audiofolder


def test_manifest_csv(tmp_path):
    write_wav(tmp_path / "clips" / "a.wav")
    write_wav(tmp_path / "clips" / "b c.wav", sr=22050)
    m = write_text(
        tmp_path / "manifest.csv",
        "audio,caption_1,caption_2,caption_3,split\n"
        'clips/a.wav,One.,"Two, with comma.",,train\n'
        "clips/b c.wav,Only one.,,,test\n",
        newline="\r\n",
    )
    dd = load_manifest(m, split_column="split")
    check_schema(dd)
    assert dd["train"][0]["captions"] == ["One.", "Two, with comma."]
    assert dd["train"][0]["id"] == "clips/a.wav"
    assert dd["test"][0]["sampling_rate"] == 22050
    assert dd["test"][0]["audio"]["path"] == str(tmp_path / "clips" / "b c.wav")


def test_manifest_jsonl_merges_rows_and_lists(tmp_path):
    write_wav(tmp_path / "x.wav")
    write_wav(tmp_path / "y.wav")
    m = tmp_path / "m.jsonl"
    lines = [
        {"path": "x.wav", "captions": ["First.", "Second."]},
        {"path": "x.wav", "captions": ["Third."]},  # same clip: merged
        {"path": {"path": "y.wav"}, "captions": ["Why."]},
    ]
    m.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    dd = load_manifest(m)
    assert dd["train"]["id"] == ["x.wav", "y.wav"]
    assert dd["train"]["captions"] == [["First.", "Second.", "Third."], ["Why."]]


def test_manifest_errors(tmp_path):
    write_wav(tmp_path / "data" / "a.wav")
    outside = write_wav(tmp_path / "secret.wav")
    m = write_text(tmp_path / "data" / "m.csv", "audio,caption\na.wav,ok\n../secret.wav,sneaky\n")
    with pytest.raises(DatasetFormatError, match=r"m.csv' line 3: audio path '../secret.wav' points outside"):
        load_manifest(m)
    write_text(m, f"audio,caption\na.wav,ok\n{outside},absolute\n")
    with pytest.raises(DatasetFormatError, match="line 3: .*points outside"):
        load_manifest(m)
    write_text(m, f"audio,caption\ndata/a.wav,ok\n{outside},absolute\n")
    assert load_manifest(m, base_dir=tmp_path)["train"].num_rows == 2  # resolved against, and bounded by, base_dir
    write_text(m, "audio,caption\na.wav,\n")
    with pytest.raises(DatasetFormatError, match="m.csv' line 2: empty caption"):
        load_manifest(m)
    write_text(m, "audio,caption\na.wav,fine\nnope.wav,gone\n")
    with pytest.raises(MissingAudioError, match="'nope.wav'"):
        load_manifest(m)
    write_text(m, "file,text\na.wav,hello\n")
    with pytest.raises(DatasetFormatError, match=r"m.csv': missing column\(s\) audio"):
        load_manifest(m)
    with pytest.raises(DatasetFormatError, match=r"missing column\(s\) caption \(expected captions, caption or"):
        load_manifest(m, audio_column="file")
    assert load_manifest(m, audio_column="file", caption_columns="text")["train"][0]["captions"] == ["hello"]


def test_real_clips_manifest(shared_data):
    dd = load_manifest(shared_data / "real_clips" / "manifest.csv", split_column="split")
    check_schema(dd)
    assert sum(ds.num_rows for ds in dd.values()) == 34
    assert dd["train"].num_rows == 7  # the debian_sfx labels have no split
    assert {r["id"].split("/")[0] for r in dd["validation"]} == {"clotho"}
    assert all(len(c) == 5 for c in dd["validation"]["captions"])
    assert set(dd["evaluation"]["sampling_rate"]) == {44100}


def test_audiofolder(tmp_path):
    root = tmp_path / "af"
    write_wav(root / "one.wav")
    write_wav(root / "sub" / "two.wav")
    write_text(root / "metadata.csv", "file_name,caption\none.wav,First clip.\nsub/two.wav,Second clip.\n")
    dd = load_audiofolder(root)
    check_schema(dd)
    assert dd["train"]["captions"] == [["First clip."], ["Second clip."]]

    split_root = tmp_path / "af2"
    for split in ("train", "test"):
        write_wav(split_root / split / "a.wav")
        (split_root / split / "metadata.jsonl").write_text(json.dumps({"file_name": "a.wav", "caption": split}) + "\n")
    dd = load_caption_dataset("audiofolder", split_root)
    assert list(dd) == ["train", "test"] and dd["test"][0]["captions"] == ["test"]


# ------------------------------------------------------------------------------------------------------- HF datasets


def _save_hf(tmp_path):
    a = write_wav(tmp_path / "wavs" / "a.wav", sr=22050)
    b = write_wav(tmp_path / "wavs" / "b.flac", sr=44100)
    struct = datasets.Features(
        {
            "audio": {"bytes": datasets.Value("binary"), "path": datasets.Value("string")},
            "text": datasets.Value("string"),
            "clip": datasets.Value("string"),
        }
    )
    ds = datasets.Dataset.from_dict(
        {
            "audio": [{"bytes": None, "path": str(a)}, {"bytes": b.read_bytes(), "path": "b.flac"}],
            "text": ["A caption.", "Another one."],
            "clip": ["a", "b"],
        },
        features=struct,
    ).cast_column("audio", datasets.Audio(sampling_rate=16000))
    assert isinstance(ds.features["audio"], datasets.Audio)
    out = tmp_path / "saved"
    datasets.DatasetDict({"train": ds, "test": ds.select([1])}).save_to_disk(str(out))
    return out


def test_hf_saved_dataset(tmp_path):
    saved = _save_hf(tmp_path)
    dd = load_hf_dataset(saved, caption_column="text", id_column="clip")
    check_schema(dd)
    assert dd["train"]["id"] == ["a", "b"]
    assert dd["train"]["captions"] == [["A caption."], ["Another one."]]
    assert dd["train"]["sampling_rate"] == [22050, 44100]  # probed from the path / from the embedded bytes
    assert dd["train"][1]["audio"]["bytes"] is not None
    assert len(load_audio(dd["train"][1]["audio"])) == 4000
    only = load_caption_dataset("hf", str(saved), caption_column="text", split="test")
    assert list(only) == ["test"] and only["test"]["id"] == ["b.flac"]
    with pytest.raises(DatasetFormatError, match="no caption column"):
        load_hf_dataset(saved)


def test_hf_load_dataset_files(tmp_path):
    write_wav(tmp_path / "q.wav")
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({"audio": str(tmp_path / "q.wav"), "captions": ["x", "y"]}) + "\n")
    dd = load_hf_dataset("json", data_files=str(data), cache_dir=str(tmp_path / "cache"))
    check_schema(dd)
    assert dd["train"][0]["captions"] == ["x", "y"] and dd["train"][0]["sampling_rate"] == 8000


# --------------------------------------------------------------------------------------------- registry and expansion


def test_registry_unknown_name():
    with pytest.raises(ValueError, match="unknown caption dataset loader 'cloth'.*audiocaps, audiofolder, clotho, hf"):
        load_caption_dataset("cloth", "x")


def test_expand_captions(clotho_root, tmp_path):
    dd = load_clotho(clotho_root)
    ex = expand_captions(dd)
    dev = ex["development"]
    assert dev.num_rows == 10
    assert dev["caption_index"] == [0, 1, 2, 3, 4] * 2
    assert dev["caption"][:2] == ["Rain falls hard.", "Rain, heavy, on a roof."]
    assert dev["id"][:5] == ["rain, heavy.wav"] * 5
    assert "captions" not in dev.column_names
    assert isinstance(dev.features["audio"], datasets.Audio) and not dev.features["audio"].decode
    assert dd["validation"].num_rows == 1 and ex["validation"].num_rows == 5
    assert os.path.isfile(dev[7]["audio"]["path"])
