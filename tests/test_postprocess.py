"""Post-processing: DB boxes, CTC decoding, direction classes.

Inputs are constructed so the expected outputs can be worked out by hand from PaddleOCR
2.10's rules (quoted in comments).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import compile_paddleocr
from shapely.geometry import Polygon

from ptocr.errors import DictionaryError
from ptocr.postprocess import (
    ClsPostProcess,
    CTCLabelDecode,
    DBPostProcess,
    apply_cls_rotation,
    filter_tag_det_res,
    filter_tag_det_res_only_clip,
    order_points_clockwise,
    reverse_rtl,
    unclip,
)
from ptocr.transforms import DetPreprocess, load_image

# ---------------------------------------------------------------- DB


def _map(h=160, w=320):
    return np.zeros((h, w), np.float32)


def _expected_box(x0, y0, x1, y1, ratio=1.5):
    """Axis-aligned pixel block [x0..x1] x [y0..y1]: its contour's corner points span
    (x1-x0) x (y1-y0); unclip grows it by area * ratio / perimeter on every side."""
    w, h = x1 - x0, y1 - y0
    d = w * h * ratio / (2 * (w + h))
    return x0 - d, y0 - d, x1 + d, y1 + d


def _bounds(box):
    return box[:, 0].min(), box[:, 1].min(), box[:, 0].max(), box[:, 1].max()


def test_db_two_rectangles_scaled_to_source():
    m = _map()
    m[20:50, 20:120] = 0.9  # x 20..119, y 20..49
    m[100:140, 150:300] = 0.8  # x 150..299, y 100..139
    # network input was 160 x 320 for a 320 x 640 source: everything doubles
    (boxes, scores), = DBPostProcess()(m[None, None], [(320, 640, 0.5, 0.5)])
    assert boxes.dtype == np.int32 and boxes.shape == (2, 4, 2)
    order = np.argsort(boxes[:, 0, 0])
    boxes, scores = boxes[order], scores[order]
    assert scores == pytest.approx([0.9, 0.8], abs=1e-6)  # mean prob inside each box
    for box, rect in zip(boxes, [(20, 20, 119, 49), (150, 100, 299, 139)]):
        # scaled by 2, then clipped to the 640 x 320 source (the second box reaches past it)
        exp = np.clip(np.array(_expected_box(*rect)) * 2, 0, [640, 320, 640, 320])
        assert np.abs(np.array(_bounds(box)) - exp).max() <= 2.5, (_bounds(box), exp)
        # points come as tl, tr, br, bl
        assert box[0, 0] < box[1, 0] and box[0, 1] < box[3, 1] and box[2, 0] > box[3, 0]


def test_db_box_is_clipped_to_the_source_image():
    m = _map()
    m[0:30, 0:100] = 0.9  # touches the top-left corner: unclip goes negative
    (boxes, _), = DBPostProcess()(m[None], [(160, 320, 1.0, 1.0)])
    assert len(boxes) == 1 and boxes.min() == 0


def test_db_thresholds_and_min_size():
    m = _map()
    m[20:50, 20:120] = 0.5  # above thresh 0.3, mean below box_thresh 0.6: dropped
    m[80:82, 20:200] = 0.9  # 2 px high: contour rectangle's short side 1 < 3: dropped
    m[100:130, 20:120] = 0.9  # kept
    (boxes, scores), = DBPostProcess()(m[None], [(160, 320, 1, 1)])
    assert len(boxes) == 1 and scores[0] == pytest.approx(0.9, abs=1e-6)
    assert 90 < boxes[0, :, 1].mean() < 125
    (boxes, _), = DBPostProcess(box_thresh=0.4)(m[None], [(160, 320, 1, 1)])
    assert len(boxes) == 2
    (boxes, _), = DBPostProcess(thresh=0.95)(m[None], [(160, 320, 1, 1)])
    assert len(boxes) == 0 and boxes.shape == (0, 4, 2)


def test_db_min_size_applies_before_unclip():
    # A 3-px-high stripe spans 2 px between its contour points: short side 2 < 3, dropped
    # before unclipping even though unclip_ratio=3 would grow it past the second check (5).
    # A 4-px-high stripe (short side 3) passes both.
    m = _map()
    m[40:43, 20:200] = 0.9
    m[80:84, 20:200] = 0.9
    (boxes, _), = DBPostProcess(unclip_ratio=3.0)(m[None], [(160, 320, 1, 1)])
    assert len(boxes) == 1 and 75 < boxes[0, :, 1].mean() < 90


def test_db_dilation_joins_a_one_pixel_gap():
    m = _map()
    m[40:70, 20:80] = 0.9
    m[40:70, 81:140] = 0.9  # column 80 empty
    (plain, _), = DBPostProcess()(m[None], [(160, 320, 1, 1)])
    (dilated, _), = DBPostProcess(use_dilation=True)(m[None], [(160, 320, 1, 1)])
    assert len(plain) == 2 and len(dilated) == 1


def test_db_max_candidates_and_slow_score():
    m = _map()
    for k in range(4):
        m[10 + 35 * k : 35 + 35 * k, 20:200] = 0.9
    assert len(DBPostProcess()(m[None], [(160, 320, 1, 1)])[0][0]) == 4
    assert len(DBPostProcess(max_candidates=2)(m[None], [(160, 320, 1, 1)])[0][0]) == 2
    (boxes, scores), = DBPostProcess(score_mode="slow")(m[None], [(160, 320, 1, 1)])
    assert len(boxes) == 4 and np.allclose(scores, 0.9, atol=1e-6)


def test_db_rotated_rectangle_keeps_its_angle():
    m = _map(320, 320)
    pts = cv2.boxPoints(((160, 160), (200, 40), -30))
    cv2.fillPoly(m, [np.round(pts).astype(np.int32)], 0.95)
    (boxes, _), = DBPostProcess()(m[None], [(320, 320, 1, 1)])
    assert len(boxes) == 1
    tl, tr = boxes[0][0].astype(float), boxes[0][1].astype(float)
    angle = np.degrees(np.arctan2(tr[1] - tl[1], tr[0] - tl[0]))
    assert abs(abs(angle) - 30) < 2


def test_db_batch_and_input_shapes():
    a, b = _map(), _map()
    a[20:50, 20:120] = 0.9
    infos = np.array([[160, 320, 1, 1], [320, 640, 2, 2]], np.float64)
    res = DBPostProcess()(np.stack([a, b])[:, None], infos)
    assert [len(r[0]) for r in res] == [1, 0]
    # H x W with one 4-tuple, and N x H x W, give the same
    assert np.array_equal(DBPostProcess()(a, (160, 320, 1, 1))[0][0], res[0][0])
    with pytest.raises(ValueError):
        DBPostProcess()(np.stack([a, b]), [(160, 320, 1, 1)])
    with pytest.raises(ValueError):
        DBPostProcess(box_type="circle")


def test_db_poly_mode():
    m = _map()
    m[20:50, 20:120] = 0.9
    m[50:80, 60:120] = 0.9  # an L shape: a polygon, not a rectangle
    (polys, scores), = DBPostProcess(box_type="poly")(m[None], [(320, 640, 0.5, 0.5)])
    assert len(polys) == 1 and len(polys[0]) >= 6 and scores[0] > 0.6
    poly = Polygon(polys[0] / 2)
    assert poly.is_valid and poly.contains(Polygon([(25, 25), (110, 25), (110, 75), (65, 75)]))
    assert not poly.contains(Polygon([(25, 70), (40, 70), (40, 78), (25, 78)]))  # the L's gap
    padded = filter_tag_det_res_only_clip([polys[0], polys[0][:4]], (100, 100))
    assert padded.shape == (2, len(polys[0]), 2) and padded.max() <= 99
    assert np.array_equal(padded[1, 4:], np.repeat(padded[1, 3:4], len(polys[0]) - 4, axis=0))


def test_unclip_distance():
    square = np.array([[0, 0], [100, 0], [100, 100], [0, 100]], np.float32)
    (poly,) = unclip(square, 1.5)  # distance = 100*100*1.5 / 400 = 37.5
    poly = np.array(poly)
    assert np.abs(np.array(_bounds(poly)) - [-37.5, -37.5, 137.5, 137.5]).max() <= 1
    # rounded corners: area = 175^2 - (4 - pi) * 37.5^2
    assert Polygon(poly).area == pytest.approx(175**2 - (4 - np.pi) * 37.5**2, rel=0.01)
    (bigger,) = unclip(square, 2.0)
    assert np.array(bigger)[:, 0].min() == pytest.approx(-50, abs=1)


def test_order_points_and_filter_tag_det_res():
    shuffled = np.array([[50, 40], [10, 10], [10, 40], [50, 10]], np.float32)
    assert order_points_clockwise(shuffled).tolist() == [[10, 10], [50, 10], [50, 40], [10, 40]]
    boxes = np.array(
        [
            [[-5, -3], [60, -3], [60, 20], [-5, 20]],  # sticks out: clipped to 0
            [[10, 10], [13, 10], [13, 40], [10, 40]],  # 3 px wide: dropped (<= 3)
            [[90, 50], [130, 50], [130, 70], [90, 70]],  # beyond 100 x 60: clipped to 99 / 59
            [[20, 30], [40, 30], [40, 34], [20, 34]],  # 4 px high: kept
        ],
        np.int32,
    )
    out, idx = filter_tag_det_res(boxes, (60, 100, 3), return_index=True)
    assert out.dtype == np.float32 and idx.tolist() == [0, 2, 3]
    assert out[0].tolist() == [[0, 0], [60, 0], [60, 20], [0, 20]]
    assert out[1].tolist() == [[90, 50], [99, 50], [99, 59], [90, 59]]
    assert filter_tag_det_res([], (60, 100)).shape == (0, 4, 2)


def test_det_pre_and_post_round_trip_on_a_real_image(shared_dir):
    """Mark a known region of a real scene in a fake probability map built at the
    network's resolution; the box must come back around that region in source pixels."""
    path = shared_dir / "images" / "scenes" / "00009282.jpg"
    if not path.exists():
        pytest.skip(f"{path} not found")
    img = load_image(path)
    chw, info = DetPreprocess()(img)
    src_h, src_w, rh, rw = info
    x0, y0, x1, y1 = int(0.2 * src_w), int(0.4 * src_h), int(0.6 * src_w), int(0.5 * src_h)
    m = np.zeros(chw.shape[1:], np.float32)
    m[round(y0 * rh) : round(y1 * rh), round(x0 * rw) : round(x1 * rw)] = 0.9
    (boxes, _), = DBPostProcess(unclip_ratio=0.0001)(m[None, None], [info])  # ~no growth
    boxes = filter_tag_det_res(boxes, img.shape)
    assert len(boxes) == 1
    bx0, by0, bx1, by1 = _bounds(boxes[0])
    tol = 2 / min(rh, rw) + 1
    assert abs(bx0 - x0) <= tol and abs(by0 - y0) <= tol and abs(bx1 - x1) <= tol and abs(by1 - y1) <= tol


