"""PDF input: pages rendered as PaddleOCR 3.x renders them (pypdfium2, scale 2), one result per
page, ``pages`` / ``--pages`` selecting them; a corrupt, encrypted or empty PDF is a clear error
for that file while the others are still read.

The PDFs are written here: a page is a content stream drawing text in Helvetica (one of
PDF's standard fonts, which PDFium carries) at known places.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ptocr.conversion import convert_once
from ptocr.errors import ImageError
from ptocr.pdf import RENDER_SCALE, PageError, PdfError, parse_pages, pdf_pages
from ptocr.pipeline3 import OCR3

PAGE_W, PAGE_H = 612, 792  # US Letter, points
# Per page: (text, x, y of the baseline in PDF points from the bottom-left, font size).
PAGES = [
    [("INVOICE 2041", 72, 700, 40), ("Total amount 318.50", 72, 400, 28)],
    [("SECOND PAGE", 120, 600, 40)],
]


def write_pdf(path: Path, pages, padding: int = 0) -> Path:
    """A minimal PDF 1.4: one Helvetica font, one content stream per page. A page is its lines
    ``[(text, x, y, size), ...]`` on US Letter, or ``(width, height, lines)``; ``padding``: an
    unreferenced stream of that many bytes (as a scan's images would weigh)."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", None,
               "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for page in pages:
        width, height, lines = page if isinstance(page, tuple) else (PAGE_W, PAGE_H, page)
        stream = "".join(f"BT /F1 {size} Tf {x} {y} Td ({text}) Tj ET\n" for text, x, y, size in lines)
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}endstream")
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {width} {height}] "
                       f"/Resources << /Font << /F1 3 0 R >> >> /Contents {len(objects)} 0 R >>")
        kids.append(f"{len(objects)} 0 R")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>"
    if padding:
        objects.append(f"<< /Length {padding} >>\nstream\n{'0' * padding}\nendstream")
    out, offsets = b"%PDF-1.4\n", []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    path.write_bytes(out)
    return path


