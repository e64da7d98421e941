"""Crops of polygon detections as PaddleX's OCR pipeline (PaddleOCR 3.x) makes them for
``text_type="seal"``: curved text (seals, stamps) straightened into a horizontal strip.

What ``CropByPolys(det_box_type="poly")`` does with one polygon (points truncated to int32):

* fewer than 4 points, a self-intersecting polygon, or one filling >= 70 % of its minimum-area
  rectangle (IoU): the rectangle's crop (the quad crop of ``ptocr.transforms.crop``);
* else the polygon is simplified (runs of short edges merged into one point each), split into
  its two long sides (top and bottom), each resampled to 16 evenly spaced points, and the 15
  quads between them are each warped by a homography and stitched side by side (AutoRectifier's
  "homography" mode, seal_det_warp.py); vertical text is rectified lying down, then turned.

Every number matches PaddleX bit for bit (tests/test_poly_crop.py; the reference comes from
PaddleX's own code, tools/poly_crop_reference.py): the same dtypes and the same numpy / OpenCV
calls wherever a rounding could differ, including numpy scalar powers (``pow``, not ``x * x``).
"""

from __future__ import annotations

import cv2
import numpy as np
from shapely.geometry import Polygon

from ptocr.transforms.crop import get_rotate_crop_image, order_mini_box, quad_crop_size

__all__ = ["poly_crop", "sort_poly_boxes", "POLY_CROP_BRANCHES"]

# Which way poly_crop went (``return_branch=True``): the rectangle's crop for the first four,
# the rectifier for the rest.
POLY_CROP_BRANCHES = (
    "few_points",            # < 4 points
    "invalid_polygon",       # self-intersecting or degenerate (shapely's is_valid)
    "near_rectangle",        # IoU with the min-area rectangle >= NEAR_RECT_IOU
    "few_groups",            # < 4 points left after merging short edges
    "curved_horizontal",     # rectified strip
    "curved_vertical",       # rectified strip of vertical text, turned 90 degrees clockwise
    "curved_bbox_fallback",  # the sampled points span < 1 px in x: PaddleX's rectifier fails
                             # (division by zero, caught) and it crops their bounding box
    "curved_quad",           # both sides collapsed to one point each: one homography
)
# Polygons this close to their min-area rectangle are cropped as the rectangle: rectifying an
# (almost) straight box would only add sampling noise.
NEAR_RECT_IOU = 0.7
# An edge shorter than this fraction of the mean edge joins the group of the point before it.
SHORT_EDGE = 0.9
# Quads (4 points): the long sides are the text's sides unless the other pair is this much longer.
ORIENTATION_RATIO = 2.0
# Each side is resampled with this many steps (so 16 points) and cut into 15 quads.
SIDE_STEPS = 15
# AutoRectifier rectifies curves of at least this many points (an even count); fewer: one quad.
MIN_CURVE_POINTS = 10
# Text whose sampled points are this much taller than wide is rectified as vertical text.
VERTICAL_RATIO = 1.5


def _as_points(poly) -> np.ndarray:
    pts = np.asarray(poly)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) == 0:
        raise ValueError(f"a polygon must be N x 2 points (N >= 1), got shape {pts.shape}")
    if not (np.issubdtype(pts.dtype, np.integer) or np.issubdtype(pts.dtype, np.floating)):
        raise ValueError(f"polygon points must be numbers, got dtype {pts.dtype}")
    return pts.astype(np.int32)  # PaddleX truncates the points first


def _check_image(img) -> np.ndarray:
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8:
        raise ValueError("the image must be a uint8 numpy array")
    if img.ndim != 2 and not (img.ndim == 3 and img.shape[2] == 3):
        raise ValueError(f"the image must be H x W (gray) or H x W x 3, got shape {img.shape}")
    if img.size == 0:
        raise ValueError(f"the image is empty (shape {img.shape})")
    return img


def _rect_crop(img: np.ndarray, pts: np.ndarray):
    """The min-area rectangle of ``pts`` (int32) in DB's point order, and its crop."""
    box = order_mini_box(cv2.boxPoints(cv2.minAreaRect(pts)))
    # PaddleX's quad crop has no 1-px floor: a flat rectangle yields an image-sized warp of a
    # singular transform (OpenCV takes the zero size as the source's)
    return get_rotate_crop_image(img, box, min_size=0), box


def _iou(pts: np.ndarray, box: np.ndarray) -> float:
    a, b = Polygon(pts), Polygon(box)
    return a.intersection(b).area / (a.union(b).area + 1e-10)


