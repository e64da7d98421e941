"""ptocr.training.CopyPaste against PaddleOCR 2.10's own class (run from its sources): the same
images, polygons, texts and ignore tags under the same seeds; and CopyPaste in DetDataset."""

from __future__ import annotations

import random

import cv2
import numpy as np
import pytest
from conftest import compile_paddleocr, det_label, seed_python_and_numpy
import torch

from ptocr.errors import PtocrError
from ptocr.training import CopyPaste, DBLoss, DetDataset, collate, det_train_transforms
from ptocr.training.data import DET_COPY_PASTE, Compose, DetLabelEncode, parse_det_label
from ptocr.transforms.image import load_image
from tests.conftest import shared_path

IMAGES = shared_path() / "images"
SCENES = sorted((IMAGES / "scenes").glob("*.jpg"))
needs_images = pytest.mark.skipif(len(SCENES) < 4, reason="shared scene images not found (set PTOCR_SHARED)")


class _UnusedAugmenter:
    """Stands in for the (albumentations) IaaAugment PaddleOCR's CopyPaste builds but never calls."""

    def __init__(self, *args, **kwargs):
        pass


@pytest.fixture(scope="module")
def paddle_copy_paste(paddleocr_src):
    from PIL import Image

    ns = dict(np=np, cv2=cv2, random=random, Image=Image, IaaAugment=_UnusedAugmenter)
    compile_paddleocr(paddleocr_src, "ppocr/data/imaug/random_crop_data.py", ["is_poly_outside_rect"], ns)
    compile_paddleocr(paddleocr_src, "tools/infer/utility.py", ["get_rotate_crop_image"], ns)
    compile_paddleocr(paddleocr_src, "ppocr/data/imaug/copy_paste.py", ["CopyPaste", "rotate_bbox"], ns)
    return ns["CopyPaste"]


@pytest.fixture(scope="module")
def scenes():
    return [load_image(str(p)) for p in SCENES]


def _encoded(image, boxes, texts):
    data = DetLabelEncode()({"label": det_label(boxes, texts)})
    return {"image": image, "polys": data["polys"], "texts": data["texts"], "ignore_tags": data["ignore_tags"]}


def _box(rng, w, h, tall=False, pentagon=False):
    """A text box of random size, slant and place (it may cross the image's border)."""
    long_side, short_side = rng.uniform(0.06, 0.4) * w, rng.uniform(0.03, 0.1) * h + 6
    bw, bh = (short_side, long_side) if tall else (long_side, short_side)
    cx, cy, theta = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(-0.3, 0.3)
    corners = [(-bw / 2, -bh / 2), (bw / 2, -bh / 2), (bw / 2, bh / 2), (-bw / 2, bh / 2)]
    if pentagon:
        corners.insert(3, (0, bh / 2 + 5))
    cos, sin = np.cos(theta), np.sin(theta)
    return [[round(cx + x * cos - y * sin, 1), round(cy + x * sin + y * cos, 1)] for x, y in corners]


def _random_sample(rng, image, count, ignored=0.2, tall=0.2, pentagon=False):
    h, w = image.shape[:2]
    boxes = [_box(rng, w, h, tall=rng.random() < tall, pentagon=pentagon and i == 0) for i in range(count)]
    texts = ["###" if rng.random() < ignored else f"word{i}" for i in range(count)]
    return _encoded(image, boxes, texts)


def _with_ext(source, other):
    """A fresh data dict (PaddleOCR's class appends to the texts list it is given)."""
    def copied(d):
        return {"image": d["image"].copy(), "polys": d["polys"].copy(), "texts": list(d["texts"]),
                "ignore_tags": d["ignore_tags"].copy()}
    return {**copied(source), "ext_data": [copied(other)]}


