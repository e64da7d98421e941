"""PDF pages as images, rendered as PaddleOCR 3.x renders them: pypdfium2 (PDFium) at scale 2.0
(144 dpi), forms drawn, the scale lowered only where a page would exceed ~179 megapixels.
A PDF that cannot be read (corrupt, encrypted, empty, a page number it lacks) is a
``PdfError`` naming the file: an ``ImageError``, so ``ptocr ocr`` reports it and reads the rest.
PDFium reads the file as pages need it, and only under ``PDFIUM_LOCK`` (it is not thread-safe).

A TIFF is paged too (``tiff_pages``), as paddlex 3.7 reads it: every frame of a ``.tif`` /
``.tiff`` a page of its own (PaddleOCR 2.x read only the first). ``is_paged`` and
``document_pages`` are what the pipelines, bulk reading and the CLI go by; a document or page
that cannot be read is a ``PageError`` (``PdfError`` for a PDF).
"""

from __future__ import annotations

import math
import numbers
import os
import threading
from collections.abc import Iterable, Iterator

import numpy as np

from ptocr.errors import ImageError
from ptocr.transforms.image import PIL_ERRORS, is_special_file, load_image, refuse_special_file

__all__ = ["PageError", "PdfError", "document_pages", "is_paged", "is_pdf", "is_tiff", "page_count", "page_numbers",
           "parse_pages", "pdf_pages", "tiff_pages", "RENDER_SCALE"]

RENDER_SCALE = 2.0  # paddlex PDF_RENDER_SCALE: 72 dpi x 2
MIN_RENDER_SCALE = 0.1  # paddlex PDF_MIN_RENDER_SCALE
MAX_PIXELS = 178_956_970  # paddlex DEFAULT_MAX_IMAGE_PIXELS (PIL's bomb limit)
TIFF_SUFFIXES = (".tif", ".tiff")  # paddlex ImageBatchSampler.TIFF_SUFFIX: one page per frame
# PDFium is not thread-safe: two threads in it at once abort or crash the process. Every call
# into it takes this lock (paddlex's pdfium_lock), one call or page at a time, so threads reading
# different PDFs interleave their pages.
PDFIUM_LOCK = threading.RLock()


class PageError(ImageError):
    """A paged document (PDF, TIFF), or a page of it, that cannot be read. ``page``: the 1-based
    page that failed, None when the document itself did (bulk reading records it per page, so a
    rerun still reads the pages after it)."""

    def __init__(self, message: str, page: int | None = None):
        super().__init__(message)
        self.page = page


class PdfError(PageError):
    """A PDF that cannot be rendered."""


def is_pdf(source) -> bool:
    """A path ending in .pdf (any case)."""
    return isinstance(source, (str, os.PathLike)) and os.fspath(source).lower().endswith(".pdf")


def is_tiff(source) -> bool:
    """A path ending in .tif or .tiff (any case)."""
    return isinstance(source, (str, os.PathLike)) and os.fspath(source).lower().endswith(TIFF_SUFFIXES)


def is_paged(source) -> bool:
    """A PDF or TIFF path: read as its pages, one result each."""
    return is_pdf(source) or is_tiff(source)