@pytest.fixture(scope="module")
def pdfs(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("pdfs")
    two = write_pdf(d / "two_pages.pdf", PAGES)
    corrupt = d / "corrupt.pdf"
    corrupt.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> garbage, no xref\n")
    pypdf = pytest.importorskip("pypdf", reason="pypdf (the test extra) encrypts the test PDF")
    writer = pypdf.PdfWriter(clone_from=str(two))
    writer.encrypt(user_password="secret", algorithm="RC4-128")
    encrypted = d / "encrypted.pdf"
    with open(encrypted, "wb") as f:
        writer.write(f)
    empty = d / "empty.pdf"
    empty.write_bytes(b"")
    return {"two": two, "corrupt": corrupt, "encrypted": encrypted, "empty": empty,
            "no_pages": write_pdf(d / "no_pages.pdf", [])}


def test_pages_render_at_paddleocr3_scale(pdfs):
    pages = list(pdf_pages(pdfs["two"]))
    assert [i for i, _ in pages] == [0, 1]
    for _, img in pages:
        assert img.dtype == np.uint8 and img.shape == (PAGE_H * RENDER_SCALE, PAGE_W * RENDER_SCALE, 3)
    # Text drawn where the page says: dark pixels just above the first baseline, white elsewhere.
    img = pages[0][1]
    text, x, y, size = PAGES[0][0]
    top, left = int((PAGE_H - y - 0.7 * size) * RENDER_SCALE), int(x * RENDER_SCALE)
    band = img[top:int((PAGE_H - y) * RENDER_SCALE), left:left + int(size * RENDER_SCALE * 4)]
    assert (band < 100).mean() > 0.1 and (img[:100, :100] == 255).all()
    assert [i for i, _ in pdf_pages(pdfs["two"], [2])] == [1]


@pytest.mark.parametrize("kind, message", [
    ("corrupt", "not a readable PDF"), ("encrypted", "encrypted"), ("empty", "is empty"),
    ("no_pages", "not a readable PDF|no pages")])
def test_bad_pdfs_are_clear_errors(pdfs, kind, message):
    with pytest.raises(PdfError, match=message) as info:
        list(pdf_pages(pdfs[kind]))
    assert str(pdfs[kind]) in str(info.value) and isinstance(info.value, ImageError)


def test_page_selection_is_checked(pdfs):
    assert parse_pages("1,3-5") == [1, 3, 4, 5]
    for bad in ("0", "3-1", "x", "", "1-"):  # "1-" was page 1 alone  # a PageError: the text is not a PDF's fault (it picks TIFF frames too)
        with pytest.raises(PageError, match="1-based") as info:
            parse_pages(bad)
        assert not isinstance(info.value, PdfError)
    with pytest.raises(PdfError, match="no page 3"):
        list(pdf_pages(pdfs["two"], [3]))
    with pytest.raises(PageError, match="more than 1,000,000 pages"):  # not a list that fills the memory
        parse_pages("1-300000000")
    assert len(parse_pages("1-1000000")) == 1_000_000


@pytest.fixture(scope="module")
def ocr3(shared_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("pdf_models")
    m = shared_dir / "paddle_models"
    det = convert_once(m / "PP-OCRv5_mobile_det_infer", out / "det.safetensors")
    rec = convert_once(m / "PP-OCRv5_mobile_rec_infer", out / "rec.safetensors")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield OCR3(det, rec)
    torch.set_num_threads(threads)


def _found(result, text: str, x: float, y: float, size: float) -> bool:
    """A line reading ``text`` whose box covers the drawn text's start (rendered pixels)."""
    px, py = x * RENDER_SCALE, (PAGE_H - y - size / 3) * RENDER_SCALE
    for line in result:
        box = np.asarray(line.box)
        if line.text.replace(" ", "") == text.replace(" ", "") and \
                box[:, 0].min() - 8 <= px <= box[:, 0].max() and box[:, 1].min() <= py <= box[:, 1].max():
            return True
    return False


def test_ocr_reads_every_page_where_the_text_is(ocr3, pdfs):
    results = ocr3(str(pdfs["two"]))
    assert isinstance(results, list) and [r.page_index for r in results] == [0, 1]
    for result, lines in zip(results, PAGES):
        assert result.source == str(pdfs["two"])
        for text, x, y, size in lines:
            assert _found(result, text, x, y, size), (text, [(ln.text, ln.box) for ln in result])
    (second,) = ocr3(str(pdfs["two"]), pages=[2])
    assert second.page_index == 1 and second.texts == results[1].texts


def test_read_of_a_pdf_names_the_ways_that_read_it(ocr3, pdfs):
    # read said "PDF input is not supported; render its pages to images first", though ocr(path),
    # read_pdf and read_many read PDFs.
    with pytest.raises(ImageError, match=r"two_pages\.pdf'?: a PDF, not one image: read its pages with ocr\(path\), "
                                         r"ocr\.read_pdf\(path\) or ocr\.read_many\(\[path\]\)"):
        ocr3.read(pdfs["two"])
    with pytest.raises(ImageError, match=r"image bytes: a PDF.*save the bytes to a \.pdf file first"):
        ocr3.read(pdfs["two"].read_bytes())


def test_cli_reads_good_pdfs_and_reports_bad_ones(ocr3, pdfs, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from ptocr import cli

    monkeypatch.setattr(cli, "_build_ocr", lambda *a, **kw: ocr3)  # the converted models, no zoo
    out = tmp_path / "out.json"
    run = CliRunner().invoke(cli.main, ["ocr", str(pdfs["corrupt"]), str(pdfs["two"]), str(pdfs["encrypted"]),
                                        "--pages", "2", "--json", str(out)])
    assert run.exit_code == 2, run.output
    assert "corrupt.pdf: not a readable PDF" in run.stderr and "encrypted.pdf: it is encrypted" in run.stderr
    assert "Traceback" not in run.output and "2 of 3 inputs could not be read" in run.stderr
    data = json.loads(out.read_text(encoding="utf-8"))
    assert list(data) == [f"{pdfs['two']}#2"]
    assert data[f"{pdfs['two']}#2"]["page_index"] == 1
    assert "".join(data[f"{pdfs['two']}#2"]["rec_texts"]).replace(" ", "") == "SECONDPAGE"


def test_pdf_pages_read_as_paddleocr3_reads_them(ocr3):
    """paddleocr 3.7 on fixtures' two_pages.pdf (written by write_pdf from PAGES; recorded by
    ``python -m tools.make_pipeline_reference --paddleocr3 --no-textline --inputs ...``): same
    rendering, same lines."""
    fixtures = Path(__file__).parent / "fixtures" / "pipeline_reference"
    ref = json.loads((fixtures / "ppocrv5_mobile_pdf.json").read_text(encoding="utf-8"))
    (pdf,) = ref["inputs"]
    results = ocr3(str(Path(__file__).parents[1] / pdf))
    assert [f"two_pages.pdf#{r.page_index + 1}" for r in results] == list(ref["images"])
    for result, expected in zip(results, ref["images"].values()):
        assert result.texts == [x["text"] for x in expected]
        for poly, box, line, x in zip(result.rec_polys, result.rec_boxes, result, expected):
            assert np.abs(np.subtract(poly, x["poly"])).max() <= 1 and np.abs(np.subtract(box, x["box"])).max() <= 1
            assert abs(line.score - x["score"]) <= 1e-3


def test_the_2x_pipeline_reads_pdfs_too(shared_dir, pdfs, tmp_path):
    from ptocr.pipeline import OCR

    m = shared_dir / "paddle_models"
    ocr = OCR(convert_once(m / "ch_PP-OCRv4_det_infer", tmp_path / "det.safetensors"),
              convert_once(m / "ch_PP-OCRv4_rec_infer", tmp_path / "rec.safetensors"))
    first, second = ocr([str(pdfs["two"])])
    assert first.source == second.source == str(pdfs["two"])
    assert _found(first, *PAGES[0][0]) and _found(second, *PAGES[1][0])


def test_cli_names_pages_by_their_number_with_the_2x_pipeline_too(shared_dir, pdfs, tmp_path, monkeypatch):
    # OCRResult had no page_index: `--pages 2` named the 2.x pipeline's page "#1" (its place in the list).
    from click.testing import CliRunner

    from ptocr import cli
    from ptocr.pipeline import OCR

    m = shared_dir / "paddle_models"
    ocr = OCR(convert_once(m / "ch_PP-OCRv4_det_infer", tmp_path / "det.safetensors"),
              convert_once(m / "ch_PP-OCRv4_rec_infer", tmp_path / "rec.safetensors"))
    monkeypatch.setattr(cli, "_build_ocr", lambda *a, **kw: ocr)
    out = tmp_path / "out.json"
    run = CliRunner().invoke(cli.main, ["ocr", str(pdfs["two"]), "--pages", "2", "--json", str(out)])
    assert run.exit_code == 0, run.output
    data = json.loads(out.read_text(encoding="utf-8"))
    assert list(data) == [f"{pdfs['two']}#2"]
    assert "".join(line["text"] for line in data[f"{pdfs['two']}#2"]).replace(" ", "") == "SECONDPAGE"


def test_cli_reads_a_document_page_by_page_and_keeps_the_pages_before_a_bad_one(ocr3, tmp_path, monkeypatch):
    # `ptocr ocr doc.pdf` held every page's result (each with its page image) until the document
    # ended, and a page that failed lost the pages read before it.
    import gc
    import weakref

    from click.testing import CliRunner
    from PIL import Image

    from ptocr import cli
    from ptocr.pdf import MAX_PIXELS

    side = int(MAX_PIXELS ** 0.5) + 8  # a third frame past PIL's limit: that page's PageError
    frames = [Image.new("L", (320, 96), 255) for _ in range(4)] + [Image.new("1", (side, side), 1)]
    frames[0].save(tmp_path / "scan.tif", save_all=True, append_images=frames[1:], compression="tiff_deflate")
    alive: list[int] = []

    class Watched:
        """ocr3, counting at each page how many earlier pages' results are still held."""
        def __getattr__(self, name):
            return getattr(ocr3, name)

        def __call__(self, *args, **kw):
            return ocr3(*args, **kw)

        def iter_pages(self, path, pages=None):
            held = []
            for result in ocr3.iter_pages(path, pages):
                gc.collect()
                alive.append(sum(r() is not None for r in held))
                held.append(weakref.ref(result))
                yield result

    monkeypatch.setattr(cli, "_build_ocr", lambda *a, **kw: Watched())
    out = tmp_path / "out.json"
    run = CliRunner().invoke(cli.main, ["ocr", str(tmp_path / "scan.tif"), "--json", str(out)])
    assert run.exit_code == 2, run.output
    assert "page 5 cannot be read" in run.stderr and "Traceback" not in run.output
    assert list(json.loads(out.read_text(encoding="utf-8"))) == [f"{tmp_path / 'scan.tif'}#{n}" for n in range(1, 5)]
    assert len(alive) == 4 and max(alive) <= 1  # the page just echoed, not every page before it


def _truncated_tiff(path: Path) -> Path:
    """Two uncompressed frames, the file cut inside the first: PIL's ``n_frames`` then raises
    TypeError ("Missing dimensions"), not the OSError of a plainly corrupt file."""
    from PIL import Image

    frames = [Image.new("L", (200, 150), 255) for _ in range(2)]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    path.write_bytes(path.read_bytes()[:20000])
    return path


@pytest.mark.filterwarnings("ignore::UserWarning")  # PIL's "Truncated File Read"
def test_a_truncated_multipage_tiff_is_one_failed_input(ocr3, shared_dir, tmp_path, monkeypatch):
    # PIL's TypeError got through page_count and tiff_pages: `ptocr ocr DIR` ended in a traceback,
    # --out stopped before writing a line, read_many lost every other input's result.
    import shutil

    from click.testing import CliRunner

    from ptocr import cli
    from ptocr.bulk import FailedImage
    from ptocr.pdf import page_count, tiff_pages

    folder = tmp_path / "in"
    folder.mkdir()
    good = shutil.copy(shared_dir / "images" / "scenes" / "ger_1.jpg", folder / "a.jpg")
    cut = _truncated_tiff(folder / "b.tif")
    assert page_count(cut) is None  # unknown: reading it says why
    with pytest.raises(PageError, match=r"b\.tif: not a readable TIFF \(TypeError: Missing dimensions\)"):
        list(tiff_pages(cut))

    want = ocr3.read(good).texts
    assert want
    got = ocr3.read_many([good, cut, good])
    assert [r.texts for r in (got[0], got[2])] == [want, want]
    assert isinstance(got[1], FailedImage) and got[1].source == str(cut) and "not a readable TIFF" in got[1].error

    monkeypatch.setattr(cli, "_build_ocr", lambda *a, **kw: ocr3)
    out = tmp_path / "out.json"
    run = CliRunner().invoke(cli.main, ["ocr", str(folder), "--json", str(out)])
    assert run.exit_code == 2 and "Traceback" not in run.output, run.output
    assert "b.tif: not a readable TIFF" in run.stderr
    assert list(json.loads(out.read_text(encoding="utf-8"))) == [str(good)]
    lines = tmp_path / "out.jsonl"
    run = CliRunner().invoke(cli.main, ["ocr", str(folder), "--out", str(lines)])
    assert run.exit_code == 2 and "Traceback" not in run.output, run.output
    records = [json.loads(line) for line in lines.read_text(encoding="utf-8").splitlines()]
    assert [(r["image"], "lines" in r) for r in records] == [(str(good), True), (str(cut), False)]
    assert "not a readable TIFF" in records[1]["error"]
