"""The PP-OCR system: detection -> reading order -> crops -> direction -> recognition."""

from __future__ import annotations

from dataclasses import dataclass

from ptocr.postprocess import apply_cls_rotation
from ptocr.predictors import ClsPredictor, DetPredictor, RecPredictor
from ptocr.transforms import get_rotate_crop_image, load_image, sorted_boxes


@dataclass
class Line:
    box: list[list[float]]  # 4 corners, clockwise from top-left, image pixels
    text: str
    score: float
    angle: str | None = None  # direction label when a classifier ran


class OCR:
    """Compose the three predictors like PaddleOCR's TextSystem (``drop_score`` 0.5)."""

    def __init__(self, det: DetPredictor, rec: RecPredictor, cls: ClsPredictor | None = None,
                 drop_score: float = 0.5):
        self.det, self.rec, self.cls, self.drop_score = det, rec, cls, drop_score

    def __call__(self, image) -> list[Line]:
        img = load_image(image)
        boxes = sorted_boxes(self.det(img).boxes)
        crops = [get_rotate_crop_image(img, b) for b in boxes]
        angles = [None] * len(crops)
        if self.cls is not None and crops:
            results = self.cls(crops)
            crops = apply_cls_rotation(crops, results, self.cls.thresh)
            angles = [label for label, _ in results]
        texts = self.rec(crops) if crops else []
        return [
            Line(box.tolist(), text, float(score), angle)
            for box, (text, score), angle in zip(boxes, texts, angles)
            if score >= self.drop_score
        ]