def document_pages(path, pages: Iterable[int] | str | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """``pdf_pages`` or ``tiff_pages``, by the name's ending."""
    return tiff_pages(path, pages) if is_tiff(path) else pdf_pages(path, pages)


def page_count(path) -> int | None:
    """A PDF's or TIFF's number of pages; None when it cannot be opened (reading it then says why)."""
    if is_special_file(path):  # a FIFO would block the opening forever
        return None
    if is_tiff(path):
        from PIL import Image

        try:
            with Image.open(os.fspath(path)) as tiff:
                return getattr(tiff, "n_frames", 1)
        except (*PIL_ERRORS, Image.DecompressionBombError):
            return None
    import pypdfium2 as pdfium

    with PDFIUM_LOCK:
        try:
            doc = pdfium.PdfDocument(os.fspath(path))
        except (pdfium.PdfiumError, OSError, ValueError):
            return None
        try:
            return len(doc) or None
        finally:
            doc.close()


# More pages than a document holds in practice (PDF readers stop at 8,388,607): a range past it is
# a typo, refused before its list fills the memory.
MAX_PAGES = 1_000_000


def parse_pages(text: str) -> list[int]:
    """``"1,3-5"`` -> [1, 3, 4, 5] (1-based page numbers)."""
    pages: list[int] = []
    try:
        for part in text.split(","):
            first, dash, last = part.strip().partition("-")
            a, b = int(first), int(last if dash else first)  # "1-" is no range: refused, not page 1
            if a < 1 or b < a:
                raise ValueError
            if len(pages) + b - a + 1 > MAX_PAGES:
                raise PageError(f"pages {text!r}: more than {MAX_PAGES:,} pages")
            pages += range(a, b + 1)
    except ValueError:
        raise PageError(f"pages {text!r}: expected 1-based numbers and ranges such as 1,3-5") from None
    return pages


def page_numbers(pages) -> list[int] | None:
    """``pages`` as a list of 1-based page numbers (None: every page). Takes an iterable of whole
    numbers, or the CLI's text form ``"1,3-5"``; anything else is a ``PageError`` saying what
    is expected (not a TypeError from deep inside the reader)."""
    if pages is None:
        return None
    if isinstance(pages, str):
        return parse_pages(pages)
    if isinstance(pages, numbers.Number):  # 2.x's page_num was a count; a bare number is ambiguous
        raise PageError(f"pages={pages!r}: expected a list of 1-based page numbers, e.g. [2] for page 2 or "
                        "range(1, 3) for the first two pages")
    try:
        wanted = list(pages)
    except TypeError:
        raise PageError(f"pages={pages!r}: expected a list of 1-based page numbers such as [1, 3]") from None
    odd = [p for p in wanted if isinstance(p, bool) or not isinstance(p, numbers.Integral)]
    if odd:
        raise PageError(f"pages: {odd[0]!r} is not a page number (1-based whole numbers such as [1, 3])")
    return [int(p) for p in wanted]


def _check_pages(name: str, wanted: list[int] | None, count: int, kind: str, error=PageError) -> list[int]:
    """The pages to read: ``wanted`` (all when None), each one the document has."""
    wanted = list(range(1, count + 1)) if wanted is None else wanted
    missing = [p for p in wanted if not 1 <= p <= count]
    if missing:
        raise error(f"{name}: no page {missing[0]} (the {kind} has {count} pages)")
    return wanted


def _pixels(size: tuple[float, float], scale: float) -> int:
    return math.ceil(size[0] * scale) * math.ceil(size[1] * scale)


def render_scale(size: tuple[float, float], requested: float = RENDER_SCALE) -> float:
    """``requested``, or the largest scale (bisection, as paddlex) whose render fits MAX_PIXELS."""
    if _pixels(size, requested) <= MAX_PIXELS:
        return requested
    if _pixels(size, MIN_RENDER_SCALE) > MAX_PIXELS:
        raise PdfError(f"a {size[0]:.0f} x {size[1]:.0f} pt page is too large to render")
    lower, upper = MIN_RENDER_SCALE, min(requested, math.sqrt(MAX_PIXELS / (size[0] * size[1])))
    for _ in range(32):
        mid = (lower + upper) / 2
        lower, upper = (mid, upper) if _pixels(size, mid) <= MAX_PIXELS else (lower, mid)
    return lower


def pdf_pages(path, pages: Iterable[int] | str | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(page_index, BGR uint8 image)`` (0-based index) for every page of ``path``, or
    the 1-based ``pages``. The document is opened and checked before the first page is yielded."""
    import pypdfium2 as pdfium

    name = os.fspath(path)
    wanted = page_numbers(pages)
    with PDFIUM_LOCK:
        doc = _open_pdf(name)
        try:
            wanted = _check_pages(name, wanted, len(doc), "PDF", PdfError)
            doc.init_forms()
        except BaseException:
            doc.close()
            raise
    try:
        for number in wanted:
            with PDFIUM_LOCK:
                image = _render(doc, number, name, pdfium.PdfiumError)
            yield number - 1, image
    finally:
        with PDFIUM_LOCK:
            doc.close()


def _render(doc, number: int, name: str, pdfium_error) -> np.ndarray:
    """Page ``number`` (1-based) of ``doc`` as a BGR uint8 array; its PDFium objects closed here,
    under the caller's lock, not by the garbage collector in whichever thread."""
    page = doc[number - 1]
    try:
        bitmap = page.render(scale=render_scale(page.get_size()), may_draw_forms=True)
        try:
            return np.ascontiguousarray(bitmap.to_numpy()[:, :, :3])  # PDFium's byte order: BGR(x)
        finally:
            bitmap.close()
    except (pdfium_error, PdfError) as e:
        raise PdfError(f"{name}: page {number} cannot be rendered ({e})", page=number) from None
    finally:
        page.close()


def _open_pdf(name: str):
    """The PDF ``name`` opened through a file handle: PDFium reads what each page needs, so a
    scanned PDF of a gigabyte is not held in memory (as paddlex, which opens it by path)."""
    import pypdfium2 as pdfium

    refuse_special_file(name, name, PdfError)
    try:
        if os.path.getsize(name) == 0:
            raise PdfError(f"{name}: the file is empty")
        stream = open(name, "rb")
    except OSError as e:
        raise PdfError(f"{name}: cannot be read ({e.strerror or e})") from None
    try:
        doc = pdfium.PdfDocument(stream, autoclose=True)
    except pdfium.PdfiumError:
        stream.close()
        # PDFium's last-error code can be left over from an earlier failure: judge by the file.
        why = ("it is encrypted (a password is needed)" if _mentions(name, b"/Encrypt")
               else "not a readable PDF (damaged, or not a PDF at all)")
        raise PdfError(f"{name}: {why}") from None
    if len(doc) == 0:
        doc.close()
        raise PdfError(f"{name}: the PDF has no pages")
    return doc


def _mentions(name: str, word: bytes, chunk: int = 1 << 20) -> bool:
    """Whether the file ``name`` holds ``word``, read a chunk at a time."""
    tail = b""
    with open(name, "rb") as f:
        while block := f.read(chunk):
            if word in tail + block:
                return True
            tail = block[-len(word):]
    return False


def tiff_pages(path, pages: Iterable[int] | str | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(page_index, BGR uint8 image)`` (0-based index) for every frame of the TIFF ``path``,
    or the 1-based ``pages``, as paddlex's TIFFReader pages it. Each frame is decoded as ptocr
    decodes images (alpha onto white); a single-frame TIFF exactly as the image file."""
    from PIL import Image, UnidentifiedImageError

    name = os.fspath(path)
    wanted = page_numbers(pages)
    refuse_special_file(name, name, PageError)
    try:
        tiff = Image.open(name)
    except FileNotFoundError:
        raise PageError(f"{name}: no such file") from None
    except (UnidentifiedImageError, *PIL_ERRORS, Image.DecompressionBombError) as e:
        raise PageError(f"{name}: not a readable TIFF ({e})") from None
    with tiff:
        try:
            count = getattr(tiff, "n_frames", 1)  # walks every frame's header: a truncated file fails here
        except (*PIL_ERRORS, Image.DecompressionBombError) as e:
            raise PageError(f"{name}: not a readable TIFF ({type(e).__name__}: {e})") from None
        for number in _check_pages(name, wanted, count, "TIFF"):
            try:
                if count == 1:  # exactly as the image file reads, at paddlex's (PIL's) size limit
                    frame = load_image(name, max_pixels=MAX_PIXELS)
                else:
                    try:
                        tiff.seek(number - 1)
                    except PIL_ERRORS as e:  # a damaged frame header (load_image names its pixels' errors)
                        raise ImageError(f"{type(e).__name__}: {e}") from None
                    _check_frame_size(tiff.size)
                    frame = load_image(tiff)
            except (OSError, ValueError, ImageError, Image.DecompressionBombError) as e:
                raise PageError(f"{name}: page {number} cannot be read ({e})", page=number) from None
            yield number - 1, frame


def _check_frame_size(size: tuple[int, int]) -> None:
    """A frame past MAX_PIXELS (PIL's own limit) is that page's error before anything of it is
    decoded."""
    if size[0] * size[1] > MAX_PIXELS:
        raise ValueError(f"{size[0]} x {size[1]} pixels, above the limit of {MAX_PIXELS:,}")
