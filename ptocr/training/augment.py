"""PP-OCR's random training augmentations, as transforms on PaddleOCR's data dict.

Facts from PaddleOCR 2.10 ``ppocr/data/imaug/random_crop_data.py`` (``EastRandomCropData``),
``iaa_augment.py`` (``IaaAugment``), ``rec_img_aug.py`` (``RecAug``, ``BaseDataAugmentation``,
``RecConAug``), ``randaugment.py`` (``RandAugment``), ``text_image_aug/`` (TIA: distort,
stretch, perspective by moving least squares) and ``copy_paste.py`` (``CopyPaste``,
``rotate_bbox``; its crop is ``tools/infer/utility.py``'s ``get_rotate_crop_image``). Which
random generator each draws from is in its docstring: where it is the same generator, drawn in
the same order, as PaddleOCR's class, seeding python's ``random`` and numpy's global RNG as
PaddleOCR's run was seeded gives the same augmented sample (checked against PaddleOCR's classes
in ``tests/test_training_data.py``, ``tests/test_training_copy_paste.py`` and
``tests/test_training_cls_augment.py``).
"""

from __future__ import annotations

import random

import cv2
import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from ptocr.errors import PtocrError
from ptocr.transforms.crop import get_rotate_crop_image

__all__ = ["EastRandomCropData", "IaaAugment", "CopyPaste", "BaseDataAugmentation", "RecAug", "RecConAug",
           "RandAugment", "tia_distort", "tia_stretch", "tia_perspective"]


# ---------------------------------------------------------------------------------------------
# EastRandomCropData: a random crop that cuts through no text, scaled into a fixed size
# ---------------------------------------------------------------------------------------------
def _outside(poly, x, y, w, h) -> bool:
    """Whether the polygon lies wholly on one side of the rectangle (edges count as inside)."""
    poly = np.asarray(poly)
    return bool(poly[:, 0].max() < x or poly[:, 0].min() > x + w
                or poly[:, 1].max() < y or poly[:, 1].min() > y + h)


def _free_runs(free: np.ndarray) -> list[np.ndarray]:
    """The runs of consecutive free coordinates, except the last run: PaddleOCR's
    ``split_regions`` closes a run only at the next gap. Kept, since the number of runs decides
    which random draws follow."""
    breaks = np.nonzero(np.diff(free) != 1)[0] + 1
    return np.split(free, breaks)[:-1] if len(breaks) else []


def _random_span(free: np.ndarray, runs: list[np.ndarray], size: int) -> tuple[int, int]:
    """Two free coordinates, ordered: from two randomly chosen runs when there are several, else
    two of all free coordinates (clipped into the image)."""
    if len(runs) > 1:
        picks = [int(np.random.choice(runs[i], size=1)[0]) for i in np.random.choice(len(runs), 2)]
        return min(picks), max(picks)
    pair = np.random.choice(free, size=2)
    return int(np.clip(pair.min(), 0, size - 1)), int(np.clip(pair.max(), 0, size - 1))


def _text_free(polys, length: int, axis: int) -> np.ndarray:
    """Coordinates along ``axis`` (0: x, 1: y) that no polygon's rounded extent covers (its max
    excluded)."""
    covered = np.zeros(length, dtype=np.int32)
    for poly in polys:
        rounded = np.round(poly, decimals=0).astype(np.int32)[:, axis]
        covered[rounded.min():rounded.max()] = 1
    return np.nonzero(covered == 0)[0]


def random_crop_area(image_shape, polys, min_crop_side_ratio: float, max_tries: int):
    """``(x, y, w, h)``: a crop whose edges cross no polygon, at least ``min_crop_side_ratio`` of
    each side, touching at least one polygon; the whole image when no try succeeds."""
    h, w = image_shape[:2]
    free_x, free_y = _text_free(polys, w, 0), _text_free(polys, h, 1)
    if len(free_x) == 0 or len(free_y) == 0:
        return 0, 0, w, h
    runs_x, runs_y = _free_runs(free_x), _free_runs(free_y)
    for _ in range(max_tries):
        x0, x1 = _random_span(free_x, runs_x, w)
        y0, y1 = _random_span(free_y, runs_y, h)
        if x1 - x0 < min_crop_side_ratio * w or y1 - y0 < min_crop_side_ratio * h:
            continue
        if any(not _outside(poly, x0, y0, x1 - x0, y1 - y0) for poly in polys):
            return x0, y0, x1 - x0, y1 - y0
    return 0, 0, w, h


