"""realsounds: scenes of real recordings from Debian's free sound packages, captioned by SynthCaps' grammar.

    hf-audiocap prepare realsounds --root data/realsounds

The class table (:mod:`~hf_audiocap.data.realsounds.classes`) names 28 classes and the recordings of each; the
preparer (:mod:`hf_audiocap.data.prepare.realsounds`) fetches the packages, cuts the recordings out, splits each
class's recordings between train, validation and test, and composes scenes with SynthCaps' composer
(:mod:`~hf_audiocap.data.realsounds.scenes`), written in the Clotho layout with a ground truth of the classes in each
clip (:mod:`~hf_audiocap.data.realsounds.scoring` scores captions against it).
"""

from __future__ import annotations

import json
from pathlib import Path

from hf_audiocap.data.realsounds.classes import CLASS_NAMES, CLASSES, MIN_RECORDINGS, RECORDINGS
from hf_audiocap.data.realsounds.generate import DEFAULT_SIZES, SINGLE_SPLIT

__all__ = [
    "CLASSES",
    "CLASS_NAMES",
    "DEFAULT_SIZES",
    "MIN_RECORDINGS",
    "RECORDINGS",
    "SCENE_ARGUMENTS",
    "SINGLE_SPLIT",
    "ensure_realsounds",
]


# What a recipe's synth_kwargs may set for a realsounds corpus (the scene arguments of `hf-audiocap prepare realsounds`)
SCENE_ARGUMENTS = ("seed", "num_train", "num_validation", "num_test", "train_single_share")


def ensure_realsounds(path: str | Path, synth_kwargs: dict, make: bool) -> None:
    """The recipes' check of a realsounds folder: prepared (with ``make``, prepared now: packages fetched, scenes
    written) with the scene arguments ``synth_kwargs`` asks for, else a one-line error saying what to run."""
    from hf_audiocap.data.prepare import PrepareConfig, prepare

    path = Path(path)
    info_path = path / "realsounds_info.json"
    asked = {k: synth_kwargs[k] for k in SCENE_ARGUMENTS if k in synth_kwargs}
    if info_path.is_file():
        info = json.loads(info_path.read_text(encoding="utf-8"))
        made = {"seed": info.get("seed"), "train_single_share": 0.0, **info.get("arguments", {})}
        differ = {k: (made.get(k), v) for k, v in asked.items() if made.get(k) != v}
        if not differ:
            return
        if not make:
            said = ", ".join(f"{k}={new} (the folder has {old})" for k, (old, new) in differ.items())
            raise ValueError(f"realsounds at {path} was made with other arguments: {said}; set synth_if_missing")
    elif not make:
        raise FileNotFoundError(
            f"no realsounds corpus at {path}: run `hf-audiocap prepare realsounds --root {path}` or set synth_if_missing"
        )
    prepare(PrepareConfig(corpus="realsounds", root=str(path), **asked))