# ---------------------------------------------------------------- CTC

CHARS = ["blank", "a", "b", "c", " "]


def _probs(indices, maxprobs, num_classes=len(CHARS)):
    """T x C rows whose argmax is ``indices[t]`` with probability ``maxprobs[t]``."""
    t = len(indices)
    p = np.zeros((t, num_classes), np.float32)
    for i, (k, v) in enumerate(zip(indices, maxprobs)):
        p[i, :] = (1 - v) / (num_classes - 1)
        p[i, k] = v
    return p


def test_ctc_merges_repeats_and_drops_blanks():
    idx = [0, 1, 1, 0, 1, 2, 2, 0, 0, 3, 4, 3]
    prob = [0.9, 0.8, 0.6, 0.9, 0.7, 0.5, 0.9, 0.9, 0.9, 0.6, 0.95, 0.4]
    (text, score, pos), = CTCLabelDecode(CHARS)(_probs(idx, prob)[None], return_positions=True)
    # kept: t1 a, t4 a (a blank separates the repeats), t5 b, t9 c, t10 ' ', t11 c;
    # a run's score is its first step's probability (t2 and t6 are merged away)
    assert text == "aabc c"
    assert pos.tolist() == [1, 4, 5, 9, 10, 11]
    assert score == pytest.approx(np.mean([0.8, 0.7, 0.5, 0.6, 0.95, 0.4]), abs=1e-6)
    assert isinstance(score, float)


