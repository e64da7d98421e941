"""Where the shared data lives: the real Paddle models (``paddle_models/``), the programs
without weights (``paddle_graphs/``) and the real images (``images/``) that parity, the
tests and the tools run on.

Kept apart from ``verification.suite`` so that finding the folder imports nothing heavy
(the test configuration and every tool ask for it).
"""

from __future__ import annotations

import os
from pathlib import Path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def default_shared() -> Path:
    """$PTOCR_SHARED, else ../shared beside the repository."""
    return Path(os.environ.get("PTOCR_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def scene_files(shared: Path) -> list[Path]:
    """The real scenes, ``images/scenes/``'s image files, sorted (what the benchmarks read)."""
    return sorted(p for p in (Path(shared) / "images" / "scenes").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
