"""Candidates and reranking (hf_audiocap.rerank): each scorer picks what it should on constructed candidates (mbr the
consensus, logprob the model's best, clap the argmax of a tiny random CLAP's own similarity, a hybrid with one weight
the scorer alone); both model kinds caption with `rerank` through the Captioner, the pipeline and the CLI, the app's
n-best table, evaluate.py's candidates and validation; bad settings fail in one line. Tiny models, seconds."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from audiocap_tiny import save_tiny_model

from hf_audiocap.rerank import (
    SCORERS,
    Reranked,
    RerankSettings,
    consensus_cider_d,
    parse_rerank,
    rerank_candidates,
)

WAVES = [np.random.default_rng(i).standard_normal(16000).astype(np.float32) * 0.1 for i in range(3)]


# -------------------------------------------------------------------------------------------------------- settings
@pytest.mark.parametrize(
    ("spec", "kwargs", "message"),
    [
        ("bleu", {}, r"unknown scorer 'bleu'; known: logprob, mbr, clap"),
        ("clap", {}, r"'clap' needs a CLAP model folder"),
        ("mbr", {"candidates": 1}, r"at least 2 candidates, got 1"),
        ("mbr:-1", {}, r"weight of 'mbr' must be a finite number >= 0"),
        ("mbr:0,logprob:0", {}, r"the weights sum to zero"),
        ("mbr:x", {}, r"weight of 'mbr' must be a number"),
        ("mbr", {"top_p": 1.5}, r"top_p must be in \(0, 1\]"),
        ("", {}, r"no scorer given; choose from logprob, mbr, clap"),
        ("mbr", {"evidence": -1}, r"rerank_evidence: expected an integer >= 0, got -1"),
        ("mbr", {"evidence": "many"}, r"rerank_evidence: expected an integer >= 0, got 'many'"),
        ("logprob", {"evidence": 8}, r"rerank_evidence: only the 'mbr' scorer reads sampled pseudo-references"),
    ],
)
def test_bad_settings_fail_in_one_line(spec, kwargs, message):
    with pytest.raises(ValueError, match=message) as err:
        RerankSettings(spec, **kwargs)
    assert "\n" not in str(err.value)


def test_spec_forms():
    assert parse_rerank("mbr") == {"mbr": 1.0}
    assert parse_rerank("logprob:0.5, clap:0.5") == {"logprob": 0.5, "clap": 0.5}
    assert parse_rerank({"LogProb": 2}) == {"logprob": 2.0}
    assert RerankSettings("mbr", top_p=True).top_p == 0.95 and RerankSettings("mbr", top_p="0.8").top_p == 0.8
    assert RerankSettings("mbr", top_p="false").top_p is None
    kwargs = {"rerank": "mbr", "rerank_candidates": 3, "num_beams": 2}
    settings = RerankSettings.pop_from(kwargs)
    assert kwargs == {"num_beams": 2} and settings.candidates == 3
    assert RerankSettings.pop_from({"rerank": "none"}) is None and RerankSettings.pop_from({}) is None
    assert set(SCORERS) == {"logprob", "mbr", "clap"}


# -------------------------------------------------------------------------------------------------------- scorers
def test_mbr_picks_the_consensus_caption():
    cands = ["rain falls on a roof", "a dog barks twice", "a dog barks", "a dog barks loudly", "birds sing"]
    scores = consensus_cider_d(cands)
    assert int(np.argmax(scores)) == 2, scores
    (result,) = rerank_candidates([cands], RerankSettings("mbr"))
    assert result.caption == "a dog barks" and result.scores["mbr"] == pytest.approx(scores, abs=1e-6)
    assert consensus_cider_d(["one caption"]) == [0.0]


def test_mbr_against_sampled_evidence_counts_each_sample():
    """With sampled pseudo-references, each candidate is scored against every sample (duplicates weigh as often as
    they were drawn): the candidate the samples agree with wins, even where the candidates alone would pick another."""
    cands = ["a dog barks", "a dog barks loudly", "a dog barks twice", "rain falls on a roof"]
    assert consensus_cider_d(cands)[3] < max(consensus_cider_d(cands))
    evidence = ["rain falls on a roof"] * 3 + ["rain falls", "a dog barks"]
    scores = consensus_cider_d(cands, evidence)
    assert int(np.argmax(scores)) == 3, scores
    settings = RerankSettings("mbr", candidates=4, evidence=5)
    (result,) = rerank_candidates([cands], settings, evidence=[evidence])
    assert result.caption == "rain falls on a roof" and result.scores["mbr"] == pytest.approx(scores, abs=1e-6)
    # one sample drawn three times counts three times: it outweighs two different ones
    birds, car = "birds sing in the tall trees", "a red car passes by fast"  # as long: CIDEr-D weighs them alike
    assert np.argmax(consensus_cider_d([car, birds], [birds] * 3 + [car] * 2)) == 1
    assert consensus_cider_d(["only one"], ["only one"])[0] > 0  # one candidate is scored against the samples


def test_logprob_picks_the_best_score_and_hybrids_normalise_per_clip():
    cands = [["rain falls", "a dog barks", "a dog barks twice", "a dog barks loudly"]]
    logprobs = [[-0.1, -0.9, -0.5, -2.0]]
    (by_logprob,) = rerank_candidates(cands, RerankSettings("logprob"), logprobs)
    (by_mbr,) = rerank_candidates(cands, RerankSettings("mbr"), logprobs)
    assert by_logprob.caption == "rain falls" and by_mbr.caption != "rain falls"
    # a weight of 1 on one scorer (0 on the others) is that scorer
    assert rerank_candidates(cands, RerankSettings({"logprob": 1, "mbr": 0}), logprobs)[0].caption == "rain falls"
    assert rerank_candidates(cands, RerankSettings("mbr:1,logprob:0"), logprobs)[0].caption == by_mbr.caption
    # the hybrid: z-scores over the clip's candidates, weighted
    (hybrid,) = rerank_candidates(cands, RerankSettings("logprob:0.5,mbr:0.5"), logprobs)

    def z(x):
        x = np.asarray(x, dtype=float)
        return (x - x.mean()) / x.std()

    expected = 0.5 * z(logprobs[0]) + 0.5 * z(by_mbr.scores["mbr"])
    assert hybrid.total == pytest.approx(expected.tolist(), abs=1e-5) and hybrid.chosen == int(np.argmax(expected))
    assert set(hybrid.rows()[0]) == {"caption", "logprob", "mbr", "total", "chosen"}
    # duplicates merged, the first (best-ranked) kept
    (merged,) = rerank_candidates([["a", "a", "b"]], RerankSettings("logprob"), [[-1.0, -0.1, -2.0]])
    assert merged.candidates == ["a", "b"] and merged.scores["logprob"] == [-1.0, -2.0]


def tiny_clap(folder):
    """A random CLAP (tiny text and audio towers) saved with its processor; the tokenizer is a byte-level BPE
    without merges (every byte a token), built offline."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor, RobertaTokenizer

    vocab = {t: i for i, t in enumerate(["<s>", "<pad>", "</s>", "<unk>", "<mask>", *sorted(ByteLevel.alphabet())])}
    text = {"vocab_size": len(vocab), "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2}
    text.update(intermediate_size=37, max_position_embeddings=80, projection_dim=16)
    audio = {"hidden_size": 32, "depths": [1, 1], "num_attention_heads": [2, 2], "window_size": 4, "spec_size": 64}
    audio.update(patch_size=2, patch_stride=2, num_mel_bins=16, patch_embeds_hidden_size=16, projection_dim=16)
    torch.manual_seed(0)
    model = ClapModel(ClapConfig(text_config=text, audio_config=audio, projection_dim=16)).eval()
    extractor = ClapFeatureExtractor(
        feature_size=16, sampling_rate=8000, max_length_s=2, hop_length=80, fft_window_size=512,
        frequency_max=4000, truncation="rand_trunc",
    )  # fmt: skip
    model.save_pretrained(folder)
    ClapProcessor(feature_extractor=extractor, tokenizer=RobertaTokenizer(vocab=vocab, merges=[])).save_pretrained(
        folder
    )
    return folder


@pytest.fixture(scope="module")
def clap_dir(tmp_path_factory):
    return tiny_clap(tmp_path_factory.mktemp("clap"))


def test_clap_picks_its_own_most_similar_caption(clap_dir):
    from transformers import ClapModel, ClapProcessor

    from hf_audiocap.data.audio import load_audio

    cands = ["a dog barks", "rain falls on a roof", "a man speaks", "birds sing", "an engine idles"]
    results = rerank_candidates([cands] * 2, RerankSettings("clap", clap_model=str(clap_dir)), None, WAVES[:2], 16000)
    model, processor = ClapModel.from_pretrained(clap_dir).eval(), ClapProcessor.from_pretrained(clap_dir)
    for wave, result in zip(WAVES, results):
        at_8k = load_audio((wave, 16000), 8000)  # the CLAP extractor's rate
        inputs = processor(text=cands, audio=[at_8k], sampling_rate=8000, return_tensors="pt", padding=True)
        with torch.no_grad():
            logits = model(**inputs).logits_per_audio[0]  # scaled cosine similarity, computed here independently
        assert result.chosen == int(logits.argmax()), (result.scores, logits)
        assert np.argsort(result.scores["clap"]).tolist() == torch.argsort(logits).tolist()
    with pytest.raises(ValueError, match=r"is not a loadable CLAP model") as err:
        rerank_candidates(
            [cands], RerankSettings("clap", clap_model=str(clap_dir / "missing")), None, WAVES[:1], 16000
        )
    assert "\n" not in str(err.value)


# -------------------------------------------------------------------------------------------------------- model kinds
def _captioner(kind: str):
    from test_repetition import _captioner as build

    captioner, _ = build(kind)
    return captioner


@pytest.mark.parametrize("kind", ["encoder-decoder", "prefix"])
def test_both_model_kinds_caption_with_rerank(kind, clap_dir):
    captioner = _captioner(kind)
    # logprob over the beam's k best is the beam search's own best
    plain = captioner.caption_arrays(WAVES, num_beams=3)
    assert captioner.caption_arrays(WAVES, rerank="logprob", rerank_candidates=3) == plain
    for spec in ("mbr", "logprob:0.5,mbr:0.5", "clap", "logprob:0.3,mbr:0.3,clap:0.4"):
        kwargs = {"rerank": spec, "rerank_candidates": 3, "rerank_clap_model": str(clap_dir)}
        captions = captioner.caption_arrays(WAVES, **kwargs)
        reranked = captioner.caption_candidates(WAVES, **kwargs)
        assert captions == [r.caption for r in reranked], spec
        for r in reranked:
            assert isinstance(r, Reranked) and 1 <= len(r.candidates) <= 3 and r.total[r.chosen] == max(r.total)
            assert set(r.scores) == set(parse_rerank(spec)) and all(
                len(s) == len(r.candidates) for s in r.scores.values()
            )
        # the n-best of one clip: every candidate, its scores and the chosen one
        nbest = captioner.caption_nbest(WAVES[0], num_return_sequences=3, return_candidates=True, **kwargs)
        assert (nbest.candidates, nbest.chosen) == (reranked[0].candidates, reranked[0].chosen)  # batched or alone
        assert nbest.total == pytest.approx(reranked[0].total, abs=1e-3)
        pairs = captioner.caption_nbest(WAVES[0], num_return_sequences=3, **kwargs)
        assert pairs[0][0] == reranked[0].caption
    # nucleus sampling: k sampled candidates, finite mean log-probabilities
    torch.manual_seed(0)
    sampled = captioner.caption_candidates(
        WAVES, rerank="logprob:0.5,mbr:0.5", rerank_candidates=4, rerank_sampling=0.9
    )
    assert all(np.isfinite(r.scores["logprob"]).all() and all(s <= 0 for s in r.scores["logprob"]) for r in sampled)
    # mbr against 6 sampled captions per clip: a second, sampled generate() call of the same model
    from hf_audiocap.rerank import generate_candidates

    settings = RerankSettings("mbr", candidates=3, evidence=6)
    waves = WAVES[: captioner.batch_size]  # one batch: the same random draws as the Captioner's
    inputs = captioner.processor(audio=waves, sampling_rate=captioner.sampling_rate, return_tensors="pt")
    inputs = {k: v for k, v in inputs.items() if k != "labels"}
    torch.manual_seed(0)
    kwargs = captioner._generate_kwargs({})  # the Captioner's own generation settings
    batch = generate_candidates(captioner.model, inputs, settings, kwargs, captioner.processor.tokenizer)
    assert [len(c) for c in batch.texts] == [3] * len(waves) and [len(e) for e in batch.evidence] == [6] * len(waves)
    torch.manual_seed(0)
    with_evidence = captioner.caption_candidates(waves, rerank="mbr", rerank_candidates=3, rerank_evidence=6)
    expected = rerank_candidates(batch.texts, settings, evidence=batch.evidence)
    assert [r.caption for r in with_evidence] == [r.caption for r in expected]
    assert [r.scores for r in with_evidence] == [r.scores for r in expected]
    # the model's saved setting is the default; "none" turns it off
    default = captioner.caption_arrays(WAVES)
    captioner.model.generation_config.rerank = "mbr"
    captioner.model.generation_config.rerank_candidates = 3
    assert captioner.caption_arrays(WAVES) == captioner.caption_arrays(WAVES, rerank="mbr", rerank_candidates=3)
    assert captioner.caption_arrays(WAVES, rerank="none") == default


# -------------------------------------------------------------------------------------------------------- entry points
@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    """A saved folder of each model kind."""
    encdec = save_tiny_model(tmp_path_factory.mktemp("encdec"))
    prefix = tmp_path_factory.mktemp("prefix")
    captioner = _captioner("prefix")
    captioner.model.save_pretrained(prefix)
    captioner.processor.save_pretrained(prefix)
    return {"encoder-decoder": encdec, "prefix": prefix}


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "clip.wav"
    sf.write(path, WAVES[0], 16000)
    return path


@pytest.mark.parametrize("kind", ["encoder-decoder", "prefix"])
def test_pipeline_and_cli_rerank(kind, model_dirs, clip, capsys, tmp_path):
    from transformers import pipeline

    from hf_audiocap.cli import main as cli_main
    from hf_audiocap.inference.captioner import Captioner

    folder = model_dirs[kind]
    captioner = Captioner.from_pretrained(str(folder))
    (expected,) = captioner.caption_candidates([WAVES[0]], rerank="mbr", rerank_candidates=3)
    pipe = pipeline("audio-captioning", model=str(folder))
    assert pipe(str(clip), rerank="mbr", rerank_candidates=3)["caption"] == expected.caption
    torch.manual_seed(0)
    (sampled,) = captioner.caption_candidates([WAVES[0]], rerank="mbr", rerank_candidates=3, rerank_evidence=4)
    torch.manual_seed(0)
    assert pipe(str(clip), rerank="mbr", rerank_candidates=3, rerank_evidence=4)["caption"] == sampled.caption
    code = cli_main(["caption", str(clip), "--model", str(folder), "--format", "json", "--quiet",
                     "--rerank", "mbr", "--rerank-candidates", "3"])  # fmt: skip
    assert code == 0
    assert json.loads(capsys.readouterr().out)[0]["segments"][0]["caption"] == expected.caption
    # bad settings: one line, before the model is loaded
    for flags, said in ((["--rerank", "bleu"], "known: logprob, mbr, clap"),
                        (["--rerank", "mbr", "--rerank-candidates", "1"], "at least 2 candidates"),
                        (["--rerank", "logprob", "--rerank-evidence", "4"], "only the 'mbr' scorer")):  # fmt: skip
        assert cli_main(["caption", str(clip), "--model", str(tmp_path / "absent"), *flags]) == 2
        err = capsys.readouterr().err.strip()
        assert said in err and "\n" not in err, err
    # a companion setting without rerank (this model saved none) is refused, not ignored: one line, before any file
    assert cli_main(["caption", str(clip), "--model", str(folder), "--rerank-evidence", "4"]) == 2
    err = capsys.readouterr().err.strip()
    assert "rerank_evidence given without rerank" in err and "\n" not in err, err
    # clap without a CLAP folder (this model saved none): one line, before any file is captioned
    assert cli_main(["caption", str(clip), "--model", str(folder), "--rerank", "clap"]) == 2
    err = capsys.readouterr().err.strip()
    assert "'clap' needs a CLAP model folder" in err and "\n" not in err, err
    # a folder that is no CLAP model (the captioner's own): one line, and no caption printed
    assert cli_main(["caption", str(clip), "--model", str(folder), "--quiet", "--rerank", "clap",
                     "--rerank-clap-model", str(folder)]) == 2  # fmt: skip
    out, err = capsys.readouterr()
    assert out == "" and "is not a loadable CLAP model" in err and "\n" not in err.strip(), err


def test_saved_setting_stays_plain_and_the_pipeline_applies_it(model_dirs, clip, tmp_path):
    from transformers import GenerationConfig, pipeline

    from hf_audiocap.inference.captioner import Captioner

    captioner = Captioner.from_pretrained(str(model_dirs["encoder-decoder"]))
    captioner.model.generation_config.rerank = "logprob:0.5,mbr:0.5"
    captioner.model.generation_config.rerank_candidates = 3
    captioner.model.save_pretrained(tmp_path)
    captioner.processor.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "generation_config.json").read_text())
    assert saved["rerank"] == "logprob:0.5,mbr:0.5" and saved["rerank_candidates"] == 3
    assert GenerationConfig.from_pretrained(tmp_path).rerank == "logprob:0.5,mbr:0.5"
    (expected,) = captioner.caption_candidates([WAVES[0]])
    assert pipeline("audio-captioning", model=str(tmp_path))(str(clip))["caption"] == expected.caption


