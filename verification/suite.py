"""Which real models are proven against which real inputs (folders of ../shared).

Four kinds of entry:

- ``trained``: a folder of ``paddle_models/`` with its trained weights, compared as is: the
  manifest's models, and the folders of ``paddle_models/`` that are no zoo model (``FOLDERS``:
  a user's own model, its dictionary the one in its folder).
- ``seeded``: a real program of ``paddle_graphs/`` whose weights are not available; seeded,
  calibrated weights are written beside a copy of it (``verification.seeding``) and the
  Paddle program and the converted model are compared on those.
- ``checkpoint``: a training checkpoint of ``paddle_models/``, its tensors written for the
  released program of the matching inference model and compared there.
- ``exported``: where ../shared has no program of a model, the same network exported from
  PaddleX's or PaddleOCR's own code into ``tests/fixtures/paddle_graphs/``
  (``tools/export_*_program.py``), seeded as a ``seeded`` entry is.

Each entry names the architecture the converter must detect on its own (conversion runs
without ``--arch``) and, for recognizers whose folder carries no fitting dictionary, the
dictionary from ``ptocr/dicts`` (as PaddleOCR's release uses it).

Seeded detectors are compared with DB post-processing that keeps every component
(``SEEDED_DET_POSTPROCESS``): see there.

The suite is read from the manifest and the shared folder when ``suite()`` is first called,
never at import.
"""

from __future__ import annotations

import functools
import shutil
from dataclasses import dataclass
from pathlib import Path

from converter.convert import convert
from converter.errors import ArchitectureError, MappingError
from converter.readers import read_info, read_source
from converter.readers.program import read_program
from ptocr.architectures import canonical_name, get_architecture
from ptocr.manifest import load_manifest
from verification.parity import ParityReport, check_parity
from verification.pdiparams import write_pdiparams
from verification.seeding import seed_and_calibrate
from verification.shared import IMAGE_SUFFIXES, default_shared

TRAINED, SEEDED, CHECKPOINT, EXPORTED = "trained", "seeded", "checkpoint", "exported"
SOURCE_KINDS = {TRAINED: "trained weights", SEEDED: "real program + seeded weights",
                CHECKPOINT: "training checkpoint in the released program",
                EXPORTED: "exported network + seeded weights"}
# Programs exported from PaddleX's or PaddleOCR's network code, for models whose release ../shared lacks.
EXPORTED_GRAPHS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "paddle_graphs"


@dataclass(frozen=True)
class SuiteEntry:
    model: str  # the manifest's model name (or a checkpoint folder's name)
    folder: str  # under paddle_models/ (trained, checkpoint), paddle_graphs/ (seeded) or EXPORTED_GRAPHS
    images: tuple[str, ...]  # folders under images/
    arch: str  # the architecture conversion must detect
    kind: str = TRAINED
    max_images: int | None = None  # to bound CI time (det on seeded weights)
    program: str | None = None  # checkpoint entries: the paddle_models/ folder whose program runs them
    donor: str | None = None  # seeded entries: a paddle_models/ folder of the same network lending its weights

    @property
    def postprocess(self) -> dict:
        """Settings replacing the config's in the decisions compared: a seeded detector's
        SEEDED_DET_POSTPROCESS, nothing for the others."""
        if self.kind in (SEEDED, EXPORTED) and get_architecture(self.arch)["task"] == "det":
            return dict(SEEDED_DET_POSTPROCESS)
        return {}

    @property
    def source_kind(self) -> str:
        if self.donor:
            return f"real program + trained weights of {self.donor} (rest seeded)"
        return SOURCE_KINDS[self.kind]

    @property
    def id(self) -> str:
        return self.model


# Real training checkpoints, run by the program of the matching inference model.
CHECKPOINTS = (
    ("ch_ppocr_mobile_v2.0_det_train", "ch_ppocr_mobile_v2.0_det_infer", ("scenes",), "ch_ppocr_mobile_v2.0_det", 4),
    ("en_number_mobile_v2.0_rec_train_finetune", "en_number_mobile_v2.0_rec_infer", ("words/en",),
     "ch_ppocr_mobile_v2.0_rec", None),
)


# Folders of paddle_models/ that are no zoo model (no manifest entry): (folder, images, architecture).
# Their recognizers' dictionary is the one in their folder, found by the converter.
FOLDERS = (
    ("custom_en_mobile_v2.0_rec_infer", ("words/en",), "ch_ppocr_mobile_v2.0_rec"),
)

# A seeded detector's map is speckle, not text: 12-21 % of pixels pass the DB threshold, in
# 6,000-25,000 components, nearly all under 3 px, and the few larger ones score 0.42-0.61 on
# average. With the release's settings (box_thresh 0.6, and max_candidates 1000: only the first
# 1000 components, nearly all single pixels, are looked at) no box is left on either side and the
# box comparison compares nothing. So seeded detectors are compared keeping every component and
# every box scoring at least the DB threshold: 8-143 boxes per scene, through every step of the
# DB post-processing (contours, minimum boxes, scores, unclipping, size filters).
SEEDED_DET_POSTPROCESS = (("box_thresh", 0.3), ("max_candidates", 100_000))


