"""Recognition pre-processing, as PaddleOCR 2.10's TextRecognizer (predict_rec.py) does it
for CTC recognisers (CRNN, SVTR_LCNet): resize to the model height keeping the aspect ratio,
scale to [-1, 1], pad right with zeros to the batch width.

Batching matters for the numbers: the padded width of every crop in a batch is
``int(imgH * max_wh_ratio)`` over that batch, and batches are formed after sorting crops by
aspect ratio, so ``RecPreprocess.batches`` reproduces predict_rec's order exactly.
"""

from __future__ import annotations

import math
from typing import Iterator, Sequence

import cv2
import numpy as np

from ptocr.errors import ImageError

__all__ = ["RecPreprocess", "aspect_order", "pad_batch", "resize_norm_img", "resize_norm_img_own_width",
           "resize_norm_img_static"]


def check_shape_and_batch(image_shape, batch_size) -> tuple[tuple[int, int, int], int]:
    """Validate (C, H, W) and the batch size shared by the rec and cls pre-processors."""
    if len(image_shape) != 3 or min(int(v) for v in image_shape) <= 0:
        raise ValueError(f"image_shape must be 3 positive ints (C, H, W), got {image_shape!r}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    return tuple(int(v) for v in image_shape), int(batch_size)


def check_crop(img: np.ndarray, channels: int, what: str) -> None:
    if not isinstance(img, np.ndarray) or img.ndim != 3:
        raise ImageError(f"{what} input must be an HxWxC array, got {getattr(img, 'shape', type(img))}")
    if img.shape[2] != channels:
        raise ImageError(f"{what} input has {img.shape[2]} channels, the model expects {channels}")
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise ImageError(f"{what} input has zero size {img.shape}")


def resize_norm_img(img: np.ndarray, image_shape: Sequence[int], img_w: int) -> np.ndarray:
    """Resize to height ``imgH`` (width ``min(img_w, ceil(imgH * w / h))``), map to
    [-1, 1] and zero-pad on the right to ``img_w``. Returns float32 ``C x imgH x img_w``."""
    img_c, img_h = int(image_shape[0]), int(image_shape[1])
    h, w = img.shape[:2]
    ratio = w / float(h)
    resized_w = img_w if math.ceil(img_h * ratio) > img_w else int(math.ceil(img_h * ratio))
    resized = cv2.resize(img, (resized_w, img_h)).astype(np.float32)
    if resized.ndim == 2:  # single-channel models (image_shape[0] == 1)
        resized = resized[:, :, np.newaxis]
    resized = resized.transpose((2, 0, 1)) / 255
    resized -= 0.5
    resized /= 0.5
    out = np.zeros((img_c, img_h, img_w), dtype=np.float32)
    out[:, :, 0:resized_w] = resized
    return out


def resize_norm_img_own_width(img: np.ndarray, image_shape: Sequence[int], max_width: int = 3200) -> np.ndarray:
    """PaddleX's (PaddleOCR 3.x) recognizer input: each crop gets its own width
    ``int(imgH * max(imgW / imgH, w / h))``, so the resized text is ``floor`` rather than
    ``ceil`` of ``imgH * w / h`` wide; beyond ``max_width`` the crop is squeezed to it.
    Returns float32 ``C x imgH x width`` (batches are zero-padded by ``pad_batch``)."""
    img_h, img_w = int(image_shape[1]), int(image_shape[2])
    ratio = max(img_w / img_h, img.shape[1] * 1.0 / img.shape[0])
    width = int(img_h * ratio)
    if width > max_width:
        resized = cv2.resize(img, (max_width, img_h)).astype(np.float32)
        if resized.ndim == 2:
            resized = resized[:, :, np.newaxis]
        return ((resized.transpose((2, 0, 1)) / 255 - 0.5) / 0.5).astype(np.float32)
    return resize_norm_img(img, image_shape, width)


def resize_norm_img_static(img: np.ndarray, input_shape: Sequence[int]) -> np.ndarray:
    """PaddleX's recognizer input with a fixed ``input_shape`` (C, H, W): the crop resized to
    exactly W x H, aspect ratio not kept, no padding, mapped to [-1, 1] in float64 (numpy's
    uint8 / 255, as PaddleX computes it) and only then rounded to float32."""
    height, width = int(input_shape[1]), int(input_shape[2])
    resized = cv2.resize(img, (width, height))
    if resized.ndim == 2:  # single-channel crops
        resized = resized[:, :, np.newaxis]
    scaled = resized.transpose((2, 0, 1)) / 255
    scaled -= 0.5
    scaled /= 0.5
    return scaled.astype(np.float32)


def pad_batch(items: Sequence[np.ndarray]) -> np.ndarray:
    """C x H x W_i arrays -> float32 N x C x H x max(W_i), zero-padded on the right."""
    width = max(x.shape[2] for x in items)
    out = np.zeros((len(items), *items[0].shape[:2], width), dtype=np.float32)
    for i, x in enumerate(items):
        out[i, :, :, : x.shape[2]] = x
    return out


def aspect_order(crops: Sequence[np.ndarray]) -> np.ndarray:
    """Indices sorting crops by width/height, as predict_rec / predict_cls sort them.

    Uses ``np.argsort``'s default (non-stable) sort on purpose: that is PaddleOCR's call, and
    for tied ratios the order decides which crops share a batch.
    """
    ratios = np.array([c.shape[1] / float(c.shape[0]) for c in crops])
    return np.argsort(ratios)


class RecPreprocess:
    """predict_rec's ``resize_norm_img`` with batching.

    ``image_shape`` is (C, H, W): (3, 48, 320) for PP-OCRv3/v4, (3, 32, 320) for the v2.0
    CRNN models. ``batch_size`` is PaddleOCR's ``rec_batch_num``.

    ``max_width`` caps the padded width as PaddleX's recognizer does (3200): a crop wider
    than that at the model height is squeezed into it. PaddleOCR 2.10 has no cap, but an
    uncapped 1x5000 strip becomes a 48 x 240000 input and the SVTR neck's attention is
    quadratic in width; crops up to 66:1 (48 px high) are unaffected. ``None`` removes it.
    """

    def __init__(self, image_shape: Sequence[int] = (3, 48, 320), batch_size: int = 6,
                 max_width: int | None = 3200):
        self.image_shape, self.batch_size = check_shape_and_batch(image_shape, batch_size)
        if max_width is not None and int(max_width) < self.image_shape[2]:
            raise ValueError(f"max_width must be at least the model width {self.image_shape[2]}, got {max_width!r}")
        self.max_width = None if max_width is None else int(max_width)

    @property
    def base_wh_ratio(self) -> float:
        _, h, w = self.image_shape
        return w / h

    def target_width(self, max_wh_ratio: float) -> int:
        width = int(self.image_shape[1] * max_wh_ratio)
        return width if self.max_width is None else min(width, self.max_width)

    def __call__(self, img: np.ndarray, max_wh_ratio: float | None = None) -> np.ndarray:
        """One crop -> float32 C x H x W'. ``max_wh_ratio`` defaults to the crop's own
        ratio (at least ``W / H``), i.e. what a batch of one gets."""
        check_crop(img, self.image_shape[0], "recognizer")
        if max_wh_ratio is None:
            max_wh_ratio = max(self.base_wh_ratio, img.shape[1] * 1.0 / img.shape[0])
        return resize_norm_img(img, self.image_shape, self.target_width(max_wh_ratio))

    def batch(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """Crops already grouped as one batch -> float32 N x C x H x W'."""
        for c in crops:
            check_crop(c, self.image_shape[0], "recognizer")
        max_wh_ratio = self.base_wh_ratio
        for c in crops:
            max_wh_ratio = max(max_wh_ratio, c.shape[1] * 1.0 / c.shape[0])
        img_w = self.target_width(max_wh_ratio)
        return np.stack([resize_norm_img(c, self.image_shape, img_w) for c in crops])

    def batches(self, crops: Sequence[np.ndarray]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(indices, batch)`` in predict_rec's order; ``indices[k]`` is the position
        in ``crops`` of batch row ``k``, so results are put back with ``out[indices] = ...``."""
        order = aspect_order(crops)
        for start in range(0, len(crops), self.batch_size):
            idx = order[start : start + self.batch_size]
            yield idx, self.batch([crops[i] for i in idx])

    def __repr__(self) -> str:
        return (f"RecPreprocess(image_shape={self.image_shape}, batch_size={self.batch_size}, "
                f"max_width={self.max_width})")