def test_ctc_empty_and_batch():
    blank = _probs([0] * 5, [0.99] * 5)
    word = _probs([3, 3, 0, 1, 2], [0.9, 0.8, 0.9, 0.7, 0.6])
    res = CTCLabelDecode(CHARS)(np.stack([blank, word]))
    assert res[0] == ("", 0.0)  # nothing kept: PaddleOCR scores [0]
    assert res[1][0] == "cab" and res[1][1] == pytest.approx((0.9 + 0.7 + 0.6) / 3, abs=1e-6)


def test_ctc_class_count_must_match_dictionary():
    with pytest.raises(DictionaryError, match="6 classes"):
        CTCLabelDecode(CHARS)(np.zeros((1, 4, 6), np.float32))
    with pytest.raises(DictionaryError):
        CTCLabelDecode(["blank"])


def test_ctc_decode_indices():
    res = CTCLabelDecode(CHARS).decode_indices(np.array([[1, 1, 0, 2]]))
    assert res == [("ab", 1.0)]
    with pytest.raises(DictionaryError):
        CTCLabelDecode(CHARS).decode_indices(np.array([[7]]))


def test_reverse_rtl_keeps_latin_and_digit_runs():
    assert reverse_rtl("سلام 12") == " 12مالس"
    assert reverse_rtl("abc") == "abc"
    chars = ["blank", "س", "ل", "1", "2"]
    p = _probs([1, 0, 2, 3, 4], [0.9] * 5, num_classes=5)
    assert CTCLabelDecode(chars, reverse=True)(p[None])[0][0] == "12لس"


