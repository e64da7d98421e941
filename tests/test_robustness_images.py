"""Issue 8, images: ``load_image`` on hostile and odd files. Only ImageError may escape, a
decompression bomb is refused from its header before any pixel is decoded (the limit is
``MAX_PIXELS``, 100 megapixels), and the odd-but-valid kinds load as BGR uint8.

test_transforms.py covers real JPEG/PNG/gray/RGBA/16-bit files, EXIF orientation, empty
and truncated files and bad arrays; this adds the size limit, bombs, every-offset
truncation and bit flips of small files in each format, and a property-based fuzzer.
"""

from __future__ import annotations

import io
import os
import resource
import struct
import time
import zlib

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ptocr.errors import ImageError
from ptocr.transforms import load_image
from ptocr.transforms.image import MAX_PIXELS

EXAMPLES = int(os.environ.get("PTOCR_FUZZ_EXAMPLES", "60"))
# PIL warns about each damaged TIFF tag it skips; the outcome is what is tested
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_bomb(w: int, h: int) -> bytes:
    """A valid 8-bit gray PNG of w x h zeros: kilobytes on disk, w*h bytes decoded."""
    comp = zlib.compressobj(9)
    row = b"\0" * (w + 1)  # filter byte + pixels
    idat = b"".join(comp.compress(row) for _ in range(h)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def jpeg_claiming(w: int, h: int) -> bytes:
    """A small real JPEG whose SOF0 header is rewritten to claim w x h."""
    data = bytearray(cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    i = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, i + 5, h, w)
    return bytes(data)


def _encoded(ext: str, img: np.ndarray) -> bytes:
    return cv2.imencode(ext, img)[1].tobytes()


SMALL = np.dstack([np.tile(np.arange(16, dtype=np.uint8) * 16, (12, 1))] * 3)
FORMATS = {ext: _encoded(ext, SMALL) for ext in (".png", ".jpg", ".bmp", ".tiff", ".webp")}


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- size limit and bombs ----------------------------------------------------------------------


def test_the_limit_is_100_megapixels():
    assert MAX_PIXELS == 100_000_000


@pytest.mark.parametrize(
    "kind, data",
    [
        ("png bomb 12000x12000", lambda: png_bomb(12000, 12000)),  # 144 Mpx, ~140 kB file
        ("png header 10^5 x 10^5", lambda: png_bomb(1, 1)[:16] + struct.pack(">II", 10**5, 10**5) + b"\0" * 64),
        ("jpeg header 30000x30000", lambda: jpeg_claiming(30000, 30000)),
        ("gif header 65535x65535", lambda: b"GIF89a" + struct.pack("<HH", 65535, 65535) + b"\0" * 64),
        ("bmp header 40000x-40000", lambda: b"BM" + b"\0" * 16 + struct.pack("<ii", 40000, -40000) + b"\0" * 64),
    ],
)
def test_images_above_the_limit_are_refused_before_decoding(tmp_path, kind, data):
    path = tmp_path / "bomb.img"
    path.write_bytes(data())
    before, t = _rss_mb(), time.perf_counter()
    with pytest.raises(ImageError, match="megapixels, above the limit") as ei:
        load_image(path)
    assert "bomb.img" in str(ei.value)
    assert time.perf_counter() - t < 1.0, kind
    assert _rss_mb() - before < 100, f"{kind}: decoded before refusing"


def test_limit_is_applied_after_decoding_for_formats_without_a_parsed_header():
    # TIFF/WebP dimensions come from PIL's header read or, failing that, the decoded array
    for ext in (".tiff", ".webp"):
        with pytest.raises(ImageError, match="above the limit"):
            load_image(FORMATS[ext], max_pixels=100)
        assert load_image(FORMATS[ext]).shape == (12, 16, 3)


def test_a_bomb_just_below_the_limit_still_loads_if_asked():
    img = load_image(png_bomb(300, 200), max_pixels=300 * 200)
    assert img.shape == (200, 300, 3) and img.dtype == np.uint8 and not img.any()
    with pytest.raises(ImageError):
        load_image(png_bomb(300, 200), max_pixels=300 * 200 - 1)


def test_arrays_are_not_limited():
    # arrays are already in memory; the limit is about what decoding would allocate
    assert load_image(np.zeros((2, 3), np.uint8), max_pixels=1).shape == (2, 3, 3)


# --- odd but valid --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, img, ext",
    [
        ("1x1 png", np.array([[[1, 2, 3]]], np.uint8), ".png"),
        ("1x1 jpeg", np.array([[[1, 2, 3]]], np.uint8), ".jpg"),
        ("1x5000 png", np.zeros((1, 5000, 3), np.uint8), ".png"),
        ("gray png", np.zeros((5, 7), np.uint8), ".png"),
        ("gray jpeg", np.zeros((5, 7), np.uint8), ".jpg"),
        ("rgba png", np.zeros((5, 7, 4), np.uint8), ".png"),
        ("16-bit png", np.full((5, 7), 65535, np.uint16), ".png"),
        ("16-bit rgb png", np.full((5, 7, 3), 4096, np.uint16), ".png"),
        ("16-bit tiff", np.full((5, 7, 3), 4096, np.uint16), ".tiff"),
        ("bmp", np.zeros((5, 7, 3), np.uint8), ".bmp"),
        ("webp", np.zeros((5, 7, 3), np.uint8), ".webp"),
    ],
)
def test_odd_but_valid_images_load_as_bgr_uint8(tmp_path, name, img, ext):
    path = tmp_path / f"x{ext}"
    path.write_bytes(_encoded(ext, img))
    out = load_image(path)
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3 and out.flags.c_contiguous
    assert out.shape[:2] == img.shape[:2], name


