"""Detection pre-processing, as PaddleOCR 2.10's TextDetector (predict_det.py) builds it:
DetResizeForTest (type 0: limit_side_len / limit_type; type 3, PaddleX's fixed ``input_shape``)
-> NormalizeImage(hwc) -> ToCHWImage.

The image stays in BGR order as OpenCV decodes it, while mean/std are the ImageNet RGB
values: that mismatch is what the PP-OCR detectors were trained and exported with, so it is
kept.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from ptocr.errors import ImageError

__all__ = ["DetPreprocess", "det_resize", "det_resize_fixed", "normalize_affine", "normalize_hwc", "parse_scale"]

_LIMIT_TYPES = ("max", "min", "resize_long")
# How the image is normalized: PaddleOCR 2.x's ``(x * scale - mean) / std``, or PaddleX's
# (PaddleOCR 3.x) ``x * (scale / std) + (-mean / std)``; both float32, rounding differs.
NORMALIZATIONS = ("paddleocr2", "paddlex")


def parse_scale(scale) -> float:
    """Accept a number or PaddleOCR's yml spelling ``"1./255."`` (without eval)."""
    if isinstance(scale, str):
        parts = scale.split("/")
        if len(parts) > 2:
            raise ValueError(f"scale {scale!r}: expected a number or 'a/b'")
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise ValueError(f"scale {scale!r}: expected a number or 'a/b'") from None
        return values[0] / values[1] if len(values) == 2 else values[0]
    return float(scale)


def _resized_side(side: int, ratio: float) -> int:
    # PaddleOCR: int() truncation, then Python's round() (half to even) to a multiple of 32.
    return max(int(round(int(side * ratio) / 32) * 32), 32)


def det_resize(img: np.ndarray, limit_side_len: float = 960, limit_type: str = "max",
               max_side_limit: int | None = None):
    """DetResizeForTest type 0. Returns ``(resized, ratio_h, ratio_w)``.

    Images with ``h + w < 64`` are first zero-padded (bottom/right) to at least 32x32, as
    PaddleOCR does; the ratios then refer to the padded size while DB post-processing still
    scales to the unpadded source size (PaddleOCR's behaviour, kept for parity).

    ``max_side_limit`` (PaddleX / PaddleOCR 3.x: 4000): when the resized longer side exceeds
    it, both truncated sides are scaled down by ``max_side_limit / longer`` (truncated again)
    before rounding to multiples of 32. None: no cap (PaddleOCR 2.x).
    """
    img = _pad_small(img)
    h, w = img.shape[:2]
    if limit_type == "max":
        if max(h, w) > limit_side_len:
            ratio = float(limit_side_len) / (h if h > w else w)
        else:
            ratio = 1.0
    elif limit_type == "min":
        if min(h, w) < limit_side_len:
            ratio = float(limit_side_len) / (h if h < w else w)
        else:
            ratio = 1.0
    elif limit_type == "resize_long":
        ratio = float(limit_side_len) / max(h, w)
    else:
        raise ValueError(f"limit_type {limit_type!r}: expected one of {_LIMIT_TYPES}")

    if max_side_limit is not None and max(int(h * ratio), int(w * ratio)) > max_side_limit:
        resize_h, resize_w = int(h * ratio), int(w * ratio)
        cap = float(max_side_limit) / max(resize_h, resize_w)
        resize_h, resize_w = (max(int(round(int(v * cap) / 32) * 32), 32) for v in (resize_h, resize_w))
    else:
        resize_h = _resized_side(h, ratio)
        resize_w = _resized_side(w, ratio)
    out = cv2.resize(img, (resize_w, resize_h))
    return out, resize_h / float(h), resize_w / float(w)


def det_resize_fixed(img: np.ndarray, height: int, width: int):
    """DetResizeForTest type 3 (PaddleX's ``input_shape``): every image resized to exactly
    ``height`` x ``width``, its aspect ratio not kept. Returns ``(resized, ratio_h, ratio_w)``;
    small images are padded first, as in ``det_resize``."""
    img = _pad_small(img)
    h, w = img.shape[:2]
    if (h, w) == (height, width):
        return img, 1.0, 1.0
    return cv2.resize(img, (int(width), int(height))), float(height) / h, float(width) / w