def _assert_same(ours, ref):
    assert ours["image"].dtype == ref["image"].dtype and ours["image"].shape == ref["image"].shape
    assert np.array_equal(ours["image"], ref["image"])
    assert ours["polys"].dtype == ref["polys"].dtype and ours["polys"].shape == ref["polys"].shape
    assert np.array_equal(ours["polys"], ref["polys"])
    assert ours["ignore_tags"].dtype == ref["ignore_tags"].dtype
    assert np.array_equal(ours["ignore_tags"], ref["ignore_tags"])
    assert ours["texts"] == ref["texts"]


def _both(paddle_cls, source, other, seed, **kwargs):
    """Ours and PaddleOCR's on the same sample and seeds; both must draw the same numbers."""
    seed_python_and_numpy(seed)
    ours = CopyPaste(**kwargs)(_with_ext(source, other))
    after = (random.random(), np.random.random())
    seed_python_and_numpy(seed)
    ref = paddle_cls(**kwargs)(_with_ext(source, other))
    assert after == (random.random(), np.random.random()), "a different number of random draws"
    _assert_same(ours, ref)
    return ours


# ---------------------------------------------------------------------------------------------
# Bit-exact against PaddleOCR's class
# ---------------------------------------------------------------------------------------------
SETTINGS = [{}, {"objects_paste_ratio": 0.5}, {"objects_paste_ratio": 1.0}, {"limit_paste": False}]


@needs_images
def test_matches_paddleocr_on_seeded_real_images(paddle_copy_paste, scenes):
    pasted, short, full = 0, 0, 0
    for seed in range(48):
        rng = np.random.default_rng(seed)
        source_image, other_image = scenes[seed % len(scenes)], scenes[(seed * 7 + 3) % len(scenes)]
        source = _random_sample(rng, source_image, int(rng.integers(1, 10)), pentagon=seed % 5 == 0)
        other = _random_sample(rng, other_image, int(rng.integers(1, 36)), ignored=0.25, tall=0.3)
        kwargs = SETTINGS[seed % len(SETTINGS)]
        ours = _both(paddle_copy_paste, source, other, seed, **kwargs)
        added = len(ours["polys"]) - len(source["polys"])
        cared = int((~other["ignore_tags"]).sum())
        tried = min(cared, max(1, min(int(kwargs.get("objects_paste_ratio", 0.2) * len(other["polys"])), 30)))
        pasted += added
        short += added < tried
        full += tried > 0 and added == tried
        assert ours["polys"].shape[1:] == (source["polys"].shape[1], 2)
        cared_texts = {t for t, tag in zip(other["texts"], other["ignore_tags"]) if not tag}
        assert set(ours["texts"][len(source["texts"]):]) <= cared_texts
    # the seeds paste many boxes, and drop some (no free place, or larger than the image)
    assert pasted > 40 and short > 0 and full > 0, (pasted, short, full)


RIGHT_ANGLE_SEEDS = {48: 0, 97: 90, 267: 180, 369: 270}  # seeds whose first np.random.randint(0, 360) is that


@needs_images
def test_right_angles_and_tall_boxes(paddle_copy_paste, scenes):
    # PIL copies (0) or transposes (90, 180, 270) instead of resampling; tall crops come turned 90 degrees.
    source = _encoded(scenes[4], [[[5, 5], [60, 5], [60, 25], [5, 25]]], ["s"])
    wide = [[40, 50], [170, 58], [168, 88], [38, 80]]
    tall = [[200, 40], [232, 40], [234, 190], [198, 190]]
    for seed, angle in RIGHT_ANGLE_SEEDS.items():
        np.random.seed(seed)
        assert np.random.randint(0, 360) == angle
        for quad in (wide, tall):
            other = _encoded(scenes[5], [quad], ["o"])
            ours = _both(paddle_copy_paste, source, other, seed)
            assert len(ours["polys"]) == 2
            if angle == 0:
                box = ours["polys"][1]
                assert box[1, 1] == box[0, 1] and box[3, 0] == box[0, 0]  # upright
                crop_w, crop_h = (130, 30) if quad is wide else (150, 36)  # the tall crop lies down
                assert (box[2] - box[0]).tolist() == [crop_w, crop_h]


