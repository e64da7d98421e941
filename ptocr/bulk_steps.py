"""A pipeline's steps as the bulk engine (``ptocr.bulk``) runs them across many images.

The engine knows only this shape: ``load`` an input and ``det_input`` it (worker threads); one
detector call per bucket of same-size inputs; ``boxes_and_crops`` per image (worker threads);
each ``CropStage`` in turn over the crops of a window of images, every image keeping its own
batches (``batches``); ``assemble`` the result. ``TextSystemSteps`` is PaddleOCR 2.x's
``TextSystem`` (``ptocr.OCR``), ``Pipeline3Steps`` PaddleOCR 3.x's OCR pipeline
(``ptocr.pipeline3.OCR3``): each calls the pipeline's own step functions, so a bulk result is
computed as ``read`` computes it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ptocr.postprocess import apply_cls_rotation, should_rotate
from ptocr.result import Line, OCRResult
from ptocr.transforms import get_rotate_crop_image, load_image, sorted_boxes

__all__ = ["BulkItem", "CropStage", "Pipeline3Steps", "TextSystemSteps", "lines_of"]


@dataclass
class BulkItem:
    """One input (an image, or one page of a PDF) on its way through the steps."""

    source: str | None
    page_index: int | None = None  # 0-based page of a PDF
    img: np.ndarray | None = None
    extra: Any = None  # what ``load`` adds (the 3.x pipeline: its PreparedPage)
    x: np.ndarray | None = None  # the detector's input, C x H x W
    info: Any = None
    error: str | None = None
    boxes: list = field(default_factory=list)
    crops: list = field(default_factory=list)
    angles: list = field(default_factory=list)
    texts: list = field(default_factory=list)


@dataclass
class CropStage:
    """A model over crops: ``batches(crops)`` -> [(crop indices, input batch)] as the pipeline
    batches one image's crops; ``post(output)`` -> one result per row; ``finish(item, results)``
    stores the per-crop results (in crop order) on the item."""

    model: Any
    batches: Callable[[list], Iterable[tuple[Any, np.ndarray]]]
    post: Callable[[np.ndarray], list]
    finish: Callable[[BulkItem, list], None]


def lines_of(boxes, texts, angles, drop_score: float) -> list[Line]:
    """TextSystem's lines: one per box, those scoring below ``drop_score`` dropped."""
    return [Line(box.tolist(), text, float(score), angle)
            for box, (text, score), angle in zip(boxes, texts, angles) if score >= drop_score]


def _store_texts(item: BulkItem, texts: list) -> None:
    item.texts = texts


class TextSystemSteps:
    """``OCR.read``'s steps (PaddleOCR 2.x): det -> reading order -> perspective crops ->
    direction classifier (``cls``) -> recognizer, lines below ``drop_score`` dropped."""

    def __init__(self, ocr):
        self.ocr, self.det = ocr, ocr.det
        self.models = [m for m in (ocr.det, ocr.cls, ocr.rec) if m is not None]
        self.stages = [CropStage(ocr.rec, ocr.rec.pre.batches, ocr.rec.post, _store_texts)]
        if ocr.cls is not None:
            self.stages.insert(0, CropStage(ocr.cls, ocr.cls.pre.batches, ocr.cls.post, self._turn))

    @staticmethod
    def load(image) -> tuple[np.ndarray, None]:
        return load_image(image), None

    def det_input(self, img: np.ndarray):
        return self.det.pre(img)

    def boxes_and_crops(self, item: BulkItem, prob: np.ndarray) -> None:
        item.boxes = sorted_boxes(self.det.boxes(prob, item.info, item.img.shape).boxes)
        item.crops = [get_rotate_crop_image(item.img, b) for b in item.boxes]
        item.angles = [None] * len(item.crops)

    def _turn(self, item: BulkItem, labels: list) -> None:
        thresh = self.ocr.cls.thresh
        item.crops = apply_cls_rotation(item.crops, labels, thresh)
        item.angles = [180 if should_rotate(label, score, thresh) else 0 for label, score in labels]

    def assemble(self, item: BulkItem) -> OCRResult:
        return OCRResult(lines_of(item.boxes, item.texts, item.angles, self.ocr.drop_score), source=item.source,
                         page_index=item.page_index, image=item.img)


class Pipeline3Steps:
    """``OCR3.read``'s steps (PaddleOCR 3.x): prepare (doc orientation, unwarping) -> detect -> crop ->
    orient (textline model) -> recognize -> assemble."""

    def __init__(self, ocr):
        self.ocr, self.det = ocr, ocr.det
        self.models = [m for m in (ocr.doc_ori, ocr.doc_unwarp, ocr.det, ocr.textline, ocr.rec) if m is not None]
        self.stages = [CropStage(ocr.rec, ocr.rec_batches, ocr.rec_texts, _store_texts)]
        if ocr.textline is not None:
            self.stages.insert(0, CropStage(ocr.textline, ocr.orient_batches, ocr.orient_classes, self._turn))

    def load(self, image) -> tuple[np.ndarray, Any]:
        page = self.ocr.prepare(image)
        return page.image, page  # the page to read, and the doc preprocessor's images and angle

    def det_input(self, img: np.ndarray):
        return self.ocr.det_pre(img)

    def boxes_and_crops(self, item: BulkItem, prob: np.ndarray) -> None:
        item.crops, item.boxes = self.ocr.crop(item.img, self.ocr.quads(prob, item.info))
        item.angles = [-1] * len(item.crops)

    def _turn(self, item: BulkItem, classes: list) -> None:
        item.crops, item.angles = self.ocr.turn(item.crops, classes), classes

    def assemble(self, item: BulkItem):
        return self.ocr.assemble(item.extra, item.boxes, item.angles, item.texts, source=item.source,
                                 page_index=item.page_index, crops=item.crops)
