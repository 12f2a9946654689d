"""The real-sounds corpus: the class table, the recording split, scene generation, and `hf-audiocap prepare
realsounds` against tiny Debian packages the tests build (an `ar` archive with a data.tar.xz holding WAV and OGG
files, an OpenTTD .cat and a Qt .rcc), served from 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from prepare_helpers import RecordServer
from realsounds_helpers import make_deb, make_opensfx_cat, make_qt_rcc, ogg_bytes, wav_bytes

import hf_audiocap.data.prepare.realsounds as prepare_module
import hf_audiocap.data.realsounds.recordings as recordings_module
from hf_audiocap.data.prepare import PrepareConfig, PrepareError, prepare
from hf_audiocap.data.realsounds import CLASSES, MIN_RECORDINGS, RECORDINGS
from hf_audiocap.data.realsounds.generate import generate_scene
from hf_audiocap.data.realsounds.packages import DebianPackage
from hf_audiocap.data.realsounds.recordings import split_recordings
from hf_audiocap.data.synthcaps import named_sources


def test_class_table_is_usable():
    assert len(CLASSES) >= 20
    assert all(len(RECORDINGS[c.name]) >= MIN_RECORDINGS for c in CLASSES)
    listed = [name for names in RECORDINGS.values() for name in names]
    assert len(listed) == len(set(listed)), "a recording is listed twice"
    words = [w for c in CLASSES for w in c.synonyms]
    assert len(words) == len(set(words)), "two classes share a caption word"
    for cls in CLASSES:  # every way the grammar names a class names it, and no other
        for subject, _, verbs in cls.subjects:
            for forms in verbs:
                for form in forms:
                    caption = f"{subject.replace('{adj}', '')} {form}"
                    assert named_sources(caption, CLASSES) == {cls.name}, caption


def _records(counts: dict[str, int]) -> list[dict]:
    return [{"id": f"{c}-{i}", "class": c, "file": f"{c}/{i}.wav"} for c, n in counts.items() for i in range(n)]


def test_split_is_by_recording_deterministic_and_drops_small_classes():
    records = _records({"dog": 4, "cow": 9, "water": 3})
    by_class, dropped = split_recordings(records, seed=0)
    assert set(by_class) == {"dog", "cow"}
    # a small class keeps its recordings for training rather than hold one out for validation
    assert {s: len(r) for s, r in by_class["dog"].items()} == {"test": 1, "validation": 0, "train": 3}
    assert {s: len(r) for s, r in by_class["cow"].items()} == {"test": 2, "validation": 1, "train": 6}
    assert "water (3 recordings)" in dropped and "sheep (0 recordings)" in dropped
    for cls, splits in by_class.items():
        ids = [r["id"] for recs in splits.values() for r in recs]
        assert len(ids) == len(set(ids)) == sum(r["class"] == cls for r in records)
        assert all(splits[s] for s in ("train", "test"))
    assert split_recordings(list(reversed(records)), seed=0)[0] == by_class
    assert split_recordings(records, seed=1)[0] != by_class


# --- tiny packages ----------------------------------------------------------------------------------------------------

SR = 22050


def _tone(i: int, seconds: float = 1.5, kind: str = "tone") -> np.ndarray:
    rng = np.random.default_rng(i)
    t = np.arange(int(seconds * SR)) / SR
    if kind == "noise":
        return (0.3 * rng.standard_normal(len(t))).astype(np.float32)
    return (0.5 * np.sin(2 * np.pi * (200 + 97 * i) * t) * np.exp(-t)).astype(np.float32)


def _tiny_corpus(monkeypatch, bad_sha: bool = False) -> dict[str, bytes]:
    """Two packages: plain files (dog .ogg, the one class with recordings enough for validation, water .wav, one corrupt cow .ogg) and containers (drums in a .cat, bells in
    a .rcc); the class table and package pins replaced by theirs. Returns the files the server holds."""
    plain = {f"usr/share/tiny/dog{i}.ogg": ogg_bytes(_tone(i), SR) for i in range(6)}
    plain |= {f"usr/share/tiny/water{i}.wav": wav_bytes(_tone(10 + i, 2.5, "noise"), SR) for i in range(4)}
    plain["usr/share/tiny/cow.ogg"] = b"OggS not really an ogg file"
    cat = make_opensfx_cat([(f'"Drum {i}". License: CC0 1.0.', wav_bytes(_tone(20 + i), SR)) for i in range(4)])
    rcc = make_qt_rcc({f"sounds/bell{i}.ogg": ogg_bytes(_tone(30 + i), SR) for i in range(4)})
    debs = {
        "tiny-sounds": make_deb(plain, package="tiny-sounds", version="1.0-1"),
        "tiny-games": make_deb({"usr/share/games/sfx.cat": cat, "usr/share/games/res.rcc": rcc},
                               package="tiny-games", version="2.0-1"),
    }  # fmt: skip
    packages = tuple(
        DebianPackage(name, ver, "0" * 64 if bad_sha else hashlib.sha256(data).hexdigest(), len(data),
                      f"pool/main/t/{name}/{name}_{ver}_all.deb", "CC0", "test sounds")
        for (name, data), ver in zip(debs.items(), ("1.0-1", "2.0-1"))
    )  # fmt: skip
    table = {
        "dog": tuple(f"tiny-sounds:usr/share/tiny/dog{i}.ogg" for i in range(6)),
        "water": tuple(f"tiny-sounds:usr/share/tiny/water{i}.wav" for i in range(4)),
        "cow": ("tiny-sounds:usr/share/tiny/cow.ogg",),
        "drums": tuple(f"tiny-games:usr/share/games/sfx.cat#{i}" for i in range(4)),
        "bell": tuple(f"tiny-games:usr/share/games/res.rcc#bell{i}.ogg" for i in range(4)),
    }
    monkeypatch.setattr(prepare_module, "PACKAGES", packages)
    monkeypatch.setattr(prepare_module, "RECORDINGS", table)
    monkeypatch.setattr(recordings_module, "RECORDINGS", table)
    return {p.file_name: debs[p.name] for p in packages}


def _config(root: Path, server: RecordServer, **kw) -> PrepareConfig:
    sizes = {"num_train": 12, "num_validation": 4, "num_test": 6}
    return PrepareConfig(corpus="realsounds", root=str(root), url=server.url, progress=False, retries=0,
                         backoff=0.01, **{**sizes, **kw})  # fmt: skip


@pytest.fixture
def server():
    srv = RecordServer()
    yield srv
    srv.shutdown()


def test_prepare_realsounds_from_tiny_packages(tmp_path, monkeypatch, server, capsys):
    server.files = _tiny_corpus(monkeypatch)
    root = tmp_path / "rs"
    card = prepare(_config(root, server))
    assert {r["class"] for r in card.recordings if r.get("split")} == {"dog", "water", "drums", "bell"}
    skipped = [r for r in card.recordings if "skipped" in r]
    assert [r["path"] for r in skipped] == ["usr/share/tiny/cow.ogg"]  # corrupt: skipped and listed, not fatal
    assert "cow (0 recordings)" in " ".join(card.notes)
    drums = [r for r in card.recordings if r["class"] == "drums"]
    assert drums[0]["title"] == "Drum 0" and drums[0]["licence"] == "CC0 1.0"
    for r in card.recordings:
        assert {"package", "version", "deb_sha256", "path", "licence"} <= set(r)
    saved = json.loads((root / "corpus_card.json").read_text())
    assert saved["recordings"] == card.recordings
    assert "tiny-games 2.0-1: CC0 (4 recordings), CC0 1.0 (4 recordings)" in (root / "CORPUS_CARD.md").read_text()

    # every scene of a split is cut from that split's recordings only; each test recording alone in test_single
    split_of = {r["id"]: r["split"] for r in card.recordings if r.get("split")}
    for split in ("train", "validation", "test"):
        lines = (root / f"realsounds_ground_truth_{split}.jsonl").read_text().splitlines()
        assert len(lines) == {"train": 12, "validation": 4, "test": 6}[split]
        for line in lines:
            for source in json.loads(line)["sources"]:
                assert split_of[source["recording"]] == split
    singles = [json.loads(x) for x in (root / "realsounds_ground_truth_test_single.jsonl").read_text().splitlines()]
    assert sorted(s["sources"][0]["recording"] for s in singles) == sorted(
        i for i, s in split_of.items() if s == "test"
    )
    rows = (root / "clotho_captions_test.csv").read_text().splitlines()
    assert rows[0] == "file_name,caption_1,caption_2,caption_3,caption_4,caption_5" and len(rows) == 7

    # a second run finds everything in place: nothing fetched, nothing rewritten
    gets = len(server.gets())
    before = (root / "train" / "realsounds_train_00000.wav").stat().st_mtime_ns
    prepare(_config(root, server))
    assert len(server.gets()) == gets
    assert (root / "train" / "realsounds_train_00000.wav").stat().st_mtime_ns == before
    # the archives are not needed once their recordings are in place: deleted, they are not fetched again
    prepare(_config(root, server, keep_archives=False))
    assert not list((root / "downloads").iterdir())
    prepare(_config(root, server, keep_archives=False))
    assert len(server.gets()) == gets


def test_dry_run_lists_packages_and_fetches_nothing(tmp_path, monkeypatch, server, capsys):
    server.files = _tiny_corpus(monkeypatch)
    prepare(_config(tmp_path / "rs", server, dry_run=True))
    out = capsys.readouterr().out
    assert "tiny-sounds 1.0-1" in out and "tiny-games 2.0-1" in out and "CC0" in out and "11 recordings" in out
    assert server.gets() == [] and not (tmp_path / "rs").exists()


def test_checksum_mismatch_is_refused(tmp_path, monkeypatch, server):
    server.files = _tiny_corpus(monkeypatch, bad_sha=True)
    with pytest.raises(PrepareError, match=r"tiny-sounds 1.0-1: cannot fetch it .*checksum mismatch") as err:
        prepare(_config(tmp_path / "rs", server))
    assert "\n" not in str(err.value)
    assert not list((tmp_path / "rs" / "downloads").glob("*.deb"))


def test_unreachable_package_and_unparsable_deb(tmp_path, monkeypatch, server):
    files = _tiny_corpus(monkeypatch)
    server.files = {}  # the mirror has nothing
    with pytest.raises(PrepareError, match=r"^tiny-sounds 1.0-1: cannot fetch it .*HTTP 404") as err:
        prepare(_config(tmp_path / "a", server))
    assert "\n" not in str(err.value)
    # a file with the pinned checksum that is no Debian package: one line naming it
    junk = b"this is not an ar archive"
    packages = tuple(
        DebianPackage(p.name, p.version, hashlib.sha256(junk).hexdigest(), len(junk), p.pool, p.licence, p.holds)
        for p in prepare_module.PACKAGES
    )
    monkeypatch.setattr(prepare_module, "PACKAGES", packages)
    server.files = dict.fromkeys(files, junk)
    with pytest.raises(PrepareError, match=r"tiny-sounds_1.0-1_all.deb") as err:
        prepare(_config(tmp_path / "b", server))
    assert "\n" not in str(err.value)


def test_scenes_are_deterministic_and_use_their_split(tmp_path, monkeypatch, server):
    server.files = _tiny_corpus(monkeypatch)
    root = tmp_path / "rs"
    card = prepare(_config(root, server, num_train=2, num_validation=1, num_test=1))
    records = [r for r in card.recordings if "file" in r]
    by_class, _ = split_recordings(records)
    a = generate_scene(3, "test", 5, by_class, root)
    b = generate_scene(3, "test", 5, by_class, root)
    assert np.array_equal(a[0], b[0]) and a[1] == b[1] and a[2] == b[2]
    assert not np.array_equal(a[0], generate_scene(4, "test", 5, by_class, root)[0])
    test_ids = {r["id"] for splits in by_class.values() for r in splits["test"]}
    assert {s["recording"] for s in a[2]["sources"]} <= test_ids
    assert len(a[1]) == 5 and all(named_sources(c, CLASSES) == set(a[2]["combination"]) for c in a[1])


def test_train_recipe_reports_classes_and_the_single_recordings(tmp_path, monkeypatch, server):
    """recipes/train.py on a realsounds folder: test_metrics.json carries the class scores of the test scenes, of the
    baseline, and single_class_accuracy from test_single (extra_test_splits); the per-class tables are written; the
    model card lists the recordings' licences."""
    from recipe_helpers import recipe_main, tiny_run_args

    server.files = _tiny_corpus(monkeypatch)
    data = tmp_path / "rs"
    prepare(_config(data, server))
    out = tmp_path / "out"
    args = tiny_run_args(data, out, dataset="realsounds", extra_test_splits="test_single", max_duration=16)
    recipe_main()(args + ["--synth_kwargs", "{seed: 0, num_train: 12, num_validation: 4, num_test: 6}"])
    metrics = json.loads((out / "test_metrics.json").read_text())
    for key in ("class_recall", "class_precision", "baseline_class_recall", "baseline_class_precision"):
        assert 0.0 <= metrics[key] <= 1.0
    assert 0.0 <= metrics["single_class_accuracy"] <= 1.0 and "test_single_class_recall" in metrics
    single = json.loads((out / "test_single_metrics.json").read_text())
    assert single["single_class_accuracy"] == metrics["single_class_accuracy"]
    assert "| class | clips | recall |" in (out / "test_classes.md").read_text()
    assert len((out / "test_single_predictions.jsonl").read_text().splitlines()) == 4
    assert "tiny-games 2.0-1: CC0" in (out / "README.md").read_text()


