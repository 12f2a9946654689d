"""A source bank: what the scene composer and the caption grammar need from a set of sound sources.

SynthCaps renders its sources by synthesis; the real-sounds corpus (`hf_audiocap.data.realsounds`) cuts them from
recordings. Both compose scenes with :func:`~hf_audiocap.data.synthcaps.scenes._plan_scene`, phrase them with
:func:`~hf_audiocap.data.synthcaps.captions.make_captions` and mix them with
:func:`~hf_audiocap.data.synthcaps.synthesis._synthesize_scene`, each given its bank.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from hf_audiocap.data.synthcaps.catalogue import CATALOGUE, SourceSpec
from hf_audiocap.data.synthcaps.synthesis import _render, min_window


@dataclass(frozen=True)
class SourceBank:
    """``catalogue``: each source's kind and caption words. ``min_window(name, count, tempo, loudness)``: the shortest
    window (s) in which the source is clearly heard. ``render(name, n, sr, rng, *, w0, w1, count, pitch, tempo,
    loudness, level_db)``: the source as a length-``n`` signal active inside [w0, w1] s, at its loudness, with its
    real onset and offset: ``(signal, onset, offset)``."""

    name: str
    catalogue: tuple[SourceSpec, ...]
    min_window: Callable[..., float]
    render: Callable[..., tuple]
    sources: dict[str, SourceSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "sources", {s.name: s for s in self.catalogue})


SYNTH_BANK = SourceBank("synthcaps", CATALOGUE, min_window, _render)
