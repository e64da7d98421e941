"""ptocr.transforms.seal_crop against PaddleX's own "poly" crop (the seal-text path of its OCR
pipeline) and polygon sort, recorded by tools/poly_crop_reference.py from PaddleX 3.7.2's code in
tests/fixtures/poly_crop_reference.json: every crop byte-identical, on the branch PaddleX took.
Plus properties that hold on their own (synthetic images, no fixture)."""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from ptocr.pipeline3 import OCR3
from ptocr.transforms import get_minarea_rect_crop, poly_crop, sort_poly_boxes
from ptocr.transforms.seal_crop import POLY_CROP_BRANCHES, _rectify

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "poly_crop_reference.json").read_text(encoding="utf-8"))
CASES = {c["name"]: c for c in FIXTURE["cases"]}
CURVED = ("curved_horizontal", "curved_vertical")


def sha256(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


@functools.lru_cache(maxsize=None)
def _decoded(path: str, gray: bool) -> np.ndarray:
    img = cv2.imread(path, cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
    assert img is not None, f"cannot read {path}"
    img.setflags(write=False)
    return img


def scene(shared_dir: Path, image: str, gray: bool = False) -> np.ndarray:
    img = _decoded(str(shared_dir / image), gray)
    if sha256(img) != FIXTURE["images"][image]["gray" if gray else "color"]:
        pytest.fail(f"{image} decodes to other pixels than where the fixture was recorded (another OpenCV / "
                    "libjpeg): rerun tools/poly_crop_reference.py here")
    return img


def assert_same_crop(crop: np.ndarray, expected: dict, what: str):
    got = (list(crop.shape), str(crop.dtype), sha256(crop))
    want = (expected["shape"], expected["dtype"], expected["sha256"])
    mean = round(float(crop.mean()), 4) if crop.size else None
    assert got == want, f"{what}: ptocr {got[:2]} mean {mean}, PaddleX {want[:2]} mean {expected['mean']}"


# --- against PaddleX ---------------------------------------------------------------------------

def test_fixture_covers_every_branch():
    """Each branch taken by some recorded case (as seen in PaddleX's calls), curves often."""
    taken = [c["branch"] for c in FIXTURE["cases"]] + [c["branch"] for c in FIXTURE["rectifier_cases"]]
    assert set(taken) == set(POLY_CROP_BRANCHES)
    assert sum(b in CURVED for b in taken) >= 30
    assert any(c["name"].startswith("detected_") and c["branch"] in CURVED for c in FIXTURE["cases"])
    # the rectified crops are not the rectangle's: a stub cropping rectangles would fail them
    assert sum(c["crop"]["dtype"] == "uint8" and c["branch"] in CURVED for c in FIXTURE["cases"]) >= 30


@pytest.mark.parametrize("name", sorted(CASES))
def test_crop_matches_paddlex(shared_dir, name):
    case = CASES[name]
    img = scene(shared_dir, case["image"], case["gray"])
    poly = np.array(case["polygon"], dtype=case["polygon_dtype"])
    crop, branch = poly_crop(img, poly, return_branch=True)
    assert branch == case["branch"], f"{name}: ptocr took {branch}, PaddleX {case['branch']}"
    assert_same_crop(crop, case["crop"], name)
    assert_same_crop(poly_crop(img, poly.tolist()), case["crop"], f"{name} (points as lists)")


@pytest.mark.parametrize("case", FIXTURE["rectifier_cases"], ids=lambda c: c["name"])
def test_rectifier_quad_matches_paddlex(shared_dir, case):
    img = scene(shared_dir, case["image"])
    crop, branch = _rectify(img, np.array(case["points"], dtype=np.float64).reshape(-1, 2))
    assert branch == case["branch"]
    assert_same_crop(crop, case["crop"], case["name"])


def test_crops_drop_empty_like_the_pipeline(shared_dir):
    """The bbox fallback's 0-px crops are dropped with their polygon, the rest kept in order."""
    names = ["upright_rectangle", "column_bbox_fallback", "top_arc_wide", "column_bbox_fallback_bottom_border"]
    img = scene(shared_dir, CASES[names[0]]["image"])
    polys = [np.array(CASES[n]["polygon"], dtype=np.int32) for n in names]
    assert all(CASES[n]["image"] == CASES[names[0]]["image"] for n in names)
    crops, kept = OCR3.crop(SimpleNamespace(text_type="seal"), img, polys)  # the pipeline's crop step
    assert [k is p for k, p in zip(kept, polys[::2])] == [True, True] and len(kept) == 2
    for crop, n in zip(crops, names[::2]):
        assert_same_crop(crop, CASES[n]["crop"], n)
    assert CASES["column_bbox_fallback"]["crop"]["shape"][1] == 0  # what was dropped is empty


@pytest.mark.parametrize("case", FIXTURE["sort_cases"], ids=lambda c: c["name"])
def test_sort_matches_paddlex(case):
    polys = [np.array(p, dtype=np.int32) for p in case["polygons"]]
    tops = np.array([p[:, 1].min() for p in polys])
    if case["ties"] and list(np.argsort(tops)) != case["order"]:
        # np.argsort's default sort is not stable; with AVX-512 numpy sorts with SIMD networks, so
        # ties come out in another order on another CPU (PaddleX's too: it makes the same call).
        pytest.skip("this CPU's np.argsort orders ties unlike the machine that recorded the fixture")
    ranked = sort_poly_boxes(polys)
    assert [next(i for i, p in enumerate(polys) if p is q) for q in ranked] == case["order"]


# --- malformed input ----------------------------------------------------------------------------

IMG = np.zeros((40, 60, 3), np.uint8)


@pytest.mark.parametrize("poly", [np.zeros((4, 3)), np.zeros(8), np.zeros((0, 2)), np.zeros((2, 2, 2)),
                                  [[1, 2], [3]], [["a", "b"], ["c", "d"]]], ids=str)
def test_malformed_polygon_refused(poly):
    with pytest.raises(ValueError):
        poly_crop(IMG, poly)


@pytest.mark.parametrize("img", [np.zeros((40, 60, 4), np.uint8), np.zeros((40, 60, 3), np.float32),
                                 np.zeros((0, 60, 3), np.uint8), np.zeros(40, np.uint8), [[0, 1], [2, 3]]],
                         ids=["4-channel", "float", "empty", "1-d", "list"])
def test_malformed_image_refused(img):
    with pytest.raises(ValueError):
        poly_crop(img, [[1, 1], [20, 1], [20, 10], [1, 10]])


def test_sort_refuses_malformed_polygon():
    with pytest.raises(ValueError):
        sort_poly_boxes([np.zeros((4, 2)), np.zeros(8)])
    assert sort_poly_boxes([]) == []


# --- properties (no fixture) --------------------------------------------------------------------

def arc(center, radius, thickness, start_deg, end_deg, points=12) -> np.ndarray:
    """Outer arc start -> end, inner arc back (image coordinates: -90 degrees is the top). The
    inner arc gets fewer points, spaced like the outer ones: PaddleX merges runs of edges shorter
    than 0.9 x the mean edge into one point, so a tighter-spaced inner arc would collapse."""
    a = np.radians(np.linspace(start_deg, end_deg, points))
    b = np.radians(np.linspace(end_deg, start_deg, max(2, round(points * radius / (radius + thickness)))))
    outer = np.stack([np.cos(a), np.sin(a)], 1) * (radius + thickness)
    inner = np.stack([np.cos(b), np.sin(b)], 1) * radius
    return np.round(np.concatenate([outer, inner]) + center).astype(np.int32)


@pytest.fixture(scope="module")
def band_image():
    """White annulus (radius 150..190) on black with a colour gradient, 500 x 500."""
    img = np.zeros((500, 500, 3), np.uint8)
    yy, xx = np.mgrid[:500, :500]
    r = np.hypot(xx - 250, yy - 250)
    img[(r >= 150) & (r <= 190)] = 255
    img[..., 0] = np.where(img[..., 0] > 0, (xx * 255 // 500).astype(np.uint8), 0)
    return img


@pytest.mark.parametrize("poly", [[[50, 60], [300, 60], [300, 100], [50, 100]],
                                  [[50, 60], [175, 60], [300, 60], [300, 80], [300, 100], [175, 100], [50, 100],
                                   [50, 80]],
                                  [[60, 200], [260, 120], [275, 158], [75, 238]]], ids=["quad", "8-point", "rotated"])
def test_rectangle_is_cropped_as_its_rectangle(band_image, poly):
    crop, branch = poly_crop(band_image, poly, return_branch=True)
    assert branch == "near_rectangle"
    np.testing.assert_array_equal(crop, get_minarea_rect_crop(band_image, poly))


def test_seal_arc_is_straightened(band_image):
    """A top arc of the white band (40 px thick) comes out as a 40 px strip that is band nearly
    everywhere, read left to right, while its min-area rectangle is mostly black."""
    poly = arc((250, 250), 150, 40, -150, -30)
    crop, branch = poly_crop(band_image, poly, return_branch=True)
    assert branch == "curved_horizontal"
    assert crop.shape[0] == 40 and crop.shape[1] > 5 * crop.shape[0] and crop.shape[2] == 3
    white = (crop[..., 1] > 128).mean()
    rect_white = (get_minarea_rect_crop(band_image, poly)[..., 1] > 128).mean()
    assert white > 0.95 and rect_white < 0.6
    blue = crop[..., 0].astype(float).mean(axis=0)  # the gradient rises with x
    assert blue[: len(blue) // 4].mean() + 50 < blue[-len(blue) // 4:].mean()


def test_bottom_arc_is_straightened(band_image):
    crop, branch = poly_crop(band_image, arc((250, 250), 150, 40, 150, 30), return_branch=True)
    assert branch == "curved_horizontal" and crop.shape[1] > 5 * crop.shape[0]
    assert (crop[..., 1] > 128).mean() > 0.9


def test_side_arc_is_vertical_text(band_image):
    """PaddleX hands vertical text back standing. (It also pairs each point of one side with the
    neighbour of its partner on the other, so the strip is wider than the band and ragged.)"""
    crop, branch = poly_crop(band_image, arc((250, 250), 150, 40, 120, 240), return_branch=True)
    assert branch == "curved_vertical"
    assert crop.shape[0] > 5 * crop.shape[1]
    assert (crop[..., 1] > 128).mean() > 0.8


def test_gray_image_rectified_as_three_equal_channels(band_image):
    gray = np.ascontiguousarray(band_image[..., 1])
    poly = arc((250, 250), 150, 40, -150, -30)
    crop = poly_crop(gray, poly)
    assert crop.ndim == 3
    np.testing.assert_array_equal(crop, poly_crop(np.stack([gray] * 3, -1), poly))
    assert poly_crop(gray, [[50, 60], [300, 60], [300, 100], [50, 100]]).ndim == 2  # rectangles stay gray


def test_sort_is_by_top_edge():
    rng = np.random.default_rng(0)
    polys = [rng.integers(0, 300, (int(rng.integers(3, 12)), 2)) for _ in range(30)]
    ranked = sort_poly_boxes(polys)
    assert sorted(map(id, ranked)) == sorted(map(id, polys))
    tops = [p[:, 1].min() for p in ranked]
    assert tops == sorted(tops)