def test_training_recordings_alone_leave_every_other_clip_as_it_was(tmp_path, monkeypatch, server):
    """train_single_share: that share of the training clips is one training recording alone (no noise, no other
    source); every other training clip, the validation and both test sets are byte-identical to a corpus without."""
    import json

    server.files = _tiny_corpus(monkeypatch)
    plain, mixed = tmp_path / "plain", tmp_path / "mixed"
    prepare(_config(plain, server, num_train=30, train_single_share=0.0))
    prepare(_config(mixed, server, num_train=30, train_single_share=0.4))

    def truth(root, split):
        return [
            json.loads(line) for line in (root / f"realsounds_ground_truth_{split}.jsonl").read_text().splitlines()
        ]

    alone = [r for r in truth(mixed, "train") if r["noise"] is None]  # a scene always has background noise
    assert 5 <= len(alone) <= 20 and all(len(r["sources"]) == 1 for r in alone)
    assert all(r["noise"] is not None for r in truth(plain, "train"))
    train_ids = {r["id"] for splits in split_recordings([r for r in prepare(_config(mixed, server, num_train=30,
                 train_single_share=0.4)).recordings if "file" in r])[0].values() for r in splits["train"]}  # fmt: skip
    assert {r["sources"][0]["recording"] for r in alone} <= train_ids
    for a, b in zip(truth(plain, "train"), truth(mixed, "train")):
        if b["noise"] is not None:
            assert (
                a == b
                and (plain / "train" / a["file_name"]).read_bytes() == (mixed / "train" / b["file_name"]).read_bytes()
            )
    for split in ("validation", "test", "test_single"):
        for f in sorted((plain / split).glob("*.wav")):
            assert f.read_bytes() == (mixed / split / f.name).read_bytes()
    info = json.loads((mixed / "realsounds_info.json").read_text())
    assert info["arguments"]["train_single_share"] == 0.4
    assert "train_single_share" not in json.loads((plain / "realsounds_info.json").read_text())["arguments"]