@needs_images
def test_degenerate_box_pastes_the_whole_warp(paddle_copy_paste, scenes):
    # A box under a pixel wide: PaddleOCR's crop warps to the other image's whole size (cv2 reads
    # the empty size as the source's), and that is what is pasted.
    other_image = scenes[1][:60, :80].copy()
    other = _encoded(other_image, [[[10, 10], [10.5, 10], [10.5, 40], [10, 40]]], ["thin"])
    source = _encoded(scenes[13], [[[5, 5], [60, 5], [60, 25], [5, 25]]], ["s"])
    for seed in range(4):
        ours = _both(paddle_copy_paste, source, other, seed)
        extent = ours["polys"][1].max(axis=0) - ours["polys"][1].min(axis=0)
        assert len(ours["polys"]) == 2 and extent.max() >= 60


@needs_images
def test_other_sample_without_cared_boxes(paddle_copy_paste, scenes):
    rng = np.random.default_rng(1)
    source = _random_sample(rng, scenes[0], 3, ignored=0.0)
    h, w = scenes[1].shape[:2]
    other = _encoded(scenes[1], [_box(rng, w, h) for _ in range(4)], ["###", "*", "###", "###"])
    ours = _both(paddle_copy_paste, source, other, 5)
    assert np.array_equal(ours["image"], source["image"]) and len(ours["polys"]) == 3
    assert ours["polys"].dtype == np.float64  # PaddleOCR's CopyPaste leaves float64 polygons, clipped
    seed_python_and_numpy(5)
    expected = random.random()
    seed_python_and_numpy(5)
    CopyPaste()(_with_ext(source, other))
    assert random.random() == expected  # shuffling nothing draws nothing


@needs_images
def test_paste_rejected_for_overlap_with_an_ignored_box(paddle_copy_paste, scenes):
    image = scenes[2]
    h, w = image.shape[:2]
    rng = np.random.default_rng(2)
    # An ignored box over the whole image: no place is free, every paste is rejected after 50 tries.
    source = _encoded(image, [[[0, 0], [w, 0], [w, h], [0, h]], _box(rng, w, h)], ["###", "kept"])
    other = _encoded(scenes[3], [[[x, 20], [x + 40, 20], [x + 40, 36], [x, 36]] for x in range(10, 210, 50)],
                     ["a", "b", "c", "d"])
    for seed in range(3):
        ours = _both(paddle_copy_paste, source, other, seed, objects_paste_ratio=1.0)
        assert np.array_equal(ours["image"], image) and len(ours["polys"]) == 2
        ours = _both(paddle_copy_paste, source, other, seed, objects_paste_ratio=1.0, limit_paste=False)
        assert len(ours["polys"]) == 6 and not np.array_equal(ours["image"], image)
        assert ours["ignore_tags"].tolist() == [True, False, False, False, False, False]


@needs_images
def test_boxes_larger_than_the_image_are_not_pasted(paddle_copy_paste, scenes):
    small = scenes[0][:30, :40].copy()
    source = _encoded(small, [[[2, 2], [20, 2], [20, 10], [2, 10]]], ["x"])
    other = _encoded(scenes[1], [[[10, 10], [110, 10], [110, 30], [10, 30]], [[50, 60], [170, 60], [170, 85], [50, 85]]],
                     ["big", "bigger"])
    for seed in range(4):
        ours = _both(paddle_copy_paste, source, other, seed, objects_paste_ratio=1.0)
        assert np.array_equal(ours["image"], small) and ours["texts"] == ["x"]