def test_exif_rotated_jpeg_bytes(tmp_path):
    # test_transforms covers a path; the same through bytes, and a bogus orientation value
    PIL = pytest.importorskip("PIL.Image")
    for orientation, shape in ((8, (40, 20, 3)), (3, (20, 40, 3)), (99, (20, 40, 3))):
        exif = PIL.Exif()
        exif[0x0112] = orientation
        buf = io.BytesIO()
        PIL.new("RGB", (40, 20), "white").save(buf, "JPEG", exif=exif.tobytes())
        assert load_image(buf.getvalue()).shape == shape, orientation


# --- broken ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", FORMATS)
def test_truncated_at_every_offset_and_flipped_at_every_byte(tmp_path, ext):
    """Cut or flipped files either load (decoders tolerate some damage, e.g. JPEG data) or
    give ImageError naming the file; nothing else, and never anything but BGR uint8."""
    data = FORMATS[ext]
    path = tmp_path / f"bad{ext}"
    counts = {"ok": 0, "ImageError": 0}
    variants = [data[:n] for n in range(len(data))]
    variants += [data[:i] + bytes([data[i] ^ (1 << (i % 8))]) + data[i + 1 :] for i in range(len(data))]
    for v in variants:
        path.write_bytes(v)
        try:
            out = load_image(path)
            assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
            counts["ok"] += 1
        except ImageError as e:
            assert str(path) in str(e)
            counts["ImageError"] += 1
    assert counts["ImageError"] > 0


@pytest.mark.parametrize(
    "data",
    [b"", b"\0", b"\0" * 1000, b"GIF89a", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM", b"II*\0", b"RIFF\0\0\0\0WEBP",
     b"%PDF-1.4\n", b"<svg xmlns='http://www.w3.org/2000/svg'/>", b"PK\x03\x04", "text ünïcode".encode()],
    ids=lambda d: repr(d[:12]),
)
def test_not_an_image(tmp_path, data):
    path = tmp_path / "x.png"
    path.write_bytes(data)
    with pytest.raises(ImageError, match="x.png"):
        load_image(path)
    with pytest.raises(ImageError):
        load_image(data)


def test_jpeg_marker_walk_terminates_on_garbage():
    # zero-length segments and fill bytes must neither loop nor misread a size
    for tail in (b"\xff\xe0\x00\x00", b"\xff" * 64, b"\xff\xe0\x00\x02" * 50, b"\xff\xc0\x00"):
        t = time.perf_counter()
        with pytest.raises(ImageError):
            load_image(b"\xff\xd8" + tail)
        assert time.perf_counter() - t < 0.5


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
@given(st.sampled_from(sorted(FORMATS)), st.data())
def test_fuzz_load_image(ext, data):
    buf = bytearray(FORMATS[ext])
    for _ in range(data.draw(st.integers(1, 4))):
        if not buf:
            break
        i = data.draw(st.integers(0, len(buf) - 1))
        op = data.draw(st.sampled_from(["flip", "cut", "insert", "ff"]))
        if op == "flip":
            buf[i] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "cut":
            del buf[i:]
        elif op == "insert":
            buf[i:i] = data.draw(st.binary(min_size=1, max_size=16))
        else:
            buf[i : i + 4] = b"\xff\xff\xff\xff"
    try:  # a lower limit: a flipped header may claim tens of megapixels, slow to decode
        out = load_image(bytes(buf), max_pixels=1_000_000)
        assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
    except ImageError:
        pass
