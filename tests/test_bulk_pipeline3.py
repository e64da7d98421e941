"""Bulk OCR with PaddleOCR 3.x's pipeline (``OCR3.read_many``, ``ptocr ocr --out`` with the
default 3.x rules): each result is ``OCR3.read``'s, bit for bit in float32 on the CPU; a PDF
gives one result per page, a bad PDF one failed item; the JSONL file has a line per page and a
rerun after a kill resumes per page.

Models: PP-OCRv5 mobile det / rec and the PP-LCNet_x0_25 textline orientation model, converted
from ../shared as tests/test_pipeline.py converts them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import converted_folders, intra_op_threads, recorded_batches
from test_pdf import PAGES, write_pdf

from ptocr.bulk import FailedImage, PdfPages
from ptocr.errors import ImageError
from ptocr.jsonl_results import encode, record
from ptocr.pipeline3 import OCR3

REPO = Path(__file__).resolve().parents[1]
MODELS = {"det": "PP-OCRv5_mobile_det_infer", "rec": "PP-OCRv5_mobile_rec_infer",
          "cls": "PP-LCNet_x0_25_textline_ori_infer"}
# Different network sizes (ger_1 288x384 at the 3.x "min" 64 limit, japan_1 192x320).
SCENES = ("ger_1.jpg", "japan_1.jpg")


@pytest.fixture(scope="module")
def model_files(shared_dir, tmp_path_factory) -> dict[str, Path]:
    return converted_folders(shared_dir, tmp_path_factory.mktemp("bulk3_models"), MODELS)


@pytest.fixture(scope="module")
def ocr(model_files):
    with intra_op_threads(1):  # as the CLI child below (OMP_NUM_THREADS=1): the same rounding
        yield OCR3(model_files["det"], model_files["rec"], model_files["cls"])


@pytest.fixture(scope="module")
def files(shared_dir, tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bulk3_inputs")
    bad = d / "not_an_image.jpg"
    bad.write_bytes(b"hello, not a JPEG")
    corrupt = d / "corrupt.pdf"
    corrupt.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> garbage, no xref\n")
    return {"scenes": [shared_dir / "images" / "scenes" / name for name in SCENES], "bad": bad,
            "pdf": write_pdf(d / "two_pages.pdf", PAGES), "corrupt": corrupt}


@pytest.fixture(scope="module")
def inputs(files) -> list:
    """Two scenes of different sizes, an unreadable file in the middle, a mirrored scene as an
    array (ger_1's network size: the two share a detector call), a two-page PDF, a corrupt PDF."""
    ger, japan = files["scenes"]
    mirrored = np.ascontiguousarray(cv2.imread(str(ger))[:, ::-1])
    return [ger, japan, files["bad"], mirrored, files["pdf"], files["corrupt"]]


@pytest.fixture(scope="module")
def expected(ocr, inputs) -> list:
    """``read`` of each input; ``read_pdf``'s pages in place of a PDF; the error of a bad one."""
    out = []
    for image in inputs:
        try:
            out += ocr.read_pdf(image) if str(image).endswith(".pdf") else [ocr.read(image)]
        except ImageError as e:
            out.append(e)
    assert [isinstance(r, ImageError) for r in out] == [False, False, True, False, False, False, True]
    assert all(len(r) > 0 for r in out if not isinstance(r, ImageError))
    return out


def _lines(result, score: bool = True):
    return [(line.box, line.text, line.angle, *((line.score,) if score else ())) for line in result]


def _same(have, want) -> None:
    if isinstance(want, ImageError):
        assert isinstance(have, FailedImage) and have.error == str(want)
        return
    assert (have.source, have.page_index, have.doc_angle) == (want.source, want.page_index, want.doc_angle)
    assert _lines(have) == _lines(want)  # scores too: bit for bit
    assert [p.tolist() for p in have.dt_polys] == [p.tolist() for p in want.dt_polys]
    assert have.textline_orientation_angles == want.textline_orientation_angles
    assert np.array_equal(have.image, want.image)


def test_read_many_equals_read(ocr, inputs, expected):
    """Bit for bit read's, in input order, PDF pages in place; same-size images share a
    detector call; the unreadable file and the corrupt PDF are failed items in their places."""
    with recorded_batches(ocr.det) as shapes:
        got = ocr.read_many(inputs, batch_size=8)
    assert len(got) == len(expected)
    for have, want in zip(got, expected):
        _same(have, want)
    assert "not_an_image.jpg" in got[2].error and "corrupt.pdf" in got[6].error
    assert [got[k].page_index for k in (4, 5)] == [0, 1]
    # ger_1 with its mirror image, and the two PDF pages: one call each; japan_1 alone.
    assert sorted(s[0] for s in shapes) == [1, 2, 2]


def test_read_many_keeps_word_boxes(model_files, files):
    """return_word_box through the bulk engine: each image's words and word quads are read's."""
    with intra_op_threads(1):
        ocr = OCR3(model_files["det"], model_files["rec"], model_files["cls"], return_word_box=True)
        want = [ocr.read(p) for p in files["scenes"]]
        got = ocr.read_many(files["scenes"], batch_size=8)
    for have, ref in zip(got, want):
        assert have.text_word == ref.text_word and have.text_word_region == ref.text_word_region
        assert len(have.text_word) == len(have) > 0


def test_merged_crop_batches_read_the_same_lines(ocr, inputs, expected):
    """merge=True (the CUDA default, here on the CPU): same-shape batches of different images
    share textline / recognizer calls; each image keeps its own batches, so texts, boxes and
    angles are read's (scores up to float32 rounding of a larger batch)."""
    with recorded_batches(ocr.textline) as shapes:
        got = ocr.read_many(inputs[:4], batch_size=8, merge=True)
    assert max(s[0] for s in shapes) > ocr.settings["textline_orientation_batch_size"]  # crops of several images
    for have, want in zip(got, expected[:4]):
        if isinstance(want, ImageError):
            assert isinstance(have, FailedImage)
            continue
        assert _lines(have, score=False) == _lines(want, score=False)
        assert max(abs(a.score - b.score) for a, b in zip(have, want)) <= 1e-5


def test_pdf_pages_selected(ocr, files, expected):
    """``PdfPages``: only the pages asked for (1-based), as the CLI resumes a PDF."""
    got = ocr.read_many([PdfPages(str(files["pdf"]), (2,))])
    assert len(got) == 1
    _same(got[0], expected[5])


def _cli(*args) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
               OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "ptocr.cli", "ocr", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


def test_cli_jsonl_one_line_per_page_and_resume(ocr, model_files, files, expected, tmp_path):
    """The default pipeline (PaddleOCR 3.x rules) with --out: a line per image and per PDF page
    (with its page number), each as ``read`` / ``read_pdf`` reads it; a rerun after a kill
    (complete lines, then a partial one) reads what is missing, each page exactly once."""
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(files["scenes"][1], folder / "a_japan.jpg")
    shutil.copy(files["pdf"], folder / "b_two_pages.pdf")
    shutil.copy(files["corrupt"], folder / "c_corrupt.pdf")
    out = tmp_path / "results.jsonl"
    models = ["--det", str(model_files["det"]), "--rec", str(model_files["rec"]), "--cls", str(model_files["cls"])]
    first = _cli(str(folder), "--out", str(out), *models)
    assert first.returncode == 2 and "c_corrupt.pdf" in first.stderr and "Traceback" not in first.stderr, first.stderr

    lines = out.read_text(encoding="utf-8").splitlines()
    name = {k: str(folder / k) for k in ("a_japan.jpg", "b_two_pages.pdf", "c_corrupt.pdf")}
    want = [encode(record(name["a_japan.jpg"], expected[1])),
            encode(record(name["b_two_pages.pdf"], expected[4], 0)),
            encode(record(name["b_two_pages.pdf"], expected[5], 1))]
    assert lines[:3] == want
    assert [json.loads(line).get("page") for line in lines[:3]] == [None, 1, 2]
    error = str(expected[6]).replace(str(files["corrupt"]), name["c_corrupt.pdf"])
    assert json.loads(lines[3]) == {"image": name["c_corrupt.pdf"], "error": error}  # no "page": not opened
    assert len(lines) == 4

    # What a kill after the PDF's first page leaves: two complete lines and a partial one.
    out.write_text("\n".join(lines[:2]) + "\n" + lines[2][:40], encoding="utf-8")
    second = _cli(str(folder), "--out", str(out), *models)
    assert second.returncode == 2 and "(2 done before)" in second.stderr, second.stderr
    assert out.read_text(encoding="utf-8").splitlines() == lines  # page 2 and the bad PDF, once each

    third = _cli(str(folder), "--out", str(out), *models)
    assert third.returncode == 0 and out.read_text(encoding="utf-8").splitlines() == lines, third.stderr