class EastRandomCropData:
    """Crop a random text-respecting region (chosen among the non-ignored polygons) and scale it
    into ``size`` (width, height), padded with zeros at the bottom/right when ``keep_ratio``.
    Polygons are moved with it (float64, as PaddleOCR leaves them);
    those wholly outside the scaled crop are dropped with their ``ignore_tags`` and ``texts``.

    Random numbers: numpy's global RNG (``np.random.choice``), as PaddleOCR's. (PaddleOCR 2.10's
    own class raises a TypeError under numpy >= 2.4 when the free columns or rows form several
    runs; this one draws what it drew under older numpy.)
    """

    def __init__(self, size=(640, 640), max_tries: int = 10, min_crop_side_ratio: float = 0.1,
                 keep_ratio: bool = True):
        self.size = (int(size[0]), int(size[1]))
        self.max_tries, self.min_crop_side_ratio, self.keep_ratio = int(max_tries), min_crop_side_ratio, keep_ratio

    def _fit(self, crop: np.ndarray, w: int, h: int) -> np.ndarray:
        if not self.keep_ratio:
            return cv2.resize(crop, self.size)
        canvas = np.zeros((self.size[1], self.size[0], crop.shape[2]), crop.dtype)
        canvas[:h, :w] = cv2.resize(crop, (w, h))
        return canvas

    def __call__(self, data: dict) -> dict:
        image, polys, tags = data["image"], data["polys"], data["ignore_tags"]
        texts = data.get("texts", [None] * len(polys))
        cared = [poly for poly, tag in zip(polys, tags) if not tag]
        x, y, cw, ch = random_crop_area(image.shape, cared, self.min_crop_side_ratio, self.max_tries)
        scale = min(self.size[0] / cw, self.size[1] / ch)
        w, h = int(cw * scale), int(ch * scale)
        data["image"] = self._fit(image[y:y + ch, x:x + cw], w, h)
        kept = [(((poly - (x, y)) * scale).tolist(), tag, text) for poly, tag, text in zip(polys, tags, texts)]
        kept = [item for item in kept if not _outside(item[0], 0, 0, w, h)]
        data["polys"] = np.array([item[0] for item in kept])
        data["ignore_tags"] = [item[1] for item in kept]
        if "texts" in data:
            data["texts"] = [item[2] for item in kept]
        return data


# ---------------------------------------------------------------------------------------------
# IaaAugment: flip, rotate, rescale with the polygons moved along (cv2; no albumentations)
# ---------------------------------------------------------------------------------------------
def _flip(image: np.ndarray, polys: np.ndarray):
    width = image.shape[1]
    flipped = polys.copy()
    flipped[..., 0] = width - polys[..., 0]  # albumentations' keypoint flip: x -> width - x
    return cv2.flip(image, 1), flipped


def _rotate(image: np.ndarray, polys: np.ndarray, degrees: float):
    """Rotation about the image centre, same size, zeros outside (albumentations' Affine with
    only ``rotate``: linear interpolation, constant border)."""
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), degrees, 1.0)
    rotated = cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                             borderValue=0)
    points = polys.reshape(-1, 2).astype(np.float64) @ matrix[:, :2].T + matrix[:, 2]
    return rotated, points.reshape(polys.shape)


def _rescale(image: np.ndarray, polys: np.ndarray, scale: float):
    """PaddleOCR's ImgaugLikeResize: sides truncated to ``int(side * scale)``, points times scale."""
    h, w = image.shape[:2]
    resized = cv2.resize(image, (int(w * scale), int(h * scale)), interpolation=cv2.INTER_LINEAR)
    return resized, polys * scale


class IaaAugment:
    """PP-OCR's detection augmentation: horizontal flip with probability ``flip_p``, a rotation
    by a uniform angle in ``rotate`` degrees, a rescale by a uniform factor in ``scale``; each
    moves ``polys`` with the pixels. ``augmenter_args`` in PaddleOCR's config form
    (``[{"type": "Fliplr", "args": {"p": 0.5}}, {"type": "Affine", "args": {"rotate": [-10, 10]}},
    {"type": "Resize", "args": {"size": [0.5, 3]}}]``) is also taken; other augmenters are refused.

    Random numbers: numpy's global RNG (flip, angle, scale in that order). PaddleOCR 2.10 runs
    these through albumentations, whose own draws differ, so the same seed does not give
    PaddleOCR's sample here: the operations and their distributions are the same.
    """

    def __init__(self, augmenter_args=None, flip_p: float = 0.5, rotate=(-10, 10), scale=(0.5, 3)):
        self.flip_p, self.rotate, self.scale = flip_p, rotate, scale
        if augmenter_args is not None:
            self.flip_p, self.rotate, self.scale = 0.0, None, None
            for spec in augmenter_args:
                self._configure(spec)

    def _configure(self, spec) -> None:
        kind, args = (spec["type"], spec.get("args") or {}) if isinstance(spec, dict) else (spec[0], spec[1])
        if kind == "Fliplr":
            self.flip_p = float(args.get("p", 1.0))
        elif kind == "Affine":
            rotate = args.get("rotate", 0)
            self.rotate = tuple(rotate) if isinstance(rotate, (list, tuple)) else (rotate, rotate)
        elif kind == "Resize":
            self.scale = tuple(args.get("size", (1.0, 1.0)))
        else:
            raise PtocrError(f"IaaAugment: augmenter {kind!r} is not supported (Fliplr, Affine rotate, Resize)")

    def __call__(self, data: dict) -> dict:
        image, polys = data["image"], np.asarray(data["polys"], dtype=np.float64)
        if self.flip_p and np.random.random() < self.flip_p:
            image, polys = _flip(image, polys)
        if self.rotate is not None:
            image, polys = _rotate(image, polys, np.random.uniform(self.rotate[0], self.rotate[1]))
        if self.scale is not None:
            image, polys = _rescale(image, polys, np.random.uniform(self.scale[0], self.scale[1]))
        data["image"], data["polys"] = image, polys
        return data


