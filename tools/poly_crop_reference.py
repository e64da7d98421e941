"""Regenerate tests/fixtures/poly_crop_reference.json: PaddleX's own "poly" crops (the OCR
pipeline's seal-text path) and its polygon sort, on cases that cover every branch.

    python -m tools.poly_crop_reference [--paddlex /tmp/px/x] [--shared ../shared] [--out FIXTURE]

``--paddlex`` is an unpacked PaddleX 3.7.2 wheel (the folder holding ``paddlex/``). Three of its
files are loaded by path, nothing installed: components/common/crop_image_regions.py
(``CropByPolys``), seal_det_warp.py (``AutoRectifier``, which the crop calls) and sort_boxes.py
(``SortPolyBoxes``); the imports they make of the rest of PaddleX are stood in for by a stub
package (a logger, dependency checks that always pass, a plain operator base class).

Each case is an image of ``--shared``/images/scenes (named relative to the shared folder, never
copied) and a polygon: hand-made shapes (fewer than 4 points, self-intersecting, near-rectangular,
seal-like arcs of every orientation, tiny ones, ones across the border, a grayscale image), the
polygons ptocr's PP-OCRv5 mobile detector finds on real scenes (DB, box_type="poly": the polygons
are only the input) and seeded random shapes. For each case the fixture keeps PaddleX's crop as shape, dtype, sha256 of its
C-contiguous bytes and mean, and the branch PaddleX took (seen by spying on its calls). One
branch of the rectifier no valid polygon reaches (4 points: see ``rectifier_cases``) is recorded
from AutoRectifier itself. The tool fails unless every branch is taken at least once. Sort cases keep the polygons' min y and
PaddleX's order; ``images`` keeps the sha256 of each image as OpenCV decoded it here, so a test can
tell a different JPEG decoder from a different crop. A rerun on the same machine writes the same
file.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import logging
import sys
import types
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "poly_crop_reference.json"
STUB = "paddlex_poly_crop"  # the stand-in for the ``paddlex`` package
COMMON = ("inference", "pipelines", "components", "common")
BRANCHES = ("few_points", "invalid_polygon", "near_rectangle", "few_groups", "curved_horizontal",
            "curved_vertical", "curved_bbox_fallback", "curved_quad")


def load_paddlex(root: Path) -> dict[str, types.ModuleType]:
    """crop_image_regions, seal_det_warp and sort_boxes of ``root``/paddlex, loaded by path under
    the stub package ``paddlex_poly_crop`` (their relative imports land on the stubs)."""
    common = root / "paddlex" / Path(*COMMON)
    if not (common / "crop_image_regions.py").is_file():
        raise SystemExit(f"{common / 'crop_image_regions.py'} not found: --paddlex must be an unpacked PaddleX wheel")
    names = [STUB] + [".".join((STUB,) + COMMON[:depth]) for depth in range(1, len(COMMON) + 1)]
    for name in names:
        package = types.ModuleType(name)
        package.__path__ = []
        sys.modules[name] = package
    sys.modules[names[-1]].__path__ = [str(common)]

    utils = types.ModuleType(f"{STUB}.utils")
    utils.__path__ = []
    utils.logging = logging.getLogger("paddlex")
    deps = types.ModuleType(f"{STUB}.utils.deps")
    deps.is_dep_available = lambda name: True
    deps.class_requires_deps = deps.function_requires_deps = lambda *names: (lambda obj: obj)
    base = types.ModuleType(f"{names[-1]}.base_operator")

    class BaseOperator:  # PaddleX's registers subclasses by name; nothing else
        pass

    base.BaseOperator = BaseOperator
    for module in (utils, deps, base):
        sys.modules[module.__name__] = module
    utils.deps = deps

    loaded = {}
    for name in ("seal_det_warp", "crop_image_regions", "sort_boxes"):
        spec = importlib.util.spec_from_file_location(f"{names[-1]}.{name}", common / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        loaded[name] = module
    return loaded


class BranchSpy:
    """Records which way PaddleX's ``get_poly_rect_crop`` goes, by wrapping the functions each
    branch calls (their results untouched) and catching the warning its rectifier logs when it
    falls back."""

    def __init__(self, modules: dict[str, types.ModuleType]):
        self.calls: list[tuple] = []
        crop_mod, warp = modules["crop_image_regions"], modules["seal_det_warp"]
        self.cropper = crop_mod.CropByPolys(det_box_type="poly")
        self._wrap(self.cropper, "sample_points_on_bbox_bp", lambda line, n=50: ("resample", n))
        self._wrap(self.cropper, "sample_points_on_bbox", lambda line, n=50: ("merge",))
        self._wrap(self.cropper, "reorder_poly_edge", lambda points: ("sides",))
        self._wrap(warp.CurveTextRectifier, "dc_homo",
                   lambda self_, img, ip, op, horizontal, **kw: ("dc_homo", bool(horizontal)))
        original = warp.AutoRectifier.get_rotate_crop_image
        spy = self

        def rotate_crop(img, points, *args, **kwargs):
            spy.calls.append(("rect_fallback", len(np.array(points).reshape(-1, 2))))
            return original(img, points, *args, **kwargs)

        warp.AutoRectifier.get_rotate_crop_image = staticmethod(rotate_crop)

        class Catch(logging.Handler):
            def emit(self, record):
                spy.calls.append(("warning", record.getMessage()))

        logging.getLogger("paddlex").addHandler(Catch())

    def _wrap(self, owner, name, describe):
        original = getattr(owner, name)
        spy = self

        def wrapper(*args, **kwargs):
            spy.calls.append(describe(*args, **kwargs))
            return original(*args, **kwargs)

        setattr(owner, name, wrapper)

    def crop(self, img: np.ndarray, poly: np.ndarray) -> tuple[np.ndarray, str, str | None]:
        """PaddleX's crop of one polygon (CropByPolys.__call__ on a list of one), its branch,
        and the warning its rectifier logged, if any."""
        self.calls = []
        (crop,) = self.cropper(img, [poly])
        kinds = {c[0]: c[1:] for c in self.calls}
        warning = kinds.get("warning", (None,))[0]
        if len(np.array(poly).reshape(-1, 2)) < 4:
            branch = "few_points"
        elif ("resample", 31) in self.calls:
            branch = "near_rectangle"
        elif "merge" not in kinds:
            branch = "invalid_polygon"
        elif "sides" not in kinds:
            branch = "few_groups"
        elif "rect_fallback" in kinds:
            branch = "curved_quad" if kinds["rect_fallback"][0] == 4 else "curved_bbox_fallback"
        else:
            branch = "curved_horizontal" if kinds["dc_homo"][0] else "curved_vertical"
        return np.asarray(crop), branch, warning


def digest(crop: np.ndarray) -> dict:
    crop = np.ascontiguousarray(crop)
    return {"shape": list(crop.shape), "dtype": str(crop.dtype),
            "sha256": hashlib.sha256(crop.tobytes()).hexdigest(),
            "mean": round(float(crop.mean()), 4) if crop.size else None}


def arc_polygon(center, radius, thickness, start_deg, end_deg, outer_points, inner_points) -> np.ndarray:
    """A seal-like text line: the outer arc (radius + thickness) from start to end, then the
    inner arc (radius) back; angles in degrees, image coordinates (y down, so -90 is the top)."""
    cx, cy = center
    outer = np.radians(np.linspace(start_deg, end_deg, outer_points))
    inner = np.radians(np.linspace(end_deg, start_deg, inner_points))
    r_out = radius + thickness
    pts = np.concatenate([np.stack([cx + r_out * np.cos(outer), cy + r_out * np.sin(outer)], 1),
                          np.stack([cx + radius * np.cos(inner), cy + radius * np.sin(inner)], 1)])
    return np.round(pts).astype(np.int32)


def handmade_cases() -> list[dict]:
    """The shapes built by hand: dicts of name, scene (a file of images/scenes), polygon and,
    for a grayscale read of the scene, gray=True."""
    P = lambda *xy: np.array(xy, dtype=np.int32).reshape(-1, 2)  # noqa: E731
    cases = [
        ("one_point", "00056221.jpg", P(100, 100)),
        ("two_points_flat", "00056221.jpg", P(100, 100, 180, 100)),
        ("two_points_slanted", "00056221.jpg", P(100, 100, 180, 140)),
        ("triangle", "00056221.jpg", P(100, 100, 220, 120, 130, 180)),
        ("bow_tie", "00056221.jpg", P(100, 100, 200, 160, 200, 100, 100, 160)),
        ("self_crossing_hexagon", "00057937.jpg", P(300, 200, 420, 200, 350, 260, 300, 320, 420, 320, 380, 150)),
        ("collinear_four", "00057937.jpg", P(300, 200, 340, 200, 380, 200, 420, 200)),
        ("upright_rectangle", "00057937.jpg", P(300, 200, 520, 200, 520, 250, 300, 250)),
        ("rotated_rectangle", "00057937.jpg", P(300, 260, 500, 200, 512, 240, 312, 300)),
        ("rectangle_eight_points", "00057937.jpg", P(300, 200, 400, 202, 500, 200, 502, 220, 500, 240, 400, 242,
                                                      300, 240, 298, 220)),
        ("tall_rectangle", "1.jpg", P(100, 200, 150, 200, 150, 600, 100, 600)),
        ("rectangle_across_border", "00018069.jpg", P(-20, -10, 200, -10, 200, 40, -20, 40)),
    ]
    # A thin column whose merged points all share one x: PaddleX's rectifier divides by the
    # zero width, catches that and crops the points' bounding box, which is then 0 px wide.
    column = P(18, 28, 23, 12, 23, 40, 20, 75, 21, 28, 19, 32, 20, 78, 17, 22)
    cases += [
        ("column_bbox_fallback", "00057937.jpg", column + [300, 200]),
        ("column_bbox_fallback_bottom_border", "00057937.jpg", column + [200, 700]),
        ("column_vertical_left_border", "00057937.jpg", column + [-40, 100]),
        ("sliver_few_groups", "00057937.jpg", P(405, 338, 405, 315, 407, 336, 406, 345)),
    ]
    cases = [dict(name=n, scene=s, polygon=p) for n, s, p in cases]
    # Seal text: arcs across several spans, each side of the circle, odd and even point counts.
    arcs = [
        ("top_arc_wide", "00057937.jpg", (500, 400), 200, 40, -160, -20, 12, 12),
        ("top_arc_half", "00057937.jpg", (500, 400), 180, 50, -150, -30, 9, 8),
        ("top_arc_narrow", "00057937.jpg", (500, 400), 250, 30, -110, -70, 7, 7),
        ("bottom_arc", "00057937.jpg", (500, 300), 200, 40, 160, 20, 12, 11),
        ("bottom_arc_wide", "img_12.jpg", (840, 400), 300, 60, 170, 10, 16, 16),
        ("left_arc", "img_12.jpg", (840, 520), 300, 50, 120, 240, 10, 10),
        ("right_arc", "img_12.jpg", (840, 520), 300, 50, -60, 60, 11, 10),
        ("tilted_arc", "korean_1.jpg", (460, 400), 220, 45, -200, -80, 10, 9),
        ("full_seal_top", "korean_1.jpg", (460, 390), 150, 35, -200, 20, 18, 18),
        ("small_arc", "00009282.jpg", (175, 175), 40, 12, -150, -30, 8, 8),
        ("tiny_arc", "00009282.jpg", (175, 175), 10, 4, -150, -30, 6, 6),
        ("tiny_arc_odd", "00009282.jpg", (100, 100), 8, 3, -140, -40, 5, 4),
        ("arc_across_top_border", "00018069.jpg", (215, 150), 140, 40, -160, -20, 12, 12),
        ("arc_across_left_border", "00018069.jpg", (30, 130), 100, 30, 100, 260, 10, 10),
        ("large_arc", "img_12.jpg", (840, 700), 600, 90, -150, -30, 20, 20),
    ]
    for name, scene, center, r, h, a0, a1, n_out, n_in in arcs:
        cases.append(dict(name=name, scene=scene, polygon=arc_polygon(center, r, h, a0, a1, n_out, n_in)))
    cases.append(dict(name="gray_top_arc", scene="00057937.jpg", gray=True,
                      polygon=arc_polygon((500, 400), 200, 40, -160, -20, 12, 12)))
    cases.append(dict(name="gray_rectangle", scene="00057937.jpg", gray=True,
                      polygon=P(300, 200, 520, 200, 520, 250, 300, 250)))
    cases.append(dict(name="gray_left_arc", scene="img_12.jpg", gray=True,
                      polygon=arc_polygon((840, 520), 300, 50, 120, 240, 10, 10)))
    cases.append(dict(name="float_points_arc", scene="00057937.jpg",
                      polygon=arc_polygon((500, 400), 200, 40, -160, -20, 12, 12).astype(np.float64) + 0.7))
    return cases


DETECTED_SCENES = ("00056221.jpg", "ger_1.jpg", "japan_1.jpg", "korean_1.jpg")


def detected_cases(shared: Path) -> list[dict]:
    """The polygons ptocr's PP-OCRv5 mobile detector finds on a few real scenes, post-processed
    as PaddleX's seal pipeline does (DB thresh 0.2, box_thresh 0.6, unclip 0.5, polygons)."""
    import ptocr
    from ptocr.postprocess import DBPostProcess

    det = ptocr.load(shared / "paddle_models" / "PP-OCRv5_mobile_det_infer")
    post = DBPostProcess(thresh=0.2, box_thresh=0.6, unclip_ratio=0.5, box_type="poly")
    cases = []
    for scene in DETECTED_SCENES:
        img = read_scene(shared, scene)
        x, info = det.pre(img)
        (polys, _), = post(det.forward(x[None]), [info])
        for k, poly in enumerate(polys):
            cases.append(dict(name=f"detected_{Path(scene).stem}_{k}", scene=scene, polygon=np.asarray(poly)))
    return cases


