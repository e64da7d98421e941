"""OCR3's results as a script moved from paddleocr 3.7.0 reads them, against paddlex 3.7.2's
OCRResult (pipelines/ocr/result.py on common/result/'s BaseCVResult: a dict with ``str``, ``json``,
``img``, ``print``, ``save_to_json``, ``save_to_img``, ``save_all``) and its OCR pipeline's fields.
Real PP-OCRv5 mobile det + rec and the PP-LCNet textline model of ../shared, on its scenes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import intra_op_threads, v5_ocr3


# No test reaches a host: a default model left to fetch would fail the test, not download.
pytestmark = pytest.mark.usefixtures("loopback_only")


@pytest.fixture(scope="module")
def ocr(v5_models):
    """Built as a 3.x script builds PaddleOCR."""
    with intra_op_threads(1):
        yield v5_ocr3(v5_models)


@pytest.fixture(scope="module")
def scene_path(shared_dir):
    return shared_dir / "images" / "scenes" / "ger_1.jpg"


@pytest.fixture(scope="module")
def res(ocr, scene_path):
    (result,) = ocr.predict(str(scene_path))
    assert len(result) > 3
    return result


@pytest.fixture(scope="module")
def worded(ocr, scene_path):
    """predict's per-call return_word_box=True, as 3.7's predict takes it."""
    (result,) = ocr.predict(str(scene_path), return_word_box=True)
    return result


def test_str_is_res_with_arrays_and_print_shows_it(res, worded, capsys):
    """paddlex's ``res.str``: ``{"res": fields}``, the JSON's fields with dt_polys, rec_polys,
    rec_boxes, rec_scores and textline_orientation_angles as arrays, text_word_boxes one array per
    line; ``print()`` shows it. It was an AttributeError."""
    shown = res.str
    assert list(shown) == ["res"] and list(shown["res"]) == list(res.json["res"])
    fields, n = shown["res"], len(res)
    assert fields["rec_polys"].shape == (n, 4, 2) and fields["rec_boxes"].shape == (n, 4)
    assert fields["dt_polys"].shape == (len(res.dt_polys), 4, 2)
    assert fields["rec_scores"].tolist() == res["rec_scores"]
    assert fields["textline_orientation_angles"].tolist() == res.textline_orientation_angles
    assert fields["rec_texts"] == res.texts and fields["return_word_box"] is False
    words = worded.str["res"]
    assert list(words)[-2:] == ["text_word_boxes", "text_word"] and words["return_word_box"] is True
    assert all(isinstance(b, np.ndarray) for b in words["text_word_boxes"])
    assert [len(b) for b in words["text_word_boxes"]] == [len(w) for w in worded["text_word"]]
    res.print()
    with np.printoptions(threshold=1, edgeitems=1):
        assert capsys.readouterr().out == f"{res.str}\n"


def test_save_all_writes_json_then_images(res, tmp_path):
    """paddlex's ``save_all(path)``: every save of the result (save_to_json, then save_to_img),
    named as each names its files. It was an AttributeError."""
    out = tmp_path / "out"
    written = res.save_all(out)
    assert [p.name for p in written] == ["ger_1_res.json", "ger_1_ocr_res_img.jpg"]
    assert sorted(p.name for p in out.iterdir()) == ["ger_1_ocr_res_img.jpg", "ger_1_res.json"]
    assert json.loads((out / "ger_1_res.json").read_text(encoding="utf-8")) == json.loads(json.dumps(res.json["res"]))


def test_result_answers_dict_methods(res):
    """A paddlex result is a dict: ``res.get("rec_texts", [])``, ``res.items()``, ``res.values()``."""
    assert res.get("rec_texts") == res.texts and res.get("rec_text") is None and res.get("rec_text", []) == []
    assert res.get(0) is None  # a key the dict lacks, not a line
    items = res.items()
    assert [key for key, _ in items] == res.keys()
    fields = dict(items)
    assert fields["rec_texts"] == res.texts and np.array_equal(fields["rec_boxes"], res["rec_boxes"])
    assert [np.asarray(p).tolist() for p in fields["rec_polys"]] == res.rec_polys
    assert len(res.values()) == len(res.keys()) and res.values()[res.keys().index("rec_texts")] == res.texts


def test_a_page_without_detections_has_no_textline_orientation_angles(ocr, res):
    """paddlex sets textline_orientation_angles only on a page where something was detected: a
    blank page's JSON has no such key (here it held ``[]``)."""
    (blank,) = ocr.predict(np.full((48, 64, 3), 255, np.uint8))
    assert blank.dt_polys == [] and blank.textline_orientation_angles == []
    assert "textline_orientation_angles" not in blank.json["res"]
    assert "textline_orientation_angles" not in blank and "textline_orientation_angles" not in blank.str["res"]
    with pytest.raises(KeyError, match="nothing was detected"):
        blank["textline_orientation_angles"]
    assert blank["rec_texts"] == [] and blank["rec_boxes"].size == 0
    assert res["textline_orientation_angles"] == res.textline_orientation_angles != []


def test_keys_paddlex_has_and_ptocr_not_say_why(res):
    """``res["vis_fonts"]`` (paddlex's drawing fonts) and word fields without return_word_box are
    KeyErrors that say why, not a bare list of fields."""
    assert "vis_fonts" not in res
    with pytest.raises(KeyError, match="its own font"):
        res["vis_fonts"]
    with pytest.raises(KeyError, match="return_word_box=True"):
        res["text_word"]


def test_writing_a_field_is_a_clear_error(res):
    """paddlex's result is a dict a script may write into; here the fields are read from the
    lines, so ``res["rec_texts"] = ...`` says to change the lines instead of failing bare."""
    with pytest.raises(TypeError, match=r"change result\.lines"):
        res["rec_texts"] = [text.upper() for text in res["rec_texts"]]
    texts = res.texts
    res.lines[0].text = "edited"
    try:
        assert res["rec_texts"][0] == res.json["res"]["rec_texts"][0] == "edited"
    finally:
        res.lines[0].text = texts[0]


def test_close_as_37_leaves_the_pipeline_usable(ocr, res, scene_path):
    """paddleocr 3.7's ``ocr.close()`` at the end of a script: no AttributeError."""
    assert ocr.close() is None
    assert ocr.predict(str(scene_path))[0].texts == res.texts
