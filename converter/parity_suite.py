"""Which real models are proven against which real inputs (folders of ../shared).

Two kinds of entry:

- ``trained``: a folder of ``paddle_models/`` with its trained weights, compared as is.
- ``seeded``: a real program of ``paddle_graphs/`` whose weights are not available; seeded,
  calibrated weights are written beside a copy of it (``converter.seeding``) and the
  Paddle program and the converted model are compared on those.

Each entry names the architecture the converter must detect on its own (conversion runs
without ``--arch``) and, for recognizers whose folder carries no fitting dictionary, the
dictionary from ``ptocr/dicts`` (as PaddleOCR's release uses it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
TRAINED, SEEDED = "trained", "seeded"
SOURCE_KINDS = {TRAINED: "trained weights", SEEDED: "real program + seeded weights"}


@dataclass(frozen=True)
class SuiteEntry:
    model: str  # folder under paddle_models/ (trained) or paddle_graphs/ (seeded)
    images: tuple[str, ...]  # folders under images/
    arch: str  # the architecture conversion must detect
    kind: str = TRAINED
    dictionary: str | None = None  # a file of ptocr/dicts, where the folder has no fitting one
    max_images: int | None = None  # per entry, to bound CI time (det on seeded weights)

    @property
    def source_kind(self) -> str:
        return SOURCE_KINDS[self.kind]

    @property
    def id(self) -> str:
        return self.model


SCENES = ("scenes",)
CH_EN = ("words/ch", "words/en")

SUITE: tuple[SuiteEntry, ...] = (
    SuiteEntry("ch_PP-OCRv4_det_infer", SCENES, "ch_PP-OCRv4_det"),
    SuiteEntry("ch_PP-OCRv4_rec_infer", CH_EN, "ch_PP-OCRv4_rec"),
    SuiteEntry("ch_ppocr_mobile_v2.0_cls_infer", CH_EN, "ch_ppocr_mobile_v2.0_cls"),
)


def default_shared() -> Path:
    """$PTOCR_SHARED, else ../shared beside the repository."""
    return Path(os.environ.get("PTOCR_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def images_of(shared: Path, entry: SuiteEntry) -> list[Path]:
    found = sorted(
        p for folder in entry.images for p in (shared / "images" / folder).iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES
    )
    return found[: entry.max_images] if entry.max_images else found


def source_folder(shared: Path, entry: SuiteEntry) -> Path:
    return shared / ("paddle_models" if entry.kind == TRAINED else "paddle_graphs") / entry.model


def dictionary_path(entry: SuiteEntry) -> Path | None:
    if entry.dictionary is None:
        return None
    return Path(__file__).resolve().parents[1] / "ptocr" / "dicts" / entry.dictionary


def prepare(entry: SuiteEntry, shared: Path, workdir: Path) -> Path:
    """The Paddle model folder to compare: the trained folder itself, or a seeded copy of
    the program in ``workdir`` (made once; calibrated on the entry's own images)."""
    src = source_folder(shared, entry)
    if entry.kind == TRAINED:
        return src
    from converter.seeding import seed_and_calibrate

    out = Path(workdir) / entry.model
    if not (out / "inference.pdiparams").is_file():
        seed_and_calibrate(src, out, images_of(shared, entry), arch=entry.arch, dictionary=dictionary_path(entry))
    return out


def run_entry(entry: SuiteEntry, shared: Path, workdir: Path):
    """Convert (architecture detected, not given) and compare with Paddle: a ParityReport."""
    from converter.convert import convert
    from converter.errors import ArchitectureError
    from converter.parity import check_parity

    folder = prepare(entry, shared, workdir)
    conv = convert(folder, None, dictionary=dictionary_path(entry))
    if conv.arch_name != entry.arch:
        raise ArchitectureError(f"{entry.model}: detected as {conv.arch_name}, expected {entry.arch}")
    return check_parity(folder, images_of(shared, entry), name=entry.model, conversion=conv,
                        source_kind=entry.source_kind)
