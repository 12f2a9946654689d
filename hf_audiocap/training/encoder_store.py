"""`encoder_cache_dir`: a frozen encoder's states per clip, kept on disk so that later runs skip the encoder too.

`cache_encoder_outputs` alone keeps the states in memory for one run: its first epoch still runs the encoder on every
clip (on 2 CPU cores most of a Whisper-base run), and they fill memory (12 GB for 12,000 real-sounds clips). With a
folder, each clip's states are one `safetensors` file, read back when a clip comes again in this run or any later run
over the same clips with the same encoder: another seed, learning rate or decoder costs the decoder's time only, and
memory holds no states.

Layout: `<folder>/<encoder digest>/<2 hex>/<clip digest>.safetensors`. The encoder digest covers the encoder's kind,
its configuration and every weight, so a folder serves several encoders and never hands one encoder's states to
another; the clip digest is the cache's key, a digest of the clip's features (FrozenEncoderCache). Files are written
whole or not at all, so several processes (DDP) can share a folder and an interrupted run leaves no partial file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from hf_audiocap.data.atomic import write_atomic

logger = logging.getLogger(__name__)

FORMAT = 1  # raise when what a file holds, or how the states are computed, changes


def encoder_digest(kind: str, encoder: torch.nn.Module) -> str:
    """A digest of what decides the encoder's states: its kind, configuration (less names and versions) and weights."""
    h = hashlib.blake2b(digest_size=16)
    config = getattr(encoder, "config", None)
    fields = config.to_dict() if config is not None else {}
    volatile = ("transformers_version", "name_or_path")
    fields = {k: v for k, v in fields.items() if not k.startswith("_") and k not in volatile}
    h.update(json.dumps({"format": FORMAT, "kind": kind, "config": fields}, sort_keys=True, default=str).encode())
    for name, tensor in sorted(encoder.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class EncoderStateStore:
    """The mapping `FrozenEncoderCache` keeps its states in, as files under `folder/digest`: `get(key)` reads a clip's
    states (None if absent or unreadable: an unreadable file is encoded again and rewritten), assignment writes
    them. A write that fails (a full disk) is logged once and the run goes on without storing."""

    def __init__(self, folder: str | os.PathLike, digest: str, *, description: str = ""):
        self.root = Path(folder) / digest
        about = self.root / "encoder.json"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            if not about.exists():
                write_atomic(about, json.dumps({"format": FORMAT, "encoder": description}, indent=1) + "\n")
        except OSError as err:
            raise ValueError(f"encoder_cache_dir: cannot write in {self.root}: {err.strerror or err}") from err
        self.read = self.written = 0
        self._write_failed = False

    def _path(self, key: bytes) -> Path:
        name = key.hex()
        return self.root / name[:2] / f"{name}.safetensors"

    def get(self, key: bytes, default=None):
        path = self._path(key)
        if not path.exists():
            return default
        try:
            states = load_file(path)["states"]
        except (SafetensorError, KeyError, OSError) as err:
            logger.warning("encoder_cache_dir: %s is unreadable (%s); encoding the clip again", path, err)
            return default
        self.read += 1
        return states

    def __setitem__(self, key: bytes, states: torch.Tensor) -> None:
        if self._write_failed:
            return
        path = self._path(key)
        try:
            path.parent.mkdir(exist_ok=True)
            write_atomic(path, save({"states": states.detach().cpu().contiguous()}), durable=False)
        except OSError as err:
            self._write_failed = True
            logger.warning(
                "encoder_cache_dir: cannot write %s (%s); the run goes on without storing encoder states", path, err
            )
            return
        self.written += 1
