"""DCASE metrics: CoreNLP jar downloads (local HTTP server with Range), SPICE availability and failures, FENSE / FER /
SPIDEr-FL on tiny random models (penalty arithmetic by hand), vocabulary, presets."""

import hashlib
import http.server
import logging
import math
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("jpype")

from hf_audiocap import metrics as M  # noqa: E402
from hf_audiocap.metrics import _spice, learned, resources  # noqa: E402

PREDS = ["A dog barks loudly.", "", "rain falls on a tin roof roof roof", "a man talks and a door closes"]
REFS = [
    ["A dog is barking.", "Dogs bark in the distance"],
    ["Birds chirp.", "Birds are singing"],
    ["Heavy rain on a metal roof.", "Rain hits a roof", "A storm"],
    ["A person talks and shuts a door.", "A door slams"],
]


# ------------------------------------------------------------------------------------------------ a local Maven
class _Server:
    """ThreadingHTTPServer on 127.0.0.1 serving ``files`` (path -> bytes) with Range support; ``cut[path] = n`` makes
    the next full-file response stop after n bytes (an interrupted transfer)."""

    def __init__(self, files: dict[str, bytes]):
        self.files, self.cut, self.requests = files, {}, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                rng = self.headers.get("Range")
                if rng:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                cut = server.cut.pop(self.path, None)
                self.wfile.write(body[:cut] if cut is not None else body)
                if cut is not None:
                    self.wfile.flush()
                    self.close_connection = True

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/maven2"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _jar_bytes(name: str, size: int) -> bytes:
    rng = np.random.default_rng(len(name))
    return rng.integers(0, 256, size, dtype=np.uint8).tobytes()