def test_app_table_shows_every_candidate_and_the_chosen_one(model_dirs, clip):
    from hf_audiocap.inference.captioner import Captioner
    from hf_audiocap.inference.service import CaptionService

    service = CaptionService(Captioner.from_pretrained(str(model_dirs["encoder-decoder"])))
    assert service.nbest_headers() == ["caption", "score"]  # no reranking: the beam n-best, as before
    assert service.nbest_headers("logprob:0.5,mbr:0.5") == ["chosen", "caption", "logprob", "mbr", "total"]
    rows, _, settings = service.details(str(clip), None, None, None, None, 3, rerank="logprob:0.5,mbr:0.5")
    (expected,) = service.captioner.caption_candidates([WAVES[0]], rerank="logprob:0.5,mbr:0.5", rerank_candidates=3)
    assert [r[1] for r in rows] == expected.candidates and [r[0] for r in rows].count("✓") == 1
    assert rows[expected.chosen][0] == "✓" and len(rows[0]) == 5 and '"rerank": "logprob:0.5,mbr:0.5"' in settings
    # the app's --rerank: the /caption event's caption is the chosen one (its inputs unchanged)
    service.captioner.generate_kwargs = {"rerank": "logprob:0.5,mbr:0.5", "rerank_candidates": 3}
    assert service.caption(str(clip)) == (expected.caption, "")