# ---------------------------------------------------------------------------------------------
# CopyPaste: another sample's text boxes cut out, turned and pasted where they cover no text
# ---------------------------------------------------------------------------------------------
def _turned_corners(width: int, height: int, angle: int) -> np.ndarray:
    """The corners (float32 4 x 2) of a ``width x height`` crop turned counter-clockwise by
    ``angle`` degrees on a canvas of the turned rectangle's exact (fractional) extent. PIL sizes
    the canvas the pixels land on by the ceil / floor of that extent, so these corners can sit a
    fraction of a pixel off the pasted pixels: PaddleOCR's quirk (``rotate_bbox``), kept."""
    rad = np.deg2rad(angle)
    canvas_w = abs(np.sin(rad) * height) + abs(np.cos(rad) * width)
    canvas_h = abs(np.cos(rad) * height) + abs(np.sin(rad) * width)
    matrix = cv2.getRotationMatrix2D((canvas_w * 0.5, canvas_h * 0.5), angle, 1)
    shift = np.dot(matrix, np.array([(canvas_w - width) * 0.5, (canvas_h - height) * 0.5, 0]))
    matrix[0, 2] += shift[0]
    matrix[1, 2] += shift[1]
    # One np.dot per corner with an int64 point, as PaddleOCR's, so the float64 sums round alike.
    corners = [[0, 0], [width, 0], [width, height], [0, height]]
    return np.array([np.dot(matrix, np.array([x, y, 1])) for x, y in corners], dtype=np.float32)


