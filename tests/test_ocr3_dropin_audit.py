"""A PaddleOCR 3.x script moved to ptocr by swapping the class (``from ptocr import OCR3 as
PaddleOCR``), against paddleocr 3.7 / paddlex 3.7.2's API: PaddleOCR(...)'s options, predict /
predict_iter / ocr, and the result's print, save_to_img, img and doc_preprocessor_res. Real
PP-OCRv5 mobile det + rec and the PP-LCNet textline model of ../shared."""

from __future__ import annotations

import json
import warnings

import cv2
import numpy as np
import pytest
from conftest import intra_op_threads, v5_ocr3

from ptocr import pipeline3
from ptocr.errors import ImageError, PtocrError
from ptocr.pipeline3 import OCR3
from ptocr.predictors import ClsPredictor

# No test reaches a host: a default model left to fetch would fail the test, not download.
pytestmark = pytest.mark.usefixtures("loopback_only")


@pytest.fixture(scope="module")
def ocr(v5_models):
    """Built as a 3.x script builds PaddleOCR: model folders and switches by 3.x's names."""
    with intra_op_threads(1):
        yield v5_ocr3(v5_models, device="cpu", enable_mkldnn=True, precision="fp32")


@pytest.fixture(scope="module")
def scene_path(shared_dir):
    return shared_dir / "images" / "scenes" / "ger_1.jpg"


@pytest.fixture(scope="module")
def scene_result(ocr, scene_path):
    return ocr.predict(str(scene_path))


def test_constructor_takes_paddleocr3_model_options(v5_models, ocr, scene_result):
    """PaddleOCR(text_detection_model_dir=..., ...) picks the same models as OCR3(det, rec, textline)."""
    assert ocr.textline is not None and ocr.doc_ori is None and ocr.doc_unwarp is None
    with intra_op_threads(1):
        explicit = OCR3(v5_models["det"], v5_models["rec"], v5_models["textline"])(scene_result[0].source)
    assert scene_result[0].texts == explicit.texts and len(explicit.texts) > 3
    no_textline = OCR3(text_detection_model_dir=v5_models["det"], text_recognition_model_dir=v5_models["rec"],
                       use_textline_orientation=False)
    assert no_textline.textline is None


def test_deprecated_2x_names_taken_as_37_takes_them(v5_models):
    """paddleocr 3.7 maps det_model_dir, det_db_box_thresh, use_angle_cls, ... to 3.x names with a
    DeprecationWarning, and an old and new name together are an error."""
    with pytest.warns(DeprecationWarning, match="det_db_box_thresh"):
        old = OCR3(det_model_dir=v5_models["det"], rec_model_dir=v5_models["rec"], use_angle_cls=False,
                   det_db_box_thresh=0.7, rec_batch_num=2)
    assert old.textline is None and old.settings["text_det_box_thresh"] == 0.7
    assert old.settings["text_recognition_batch_size"] == 2
    with pytest.raises(PtocrError, match="mutually exclusive"), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        OCR3(v5_models["det"], v5_models["rec"], det_db_thresh=0.2, text_det_thresh=0.3)


def test_lang_and_ocr_version_pick_the_models_37_picks():
    """paddleocr 3.7's _get_ocr_model_names: no lang / version -> PP-OCRv6_medium; a v6 language ->
    v6; other codes -> their PP-OCRv5 recognizer; v3 / v4 their PaddleX releases (every code and
    version: tests/test_paddleocr3_model_names.py)."""
    names = pipeline3.paddleocr3_model_names
    assert names(None, None) == ("PP-OCRv6_medium_det", "PP-OCRv6_medium_rec")
    assert names("fr", None) == ("PP-OCRv6_medium_det", "PP-OCRv6_medium_rec")
    assert names("ru", None) == ("PP-OCRv5_server_det", "eslav_PP-OCRv5_mobile_rec")
    assert names("ch", "PP-OCRv5") == ("PP-OCRv5_server_det", "PP-OCRv5_server_rec")
    assert names("ch", "PP-OCRv4") == ("PP-OCRv4_mobile_det", "PP-OCRv4_mobile_rec")
    assert names("ka", None) == ("PP-OCRv3_mobile_det", "ka_PP-OCRv3_mobile_rec")  # 3.7: v3 only
    with pytest.raises(PtocrError, match="did you mean PP-OCRv5"):
        names(None, "PP-OCRv5.0")
    with pytest.raises(PtocrError, match="no PP-OCRv4 model for it"):  # 3.7: "No models are available"
        OCR3(lang="fr", ocr_version="PP-OCRv4")


