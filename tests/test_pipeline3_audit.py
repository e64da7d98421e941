"""OCR3 against PaddleOCR 3.x's (paddleocr 3.7 / paddlex 3.7.2) calling conventions, found by an
audit: None as "unset", the per-call document switches, the result read as paddlex's dict, and
TIFF frames as pages. Real PP-OCRv5 mobile det + rec and the PP-LCNet textline model of ../shared."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import intra_op_threads

from ptocr.errors import ImageError, PtocrError
from ptocr.pipeline3 import OCR3, PADDLEOCR3_DEFAULTS
from ptocr.predictors import ClsPredictor, UnwarpPredictor


@pytest.fixture(scope="module")
def ocr(v5_models):
    with intra_op_threads(1):
        yield OCR3(v5_models["det"], v5_models["rec"], v5_models["textline"])


@pytest.fixture(scope="module")
def scene(shared_dir) -> np.ndarray:
    return cv2.imread(str(shared_dir / "images" / "scenes" / "ger_1.jpg"))


def test_none_settings_mean_unset_as_in_paddleocr3(v5_models, ocr, scene):
    """PaddleOCR(...)'s and predict(...)'s keywords all default to None, meaning "as configured";
    passing None explicitly must not crash nor change anything."""
    unset = {key: None for key in PADDLEOCR3_DEFAULTS}
    built = OCR3(v5_models["det"], v5_models["rec"], v5_models["textline"], **unset)
    assert built.settings == PADDLEOCR3_DEFAULTS
    strict = ocr.with_settings(text_det_box_thresh=0.8)
    assert strict.with_settings(text_det_box_thresh=None).settings["text_det_box_thresh"] == 0.8
    base = ocr(scene)
    again = ocr(scene, **unset)
    assert again.texts == base.texts and again.settings == base.settings
    with pytest.raises(PtocrError, match="unknown settings"):
        ocr(scene, text_det_tresh=None)


class _Upright(ClsPredictor):
    """A document orientation model's answer without a model: always 0 degrees."""

    def __init__(self):
        self.task, self.calls = "cls", 0

    def __call__(self, image):
        self.calls += 1
        return ("0", 1.0)


class _Flip(UnwarpPredictor):
    """An 'unwarping' that flips the page left-right, so its effect shows."""

    def __init__(self):
        self.task, self.calls = "unwarp", 0

    def unwarp(self, img):
        self.calls += 1
        return np.ascontiguousarray(img[:, ::-1])


def test_per_call_doc_switches_as_paddlex(v5_models, scene):
    """paddlex's OCR pipeline (get_model_settings): per call, document switches given and none
    of them True turn the whole doc preprocessor off; one True keeps the other as configured."""
    ori, unwarp = _Upright(), _Flip()
    with intra_op_threads(1):
        ocr = OCR3(v5_models["det"], v5_models["rec"], None, ori, unwarp)
        for switch in ("use_doc_orientation_classify", "use_doc_unwarping"):
            ori.calls = unwarp.calls = 0
            off = ocr(scene, **{switch: False})
            assert (ori.calls, unwarp.calls) == (0, 0), switch
            assert np.array_equal(off.image, scene) and off.doc_angle == -1
            assert off.settings["model_settings"]["use_doc_preprocessor"] is False
            assert "doc_preprocessor_res" not in off.to_paddleocr()
        ori.calls = unwarp.calls = 0
        on = ocr(scene, use_doc_orientation_classify=True)
        assert (ori.calls, unwarp.calls) == (1, 1) and np.array_equal(on.image, scene[:, ::-1])
        assert on.to_paddleocr()["doc_preprocessor_res"]["model_settings"] == {
            "use_doc_orientation_classify": True, "use_doc_unwarping": True}


def test_result_reads_as_paddlex_result_dict(v5_models, ocr, scene):
    """``res["rec_texts"]`` and the other keys of paddlex's OCRResult dict, with its shapes."""
    result = OCR3(v5_models["det"], v5_models["rec"], v5_models["textline"], return_word_box=True)(scene)
    assert len(result) > 2 and result[0] is result.lines[0]  # lines by index, as before
    assert result["rec_texts"] == result.texts
    assert result["rec_scores"] == [line.score for line in result]
    assert "rec_texts" in result and "rec_text" not in result and "text_word_region" in result
    boxes = result["rec_boxes"]
    assert isinstance(boxes, np.ndarray) and boxes.shape == (len(result), 4)
    assert (boxes[:, 0] <= boxes[:, 2]).all() and (boxes[:, 1] <= boxes[:, 3]).all()
    polys = result["rec_polys"]
    assert len(polys) == len(result) and all(p.shape == (4, 2) for p in polys)
    assert [p.tolist() for p in polys] == result.rec_polys
    assert all(p.shape == (4, 2) for p in result["dt_polys"])
    assert [len(b) for b in result["text_word_boxes"]] == [len(w) for w in result["text_word"]]
    assert result["doc_preprocessor_res"]["output_img"] is result.image
    assert {k: result[k] for k in ("model_settings", "text_type")} == {
        "model_settings": {"use_doc_preprocessor": False, "use_textline_orientation": True}, "text_type": "general"}
    with pytest.raises(KeyError, match="rec_texts"):  # the error names the fields there are
        result["rec_text"]
    empty = ocr(np.full((48, 64, 3), 255, np.uint8))
    assert empty["rec_texts"] == [] and empty["rec_boxes"].size == 0