def _box_crop(image: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """The recognizer's crop of a 4-point box. One under a pixel wide or high, which ptocr's
    crop makes 1 pixel, is warped here as PaddleOCR's is: cv2 takes the empty size for the
    source image's, so the whole image's size is pasted (PaddleOCR's quirk, kept)."""
    quad = np.asarray(quad, dtype=np.float32)
    width = int(max(np.linalg.norm(quad[0] - quad[1]), np.linalg.norm(quad[2] - quad[3])))
    height = int(max(np.linalg.norm(quad[0] - quad[3]), np.linalg.norm(quad[1] - quad[2])))
    if width and height:
        return get_rotate_crop_image(image, quad)
    target = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    crop = cv2.warpPerspective(image, cv2.getPerspectiveTransform(quad, target), (width, height),
                               borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC)
    return np.rot90(crop) if crop.shape[0] / crop.shape[1] >= 1.5 else crop


def _turned(crop: np.ndarray, angle: int) -> np.ndarray:
    """``crop`` turned counter-clockwise by ``angle`` degrees on PIL's expanded canvas, as 4
    channels whose last marks the crop's pixels. PIL's nearest-neighbour rotate, as PaddleOCR's
    (the channel order is not PIL's RGB here: the pixels are only moved)."""
    from PIL import Image

    return np.asarray(Image.fromarray(crop).convert("RGBA").rotate(angle, expand=1))


class CopyPaste:
    """PP-OCRv4 / v5 detection's copy-paste (their configs put it right after DetLabelEncode,
    with these defaults). Text boxes of one other sample, ``data["ext_data"][0]`` (decoded and
    label-encoded, 4-point polygons; the Dataset draws it, ``ext_data_num`` says how many), are
    cut out as the recognizer's crops (tall ones turned 90 degrees), turned by a random whole
    angle and pasted onto this image: with ``limit_paste`` where the turned box's bounding
    rectangle covers no polygon of this sample (ignored ones and boxes pasted before included;
    touching counts as covering; 50 tries, else that box is dropped), without it anywhere it
    fits. Tried: ``objects_paste_ratio`` of the other sample's polygons (ignored ones counted),
    at least 1 and at most 30, chosen among its cared ones. Pasted boxes join ``polys`` (padded
    with their last point to this sample's point count), ``texts`` and ``ignore_tags``; then
    every polygon is clipped into the image, and ``polys`` is float64, as PaddleOCR leaves it.

    Random numbers: python's ``random`` for the choice of boxes (one shuffle) and the paste
    positions (x then y per try), numpy's global RNG for the angles (one per tried box, drawn
    before the fit check), as PaddleOCR's. (PaddleOCR's class also builds a Resize IaaAugment
    that it never calls: left out.)
    """

    ext_data_num = 1

    def __init__(self, objects_paste_ratio: float = 0.2, limit_paste: bool = True):
        self.objects_paste_ratio, self.limit_paste = objects_paste_ratio, limit_paste

    def _place(self, polys, corners: np.ndarray, room_x: int, room_y: int):
        """``(x, y)`` to paste at, or None."""
        if not self.limit_paste:
            return random.randint(0, room_x), random.randint(0, room_y)
        left, top, right, bottom = corners[:, 0].min(), corners[:, 1].min(), corners[:, 0].max(), corners[:, 1].max()
        for _ in range(50):
            x, y = random.randint(0, room_x), random.randint(0, room_y)
            # float32 edges, the width re-added to the left edge in _outside: PaddleOCR's rounding
            x0, x1, y0, y1 = left + x, right + x, top + y, bottom + y
            if all(_outside(poly, x0, y0, x1 - x0, y1 - y0) for poly in polys):
                return x, y
        return None

    def _paste(self, image: np.ndarray, crop: np.ndarray, polys):
        """Paste ``crop``, turned, into ``image`` (in place); its corners there, or None when
        it does not fit the image or finds no free place."""
        angle = np.random.randint(0, 360)
        corners = _turned_corners(crop.shape[1], crop.shape[0], angle)
        turned = _turned(crop, angle)
        box_h, box_w = turned.shape[:2]
        if image.shape[1] < box_w or image.shape[0] < box_h:
            return None
        spot = self._place(polys, corners, image.shape[1] - box_w, image.shape[0] - box_h)
        if spot is None:
            return None
        x, y = spot
        corners[:, 0] += x
        corners[:, 1] += y
        # Nearest-neighbour turning leaves the mask 0 or 255, so PIL's masked paste is a copy.
        inside = turned[:, :, 3] > 0
        image[y:y + box_h, x:x + box_w][inside] = turned[:, :, :3][inside]
        return corners

    def __call__(self, data: dict) -> dict:
        if not data.get("ext_data"):
            raise PtocrError("CopyPaste needs data['ext_data']: one other sample (DetDataset draws it)")
        other = data["ext_data"][0]
        polys, other_polys = np.asarray(data["polys"]), np.asarray(other["polys"])
        point_num = polys.shape[1]
        cared = [i for i, tag in enumerate(other["ignore_tags"]) if not tag]
        random.shuffle(cared)  # draws only by the list's length
        chosen = cared[:max(1, min(int(self.objects_paste_ratio * len(other_polys)), 30))]
        if chosen and other_polys.shape[1] != 4:
            raise PtocrError(f"CopyPaste: the other sample's polygons have {other_polys.shape[1]} points, not 4 "
                             "(PaddleOCR's dataset draws another sample until they have 4)")
        image = data["image"].copy()
        boxes, texts, tags = polys.tolist(), list(data["texts"]), np.asarray(data["ignore_tags"]).tolist()
        for i in chosen:
            corners = self._paste(image, _box_crop(other["image"], other_polys[i]), boxes)
            if corners is None:
                continue
            corners = corners.tolist()
            boxes.append(corners + corners[-1:] * (point_num - len(corners)))
            texts.append(other["texts"][i])
            tags.append(other["ignore_tags"][i])
        data["image"], data["texts"] = image, texts
        if not boxes:  # PaddleOCR fails here (an IndexError on its empty 1-d array)
            data["polys"], data["ignore_tags"] = np.zeros((0, point_num, 2)), np.zeros(0, dtype=np.bool_)
            return data
        try:
            stacked = np.array(boxes)  # float64 from here on, as PaddleOCR's
        except ValueError:
            raise PtocrError(f"CopyPaste: this sample's polygons have {point_num} points and a pasted box 4; "
                             "PaddleOCR fails on them too") from None
        h, w = image.shape[:2]
        stacked[:, :, 0] = np.clip(stacked[:, :, 0], 0, w)
        stacked[:, :, 1] = np.clip(stacked[:, :, 1], 0, h)
        data["polys"], data["ignore_tags"] = stacked, np.array(tags)
        return data


# ---------------------------------------------------------------------------------------------
# TIA: text image augmentation by moving least squares (recognition)
# ---------------------------------------------------------------------------------------------
_MLS_GRID = 100  # the displacement is solved every 100 pixels and interpolated in between


def _mls_target(x: int, y: int, src_pts, dst_pts, weights: np.ndarray):
    """Where output pixel (x, y) samples the source: the similarity MLS solution. The dtypes
    (float32 weights and accumulators, float64 centroids) follow PaddleOCR's WarpMLS so the
    rounding is the same; so does its handling of a grid node on a control point (the solution
    at that point, unless it is the last one)."""
    count = len(dst_pts)
    total = 0
    weighted_dst = np.zeros(2, dtype=np.float32)
    weighted_src = np.zeros(2, dtype=np.float32)
    hit = 0
    for hit in range(count):
        if x == dst_pts[hit][0] and y == dst_pts[hit][1]:
            break
        weights[hit] = 1.0 / ((x - dst_pts[hit][0]) * (x - dst_pts[hit][0])
                              + (y - dst_pts[hit][1]) * (y - dst_pts[hit][1]))
        total += weights[hit]
        weighted_dst = weighted_dst + weights[hit] * np.array(dst_pts[hit])
        weighted_src = weighted_src + weights[hit] * np.array(src_pts[hit])
    if hit != count - 1:
        return src_pts[hit]
    dst_centre, src_centre = 1 / total * weighted_dst, 1 / total * weighted_src
    others = [k for k in range(count) if not (x == dst_pts[k][0] and y == dst_pts[k][1])]
    spread = 0
    for k in others:
        offset = dst_pts[k] - dst_centre
        spread += weights[k] * np.sum(offset * offset)
    point = np.array([x, y], dtype=np.float32)
    point -= dst_centre
    point_perp = np.array([-point[1], point[0]])
    target = np.zeros(2, dtype=np.float32)
    for k in others:
        offset = dst_pts[k] - dst_centre
        offset_perp = np.array([-offset[1], offset[0]])
        term = np.zeros(2, dtype=np.float32)
        term[0] = np.sum(offset * point) * src_pts[k][0] - np.sum(offset_perp * point) * src_pts[k][1]
        term[1] = -np.sum(offset * point_perp) * src_pts[k][0] + np.sum(offset_perp * point_perp) * src_pts[k][1]
        term *= weights[k] / spread
        target += term
    target += src_centre
    return target


def _grid_nodes(size: int) -> list[int]:
    """0, 100, 200, ... and the last pixel (PaddleOCR's walk: the last node is size - 1)."""
    nodes = list(range(0, size, _MLS_GRID))
    if nodes[-1] != size - 1:
        nodes.append(size - 1)
    return nodes


def _mls_displacements(src_pts, dst_pts, width: int, height: int):
    """``(dx, dy)``, float64 ``height x width``, filled at the grid nodes only."""
    dx, dy = np.zeros((height, width)), np.zeros((height, width))
    weights = np.zeros(len(dst_pts), dtype=np.float32)
    if len(dst_pts) < 2:
        return dx, dy
    for x in _grid_nodes(width):
        for y in _grid_nodes(height):
            target = _mls_target(x, y, src_pts, dst_pts, weights)
            dx[y, x], dy[y, x] = target[0] - x, target[1] - y
    return dx, dy


def _bilinear(fy, fx, top_left, top_right, bottom_left, bottom_right):
    return (top_left * (1 - fx) + top_right * fx) * (1 - fy) + (bottom_left * (1 - fx) + bottom_right * fx) * fy


def _mls_warp(src: np.ndarray, src_pts, dst_pts) -> np.ndarray:
    """The image warped so ``src_pts`` land on ``dst_pts``: displacements interpolated between
    grid nodes, pixels sampled bilinearly (float64), clipped and truncated to uint8."""
    height, width = src.shape[:2]
    dx, dy = _mls_displacements(src_pts, dst_pts, width, height)
    out = np.zeros_like(src, dtype=np.float32)
    for top in np.arange(0, height, _MLS_GRID):
        for left in np.arange(0, width, _MLS_GRID):
            bottom, right = min(top + _MLS_GRID, height - 1), min(left + _MLS_GRID, width - 1)
            rows = _MLS_GRID if top + _MLS_GRID < height else bottom - top + 1
            cols = _MLS_GRID if left + _MLS_GRID < width else right - left + 1
            fy, fx = np.arange(rows).reshape(-1, 1) / rows, np.arange(cols).reshape(1, -1) / cols
            corners = (top, left), (top, right), (bottom, left), (bottom, right)
            sx = left + np.arange(cols).reshape(1, -1) + _bilinear(fy, fx, *(dx[c] for c in corners))
            sy = top + np.arange(rows).reshape(-1, 1) + _bilinear(fy, fx, *(dy[c] for c in corners))
            sx, sy = np.clip(sx, 0, width - 1), np.clip(sy, 0, height - 1)
            x0, y0 = np.floor(sx).astype(np.int32), np.floor(sy).astype(np.int32)
            x1, y1 = np.ceil(sx).astype(np.int32), np.ceil(sy).astype(np.int32)
            wy, wx = sy - y0, sx - x0
            if src.ndim == 3:
                wy, wx = wy[..., None], wx[..., None]
            out[top:top + rows, left:left + cols] = _bilinear(wy, wx, src[y0, x0], src[y0, x1], src[y1, x0], src[y1, x1])
    return np.clip(out, 0, 255).astype(np.uint8)


def _corners(w: int, h: int) -> list:
    return [[0, 0], [w, 0], [w, h], [0, h]]


def tia_distort(src: np.ndarray, segment: int = 4) -> np.ndarray:
    """Corners and ``segment - 1`` points on each long edge jittered by up to a third of a
    segment. numpy's global RNG."""
    h, w = src.shape[:2]
    cut = w // segment
    thresh = cut // 3
    jitter = np.random.randint
    dst = [[jitter(thresh), jitter(thresh)], [w - jitter(thresh), jitter(thresh)],
           [w - jitter(thresh), h - jitter(thresh)], [jitter(thresh), h - jitter(thresh)]]
    src_pts, half = _corners(w, h), thresh * 0.5
    for i in np.arange(1, segment, 1):
        src_pts += [[cut * i, 0], [cut * i, h]]
        top = [cut * i + jitter(thresh) - half, jitter(thresh) - half]
        bottom = [cut * i + jitter(thresh) - half, h + jitter(thresh) - half]
        dst += [top, bottom]
    return _mls_warp(src, src_pts, dst)


def tia_stretch(src: np.ndarray, segment: int = 4) -> np.ndarray:
    """The ``segment - 1`` inner cuts moved sideways by up to 0.4 of a segment. numpy's global RNG."""
    h, w = src.shape[:2]
    cut = w // segment
    thresh = cut * 4 // 5
    src_pts, dst, half = _corners(w, h), _corners(w, h), thresh * 0.5
    for i in np.arange(1, segment, 1):
        move = np.random.randint(thresh) - half
        src_pts += [[cut * i, 0], [cut * i, h]]
        dst += [[cut * i + move, 0], [cut * i + move, h]]
    return _mls_warp(src, src_pts, dst)


def tia_perspective(src: np.ndarray) -> np.ndarray:
    """The four corners moved vertically by up to half the height. numpy's global RNG."""
    h, w = src.shape[:2]
    thresh = h // 2
    jitter = np.random.randint
    dst = [[0, jitter(thresh)], [w, jitter(thresh)], [w, h - jitter(thresh)], [0, h - jitter(thresh)]]
    return _mls_warp(src, _corners(w, h), dst)


# ---------------------------------------------------------------------------------------------
# BaseDataAugmentation: crop, blur, HSV, jitter, noise, inversion, each with its probability;
# RecAug: TIA, then those
# ---------------------------------------------------------------------------------------------
_GAUSS_5x5 = cv2.getGaussianKernel(ksize=5, sigma=1, ktype=cv2.CV_32F)


def _crop_rows(image: np.ndarray) -> np.ndarray:
    h = image.shape[0]
    rows = min(int(random.randint(1, 8)), h - 1)
    return image[rows:h].copy() if random.randint(0, 1) else image[0:h - rows].copy()


def _blur(image: np.ndarray) -> np.ndarray:
    return cv2.sepFilter2D(image, -1, _GAUSS_5x5, _GAUSS_5x5)


def _sign() -> int:
    return 1 if random.random() > 0.5000001 else -1


def _hsv_value(image: np.ndarray) -> np.ndarray:
    """The HSV value scaled by 1 +- 0.001 * u (truncated to uint8): nearly a no-op, kept for the draws."""
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
    delta = 0.001 * random.random() * _sign()
    hsv[:, :, 2] = hsv[:, :, 2] * (1 + delta)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)