def test_the_preparers_defaults_make_the_corpus_of_make_demo():
    """`hf-audiocap prepare realsounds --root data/realsounds` (the docs' command) makes the corpus `make demo`'s recipes
    and the other data/realsounds recipes ask for, so they train on it as it is rather than writing its scenes again."""
    import yaml

    from hf_audiocap.data.prepare.realsounds import scene_sizes, single_share
    from hf_audiocap.data.realsounds.generate import scene_arguments

    defaults = PrepareConfig(corpus="realsounds", root="data/realsounds")
    made = {
        "seed": defaults.seed,
        **scene_arguments(**scene_sizes(defaults), train_single_share=single_share(defaults)),
    }
    recipes = Path(__file__).resolve().parents[1] / "recipes"
    asked, mixture = {}, {}
    for path in sorted(recipes.rglob("*.yaml")):
        recipe = yaml.safe_load(path.read_text())
        for corpus in [recipe, *recipe.get("corpora", [])]:
            if corpus.get("dataset_path") == "data/realsounds":
                asked[path.name] = corpus["synth_kwargs"]
            elif corpus.get("dataset_path") == "data/realsounds-mixture":
                mixture[path.name] = corpus["synth_kwargs"]
    assert {"demo.yaml", "demo_scst.yaml", "whisper_base.yaml"} <= set(asked)
    for name, synth_kwargs in asked.items():
        assert synth_kwargs == made, name
    # the mixture's folder differs only in its share of recordings alone: the same validation and test clips
    assert set(mixture) == {"mixture.yaml"}
    assert {**mixture["mixture.yaml"], "train_single_share": made["train_single_share"]} == made


