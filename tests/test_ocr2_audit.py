"""PaddleOCR 2.10's constructor options and result format on ``ptocr.OCR``: each option given as
``PaddleOCR(**options)`` takes it changes what is read as PaddleOCR's own code does (its
pre/post-processing compiled from its sources, the model run by ptocr), and the options OCR
does not take are refused with one line saying what to do instead."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import intra_op_threads, recorded_batches
from test_postprocess import _load_paddleocr

from ptocr.errors import PtocrError
from ptocr.pipeline import OCR
from ptocr.transforms import get_rotate_crop_image, load_image, sorted_boxes


@pytest.fixture(scope="module")
def parts(shared_dir):
    from ptocr.loading import load_predictor

    models = shared_dir / "paddle_models"
    with intra_op_threads(1):
        yield {task: load_predictor(models / folder) for task, folder in (
            ("det", "ch_PP-OCRv4_det_infer"), ("rec", "ch_PP-OCRv4_rec_infer"),
            ("cls", "ch_ppocr_mobile_v2.0_cls_infer"))}


@pytest.fixture(scope="module")
def scene(shared_dir):
    return load_image(shared_dir / "images" / "scenes" / "ger_1.jpg")


@pytest.fixture(scope="module")
def paddle(paddleocr_src):
    return {
        **_load_paddleocr(paddleocr_src, "ppocr/data/imaug/operators.py",
                          ["DetResizeForTest", "NormalizeImage", "ToCHWImage"]),
        **_load_paddleocr(paddleocr_src, "ppocr/postprocess/db_postprocess.py", ["DBPostProcess"]),
        **_load_paddleocr(paddleocr_src, "tools/infer/predict_det.py", ["TextDetector"]),
    }


def _paddle_detect(paddle, det, img, options: dict) -> np.ndarray:
    """TextDetector.predict with ``options`` (PaddleOCR's names): its own resize, normalization,
    DB post-processing and filter around ptocr's network."""
    data = {"image": img}
    for op in (paddle["DetResizeForTest"](limit_side_len=options["det_limit_side_len"],
                                          limit_type=options["det_limit_type"]),
               paddle["NormalizeImage"](std=[0.229, 0.224, 0.225], mean=[0.485, 0.456, 0.406], scale="1./255.",
                                        order="hwc"),
               paddle["ToCHWImage"]()):
        data = op(data)
    prob = det.forward(data["image"][None])
    post = paddle["DBPostProcess"](thresh=options["det_db_thresh"], box_thresh=options["det_db_box_thresh"],
                                   max_candidates=1000, unclip_ratio=options["det_db_unclip_ratio"],
                                   use_dilation=options["use_dilation"], score_mode=options["det_db_score_mode"],
                                   box_type="quad")
    points = post({"maps": prob}, data["shape"][None])[0]["points"]
    detector = object.__new__(paddle["TextDetector"])
    return detector.filter_tag_det_res(points, img.shape)


@pytest.mark.parametrize("options", [
    dict(det_limit_side_len=736, det_limit_type="min", det_db_thresh=0.2, det_db_box_thresh=0.5,
         det_db_unclip_ratio=2.0, use_dilation=True, det_db_score_mode="slow"),
    dict(det_limit_side_len=320, det_limit_type="max", det_db_thresh=0.4, det_db_box_thresh=0.7,
         det_db_unclip_ratio=1.2, use_dilation=False, det_db_score_mode="fast"),
])
def test_det_options_detect_as_paddleocr(parts, scene, paddle, options):
    ocr = OCR(parts["det"], parts["rec"], **options)
    expected = _paddle_detect(paddle, parts["det"], scene, options)
    got = ocr.det(scene).boxes
    assert len(got) > 0 and np.array_equal(got, expected)
    # the predictor given keeps its own settings: the pipeline has its own copy
    assert parts["det"].post.box_thresh == 0.6 and parts["det"].pre.limit_side_len == 960
    assert ocr.det.model is parts["det"].model


def _crops(ocr, img):
    return [get_rotate_crop_image(img, b) for b in sorted_boxes(ocr.det(img).boxes)]


def _paddle_rec_batches(crops, image_shape, batch_num) -> list[tuple[int, ...]]:
    """The batch shapes TextRecognizer.__call__ feeds its network (predict_rec.py)."""
    _, img_h, img_w = image_shape
    order = np.argsort(np.array([c.shape[1] / float(c.shape[0]) for c in crops]))
    shapes = []
    for start in range(0, len(crops), batch_num):
        batch = [crops[i] for i in order[start:start + batch_num]]
        ratio = max([img_w / img_h] + [c.shape[1] * 1.0 / c.shape[0] for c in batch])
        shapes.append((len(batch), 3, img_h, int(img_h * ratio)))
    return shapes


def test_rec_options_batch_as_paddleocr(parts, scene):
    ocr = OCR(parts["det"], parts["rec"], rec_batch_num=2, rec_image_shape="3, 48, 160", max_text_length=25,
              use_space_char=True)
    crops = _crops(ocr, scene)
    assert len(crops) >= 3
    with recorded_batches(ocr.rec) as shapes:
        ocr(scene)
    assert shapes == _paddle_rec_batches(crops, (3, 48, 160), 2)
    assert parts["rec"].pre.batch_size == 6 and parts["rec"].pre.image_shape == (3, 48, 320)


def test_cls_options_as_paddleocr(parts, scene):
    ocr = OCR(parts["det"], parts["rec"], parts["cls"], cls_thresh=0.999, cls_batch_num=2)
    crops = _crops(ocr, scene)
    labels = parts["cls"](crops)
    expected = [180 if "180" in label and score > 0.999 else 0 for label, score in labels]
    with recorded_batches(ocr.cls) as shapes:
        result = ocr(scene)
    assert [s[0] for s in shapes] == [2] * (len(crops) // 2) + ([len(crops) % 2] if len(crops) % 2 else [])
    kept = [angle for angle, (_, score) in zip(expected, parts["rec"](crops)) if score >= 0.5]
    assert [line.angle for line in result] == kept
    assert parts["cls"].thresh == 0.9 and parts["cls"].pre.batch_size == 6


def test_use_angle_cls(parts):
    assert OCR(parts["det"], parts["rec"], parts["cls"], use_angle_cls=False).cls is None
    assert OCR(parts["det"], parts["rec"], parts["cls"], use_angle_cls=True).cls is parts["cls"]
    with pytest.raises(PtocrError, match="needs a direction classifier"):
        OCR(parts["det"], parts["rec"], use_angle_cls=True)


@pytest.mark.parametrize("options, message", [
    (dict(lang="en"), "lang picks the det and rec models: give the language's recognizer as rec="),
    (dict(rec_char_dict_path="keys.txt"), "ptocr-convert --dict"),
    (dict(use_gpu=True), "device='cuda'"),
    (dict(page_num=2), "pages="),
    (dict(return_word_box=True), "PP-OCRv5_server"),
    (dict(show_log=False), "drop it"),
    (dict(det_db_treshold=0.3), "did you mean det_db_thresh"),
    (dict(det_box_type="poly"), "quadrilateral boxes only"),
    (dict(use_space_char=False), "converted with the space class"),
    (dict(det_db_thresh="0.3"), "det_db_thresh must be a finite number"),
    (dict(drop_score=math.nan), "drop_score must be a finite number"),
    (dict(rec_batch_num=0), "rec_batch_num must be a positive integer"),
    (dict(use_dilation="false"), "use_dilation must be True or False"),
    (dict(det_limit_type="long"), "det_limit_type='long'"),
    (dict(det_db_score_mode="mean"), "score_mode must be 'fast' or 'slow'"),
    (dict(rec_image_shape="3, 48"), "rec_image_shape must be 'C, H, W'"),
    (dict(label_list=["0"]), "the classifier has 2 classes"),
])
def test_refused_options_say_what_to_do(parts, options, message):
    with pytest.raises(PtocrError, match=message.replace("(", r"\(").replace(".", r"\.")):
        OCR(parts["det"], parts["rec"], parts["cls"], **options)


def test_to_paddleocr_is_paddleocrs_per_image_value(parts, scene):
    """``[[box, (text, score)], ...]`` of the kept lines, None for an image with none
    (PaddleOCR.ocr: ``if not dt_boxes and not rec_res: None``)."""
    ocr = OCR(parts["det"], parts["rec"])
    boxes = sorted_boxes(ocr.det(scene).boxes)
    texts = parts["rec"]([get_rotate_crop_image(scene, b) for b in boxes])
    expected = [[box.tolist(), res] for box, res in zip(boxes, texts) if res[1] >= 0.5]
    assert ocr(scene).to_paddleocr() == expected and expected
    assert ocr(np.full((64, 64, 3), 255, np.uint8)).to_paddleocr() is None
    assert OCR(parts["det"], parts["rec"], drop_score=1.01)(scene).to_paddleocr() is None


def test_refusals_keep_cls_as_a_keyword(parts):
    """The check of other options leaves OCR's own keywords alone (cls= among them)."""
    assert OCR(det=parts["det"], rec=parts["rec"], cls=None).cls is None


def test_a_polygon_detector_filters_as_predict_det(parts, scene, paddle):
    # Its polygons went through the quadrilateral filter (reordered as 4 corners, or dropped);
    # predict_det only clips them (det_box_type='poly'), padding each to the same point count.
    import copy

    from ptocr.postprocess import DBPostProcess

    det = copy.copy(parts["det"])
    det.post = DBPostProcess(box_type="poly", unclip_ratio=1.5, box_thresh=0.6)
    x, info = det.pre(scene)
    prob = det.forward(x[None])
    got = det.boxes(prob[0], info, scene.shape)
    reference = paddle["DBPostProcess"](thresh=0.3, box_thresh=0.6, max_candidates=1000, unclip_ratio=1.5,
                                        box_type="poly")({"maps": prob}, np.asarray(info, dtype=np.float64)[None])[0]
    detector = object.__new__(paddle["TextDetector"])
    expected = detector.filter_tag_det_res_only_clip(reference["points"], scene.shape)
    assert len(got.boxes) > 0 and max(len(p) for p in reference["points"]) > 4
    assert np.array_equal(got.boxes, np.asarray(expected)) and len(got.scores) == len(got.boxes)