def _jitter(image: np.ndarray) -> np.ndarray:
    """Each pixel (r, c) takes the source pixel min(r, c, s - 1) steps up-left, s up to 1% of
    the shorter side."""
    rows, cols = image.shape[:2]
    if rows <= 10 or cols <= 10:
        return image
    steps = int(random.random() * min(rows, cols) * 0.01)
    src = image.copy()
    for i in range(steps):
        image[i:, i:, :] = src[:rows - i, :cols - i, :]
    return image


def _gaussian_noise(image: np.ndarray, var: float = 0.1) -> np.ndarray:
    noise = np.random.normal(0, var ** 0.5, image.shape)
    return np.uint8(np.clip(image + 0.5 * noise, 0, 255))


class BaseDataAugmentation:
    """PaddleOCR's basic image augmentation (RecAug without TIA; the direction classifier's):
    each with its probability, crop 1..8 rows off the top or bottom (images at least 20 x 20),
    5x5 Gaussian blur (sigma 1), HSV value jitter, pixel jitter, Gaussian noise (var 0.1,
    halved), inversion (255 - x).

    Random numbers: python's ``random`` for every decision and amount, numpy's global RNG for the
    noise, as PaddleOCR's.
    """

    def __init__(self, crop_prob=0.4, reverse_prob=0.4, noise_prob=0.4, jitter_prob=0.4, blur_prob=0.4,
                 hsv_aug_prob=0.4):
        self.crop_prob, self.reverse_prob = crop_prob, reverse_prob
        self.noise_prob, self.jitter_prob, self.blur_prob, self.hsv_aug_prob = noise_prob, jitter_prob, blur_prob, hsv_aug_prob

    def __call__(self, data: dict) -> dict:
        image = data["image"]
        h, w = image.shape[:2]
        if random.random() <= self.crop_prob and h >= 20 and w >= 20:
            image = _crop_rows(image)
        steps = ((self.blur_prob, _blur), (self.hsv_aug_prob, _hsv_value), (self.jitter_prob, _jitter),
                 (self.noise_prob, _gaussian_noise), (self.reverse_prob, lambda im: 255 - im))
        for probability, step in steps:
            if random.random() <= probability:
                image = step(image)
        data["image"] = image
        return data