def test_evaluate_recipe_scores_realsounds_predictions_with_their_class_table(tmp_path, monkeypatch, server, capsys):
    from tests.test_evaluate_recipe import run_evaluate

    server.files = _tiny_corpus(monkeypatch)
    root = tmp_path / "rs"
    prepare(_config(root, server))
    truth = [json.loads(x) for x in (root / "realsounds_ground_truth_test.jsonl").read_text().splitlines()]
    preds = tmp_path / "preds.jsonl"  # each clip named by its first class
    preds.write_text("".join(json.dumps({"id": t["file_name"], "prediction": f"a {t['sources'][0]['name']}"}) + "\n"
                             for t in truth))  # fmt: skip
    args = ["--predictions", str(preds), "--dataset", "realsounds", "--dataset_path", str(root), "--split", "test"]
    metrics = run_evaluate(args + ["--metrics", "cider_d"])
    assert metrics["class_precision"] == 1.0 and 0 < metrics["class_recall"] <= 1.0
    assert "class_recall" in capsys.readouterr().out
    assert (tmp_path / "evaluate_test_classes.md").is_file()


def _tiny_independent(monkeypatch, corpus_files: dict[str, bytes]) -> dict[str, bytes]:
    """A third package for the independent split: two new dog recordings, a water one, a cow one (a class the tiny
    corpus leaves out) and a copy of a corpus recording's file under another name."""
    files = {f"usr/share/other/bark{i}.wav": wav_bytes(_tone(40 + i), SR) for i in range(2)}
    files["usr/share/other/stream.ogg"] = ogg_bytes(_tone(50, 2.5, "noise"), SR)
    files["usr/share/other/moo.ogg"] = ogg_bytes(_tone(51), SR)
    files["usr/share/other/copy.ogg"] = ogg_bytes(_tone(0), SR)  # the samples of the corpus's dog0.ogg
    deb = make_deb(files, package="tiny-other", version="1:3.0-1")
    package = DebianPackage("tiny-other", "1:3.0-1", hashlib.sha256(deb).hexdigest(), len(deb),
                            "pool/main/t/tiny-other/tiny-other_3.0-1_all.deb", "GPL-2+", "other sounds")  # fmt: skip
    table = {
        "dog": ("tiny-other:usr/share/other/bark0.wav", "tiny-other:usr/share/other/bark1.wav",
                "tiny-other:usr/share/other/copy.ogg"),
        "water": ("tiny-other:usr/share/other/stream.ogg",),
        "cow": ("tiny-other:usr/share/other/moo.ogg",),
    }  # fmt: skip
    monkeypatch.setattr(prepare_module, "INDEPENDENT_PACKAGES", (package,))
    monkeypatch.setattr(prepare_module, "INDEPENDENT_RECORDINGS", table)
    return {**corpus_files, package.file_name: deb}


