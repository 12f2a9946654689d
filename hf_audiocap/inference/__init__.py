"""Inference for people: one path (`Captioner`) shared by the CLI, the pipeline and the app."""

from .captioner import Captioner

__all__ = ["Captioner"]