def test_ctc_with_real_dictionary(shared_dir):
    path = shared_dir / "paddle_models" / "ch_PP-OCRv4_rec_infer" / "ppocr_keys_v1.txt"
    if not path.exists():
        pytest.skip(f"{path} not found")
    lines = path.read_text(encoding="utf-8").splitlines()
    chars = ["blank"] + lines + [" "]
    assert len(chars) == 6625
    target = "你好 PaddleOCR"
    ids = [chars.index(c) for c in target]
    seq = []
    for k in ids:  # each char over two steps, separated by blanks
        seq += [k, k, 0]
    p = _probs(seq, [0.9] * len(seq), num_classes=len(chars))
    assert CTCLabelDecode(chars)(p[None]) == [(target, pytest.approx(0.9, abs=1e-6))]


# ---------------------------------------------------------------- direction classifier


def test_cls_post_and_rotation_rule():
    probs = np.array([[0.2, 0.8], [0.95, 0.05], [0.05, 0.95]], np.float32)
    res = ClsPostProcess()(probs)
    assert [r[0] for r in res] == ["180", "0", "180"]
    assert [r[1] for r in res] == pytest.approx([0.8, 0.95, 0.95])
    crops = [np.arange(12, dtype=np.uint8).reshape(2, 2, 3) + i for i in range(3)]
    out = apply_cls_rotation(crops, res, thresh=0.9)
    assert out[0] is crops[0] and out[1] is crops[1]  # 180 but 0.8 <= 0.9; label 0
    assert np.array_equal(out[2], crops[2][::-1, ::-1])
    assert ClsPostProcess(labels=None)(probs)[0] == (1, pytest.approx(0.8))
    with pytest.raises(ValueError):
        ClsPostProcess(labels=("0", "90", "180"))(probs)