@functools.cache
def suite(shared: Path | None = None) -> tuple[SuiteEntry, ...]:
    """Every ready manifest model with a Paddle source folder (its trained weights where the
    shared folder's ``paddle_models/`` holds them, else seeded where ``paddle_graphs/`` or
    EXPORTED_GRAPHS holds its program), then the checkpoints. ``shared``: that folder (default
    ``default_shared()``). Read once per process and folder."""
    shared = default_shared() if shared is None else Path(shared)
    entries = []
    for name, e in sorted(load_manifest().models.items()):
        folder = (e.get("source") or {}).get("folder")
        if not folder or e.get("status", "ready") != "ready":
            continue
        if (e.get("parity") or {}).get("against", "paddle") != "paddle":
            continue  # proven elsewhere: verification.onnx_parity, tests/test_transformers_*
        # Trained weights where the shared folder has them; else the weightless program, seeded.
        trained = (shared / "paddle_models" / folder / "inference.pdiparams").is_file()
        kind = TRAINED
        if not trained and (shared / "paddle_graphs" / folder).is_dir():
            kind = SEEDED
        elif not trained and (EXPORTED_GRAPHS / folder).is_dir():
            kind = EXPORTED
        parity = e.get("parity") or {}
        entries.append(SuiteEntry(name, folder, tuple(parity.get("images") or ()), canonical_name(e["architecture"]),
                                  kind, parity.get("max_images"),
                                  donor=parity.get("donor") if kind == SEEDED else None))
    for folder, images, arch in FOLDERS:
        entries.append(SuiteEntry(folder, folder, images, arch))
    for folder, program, images, arch, limit in CHECKPOINTS:
        entries.append(SuiteEntry(folder, folder, images, arch, CHECKPOINT, limit, program))
    return tuple(entries)


def images_of(shared: Path, entry: SuiteEntry) -> list[Path]:
    """The entry's images: every image of its folders under images/ (or the named image files)."""
    found = sorted(
        p for name in entry.images
        for p in ([shared / "images" / name] if (shared / "images" / name).is_file()
                  else (shared / "images" / name).iterdir())
        if p.suffix.lower() in IMAGE_SUFFIXES
    )
    return found[: entry.max_images] if entry.max_images else found


def source_folder(shared: Path, entry: SuiteEntry) -> Path:
    if entry.kind == EXPORTED:
        return EXPORTED_GRAPHS / entry.folder
    return shared / ("paddle_graphs" if entry.kind == SEEDED else "paddle_models") / entry.folder


def prepare(entry: SuiteEntry, shared: Path, workdir: Path) -> Path:
    """The Paddle model folder to compare: the trained folder itself; a seeded copy of the
    program in ``workdir`` (made once; calibrated on the entry's own images); or, for a
    training checkpoint, its tensors written for the released program beside a copy of it."""
    src = source_folder(shared, entry)
    if entry.kind == TRAINED:
        return src
    out = Path(workdir) / entry.folder
    if (out / "inference.pdiparams").is_file():
        return out
    if entry.kind == CHECKPOINT:
        return _checkpoint_in_program(src, shared / "paddle_models" / entry.program, out)
    donor = shared / "paddle_models" / entry.donor if entry.donor else None
    seed_and_calibrate(src, out, images_of(shared, entry), arch=entry.arch, donor=donor)
    return out


def _checkpoint_in_program(checkpoint: Path, program: Path, out: Path) -> Path:
    """A .pdiparams for ``program`` holding the checkpoint's tensors (through the program's
    .info: variable name -> structured name); training-only tensors are left out."""
    tensors = read_source(checkpoint).tensors
    names = read_info(program / "inference.pdiparams.info")
    out.mkdir(parents=True, exist_ok=True)
    values = {}
    for var in read_program(program / "inference.pdmodel").parameters():
        structured = names.get(var.name)
        if structured not in tensors or tuple(tensors[structured].shape) != tuple(var.shape):
            raise MappingError(f"{checkpoint}: no tensor {structured!r} of shape {var.shape} for {var.name}")
        values[var.name] = tensors[structured].astype(var.dtype)
    for name in ("inference.pdmodel", "inference.pdiparams.info"):
        shutil.copyfile(program / name, out / name)
    write_pdiparams(out / "inference.pdiparams", values)
    return out


def run_entry(entry: SuiteEntry, shared: Path, workdir: Path, *, compiled: bool = False,
              shape_graphs: bool | None = None) -> ParityReport:
    """Convert (architecture detected, not given) and compare with Paddle: a ParityReport.
    Checkpoints are converted from the checkpoint itself and compared with the program
    running the same tensors."""
    folder = prepare(entry, shared, workdir)
    conv = convert(source_folder(shared, entry) if entry.kind == CHECKPOINT else folder, None)
    if conv.arch_name != entry.arch:
        raise ArchitectureError(f"{entry.model}: detected as {conv.arch_name}, expected {entry.arch}")
    return check_parity(folder, images_of(shared, entry), name=entry.model, conversion=conv,
                        source_kind=entry.source_kind, compiled=compiled, shape_graphs=shape_graphs,
                        postprocess=entry.postprocess)


def report_row(entry: SuiteEntry, report: ParityReport) -> dict:
    """One doc/parity.md row (JSON-able): what ``python -m tools.parity_report`` tabulates, and
    what ``tests/test_parity.py`` records when ``$PTOCR_PARITY_RECORD`` names a file."""
    return {
        "model": entry.model, "folder": entry.folder, "architecture": report.architecture, "form": report.form,
        "source_kind": report.source_kind, "format": report.format, "images": list(entry.images),
        "runs": len(report.cases), "max_abs": report.max_abs, "optimized": report.optimized,
        "exact": report.exact, "fp32": report.fp32,
        "paddle_fp32": report.paddle_fp32, "paddle_runtime": report.paddle_runtime,
        "over_tolerance": report.over_tolerance, "noise_ratio": report.noise_ratio,
        "input_spread": report.input_spread, "agreement_kind": report.agreement_kind,
        "agreed": report.agreed, "compared": report.compared, "compared_kind": report.compared_kind,
        "ok": report.ok,
    }