def random_polygon(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A random wobbly band (a text line bent along a random curve), sometimes tiny."""
    n = int(rng.integers(3, 14))
    scale = float(rng.choice([3.0, 8.0, 30.0, 120.0]))
    length, thickness = scale * rng.uniform(1, 6), scale * rng.uniform(0.2, 1.5)
    t = np.linspace(0, 1, n)
    bend = rng.uniform(-1.5, 1.5) * length * t * (1 - t) + rng.normal(0, 0.15 * thickness, n)
    angle = rng.uniform(0, np.pi)
    axis, normal = np.array([np.cos(angle), np.sin(angle)]), np.array([-np.sin(angle), np.cos(angle)])
    center = rng.uniform([0, 0], [width, height])
    spine = center + np.outer(t * length - length / 2, axis) + np.outer(bend, normal)
    top = spine - normal * thickness / 2
    bottom = (spine + normal * thickness / 2)[::-1][: int(rng.integers(2, n + 1))]
    return np.round(np.concatenate([top, bottom])).astype(np.int32)


def random_cases(count: int = 60, seed: int = 0) -> list[dict]:
    """Seeded random shapes on three scenes (one in six on the gray image): wobbly bands of
    every size, down to a few pixels, and seal arcs of random radius, span and orientation."""
    rng = np.random.default_rng(seed)
    scenes = {"00009282.jpg": (350, 350), "00057937.jpg": (1000, 750), "img_12.jpg": (1680, 1048)}
    cases = []
    for k in range(count):
        scene = list(scenes)[k % 3]
        w, h = scenes[scene]
        if k % 2:
            poly = random_polygon(rng, w, h)
        else:
            start, span = rng.uniform(-360, 360), rng.uniform(10, 300) * rng.choice([-1, 1])
            poly = arc_polygon(rng.uniform([0, 0], [w, h]), rng.uniform(3, 400), rng.uniform(2, 80), start,
                               start + span, int(rng.integers(3, 25)), int(rng.integers(2, 25)))
        cases.append(dict(name=f"random_{k}", scene=scene, gray=k % 6 == 5, polygon=poly))
    return cases


def rectifier_cases(modules: dict[str, types.ModuleType], shared: Path) -> list[dict]:
    """AutoRectifier.run(mode="homography") on 4 points, the path ``get_poly_rect_crop`` takes
    when both sides of the polygon collapse to one point each (no valid polygon found to do it:
    searched, that needs a self-intersecting one, which is cropped as a rectangle before): a
    quad, and such a collapsed one (its zero width makes OpenCV warp to the image's size)."""
    rectifier = modules["seal_det_warp"].AutoRectifier()
    quads = {"quad": [300.0, 200.0, 500.0, 220.0, 490.0, 270.0, 310.0, 260.0],
             "collapsed_sides": [100.0, 100.0, 100.0, 100.0, 140.0, 160.0, 140.0, 160.0]}
    out = []
    for name, flat in quads.items():
        img = read_scene(shared, "00057937.jpg")
        (crop,), _ = rectifier.run(img, [flat], mode="homography")
        out.append(dict(name=name, image="images/scenes/00057937.jpg", points=flat, branch="curved_quad",
                        crop=digest(crop)))
    return out


def read_scene(shared: Path, scene: str, gray: bool = False) -> np.ndarray:
    import cv2

    img = cv2.imread(str(shared / "images" / "scenes" / scene), cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
    if img is None:
        raise SystemExit(f"cannot read {shared / 'images' / 'scenes' / scene}")
    return img


def sort_cases(modules: dict[str, types.ModuleType], detected: list[dict]) -> list[dict]:
    """SortPolyBoxes on polygons given by their point lists: the detections of each scene as
    found (reversed, so the sort has work to do), and hand-made lists with ties in min y."""
    sorter = modules["sort_boxes"].SortPolyBoxes()
    lists = {}
    for scene in DETECTED_SCENES:
        lists[f"detected_{Path(scene).stem}"] = [c["polygon"] for c in detected if c["scene"] == scene][::-1]
    rng = np.random.default_rng(1)
    box = lambda x, y: np.array([[x, y], [x + 30, y], [x + 30, y + 10], [x, y + 10]], np.int32)  # noqa: E731
    lists["ties_small"] = [box(10 * k, y) for k, y in enumerate([50, 20, 50, 20, 35, 50, 20, 5])]
    lists["ties_large"] = [box(int(x), int(y)) for x, y in zip(rng.integers(0, 500, 40), rng.integers(0, 8, 40))]
    lists["all_equal"] = [box(7 * k, 12) for k in range(20)]
    lists["single"] = [box(0, 3)]
    out = []
    for name, polys in lists.items():
        ranked = sorter(polys)
        order = [next(i for i, p in enumerate(polys) if p is q) for q in ranked]
        tops = [int(p[:, 1].min()) for p in polys]
        out.append(dict(name=name, polygons=[p.tolist() for p in polys], order=order,
                         ties=len(set(tops)) < len(tops)))
    return out


def main(argv=None) -> int:
    from verification.shared import default_shared

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--paddlex", type=Path, default=Path("/tmp/px/x"), help="unpacked PaddleX 3.7.2 wheel")
    parser.add_argument("--shared", type=Path, default=None, help="shared data folder (default: $PTOCR_SHARED or ../shared)")
    parser.add_argument("--out", type=Path, default=FIXTURE)
    args = parser.parse_args(argv)
    shared = (args.shared or default_shared()).resolve()

    modules = load_paddlex(args.paddlex)
    spy = BranchSpy(modules)
    detected = detected_cases(shared)
    records, images = [], {}
    for case in handmade_cases() + detected + random_cases():
        img = read_scene(shared, case["scene"], case.get("gray", False))
        images.setdefault(f"images/scenes/{case['scene']}", {})["gray" if case.get("gray") else "color"] = \
            hashlib.sha256(img.tobytes()).hexdigest()
        crop, branch, warning = spy.crop(img, case["polygon"])
        poly = np.asarray(case["polygon"])
        records.append(dict(name=case["name"], image=f"images/scenes/{case['scene']}", gray=case.get("gray", False),
                            polygon=poly.tolist(), polygon_dtype=str(poly.dtype), branch=branch,
                            paddlex_warning=warning, crop=digest(crop)))
    rectified = rectifier_cases(modules, shared)
    counts = {b: sum(r["branch"] == b for r in records + rectified) for b in BRANCHES}
    if not all(counts.values()):
        raise SystemExit(f"branches no case takes: {[b for b, c in counts.items() if not c]}")
    fixture = dict(source="PaddleX 3.7.2: CropByPolys(det_box_type='poly'), AutoRectifier, SortPolyBoxes "
                          "(tools/poly_crop_reference.py)",
                   images=images, branch_counts=counts, cases=records, rectifier_cases=rectified,
                   sort_cases=sort_cases(modules, detected))
    args.out.write_text(json.dumps(fixture, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"{len(records)} crop cases, {len(rectified)} rectifier cases, branches {counts}, "
          f"{len(fixture['sort_cases'])} sort cases -> {args.out} ({args.out.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
