"""Training targets as PaddleOCR's data pipeline makes them: DB maps from polygons, CTC labels.

Facts from PaddleOCR 2.10 ``ppocr/data/imaug/make_shrink_map.py``, ``make_border_map.py`` and
``label_ops.py`` (``CTCLabelEncode``); the outputs match those classes bit for bit (checked in
``tests/test_training_losses.py``), except where a docstring below says otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from shapely.geometry import Polygon

from ptocr.dictionary import Dictionary, read_dictionary
from ptocr.errors import PtocrError
from ptocr.postprocess.db import offset_polygon

__all__ = ["make_shrink_map", "make_border_map", "make_db_targets", "MakeShrinkMap", "MakeBorderMap",
           "CTCLabelEncode", "TextLabels", "as_dictionary"]


# ---------------------------------------------------------------------------------------------
# Polygons
# ---------------------------------------------------------------------------------------------
def _as_polygons(polygons) -> list[np.ndarray]:
    """Each polygon as a float32 P x 2 array (DetLabelEncode's dtype), P >= 3, finite."""
    if isinstance(polygons, np.ndarray) and polygons.ndim == 3:
        polygons = list(polygons)
    out = []
    for i, polygon in enumerate(polygons):
        try:
            arr = np.array(polygon, dtype=np.float32)
        except (TypeError, ValueError):
            raise PtocrError(f"polygon {i} is not an array of (x, y) points") from None
        if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] < 3:
            raise PtocrError(f"polygon {i} has shape {arr.shape}: expected P x 2 points, P >= 3")
        if not np.isfinite(arr).all():
            raise PtocrError(f"polygon {i} has non-finite coordinates")
        out.append(arr)
    return out


def _ignore_flags(ignore_tags, count: int) -> np.ndarray:
    if ignore_tags is None:
        return np.zeros(count, dtype=bool)
    flags = np.array(ignore_tags, dtype=bool).reshape(-1)
    if len(flags) != count:
        raise PtocrError(f"{len(flags)} ignore tags for {count} polygons")
    return flags


def _check_size(height: int, width: int) -> None:
    if int(height) < 1 or int(width) < 1:
        raise PtocrError(f"the target size must be positive, got {height} x {width}")


def _db_offset_distance(shape: Polygon, ratio: float) -> float:
    """DB's offset: area * (1 - r^2) / perimeter (the paper's D)."""
    return shape.area * (1 - np.power(ratio, 2)) / shape.length


def _reversed_shoelace_area(polygon: np.ndarray):
    """The signed area in PaddleOCR's sign convention (positive for what the usual shoelace calls
    negative), accumulated vertex by vertex in the polygon's float32 as PaddleOCR does, so the
    ``< 1`` test and the orientation flip below fall on the same side."""
    previous = np.roll(polygon, 1, axis=0)
    terms = polygon[:, 0] * previous[:, 1] - polygon[:, 1] * previous[:, 0]
    return np.cumsum(terms)[-1] / 2.0


# ---------------------------------------------------------------------------------------------
# Shrink map: the shrunk text kernels (1 inside), and the mask of what is not ignored
# ---------------------------------------------------------------------------------------------
def _validated(polygons: list[np.ndarray], ignore: np.ndarray, height: int, width: int):
    """MakeShrinkMap's checks: points clipped into the image, polygons under 1 pixel^2 ignored,
    rings flipped to one orientation (which fixes shapely's summation order)."""
    out = []
    for i, polygon in enumerate(polygons):
        clipped = np.empty_like(polygon)
        clipped[:, 0] = np.clip(polygon[:, 0], 0, width - 1)
        clipped[:, 1] = np.clip(polygon[:, 1], 0, height - 1)
        area = _reversed_shoelace_area(clipped)
        if abs(area) < 1:
            ignore[i] = True
        out.append(clipped[::-1] if area > 0 else clipped)
    return out


def _shrunk_kernel(polygon: np.ndarray, shrink_ratio: float) -> list:
    """The polygon shrunk by DB's distance at ``shrink_ratio``; when that splits it, retried at
    the next multiples of the ratio below 1 (PaddleOCR never reaches 1 itself). Empty: vanished."""
    shape = Polygon(polygon)
    paths = []
    for ratio in np.arange(shrink_ratio, 1, shrink_ratio):
        paths = offset_polygon(polygon.tolist(), -_db_offset_distance(shape, ratio))
        if len(paths) == 1:
            break
    return paths