def _pad_small(img: np.ndarray) -> np.ndarray:
    """An image with ``h + w < 64`` zero-padded (bottom / right) to at least 32 x 32, as
    PaddleOCR pads it before any resize; others as they are."""
    h, w = img.shape[:2]
    if h + w >= 64:
        return img
    pad = np.zeros((max(32, h), max(32, w), img.shape[2]), dtype=np.uint8)
    pad[:h, :w, :] = img
    return pad


def normalize_hwc(img: np.ndarray, mean, std, scale) -> np.ndarray:
    """NormalizeImage(order='hwc'): float32 ``(img * scale - mean) / std``, all in float32."""
    mean = np.asarray(mean, dtype=np.float32).reshape(1, 1, -1)
    std = np.asarray(std, dtype=np.float32).reshape(1, 1, -1)
    return (img.astype(np.float32) * np.float32(scale) - mean) / std


def normalize_affine(img: np.ndarray, mean, std, scale) -> np.ndarray:
    """PaddleX's NormalizeImage: float32 ``img * (scale / std) + (-mean / std)``, the factors
    computed in Python floats (PaddleOCR 3.x's detectors)."""
    alpha = np.array([scale / s for s in std], dtype=np.float32)
    beta = np.array([-m / s for m, s in zip(mean, std)], dtype=np.float32)
    out = img.astype(np.float32)
    out *= alpha
    out += beta
    return out


class DetPreprocess:
    """BGR uint8 HxWx3 -> (CHW float32, (src_h, src_w, ratio_h, ratio_w)).

    Defaults are PaddleOCR 2.10's inference defaults (``det_limit_side_len=960``,
    ``det_limit_type='max'``). ``input_shape`` (C, H, W): every image resized to exactly H x W
    instead (PaddleX's type 3; the limits are then unused). All arguments are plain JSON-friendly
    values.
    """

    def __init__(
        self,
        limit_side_len: float = 960,
        limit_type: str = "max",
        mean: Sequence[float] = (0.485, 0.456, 0.406),
        std: Sequence[float] = (0.229, 0.224, 0.225),
        scale: float | str = 1.0 / 255.0,
        max_side_limit: int | None = None,
        normalize: str = "paddleocr2",
        input_shape: Sequence[int] | None = None,
    ):
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"normalize {normalize!r}: expected one of {NORMALIZATIONS}")
        if max_side_limit is not None and int(max_side_limit) < 32:
            raise ValueError(f"max_side_limit must be at least 32, got {max_side_limit!r}")
        self.max_side_limit = None if max_side_limit is None else int(max_side_limit)
        self.normalize = normalize
        if limit_type not in _LIMIT_TYPES:
            raise ValueError(f"limit_type {limit_type!r}: expected one of {_LIMIT_TYPES}")
        if not limit_side_len or limit_side_len <= 0:
            raise ValueError(f"limit_side_len must be positive, got {limit_side_len!r}")
        self.limit_side_len = limit_side_len
        self.limit_type = limit_type
        if input_shape is not None and (len(input_shape) != 3 or min(int(v) for v in input_shape) <= 0):
            raise ValueError(f"input_shape must be 3 positive ints (C, H, W), got {input_shape!r}")
        self.input_shape = None if input_shape is None else tuple(int(v) for v in input_shape)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.scale = parse_scale(scale)
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError("mean and std need 3 values each")

    def __call__(self, img: np.ndarray):
        if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3:
            shape = getattr(img, "shape", None)
            raise ImageError(f"detector input must be a BGR HxWx3 array, got shape {shape}")
        if img.shape[0] == 0 or img.shape[1] == 0:
            raise ImageError(f"detector input has zero size {img.shape}")
        src_h, src_w = img.shape[:2]
        if self.input_shape is not None:
            resized, ratio_h, ratio_w = det_resize_fixed(img, *self.input_shape[1:])
        else:
            resized, ratio_h, ratio_w = det_resize(img, self.limit_side_len, self.limit_type, self.max_side_limit)
        norm = (normalize_affine if self.normalize == "paddlex" else normalize_hwc)(
            resized, self.mean, self.std, self.scale)
        chw = np.ascontiguousarray(norm.transpose(2, 0, 1))
        return chw, (src_h, src_w, ratio_h, ratio_w)

    def __repr__(self) -> str:
        return (
            f"DetPreprocess(limit_side_len={self.limit_side_len}, limit_type={self.limit_type!r}, "
            f"mean={self.mean}, std={self.std}, scale={self.scale}, max_side_limit={self.max_side_limit}, "
            f"normalize={self.normalize!r}, input_shape={self.input_shape})"
        )
