"""Where ptocr keeps and looks for weights on this machine, and whether it may use the network.

Read from the environment at each call (not at import), so a user's or a test's late
``os.environ`` change counts.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_ZOO = "PTOCR_ZOO"
ENV_OFFLINE = "PTOCR_OFFLINE"
ENV_REQUIRE_PINNED = "PTOCR_REQUIRE_PINNED"
_TRUE = {"1", "true", "yes", "on"}

__all__ = ["ENV_OFFLINE", "ENV_REQUIRE_PINNED", "ENV_ZOO", "hf_cache_dir", "hf_endpoint", "offline",
           "ptocr_cache", "require_pinned", "zoo_dir"]


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def _env_path(name: str) -> str | None:
    """A folder setting, ``~`` and ``$VAR`` expanded as huggingface_hub expands its own (a
    ``HF_HUB_CACHE=~/hf`` from a .env file or a unit is the same folder for both)."""
    value = os.environ.get(name)
    return os.path.expandvars(os.path.expanduser(value)) if value else None


def ptocr_cache() -> Path:
    """``$PTOCR_CACHE``, else ``$XDG_CACHE_HOME/ptocr``, else ``~/.cache/ptocr``."""
    root = _env_path("PTOCR_CACHE") or os.path.join(_env_path("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                                                    "ptocr")
    return Path(root)


def zoo_dir() -> Path:
    """The local zoo folder: ``$PTOCR_ZOO``, else ``<ptocr cache>/zoo``."""
    env = _env_path(ENV_ZOO)
    return Path(env) if env else ptocr_cache() / "zoo"


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache."""
    if env := _env_path("HF_HUB_CACHE"):
        return Path(env)
    if env := _env_path("HF_HOME"):
        return Path(env) / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def hf_endpoint() -> str | None:
    """``$HF_ENDPOINT`` as set now (huggingface_hub reads it once, at its import)."""
    return os.environ.get("HF_ENDPOINT", "").strip().rstrip("/") or None


def hub_endpoint() -> str:
    """The Hugging Face endpoint to talk to: ``$HF_ENDPOINT`` as set now, else huggingface_hub's."""
    from huggingface_hub import constants

    return hf_endpoint() or constants.ENDPOINT.rstrip("/")


def offline() -> bool:
    """``HF_HUB_OFFLINE`` or ``PTOCR_OFFLINE`` set, or huggingface_hub configured offline at import."""
    if _flag("HF_HUB_OFFLINE") or _flag(ENV_OFFLINE):
        return True
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def require_pinned() -> bool:
    """``PTOCR_REQUIRE_PINNED=1``: refuse origins the manifest pins no hash for."""
    return _flag(ENV_REQUIRE_PINNED)