@pytest.fixture
def maven(tmp_path, monkeypatch):
    files = {}
    for jar, size in zip(resources.CORENLP_JARS, (300_000, 700_000)):
        data = _jar_bytes(jar, size)
        files[f"/maven2/{resources.CORENLP_PATH}/{jar}"] = data
        files[f"/maven2/{resources.CORENLP_PATH}/{jar}.sha1"] = (hashlib.sha1(data).hexdigest() + "\n").encode()
    server = _Server(files)
    monkeypatch.setenv(resources.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(resources.MAVEN_ENV, server.url)
    resources._VERIFIED.clear()
    yield server
    server.close()


def _jar_path(maven, jar):
    return f"/maven2/{resources.CORENLP_PATH}/{jar}"


def test_download_verifies_and_caches(maven, tmp_path):
    paths = resources.download_corenlp(progress=False)
    folder = tmp_path / "cache" / "corenlp"
    assert [p.name for p in paths] == list(resources.CORENLP_JARS)
    for p in paths:
        assert p.parent == folder and p.read_bytes() == maven.files[_jar_path(maven, p.name)]
        assert (folder / f"{p.name}.sha1").read_text().strip() == hashlib.sha1(p.read_bytes()).hexdigest()
    assert resources.corenlp_jars() == (paths, None)
    assert not list(folder.glob("*.part"))
    # a second call only reads the checksums: no jar is transferred again
    maven.requests.clear()
    resources.download_corenlp()
    assert all(path.endswith(".sha1") for path, _ in maven.requests)


def test_interrupted_download_resumes(maven, tmp_path):
    jar = resources.CORENLP_JARS[1]
    maven.cut[_jar_path(maven, jar)] = 250_000
    with pytest.raises(resources.DownloadError, match=r"(cannot download|got 250000 of).*resume"):
        resources.download_corenlp()
    part = tmp_path / "cache" / "corenlp" / f"{jar}.part"
    kept = part.stat().st_size  # what arrived, less at most the block in flight
    assert 250_000 - (1 << 16) <= kept <= 250_000
    assert not (tmp_path / "cache" / "corenlp" / jar).exists()
    maven.requests.clear()
    resources.download_corenlp()
    assert (_jar_path(maven, jar), f"bytes={kept}-") in maven.requests  # asked only for the rest
    assert (tmp_path / "cache" / "corenlp" / jar).read_bytes() == maven.files[_jar_path(maven, jar)]
    assert not part.exists()


def test_corrupt_cached_jar_is_refetched(maven, tmp_path):
    paths = resources.download_corenlp()
    paths[0].write_bytes(b"truncated")
    jars, reason = resources.corenlp_jars()
    assert jars is None and "corrupt" in reason and str(paths[0]) in reason
    resources.download_corenlp()
    assert paths[0].read_bytes() == maven.files[_jar_path(maven, paths[0].name)]
    assert resources.corenlp_jars()[1] is None
    # a jar put there by hand, without the checksum a verified download records
    (paths[1].parent / f"{paths[1].name}.sha1").unlink()
    assert "has no recorded SHA-1" in resources.corenlp_jars()[1]
    resources.download_corenlp()
    assert resources.corenlp_jars()[1] is None


def test_wrong_checksum_is_reported_naming_the_file(maven, tmp_path):
    jar = resources.CORENLP_JARS[0]
    maven.files[_jar_path(maven, jar) + ".sha1"] = b"0" * 40
    with pytest.raises(resources.DownloadError, match=rf"{jar} downloaded from .* does not match its SHA1 0+ \(got"):
        resources.download_corenlp()
    folder = tmp_path / "cache" / "corenlp"
    assert not (folder / jar).exists() and not (folder / f"{jar}.part").exists()


def test_bad_checksum_file_and_unreachable_server(maven, tmp_path, monkeypatch):
    maven.files[_jar_path(maven, resources.CORENLP_JARS[0]) + ".sha1"] = b"<html>not found</html>"
    with pytest.raises(resources.DownloadError, match="is not a SHA-1 checksum file"):
        resources.download_corenlp()
    with pytest.raises(resources.DownloadError, match="cannot download http://127.0.0.1:9/"):
        resources.download_corenlp(base_url="http://127.0.0.1:9/maven2")


def test_download_command(maven, tmp_path, capsys):
    from hf_audiocap.cli import main

    assert main(["metrics", "download", "--only", "spice", "--quiet", "--cache_dir", str(tmp_path / "elsewhere")]) == 0
    assert "SHA-1 verified" in capsys.readouterr().out
    assert (tmp_path / "elsewhere" / "corenlp" / resources.CORENLP_JARS[1]).is_file()
    maven.files.pop(_jar_path(maven, resources.CORENLP_JARS[0]))
    assert main(["metrics", "download", "--only", "spice", "--quiet", "--cache_dir", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hf-audiocap metrics download: error: SPICE: cannot download")


# ------------------------------------------------------------------------------------------------ SPICE
def test_offline_without_jars_spice_unavailable_rest_carries_on(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv(resources.CACHE_ENV, str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with caplog.at_level(logging.WARNING, logger="hf_audiocap.metrics"):
        out = M.compute_caption_metrics(PREDS, REFS, metrics=["cider_d", "spice", "spider", "meteor"])
    assert out["spice"] is None and out["spider"] is None and out["cider_d"] > 0 and out["meteor"] > 0
    reason = out["unavailable"]["spice"]
    assert "\n" not in reason and "hf-audiocap metrics download" in reason and "offline" in reason
    assert not (tmp_path / "empty" / "corenlp").exists()  # offline: nothing fetched
    assert M.unavailable_metrics("dcase2024")["spider_fl"] == reason
    with pytest.raises(ValueError, match="metric_for_best_model: spider is unavailable here: SPICE needs"):
        M.check_metric("eval_spider", "coco")


@pytest.mark.parametrize("offline", [True, False])
def test_dcase2024_names_each_unavailable_metric_once_in_one_line(tmp_path, monkeypatch, caplog, offline):
    """Nothing cached, offline or with every server unreachable (a closed port): one line per reason naming each
    metric it leaves out, once, with the cause in a few words (not the HTTP library's text)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    monkeypatch.setenv(resources.CACHE_ENV, str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1" if offline else "0")
    monkeypatch.setenv(resources.MAVEN_ENV, f"{closed}/maven2")
    monkeypatch.setenv("HF_AUDIOCAP_FLUENCY_CHECKER", f"{closed}/echecker.ckpt")
    monkeypatch.setattr(_spice, "_DOWNLOAD_TRIED", False)
    monkeypatch.setattr(M.core, "_WARNED", set())
    with caplog.at_level(logging.WARNING, logger="hf_audiocap.metrics"):
        out = M.compute_caption_metrics(PREDS, REFS, metrics="dcase2024", training_references=REFS)
    lines = [r.getMessage() for r in caplog.records if " unavailable: " in r.getMessage()]
    assert [line.split(" unavailable: ")[0] for line in lines] == ["spice, spider, spider_fl", "sbert_sim, fer, fense"]
    assert set(out["unavailable"]) == {"spice", "spider", "spider_fl", "sbert_sim", "fer", "fense"}
    for line in lines:
        assert "\n" not in line and "Pool" not in line and "Max retries" not in line and "metrics download" in line
        assert ("offline now" in line) if offline else ("(Connection refused)" in line)


def test_no_java_is_one_line(monkeypatch):
    import jpype

    def missing():
        raise jpype.JVMNotFoundException("No JVM shared library file (libjvm.so) found. Try setting up JAVA_HOME")

    monkeypatch.setattr(jpype, "getDefaultJVMPath", missing)
    reason = _spice.spice_missing_reason(fetch=False)
    assert reason.startswith("SPICE needs a Java runtime") and "\n" not in reason


def test_java_version_from_release_file(tmp_path):
    home = tmp_path / "jdk"
    (home / "lib" / "server").mkdir(parents=True)
    (home / "release").write_text('JAVA_VERSION="17.0.15"\n')
    assert _spice.java_version(str(home / "lib" / "server" / "libjvm.so")) == 17
    (home / "release").write_text('JAVA_VERSION="1.8.0_402"\n')
    assert _spice.java_version(str(home / "lib" / "server" / "libjvm.so")) == 8


def _install_stand_in_jars(cache: Path) -> None:
    """Jars that pass the checksum (recorded beside them) but are not CoreNLP: SPICE then fails inside Java."""
    folder = cache / "corenlp"
    folder.mkdir(parents=True)
    for jar in resources.CORENLP_JARS:
        data = _jar_bytes(jar, 1000)
        (folder / jar).write_bytes(data)
        (folder / f"{jar}.sha1").write_text(hashlib.sha1(data).hexdigest())


def test_java_that_cannot_run_spice_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv(resources.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv("HF_AUDIOCAP_SPICE_MEMORY", "256m")
    _install_stand_in_jars(tmp_path / "cache")
    assert _spice.spice_missing_reason(fetch=False) is None
    out = M.compute_caption_metrics(PREDS[:2], REFS[:2], metrics=["spice", "spider", "cider_d"])
    assert out["spice"] is None and out["cider_d"] > 0
    reason = out["unavailable"]["spice"]
    assert reason.startswith("SPICE failed: RuntimeError: java.lang.NoClassDefFoundError") and "\n" not in reason


def test_spice_cache_needs_the_module_opens_on_this_java(tmp_path):
    """SPICE's LMDB cache (FST serialisation) works on this JVM with the worker's options; on Java 16+ it fails without
    them (the reason SPICE's `-cache` breaks there)."""
    code = (
        "import sys, jpype; from hf_audiocap.metrics import _spice_worker as W, _spice; from pathlib import Path\n"
        "d = _spice.spice_dir(); cp = [str(d / 'spice-1.0.jar')] + sorted(map(str, (d / 'lib').glob('*.jar')))\n"
        "opts = W.jvm_options('256m') if sys.argv[1] == 'opens' else ['-Xmx256m']\n"
        "jpype.startJVM(jpype.getDefaultJVMPath(), *opts, classpath=cp, convertStrings=False)\n"
        "print('JAVA', jpype.getJVMVersion()[0], 'USABLE', W._cache_usable(jpype, sys.argv[2]))\n"
    )

    def run(mode, folder):
        cmd = [sys.executable, "-c", code, mode, str(folder)]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout

    with_opens = run("opens", tmp_path / "a")
    assert "USABLE True" in with_opens, with_opens
    java = int(with_opens.split()[1])
    if java >= 16:
        assert "USABLE False" in run("none", tmp_path / "b")


# ------------------------------------------------------------------------------------------------ FENSE
@pytest.fixture(scope="module")
def fense_models(tmp_path_factory):
    pytest.importorskip("sentence_transformers")
    from metric_models import save_checker, save_sbert

    folder = tmp_path_factory.mktemp("fense")
    words = PREDS + [r for rr in REFS for r in rr] + ["unused words"]
    sbert = save_sbert(folder / "sbert", words)
    # classifier bias chosen so that some captions land above the 0.9 threshold and some below
    path, _ = save_checker(folder / "probe", words, bias=[0.0] * 6)
    checker, tok = learned.load_checker(path)
    hyps = M.ptb_tokenize(PREDS)
    probs = learned.error_probabilities(checker, tok, hyps)
    logits = np.log(probs / (1 - probs))
    shift = math.log(9.0) - float(np.median(logits))  # logit(0.9) at the median
    path, sha = save_checker(folder / "checker", words, bias=[0, 0, 0, 0, 0, float(shift)])
    return learned.FenseModels(sbert=str(sbert), checker=str(path), checker_sha256=sha, batch_size=3, device="cpu")


def _by_hand(fense_models, hyps, tok_refs):
    """FENSE's definitions with each model called once per sentence (FENSE's 64-token padding, no batching)."""
    import torch
    from sentence_transformers import SentenceTransformer

    checker, tok = learned.load_checker(Path(fense_models.checker))
    probs = []
    for h in hyps:
        enc = tok([learned._NON_WORD.sub("", h).lower()], padding="max_length", max_length=64, truncation=True,
                  return_tensors="pt")  # fmt: skip
        with torch.no_grad():
            probs.append(torch.sigmoid(checker(**enc)[:, -1]).item())
    sbert = SentenceTransformer(fense_models.sbert, device="cpu")
    sims = []
    for h, rr in zip(hyps, tok_refs):
        c = sbert.encode([h], normalize_embeddings=True)[0]
        sims.append(float(np.mean([c @ sbert.encode([r], normalize_embeddings=True)[0] for r in rr])))
    return np.array(probs), np.array(sims)


def test_fense_fer_spider_fl_by_hand(fense_models, monkeypatch):
    hyps = M.ptb_tokenize(PREDS)
    tok_refs = [M.ptb_tokenize(rr) for rr in REFS]
    probs, sims = _by_hand(fense_models, hyps, tok_refs)
    err = probs > 0.9
    assert err.any() and not err.all()  # both branches of the penalty are exercised
    # stand in for SPICE (not installed here) with known per-clip values, to check SPIDEr-FL's arithmetic
    spice_clip = np.array([0.5, 0.0, 0.25, 0.125])
    monkeypatch.setattr(_spice, "spice_missing_reason", lambda fetch=None: None)
    monkeypatch.setattr(_spice, "spice", lambda h, r: (float(spice_clip.mean()), spice_clip))
    out = M.compute_caption_metrics(PREDS, REFS, metrics="dcase2024", fense_models=fense_models, per_clip=True)
    clip = out["per_clip"]
    assert clip["fer"] == pytest.approx(err.astype(float).tolist())
    assert out["fer"] == pytest.approx(err.mean())
    assert clip["sbert_sim"] == pytest.approx(sims.tolist(), abs=1e-5)
    expected_fense = [s * (0.1 if e else 1.0) for s, e in zip(sims, err)]
    assert clip["fense"] == pytest.approx(expected_fense, abs=1e-5)
    assert out["fense"] == pytest.approx(np.mean(expected_fense), abs=1e-5)
    spider = [(c + s) / 2 for c, s in zip(clip["cider_d"], spice_clip)]
    assert clip["spider"] == pytest.approx(spider)
    assert out["spider"] == pytest.approx((out["cider_d"] + spice_clip.mean()) / 2)
    expected_fl = [s * (0.1 if e else 1.0) for s, e in zip(spider, err)]
    assert out["spider_fl"] == pytest.approx(np.mean(expected_fl))
    assert out["unavailable"] == {"vocab_novel": M.core._NOVEL_REASON}
    assert set(out) >= {"meteor", "cider_d", "spice", "spider", "spider_fl", "fer", "sbert_sim", "fense", "vocab_size"}


def test_fense_without_models_is_unavailable_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv(resources.CACHE_ENV, str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    models = learned.FenseModels(sbert=str(tmp_path / "no_sbert"))  # the published checker URL, not cached here
    out = M.compute_caption_metrics(PREDS, REFS, metrics=["fense", "fer", "cider_d"], fense_models=models)
    assert out["fense"] is None and out["fer"] is None and out["cider_d"] > 0
    reason = out["unavailable"]["fense"]
    assert "\n" not in reason and "echecker_clotho_audiocaps_base.ckpt" in reason and "metrics download" in reason


def test_corrupt_checkpoint_is_reported_with_its_path(fense_models, tmp_path):
    bad = tmp_path / "checker.ckpt"
    bad.write_bytes(Path(fense_models.checker).read_bytes()[:1000])  # truncated
    models = learned.FenseModels(
        sbert=fense_models.sbert, checker=str(bad), checker_sha256=fense_models.checker_sha256
    )
    out = M.compute_caption_metrics(PREDS, REFS, metrics=["fer"], fense_models=models)
    assert out["fer"] is None and "is corrupt" in out["unavailable"]["fer"] and str(bad) in out["unavailable"]["fer"]
    # an unverified file that is not a weights-only checkpoint (a pickled object) is refused, naming it
    import pickle

    bad.write_bytes(pickle.dumps({"model_type": learned.FenseModels, "num_classes": 6, "state_dict": {}}))
    out = M.compute_caption_metrics(PREDS, REFS, metrics=["fer"], fense_models=learned.FenseModels(checker=str(bad),
                                    checker_sha256=None))  # fmt: skip
    assert "not a weights-only FENSE checkpoint" in out["unavailable"]["fer"] and str(bad) in out["unavailable"]["fer"]


def test_corrupt_cached_checkpoint_is_refetched(fense_models, tmp_path, monkeypatch):
    data = Path(fense_models.checker).read_bytes()
    server = _Server({"/fense/checker.ckpt": data})
    try:
        monkeypatch.setenv(resources.CACHE_ENV, str(tmp_path / "cache"))
        models = learned.FenseModels(checker=f"{server.url.rsplit('/', 1)[0]}/fense/checker.ckpt",
                                     checker_sha256=fense_models.checker_sha256)  # fmt: skip
        path = learned.checker_file(models, fetch=True)
        assert path == tmp_path / "cache" / "fense" / "checker.ckpt" and path.read_bytes() == data
        path.write_bytes(data[:100])
        with pytest.raises(learned.ModelUnavailable, match="is corrupt"):
            learned.checker_file(models, fetch=False)
        assert learned.checker_file(models, fetch=True).read_bytes() == data
    finally:
        server.close()


def test_each_sentence_is_run_once_per_process(fense_models):
    sbert = learned.load_sbert(fense_models.sbert)
    checker, tok = learned.load_checker(Path(fense_models.checker))
    sent, checked = [], []
    encode, forward = sbert.encode, checker.forward
    sbert.encode = lambda sentences, **kw: sent.append(list(sentences)) or encode(sentences, **kw)
    checker.forward = lambda ids, *a: checked.append(len(ids)) or forward(ids, *a)
    first = learned.sentence_similarity(sbert, ["x y", "x y"], [["a b", "c"], ["c", "a b"]])
    assert sent == [["x y", "a b", "c"]] and first[0] == pytest.approx(first[1])
    learned.sentence_similarity(sbert, ["z"], [["a b", "c"]])
    assert sent[-1] == ["z"]  # the references were encoded by the first call
    p1 = learned.error_probabilities(checker, tok, ["x y", "z", "x y"], batch_size=8)
    p2 = learned.error_probabilities(checker, tok, ["z", "w"], batch_size=8)
    assert checked == [2, 1] and p1[1] == p2[0] and p1[0] == p1[2]


def test_loading_models_leaves_the_rng_alone(fense_models):
    import torch

    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    learned.load_checker(Path(fense_models.checker))
    learned.load_sbert(fense_models.sbert)
    assert torch.equal(torch.rand(3), expected)


# ------------------------------------------------------------------------------------------------ vocabulary, presets
def test_vocabulary():
    out = M.compute_caption_metrics(PREDS, REFS, metrics="vocab", training_references=[["a dog barks", "rain"]])
    hyps = M.ptb_tokenize(PREDS)
    words = {w for h in hyps for w in h.split()}
    ref_words = {w for rr in REFS for r in M.ptb_tokenize(rr) for w in r.split()}
    assert out["vocab_size"] == len(words)
    assert out["vocab_references"] == len(ref_words)
    assert out["vocab_ratio"] == pytest.approx(len(words) / len(ref_words))
    assert out["vocab_novel"] == len(words - {"a", "dog", "barks", "rain"})
    assert out["mean_length"] == pytest.approx(np.mean([len(h.split()) for h in hyps]))


def test_presets_and_names():
    assert M.resolve_metrics(None) == list(M.PRESETS["coco"])
    assert M.resolve_metrics("dcase2024")[:4] == ["meteor", "cider_d", "spice", "spider"]
    assert "vocab_novel" in M.resolve_metrics("dcase2024")
    assert M.resolve_metrics("meteor, bleu") == ["meteor", "bleu_1", "bleu_2", "bleu_3", "bleu_4"]
    with pytest.raises(ValueError, match="unknown metric or preset 'dcase2025'; presets: coco, dcase2024"):
        M.compute_caption_metrics(PREDS, REFS, metrics="dcase2025")
    with pytest.raises(ValueError, match="'fense' is not computed by metrics 'coco'"):
        M.check_metric("fense", "coco")
    M.check_metric("eval_loss", "coco")
    M.check_metric("cider_d", "dcase2024")


def test_evaluate_module_takes_a_preset(monkeypatch):
    monkeypatch.setenv(resources.CACHE_ENV, "/nonexistent/hf_audiocap_cache")
    metric = M.load_caption_metric()
    out = metric.compute(predictions=PREDS, references=REFS, metrics="vocab,cider_d")
    assert out["cider_d"] == pytest.approx(M.compute_caption_metrics(PREDS, REFS, metrics="cider_d")["cider_d"])
    assert "vocab_references" in out


def test_empty_prediction_is_one_warning_line(caplog):
    with caplog.at_level(logging.WARNING, logger="hf_audiocap.metrics"):
        out = M.compute_caption_metrics(["", "a dog"], [["a dog barks"], ["a dog"]], metrics="cider_d")
    lines = [r.getMessage() for r in caplog.records if "empty prediction" in r.getMessage()]
    assert lines == ["1 empty prediction(s) (first: predictions[0]): each scores 0 on the n-gram metrics"]
    assert out["cider_d"] >= 0


# ------------------------------------------------------------------------------------------------ recipes
def test_recipe_selection_checked_before_training(tmp_path, monkeypatch):
    from hf_audiocap.metrics.recipe import evaluation_metrics
    from hf_audiocap.training.arguments import parse_recipe

    _, _, training_args = parse_recipe(["--output_dir", str(tmp_path), "--metrics", "dcase2024"])
    assert training_args.metrics == "dcase2024"
    monkeypatch.setenv(resources.CACHE_ENV, str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match="unknown metric or preset 'dcase2025'"):
        evaluation_metrics("dcase2025")
    with pytest.raises(ValueError, match="metric_for_best_model: spider_fl is unavailable here: SPICE needs"):
        evaluation_metrics("dcase2024", "spider_fl")
    with pytest.raises(ValueError, match="'meteor' is not computed by metrics 'cider_d,bleu'"):
        evaluation_metrics("cider_d,bleu", "meteor")
    fn = evaluation_metrics("cider_d,vocab", "eval_cider_d", training_references=[["a dog barks"]])
    out = fn(PREDS, REFS)
    assert out["cider_d"] > 0 and out["vocab_novel"] == len({"loudly", "rain", "falls", "on", "tin", "roof", "man",
                                                             "talks", "and", "door", "closes"})  # fmt: skip


_RANK_SCRIPT = """
import json, os, sys
import torch.distributed as dist
from hf_audiocap.metrics import recipe
rank = int(sys.argv[1])
dist.init_process_group("gloo", init_method="tcp://127.0.0.1:" + sys.argv[2], rank=rank, world_size=2)
calls = []
def compute(p, r):
    calls.append(rank)
    if p == ["fail"]:
        raise ValueError("bad input on the main process")
    return {"n": len(p), "rank": rank}
out = recipe._shared(compute, ["a", "b"], [["a"], ["b"]])
try:
    recipe._shared(compute, ["fail"], [["a"]])
    err = None
except ValueError as e:
    err = str(e)
print(json.dumps({"rank": rank, "calls": calls, "out": out, "err": err}))
dist.destroy_process_group()
"""


def test_metrics_computed_once_across_processes():
    """Two gloo processes: the main one computes, the other receives its result (and its exception)."""
    import json
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    procs = [
        subprocess.Popen([sys.executable, "-c", _RANK_SCRIPT, str(r), port], stdout=subprocess.PIPE, text=True)
        for r in range(2)
    ]
    results = [json.loads(p.communicate(timeout=120)[0].strip().splitlines()[-1]) for p in procs]
    assert [r["calls"] for r in results] == [[0, 0], []]
    assert all(r["out"] == {"n": 2, "rank": 0} for r in results)
    assert all(r["err"] == "bad input on the main process" for r in results)


@pytest.mark.slow  # two real training processes (~1 min)
def test_two_process_run_scores_its_selection_once(tmp_path):
    """`recipes/train.py` under torchrun with 2 processes, validating with `metrics: cider_d,vocab`: the evaluation
    completes (the main process scores, the other receives) and logs the selected metrics, vocab_novel included."""
    import json
    import os

    from recipe_helpers import REPO_ROOT, make_synthcaps, tiny_run_args

    data = make_synthcaps(tmp_path / "synthcaps", num_train=8, num_validation=2, num_test=2)
    args = tiny_run_args(data, tmp_path / "run", max_steps=2, eval_strategy="steps", eval_steps=2,
                         test_split="null", metrics="cider_d,vocab", metric_for_best_model="cider_d")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_"))}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29583"]
    proc = subprocess.run([*cmd, str(REPO_ROOT / "recipes" / "train.py"), *args], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    history = json.loads((tmp_path / "run" / "trainer_state.json").read_text())["log_history"]
    evals = [e for e in history if "eval_cider_d" in e]
    assert len(evals) == 1 and {"eval_vocab_size", "eval_vocab_novel", "eval_vocab_references"} <= set(evals[0])
    assert "eval_bleu_4" not in evals[0] and "eval_meteor" not in evals[0]


def test_download_command_fetches_fense(fense_models, tmp_path, monkeypatch, capsys):
    from hf_audiocap.cli import main

    server = _Server({"/fense/checker.ckpt": Path(fense_models.checker).read_bytes()})
    try:
        monkeypatch.setenv("HF_AUDIOCAP_FLUENCY_CHECKER", server.url.rsplit("/", 1)[0] + "/fense/checker.ckpt")
        monkeypatch.setenv("HF_AUDIOCAP_FLUENCY_CHECKER_SHA256", fense_models.checker_sha256)
        monkeypatch.setenv("HF_AUDIOCAP_SBERT_MODEL", fense_models.sbert)
        assert main(["metrics", "download", "--only", "fense", "--quiet", "--cache_dir", str(tmp_path / "c")]) == 0
        assert (tmp_path / "c" / "fense" / "checker.ckpt").read_bytes() == Path(fense_models.checker).read_bytes()
        out = capsys.readouterr().out
        assert "FENSE checker:" in out and "SHA-256 verified" in out and "FENSE sentence model:" in out
        monkeypatch.setenv("HF_AUDIOCAP_FLUENCY_CHECKER_SHA256", "0" * 64)
        assert main(["metrics", "download", "--only", "fense", "--quiet", "--cache_dir", str(tmp_path / "d")]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "checker.ckpt downloaded from" in err[0] and "does not match its SHA256" in err[0]
    finally:
        server.close()
