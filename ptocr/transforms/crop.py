"""Between detection and recognition: reading order of the boxes and the perspective crops,
as PaddleOCR 2.10's tools/infer/predict_system.py (``sorted_boxes``) and
tools/infer/utility.py (``get_rotate_crop_image``, ``get_minarea_rect_crop``) do it."""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

__all__ = ["sorted_boxes", "get_rotate_crop_image", "get_minarea_rect_crop", "order_mini_box", "quad_crop_size"]


def sorted_boxes(boxes, return_index: bool = False):
    """Top-to-bottom, then left-to-right, by each box's first point.

    A stable sort on (y, x) of point 0, then PaddleOCR's single insertion pass: a box moves
    left past its predecessor when their y differ by less than 10 px and it lies further left.
    (The pass only compares neighbours, so it is not a full same-line sort; kept as is.)
    Returns a list of boxes (and the index array into ``boxes`` if ``return_index``).
    """
    boxes = list(boxes)
    order = sorted(range(len(boxes)), key=lambda i: (boxes[i][0][1], boxes[i][0][0]))
    for i in range(len(order) - 1):
        for j in range(i, -1, -1):
            a, b = boxes[order[j]], boxes[order[j + 1]]
            if abs(b[0][1] - a[0][1]) < 10 and b[0][0] < a[0][0]:
                order[j], order[j + 1] = order[j + 1], order[j]
            else:
                break
    out = [boxes[i] for i in order]
    if return_index:
        return out, np.asarray(order, dtype=np.int64)
    return out


def quad_crop_size(pts: np.ndarray) -> tuple[int, int]:
    """(width, height) of the crop of the quad ``pts`` (float32 tl, tr, br, bl): the longer of
    each pair of opposite sides, truncated to int."""
    width = int(max(np.linalg.norm(pts[0] - pts[1]), np.linalg.norm(pts[2] - pts[3])))
    height = int(max(np.linalg.norm(pts[0] - pts[3]), np.linalg.norm(pts[1] - pts[2])))
    return width, height


def get_rotate_crop_image(img: np.ndarray, points, min_size: int = 1) -> np.ndarray:
    """Perspective-warp the quad ``points`` (tl, tr, br, bl) to an upright rectangle.

    Size = ``quad_crop_size``, at least ``min_size``; cubic interpolation with replicated
    borders; crops at least 1.5x taller than wide are turned 90 degrees counter-clockwise
    (``np.rot90``) so vertical text lines reach the recogniser lying down.
    """
    pts = np.asarray(points, dtype=np.float32)
    if pts.shape != (4, 2):
        raise ValueError(f"a crop needs 4 points (4x2), got shape {pts.shape}")
    # PaddleOCR would crash on a degenerate quad; a 1-px crop is harmless instead. PaddleX's seal
    # crop has no floor (min_size=0): OpenCV reads a zero size as the source's.
    width, height = (max(v, min_size) for v in quad_crop_size(pts))
    dst = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    m = cv2.getPerspectiveTransform(pts, dst)
    crop = cv2.warpPerspective(
        img, m, (width, height), borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC
    )
    if crop.shape[0] * 1.0 / crop.shape[1] >= 1.5:
        crop = np.ascontiguousarray(np.rot90(crop))
    return crop


def order_mini_box(rect_points: Sequence) -> np.ndarray:
    """Order ``cv2.boxPoints`` output as DB's ``get_mini_boxes`` does: sort by x (stable),
    then within the two left / two right points pick the upper one first.
    Returns float32 4x2 (tl, tr, br, bl for an upright rectangle)."""
    pts = sorted(list(rect_points), key=lambda p: p[0])
    i1, i4 = (0, 1) if pts[1][1] > pts[0][1] else (1, 0)
    i2, i3 = (2, 3) if pts[3][1] > pts[2][1] else (3, 2)
    return np.array([pts[i1], pts[i2], pts[i3], pts[i4]], dtype=np.float32)


def get_minarea_rect_crop(img: np.ndarray, points) -> np.ndarray:
    """Crop for polygon detections: the polygon's minimum-area rectangle, then
    ``get_rotate_crop_image``."""
    rect = cv2.minAreaRect(np.asarray(points).astype(np.int32))
    return get_rotate_crop_image(img, order_mini_box(cv2.boxPoints(rect)))