def make_shrink_map(polygons, height: int, width: int, ignore_tags=None, shrink_ratio: float = 0.4,
                    min_text_size: float = 8) -> tuple[np.ndarray, np.ndarray]:
    """``(shrink_map, shrink_mask)``, float32 ``height x width``, as PaddleOCR's ``MakeShrinkMap``.

    ``polygons``: one P x 2 array of (x, y) points per text (in the resized/cropped image's
    pixels; an N x P x 2 array or a list of arrays with their own P). A polygon is left out of the
    map and masked (mask 0 over it) when its ``ignore_tags`` entry is true (``###`` texts), its
    clipped area is under 1 pixel^2, its box is thinner than ``min_text_size`` or its shrunk
    kernel vanishes. PaddleOCR also writes those decisions back into its ``ignore_tags`` and the
    clipping into its ``polys``; the inputs here are left as they are.
    """
    _check_size(height, width)
    polygons = _as_polygons(polygons)
    ignore = _ignore_flags(ignore_tags, len(polygons)).copy()
    shrink_map = np.zeros((height, width), dtype=np.float32)
    shrink_mask = np.ones((height, width), dtype=np.float32)
    for i, polygon in enumerate(_validated(polygons, ignore, height, width)):
        extent = polygon.max(axis=0) - polygon.min(axis=0)
        kernel = [] if ignore[i] or extent.min() < min_text_size else _shrunk_kernel(polygon, shrink_ratio)
        if not kernel:
            cv2.fillPoly(shrink_mask, [polygon.astype(np.int32)], 0)
            continue
        for path in kernel:
            cv2.fillPoly(shrink_map, [np.array(path).reshape(-1, 2).astype(np.int32)], 1)
    return shrink_map, shrink_mask


