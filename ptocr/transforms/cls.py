"""Text-direction classifier pre-processing, as PaddleOCR 2.10's TextClassifier
(predict_cls.py): like the recogniser's, but always padded to the fixed width of
``image_shape`` (192), so batching does not change the values."""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from ptocr.transforms.rec import _check_crop, _check_shape_and_batch, aspect_order, resize_norm_img

__all__ = ["ClsPreprocess"]


class ClsPreprocess:
    """Crop (BGR uint8) -> float32 C x 48 x 192. ``batch_size`` is ``cls_batch_num``."""

    def __init__(self, image_shape: Sequence[int] = (3, 48, 192), batch_size: int = 6):
        self.image_shape, self.batch_size = _check_shape_and_batch(image_shape, batch_size)

    def __call__(self, img: np.ndarray) -> np.ndarray:
        _check_crop(img, self.image_shape[0], "classifier")
        return resize_norm_img(img, self.image_shape, self.image_shape[2])

    def batch(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        return np.stack([self(c) for c in crops])

    def batches(self, crops: Sequence[np.ndarray]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(indices, batch)`` in predict_cls's order (sorted by aspect ratio)."""
        order = aspect_order(crops)
        for start in range(0, len(crops), self.batch_size):
            idx = order[start : start + self.batch_size]
            yield idx, self.batch([crops[i] for i in idx])

    def __repr__(self) -> str:
        return f"ClsPreprocess(image_shape={self.image_shape}, batch_size={self.batch_size})"
