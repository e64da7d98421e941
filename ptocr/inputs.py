"""What the pipelines take as one input, as PaddleOCR 3.x's (paddlex's) batch sampler takes it:
an image; a PDF or TIFF, read as its pages; a folder, read as its image, PDF and TIFF files
(searched recursively, sorted by path); or a list of these, read in order into one flat list.
``ptocr ocr DIR`` lists a folder the same way, with ``--out`` and without."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from ptocr.errors import ImageError
from ptocr.pdf import is_paged
from ptocr.transforms.image import is_special_file

__all__ = ["IMAGE_SUFFIXES", "PDF_SUFFIX", "folder_files", "is_folder", "iter_inputs", "read_inputs"]

# The files a folder contributes: what ptocr's image loader decodes, and PDFs.
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".jp2", ".pbm", ".pgm", ".ppm"}
PDF_SUFFIX = ".pdf"


def is_folder(source) -> bool:
    return isinstance(source, (str, os.PathLike)) and os.path.isdir(source)


def folder_files(folder) -> list[str]:
    """The image, PDF and TIFF files under ``folder`` (recursively), sorted by path as paddlex
    sorts them; a FIFO, socket or device of such a name is left out (reading it would block)."""
    wanted = IMAGE_SUFFIXES | {PDF_SUFFIX}
    return sorted(path for root, _, files in os.walk(os.fspath(folder)) for name in files
                  if os.path.splitext(name)[1].lower() in wanted
                  and not is_special_file(path := os.path.join(root, name)))


def read_inputs(pipeline, images, pages: Iterable[int] | None = None):
    """``pipeline(images, pages)`` of both pipelines: an image -> ``pipeline.read``'s result; a PDF
    or TIFF -> a list of ``read_pdf``'s page results (``pages``: 1-based, default all); a folder or
    a list -> a flat list of results, pages and folders' files in place."""
    if isinstance(images, (list, tuple)) or is_folder(images):
        return list(iter_inputs(pipeline, images, pages))
    return pipeline.read_pdf(images, pages) if is_paged(images) else pipeline.read(images)


def iter_inputs(pipeline, images, pages: Iterable[int] | None = None) -> Iterator:
    """One result at a time (PaddleOCR 3.x's ``predict_iter``) for ``images``: an image, PDF,
    TIFF or folder, or a list of them; each page of a PDF or TIFF, each file of a folder."""
    for image in _expanded(images if isinstance(images, (list, tuple)) else [images]):
        yield from pipeline.iter_pages(image, pages) if is_paged(image) else [pipeline.read(image)]


def _expanded(images) -> list:
    """Folders (given or in the list) replaced by their files; one without any is an ImageError."""
    out: list = []
    for image in [images] if is_folder(images) else images:
        if not is_folder(image):
            out.append(image)
        elif not (files := folder_files(image)):
            raise ImageError(f"{os.fspath(image)}: no image or PDF files in this folder")
        else:
            out += files
    return out
