"""Document inputs as a PaddleOCR 3.x (paddlex 3.7.2) user moving a PDF / TIFF workflow meets them,
found by an audit: PDFs read from several threads at once, ``pages`` given in another form,
a PDF's bytes held whole, TIFF pages at paddlex's (PIL's) size limit, and the result's
``res.json`` / ``res.save_to_json``. The PDFs are written here (Helvetica text at known places)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from conftest import converted_folders, intra_op_threads
from PIL import Image
from test_pdf import write_pdf

from ptocr.pdf import MAX_PIXELS, PageError, pdf_pages, tiff_pages
from ptocr.pipeline3 import OCR3

ROOT = Path(__file__).parents[1]


LETTER = (612, 792)
PAGES = [(*LETTER, [("INVOICE 2041", 72, 700, 40)]), (*LETTER, [("SECOND PAGE", 120, 600, 40)])]


@pytest.fixture(scope="module")
def two_pages(tmp_path_factory) -> Path:
    return write_pdf(tmp_path_factory.mktemp("docprep") / "report.pdf", PAGES)


def test_pages_in_another_form_are_clear_errors_or_read(two_pages, tmp_path):
    """``pages=2`` (PaddleOCR 2.x's page_num was a count), ``[1.0]`` or ``object()`` were a
    TypeError or a ctypes ArgumentError from inside the reader; the CLI's text form "1,2" was a
    TypeError. Now: the text form reads, the rest is a PageError saying what is expected."""
    assert [i for i, _ in pdf_pages(two_pages, "2")] == [1]
    assert [i for i, _ in pdf_pages(two_pages, np.array([2, 1]))] == [1, 0]
    frames = [Image.new("L", (40, 30), 255)] * 3
    frames[0].save(tmp_path / "scan.tif", save_all=True, append_images=frames[1:])
    assert [i for i, _ in tiff_pages(tmp_path / "scan.tif", "1,3")] == [0, 2]
    for read in (pdf_pages, tiff_pages):
        source = two_pages if read is pdf_pages else tmp_path / "scan.tif"
        for pages, message in ((2, "list of 1-based page numbers"), ([1.0], "1.0 is not a page number"),
                               (object(), "list of 1-based page numbers")):
            with pytest.raises(PageError, match=message):
                list(read(source, pages))


def test_threads_reading_pdfs_at_once_keep_the_process_alive(two_pages):
    """A pipeline shared by a threaded server (doc/architecture.md) reads PDFs from several
    threads: PDFium is not thread-safe, and two threads in it at once aborted or crashed the
    process (paddlex takes a process-wide pdfium_lock). Run apart, so a crash fails the test
    instead of ending the run."""
    script = textwrap.dedent(f"""
        from concurrent.futures import ThreadPoolExecutor
        from ptocr.pdf import page_count, pdf_pages
        path = {str(two_pages)!r}
        def sums(_):
            return [int(img.sum()) for _ in range(40) for _, img in pdf_pages(path)] + [page_count(path)]
        alone = sums(0)
        with ThreadPoolExecutor(8) as pool:
            together = list(pool.map(sums, range(8)))
        print(all(s == alone for s in together))
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == 0, (run.returncode, run.stderr[-2000:])
    assert run.stdout.strip() == "True"


def test_a_pdf_is_not_held_in_memory_whole(tmp_path):
    """paddlex opens a PDF by path and PDFium reads what a page needs; ptocr read the whole file
    into memory first (a 1 GB scanned book: 1 GB more for as long as its pages are read)."""
    path = write_pdf(tmp_path / "heavy.pdf", [(300, 300, [("PAGE", 20, 150, 30)])], padding=48_000_000)
    tracemalloc.start()
    try:
        (_, image), = pdf_pages(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert image.shape == (600, 600, 3) and (image < 128).any()
    assert peak < 16_000_000, f"{peak / 1e6:.0f} MB allocated to read one small page"


def test_a_one_page_tiff_reads_up_to_paddlexs_limit(tmp_path):
    """paddlex reads every TIFF through PIL, whose limit is 178,956,970 pixels (as for PDF
    pages); a one-page 105-megapixel scan (A2 at 600 dpi is 139) was refused at ptocr's 100,
    though the same page as the first of two frames was read."""
    Image.new("1", (10500, 10000), 1).save(tmp_path / "plan.tif", compression="group4")
    with pytest.warns(Image.DecompressionBombWarning):  # PIL's warning past 89 megapixels, as in paddlex
        (index, page), = tiff_pages(tmp_path / "plan.tif")
    assert index == 0 and page.shape == (10000, 10500, 3) and (page == 255).all()


def test_a_huge_later_tiff_frame_is_refused_before_it_is_decoded(tmp_path):
    """A later frame past PIL's 178,956,970 pixels raised PIL's DecompressionBombError, which no
    reader caught: a traceback from ``ptocr ocr`` and bulk reading instead of that page's error.
    Now it is a PageError naming the page, after the pages before it."""
    side = int(MAX_PIXELS ** 0.5) + 8
    small, huge = Image.new("1", (64, 48), 1), Image.new("1", (side, side), 1)
    small.save(tmp_path / "bomb.tif", save_all=True, append_images=[huge], compression="group4")
    pages = tiff_pages(tmp_path / "bomb.tif")
    assert next(pages)[1].shape == (48, 64, 3)
    with pytest.raises(PageError, match="page 2 cannot be read.*above the limit") as info:
        next(pages)
    assert info.value.page == 2


@pytest.fixture(scope="module")
def ocr(shared_dir, tmp_path_factory):
    files = converted_folders(shared_dir, tmp_path_factory.mktemp("docprep_models"),
                              {"det": "PP-OCRv5_mobile_det_infer", "rec": "PP-OCRv5_mobile_rec_infer"})
    with intra_op_threads(1):
        yield OCR3(files["det"], files["rec"])


def test_results_give_res_json_and_save_to_json_as_paddleocr3(ocr, two_pages, tmp_path):
    """PaddleOCR 3.x's ``res.json`` is ``{"res": fields}`` and ``res.save_to_json(folder)`` writes
    ``<stem>_<page_index>_res.json`` per PDF page (``<file>.json`` when given one): a migrated
    ``for res in ocr.predict(pdf): res.save_to_json("out")`` was an AttributeError."""
    with intra_op_threads(1):
        results = ocr(str(two_pages))
    assert [r.json["res"]["page_index"] for r in results] == [0, 1]
    for result, (_, _, lines) in zip(results, PAGES):
        res = result.json["res"]
        assert res["input_path"] == str(two_pages) and res["rec_boxes"] == result.rec_boxes
        assert "".join(res["rec_texts"]).replace(" ", "") == lines[0][0].replace(" ", "")
        written = result.save_to_json(tmp_path / "out")
        assert written == tmp_path / "out" / f"report_{result.page_index}_res.json"
        assert json.loads(written.read_text(encoding="utf-8")) == res
    single = results[1].save_to_json(tmp_path / "one.json")
    assert single == tmp_path / "one.json" and json.loads(single.read_text(encoding="utf-8"))["page_index"] == 1
    blank = ocr(np.full((64, 96, 3), 255, np.uint8))
    named = blank.save_to_json(tmp_path / "arrays")
    assert named.name.endswith("_res.json") and blank.save_to_json(tmp_path / "arrays") == named
