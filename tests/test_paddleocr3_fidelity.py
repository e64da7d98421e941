"""OCR3 against paddleocr 3.7 / paddlex 3.7.2 where an audit found ptocr reading otherwise:
``precision`` (TensorRT's only), ``cpu_threads``, false detection values (paddlex's ``x or
default``), fixed ``text_det_input_shape`` / ``text_rec_input_shape``, and what ``repr`` names.
Real PP-OCRv5 mobile det + rec and the PP-LCNet textline model of ../shared."""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest
import torch
from conftest import intra_op_threads

from ptocr import paddleocr3_options
from ptocr.errors import PtocrError
from ptocr.pipeline3 import OCR3
from ptocr.postprocess import CTCLabelDecode


@pytest.fixture(scope="module")
def ocr(v5_models):
    with intra_op_threads(1):
        yield OCR3(v5_models["det"], v5_models["rec"])


@pytest.fixture(scope="module")
def scene(shared_dir) -> np.ndarray:
    return cv2.imread(str(shared_dir / "images" / "scenes" / "ger_1.jpg"))


def _forward_inputs(predictor, monkeypatch) -> list:
    """The shapes ``predictor.forward`` is called with from now on."""
    seen, forward = [], predictor.forward
    monkeypatch.setattr(predictor, "forward", lambda batch, *a, **k: (seen.append(batch.shape), forward(batch))[1])
    return seen


def test_precision_is_tensorrts_only_and_changes_nothing(v5_models):
    paddleocr3_options._warn_once.cache_clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = OCR3(v5_models["det"], v5_models["rec"], precision="fp16")
        OCR3(v5_models["det"], v5_models["rec"], precision="fp16")
    assert first.det.dtype == first.rec.dtype == torch.float32
    notes = [str(w.message) for w in caught if "precision" in str(w.message)]
    assert len(notes) == 1 and "TensorRT" in notes[0] and "dtype='float16'" in notes[0]
    # ptocr's own dtype still applies beside a 3.x precision
    assert OCR3(v5_models["det"], v5_models["rec"], precision="fp32", dtype="bfloat16").rec.dtype == torch.bfloat16
    with pytest.raises(PtocrError, match="fp32, fp16"):
        OCR3(precision="int8")


def test_cpu_threads_sets_torchs_thread_count(v5_models):
    with intra_op_threads(1):
        OCR3(v5_models["det"], v5_models["rec"], cpu_threads=3)
        assert torch.get_num_threads() == 3
        OCR3(v5_models["det"], v5_models["rec"], cpu_threads=np.int64(2))  # a count read from an array
        assert torch.get_num_threads() == 2
    for bad in (0, "4", 2.5):
        with pytest.raises(PtocrError, match="cpu_threads"):
            OCR3(cpu_threads=bad)


def test_false_detection_values_read_as_paddlex(ocr, v5_models, scene):
    """paddlex's detector takes ``value or its own``: a false per-call value is the pipeline's,
    a false constructor value the model's (PP-OCRv5_mobile_det: longer side 960, its yml's
    0.3 / 0.6 / 1.5); the result reports the values as given."""
    zeros = {"text_det_limit_side_len": 0, "text_det_limit_type": "", "text_det_thresh": 0.0,
             "text_det_box_thresh": 0, "text_det_unclip_ratio": 0}
    base, given = ocr(scene), ocr(scene, **zeros)
    assert given.texts == base.texts and given.rec_polys == base.rec_polys
    assert given.settings["text_det_params"] == {**base.settings["text_det_params"], "limit_side_len": 0,
                                                 "limit_type": "", "thresh": 0.0, "box_thresh": 0, "unclip_ratio": 0}
    made = OCR3(v5_models["det"], v5_models["rec"], text_det_limit_side_len=0, text_det_thresh=0)
    assert (made.det_pre.limit_side_len, made.det_pre.limit_type, made.det_post.thresh) == (960, "min", 0.3)
    x, _ = made.det_pre(scene)
    assert min(x.shape[1:]) == 960  # the shorter side (270) brought up to 960, not 64
    assert made(scene, text_det_thresh=0.1).settings["text_det_params"]["thresh"] == 0.1
    assert made.with_settings(text_det_thresh=0).det_post.thresh == 0.3


def test_fixed_detector_input_shape(ocr, v5_models, scene, monkeypatch):
    fixed = OCR3(v5_models["det"], v5_models["rec"], text_det_input_shape=(3, 480, 640))
    seen = _forward_inputs(fixed.det, monkeypatch)
    quads = fixed.detect(scene)
    assert seen == [(1, 3, 480, 640)]  # 270 x 360 resized to exactly 480 x 640
    x, info = fixed.det_pre(scene)
    assert info == (270, 360, 480 / 270, 640 / 360)
    expected = cv2.resize(scene, (640, 480)).astype(np.float32) * np.float32(1 / 255 / 0.229) - np.float32(0.485 / 0.229)
    np.testing.assert_allclose(x[0], expected[:, :, 0], atol=1e-5)
    # the boxes come back in source pixels, over the same text as the default input finds
    default = ocr.detect(scene)
    assert quads and all((q >= 0).all() and (q[:, 0] <= 360).all() and (q[:, 1] <= 270).all() for q in quads)
    centers = [q.mean(axis=0) for q in quads]
    assert all(any(cv2.pointPolygonTest(d.astype(np.float32), tuple(map(float, c)), False) >= 0 for d in default)
               for c in centers)
    assert OCR3(v5_models["det"], v5_models["rec"], text_det_input_shape=(3, 20, 20)).det_pre(
        np.zeros((10, 12, 3), np.uint8))[1] == (10, 12, 20 / 32, 20 / 32)  # padded to 32 x 32 first
    with pytest.raises(PtocrError, match="text_det_input_shape"):
        OCR3(text_det_input_shape=(640, 640))


