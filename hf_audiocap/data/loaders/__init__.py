"""Caption dataset loaders: every loader returns a ``datasets.DatasetDict`` with ONE schema (see docs/CONVENTIONS.md).

    id             string   unique within a split
    audio          datasets.Audio(decode=False): struct {bytes, path}; loaders reading from disk store the absolute
                   path and ``bytes=None`` (decode later with :func:`hf_audiocap.data.audio.load_audio`)
    sampling_rate  int32    native rate from the file header, 0 when unknown (unreadable header, ``probe_audio=False``)
    captions       list[string]  the reference captions of the clip

Audio is never decoded here (and never through ``datasets``' own decoder, which needs torchcodec + FFmpeg).

Bad input policy (shared by all loaders):

* a CSV/JSONL without the expected columns -> :class:`DatasetFormatError` naming the file and the columns;
* text that is not valid UTF-8 -> :class:`DatasetFormatError` naming the file and line;
* an empty caption -> :class:`DatasetFormatError` naming the file and line; with ``drop_empty_captions=True`` the empty
  caption is dropped (a clip left with no caption is dropped) and one warning gives the count. In manifests with
  ``caption_1..caption_N`` columns, blank cells are simply fewer references: only a row with no caption at all counts;
* audio files that do not exist -> one :class:`MissingAudioError` (also a ``FileNotFoundError``) giving the count per
  split and the first 5; with ``skip_missing=True`` those clips are skipped and one warning per split says how many;
* a manifest row whose audio path resolves outside the base folder (``../../etc/passwd``, an absolute path elsewhere;
  also an AudioCaps id with a path separator, a relative path of an ``hf`` dataset leaving its folder) ->
  :class:`DatasetFormatError` naming the row; a split name that is not a plain name (``a/b``, ``..``) likewise;
* NUL bytes in a text file (a binary or UTF-16 file) -> :class:`DatasetFormatError` naming the file and line;
* audio that cannot be used is NOT decoded here: :func:`check_audio_files` checks every clip's header (readable, not
  empty, not over a maximum duration) in one pass, which ``recipes/train.py`` and
  ``recipes/evaluate.py`` run before anything else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import datasets

# The `name as name` imports re-export names outside __all__: two public constants, and the helpers that
# hf_audiocap.data.streaming shares with load_hf_dataset.
from hf_audiocap.data.loaders.audio_checks import audio_durations, check_audio_files
from hf_audiocap.data.loaders.audiocaps import AUDIOCAPS_TEMPLATES as AUDIOCAPS_TEMPLATES
from hf_audiocap.data.loaders.audiocaps import load_audiocaps
from hf_audiocap.data.loaders.clotho import load_clotho
from hf_audiocap.data.loaders.files import AUDIO_EXTENSIONS as AUDIO_EXTENSIONS
from hf_audiocap.data.loaders.hf_datasets import _hf_row_converter as _hf_row_converter
from hf_audiocap.data.loaders.hf_datasets import _is_saved_dataset as _is_saved_dataset
from hf_audiocap.data.loaders.hf_datasets import load_hf_dataset
from hf_audiocap.data.loaders.manifest import load_audiofolder, load_manifest
from hf_audiocap.data.loaders.schema import CAPTION_FEATURES, DatasetFormatError, MissingAudioError, expand_captions
from hf_audiocap.data.loaders.schema import _make_dataset as _make_dataset

__all__ = [
    "audio_durations",
    "CAPTION_FEATURES",
    "DatasetFormatError",
    "LOADERS",
    "MissingAudioError",
    "expand_captions",
    "load_audiocaps",
    "load_audiofolder",
    "load_caption_dataset",
    "load_clotho",
    "load_hf_dataset",
    "load_manifest",
    "register_loader",
    "check_audio_files",
]

# Loaders by the name a recipe's `dataset` (or load_caption_dataset) selects them with.
LOADERS: dict[str, Callable[..., datasets.DatasetDict]] = {
    "clotho": load_clotho,
    "audiocaps": load_audiocaps,
    "manifest": load_manifest,
    "audiofolder": load_audiofolder,
    "hf": load_hf_dataset,
}


def register_loader(name: str, fn: Callable[..., datasets.DatasetDict]) -> None:
    """Add a loader to the registry used by :func:`load_caption_dataset`."""
    LOADERS[name] = fn


def load_caption_dataset(source: str, *args: Any, **kwargs: Any) -> datasets.DatasetDict:
    """Dispatch to a registered loader by name, e.g. ``load_caption_dataset("clotho", root="data/clotho")``."""
    if source not in LOADERS:
        raise ValueError(f"unknown caption dataset loader {source!r}; known loaders: {', '.join(sorted(LOADERS))}")
    return LOADERS[source](*args, **kwargs)
