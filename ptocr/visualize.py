"""Drawing OCR results: the image with coloured boxes, beside a white panel where each line's
text is written into its box (the layout of PaddleOCR's ``draw_ocr_box_txt``).

Text is drawn with ``font=`` / ``$PTOCR_FONT``, else the first ``fc-list :lang=zh`` hit, else a
few well-known system paths, else Pillow's built-in Latin font. A line holding characters that
font lacks (CJK fonts have no Arabic, Devanagari, Thai, Tamil... glyphs; Pillow's has only Latin)
is drawn with an installed font that has them all, found through fontconfig (PaddleX picks a
font per recognizer for the same reason). Where none has them, they become boxes and a warning
says so. Pillow is needed for text; without it only boxes are drawn.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import unicodedata
import warnings
from bisect import bisect_right
from collections.abc import Sequence

import cv2
import numpy as np

from ptocr.errors import PtocrError, first_line
from ptocr.postprocess.db import get_mini_boxes

__all__ = ["draw_ocr", "find_cjk_font", "font_for_text", "FontError"]


class FontError(PtocrError, OSError):
    """The font to draw with (``font=``, ``$PTOCR_FONT``) cannot be loaded; an OSError too, as
    Pillow's own error was."""

_COMMON_FONTS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
    "/System/Library/Fonts/PingFang.ttc",
    "/System/Library/Fonts/Hiragino Sans GB.ttc",
    "/Library/Fonts/Arial Unicode.ttf",
    "C:/Windows/Fonts/msyh.ttc",
    "C:/Windows/Fonts/simhei.ttf",
)


@functools.lru_cache(maxsize=1)
def find_cjk_font() -> str | None:
    """A font file able to draw Chinese, or None."""
    env = os.environ.get("PTOCR_FONT")
    if env and os.path.isfile(env):
        return env
    out = _fontconfig("fc-list", ":lang=zh", "file")
    files = sorted(line.split(":")[0].strip() for line in out.splitlines() if line.strip())
    files = [f for f in files if f.lower().endswith((".ttf", ".ttc", ".otf")) and os.path.isfile(f)]
    if files:
        return files[0]
    return next((f for f in _COMMON_FONTS if os.path.isfile(f)), None)


