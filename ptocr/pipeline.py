"""The PP-OCR system, as PaddleOCR 2.10's ``TextSystem`` runs it:
detection -> reading order -> perspective crops -> direction (180 degree flip) -> recognition
-> drop lines scoring below ``drop_score``.

Every step is one of the predictors (each usable alone) or a function of ptocr.transforms /
ptocr.postprocess, so the numbers follow PaddleOCR's code step by step.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ptocr.bulk import BulkReading
from ptocr.bulk_steps import TextSystemSteps
from ptocr.errors import PtocrError
from ptocr.loading import load_predictor
from ptocr.manifest import load_manifest
from ptocr.inputs import read_inputs
from ptocr.pdf import document_pages
from ptocr.postprocess import apply_cls_rotation, should_rotate
from ptocr.predictors import ClsPredictor, DetPredictor, Predictor, RecPredictor
from ptocr.result import Line, OCRResult
from ptocr.transforms import get_rotate_crop_image, load_image, sorted_boxes
from ptocr.zoo import resolve

__all__ = ["OCR", "Line", "OCRResult", "official_model_files"]

# The bundle ``ptocr demo``, ``ptocr ocr`` without models and ``OCR.official()`` run: PaddleOCR
# 2.10's default (PP-OCRv4 mobile det / rec, v2.0 direction classifier).
DEFAULT_BUNDLE = "ch_PP-OCRv4"
# PaddleOCR 2.10's TextSystem default (``--drop_score``), the same for every generation.
DROP_SCORE = 0.5


def as_predictor(source, task: str, device=None, dtype=None, optimize: bool = True, compile: bool = False) -> Predictor:
    """A predictor, a converted .safetensors path or a Paddle model folder -> predictor of ``task``."""
    if isinstance(source, Predictor):
        p = source.to(device, dtype) if (device is not None or dtype is not None) else source
    elif isinstance(source, (str, os.PathLike)):
        p = load_predictor(source, device=device, dtype=dtype, optimize=optimize, compile=compile)
    else:
        raise PtocrError(f"{task}: expected a predictor, a .safetensors path or a Paddle model folder, "
                         f"got {type(source).__name__}")
    if p.task != task:
        raise PtocrError(f"{task}: {source} is a {p.task} model, not a {task} model")
    return p


_predictor = as_predictor  # the name this module's code used before the 3.x pipeline shared it


class OCR(BulkReading):
    """Image(s) in, text lines (box, text, score, angle) out.

    Args:
        det, rec, cls: each a predictor (``ptocr.load(...)``), a converted ``.safetensors``
            path, a Paddle model folder or a zoo model name. ``cls=None`` skips the direction
            classifier (PaddleOCR's ``use_angle_cls=False``).
        device, dtype: move all three models.
        drop_score: TextSystem's; lines scoring below it are dropped.
        optimize, compile: for paths and names, ``ptocr.load``'s inference rewrites (on by
            default) and ``torch.compile`` (off by default: the first images pay its
            compilation).

    Thresholds are the models' configs (PaddleOCR 2.10's defaults for their generation).
    ``OCR.from_pretrained(name)`` builds a bundle of the zoo (``ch_PP-OCRv4``);
    ``OCR.official()`` the default bundle, as ``ptocr demo`` runs it.
    """

    def __init__(self, det, rec, cls=None, *, device=None, dtype=None, drop_score: float = DROP_SCORE,
                 optimize: bool = True, compile: bool = False):
        self.det: DetPredictor = _predictor(det, "det", device, dtype, optimize, compile)
        self.rec: RecPredictor = _predictor(rec, "rec", device, dtype, optimize, compile)
        self.cls: ClsPredictor | None = (None if cls is None else
                                         _predictor(cls, "cls", device, dtype, optimize, compile))
        self.drop_score = float(drop_score)

    @classmethod
    def from_pretrained(cls, name: str, *, lang: str | None = None, **kw) -> OCR:
        """The zoo bundle ``name`` (``ptocr list``: ``ch_PP-OCRv4``, ``ch_ptocr_server_v2``),
        each part loaded by name as ``ptocr.load`` loads it.

        Args:
            name: a bundle of the manifest.
            lang: refused: language codes pick PaddleOCR 3.x's recognizers.
            **kw: ``OCR``'s keyword arguments (device, dtype, drop_score, optimize, compile).
        """
        if lang is not None:
            raise PtocrError(f"lang picks PaddleOCR 3.x's recognizers; {name} is a PaddleOCR 2.x bundle")
        manifest = load_manifest()
        parts = manifest.bundle(name)  # unknown names: an error suggesting close ones
        if manifest.bundle_rules(name) != "paddleocr2":
            raise PtocrError(f"{name} follows PaddleOCR 3.x's pipeline rules (ptocr.pipeline3.OCR3): "
                             f"load it with ptocr.load({name!r})")
        return cls(parts["det"], parts["rec"], parts.get("cls"), **kw)

    @classmethod
    def official(cls, zoo: str | os.PathLike | None = None, *, log: Callable[[str], None] | None = None,
                 **kw) -> OCR:
        """The default bundle (``ch_PP-OCRv4``), its weights found as ``ptocr.load`` finds them
        (``ptocr.zoo.resolve``: local zoo folder ``zoo``, caches, official origins)."""
        files = official_model_files(zoo, log=log)
        return cls(files["det"], files["rec"], files.get("cls"), **kw)

    def __call__(self, images, pages=None) -> OCRResult | list[OCRResult]:
        """``images``: a path, encoded bytes, numpy array (BGR / gray / BGRA, 8 or 16 bit), PIL
        image, or a folder or list of them (-> a flat list of results). A PDF or TIFF path gives
        one result per page (``pages``: 1-based page numbers, default all), in place in the list
        (``ptocr.inputs``)."""
        return read_inputs(self, images, pages)

    def read_pdf(self, path, pages=None) -> list[OCRResult]:
        """One result per page of the PDF or TIFF ``path`` (``ptocr.pdf``: a TIFF's every frame,
        where PaddleOCR 2.x read its first only)."""
        results = []
        for _, page in document_pages(path, pages):
            result = self.read(page)
            result.source = os.fspath(path)
            results.append(result)
        return results

    def read(self, image) -> OCRResult:
        source = os.fspath(image) if isinstance(image, (str, os.PathLike)) else None
        img = load_image(image)
        boxes = sorted_boxes(self.det(img).boxes)
        crops = [get_rotate_crop_image(img, b) for b in boxes]
        angles: list[int | None] = [None] * len(crops)
        if self.cls is not None and crops:
            # predict_cls: turn a crop over when its label contains "180" above cls_thresh.
            results = self.cls(crops)
            crops = apply_cls_rotation(crops, results, self.cls.thresh)
            angles = [180 if should_rotate(label, score, self.cls.thresh) else 0 for label, score in results]
        texts = self.rec(crops) if crops else []
        lines = [
            Line(box.tolist(), text, float(score), angle)
            for box, (text, score), angle in zip(boxes, texts, angles)
            if score >= self.drop_score  # TextSystem keeps score >= drop_score
        ]
        return OCRResult(lines, source=source, image=img)

    def bulk_steps(self) -> TextSystemSteps:
        return TextSystemSteps(self)

    def __repr__(self) -> str:
        return f"OCR(det={self.det!r}, rec={self.rec!r}, cls={self.cls!r}, drop_score={self.drop_score})"


def official_model_files(zoo: str | os.PathLike | None = None, *,
                         log: Callable[[str], None] | None = None) -> dict[str, Path]:
    """The checked converted files of the default bundle's parts, through the one resolver
    (``ptocr.zoo.resolve``), kept in the local zoo folder ``zoo`` (default ``$PTOCR_ZOO``).
    Returns ``{"det"|"rec"|"cls": path}``."""
    files = {}
    for task, name in load_manifest().bundle(DEFAULT_BUNDLE).items():
        found = resolve(name, zoo=Path(zoo) if zoo is not None else None)
        if log is not None:
            log(f"{name}: {found.path} (from {found.where})")
        files[task] = found.path
    return files