# ---------------------------------------------------------------------------------------------
# Border (threshold) map: 1 on the text's outline, falling to 0 at DB's distance from it
# ---------------------------------------------------------------------------------------------
def _distance_to_edge(xs, ys, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """DB's point-to-edge distance: the distance to the edge's line where the point sees the edge
    under an obtuse angle (inside the circle on the edge as diameter), else to the nearer
    endpoint. Evaluated with the law of cosines in PaddleOCR's operation order (the edge's squared
    length in float32, the rest in float64): its NaNs at repeated points carry over too."""
    edge = start - end
    edge_sq = edge[0] * edge[0] + edge[1] * edge[1]
    to_start_sq = np.square(xs - start[0]) + np.square(ys - start[1])
    to_end_sq = np.square(xs - end[0]) + np.square(ys - end[1])
    neg_cos = (edge_sq - to_start_sq - to_end_sq) / (2 * np.sqrt(to_start_sq * to_end_sq))
    sin_sq = np.nan_to_num(1 - np.square(neg_cos))
    to_line = np.sqrt(to_start_sq * to_end_sq * sin_sq / edge_sq)
    return np.where(neg_cos < 0, np.sqrt(np.fmin(to_start_sq, to_end_sq)), to_line)


def _draw_border(polygon: np.ndarray, canvas: np.ndarray, mask: np.ndarray, shrink_ratio: float) -> None:
    shape = Polygon(polygon)
    if shape.area <= 0:
        return
    distance = _db_offset_distance(shape, shrink_ratio)
    grown = np.array(offset_polygon(polygon.tolist(), distance)[0])
    cv2.fillPoly(mask, [grown.astype(np.int32)], 1.0)
    x0, y0 = grown.min(axis=0)
    x1, y1 = grown.max(axis=0)
    local = (polygon - np.array([x0, y0])).astype(np.float32)  # the grown box's own pixels
    ys, xs = np.mgrid[0:y1 - y0 + 1, 0:x1 - x0 + 1].astype(np.float64)
    nearest = None
    with np.errstate(divide="ignore", invalid="ignore"):  # NaN / inf at vertices, as in PaddleOCR
        for start, end in zip(local, np.roll(local, -1, axis=0)):
            scaled = np.clip(_distance_to_edge(xs, ys, start, end) / distance, 0, 1).astype(np.float32)
            nearest = scaled if nearest is None else np.minimum(nearest, scaled)
    # Paste 1 - distance where it exceeds what other texts drew, inside the image only. (A grown
    # box wholly outside the image draws nothing; PaddleOCR's slicing misbehaves there.)
    cx0, cy0 = max(x0, 0), max(y0, 0)
    cx1, cy1 = min(x1, canvas.shape[1] - 1), min(y1, canvas.shape[0] - 1)
    if cx0 > cx1 or cy0 > cy1:
        return
    window = (slice(cy0, cy1 + 1), slice(cx0, cx1 + 1))
    inside = nearest[cy0 - y0:cy1 - y0 + 1, cx0 - x0:cx1 - x0 + 1]
    canvas[window] = np.fmax(1 - inside, canvas[window])


def make_border_map(polygons, height: int, width: int, ignore_tags=None, shrink_ratio: float = 0.4,
                    thresh_min: float = 0.3, thresh_max: float = 0.7) -> tuple[np.ndarray, np.ndarray]:
    """``(threshold_map, threshold_mask)``, float32 ``height x width``, as PaddleOCR's
    ``MakeBorderMap``: inside each text grown by DB's distance (the mask), ``thresh_max`` on its
    outline falling linearly to ``thresh_min`` at that distance, ``thresh_min`` elsewhere.
    Ignored polygons draw nothing; the others are taken as given (no clipping, no size checks:
    PaddleOCR's configs run this before MakeShrinkMap, which does those)."""
    _check_size(height, width)
    polygons = _as_polygons(polygons)
    ignore = _ignore_flags(ignore_tags, len(polygons))
    canvas = np.zeros((height, width), dtype=np.float32)
    mask = np.zeros((height, width), dtype=np.float32)
    for polygon, ignored in zip(polygons, ignore):
        if not ignored:
            _draw_border(polygon, canvas, mask, shrink_ratio)
    return (canvas * (thresh_max - thresh_min) + thresh_min).astype(np.float32), mask


def make_db_targets(polygons, height: int, width: int, ignore_tags=None, shrink_ratio: float = 0.4,
                    min_text_size: float = 8, thresh_min: float = 0.3, thresh_max: float = 0.7
                    ) -> dict[str, np.ndarray]:
    """The four DB targets :class:`~ptocr.training.DBLoss` reads, with PP-OCR's defaults:
    ``threshold_map``, ``threshold_mask``, ``shrink_map``, ``shrink_mask`` (float32 H x W)."""
    threshold_map, threshold_mask = make_border_map(polygons, height, width, ignore_tags, shrink_ratio,
                                                    thresh_min, thresh_max)
    shrink_map, shrink_mask = make_shrink_map(polygons, height, width, ignore_tags, shrink_ratio,
                                              min_text_size)
    return {"threshold_map": threshold_map, "threshold_mask": threshold_mask,
            "shrink_map": shrink_map, "shrink_mask": shrink_mask}


class MakeShrinkMap:
    """PaddleOCR's transform on its data dict (``image``, ``polys``, ``ignore_tags``): adds
    ``shrink_map`` and ``shrink_mask`` sized as the image. See :func:`make_shrink_map`."""

    def __init__(self, min_text_size: float = 8, shrink_ratio: float = 0.4):
        self.min_text_size, self.shrink_ratio = min_text_size, shrink_ratio

    def __call__(self, data: dict) -> dict:
        height, width = data["image"].shape[:2]
        data["shrink_map"], data["shrink_mask"] = make_shrink_map(
            data["polys"], height, width, data.get("ignore_tags"), self.shrink_ratio, self.min_text_size)
        return data


class MakeBorderMap:
    """PaddleOCR's transform on its data dict: adds ``threshold_map`` and ``threshold_mask``.
    See :func:`make_border_map`."""

    def __init__(self, shrink_ratio: float = 0.4, thresh_min: float = 0.3, thresh_max: float = 0.7):
        self.shrink_ratio, self.thresh_min, self.thresh_max = shrink_ratio, thresh_min, thresh_max

    def __call__(self, data: dict) -> dict:
        height, width = data["image"].shape[:2]
        data["threshold_map"], data["threshold_mask"] = make_border_map(
            data["polys"], height, width, data.get("ignore_tags"), self.shrink_ratio, self.thresh_min,
            self.thresh_max)
        return data


# ---------------------------------------------------------------------------------------------
# CTC labels
# ---------------------------------------------------------------------------------------------
def as_dictionary(dictionary, use_space_char: bool) -> Dictionary:
    """A label encoder's ``dictionary`` argument as a ``Dictionary``: one as it is, a file read
    (``use_space_char`` appending " "), or a list of characters."""
    if isinstance(dictionary, Dictionary):
        return dictionary
    if isinstance(dictionary, (str, Path)):
        return read_dictionary(dictionary, use_space_char)
    if isinstance(dictionary, Sequence):
        return Dictionary(tuple(str(c) for c in dictionary), use_space_char, "<list>")
    raise PtocrError("the dictionary must be a ptocr Dictionary, a file or a list of characters, "
                     f"not {type(dictionary).__name__}")


class TextLabels:
    """What PaddleOCR's recognition label encoders share (``BaseRecLabelEncode``): which texts
    make a sample. PaddleOCR's dataset drops a sample whose text is empty, longer than
    ``max_text_length`` (counted before unknown characters are dropped), has no known character,
    or whose known characters and the label's own tokens (``tokens``: NRTR's and SAR's start and
    end) do not fit in ``max_text_length``; here such a text raises ``PtocrError`` in
    :meth:`encode`, and :meth:`accepts` filters. Subclasses set ``index`` (character -> class)
    and ``max_text_length``."""

    tokens = 0  # places the label's own start / end tokens take
    index: dict[str, int]
    max_text_length: int

    def _problem(self, text: str) -> str | None:
        if len(text) == 0:
            return "the text is empty"
        if len(text) > self.max_text_length:
            return f"the text has {len(text)} characters, over max_text_length {self.max_text_length}"
        known = sum(c in self.index for c in text)
        if known == 0:
            return "none of the text's characters is in the dictionary"
        if known + self.tokens > self.max_text_length:
            return (f"it keeps {known} known characters; with {type(self).__name__}'s start and end tokens "
                    f"the label takes {known + self.tokens}, over max_text_length {self.max_text_length}")
        return None

    def accepts(self, text: str) -> bool:
        """Whether PaddleOCR would keep a sample with this text."""
        return self._problem(text) is None

    def encode(self, text: str) -> list[int]:
        """The text's class indices (no start / end tokens), unknown characters dropped."""
        problem = self._problem(text)
        if problem:
            raise PtocrError(f"label {text!r} cannot be encoded: {problem}")
        return [self.index[c] for c in text if c in self.index]


class CTCLabelEncode(TextLabels):
    """Text -> CTC class indices, as PaddleOCR's ``CTCLabelEncode``.

    ``dictionary``: a ``ptocr.dictionary.Dictionary`` (``net.dictionary``), a dictionary file or
    a list of characters (with ``use_space_char``, True as in PP-OCR's configs, " " appended).
    Class 0 is the blank, then the characters in file order (a repeated character takes its
    last index). Characters outside the dictionary are dropped. ``__call__(text)`` gives
    ``{"label": int64 [max_text_length] padded with 0, "length": int64}``.

    PaddleOCR's dataset drops a sample whose text is empty, longer than ``max_text_length``
    (counted before unknown characters are dropped) or has no known character, and draws another;
    here such a text raises ``PtocrError``: filter a dataset with :meth:`accepts`.
    """

    def __init__(self, dictionary, max_text_length: int = 25, use_space_char: bool = True):
        if int(max_text_length) < 1:
            raise PtocrError(f"max_text_length must be >= 1, got {max_text_length}")
        self.dictionary = as_dictionary(dictionary, use_space_char)
        self.max_text_length = int(max_text_length)
        self.index = {c: i for i, c in enumerate(self.dictionary.classes) if i > 0}

    @property
    def num_classes(self) -> int:
        return self.dictionary.num_classes

    def __call__(self, text: str) -> dict[str, np.ndarray]:
        indices = self.encode(text)
        label = np.zeros(self.max_text_length, dtype=np.int64)
        label[:len(indices)] = indices
        return {"label": label, "length": np.array(len(indices), dtype=np.int64)}
