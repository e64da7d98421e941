"""Turn a path, encoded bytes, numpy array or PIL image into the BGR uint8 HxWx3 array
that PaddleOCR's predictors are fed.

What PaddleOCR 2.10 (``paddleocr.check_img`` + ``ppocr.utils.utility.alpha_to_color``) does,
and where this loader deliberately differs:

- Files and bytes are decoded with ``cv2.imdecode(..., IMREAD_UNCHANGED)``; a 2-D (gray)
  result is expanded with ``COLOR_GRAY2BGR``; a 4-channel result is composited onto
  ``alpha_color`` (white) with PaddleOCR's exact float64 formula and uint8 truncation.
  Same here.
- EXIF orientation: ``IMREAD_UNCHANGED`` ignores it, so ``PaddleOCR.ocr(path)`` OCRs a
  rotated phone photo as stored, while ``tools/infer/predict_*.py`` (``cv2.imread``) apply
  it. Here JPEGs are decoded with ``IMREAD_COLOR`` so the orientation IS applied unless
  ``apply_exif=False`` (JPEG has no alpha and is 8-bit, so the pixels are otherwise the
  same as PaddleOCR's). Arrays and PIL images are taken as given.
- 16-bit images: PaddleOCR passes the uint16 array on unchanged, and the detector's
  ``x * 1/255`` normalisation then produces values up to 257, i.e. garbage. Here they are
  reduced to 8 bit as ``cv2.IMREAD_COLOR`` does (``value >> 8``) before anything else.
- Formats OpenCV cannot decode: PaddleOCR re-decodes them through PIL via a JPEG
  round-trip (lossy), and reads GIFs with ``cv2.VideoCapture`` then flips them to RGB (so
  GIFs reach the model in the wrong channel order). Here PIL (when installed) decodes them
  directly, keeping BGR order and any alpha. A PDF is not one image: the error names the
  pipelines' ways to read its pages (``ptocr.pdf``).
- Gray+alpha (2 channels) and HxWx1 arrays, which PaddleOCR would crash on, are handled as
  gray (+ alpha). Other dtypes (float, int32, bool) raise ``ImageError``.
- Size limit: files and bytes whose width x height exceeds ``MAX_PIXELS`` (100 megapixels)
  raise ``ImageError``. The dimensions are read from the PNG/JPEG/BMP/GIF header (other
  formats: PIL's lazy header read when installed) before anything is decoded, so a
  decompression bomb never allocates; the decoded array is checked again. Arrays and PIL
  images are already in memory and are not limited.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import threading
import warnings
from typing import Any

import cv2
import numpy as np

from ptocr.errors import ImageError

__all__ = ["PIL_ERRORS", "alpha_to_color", "is_special_file", "load_image", "refuse_special_file", "to_bgr"]

_JPEG_MAGIC = b"\xff\xd8\xff"
_WARNINGS_LOCK = threading.Lock()  # around warnings.catch_warnings (see _header_size)
MAX_PIXELS = 100_000_000  # width x height above which files/bytes are refused (~300 MB as BGR)
# What PIL raises for pixels it cannot give, besides OSError / ValueError (a closed image, a mode
# it cannot convert): a damaged file, read lazily, fails with TypeError ("Missing dimensions" of a
# truncated multi-frame TIFF), KeyError, IndexError, SyntaxError, struct.error or EOFError. The
# input's error, caught around PIL's own calls only (around ours it would hide a bug).
PIL_ERRORS = (OSError, ValueError, TypeError, SyntaxError, EOFError, struct.error, IndexError, KeyError)
_BYTES = "image bytes"  # the name bytes inputs go by in messages


def alpha_to_color(img: np.ndarray, alpha_color=(255, 255, 255)) -> np.ndarray:
    """Composite a BGRA uint8 image onto ``alpha_color`` (given R, G, B like PaddleOCR).

    Replicates PaddleOCR's arithmetic: float64 ``alpha = A / 255`` and truncating
    ``astype(uint8)`` (not rounding), so results match bit for bit.
    """
    if img.ndim != 3 or img.shape[2] != 4:
        return img
    b, g, r, a = cv2.split(img)
    alpha = a / 255
    r = (alpha_color[0] * (1 - alpha) + r * alpha).astype(np.uint8)
    g = (alpha_color[1] * (1 - alpha) + g * alpha).astype(np.uint8)
    b = (alpha_color[2] * (1 - alpha) + b * alpha).astype(np.uint8)
    return cv2.merge((b, g, r))


def to_bgr(arr: np.ndarray, source: str = "image array", alpha_color=(255, 255, 255)) -> np.ndarray:
    """Normalise a decoded array (gray / gray+alpha / BGR / BGRA, 8 or 16 bit) to BGR uint8."""
    if not isinstance(arr, np.ndarray):
        raise ImageError(f"{source}: expected a numpy array, got {type(arr).__name__}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (2, 3, 4)):
        raise ImageError(
            f"{source}: unsupported image shape {arr.shape} "
            "(expected HxW, HxWx1, HxWx2, HxWx3 or HxWx4)"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageError(f"{source}: image has zero size {arr.shape}")
    if arr.dtype == np.uint16:
        arr = (arr >> 8).astype(np.uint8)  # what cv2.IMREAD_COLOR does with 16-bit files
    elif arr.dtype != np.uint8:
        raise ImageError(
            f"{source}: unsupported pixel type {arr.dtype} (expected uint8 or uint16)"
        )
    if arr.ndim == 2:
        return cv2.cvtColor(arr, cv2.COLOR_GRAY2BGR)
    if arr.shape[2] == 2:  # gray + alpha
        gray = cv2.cvtColor(np.ascontiguousarray(arr[:, :, 0]), cv2.COLOR_GRAY2BGR)
        arr = np.dstack([gray, arr[:, :, 1]])
    if arr.shape[2] == 4:
        return alpha_to_color(np.ascontiguousarray(arr), alpha_color)
    return np.ascontiguousarray(arr)


def _decode_with_pil(data: bytes, source: str) -> np.ndarray | None:
    try:
        from PIL import Image
    except ImportError:
        return None
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.seek(0)  # first frame of animations / multi-page files
            im.load()  # undecodable data fails here: "not a readable image", below
            return _pil_to_array(im, source)
    except ImageError:
        raise
    except Exception:  # PIL raises many types for undecodable data
        return None


def is_special_file(path: str | os.PathLike) -> bool:
    """A path that exists but is not a regular file (nor a folder): a FIFO, socket or device,
    which reading would block on forever or never finish. A missing path is not one."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def refuse_special_file(path: str | os.PathLike, source: str, error: type[Exception] = ImageError) -> None:
    """``error`` naming ``source`` where ``path`` is a FIFO, socket or device (``is_special_file``)."""
    if is_special_file(path):
        raise error(f"{source}: not a regular file (a FIFO, socket or device), not read")