# ---------------------------------------------------------------- parity with PaddleOCR's code
# Runs PaddleOCR 2.x's own functions (read from its installed sources, paddle stubbed out)
# on the same inputs and requires identical outputs. Skipped unless a paddleocr 2.x package
# (`pip install --no-deps paddleocr==2.10.0`) is installed or $PTOCR_PADDLEOCR_SRC names one.


def _load_paddleocr(root, relpath, names):
    """Compile only the named top-level classes/functions of one PaddleOCR file."""
    import math
    import re
    import types

    import pyclipper

    paddle = types.ModuleType("paddle")
    paddle.Tensor = type("Tensor", (), {})
    ns = dict(np=np, cv2=cv2, pyclipper=pyclipper, Polygon=Polygon, paddle=paddle, math=math, re=re)
    return compile_paddleocr(root, relpath, names, ns)


@pytest.fixture(scope="module")
def paddle_ref(paddleocr_src):
    root = paddleocr_src
    return {
        **_load_paddleocr(root, "ppocr/postprocess/db_postprocess.py", ["DBPostProcess"]),
        **_load_paddleocr(root, "ppocr/postprocess/rec_postprocess.py", ["BaseRecLabelDecode", "CTCLabelDecode"]),
        **_load_paddleocr(root, "ppocr/postprocess/cls_postprocess.py", ["ClsPostProcess"]),
        **_load_paddleocr(root, "tools/infer/utility.py", ["get_rotate_crop_image", "get_minarea_rect_crop"]),
        **_load_paddleocr(root, "tools/infer/predict_system.py", ["sorted_boxes"]),
        **_load_paddleocr(root, "tools/infer/predict_det.py", ["TextDetector"]),
    }


def _synthetic_prob_map(rng, h, w, k):
    m = np.zeros((h, w), np.float32)
    for _ in range(k):
        center = (rng.uniform(0, w), rng.uniform(0, h))
        size = (rng.uniform(2, w / 2), rng.uniform(2, h / 6))
        angle = rng.uniform(-60, 60) if rng.random() < 0.5 else 0
        pts = cv2.boxPoints((center, size, angle))
        cv2.fillPoly(m, [np.round(pts).astype(np.int32)], float(rng.uniform(0.4, 1.0)))
    if rng.random() < 0.5:
        m = cv2.GaussianBlur(m, (0, 0), float(rng.uniform(0.5, 3)))
    return np.clip(m + rng.normal(0, 0.08, m.shape).astype(np.float32), 0, 1)