def _edge_lengths(line: np.ndarray) -> np.ndarray:
    """Lengths of the open polyline's edges (integer points: exact squares, so any sum order)."""
    d = np.diff(line, axis=0).astype(np.float64)
    return np.sqrt(d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1])


def _merge_short_edges(pts: np.ndarray) -> np.ndarray:
    """PaddleX's ``sample_points_on_bbox``: a point joins the group of the point before it when
    the edge between them is shorter than SHORT_EDGE x the mean edge (closing edge excluded from
    the mean); if the closing edge is short too, the last group joins the first. Each group
    becomes its mean point, truncated to int32."""
    lengths = _edge_lengths(pts)
    mean_length = np.cumsum(lengths)[-1] / (len(lengths) + 1e-8)
    starts = np.concatenate([[True], lengths >= SHORT_EDGE * mean_length])
    group = np.cumsum(starts) - 1
    closing = np.linalg.norm(pts[0] - pts[-1])
    if closing < SHORT_EDGE * mean_length:
        group[group == group[-1]] = 0  # >= 2 groups here: some edge is >= the mean
    count = np.bincount(group)
    keep = count > 0
    sums = np.stack([np.bincount(group, weights=pts[:, k]) for k in (0, 1)], axis=1)  # exact
    return (sums[keep] / count[keep, None]).astype(np.int32)


def _unit_vectors(vec: np.ndarray) -> np.ndarray:
    return vec / (np.linalg.norm(vec, axis=-1) + 1e-8).reshape(-1, 1)


