"""Pretrained parts named by folder or Hub id: checked before `from_pretrained`, which, offline or without a network,
ends in a traceback (after a minute of retries when the Hub cannot be reached), so a recipe, the caption command and
the app can say in one line why a name cannot be loaded here and what to do instead.

A name is loadable when it is a local folder, when the Hub cache holds the repository (a file every loadable
repository has: its config, tokenizer config or preprocessor config), or when the Hub answers for it. Offline is
huggingface_hub's own setting (`HF_HUB_OFFLINE`, or `TRANSFORMERS_OFFLINE`).
"""

from __future__ import annotations

import os

from huggingface_hub import HfApi, constants, try_to_load_from_cache
from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, HFValidationError, RepositoryNotFoundError
from huggingface_hub.utils import validate_repo_id

# one of these is in every repository a part is loaded from (a model, a tokenizer, a feature extractor)
MARKER_FILES = ("config.json", "tokenizer_config.json", "preprocessor_config.json")
# the one request that tells a reachable Hub from none: short, as it stands before a download of its own
PROBE_TIMEOUT_S = 10.0


class PretrainedUnavailableError(ValueError):
    """A pretrained part that cannot be loaded here: offline and not cached, or the Hub cannot be reached."""


class PretrainedNotFoundError(PretrainedUnavailableError, FileNotFoundError):
    """A pretrained part named by a folder that does not exist (and no Hub repository of that name)."""


def is_cached(repo_id: str, revision: str | None = None) -> bool:
    """Whether the Hub cache holds `repo_id` (at `revision`, default main): what `from_pretrained` reads offline."""
    return any(isinstance(try_to_load_from_cache(repo_id, f, revision=revision), str) for f in MARKER_FILES)


def check_pretrained(
    name_or_path: str | os.PathLike, revision: str | None = None, remedy: str = "pass a local folder (or go online)"
) -> None:
    """Returns when `name_or_path` can be loaded here (a local folder or file, a cached Hub repository, or one the Hub
    answers for); otherwise raises a one-line `PretrainedUnavailableError` ending with `remedy`
    (`PretrainedNotFoundError` for a folder or repository that does not exist). Repositories the Hub answers for but
    refuses to serve (gated, private, a missing revision) are left to `from_pretrained`, whose message says what to
    do."""
    name = os.fspath(name_or_path)
    if os.path.exists(name):
        return
    try:
        validate_repo_id(name)
    except HFValidationError:
        raise PretrainedNotFoundError(f"{name}: no such folder") from None
    if is_cached(name, revision):
        return
    if constants.HF_HUB_OFFLINE:
        raise PretrainedUnavailableError(f"{name}: offline (HF_HUB_OFFLINE) and not in the local cache: {remedy}")
    try:
        HfApi().repo_info(name, revision=revision, timeout=PROBE_TIMEOUT_S)
    except GatedRepoError:
        return
    except RepositoryNotFoundError:
        raise PretrainedNotFoundError(
            f"{name}: no such folder, and no such repository on the Hub (a private one needs `hf auth login`)"
        ) from None
    except HfHubHTTPError:
        return
    except Exception as err:  # the transport's own classes differ across huggingface_hub releases)
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise PretrainedUnavailableError(
            f"{name}: not in the local cache, and the Hub ({constants.ENDPOINT}) cannot be reached ({reason}): {remedy}"
        ) from None