class RecAug(BaseDataAugmentation):
    """PaddleOCR's recognition augmentation: with probability ``tia_prob`` (images at least
    20 x 20) TIA distort, stretch, perspective (segments 3..6), then :class:`BaseDataAugmentation`.

    Random numbers: python's ``random`` for every decision and amount, numpy's global RNG for
    TIA's control points and the noise, as PaddleOCR's.
    """

    def __init__(self, tia_prob=0.4, crop_prob=0.4, reverse_prob=0.4, noise_prob=0.4, jitter_prob=0.4,
                 blur_prob=0.4, hsv_aug_prob=0.4):
        super().__init__(crop_prob, reverse_prob, noise_prob, jitter_prob, blur_prob, hsv_aug_prob)
        self.tia_prob = tia_prob

    @staticmethod
    def _tia(image: np.ndarray) -> np.ndarray:
        image = tia_distort(image, random.randint(3, 6))
        image = tia_stretch(image, random.randint(3, 6))
        return tia_perspective(image)

    def __call__(self, data: dict) -> dict:
        h, w = data["image"].shape[:2]
        if random.random() <= self.tia_prob and h >= 20 and w >= 20:
            data["image"] = self._tia(data["image"])
        return super().__call__(data)


# ---------------------------------------------------------------------------------------------
# RecConAug: glue other samples' word images (and texts) onto this one
# ---------------------------------------------------------------------------------------------
class RecConAug:
    """With probability ``prob``, append the samples in ``data["ext_data"]`` (each a dict with a
    decoded ``image`` and its ``label`` text; the Dataset draws them) one after the other, every
    image resized to height ``image_shape[0]``, while the text stays within ``max_text_length``
    and the joined aspect ratio within ``image_shape[1] / image_shape[0]``. ``ext_data`` is
    removed from the dict.

    Random numbers: python's ``random`` (one draw), as PaddleOCR's.
    """

    def __init__(self, prob: float = 0.5, image_shape=(32, 320, 3), max_text_length: int = 25, ext_data_num: int = 1):
        self.prob, self.image_shape = prob, tuple(image_shape)
        self.max_text_length, self.ext_data_num = int(max_text_length), int(ext_data_num)
        self.max_wh_ratio = self.image_shape[1] / self.image_shape[0]

    def _at_height(self, image: np.ndarray) -> np.ndarray:
        height = self.image_shape[0]
        return cv2.resize(image, (round(image.shape[1] / image.shape[0] * height), height))

    def _fits(self, data: dict, extra: dict) -> bool:
        if len(data["label"]) + len(extra["label"]) > self.max_text_length:
            return False
        ratio = data["image"].shape[1] / data["image"].shape[0] + extra["image"].shape[1] / extra["image"].shape[0]
        return ratio <= self.max_wh_ratio

    def __call__(self, data: dict) -> dict:
        if random.random() > self.prob:
            return data  # PaddleOCR leaves ext_data in the dict here too
        for extra in data.get("ext_data", []):
            if not self._fits(data, extra):
                break
            data["image"] = np.concatenate([self._at_height(data["image"]), self._at_height(extra["image"])], axis=1)
            data["label"] = data["label"] + extra["label"]
        data.pop("ext_data", None)
        return data