def _angles(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.arccos(np.clip(np.sum(u * v, axis=-1), -1.0, 1.0))


def _head_tail_quad(pts: np.ndarray):
    """A quad's short edges (the text's ends): the pair with the smaller summed |slope| is the
    horizontal pair; the vertical pair are the ends unless it is ORIENTATION_RATIO x longer."""
    d = pts[[1, 3, 2, 0]] - pts[[0, 2, 1, 3]]  # edges 0-1, 2-3, 1-2, 3-0
    slope = np.abs(d[:, 1] / (d[:, 0] + 1e-8))
    if slope[0] + slope[1] < slope[2] + slope[3]:
        horizontal, vertical = ([0, 1], [2, 3]), ([3, 0], [1, 2])
    else:
        horizontal, vertical = ([3, 0], [1, 2]), ([0, 1], [2, 3])

    def length(pairs):
        return np.linalg.norm(pts[pairs[0][0]] - pts[pairs[0][1]]) + np.linalg.norm(pts[pairs[1][0]] - pts[pairs[1][1]])

    return horizontal if length(vertical) > length(horizontal) * ORIENTATION_RATIO else vertical


def _head_tail_poly(pts: np.ndarray):
    """The two edges (start indices) that end the text, for > 4 points. Each edge scores high
    when it turns sharply from both neighbours (0.5), its neighbours point apart (0.15) and it
    lies far from the centre (0.35); with an even count the edges opposite each other at
    n/2 - 1 and n - 1 get a bonus (0.1). A pair scores the first edge's score plus 0.3 x the
    second's, weighted by a bell over how far round the polygon the second lies, so the ends
    come out roughly opposite."""
    n = len(pts)
    ahead = np.roll(pts, -1, axis=0)
    unit = _unit_vectors(ahead - pts)  # edge i runs from point i to point i + 1
    before, after = np.roll(unit, 1, axis=0), np.roll(unit, -1, axis=0)
    turn = (_angles(unit, before) + _angles(unit, after)) / np.pi
    spread = _angles(before, after) / np.pi
    center = np.mean(pts, axis=0)
    reach = np.maximum(np.linalg.norm(ahead - center, axis=-1), np.linalg.norm(pts - center, axis=-1))
    score = 0.5 * turn + 0.15 * spread
    score += 0.35 * (reach / np.max(reach))
    bonus = np.zeros(n)
    if n % 2 == 0:
        bonus[n // 2 - 1] += 1
        bonus[-1] += 1
    score += 0.1 * bonus
    # The second edge lies 2 .. n-2 edges after the first; bell centred half way.
    x = np.arange(n - 3) / float(n - 4)
    bell = 1.0 / (np.sqrt(2.0 * np.pi) * 0.5) * np.exp(-np.power((x - 0.5) / 0.5, 2.0) / 2)
    bell = bell / np.max(bell)
    second = np.concatenate([score, score])[np.arange(n)[:, None] + 2 + np.arange(n - 3)]
    pair_score = score[:, None] + second * bell * 0.3
    head, offset = np.unravel_index(pair_score.argmax(), pair_score.shape)
    tail = (head + offset + 2) % n
    head, tail = int(head), int(tail)
    if (head + 1) % n > (tail + 1) % n:
        head, tail = tail, head
    return [head, (head + 1) % n], [tail, (tail + 1) % n]


def _sides(pts: np.ndarray):
    """The polygon's two long sides between its end edges (each >= 2 points), in polygon order."""
    n = len(pts)
    head, tail = _head_tail_poly(pts) if n > 4 else _head_tail_quad(pts)
    twice = np.concatenate([pts, pts])
    return twice[head[1]:tail[1]], twice[tail[1]:head[1] + n]


def _resample(line: np.ndarray, steps: int) -> np.ndarray:
    """PaddleX's ``sample_points_on_bbox_bp``: the first point, steps - 1 points at multiples of
    length / (steps + 1e-8) along the polyline, the last point (float64)."""
    lengths = _edge_lengths(line)
    along = np.cumsum(np.concatenate([[0.0], lengths]))
    step = along[-1] / (float(steps) + 1e-8)
    at = np.arange(1, steps) * step
    edge = np.searchsorted(along[1:], at, side="right")
    inside = edge < len(lengths)
    stop = len(at) if inside.all() else int(np.argmin(inside))  # PaddleX stops at the line's end
    at, edge = at[:stop], edge[:stop]
    ratio = (at - along[edge]) / lengths[edge]
    between = line[edge] + (line[edge + 1] - line[edge]) * ratio[:, None]
    return np.concatenate([line[:1].astype(np.float64), between, line[-1:].astype(np.float64)])


def _scalar_hypot(d: np.ndarray) -> np.ndarray:
    # PaddleX squares numpy scalars: ``x ** 2`` calls pow(), which rounds differently from
    # x * x (or np.square) for a few inputs in 10^3, so it is done the same way here.
    return np.array([np.sqrt(dx ** 2 + dy ** 2) for dx, dy in d], dtype=d.dtype)


def _flat_layout(poly: np.ndarray) -> np.ndarray:
    """Where the points of a curved text line land in its straightened strip (float64 M x 2,
    centred): top points at cumulative mean widths of the two sides' segments, bottom points
    below them at the rounded mean distance between paired points. ``poly``'s dtype (float64, or
    float32 for vertical text) is the dtype PaddleX computes the widths and height in."""
    m = len(poly)
    steps = _scalar_hypot(poly[1:] - poly[:-1])
    widths = (steps + steps[::-1])[: len(steps) // 2] / 2  # segment i and its opposite
    height = np.around(np.mean(_scalar_hypot(poly[: m // 2] - poly[::-1][: m // 2])))
    xs = np.concatenate([np.zeros(1, widths.dtype), np.cumsum(widths[: m // 2 - 1])]).astype(np.float64)
    height = np.float64(height)
    flat = np.concatenate([np.stack([xs, np.zeros_like(xs)], 1), np.stack([xs[::-1], np.full_like(xs, height)], 1)])
    flat[:, 0] -= (np.max(flat[:, 0]) - np.min(flat[:, 0])) / 2
    flat[:, 1] -= (np.max(flat[:, 1]) - np.min(flat[:, 1])) / 2
    return flat


def _warp_quad(img, quad, width, height):
    """One homography of ``quad`` onto a width x height rectangle (float sizes; the image is
    their truncation), zero border, bilinear: AutoRectifier's ``Homography``."""
    dst = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    return cv2.warpPerspective(img, cv2.getPerspectiveTransform(quad, dst), (int(width), int(height)),
                               borderMode=cv2.BORDER_CONSTANT, flags=cv2.INTER_LINEAR)


def _rectify(img: np.ndarray, pts: np.ndarray):
    """AutoRectifier.run(mode="homography") for one curve of M points (top side then bottom
    side, float32 values): returns (crop, branch)."""
    m = len(pts)
    if m < MIN_CURVE_POINTS or m % 2:
        quad = pts.astype(np.float32)
        return _warp_quad(img, quad, *quad_crop_size(quad)), "curved_quad"  # m is 4 here
    span_x = int(np.max(pts[:, 0])) - int(np.min(pts[:, 0]))
    span_y = int(np.max(pts[:, 1])) - int(np.min(pts[:, 1]))
    if span_x == 0:
        box = pts.astype(np.float32)
        h, w = img.shape[:2]
        x0, x1 = (int(np.clip(int(f(box[:, 0])), 0, w - 1)) for f in (np.min, np.max))
        y0, y1 = (int(np.clip(int(f(box[:, 1])), 0, h - 1)) for f in (np.min, np.max))
        return img[y0:y1, x0:x1].copy(), "curved_bbox_fallback"
    vertical = span_y / span_x > VERTICAL_RATIO
    if vertical:  # laid down: start at the second point, (x, y) -> (y, h - 1 - x), in float32
        pts = np.roll(pts, -1, axis=0)
        lying = np.empty(pts.shape, np.float32)
        lying[:, 0] = pts[:, 1]
        lying[:, 1] = img.shape[0] - pts[:, 0] - 1
        flat = _flat_layout(lying)
        flat = np.stack([0 - flat[:, 1], flat[:, 0]], 1).astype(np.float32)  # back upright
        size_axis = 1
    else:
        flat = _flat_layout(pts)
        size_axis = 0
    pieces = []
    for i in range(m // 2 - 1):  # the quad between points i, i+1 of the top and their partners
        rows = [i, i + 1, m - 2 - i, m - 1 - i]
        quad, target = pts[rows].astype(np.float32), flat[rows].astype(np.float32)
        width = np.abs(target[1, size_axis] - target[0, size_axis])
        height = np.abs(target[3, 1 - size_axis] - target[0, 1 - size_axis])
        pieces.append(_warp_quad(img, quad, width, height))
    strip = np.zeros((max(p.shape[0] for p in pieces), sum(p.shape[1] for p in pieces), 3), np.uint8)
    x = 0
    for piece in pieces:
        strip[: piece.shape[0], x: x + piece.shape[1]] = piece
        x += piece.shape[1]
    if vertical:
        return np.ascontiguousarray(np.rot90(strip, 3)), "curved_vertical"
    return strip, "curved_horizontal"


def poly_crop(img: np.ndarray, poly, *, return_branch: bool = False):
    """One polygon's crop, as PaddleX's ``CropByPolys(det_box_type="poly")`` makes it.

    Args:
        img: uint8 image, H x W x 3 (BGR) or H x W (gray).
        poly: N x 2 points (any numeric dtype; truncated to int32 as PaddleX does).
        return_branch: also return which of POLY_CROP_BRANCHES was taken.

    Returns:
        The crop (uint8; 3 channels for a rectified gray image, as in PaddleX), and the branch
        if asked. A crop may be empty (the bbox fallback): the pipeline drops those (``OCR3.crop``).
    """
    img = _check_image(img)
    pts = _as_points(poly)
    rect_crop, box = _rect_crop(img, pts)
    if len(pts) < 4:
        branch, crop = "few_points", rect_crop
    elif not Polygon(pts).is_valid:
        branch, crop = "invalid_polygon", rect_crop
    elif _iou(pts, box) >= NEAR_RECT_IOU:
        # (PaddleX also resamples the polygon here and discards the result.)
        branch, crop = "near_rectangle", rect_crop
    else:
        merged = _merge_short_edges(pts)
        if len(merged) < 4:
            branch, crop = "few_groups", rect_crop
        else:
            top, bottom = (_resample(side, SIDE_STEPS) for side in _sides(merged))
            if (np.mean(top, axis=0) - np.mean(bottom, axis=0))[1] > 0:
                top, bottom = bottom, top  # the upper side first
            curve = np.concatenate([top, bottom]).astype(np.float32).astype(np.float64)
            if img.ndim == 2:
                img = np.stack([img] * 3, axis=-1)
            crop, branch = _rectify(img, curve)
    return (crop, branch) if return_branch else crop


def sort_poly_boxes(polys, top_dtype=None) -> list:
    """Polygons top to bottom by their smallest y, as PaddleX's ``SortPolyBoxes``: numpy's
    default ``argsort`` (not stable: ties come out in whatever order it leaves them, which on
    some CPUs depends on its SIMD sort and on the dtype; the same call on the same dtype, so the
    same order as PaddleX there). ``top_dtype``: the dtype of PaddleX's boxes (default: the
    polygons' own)."""
    polys = list(polys)
    if not polys:
        return []
    tops = []
    for poly in polys:
        pts = np.asarray(poly)
        if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) == 0:
            raise ValueError(f"a polygon must be N x 2 points (N >= 1), got shape {pts.shape}")
        tops.append(pts[:, 1].min())
    return [polys[i] for i in np.argsort(np.array(tops, dtype=top_dtype))]