def test_app_builds_with_rerank(model_dirs):
    """`python app.py --rerank SPEC`: checked when the app is built (one line), then the n-best table's columns."""
    import sys
    from pathlib import Path

    pytest.importorskip("gradio")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from app import build_app
    from hf_audiocap.inference.captioner import Captioner

    captioner = Captioner.from_pretrained(str(model_dirs["encoder-decoder"]))
    with pytest.raises(ValueError, match=r"unknown scorer 'bleu'; known: logprob, mbr, clap"):
        build_app(captioner=captioner, rerank="bleu", examples_dir=None)
    demo = build_app(captioner=captioner, rerank="logprob:0.5,mbr:0.5", examples_dir=None)
    assert demo.caption_service.nbest_headers() == ["chosen", "caption", "logprob", "mbr", "total"]


def test_evaluate_writes_the_candidates(model_dirs, tmp_path):
    import runpy
    from pathlib import Path

    from hf_audiocap.metrics.report import evaluate_main

    sf.write(tmp_path / "clip.wav", WAVES[0], 16000)
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text(json.dumps({"id": "c1", "audio": "clip.wav", "caption": "a dog barks"}) + "\n")
    module = runpy.run_path(str(Path(__file__).parents[1] / "recipes" / "evaluate.py"), run_name="recipes_evaluate")
    out = tmp_path / "out"
    args = module["parse_args"](["--model", str(model_dirs["encoder-decoder"]), "--dataset", "manifest",
                                 "--dataset_path", str(manifest), "--split", "train", "--output_dir", str(out),
                                 "--metrics", "cider_d", "--rerank", "mbr", "--rerank_candidates", "3"])  # fmt: skip
    evaluate_main(args)
    (row,) = [json.loads(line) for line in (out / "evaluate_train_predictions.jsonl").read_text().splitlines()]
    assert row["prediction"] in row["candidates"] and 1 <= len(row["candidates"]) <= 3