# ---------------------------------------------------------------------------------------------
# RandAugment: a few PIL operations drawn at random, at one fixed magnitude (classification)
# ---------------------------------------------------------------------------------------------
def _random_sign() -> int:
    return random.choice([-1, 1])


def _affine(img, coefficients, fill, resample=Image.Resampling.NEAREST):
    return img.transform(img.size, Image.Transform.AFFINE, coefficients, resample, fillcolor=fill)


def _shear_x(img, level, fill):
    return _affine(img, (1, level * _random_sign(), 0, 0, 1, 0), fill, Image.Resampling.BICUBIC)


def _shear_y(img, level, fill):
    return _affine(img, (1, 0, 0, level * _random_sign(), 1, 0), fill, Image.Resampling.BICUBIC)


def _translate_x(img, level, fill):
    return _affine(img, (1, 0, level * img.size[0] * _random_sign(), 0, 1, 0), fill)


def _translate_y(img, level, fill):
    return _affine(img, (1, 0, 0, 0, 1, level * img.size[1] * _random_sign()), fill)


def _rotate_grey(img, level, fill):
    """Turned counter-clockwise by ``level`` degrees (never clockwise: PaddleOCR draws no sign
    here), nearest neighbour, the corners uncovered grey 128 whatever ``fillcolor`` says."""
    turned = img.convert("RGBA").rotate(level)
    grey = Image.new("RGBA", turned.size, (128, 128, 128, 128))
    return Image.composite(turned, grey, turned).convert(img.mode)