def test_independent_split_holds_other_packages_recordings_alone(tmp_path, monkeypatch, server, capsys):
    """--independent adds the recordings of other packages, each alone, as the `independent` split: only classes the
    corpus keeps, none with a corpus recording's samples, every other clip as it was; scored with
    single_class_accuracy; a second run fetches nothing."""
    from hf_audiocap.data.prepare.card import card_summary
    from hf_audiocap.data.realsounds.scoring import class_scores

    files = _tiny_independent(monkeypatch, _tiny_corpus(monkeypatch))
    plain, root = tmp_path / "plain", tmp_path / "rs"
    server.files = {k: v for k, v in files.items() if not k.startswith("tiny-other")}
    with pytest.raises(PrepareError, match=r"^tiny-other 1:3.0-1: cannot fetch it .*HTTP 404") as err:
        prepare(_config(root, server, independent=True))
    assert "\n" not in str(err.value) and not (root / "train").exists()  # no clip written before every package is in
    server.files = files
    prepare(_config(plain, server))
    prepare(_config(tmp_path / "dry", server, dry_run=True, independent=True))
    assert "tiny-other 1:3.0-1" in capsys.readouterr().out and not (tmp_path / "dry").exists()
    card = prepare(_config(root, server, independent=True))
    ours = [r for r in card.recordings if r["package"] == "tiny-other"]
    assert sorted(r["id"] for r in ours if r["split"] == "independent") == [
        "dog-tiny-bark0",
        "dog-tiny-bark1",
        "water-tiny-stream",
    ]
    assert [r["skipped"] for r in ours if "skipped" in r] == ["the same samples as a recording of the corpus"]
    assert any("The independent split: 3 recordings of 2 classes" in n for n in card.notes)
    # a model card (the corpus card's summary) names the packages trained on apart from those only tested on
    summary = card_summary(root)
    corpus_part, _, independent_part = summary.partition("The independent split")
    assert "tiny-other" not in corpus_part and "tiny-sounds" in corpus_part
    assert independent_part.startswith(
        " (recordings of other packages, tested on only): tiny-other 1:3.0-1: GPL-2+ (3"
    )
    truth = [json.loads(x) for x in (root / "realsounds_ground_truth_independent.jsonl").read_text().splitlines()]
    assert [t["sources"][0]["recording"] for t in truth] == ["dog-tiny-bark0", "dog-tiny-bark1", "water-tiny-stream"]
    assert all(t["relation"] == "single" and t["noise"] is None for t in truth)
    for split in ("train", "validation", "test", "test_single"):  # the corpus is the one made without it
        for f in sorted((plain / split).glob("*.wav")):
            assert f.read_bytes() == (root / split / f.name).read_bytes()
    names = [t["file_name"] for t in truth]
    scores = class_scores(["a dog barks", "a stream flows and a dog barks", "a dog barks"], names, root, "independent")
    assert scores["single_class_accuracy"] == 1 / 3 and scores["class_recall"] == 2 / 3

    gets = len(server.gets())
    before = (root / "independent" / names[0]).stat().st_mtime_ns
    prepare(_config(root, server, independent=True))
    assert len(server.gets()) == gets and (root / "independent" / names[0]).stat().st_mtime_ns == before
    again = prepare(_config(root, server))  # without --independent, the folder keeps its split and card lists it
    assert [r["id"] for r in again.recordings if r["split"] == "independent"] == [
        "dog-tiny-bark0",
        "dog-tiny-bark1",
        "water-tiny-stream",
    ]
    assert len(server.gets()) == gets and (root / "independent" / names[0]).stat().st_mtime_ns == before
    # a recording named as one of the corpus's would overwrite its file: refused before anything is fetched
    monkeypatch.setattr(prepare_module, "INDEPENDENT_RECORDINGS", {"dog": ("tiny-other:usr/share/other/dog0.ogg",)})
    with pytest.raises(
        PrepareError, match=r"the independent split names recordings the corpus also has: \['dog-tiny-dog0'\]"
    ):
        prepare(_config(tmp_path / "clash", server, independent=True))
    assert not (tmp_path / "clash").exists()


