"""DB (Differentiable Binarization) post-processing: probability map -> text boxes in the
original image's coordinates, as PaddleOCR 2.10's ``ppocr/postprocess/db_postprocess.py``
plus predict_det.py's ``filter_tag_det_res``.

Per contour of ``prob > thresh``: minimum-area rectangle (skip if its short side < 3), mean
probability inside it (skip if < box_thresh), grow it by ``area * unclip_ratio / perimeter``
with pyclipper (round joins), minimum-area rectangle again (skip if short side < 5), scale to
the source size.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
import pyclipper
from shapely.geometry import Polygon

from ptocr.transforms.crop import order_mini_box

__all__ = [
    "DBPostProcess",
    "filter_tag_det_res",
    "filter_tag_det_res_only_clip",
    "order_points_clockwise",
    "unclip",
]


def get_mini_boxes(contour: np.ndarray) -> tuple[np.ndarray, float]:
    """Minimum-area rectangle as float32 4x2 in DB's point order, and its short side."""
    rect = cv2.minAreaRect(contour)
    return order_mini_box(cv2.boxPoints(rect)), min(rect[1])


def offset_polygon(points, delta: float) -> list:
    """The polygon grown (delta > 0) or shrunk by ``delta`` pixels with round joins (pyclipper,
    JT_ROUND): pyclipper's integer paths, possibly several or none when shrinking. DB's unclip
    and its training targets' shrink and border both offset this way."""
    offset = pyclipper.PyclipperOffset()
    offset.AddPath(points, pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    return offset.Execute(delta)


def unclip(box: np.ndarray, unclip_ratio: float) -> list:
    """Offset polygon ``box`` outwards by ``area * unclip_ratio / perimeter``. Returns
    pyclipper's list of integer polygons (normally exactly one)."""
    poly = Polygon(box)
    return offset_polygon(box, poly.area * unclip_ratio / poly.length)


def unclip_cv2(box: np.ndarray, unclip_ratio: float) -> list:
    """PaddleX's (PaddleOCR 3.x) unclip: ``unclip`` with the distance from OpenCV's area and
    perimeter instead of shapely's. Returns pyclipper's list of integer polygons."""
    return offset_polygon(box, cv2.contourArea(box) * unclip_ratio / cv2.arcLength(box, True))


def unclip_paddlex(box: np.ndarray, unclip_ratio: float) -> np.ndarray | None:
    """PaddleX's unclip for quads: of several offset polygons, all points when they have the
    same length (numpy stacks them), else the first; None when nothing is left. Returns int
    N x 1 x 2."""
    polys = unclip_cv2(box, unclip_ratio)
    if not polys:
        return None
    if len({len(q) for q in polys}) > 1:
        polys = polys[:1]
    return np.array(polys).reshape(-1, 1, 2)


def _scale_paddlex(values: np.ndarray, size: int, dest: np.float64) -> np.ndarray:
    # PaddleX: max(0, min(round(v * (dest / size)), dest)), float64, round half to even.
    return np.clip(np.round(values.astype(np.float64) * (dest / size)), 0, dest)


def box_score_fast(pred: np.ndarray, box: np.ndarray) -> float:
    """Mean of ``pred`` over the polygon ``box`` rasterised (integer-truncated vertices)
    inside its clipped bounding box."""
    h, w = pred.shape[:2]
    box = box.copy()
    xmin = np.clip(np.floor(box[:, 0].min()).astype(np.int32), 0, w - 1)
    xmax = np.clip(np.ceil(box[:, 0].max()).astype(np.int32), 0, w - 1)
    ymin = np.clip(np.floor(box[:, 1].min()).astype(np.int32), 0, h - 1)
    ymax = np.clip(np.ceil(box[:, 1].max()).astype(np.int32), 0, h - 1)
    mask = np.zeros((ymax - ymin + 1, xmax - xmin + 1), dtype=np.uint8)
    box[:, 0] = box[:, 0] - xmin
    box[:, 1] = box[:, 1] - ymin
    cv2.fillPoly(mask, box.reshape(1, -1, 2).astype(np.int32), 1)
    return cv2.mean(pred[ymin : ymax + 1, xmin : xmax + 1], mask)[0]


def box_score_slow(pred: np.ndarray, contour: np.ndarray) -> float:
    """Mean of ``pred`` over the contour itself (score_mode='slow')."""
    h, w = pred.shape[:2]
    contour = np.reshape(contour.copy(), (-1, 2))
    xmin = np.clip(np.min(contour[:, 0]), 0, w - 1)
    xmax = np.clip(np.max(contour[:, 0]), 0, w - 1)
    ymin = np.clip(np.min(contour[:, 1]), 0, h - 1)
    ymax = np.clip(np.max(contour[:, 1]), 0, h - 1)
    mask = np.zeros((ymax - ymin + 1, xmax - xmin + 1), dtype=np.uint8)
    contour[:, 0] = contour[:, 0] - xmin
    contour[:, 1] = contour[:, 1] - ymin
    cv2.fillPoly(mask, contour.reshape(1, -1, 2).astype(np.int32), 1)
    return cv2.mean(pred[ymin : ymax + 1, xmin : xmax + 1], mask)[0]


def _scale_to(values: np.ndarray, size: int, dest: np.float64) -> np.ndarray:
    # PaddleOCR: np.clip(np.round(v / size * dest), 0, dest) with dest a float64 scalar; the
    # explicit float64 cast gives numpy 2's result under numpy 1 too.
    return np.clip(np.round((values / size).astype(np.float64) * dest), 0, dest)


def _find_contours(bitmap: np.ndarray):
    outs = cv2.findContours((bitmap * 255).astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    return outs[1] if len(outs) == 3 else outs[0]  # OpenCV 3 returns (img, contours, hier)


class DBPostProcess:
    """Probability maps -> per image ``(boxes, scores)`` in source-image pixels.

    Defaults are PaddleOCR 2.10's inference defaults (``det_db_thresh=0.3``,
    ``det_db_box_thresh=0.6``, ``det_db_unclip_ratio=1.5``), not the class defaults of
    ``DBPostProcess`` in ppocr (0.7 / 2.0) which only its training configs use.

    ``rules='paddlex'`` follows PaddleX's DBPostProcess (PaddleOCR 3.x) instead: ``unclip_cv2``
    (quads: ``unclip_paddlex``) and ``v * (dest / size)`` scaling (see ``_scale_paddlex``).

    ``box_type='quad'``: boxes are int32 ``K x 4 x 2``. ``box_type='poly'``: boxes are a
    list of int32 ``Ki x 2`` polygons (approxPolyDP, epsilon 0.2 % of the perimeter; always
    scored with the fast score, as in PaddleOCR). ``scores`` is float64 ``K``.
    """

    min_size = 3

    def __init__(
        self,
        thresh: float = 0.3,
        box_thresh: float = 0.6,
        max_candidates: int = 1000,
        unclip_ratio: float = 1.5,
        use_dilation: bool = False,
        score_mode: str = "fast",
        box_type: str = "quad",
        rules: str = "paddleocr2",
    ):
        if rules not in ("paddleocr2", "paddlex"):
            raise ValueError(f"rules must be 'paddleocr2' or 'paddlex', got {rules!r}")
        self.rules = rules
        if score_mode not in ("fast", "slow"):
            raise ValueError(f"score_mode must be 'fast' or 'slow', got {score_mode!r}")
        if box_type not in ("quad", "poly"):
            raise ValueError(f"box_type must be 'quad' or 'poly', got {box_type!r}")
        self.thresh = float(thresh)
        self.box_thresh = float(box_thresh)
        self.max_candidates = int(max_candidates)
        self.unclip_ratio = float(unclip_ratio)
        self.use_dilation = bool(use_dilation)
        self.score_mode = score_mode
        self.box_type = box_type
        self.dilation_kernel = np.ones((2, 2), dtype=np.uint8) if use_dilation else None

    def __call__(self, pred, shape_infos) -> list[tuple]:
        """``pred``: N x 1 x H x W or N x H x W (or H x W) probabilities at network resolution.
        ``shape_infos``: per image ``(src_h, src_w, ratio_h, ratio_w)`` from DetPreprocess
        (N x 4, or one 4-tuple when N == 1)."""
        pred = np.asarray(pred)
        if pred.ndim == 4:
            if pred.shape[1] != 1:
                raise ValueError(f"expected N x 1 x H x W probability maps, got {pred.shape}")
            pred = pred[:, 0]
        elif pred.ndim == 2:
            pred = pred[np.newaxis]
        elif pred.ndim != 3:
            raise ValueError(f"expected N x 1 x H x W, N x H x W or H x W maps, got {pred.shape}")
        infos = np.asarray(shape_infos, dtype=np.float64).reshape(-1, 4)
        if len(infos) != len(pred):
            raise ValueError(f"{len(pred)} probability maps but {len(infos)} shape infos")

        segmentation = pred > self.thresh
        results = []
        for i in range(pred.shape[0]):
            src_h, src_w = infos[i, 0], infos[i, 1]
            mask = segmentation[i]
            if self.dilation_kernel is not None:
                mask = cv2.dilate(mask.astype(np.uint8), self.dilation_kernel)
            if self.box_type == "poly":
                results.append(self.polygons_from_bitmap(pred[i], mask, src_w, src_h))
            else:
                results.append(self.boxes_from_bitmap(pred[i], mask, src_w, src_h))
        return results

    def boxes_from_bitmap(self, pred, bitmap, dest_width, dest_height):
        height, width = bitmap.shape
        dest_width, dest_height = np.float64(dest_width), np.float64(dest_height)
        boxes, scores = [], []
        for contour in _find_contours(bitmap)[: self.max_candidates]:
            points, sside = get_mini_boxes(contour)
            if sside < self.min_size:
                continue
            if self.score_mode == "fast":
                score = box_score_fast(pred, points)
            else:
                score = box_score_slow(pred, contour)
            if self.box_thresh > score:
                continue
            if self.rules == "paddlex":
                expanded = unclip_paddlex(points, self.unclip_ratio)
                if expanded is None:
                    continue
            else:
                expanded = unclip(points, self.unclip_ratio)
                if len(expanded) != 1:  # split or vanished: PaddleOCR skips the former
                    continue
                expanded = np.array(expanded).reshape(-1, 1, 2)
            box, sside = get_mini_boxes(expanded)
            if sside < self.min_size + 2:
                continue
            scale = _scale_paddlex if self.rules == "paddlex" else _scale_to
            box[:, 0] = scale(box[:, 0], width, dest_width)
            box[:, 1] = scale(box[:, 1], height, dest_height)
            boxes.append(box.astype(np.int32))
            scores.append(score)
        boxes_arr = np.array(boxes, dtype=np.int32).reshape(-1, 4, 2)
        return boxes_arr, np.array(scores, dtype=np.float64)

    def polygons_from_bitmap(self, pred, bitmap, dest_width, dest_height):
        height, width = bitmap.shape
        dest_width, dest_height = np.float64(dest_width), np.float64(dest_height)
        boxes, scores = [], []
        for contour in _find_contours(bitmap)[: self.max_candidates]:
            epsilon = 0.002 * cv2.arcLength(contour, True)
            points = cv2.approxPolyDP(contour, epsilon, True).reshape(-1, 2)
            if points.shape[0] < 4:
                continue
            score = box_score_fast(pred, points)
            if self.box_thresh > score:
                continue
            # both skip a polygon the offset splits or erases (PaddleX: len(box) > 1 or empty)
            expanded = (unclip_cv2 if self.rules == "paddlex" else unclip)(points, self.unclip_ratio)
            if len(expanded) != 1:
                continue
            box = np.array(expanded).reshape(-1, 2)
            _, sside = get_mini_boxes(box.reshape(-1, 1, 2))
            if sside < self.min_size + 2:
                continue
            scale = _scale_paddlex if self.rules == "paddlex" else _scale_to
            box[:, 0] = scale(box[:, 0], width, dest_width)
            box[:, 1] = scale(box[:, 1], height, dest_height)
            boxes.append(box.astype(np.int32))
            scores.append(score)
        return boxes, np.array(scores, dtype=np.float64)

    def __repr__(self) -> str:
        return (
            f"DBPostProcess(thresh={self.thresh}, box_thresh={self.box_thresh}, "
            f"max_candidates={self.max_candidates}, unclip_ratio={self.unclip_ratio}, "
            f"use_dilation={self.use_dilation}, score_mode={self.score_mode!r}, "
            f"box_type={self.box_type!r}, rules={self.rules!r})"
        )


def order_points_clockwise(pts: np.ndarray) -> np.ndarray:
    """tl = min(x+y), br = max(x+y); of the other two, tr = min(y-x), bl = max(y-x)."""
    rect = np.zeros((4, 2), dtype=np.float32)
    s = pts.sum(axis=1)
    rect[0] = pts[np.argmin(s)]
    rect[2] = pts[np.argmax(s)]
    rest = np.delete(pts, (np.argmin(s), np.argmax(s)), axis=0)
    diff = np.diff(np.array(rest), axis=1)
    rect[1] = rest[np.argmin(diff)]
    rect[3] = rest[np.argmax(diff)]
    return rect


def _clip_points(points: np.ndarray, img_h: int, img_w: int) -> np.ndarray:
    # PaddleOCR: int(min(max(v, 0), size - 1)) per coordinate (truncation toward zero).
    points[:, 0] = np.trunc(np.minimum(np.maximum(points[:, 0], 0), img_w - 1))
    points[:, 1] = np.trunc(np.minimum(np.maximum(points[:, 1], 0), img_h - 1))
    return points


def filter_tag_det_res(boxes, image_shape: Sequence[int], return_index: bool = False):
    """predict_det's quad filter: order points clockwise, clip to the image, drop boxes whose
    top edge or left edge is <= 3 px long. Returns float32 K x 4 x 2 (and kept indices)."""
    img_h, img_w = int(image_shape[0]), int(image_shape[1])
    kept, index = [], []
    for i, box in enumerate(boxes):
        box = _clip_points(order_points_clockwise(np.asarray(box)), img_h, img_w)
        rect_width = int(np.linalg.norm(box[0] - box[1]))
        rect_height = int(np.linalg.norm(box[0] - box[3]))
        if rect_width <= 3 or rect_height <= 3:
            continue
        kept.append(box)
        index.append(i)
    out = np.array(kept, dtype=np.float32).reshape(-1, 4, 2)
    if return_index:
        return out, np.asarray(index, dtype=np.int64)
    return out


def filter_tag_det_res_only_clip(polys, image_shape: Sequence[int]) -> np.ndarray:
    """predict_det's polygon filter: clip to the image, then pad every polygon to the same
    number of points by repeating its last point. Returns int K x P x 2."""
    img_h, img_w = int(image_shape[0]), int(image_shape[1])
    clipped = [_clip_points(np.array(p, dtype=np.int64), img_h, img_w) for p in polys]
    if not clipped:
        return np.zeros((0, 0, 2), dtype=np.int64)
    n = max(len(p) for p in clipped)
    padded = [np.vstack([p, np.repeat(p[-1:], n - len(p), axis=0)]) for p in clipped]
    return np.array(padded)