@needs_images
def test_boxes_touching_and_crossing_the_border(paddle_copy_paste, scenes):
    image, other_image = scenes[4], scenes[5]
    h, w = image.shape[:2]
    oh, ow = other_image.shape[:2]
    # Source polygons past the border are clipped into the image; the other sample's boxes at
    # and across its border are cut out with replicated edges.
    source = _encoded(image, [[[-15, -5], [80, -5], [80, 30], [-15, 30]], [[w - 50, h - 20], [w + 30, h - 20],
                                                                          [w + 30, h + 10], [w - 50, h + 10]]],
                      ["a", "###"])
    other = _encoded(other_image, [[[0, 0], [90, 0], [90, 24], [0, 24]], [[ow - 70, oh - 30], [ow, oh - 30], [ow, oh], [ow - 70, oh]],
                                   [[ow - 40, 50], [ow + 25, 50], [ow + 25, 80], [ow - 40, 80]]], ["p", "q", "r"])
    pasted = 0
    for seed in range(8):
        ours = _both(paddle_copy_paste, source, other, seed, objects_paste_ratio=1.0)
        assert ours["polys"][0].tolist() == [[0, 0], [80, 0], [80, 30], [0, 30]]
        assert ours["polys"][:, :, 0].max() <= w and ours["polys"][:, :, 1].max() <= h
        assert ours["polys"].min() >= 0
        pasted += len(ours["polys"]) - 2
    assert pasted > 0


@needs_images
def test_source_without_boxes(paddle_copy_paste, scenes):
    image = scenes[6]
    polys, texts, tags = parse_det_label("[]", allow_empty=True)
    source = {"image": image, "polys": polys, "texts": texts, "ignore_tags": tags}
    other = _encoded(scenes[7], [[[30, 30], [90, 30], [90, 50], [30, 50]]], ["w"])
    ours = _both(paddle_copy_paste, source, other, 0)  # a box pasted: the same in both
    assert ours["polys"].shape == (1, 4, 2) and ours["texts"] == ["w"]
    # Nothing to paste: PaddleOCR's class fails on its empty polygon list; ptocr's keeps the empty sample.
    blocked = _encoded(scenes[7], [[[30, 30], [90, 30], [90, 50], [30, 50]]], ["###"])
    seed_python_and_numpy(0)
    out = CopyPaste()(_with_ext(source, blocked))
    assert out["polys"].shape == (0, 0, 2) and out["ignore_tags"].shape == (0,) and out["texts"] == []
    seed_python_and_numpy(0)
    with pytest.raises(IndexError):
        paddle_copy_paste()(_with_ext(source, blocked))


@needs_images
def test_refusals(paddle_copy_paste, scenes):
    triangle = _encoded(scenes[0], [[[5, 5], [40, 5], [20, 30]]], ["t"])
    other = _encoded(scenes[1], [[[30, 30], [90, 30], [90, 50], [30, 50]]], ["w"])
    seed_python_and_numpy(0)
    with pytest.raises(PtocrError, match="3 points and a pasted box 4"):
        CopyPaste()(_with_ext(triangle, other))
    seed_python_and_numpy(0)
    with pytest.raises(ValueError):  # PaddleOCR: numpy refuses the ragged polygon list
        paddle_copy_paste()(_with_ext(triangle, other))
    with pytest.raises(PtocrError, match="ext_data"):
        CopyPaste()({"image": scenes[0], "polys": triangle["polys"], "texts": ["t"], "ignore_tags": triangle["ignore_tags"]})
    pentagons = _encoded(scenes[1], [_box(np.random.default_rng(0), 300, 300, pentagon=True)], ["p"])
    with pytest.raises(PtocrError, match="5 points, not 4"):
        CopyPaste()(_with_ext(other, pentagons))


# ---------------------------------------------------------------------------------------------
# In the dataset and the det training pipeline
# ---------------------------------------------------------------------------------------------
def _write_labels(path, rows):
    path.write_text("".join(f"scenes/{name}\t{det_label(boxes, texts)}\n" for name, boxes, texts in rows),
                    encoding="utf-8")
    return path


def _quads(name, count, seed):
    image = cv2.imread(str(IMAGES / "scenes" / name))
    rng = np.random.default_rng(seed)
    return [_box(rng, image.shape[1], image.shape[0]) for _ in range(count)]