def _pil_to_array(im: Any, source: str) -> np.ndarray:
    """PIL image -> gray / BGR / BGRA uint8 (or uint16) array; pixels PIL cannot give (a closed
    image, a damaged file it reads lazily) an ``ImageError`` saying why."""
    mode = im.mode
    if im.width == 0 or im.height == 0:  # as an empty array is refused (OpenCV would raise on it)
        raise ImageError(f"{source}: image has zero size {im.width} x {im.height}")
    if mode in ("I", "F"):
        raise ImageError(f"{source}: unsupported PIL image mode {mode!r} (32-bit pixels)")
    try:
        if mode in ("I;16", "I;16B", "I;16L"):
            return np.asarray(im).astype(np.uint16)
        if mode in ("L",):
            return np.asarray(im)
        if mode == "La":  # premultiplied: PIL converts it to LA only
            im = im.convert("LA")
        if mode in ("LA", "RGBA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in im.info):
            rgba = np.asarray(im.convert("RGBA"))
            return cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA)
        rgb = np.asarray(im.convert("RGB"))
    except PIL_ERRORS as e:
        raise ImageError(f"{source}: PIL cannot give its pixels (mode {mode!r}): {type(e).__name__}: {e}") from None
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the first SOFn marker of a JPEG, without decoding."""
    pos = 2
    while pos + 9 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # no length field
            pos += 2
            continue
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack_from(">HH", data, pos + 5)
            return w, h
        if length < 2:
            return None
        pos += 2 + length
    return None


def _header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) declared by the file's header, or None when unknown."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        return struct.unpack_from(">II", data, 16)
    if data[:3] == _JPEG_MAGIC:
        return _jpeg_size(data)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return struct.unpack_from("<HH", data, 6)
    if data[:2] == b"BM" and len(data) >= 26:
        w, h = struct.unpack_from("<ii", data, 18)
        return abs(w), abs(h)
    try:  # other formats: PIL reads only the header on open
        from PIL import Image

        # PIL warns about damaged TIFF tags; catch_warnings swaps the process-wide filter list, so
        # concurrent calls take turns (interleaved, they would leave every warning ignored)
        with _WARNINGS_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                return im.size
    except Exception:
        return None


def _check_pixels(w: int, h: int, source: str, max_pixels: int) -> None:
    if w * h > max_pixels:
        raise ImageError(
            f"{source}: image is {w}x{h} = {w * h / 1e6:.1f} megapixels, above the limit of "
            f"{max_pixels / 1e6:g} megapixels (ptocr.transforms.image.MAX_PIXELS)"
        )


def _decode_bytes(data: bytes, source: str, apply_exif: bool, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    if len(data) == 0:
        raise ImageError(f"{source}: file is empty")
    if data[:5] == b"%PDF-":
        raise ImageError(f"{source}: a PDF, not one image: read its pages with ocr(path), ocr.read_pdf(path) or "
                         "ocr.read_many([path]) (one result per page)"
                         + ("; save the bytes to a .pdf file first" if source == _BYTES else ""))
    size = _header_size(data)
    if size is not None:  # before decoding: a decompression bomb never allocates
        _check_pixels(size[0], size[1], source, max_pixels)
    buf = np.frombuffer(data, dtype=np.uint8)
    flags = cv2.IMREAD_COLOR if (apply_exif and data[:3] == _JPEG_MAGIC) else cv2.IMREAD_UNCHANGED
    try:
        arr = cv2.imdecode(buf, flags)
    except cv2.error:
        arr = None
    if arr is None:
        arr = _decode_with_pil(data, source)
    if arr is None:
        raise ImageError(f"{source}: not a readable image (corrupt, truncated or unsupported format)")
    if arr.ndim >= 2:  # formats whose header we could not read
        _check_pixels(arr.shape[1], arr.shape[0], source, max_pixels)
    return arr


def load_image(
    x: Any, *, apply_exif: bool = True, alpha_color=(255, 255, 255), max_pixels: int = MAX_PIXELS
) -> np.ndarray:
    """Load ``x`` as a BGR uint8 ``HxWx3`` C-contiguous array.

    ``x`` may be a path (str / os.PathLike; unicode paths work), encoded image bytes, a numpy
    array (taken as gray, BGR or BGRA, i.e. OpenCV's channel order) or a PIL image (RGB
    order, converted). ``apply_exif`` rotates JPEG files/bytes by their EXIF orientation.
    ``alpha_color`` (R, G, B) replaces transparency. Files and bytes above ``max_pixels``
    (width x height) are refused before decoding. Raises ``ImageError`` naming the file.
    """
    if isinstance(x, np.ndarray):
        return to_bgr(x, "image array", alpha_color)
    if isinstance(x, (bytes, bytearray, memoryview)):
        data = bytes(x)
        return to_bgr(_decode_bytes(data, _BYTES, apply_exif, max_pixels), _BYTES, alpha_color)
    if isinstance(x, (str, os.PathLike)):
        path = os.fspath(x)
        source = f"image file {path!r}"
        if not os.path.exists(path):
            raise ImageError(f"{source}: no such file")
        if os.path.isdir(path):
            raise ImageError(f"{source}: is a directory, not an image file")
        refuse_special_file(path, source)
        try:
            # np.fromfile + imdecode instead of cv2.imread: cv2.imread cannot open
            # non-ASCII paths on Windows.
            data = np.fromfile(path, dtype=np.uint8).tobytes()
        except OSError as e:
            raise ImageError(f"{source}: cannot read ({e.strerror or e})") from e
        return to_bgr(_decode_bytes(data, source, apply_exif, max_pixels), source, alpha_color)
    if type(x).__module__.startswith("PIL.") and hasattr(x, "mode"):
        return to_bgr(_pil_to_array(x, "PIL image"), "PIL image", alpha_color)
    raise ImageError(
        f"unsupported image input of type {type(x).__name__} "
        "(expected a path, bytes, numpy array or PIL image)"
    )