def test_engine_options_taken_or_refused_with_what_to_do():
    device = pipeline3.torch_device
    assert (device("gpu:1"), device("gpu"), device("cpu")) == ("cuda:1", "cuda", "cpu")
    with pytest.raises(PtocrError, match="one pipeline per device"):
        device("gpu:0,1")
    with pytest.raises(PtocrError, match="Paddle device"):
        device("npu:0")
    refused = {"enable_hpi": True, "use_tensorrt": True, "paddlex_config": "OCR.yaml", "engine": "onnxruntime"}
    for name, value in refused.items():
        with pytest.raises(PtocrError, match=f"{name}="):
            OCR3(**{name: value})
    with pytest.raises(PtocrError, match="fp32, fp16"):
        OCR3(precision="int8")


def test_unknown_names_say_did_you_mean(v5_models, ocr):
    with pytest.raises(PtocrError, match="did you mean text_det_box_thresh"):
        OCR3(v5_models["det"], v5_models["rec"], text_det_box_tresh=0.5)
    with pytest.raises(PtocrError, match="did you mean text_recognition_model_dir"):
        OCR3(text_recogniton_model_dir=v5_models["rec"])
    with pytest.raises(PtocrError, match="not a model of ptocr's zoo.*PP-OCRv5_mobile_det"):
        OCR3(text_detection_model_name="PP-OCRv5_mobil_det")
    with pytest.raises(PtocrError, match="when the pipeline is made"):
        ocr.predict(np.zeros((32, 32, 3), np.uint8), device="cpu")


def test_predict_predict_iter_and_ocr_as_37(ocr, scene_path, scene_result):
    """predict: a list even for one image; predict_iter: a generator; ocr: predict, deprecated."""
    assert isinstance(scene_result, list) and len(scene_result) == 1
    scene = cv2.imread(str(scene_path))
    gen = ocr.predict_iter([scene, str(scene_path)], use_textline_orientation=False)
    assert not isinstance(gen, list)
    first, second = list(gen)
    assert first.texts == second.texts and first.textline_orientation_angles[0] == -1
    with pytest.warns(DeprecationWarning, match="predict"):
        old = ocr.ocr(str(scene_path))
    assert isinstance(old, list) and old[0].texts == scene_result[0].texts
    with pytest.raises(ImageError, match="does not download"):
        ocr.predict("http://127.0.0.1:9/scan.png")


def test_print_shows_res_as_paddlex(scene_result, capsys):
    res = scene_result[0]
    res.print()
    shown = capsys.readouterr().out
    assert shown.startswith("{'res': {'input_path':") and "'rec_texts':" in shown and "array(" in shown
    res.print(json_format=True)
    assert json.loads(capsys.readouterr().out)["res"]["rec_texts"] == res.texts


def test_save_to_img_names_files_as_paddlex(scene_result, tmp_path):
    res = scene_result[0]
    images = res.img
    assert list(images) == ["ocr_res_img"]
    h, w = res.image.shape[:2]
    assert images["ocr_res_img"].size == (2 * w, h)
    res.save_to_img(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ger_1_ocr_res_img.jpg"]
    res.save_to_img(tmp_path / "one.png")
    assert cv2.imread(str(tmp_path / "one.png")).shape == (h, 2 * w, 3)


class _Sideways(ClsPredictor):
    """A document orientation model's answer without a model: always 90 degrees."""

    def __init__(self):
        import torch

        self.task, self.device = "cls", torch.device("cpu")

    def __call__(self, image):
        return ("90", 1.0)


def test_doc_preprocessor_res_holds_input_rot_and_output_img(v5_models, scene_path, tmp_path):
    """paddlex's doc_preprocessor_res: input_img (as read), rot_img (turned), output_img, angle;
    bulk reading gives the same."""
    with intra_op_threads(1):
        ocr = OCR3(v5_models["det"], v5_models["rec"], None, _Sideways())
        res = ocr.predict(str(scene_path))[0]
        bulk = ocr.read_many([str(scene_path)], workers=1)[0]
    scene = cv2.imread(str(scene_path))
    doc = res["doc_preprocessor_res"]
    assert np.array_equal(doc["input_img"], scene)
    assert doc["rot_img"].shape == scene.shape[1::-1] + (3,) and doc["angle"] == 90
    assert np.array_equal(doc["output_img"], doc["rot_img"])
    assert doc["model_settings"] == {"use_doc_orientation_classify": True, "use_doc_unwarping": False}
    bulk_doc = bulk["doc_preprocessor_res"]
    assert np.array_equal(bulk_doc["input_img"], scene) and np.array_equal(bulk_doc["rot_img"], doc["rot_img"])
    assert bulk.texts == res.texts
    assert sorted(res.img) == ["ocr_res_img", "preprocessed_img"]
    res.save_to_img(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ger_1_ocr_res_img.jpg", "ger_1_preprocessed_img.jpg"]