@needs_images
def test_det_dataset_draws_the_other_sample_as_paddleocr(paddle_copy_paste, tmp_path):
    names = [SCENES[0].name, SCENES[1].name, SCENES[2].name]
    pentagon = [_box(np.random.default_rng(9), 300, 200, pentagon=True)]
    rows = [(names[0], _quads(names[0], 4, 0), ["a", "b", "###", "d"]),
            (names[1], pentagon + _quads(names[1], 2, 1), ["p", "q", "r"]),  # 5 points: never the other sample
            (names[2], _quads(names[2], 6, 2), [f"c{i}" for i in range(6)])]
    label = _write_labels(tmp_path / "train.txt", rows)
    keys = ("image", "polys", "texts", "ignore_tags")
    ds = DetDataset(label, IMAGES, transforms=Compose([DetLabelEncode(), CopyPaste(objects_paste_ratio=0.5)]),
                    keep_keys=keys)

    def encoded(row):
        name, boxes, texts = row
        return _encoded(load_image(str(IMAGES / "scenes" / name)), boxes, texts)

    redrawn = 0
    for seed in range(9):
        index = seed % 3
        seed_python_and_numpy(seed)
        ours = ds[index]
        seed_python_and_numpy(seed)
        # PaddleOCR's SimpleDataSet.get_ext_data: np.random.randint(len) until the polygons have 4 points
        while True:
            other = encoded(rows[np.random.randint(3)])
            if other["polys"].shape[1] == 4:
                break
            redrawn += 1
        ref = paddle_copy_paste(objects_paste_ratio=0.5)(_with_ext(encoded(rows[index]), other))
        _assert_same({k: ours[k].numpy() if isinstance(ours[k], torch.Tensor) else ours[k] for k in keys}, ref)
    assert redrawn > 0


@needs_images
def test_det_training_pipeline_with_copy_paste(tmp_path):
    small = [p.name for p in SCENES if np.prod(cv2.imread(str(p)).shape[:2]) < 200_000][:3]
    rows = [(name, _quads(name, 5, i), ["a", "b", "c", "###", "e"]) for i, name in enumerate(small)]
    label = _write_labels(tmp_path / "train.txt", rows)
    default = det_train_transforms()
    assert "CopyPaste" not in repr(default)  # off unless asked
    configured = det_train_transforms(copy_paste={"objects_paste_ratio": 0.5, "limit_paste": False})
    assert (configured.transforms[1].objects_paste_ratio, configured.transforms[1].limit_paste) == (0.5, False)
    ds = DetDataset(label, IMAGES, copy_paste=True)
    steps = ds.transforms.transforms
    assert [type(s).__name__ for s in steps[:3]] == ["DetLabelEncode", "CopyPaste", "IaaAugment"]
    assert (steps[1].objects_paste_ratio, steps[1].limit_paste) == tuple(DET_COPY_PASTE.values()) == (0.2, True)
    seed_python_and_numpy(3)
    first = collate([ds[0], ds[1], ds[2]])
    assert first["image"].shape == (3, 3, 640, 640) and first["image"].dtype == torch.float32
    for key in ("threshold_map", "threshold_mask", "shrink_map", "shrink_mask"):
        assert first[key].shape == (3, 640, 640)
    assert torch.isfinite(DBLoss()({"maps": torch.rand(3, 3, 640, 640)}, first)["loss"])
    seed_python_and_numpy(3)
    again = collate([ds[0], ds[1], ds[2]])
    assert all(torch.equal(first[k], again[k]) for k in first)  # seeded: the same batch
    with pytest.raises(PtocrError, match="copy_paste"):
        DetDataset(label, IMAGES, transforms=default, copy_paste=True)
    triangles = _write_labels(tmp_path / "tri.txt", [(small[0], [[[5, 5], [40, 5], [20, 30]]], ["t"])])
    with pytest.raises(PtocrError, match="4 points"):
        DetDataset(triangles, IMAGES, copy_paste=True)[0]
