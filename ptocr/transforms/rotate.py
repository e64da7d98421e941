"""Rotating a whole image or a text-line crop as PaddleX (PaddleOCR 3.x) does it: an affine
warp about the centre with bicubic interpolation on a canvas of the rotated size, not an
exact pixel permutation (a 180 degree turn moves the content by one pixel and leaves a black
first row and column). Kept, because the text recognizer then reads those pixels."""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["rotate_image"]


def rotate_image(img: np.ndarray, angle: float) -> np.ndarray:
    """Turn ``img`` counter-clockwise by ``angle`` degrees (0 <= angle < 360)."""
    if angle < 0 or angle >= 360:
        raise ValueError(f"angle must be in [0, 360), got {angle}")
    if angle < 1e-7:
        return img
    h, w = img.shape[:2]
    mat = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    cos, sin = np.abs(mat[0, 0]), np.abs(mat[0, 1])
    new_w, new_h = int(h * sin + w * cos), int(h * cos + w * sin)
    mat[0, 2] += (new_w - w) / 2
    mat[1, 2] += (new_h - h) / 2
    return cv2.warpAffine(img, mat, (new_w, new_h), flags=cv2.INTER_CUBIC)
