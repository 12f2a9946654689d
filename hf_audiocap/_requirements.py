"""The running transformers against the range setup.cfg declares, checked before the package imports its models."""

from __future__ import annotations


def check_transformers() -> None:
    """Stop the import with one line, not a traceback, under a transformers that setup.cfg does not accept (the
    model files' own check, which remote code also runs, raises an ImportError that Python prints with its frames)."""
    from importlib.metadata import PackageNotFoundError, requires, version

    from packaging.requirements import Requirement

    try:
        wanted = [Requirement(r) for r in requires("hf_audiocap") or ()]
    except PackageNotFoundError:  # a source tree on sys.path, not installed: the model files' check remains
        return
    for req in wanted:
        if req.name == "transformers" and not req.marker:
            found = version("transformers")
            if not req.specifier.contains(found, prereleases=True):
                raise SystemExit(f"hf_audiocap needs {req} (found transformers {found}): pip install '{req}'")


check_transformers()
