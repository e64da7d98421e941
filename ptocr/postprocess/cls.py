"""Text-direction classifier post-processing, as PaddleOCR 2.10's ``ClsPostProcess`` and the
rotation rule of predict_cls.py."""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

__all__ = ["ClsPostProcess", "apply_cls_rotation", "should_rotate"]


class ClsPostProcess:
    """N x K probabilities -> ``[(label, score)]`` (argmax class and its probability).

    ``labels=None`` uses the class index as the label, as PaddleOCR does without a label list.
    Scores are Python floats of the model's float32 values, so comparisons against
    thresholds give PaddleOCR's outcome.
    """

    def __init__(self, labels: Sequence[str] | None = ("0", "180")):
        self.labels = None if labels is None else [str(x) for x in labels]
        if self.labels is not None and not self.labels:
            raise ValueError("labels is empty: give one label per class, or None for class indices")

    def __call__(self, probs) -> list[tuple]:
        probs = np.asarray(probs)
        if probs.ndim != 2:
            raise ValueError(f"expected N x K class probabilities, got shape {probs.shape}")
        if self.labels is not None and probs.shape[1] != len(self.labels):
            raise ValueError(
                f"the classifier outputs {probs.shape[1]} classes "
                f"but {len(self.labels)} labels are configured"
            )
        idxs = probs.argmax(axis=1)
        labels = self.labels if self.labels is not None else list(range(probs.shape[1]))
        return [(labels[k], float(probs[i, k])) for i, k in enumerate(idxs)]


def should_rotate(label, score: float, thresh: float = 0.9) -> bool:
    """predict_cls's rule: ``"180" in label and score > cls_thresh`` (a substring test)."""
    return "180" in str(label) and score > thresh


def apply_cls_rotation(crops: Sequence[np.ndarray], results: Sequence[tuple], thresh: float = 0.9) -> list:
    """Return the crops with those classified upside down (see ``should_rotate``) turned by
    180 degrees; the input list is not modified."""
    if len(crops) != len(results):
        raise ValueError(f"{len(crops)} crops but {len(results)} classifier results")
    return [
        cv2.rotate(c, cv2.ROTATE_180) if should_rotate(r[0], r[1], thresh) else c
        for c, r in zip(crops, results)
    ]
