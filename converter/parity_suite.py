"""Which real models are proven against which real inputs (folders of ../shared)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass(frozen=True)
class SuiteEntry:
    model: str  # folder under paddle_models/
    images: tuple[str, ...]  # folders under images/
    source_kind: str = "trained weights"


SUITE: tuple[SuiteEntry, ...] = (
    SuiteEntry("ch_PP-OCRv4_det_infer", ("scenes",)),
    SuiteEntry("ch_PP-OCRv4_rec_infer", ("words/ch", "words/en")),
    SuiteEntry("ch_ppocr_mobile_v2.0_cls_infer", ("words/ch", "words/en")),
)


def default_shared() -> Path:
    """$PTOCR_SHARED, else ../shared beside the repository."""
    return Path(os.environ.get("PTOCR_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def images_of(shared: Path, entry: SuiteEntry) -> list[Path]:
    return sorted(
        p for folder in entry.images for p in (shared / "images" / folder).iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES
    )