def _enhancer(kind):
    def enhance(img, level, fill):
        return kind(img).enhance(1 + level * _random_sign())
    return enhance


# Op name (PaddleOCR's, in its order: np.random.choice draws an index into it), the level at
# magnitude 10, the operation (image, level, fillcolor).
_RAND_OPS = (
    ("shearX", 0.3, _shear_x), ("shearY", 0.3, _shear_y),
    ("translateX", 150.0 / 331, _translate_x), ("translateY", 150.0 / 331, _translate_y),
    ("rotate", 30, _rotate_grey), ("color", 0.9, _enhancer(ImageEnhance.Color)),
    ("posterize", 4.0, lambda img, level, fill: ImageOps.posterize(img, level)),
    ("solarize", 256.0, lambda img, level, fill: ImageOps.solarize(img, level)),
    ("contrast", 0.9, _enhancer(ImageEnhance.Contrast)), ("sharpness", 0.9, _enhancer(ImageEnhance.Sharpness)),
    ("brightness", 0.9, _enhancer(ImageEnhance.Brightness)),
    ("autocontrast", 0, lambda img, level, fill: ImageOps.autocontrast(img)),
    ("equalize", 0, lambda img, level, fill: ImageOps.equalize(img)),
    ("invert", 0, lambda img, level, fill: ImageOps.invert(img)),
)


class RandAugment:
    """PaddleOCR's RandAugment (the direction classifier's): with probability ``prob``,
    ``num_layers`` operations drawn with replacement from shear x / y (bicubic), translate x / y
    (nearest), rotate, colour, posterize, solarize, contrast, sharpness, brightness,
    autocontrast, equalize, invert, each at ``magnitude`` / 10 of its largest level (shear 0.3,
    translate 150/331 of the side, rotate 30 degrees, the enhancers' factors 1 +- 0.9, posterize
    4 bits truncated, solarize threshold 256); shears and translations fill with ``fillcolor``.
    The image goes through PIL as it is (a BGR array is taken for RGB, as PaddleOCR's does).

    Random numbers: numpy's global RNG for the ``prob`` draw and each operation's choice,
    python's ``random`` for the sign of the shears, translations and enhancer factors (rotate's
    angle has none), as PaddleOCR's. A list ``fillcolor`` (a YAML config's) is taken as a tuple,
    where PaddleOCR's PIL call fails on it.
    """

    def __init__(self, prob=0.5, num_layers=2, magnitude=5, fillcolor=(128, 128, 128)):
        self.prob, self.num_layers, self.magnitude = prob, int(num_layers), magnitude
        self.fillcolor = tuple(fillcolor) if isinstance(fillcolor, (list, tuple)) else fillcolor
        fraction = magnitude / 10
        self.levels = {name: int(top * fraction) if name == "posterize" else top * fraction
                       for name, top, _ in _RAND_OPS}
        self.ops = {name: op for name, _, op in _RAND_OPS}

    def __call__(self, data: dict) -> dict:
        if np.random.rand() > self.prob:
            return data
        image = data["image"]
        if isinstance(image, np.ndarray):
            image = Image.fromarray(np.ascontiguousarray(image))
        names = [name for name, _, _ in _RAND_OPS]
        for _ in range(self.num_layers):
            name = str(np.random.choice(names))
            image = self.ops[name](image, self.levels[name], self.fillcolor)
        data["image"] = np.array(image)
        return data