def test_the_independent_split_names_no_recording_of_the_corpus():
    """The real tables: the independent split's packages are not the corpus's, and no recording id (its file name)
    is shared."""
    from hf_audiocap.data.prepare.realsounds import table_ids
    from hf_audiocap.data.realsounds.classes import INDEPENDENT_RECORDINGS
    from hf_audiocap.data.realsounds.packages import INDEPENDENT_PACKAGES, PACKAGES

    assert not {p.name for p in PACKAGES} & {p.name for p in INDEPENDENT_PACKAGES}
    assert set(INDEPENDENT_RECORDINGS) <= set(RECORDINGS)
    used = {name.split(":", 1)[0] for names in INDEPENDENT_RECORDINGS.values() for name in names}
    assert used == {p.name for p in INDEPENDENT_PACKAGES}
    assert not table_ids(INDEPENDENT_RECORDINGS) & table_ids(RECORDINGS)
    assert len(table_ids(INDEPENDENT_RECORDINGS)) == sum(len(v) for v in INDEPENDENT_RECORDINGS.values())


def test_class_mentions_orders_the_classes_a_caption_names():
    """`sources_in_order` (what benchmarks/class_mentions.py ranks by) orders the classes a caption names by where its
    words name them, finding the same classes as the scoring does."""
    from hf_audiocap.data.synthcaps.scoring import sources_in_order

    for caption, order in (
        ("A dog barks while someone plays the piano.", ["dog", "piano"]),
        ("Someone plays the piano and then a puppy is barking", ["piano", "dog"]),
        ("The wind blows softly", []),
    ):
        assert sources_in_order(caption, CLASSES) == order
        assert set(order) == named_sources(caption, CLASSES)
