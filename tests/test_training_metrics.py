"""ptocr.training.metrics: PaddleOCR's eval metrics (ppocr/metrics det_metric.py + eval_det_iou.py,
rec_metric.py, cls_metric.py). Expected numbers are derived by hand from those sources' rules."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ptocr.dictionary import Dictionary
from ptocr.errors import PtocrError
from ptocr.predictors import DetResult
from ptocr.training.metrics import (ClsMetric, DetCounts, DetMetric, RecMetric, combine_counts, evaluate_det,
                                    evaluate_image, evaluate_rec, levenshtein, normalized_edit_distance)
from tests.conftest import recorded_batches

EPS = 1e-5  # rec_metric.py / cls_metric.py's denominator guard


def rect(x0, y0, x1, y1):
    """A clockwise axis-aligned box as DB returns it (4 x 2)."""
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float32)


BOWTIE = np.array([[0, 0], [10, 10], [10, 0], [0, 10]], dtype=np.float32)   # self-crossing: invalid
COLLINEAR = np.array([[0, 0], [5, 0], [10, 0], [20, 0]], dtype=np.float32)  # zero area: invalid


# ---------------------------------------------------------------- detection, one image

def test_dont_care_region_removed_from_both_sides():
    # GT A = [0,10]^2 (care), GT B = [20,30]x[0,10] ("###").
    # P1 = [1,11]x[0,10]: IoU with A = 90 / (100 + 100 - 90) = 0.818 > 0.5 -> match.
    # P2 = [21,31]x[0,10]: 90 of its 100 inside B -> 0.9 > 0.5 -> "don't care", leaves the counts.
    # P3 = [50,60]^2: overlaps nothing -> a false positive.
    # gt_care = 1, det_care = 2, matched = 1: precision 1/2, recall 1, hmean 2*(1/2)*1/(3/2) = 2/3.
    counts = evaluate_image([rect(1, 0, 11, 10), rect(21, 0, 31, 10), rect(50, 50, 60, 60)],
                            [rect(0, 0, 10, 10), rect(20, 0, 30, 10)], [False, True])
    assert counts == DetCounts(gt_care=1, det_care=2, matched=1)
    metric = DetMetric()
    metric.update([rect(1, 0, 11, 10), rect(21, 0, 31, 10), rect(50, 50, 60, 60)],
                  [rect(0, 0, 10, 10), rect(20, 0, 30, 10)], [False, True])
    assert metric.get_metric() == pytest.approx({"precision": 0.5, "recall": 1.0, "hmean": 2 / 3})


def test_thresholds_are_strict():
    # Area precision exactly 0.5 (P = [25,35]x[0,10], half inside the "###" GT [20,30]x[0,10]) is
    # not "> 0.5": P stays a care prediction (unmatched). IoU exactly 0.5 ([0,10]x[0,5] against
    # [0,10]^2: 50 / 100) is not "> 0.5": no match. IoU 0.6 ([0,10]x[0,6]) matches.
    assert evaluate_image([rect(25, 0, 35, 10)], [rect(20, 0, 30, 10)], [True]) == DetCounts(0, 1, 0)
    assert evaluate_image([rect(0, 0, 10, 5)], [rect(0, 0, 10, 10)]) == DetCounts(1, 1, 0)
    assert evaluate_image([rect(0, 0, 10, 6)], [rect(0, 0, 10, 10)]) == DetCounts(1, 1, 1)


def test_one_prediction_matches_one_gt_only():
    # Two GTs [0,10]^2 and [1,11]x[0,10], one prediction [0,10]^2 (IoU 1 and 90/110 with them):
    # the first GT takes it, the second finds it taken -> 1 match of 2 GTs.
    assert evaluate_image([rect(0, 0, 10, 10)], [rect(0, 0, 10, 10), rect(1, 0, 11, 10)]) == DetCounts(2, 1, 1)


def test_matching_is_greedy_in_order_not_optimal():
    # GT1 = [0,10]^2, GT2 = [4,14]x[0,10]; predictions P1 = [2,12]x[0,10], P2 = [0,10]^2.
    # IoU(GT1,P1) = 80/120, IoU(GT1,P2) = 1, IoU(GT2,P1) = 80/120, IoU(GT2,P2) = 60/140 = 0.43.
    # eval_det_iou.py: GT1 takes the first free prediction above 0.5 = P1; GT2 is left with P2
    # (0.43): 1 match, where an optimal assignment (GT1-P2, GT2-P1) would give 2.
    assert evaluate_image([rect(2, 0, 12, 10), rect(0, 0, 10, 10)],
                          [rect(0, 0, 10, 10), rect(4, 0, 14, 10)]) == DetCounts(2, 2, 1)


def test_degenerate_polygons_are_dropped_before_counting():
    # GT: a valid box, a bowtie, a collinear quad, a 2-point "polygon" -> only the box is kept.
    # Predictions: the box (match), a bowtie and one with NaN -> only the box is kept.
    nan_box = rect(0, 0, 10, 10)
    nan_box[1, 0] = np.nan
    counts = evaluate_image([rect(0, 0, 10, 10), BOWTIE + 30, nan_box],
                            [rect(0, 0, 10, 10), BOWTIE, COLLINEAR, np.array([[0, 0], [5, 5]])])
    assert counts == DetCounts(1, 1, 1)


def test_invalid_dont_care_gt_protects_nothing():
    # The "###" GT is a bowtie, dropped as invalid: a prediction on it is no longer "don't care"
    # and counts as a false positive (det_care 1, gt_care 0).
    assert evaluate_image([rect(0, 0, 10, 10)], [BOWTIE], [True]) == DetCounts(0, 1, 0)


def test_empty_sides():
    assert evaluate_image([], []) == DetCounts(0, 0, 0)
    assert evaluate_image(np.zeros((0, 4, 2), np.float32), [rect(0, 0, 5, 5)]) == DetCounts(1, 0, 0)
    # combine_results: 0 (not 1) where a sum is 0
    assert combine_counts([DetCounts(0, 0, 0)]) == {"precision": 0.0, "recall": 0.0, "hmean": 0.0}
    assert combine_counts([]) == {"precision": 0.0, "recall": 0.0, "hmean": 0.0}


def test_polygons_and_padded_polygons_count_alike():
    # An 8-point outline of [0,10]^2 (points on the edges), the same padded by repeating its last
    # point (ptocr's box_type='poly' output), and as a DetResult: all one match with the 4-point GT.
    octagon = np.array([[0, 0], [5, 0], [10, 0], [10, 5], [10, 10], [5, 10], [0, 10], [0, 5]], np.float32)
    padded = np.concatenate([octagon, octagon[-1:].repeat(3, axis=0)])
    for pred in ([octagon], [padded], DetResult(np.stack([padded]), np.array([0.9]))):
        metric = DetMetric()
        assert metric.update(pred, [rect(0, 0, 10, 10)]) == DetCounts(1, 1, 1)


def test_ignore_tags_must_match_polygons():
    with pytest.raises(ValueError, match="ignore tags"):
        evaluate_image([], [rect(0, 0, 1, 1)], [True, False])


# ---------------------------------------------------------------- detection, accumulation

def test_totals_are_sums_not_means_and_get_metric_resets():
    # Image 1: 1 GT, 1 matching prediction. Image 2: 3 GTs, 1 prediction matching one of them.
    # Mean of per-image recalls would be (1 + 1/3) / 2 = 2/3; PaddleOCR sums: recall 2/4,
    # precision 2/2, hmean 2*0.5*1/1.5 = 2/3.
    metric = DetMetric()
    metric.update(DetResult(np.stack([rect(0, 0, 10, 10)]), np.array([0.9])), [rect(0, 0, 10, 10)])
    metric.update([rect(0, 0, 10, 10)], [rect(0, 0, 10, 10), rect(20, 0, 30, 10), rect(40, 0, 50, 10)])
    assert metric.get_metric() == pytest.approx({"precision": 1.0, "recall": 0.5, "hmean": 2 / 3})
    assert metric.get_metric() == {"precision": 0.0, "recall": 0.0, "hmean": 0.0}


def test_image_without_gt_adds_false_positives():
    # Image 1: 1 GT matched; image 2: no GT, 1 prediction -> matched 1, gt 1, det 2.
    metric = DetMetric()
    metric.update([rect(0, 0, 10, 10)], [rect(0, 0, 10, 10)])
    metric.update([rect(0, 0, 10, 10)], [])
    assert metric.get_metric() == pytest.approx({"precision": 0.5, "recall": 1.0, "hmean": 2 / 3})


# ---------------------------------------------------------------- label files

def test_det_label_file_joins_data_dir_and_keeps_images_without_text(tmp_path):
    # a.jpg: its one care GT matched, the prediction on "###" dropped; b.jpg ("[]", no text): its
    # two predictions are false positives -> matched 1, GT 1, predictions 3: P 1/3, R 1, H 1/2.
    label = tmp_path / "det.txt"
    label.write_text(
        'a.jpg\t[{"transcription": "HI", "points": [[0, 0], [10, 0], [10, 10], [0, 10]]}, '
        '{"transcription": "###", "points": [[20, 0], [30, 0], [30, 10], [20, 10]]}]\n'
        "\n"
        "b.jpg\t[]\n", encoding="utf-8")
    seen = []

    def predictor(image):
        seen.append(image)
        return DetResult(np.array([rect(0, 0, 10, 10), rect(20, 0, 30, 10)]), np.ones(2, np.float32))

    got = evaluate_det(predictor, label, data_dir=tmp_path / "imgs", pipeline="predictor")
    assert seen == [str(tmp_path / "imgs" / "a.jpg"), str(tmp_path / "imgs" / "b.jpg")]
    assert got == pytest.approx({"precision": 1 / 3, "recall": 1.0, "hmean": 0.5})


@pytest.mark.parametrize("line, message", [
    ("a.jpg [] no tab", "expected 'image path"),
    ("a.jpg\t[{", "not JSON"),
    ('a.jpg\t{"points": []}', "JSON list"),
    ('a.jpg\t[{"points": [[0, 0], [1, 1], [2, 0]]}]', "'transcription'"),
    ('a.jpg\t[{"transcription": "x", "points": [0, 1, 2]}]', r"is not \[x, y\]"),
    ('a.jpg\t[{"transcription": "x", "points": [["a", "b"]]}]', "at least 3"),
])
def test_det_label_errors_name_file_and_line(tmp_path, line, message):
    label = tmp_path / "bad.txt"
    label.write_text('ok.jpg\t[]\n' + line + "\n", encoding="utf-8")
    with pytest.raises(PtocrError, match=message) as err:
        evaluate_det(lambda image: DetResult(np.zeros((0, 4, 2), np.float32), np.zeros(0)), label,
                     pipeline="predictor")
    assert f"{label}:2" in str(err.value)


def test_evaluate_det_reads_the_label_file(tmp_path):
    # The first test's image through a label file and a stub predictor: precision 1/2, recall 1.
    label = tmp_path / "det.txt"
    label.write_text('x.jpg\t[{"transcription": "A", "points": [[0, 0], [10, 0], [10, 10], [0, 10]]}, '
                     '{"transcription": "###", "points": [[20, 0], [30, 0], [30, 10], [20, 10]]}]\n', encoding="utf-8")
    seen = []

    def predictor(image):
        seen.append(image)
        return DetResult(np.stack([rect(1, 0, 11, 10), rect(21, 0, 31, 10), rect(50, 50, 60, 60)]), np.ones(3))

    result = evaluate_det(predictor, label, data_dir="root", pipeline="predictor")
    assert result == pytest.approx({"precision": 0.5, "recall": 1.0, "hmean": 2 / 3})
    assert seen == [os.path.join("root", "x.jpg")]
    with pytest.raises(ValueError, match="pipeline"):
        evaluate_det(predictor, label, pipeline="train")


# ---------------------------------------------------------------- edit distance

def reference_levenshtein(a: str, b: str) -> int:
    """Textbook full-matrix dynamic programming."""
    d = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        d[i][0] = i
    for j in range(len(b) + 1):
        d[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
    return d[len(a)][len(b)]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="abcd韩国 ", max_size=12), st.text(alphabet="abcd韩国 ", max_size=12))
def test_levenshtein_matches_dynamic_programming(a, b):
    assert levenshtein(a, b) == reference_levenshtein(a, b) == levenshtein(b, a)
    longer = max(len(a), len(b))
    assert normalized_edit_distance(a, b) == (0.0 if longer == 0 else reference_levenshtein(a, b) / longer)


def test_levenshtein_known_values():
    assert levenshtein("kitten", "sitting") == 3
    assert normalized_edit_distance("kitten", "sitting") == 3 / 7
    assert normalized_edit_distance("", "") == 0.0 and normalized_edit_distance("", "abc") == 1.0


# ---------------------------------------------------------------- recognition and classification

PREDS = [("a b", 0.9), ("Hello!", 0.8), ("xyz", 0.5)]
LABELS = ["ab", "hello", "xy"]


def test_rec_metric_defaults():
    # ignore_space: "a b" -> "ab" == "ab" (distance 0). "Hello!" vs "hello": H->h and "!" -> 2/6.
    # "xyz" vs "xy": 1/3. acc = 1/(3+eps); norm_edit_dis = 1 - (2/6 + 1/3)/(3+eps).
    batch = RecMetric()(PREDS, LABELS)
    assert batch == pytest.approx({"acc": 1 / (3 + EPS), "norm_edit_dis": 1 - (2 / 6 + 1 / 3) / (3 + EPS)}, abs=1e-12)


def test_rec_metric_filter_and_spaces():
    # is_filter: "Hello!" -> "hello" matches; only "xyz"/"xy" (1/3) is off.
    assert RecMetric(is_filter=True)(PREDS, LABELS) == pytest.approx(
        {"acc": 2 / (3 + EPS), "norm_edit_dis": 1 - (1 / 3) / (3 + EPS)}, abs=1e-12)
    # ignore_space=False: "a b" vs "ab" is 1 deletion over 3.
    assert RecMetric(ignore_space=False)(PREDS, LABELS) == pytest.approx(
        {"acc": 0.0, "norm_edit_dis": 1 - (1 / 3 + 2 / 6 + 1 / 3) / (3 + EPS)}, abs=1e-12)


def test_rec_metric_accumulates_and_resets():
    # Batch 1: 1 of 2 right (distance 1/3); batch 2: 1 of 1 (plain strings accepted too).
    metric = RecMetric()
    assert metric.update([("ab", 1.0), ("xyz", 1.0)], ["ab", "xy"])["acc"] == pytest.approx(1 / (2 + EPS))
    assert metric.update(["q"], ["q"])["acc"] == pytest.approx(1 / (1 + EPS))
    assert metric.get_metric() == pytest.approx({"acc": 2 / (3 + EPS), "norm_edit_dis": 1 - (1 / 3) / (3 + EPS)})
    assert metric.get_metric() == {"acc": 0.0, "norm_edit_dis": 1.0}  # nothing seen: 1 - 0/eps
    with pytest.raises(ValueError):
        metric.update(["a", "b"], ["a"])


def test_cls_metric():
    metric = ClsMetric()
    assert metric([("0", 0.9), ("180", 0.6), ("0", 0.99)], ["0", "0", "0"]) == pytest.approx({"acc": 2 / (3 + EPS)})
    metric.update([("180", 0.95)], ["180"])
    assert metric.get_metric() == pytest.approx({"acc": 3 / (4 + EPS)})


def test_evaluate_rec_keeps_label_characters_of_the_dictionary(tmp_path):
    # Dictionary a, b, c (+ space): label "a€b c" is scored as "ab c" -> "abc" without spaces.
    class Stub:
        dictionary = Dictionary(("a", "b", "c"), use_space_char=True)

        def __call__(self, image):
            return ("abc", 0.9)

    label = tmp_path / "rec.txt"
    label.write_text("1.png\ta€b c\n", encoding="utf-8")
    assert evaluate_rec(Stub(), label)["acc"] == pytest.approx(1 / (1 + EPS))
    # without the filter, "abc" against "a€bc": one deletion over the longer length 4
    assert evaluate_rec(Stub(), label, dictionary_only=False) == pytest.approx(
        {"acc": 0.0, "norm_edit_dis": 1 - (1 / 4) / (1 + EPS)})


# ---------------------------------------------------------------- real models

# Texts read by eye from the images (the ch ones are PaddleOCR's doc/imgs_words examples),
# independently of any recognizer; only clearly legible words.
WORDS = {"ch/word_1.jpg": "韩国小馆", "ch/word_4.jpg": "实力活力", "ch/word_5.jpg": "西湾监管",
         "en2/word_10.png": "PAIN", "en2/word_19.png": "SLOW", "en2/word_201.png": "HOUSE",
         "en2/word_308.png": "LITTLE", "en2/word_336.png": "SUPER"}


@pytest.fixture(scope="module")
def rec_predictor(shared_dir):
    import ptocr

    return ptocr.load(shared_dir / "paddle_models" / "ch_PP-OCRv4_rec_infer")


def write_rec_labels(path, words):
    path.write_text("".join(f"{name}\t{text}\n" for name, text in words.items()), encoding="utf-8")
    return path


def test_rec_model_on_labelled_words(rec_predictor, shared_dir, tmp_path):
    words_dir, n = shared_dir / "images" / "words", len(WORDS)
    result = evaluate_rec(rec_predictor, write_rec_labels(tmp_path / "ok.txt", WORDS), data_dir=words_dir)
    assert result == pytest.approx({"acc": n / (n + EPS), "norm_edit_dis": 1.0}, abs=1e-12)
    # One label corrupted ("PAIN" -> "PAINT"): acc loses exactly 1/(n+eps), norm_edit_dis 1/5 of that.
    bad = write_rec_labels(tmp_path / "bad.txt", {**WORDS, "en2/word_10.png": "PAINT"})
    assert evaluate_rec(rec_predictor, bad, data_dir=words_dir) == pytest.approx(
        {"acc": (n - 1) / (n + EPS), "norm_edit_dis": 1 - (1 / 5) / (n + EPS)}, abs=1e-12)
    # Lower-case labels match only with is_filter (which also empties the Chinese texts on both sides).
    lower = write_rec_labels(tmp_path / "lower.txt", {k: v.lower() for k, v in WORDS.items()})
    assert evaluate_rec(rec_predictor, lower, data_dir=words_dir)["acc"] == pytest.approx(3 / (n + EPS))
    assert evaluate_rec(rec_predictor, lower, data_dir=words_dir, is_filter=True)["acc"] == pytest.approx(n / (n + EPS))


def test_det_model_scored_against_its_own_boxes(shared_dir, tmp_path):
    import json

    import ptocr

    det = ptocr.load(shared_dir / "paddle_models" / "ch_PP-OCRv4_det_infer")
    image = shared_dir / "images" / "scenes" / "00009282.jpg"   # 350 x 350
    boxes = det(image).boxes
    assert len(boxes) >= 2
    entries = [{"transcription": "###" if k == 0 else "t", "points": b.tolist()} for k, b in enumerate(boxes)]
    label = tmp_path / "det.txt"
    label.write_text(f"{image.name}\t{json.dumps(entries)}\n", encoding="utf-8")
    # Its own boxes as GT: every one matches itself (IoU 1); the "###" one leaves both sides.
    with recorded_batches(det) as shapes:
        assert evaluate_det(det, label, data_dir=image.parent, pipeline="predictor") == pytest.approx(
            {"precision": 1.0, "recall": 1.0, "hmean": 1.0})
        result = evaluate_det(det, label, data_dir=image.parent)
    # predictor: longer side limited to 960 -> 350 stays, rounded to 352. eval config's
    # DetResizeForTest defaults: shorter side raised to 736 -> 350 * 736/350 -> 736.
    assert shapes == [(1, 3, 352, 352), (1, 3, 736, 736)]
    assert all(0.0 <= v <= 1.0 for v in result.values())
