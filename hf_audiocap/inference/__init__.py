"""Inference for people: one path (`Captioner`, loaded by `load_captioner`) shared by the CLI, the pipeline and the
app."""

from .captioner import Captioner, join_captions, load_captioner

__all__ = ["Captioner", "join_captions", "load_captioner"]