def _two_page_tiff(scene, folder: Path):
    """A blank page, then the scene: (its path, the PIL frames)."""
    from PIL import Image

    blank = np.full((120, 200, 3), 255, np.uint8)
    frames = [Image.fromarray(cv2.cvtColor(a, cv2.COLOR_BGR2RGB)) for a in (blank, scene)]
    path = folder / "scan.tiff"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    return path, frames


def test_tiff_frames_are_pages(ocr, scene, tmp_path):
    """paddlex's batch sampler reads every frame of a .tif/.tiff as a page (page_index 0, 1, ...)."""
    path, frames = _two_page_tiff(scene, tmp_path)
    results = ocr(path)
    assert [r.page_index for r in results] == [0, 1] and {r.source for r in results} == {str(path)}
    assert results[0].texts == [] and results[1].texts == ocr(scene).texts
    assert [r.page_index for r in ocr(path, pages=[2])] == [1]
    single = tmp_path / "one.tif"
    frames[1].save(single)
    (page,) = ocr([single])
    assert page.page_index == 0 and page.texts == results[1].texts
    with pytest.raises(ImageError, match="no page 3"):
        ocr(path, pages=[3])
    broken = tmp_path / "broken.tif"
    broken.write_bytes(b"not a tiff")
    with pytest.raises(ImageError, match="broken.tif"):
        ocr(broken)


def test_tiff_pages_in_bulk_reading_and_the_2x_pipeline(v5_models, ocr, scene, tmp_path):
    """A TIFF reads as its pages wherever a PDF does: ``read_many`` gives what ``ocr(path)`` gives,
    page by page (``PdfPages`` picks some), and the 2.x pipeline pages it the same way."""
    from ptocr.bulk import PdfPages
    from ptocr.pipeline import OCR

    path, _ = _two_page_tiff(scene, tmp_path)
    want = ocr(path)
    got = ocr.read_many([path, PdfPages(str(path), (2,))])
    assert [(r.source, r.page_index, r.texts) for r in got] == [
        (r.source, r.page_index, r.texts) for r in [*want, want[1]]]
    assert want[1].texts
    with intra_op_threads(1):
        v2 = OCR(v5_models["det"], v5_models["rec"], None)
        pages = v2(path)
    assert [r.texts for r in pages] == [v2.read(np.full((120, 200, 3), 255, np.uint8)).texts, v2.read(scene).texts]
    assert {r.source for r in pages} == {str(path)}


def test_bulk_command_reads_tiff_pages_by_number(tmp_path, scene):
    """``ptocr ocr scan.tiff --out r.jsonl``: a line per page with its number, ``--pages`` honoured,
    a rerun reading only the pages not yet there; a TIFF given as a URI is one clear error."""
    import json
    from types import SimpleNamespace

    from ptocr import bulk_cli

    path, _ = _two_page_tiff(scene, tmp_path)
    seen = []

    def load(image):
        seen.append(image.shape)
        raise ImageError("no model here")

    steps = SimpleNamespace(models=[], stages=[], load=load)
    build = lambda: SimpleNamespace(bulk_steps=lambda: steps)  # noqa: E731
    out = tmp_path / "r.jsonl"
    assert bulk_cli.run([str(path)], build, bulk_out=str(out), pages=[2]) == 1
    assert bulk_cli.run([str(path)], build, bulk_out=str(out)) == 1
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [line["page"] for line in lines] == [2, 1]
    assert seen == [scene.shape, (120, 200, 3)]  # each page decoded once, as itself
    uri = tmp_path / "u.jsonl"
    assert bulk_cli.run(["s3://bucket/scan.tiff"], build, bulk_out=str(uri)) == 1
    assert "local files only" in json.loads(uri.read_text(encoding="utf-8"))["error"]


def test_a_folder_reads_as_its_files(v5_models, ocr, scene, tmp_path):
    """paddlex's batch sampler takes a folder: its image, PDF and TIFF files (recursively, sorted
    by path), pages in place; ``ptocr ocr DIR`` (without --out too) names each result by its file."""
    import json

    from click.testing import CliRunner

    from ptocr.cli import main

    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    _two_page_tiff(scene, folder / "sub")
    cv2.imwrite(str(folder / "a.png"), scene[:120, :300])
    (folder / "notes.txt").write_text("not an image", encoding="utf-8")
    names = [str(folder / "a.png"), str(folder / "sub" / "scan.tiff")]
    got = ocr(folder)
    want = [ocr(names[0]), *ocr(names[1])]
    assert [(r.source, r.page_index, r.texts) for r in got] == [(r.source, r.page_index, r.texts) for r in want]
    assert len(ocr([folder, names[0]])) == 4  # a folder inside a list, in place
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageError, match="no image or PDF files"):
        ocr(tmp_path / "empty")
    out = tmp_path / "out.json"
    models = ["--det", str(v5_models["det"]), "--rec", str(v5_models["rec"]), "--cls", str(v5_models["textline"])]
    with intra_op_threads(1):
        run = CliRunner().invoke(main, ["ocr", str(folder), *models, "--json", str(out)])
    assert run.exit_code == 0, run.output
    data = json.loads(out.read_text(encoding="utf-8"))
    assert list(data) == [names[0], f"{names[1]}#1", f"{names[1]}#2"]
    assert [data[k]["rec_texts"] for k in data] == [r.texts for r in want]
