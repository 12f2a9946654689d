"""Data: audio decoding (the only place that decodes audio) and caption dataset loaders."""

from hf_audiocap.data.audio import (
    AudioDecodeError,
    AudioFileNotFoundError,
    audio_info,
    iter_audio_windows,
    load_audio,
    resample,
    to_mono,
)
from hf_audiocap.data.loaders import (
    CAPTION_FEATURES,
    LOADERS,
    DatasetFormatError,
    MissingAudioError,
    expand_captions,
    load_audiocaps,
    load_audiofolder,
    load_caption_dataset,
    load_clotho,
    load_hf_dataset,
    load_manifest,
    register_loader,
)

__all__ = [
    "CAPTION_FEATURES",
    "LOADERS",
    "AudioDecodeError",
    "AudioFileNotFoundError",
    "DatasetFormatError",
    "MissingAudioError",
    "audio_info",
    "expand_captions",
    "iter_audio_windows",
    "load_audio",
    "load_audiocaps",
    "load_audiofolder",
    "load_caption_dataset",
    "load_clotho",
    "load_hf_dataset",
    "load_manifest",
    "register_loader",
    "resample",
    "to_mono",
]
