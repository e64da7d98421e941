"""Shared test fixtures."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # plain `pytest` (not `python -m pytest`) from anywhere
    sys.path.insert(0, str(REPO))


def shared_path() -> Path:
    """The shared data folder: $PTOCR_SHARED, else <repo>/../shared (one setting, see parity_suite)."""
    from converter.parity_suite import default_shared

    return default_shared()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The shared data folder (real Paddle models); skips the test when it is absent."""
    d = shared_path()
    if not (d / "paddle_models").is_dir():
        pytest.skip(f"shared data not found at {d} (set PTOCR_SHARED to the folder holding paddle_models/)")
    return d