def test_validation_reranks_with_the_recipe_key(tmp_path):
    """`generation_rerank` parses, refuses clap in one line, and the trainer's generation pass returns the ids of the
    reranked caption."""
    from types import SimpleNamespace

    from transformers import HfArgumentParser

    from hf_audiocap.training.arguments import AudioCapTrainingArguments
    from hf_audiocap.training.trainer import AudioCapTrainer

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"output_dir: {tmp_path}\ngeneration_rerank: mbr\ngeneration_rerank_candidates: 3\nuse_cpu: true\n"
    )
    (args,) = HfArgumentParser(AudioCapTrainingArguments).parse_yaml_file(str(recipe))
    assert args.generation_rerank == "mbr" and args.generation_rerank_candidates == 3
    assert args.generation_rerank_evidence == 0
    # sampled pseudo-references: saved as the plain setting `rerank_evidence`; refused without mbr
    from transformers import GenerationConfig

    from hf_audiocap.training.arguments import set_decoding_settings

    recipe.write_text(recipe.read_text() + "generation_rerank_evidence: 8\n")
    (args,) = HfArgumentParser(AudioCapTrainingArguments).parse_yaml_file(str(recipe))
    gen = GenerationConfig()
    set_decoding_settings(gen, args)
    assert (gen.rerank, gen.rerank_candidates, gen.rerank_evidence) == ("mbr", 3, 8)
    recipe.write_text(f"output_dir: {tmp_path}\ngeneration_rerank_evidence: 8\n")
    with pytest.raises(ValueError, match=r"generation_rerank_evidence is read only with generation_rerank"):
        HfArgumentParser(AudioCapTrainingArguments).parse_yaml_file(str(recipe))
    recipe.write_text(f"output_dir: {tmp_path}\ngeneration_rerank: logprob\ngeneration_rerank_evidence: 8\n")
    with pytest.raises(ValueError, match=r"rerank_evidence: only the 'mbr' scorer"):
        HfArgumentParser(AudioCapTrainingArguments).parse_yaml_file(str(recipe))
    recipe.write_text(f"output_dir: {tmp_path}\ngeneration_rerank: clap\nuse_cpu: true\n")
    with pytest.raises(ValueError, match=r"'clap' needs the audio, which validation does not see"):
        HfArgumentParser(AudioCapTrainingArguments).parse_yaml_file(str(recipe))

    captioner = _captioner("encoder-decoder")
    captioner.model.generation_config.rerank = "mbr"
    captioner.model.generation_config.rerank_candidates = 3
    trainer = object.__new__(AudioCapTrainer)  # only what prediction_step reads
    trainer.args = SimpleNamespace(predict_with_generate=True)
    trainer.processing_class = captioner.processor
    trainer.accelerator = SimpleNamespace(unwrap_model=lambda model: model)
    trainer._generation_kwargs = {}
    inputs = dict(captioner.processor(audio=WAVES, sampling_rate=16000, return_tensors="pt"))
    loss, tokens, labels = trainer.prediction_step(captioner.model, inputs, prediction_loss_only=False)
    tokens = torch.where(tokens == -100, captioner.processor.tokenizer.pad_token_id, tokens)
    texts = [t.strip() for t in captioner.processor.batch_decode(tokens, skip_special_tokens=True)]
    assert loss is None and texts == captioner.caption_arrays(WAVES)
    captioner.model.generation_config.rerank_evidence = 4  # validation with sampled pseudo-references
    captioner.batch_size = len(WAVES)  # one batch: the same random draws as the trainer's
    torch.manual_seed(0)
    _, tokens, _ = trainer.prediction_step(captioner.model, inputs, prediction_loss_only=False)
    tokens = torch.where(tokens == -100, captioner.processor.tokenizer.pad_token_id, tokens)
    texts = [t.strip() for t in captioner.processor.batch_decode(tokens, skip_special_tokens=True)]
    torch.manual_seed(0)
    assert texts == captioner.caption_arrays(WAVES)