def test_parity_db_filter_sort_crop(paddle_ref):
    from ptocr.transforms import get_minarea_rect_crop, get_rotate_crop_image, sorted_boxes

    rng = np.random.default_rng(0)
    detector = paddle_ref["TextDetector"].__new__(paddle_ref["TextDetector"])
    scene = np.ascontiguousarray(rng.integers(0, 256, (700, 900, 3), dtype=np.uint8))
    n_boxes = 0
    for trial in range(40):
        h, w = 32 * int(rng.integers(2, 30)), 32 * int(rng.integers(2, 30))
        m = _synthetic_prob_map(rng, h, w, int(rng.integers(1, 25)))
        src_h, src_w = int(rng.integers(10, 3000)), int(rng.integers(10, 3000))
        shape = np.array([src_h, src_w, h / src_h, w / src_w])
        for kw in [{}, {"use_dilation": True}, {"score_mode": "slow"}, {"box_type": "poly"}]:
            cfg = dict(thresh=0.3, box_thresh=0.6, unclip_ratio=1.5, **kw)
            ref = paddle_ref["DBPostProcess"](**cfg)
            mask = m > 0.3
            if ref.dilation_kernel is not None:
                mask = cv2.dilate(mask.astype(np.uint8), ref.dilation_kernel)
            # PaddleOCR's __call__ drops the scores: call the same internals it calls
            fn = ref.polygons_from_bitmap if kw.get("box_type") == "poly" else ref.boxes_from_bitmap
            ref_boxes, ref_scores = fn(m, mask, shape[1], shape[0])
            (boxes, scores), = DBPostProcess(**cfg)(m[None, None], shape[None])
            assert len(boxes) == len(ref_boxes), (trial, kw)
            assert np.array_equal(scores, np.array(ref_scores, dtype=np.float64)), (trial, kw)
            if kw.get("box_type") == "poly":
                assert all(np.array_equal(a, np.array(b)) for a, b in zip(boxes, ref_boxes))
                if boxes:
                    assert np.array_equal(
                        filter_tag_det_res_only_clip(boxes, (src_h, src_w)),
                        detector.filter_tag_det_res_only_clip(ref_boxes, (src_h, src_w)),
                    )
                continue
            if len(boxes) == 0:
                continue
            n_boxes += len(boxes)
            assert np.array_equal(boxes, ref_boxes)
            ref_kept = detector.filter_tag_det_res(ref_boxes, (src_h, src_w, 3))
            kept = filter_tag_det_res(boxes, (src_h, src_w))
            assert kept.shape == (len(ref_kept), 4, 2) and (len(kept) == 0 or np.array_equal(kept, ref_kept))
            if len(kept) == 0:
                continue
            ours, theirs = sorted_boxes(kept), paddle_ref["sorted_boxes"](ref_kept)
            assert len(ours) == len(theirs) and all(np.array_equal(a, b) for a, b in zip(ours, theirs))
            for box in ours[:3]:
                box = np.clip(box * [900 / src_w, 700 / src_h], 0, [899, 699]).astype(np.float32)
                for fn_ours, name in [(get_rotate_crop_image, "get_rotate_crop_image"),
                                      (get_minarea_rect_crop, "get_minarea_rect_crop")]:
                    try:
                        ref_crop = paddle_ref[name](scene, box.copy())
                    except cv2.error:  # degenerate after rescaling: PaddleOCR crashes
                        continue
                    assert np.array_equal(fn_ours(scene, box.copy()), ref_crop)
    assert n_boxes > 100  # the maps really produced boxes


def test_parity_ctc_and_cls(paddle_ref, tmp_path):
    rng = np.random.default_rng(1)
    dict_path = tmp_path / "arabic_dict.txt"  # "arabic" in the path turns reversal on
    dict_path.write_text("\n".join(list("ابتثجحخدذرز") + list("0123456789abc.%")) + "\n", encoding="utf-8")
    plain_path = tmp_path / "keys.txt"
    plain_path.write_text("\n".join(chr(0x4E00 + i) for i in range(200)) + "\n", encoding="utf-8")
    for path, space, reverse in [(plain_path, True, False), (plain_path, False, False), (dict_path, True, True)]:
        ref = paddle_ref["CTCLabelDecode"](character_dict_path=str(path), use_space_char=space)
        assert ref.reverse == reverse
        ours = CTCLabelDecode(ref.character, reverse=reverse)
        for trial in range(50):
            n, t = int(rng.integers(1, 6)), int(rng.integers(1, 60))
            logits = rng.normal(0, 3, (n, t, len(ref.character))).astype(np.float32)
            logits[:, :, 0] += 6 if trial % 5 else 100  # mostly blank; sometimes all blank
            p = np.exp(logits - logits.max(-1, keepdims=True))
            p /= p.sum(-1, keepdims=True)
            assert ours(p) == ref(p)
    probs = rng.random((50, 2)).astype(np.float32)
    probs /= probs.sum(1, keepdims=True)
    ref_cls = paddle_ref["ClsPostProcess"](label_list=["0", "180"])(probs)
    assert ClsPostProcess()(probs) == [(label, float(score)) for label, score in ref_cls]