def _fontconfig(*args: str) -> str:
    """A fontconfig tool's output; "" where it is not installed or fails."""
    if not shutil.which(args[0]):
        return ""
    try:
        return subprocess.run(list(args), capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def _ranges(charset: str) -> tuple[list[int], list[int]]:
    """fontconfig's charset ("20-7e a0 ...", hex) -> (range starts, range ends), sorted."""
    spans = sorted((int(lo, 16), int(hi or lo, 16))
                   for lo, _, hi in (item.partition("-") for item in charset.split()))
    return [lo for lo, _ in spans], [hi for _, hi in spans]


def _covers(ranges: tuple[list[int], list[int]], code: int) -> bool:
    k = bisect_right(ranges[0], code) - 1
    return k >= 0 and code <= ranges[1][k]


@functools.lru_cache(maxsize=None)
def _font_charset(path: str) -> tuple[list[int], list[int]] | None:
    """The code points of ``path``'s first face (the one Pillow loads), None where fontconfig
    cannot say."""
    out = _fontconfig("fc-query", "-i", "0", "--format", "%{charset}", path).strip()
    return _ranges(out) if out else None


@functools.lru_cache(maxsize=1)
def _installed_fonts() -> list[tuple[str, int, tuple[list[int], list[int]]]]:
    """(file, face index, code points) of every font fontconfig knows, regular upright
    proportional faces first."""
    fonts = []
    out = _fontconfig("fc-list", "--format", "%{file}|%{index}|%{style[0]}|%{family[0]}|%{charset}\\n")
    for line in out.splitlines():
        parts = line.rsplit("|", 4)
        if len(parts) != 5 or not parts[0].lower().endswith((".ttf", ".ttc", ".otf")) or not parts[1].isdigit():
            continue
        path, index, style, family, charset = parts
        plain = style.lower() in ("regular", "book", "normal", "roman")
        fonts.append(((not plain, "mono" in family.lower(), path, int(index)), path, int(index), _ranges(charset)))
    return [(path, index, ranges) for _, path, index, ranges in sorted(fonts, key=lambda f: f[0])]


def _drawn(text: str) -> frozenset[int]:
    """The code points of ``text`` that need a glyph (not spaces, controls or joiners)."""
    return frozenset(ord(c) for c in text if unicodedata.category(c)[0] not in "ZC")


@functools.lru_cache(maxsize=4096)
def _font_covering(codes: frozenset[int]) -> tuple[str, int] | None:
    return next(((path, index) for path, index, ranges in _installed_fonts()
                 if all(_covers(ranges, c) for c in codes)), None)


def _charset_of(font: str | None) -> tuple[list[int], list[int]] | None:
    return _font_charset(font) if font is not None else _ranges("20-7e")  # None: Pillow's Latin font


def _missing(text: str, font: str | None) -> set[str]:
    """The characters of ``text`` that ``font`` has no glyph for (drawn as boxes)."""
    charset = _charset_of(font)
    return set() if charset is None else {chr(c) for c in _drawn(text) if not _covers(charset, c)}


def font_for_text(text: str, font: str | None) -> tuple[str | None, int, bool]:
    """(font file, face index, whether it has every glyph of ``text``): ``font`` (None: Pillow's
    built-in Latin font) where it has them all or fontconfig cannot say, else an installed font
    that has them."""
    codes = _drawn(text)
    charset = _charset_of(font)
    if charset is None or all(_covers(charset, c) for c in codes):
        return font, 0, True
    found = _font_covering(codes)
    return (*found, True) if found is not None else (font, 0, False)


def _colors(n: int) -> list[tuple[int, int, int]]:
    rng = np.random.default_rng(0)  # same colours every run
    return [tuple(int(v) for v in rng.integers(0, 256, 3)) for _ in range(n)]


def _side_lengths(box: np.ndarray) -> tuple[float, float]:
    w = max(np.linalg.norm(box[0] - box[1]), np.linalg.norm(box[3] - box[2]))
    h = max(np.linalg.norm(box[0] - box[3]), np.linalg.norm(box[1] - box[2]))
    return float(w), float(h)


def draw_ocr(image: np.ndarray, lines: Sequence, font: str | os.PathLike | None = None,
             word_quads: Sequence | None = None) -> np.ndarray:
    """``image``: BGR uint8; ``lines``: objects with ``.box`` (4x2, or a K x 2 polygon) and
    ``.text``; ``word_quads``: per line, its words' quads (outlined on the image, in the line's
    colour, darker). Returns a BGR uint8 image twice as wide as ``image``."""
    h, w = image.shape[:2]
    boxes = [np.asarray(line.box, dtype=np.float32).reshape(-1, 2) for line in lines]
    colors = _colors(len(boxes))

    fill = image.copy()
    panel = np.full_like(image, 255)
    for box, color in zip(boxes, colors):
        pts = np.round(box).astype(np.int32)
        cv2.fillPoly(fill, [pts], color)
        cv2.polylines(panel, [pts], True, color, 1, cv2.LINE_AA)
    # a polygon's text is written into its minimum-area rectangle
    boxes = [b if len(b) == 4 else get_mini_boxes(b)[0] for b in boxes]
    left = cv2.addWeighted(image, 0.5, fill, 0.5, 0)
    for quads, color in zip(word_quads or [], colors):
        for quad in quads:
            cv2.polylines(left, [np.round(np.asarray(quad, np.float32)).astype(np.int32)], True,
                          tuple(c // 2 for c in color), 1, cv2.LINE_AA)

    panel = _write_texts(panel, boxes, [line.text for line in lines], font)
    return np.ascontiguousarray(np.hstack([left, panel])).reshape(h, 2 * w, 3)


@functools.lru_cache(maxsize=16)  # a font that loaded once is not opened again for every image
def _check_font(path: str) -> None:
    """FontError where Pillow cannot load the font file ``path``."""
    from PIL import ImageFont

    if not os.path.isfile(path):
        raise FontError(f"cannot draw with the font {path}: "
                        + ("it is not a file" if os.path.exists(path) else "no such file"))
    try:
        ImageFont.truetype(path, 10)
    except OSError as e:  # "unknown file format", "cannot open resource"
        raise FontError(f"cannot draw with the font {path}: Pillow cannot load it ({first_line(e)})") from None


def _write_texts(panel: np.ndarray, boxes, texts, font) -> np.ndarray:
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError:
        warnings.warn("Pillow is not installed: the visualization shows boxes without text", stacklevel=3)
        return panel
    preferred = os.fspath(font) if font is not None else find_cjk_font()
    if preferred is not None and len(texts):  # a page without text draws no letters
        _check_font(preferred)
    lacking = set()

    def load(size: int):
        size = max(int(size), 6)
        if font_path is None:
            try:
                return ImageFont.load_default(size)
            except TypeError:  # Pillow < 10.1: fixed-size bitmap font
                return ImageFont.load_default()
        return ImageFont.truetype(font_path, size, index=index)

    for box, text in zip(boxes, texts):
        font_path, index, complete = font_for_text(text, preferred)
        if not complete:
            lacking.update(_missing(text, font_path))  # the rest of the line is drawn
        bw, bh = _side_lengths(box)
        iw, ih = max(round(bw), 1), max(round(bh), 1)
        patch = Image.new("L", (iw, ih), 0)  # text coverage, warped into the box below
        draw = ImageDraw.Draw(patch)
        if ih > 2 * iw and len(text) > 1:  # vertical line: one character per row
            f = load(min(iw * 0.8, ih / len(text)))
            step = ih / len(text)
            for k, ch in enumerate(text):
                draw.text((iw / 2, (k + 0.5) * step), ch, fill=255, font=f, anchor="mm")
        else:
            size = ih * 0.8
            f = load(size)
            length = draw.textlength(text, font=f) if text else 0
            if length > iw * 0.95:
                f = load(size * iw * 0.95 / length)
            draw.text((iw / 2, ih / 2), text, fill=255, font=f, anchor="mm")
        src = np.float32([[0, 0], [iw, 0], [iw, ih], [0, ih]])
        m = cv2.getPerspectiveTransform(src, box.astype(np.float32))
        cover = cv2.warpPerspective(np.asarray(patch), m, (panel.shape[1], panel.shape[0]))
        alpha = cover.astype(np.float32)[:, :, None] / 255.0
        panel = (panel * (1 - alpha)).astype(np.uint8)  # black text on the white panel
    if lacking:
        shown = "".join(sorted(lacking)[:10])
        warnings.warn(
            f"no font found for some characters ({shown!r}; tried font=, $PTOCR_FONT, fc-list :lang=zh, common "
            "paths and fontconfig's fonts): they are drawn as boxes; install a font for their script (e.g. "
            "fonts-noto-cjk, fonts-noto-core) or set PTOCR_FONT to a .ttf/.ttc file",
            stacklevel=3,
        )
    return panel