def test_fixed_recognizer_input_shape(ocr, v5_models, scene, monkeypatch):
    fixed = OCR3(v5_models["det"], v5_models["rec"], text_rec_input_shape=(3, 48, 240))
    crops, _ = ocr.crop(scene, ocr.detect(scene))
    seen = _forward_inputs(fixed.rec, monkeypatch)
    texts = fixed.recognize(crops)
    assert seen and all(shape[1:] == (3, 48, 240) for shape in seen)
    crop = crops[0]
    expected = ((cv2.resize(crop, (240, 48)).transpose(2, 0, 1) / 255 - 0.5) / 0.5).astype(np.float32)
    assert np.array_equal(fixed.rec_input(crop), expected)  # float64 arithmetic, then float32
    assert ocr.rec_input(crop).shape != expected.shape
    assert len(texts) == len(crops) and texts != ocr.recognize(crops)
    with pytest.raises(PtocrError, match="when the pipeline is made"):
        ocr(scene, text_rec_input_shape=(3, 48, 320))


def test_repr_names_the_model(ocr):
    assert "DetPredictor('PP-OCRv5_mobile_det'" in repr(ocr) and "RecPredictor('PP-OCRv5_mobile_rec'" in repr(ocr)


def _fine_tuned_copy(shared_dir, tmp_path, model_name: str, change_weights: bool):
    """PP-OCRv5_mobile_rec_infer copied to ``ft/inference`` (a name no zoo model has), its
    inference.yml naming ``model_name``; ``change_weights``: one weight byte changed, so that no
    zoo model's sha256 matches."""
    import shutil

    folder = tmp_path / "ft" / "inference"
    shutil.copytree(shared_dir / "paddle_models" / "PP-OCRv5_mobile_rec_infer", folder)
    yml = folder / "inference.yml"
    yml.write_text(yml.read_text(encoding="utf-8").replace("model_name: PP-OCRv5_mobile_rec",
                                                          f"model_name: {model_name}", 1), encoding="utf-8")
    if change_weights:
        weights = bytearray((folder / "inference.pdiparams").read_bytes())
        weights[-1] ^= 1  # the last byte of the last tensor's data
        (folder / "inference.pdiparams").write_bytes(bytes(weights))
    return folder


def test_inference_yml_model_name_decides_bidi_for_a_folder(v5_models, shared_dir, tmp_path):
    """paddlex runs get_display on the texts of the recognizers its inference.yml names
    arabic_PP-OCRv3_mobile_rec / arabic_PP-OCRv5_mobile_rec, whatever the folder is called."""
    folder = _fine_tuned_copy(shared_dir, tmp_path, "arabic_PP-OCRv5_mobile_rec", change_weights=True)
    ocr = OCR3(v5_models["det"], str(folder))
    assert ocr.rec.config["stated_model_name"] == "arabic_PP-OCRv5_mobile_rec" and ocr.bidi
    assert "model_name" not in ocr.rec.config  # a stated name is no proof of the release (the zoo's check)
    assert "RecPredictor('arabic_PP-OCRv5_mobile_rec'" in repr(ocr.rec)
    # the decoding of alef, blank, beh (as read, left to right), shown right to left as paddlex shows it
    ocr.rec_decode = CTCLabelDecode(["blank", "\u0627", "\u0628"])
    probs = np.eye(3, dtype=np.float32)[[1, 0, 2]][None]
    assert ocr.rec_texts(probs)[0][0] == "\u0628\u0627"


def test_weights_of_a_zoo_model_keep_its_name_whatever_the_yml_says(shared_dir, tmp_path):
    from converter.convert import convert

    folder = _fine_tuned_copy(shared_dir, tmp_path, "arabic_PP-OCRv5_mobile_rec", change_weights=False)
    done = convert(folder)
    assert done.config["model_name"] == "PP-OCRv5_mobile_rec"
    assert any("names the model arabic_PP-OCRv5_mobile_rec" in note for note in done.source.notes)


def test_a_stated_name_does_not_pass_the_zoos_check_that_a_release_is_its_model(shared_dir, tmp_path):
    # A release whose weights no zoo model has, whose yml names a zoo model: converted, it keeps the
    # stated name apart, so the origin check (which trusts model_name) still refuses it.
    from ptocr.conversion import convert_once
    from ptocr.manifest import load_manifest
    from ptocr.origins import OriginError, origins_of
    from ptocr.zoo import _check_converted_is

    folder = _fine_tuned_copy(shared_dir, tmp_path, "arabic_PP-OCRv5_mobile_rec", change_weights=True)
    weights = convert_once(folder, tmp_path / "converted.safetensors")
    entry = load_manifest().model_entry("arabic_PP-OCRv5_mobile_rec")
    with pytest.raises(OriginError, match="convert to a model not in the zoo, not arabic_PP-OCRv5_mobile_rec"):
        _check_converted_is(entry, weights, origins_of(entry)[0])
