"""What the OCR pipeline returns: text lines with their boxes, scores and direction."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ptocr.atomic import OutputError, OutputFormatError, blocked_output, output_path, write_outputs
from ptocr.errors import first_line
from ptocr.visualize import draw_ocr


@dataclass
class Line:
    box: list[list[float]]  # 4 corners [x, y], clockwise from top-left (seal text: its polygon), image pixels
    text: str
    score: float  # mean CTC probability of the kept characters
    angle: int | None = None  # 180 when the classifier turned the crop over, 0 if not, None without one

    def to_dict(self) -> dict:
        d = {"box": [[float(x), float(y)] for x, y in self.box], "text": self.text, "score": float(self.score)}
        if self.angle is not None:
            d["angle"] = self.angle
        return d


@dataclass
class OCRResult:
    """The lines read from one image, in reading order (PaddleOCR's ``sorted_boxes``).

    Iterating, ``len`` and indexing go over ``lines``. ``image`` is the BGR array that was
    read (kept for ``visualize``; not part of the JSON).
    """

    lines: list[Line]
    source: str | None = None  # the path, when the input was one
    page_index: int | None = None  # 0-based page of a PDF or TIFF, None for images
    image: np.ndarray | None = field(default=None, repr=False, compare=False)

    def __iter__(self):
        return iter(self.lines)

    def __len__(self) -> int:
        return len(self.lines)

    def __getitem__(self, i):
        return self.lines[i]

    @property
    def texts(self) -> list[str]:
        return [line.text for line in self.lines]

    def to_dict(self) -> list[dict]:
        return [line.to_dict() for line in self.lines]

    def to_paddleocr(self) -> list | None:
        """This image's entry of PaddleOCR 2.10's ``ocr(img)`` list: ``[[box, (text, score)], ...]``
        (box: 4 ``[x, y]`` float corners), or None when no line was kept, as PaddleOCR gives it."""
        if not self.lines:
            return None
        return [[[[float(x), float(y)] for x, y in line.box], (line.text, float(line.score))] for line in self.lines]

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent)

    def visualize(self, font: str | os.PathLike | None = None) -> np.ndarray:
        """The image with its boxes, beside a panel with the text drawn in each box (BGR)."""
        if self.image is None:
            raise ValueError("this result holds no image to draw on")
        return draw_ocr(self.image, self.lines, font=font)

    def save_visualization(self, path: str | os.PathLike, font: str | os.PathLike | None = None) -> Path:
        """Write ``visualize()`` as an image file (PNG unless the suffix says otherwise), whole or
        not at all. A suffix OpenCV cannot write: ``OutputFormatError`` listing those it can; a
        path that cannot be written: ``OutputError`` saying why (both PtocrErrors)."""
        path = output_path(path)
        if not path.suffix:
            path = path.with_suffix(".png")
        suffix = path.suffix.lower()
        if suffix not in visualization_suffixes():
            raise OutputFormatError(path, f"OpenCV cannot write {path.suffix!r} images; it writes "
                                          f"{', '.join(visualization_suffixes())}")
        why = blocked_output(path)  # before drawing
        if why is not None:
            raise OutputError(path, why)
        data = _encode(path, self.visualize(font))
        write_outputs([(path, data)])  # not cv2.imwrite: that fails on non-ASCII paths on Windows
        return path


# What OpenCV's writers take (imgcodecs' list), less what needs a gray (.pbm, .pgm) or float (.exr) image.
_OPENCV_SUFFIXES = (".bmp", ".dib", ".jpg", ".jpeg", ".jpe", ".jp2", ".png", ".apng", ".gif", ".webp", ".avif",
                    ".jxl", ".ppm", ".pnm", ".pam", ".pfm", ".sr", ".ras", ".tif", ".tiff", ".hdr", ".pic")


def visualization_suffixes() -> list[str]:
    """The file suffixes ``save_visualization`` writes: those of ``_OPENCV_SUFFIXES`` this OpenCV
    build has a writer for."""
    import cv2

    return [s for s in _OPENCV_SUFFIXES if cv2.haveImageWriter(f"x{s}")]


def _encode(path: Path, image: np.ndarray) -> bytes:
    """``image`` encoded as ``path``'s suffix says; OutputFormatError where OpenCV fails to
    (it raises for some formats, returns False for others)."""
    import cv2

    try:
        ok, data = cv2.imencode(path.suffix.lower(), image)
    except cv2.error as e:  # "OpenCV(5.1.0) /src/loadsave.cpp:1646: error: (-2:...) WHY in function '...'"
        found = re.search(r"error: \([^)]*\) (.*?)(?: in function|$)", first_line(e))
        ok, why = False, f" ({found.group(1)})" if found else ""
    else:
        why = ""
    if not ok:
        raise OutputFormatError(path, f"OpenCV cannot encode this image as {path.suffix!r}{why}")
    return data.tobytes()
