"""Pre-processing: image loading, detector / recogniser / classifier inputs, crops.

Expected values are worked out by hand from PaddleOCR 2.10's formulas (quoted in comments),
not by calling PaddleOCR.
"""

from __future__ import annotations

import math
import os

import cv2
import numpy as np
import pytest
from conftest import compile_paddleocr

from ptocr.errors import ImageError
from ptocr.transforms import (
    ClsPreprocess,
    DetPreprocess,
    RecPreprocess,
    det_resize,
    get_minarea_rect_crop,
    get_rotate_crop_image,
    load_image,
    sorted_boxes,
)
from ptocr.transforms.det import parse_scale


@pytest.fixture(scope="module")
def images_dir(shared_dir):
    d = shared_dir / "images"
    if not (d / "scenes").is_dir():
        pytest.skip(f"shared images not found at {d}")
    return d


def _rand(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


# ---------------------------------------------------------------- detector resize


# resize_h = max(int(round(int(h * ratio) / 32) * 32), 32) with Python's round (half to even)
@pytest.mark.parametrize(
    "h, w, limit, limit_type, expected",
    [
        (48, 80, 960, "max", (64, 64)),  # 1.5 -> 2, 2.5 -> 2: banker's rounding both ways
        (1000, 500, 960, "max", (960, 480)),  # ratio 0.96
        (1080, 1920, 960, "max", (544, 960)),  # 540 / 32 = 16.875 -> 17
        (3000, 40, 960, "max", (960, 32)),  # w: int(12.8) = 12 -> round(0.375) = 0 -> min 32
        (500, 333, 736, "min", (1120, 736)),  # short side up to 736; 1105 / 32 = 34.5 -> 35
        (800, 900, 736, "min", (800, 896)),  # already >= 736: ratio 1, 900 / 32 = 28.1 -> 28
        (100, 200, 960, "resize_long", (480, 960)),  # always scaled, even upwards
        (959, 961, 960, "max", (960, 960)),  # ratio 960/961 -> int(958.0) = 958 -> 960
    ],
)
def test_det_resize_rounding(h, w, limit, limit_type, expected):
    out, ratio_h, ratio_w = det_resize(_rand((h, w, 3)), limit, limit_type)
    assert out.shape == (*expected, 3)
    assert ratio_h == expected[0] / h and ratio_w == expected[1] / w


def test_det_small_image_is_padded_not_stretched():
    # h + w < 64: zero-padded to 32x32 first; ratios refer to the padded size, the shape
    # info keeps the true source size.
    img = np.full((10, 20, 3), 200, np.uint8)
    chw, info = DetPreprocess()(img)
    assert chw.shape == (3, 32, 32)
    assert info == (10, 20, 1.0, 1.0)
    # padded area is black: channel 0 there is (0 - 0.485) / 0.229
    assert chw[0, 31, 31] == pytest.approx(-0.485 / 0.229, abs=1e-6)
    assert chw[0, 0, 0] == pytest.approx((200 / 255 - 0.485) / 0.229, abs=1e-6)


def test_det_normalisation_keeps_bgr_order_with_rgb_means():
    img = np.zeros((64, 64, 3), np.uint8)  # multiple of 32 and <= 960: not resized
    img[5, 7] = (0, 128, 255)  # B, G, R
    chw, info = DetPreprocess()(img)
    assert chw.dtype == np.float32 and chw.shape == (3, 64, 64) and chw.flags.c_contiguous
    assert info == (64, 64, 1.0, 1.0)
    # channel 0 is the image's B with the R mean/std (0.485 / 0.229), as in PaddleOCR
    assert chw[0, 5, 7] == pytest.approx((0.0 - 0.485) / 0.229, abs=1e-6)
    assert chw[1, 5, 7] == pytest.approx((128 / 255 - 0.456) / 0.224, abs=1e-6)
    assert chw[2, 5, 7] == pytest.approx((1.0 - 0.406) / 0.225, abs=1e-6)


def test_det_preprocess_settings_from_json_like_dict():
    cfg = {
        "limit_side_len": 640,
        "limit_type": "min",
        "mean": [0.5, 0.5, 0.5],
        "std": [0.5, 0.5, 0.5],
        "scale": "1./255.",
    }
    pre = DetPreprocess(**cfg)
    chw, info = pre(np.full((100, 50, 3), 255, np.uint8))
    # short side 50 -> 640 (ratio 12.8): 1280 x 640
    assert chw.shape == (3, 1280, 640) and info[2:] == (12.8, 12.8)
    assert np.allclose(chw, 1.0)
    assert parse_scale("1./255.") == 1 / 255 and parse_scale(0.5) == 0.5
    with pytest.raises(ValueError):
        DetPreprocess(limit_type="longest")
    with pytest.raises(ValueError):
        parse_scale("__import__('os')")


def test_det_preprocess_rejects_bad_input():
    with pytest.raises(ImageError):
        DetPreprocess()(np.zeros((10, 10), np.uint8))
    with pytest.raises(ImageError):
        DetPreprocess()(np.zeros((0, 10, 3), np.uint8))


def test_det_preprocess_real_scenes(images_dir):
    for path in sorted((images_dir / "scenes").glob("*.jpg")):
        img = load_image(path)
        chw, (src_h, src_w, rh, rw) = DetPreprocess()(img)
        assert (src_h, src_w) == img.shape[:2]
        _, h, w = chw.shape
        assert h % 32 == 0 and w % 32 == 0 and max(h, w) <= 960 + 16
        assert rh == h / src_h and rw == w / src_w
        assert abs(rh - rw) < 34 / min(src_h, src_w)  # aspect kept up to the rounding


# ---------------------------------------------------------------- recogniser / classifier


@pytest.mark.parametrize(
    "h, w, width, resized_w",
    [
        (48, 96, 320, 96),  # ratio 2 < 320/48: padded to the model's 320
        (33, 100, 320, 146),  # ceil(48 * 100/33 = 145.45) = 146
        (24, 120, 320, 240),  # ratio 5, scaled up by 2
        (10, 1000, 4800, 4800),  # ratio 100: batch width int(48 * 100) = 4800, no padding
        (60, 10, 320, 8),  # tall crop: ceil(48 / 6) = 8
    ],
)
def test_rec_resize_widths(h, w, width, resized_w):
    img = np.full((h, w, 3), 255, np.uint8)
    out = RecPreprocess((3, 48, 320), max_width=None)(img)  # PaddleOCR 2.10: uncapped
    assert out.shape == (3, 48, width) and out.dtype == np.float32
    assert np.all(out[:, :, :resized_w] == 1.0)  # white -> (1 - 0.5) / 0.5
    assert np.all(out[:, :, resized_w:] == 0.0)  # zero padding


def test_rec_normalisation_values():
    img = np.zeros((48, 96, 3), np.uint8)
    img[:, :48] = 0
    img[:, 48:] = 51
    out = RecPreprocess()(img)
    assert out[0, 0, 0] == -1.0
    assert out[1, 10, 60] == pytest.approx((51 / 255 - 0.5) / 0.5, abs=1e-7)


def test_rec_batches_sort_by_aspect_and_share_width():
    # width/height ratios 8, 1, 12, 2 -> order 1, 3 | 0, 2
    crops = [np.zeros((10, w, 3), np.uint8) for w in (80, 10, 120, 20)]
    pre = RecPreprocess((3, 48, 320), batch_size=2)
    got = list(pre.batches(crops))
    assert [list(i) for i, _ in got] == [[1, 3], [0, 2]]
    assert got[0][1].shape == (2, 3, 48, 320)  # max(320/48, 2) -> 320
    assert got[1][1].shape == (2, 3, 48, 576)  # int(48 * 12) = 576
    # the ratio-8 crop is resized to ceil(48 * 8) = 384 and padded to 576
    row = got[1][1][0]
    assert np.all(row[:, :, :384] == -1.0) and np.all(row[:, :, 384:] == 0.0)


def test_rec_batches_real_words(images_dir):
    paths = sorted((images_dir / "words").glob("*/*"))
    crops = [load_image(p) for p in paths]
    pre = RecPreprocess()
    seen = []
    for idx, batch in pre.batches(crops):
        assert len(idx) <= 6 and batch.shape[:3] == (len(idx), 3, 48)
        ratios = [crops[i].shape[1] / crops[i].shape[0] for i in idx]
        assert batch.shape[3] == int(48 * max(320 / 48, *ratios))
        seen.extend(idx.tolist())
    assert sorted(seen) == list(range(len(crops)))
    all_ratios = [crops[i].shape[1] / crops[i].shape[0] for i in seen]
    assert all_ratios == sorted(all_ratios)


def test_rec_rejects_wrong_channels():
    with pytest.raises(ImageError):
        RecPreprocess()(np.zeros((10, 10, 4), np.uint8))
    with pytest.raises(ImageError):
        RecPreprocess()(np.zeros((0, 10, 3), np.uint8))


def test_cls_fixed_width():
    pre = ClsPreprocess()
    wide = pre(np.full((48, 500, 3), 255, np.uint8))
    square = pre(np.full((48, 48, 3), 255, np.uint8))
    assert wide.shape == square.shape == (3, 48, 192)
    assert np.all(wide == 1.0)
    assert np.all(square[:, :, :48] == 1.0) and np.all(square[:, :, 48:] == 0.0)
    crops = [np.zeros((10, w, 3), np.uint8) for w in (80, 10, 120)]
    got = list(ClsPreprocess(batch_size=2).batches(crops))
    assert [list(i) for i, _ in got] == [[1, 0], [2]]
    assert all(b.shape[1:] == (3, 48, 192) for _, b in got)


# ---------------------------------------------------------------- box order and crops


def _quad(x, y, w=30, h=10):
    return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.float32)


def test_sorted_boxes_same_line_rule():
    a, b, c = _quad(100, 50), _quad(10, 55), _quad(0, 200)
    d = _quad(5, 62)  # 12 px below a: a different line even though further left
    out, idx = sorted_boxes(np.stack([a, b, c, d]), return_index=True)
    # by (y, x): a(50), b(55), d(62), c(200); b moves before a (|55-50| < 10, 10 < 100);
    # d vs a: |62-50| >= 10 -> stays
    assert idx.tolist() == [1, 0, 3, 2]
    assert all(np.array_equal(o, e) for o, e in zip(out, [b, a, d, c]))
    assert sorted_boxes(np.zeros((0, 4, 2), np.float32)) == []


def test_rotate_crop_axis_aligned_is_the_slice(images_dir):
    img = load_image(images_dir / "scenes" / "1.jpg")
    box = _quad(40, 30, w=200, h=50)
    crop = get_rotate_crop_image(img, box)
    assert crop.shape == (50, 200, 3)
    # integer shift with cubic interpolation reproduces the pixels
    assert np.abs(crop.astype(int) - img[30:80, 40:240].astype(int)).max() <= 1


def test_rotate_crop_undoes_a_rotation():
    # a 160x40 patch of 8-px vertical stripes pasted into a canvas, rotated by 30 degrees:
    # cropping the rotated quad must give back the patch (up to interpolation blur).
    rng = np.random.default_rng(3)
    stripes = np.repeat(rng.integers(0, 256, (1, 20, 3), dtype=np.uint8), 8, axis=1)
    patch = np.repeat(stripes, 40, axis=0)
    patch[:20] //= 3  # darker top half: a flipped crop would not match
    canvas = np.zeros((400, 400, 3), np.uint8)
    canvas[180:220, 120:280] = patch
    m = cv2.getRotationMatrix2D((200, 200), 30, 1.0)
    rotated = cv2.warpAffine(canvas, m, (400, 400), flags=cv2.INTER_CUBIC)
    corners = np.array([[120, 180], [280, 180], [280, 220], [120, 220]], np.float64)
    quad = (np.c_[corners, np.ones(4)] @ m.T).astype(np.float32)
    crop = get_rotate_crop_image(rotated, quad)
    assert crop.shape == (40, 160, 3)
    err = np.abs(crop[4:-4, 4:-4].astype(int) - patch[4:-4, 4:-4].astype(int))
    assert err.mean() < 4


def test_rotate_crop_tall_box_is_turned_counter_clockwise():
    img = np.zeros((200, 100, 3), np.uint8)
    img[10:20, 20:30] = 255  # marker near the quad's top-left
    crop = get_rotate_crop_image(img, _quad(20, 10, w=40, h=100))
    assert crop.shape == (40, 100, 3)  # 100 / 40 >= 1.5 -> rotated
    # np.rot90 (counter-clockwise): the top-left goes to the bottom-left
    assert crop[-5, 5].min() == 255 and crop[5, 5].max() == 0
    assert get_rotate_crop_image(img, _quad(20, 10, w=40, h=59)).shape == (59, 40, 3)  # < 1.5


def test_minarea_rect_crop_of_a_polygon():
    img = _rand((100, 200, 3), seed=4)
    poly = np.array([[10, 20], [60, 18], [110, 20], [110, 40], [60, 42], [10, 40]])
    crop = get_minarea_rect_crop(img, poly)
    assert abs(crop.shape[0] - 24) <= 1 and abs(crop.shape[1] - 100) <= 1


# ---------------------------------------------------------------- image loading


def test_load_real_jpeg_and_unicode_path(images_dir, tmp_path):
    src = images_dir / "scenes" / "1.jpg"
    img = load_image(src)
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3 and img.flags.c_contiguous
    assert np.array_equal(img, cv2.imread(str(src), cv2.IMREAD_COLOR))
    uni = tmp_path / "图像 é.jpg"
    uni.write_bytes(src.read_bytes())
    assert np.array_equal(load_image(uni), img)
    assert np.array_equal(load_image(str(uni)), img)
    assert np.array_equal(load_image(src.read_bytes()), img)


def test_load_real_gray_jpeg(images_dir):
    path = images_dir / "scenes" / "japan_2.jpg"  # stored as a 1-channel JPEG
    raw = cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_UNCHANGED)
    assert raw.ndim == 2
    img = load_image(path)
    assert img.shape == (*raw.shape, 3)
    assert np.array_equal(img[:, :, 0], raw) and np.array_equal(img[:, :, 2], raw)


def test_load_real_rgba_png_is_composited_on_white(images_dir):
    path = images_dir / "words" / "chinese_traditional" / "chinese_cht_1.png"
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert raw.shape[2] == 4
    img = load_image(path)
    assert img.shape == (*raw.shape[:2], 3)
    clear = raw[:, :, 3] == 0
    opaque = raw[:, :, 3] == 255
    assert np.all(img[clear] == 255)
    assert np.array_equal(img[opaque], raw[:, :, :3][opaque])


def test_alpha_composite_truncates_like_paddleocr():
    px = np.array([[[50, 10, 109, 100]]], np.uint8)  # B, G, R, A
    # alpha = 100/255; out = 255 * (1 - alpha) + v * alpha, truncated (not rounded):
    # B: 155 + 19.61 = 174.6 -> 174; G: 155 + 3.92 = 158.9 -> 158; R: 155 + 42.75 -> 197
    assert load_image(px)[0, 0].tolist() == [174, 158, 197]
    assert load_image(np.array([[[9, 8, 7, 0]]], np.uint8))[0, 0].tolist() == [255, 255, 255]
    assert load_image(np.array([[[9, 8, 7, 255]]], np.uint8))[0, 0].tolist() == [9, 8, 7]


def test_load_gray_and_single_channel_arrays():
    g = _rand((7, 9))
    for arr in (g, g[:, :, None]):
        out = load_image(arr)
        assert out.shape == (7, 9, 3) and all(np.array_equal(out[:, :, c], g) for c in range(3))
    ga = np.dstack([g, np.full_like(g, 255)])
    assert np.array_equal(load_image(ga), load_image(g))


def test_load_16bit_png(tmp_path):
    arr = np.full((5, 6, 3), 0x1234, np.uint16)
    arr[0, 0] = (0xFFFF, 0x00FF, 0x0100)
    p = tmp_path / "deep.png"
    cv2.imwrite(str(p), arr)
    img = load_image(p)
    assert img.dtype == np.uint8
    assert img[1, 1].tolist() == [0x12] * 3
    assert img[0, 0].tolist() == [255, 0, 1]
    assert np.array_equal(img, cv2.imread(str(p), cv2.IMREAD_COLOR))  # same as OpenCV's 8-bit read
    gray16 = tmp_path / "gray16.png"
    cv2.imwrite(str(gray16), np.full((4, 4), 0xABCD, np.uint16))
    assert load_image(gray16)[0, 0].tolist() == [0xAB] * 3


def test_exif_orientation(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:5, :5] = 255  # top-left marker
    im = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    p = tmp_path / "rot.jpg"
    im.save(p, exif=exif.tobytes(), quality=95)
    upright = load_image(p)
    assert upright.shape == (40, 20, 3)
    assert upright[:5, -5:].mean() > 200  # marker now top-right
    assert load_image(p, apply_exif=False).shape == (20, 40, 3)


def test_load_pil_image_is_converted_to_bgr():
    Image = pytest.importorskip("PIL.Image")
    rgb = np.zeros((3, 4, 3), np.uint8)
    rgb[..., 0] = 200  # red
    out = load_image(Image.fromarray(rgb))
    assert out[0, 0].tolist() == [0, 0, 200]
    rgba = Image.fromarray(np.dstack([rgb, np.zeros((3, 4), np.uint8)]), "RGBA")
    assert load_image(rgba)[0, 0].tolist() == [255, 255, 255]


def test_pil_images_whose_pixels_pil_cannot_give():
    # A closed image and a premultiplied "La" one raised PIL's raw ValueError.
    Image = pytest.importorskip("PIL.Image")
    closed = Image.new("RGB", (4, 3))
    closed.close()
    with pytest.raises(ImageError, match=r"PIL image: PIL cannot give its pixels \(mode 'RGB'\).*closed image"):
        load_image(closed)
    # "La" converts to "LA" only: read through it, as LA reads (alpha 0 and 255 survive premultiplying).
    la = Image.fromarray(np.dstack([np.full((3, 4), 90, np.uint8), np.array([[0, 255, 255, 0]] * 3, np.uint8)]), "LA")
    assert np.array_equal(load_image(la.convert("La")), load_image(la))
    assert load_image(la)[0, :2].tolist() == [[255] * 3, [90] * 3]


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty"),
        (b"this is not an image at all", "not a readable image"),
        (b"\xff\xd8\xff\xe0" + bytes(60), "not a readable image"),  # JPEG header, no data
        (b"%PDF-1.4\n...", "PDF"),
    ],
)
def test_unreadable_files_raise_image_error_naming_the_file(tmp_path, content, message):
    p = tmp_path / "bad input.jpg"
    p.write_bytes(content)
    with pytest.raises(ImageError) as e:
        load_image(p)
    assert "bad input.jpg" in str(e.value) and message in str(e.value)


def _open_and_close_a_writer(fifo) -> None:
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # no reader: ENXIO, nothing to unblock
    except OSError:
        pass


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_a_fifo_is_refused_not_waited_on(tmp_path):
    # A FIFO named *.jpg (in a folder run) blocked np.fromfile until a writer came: forever.
    import threading

    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    unblock = threading.Timer(10, _open_and_close_a_writer, [fifo])  # unchecked: EOF in 10 s, a failure, not a hang
    unblock.daemon = True
    unblock.start()
    try:
        with pytest.raises(ImageError, match="pipe.jpg'?: not a regular file"):
            load_image(fifo)
    finally:
        unblock.cancel()


def test_truncated_real_jpeg_raises(images_dir, tmp_path):
    data = (images_dir / "scenes" / "1.jpg").read_bytes()
    p = tmp_path / "cut.jpg"
    p.write_bytes(data[:200])
    with pytest.raises(ImageError, match="cut.jpg"):
        load_image(p)


def test_other_bad_inputs(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="directory"):
        load_image(tmp_path)
    with pytest.raises(ImageError, match="zero size"):
        load_image(np.zeros((0, 5, 3), np.uint8))
    from PIL import Image

    with pytest.raises(ImageError, match="zero size 0 x 0"):  # was OpenCV's error from the colour conversion
        load_image(Image.new("RGB", (0, 0)))
    with pytest.raises(ImageError, match="float32"):
        load_image(np.zeros((5, 5, 3), np.float32))
    with pytest.raises(ImageError, match="shape"):
        load_image(np.zeros((5, 5, 5), np.uint8))
    with pytest.raises(ImageError, match="unsupported image input"):
        load_image(12345)


def test_rec_width_formula_matches_math():
    # int(imgH * max_wh_ratio) and ceil(imgH * w / h) for a sweep of shapes
    pre = RecPreprocess((3, 32, 320), max_width=None)
    for h in (7, 20, 31, 32, 50):
        for w in (1, 13, 64, 333, 1200):
            out = pre(np.full((h, w, 3), 255, np.uint8))
            max_ratio = max(320 / 32, w / h)
            width = int(32 * max_ratio)
            resized = min(width, math.ceil(32 * w / h))
            assert out.shape == (3, 32, width)
            assert np.all(out[:, :, :resized] == 1.0) and np.all(out[:, :, resized:] == 0.0)


# ---------------------------------------------------------------- parity with PaddleOCR's code
# Runs PaddleOCR 2.x's own pre-processing (read from its installed sources, paddle stubbed
# out) on the same inputs and requires identical arrays. Skipped unless a paddleocr 2.x
# package (`pip install --no-deps paddleocr==2.10.0`) is installed or $PTOCR_PADDLEOCR_SRC
# names one.


@pytest.fixture(scope="module")
def paddle_ref(paddleocr_src):
    import copy
    import os
    import sys
    import time
    import types

    root = paddleocr_src
    ns = dict(np=np, cv2=cv2, math=math, copy=copy, os=os, sys=sys, time=time)
    ns["is_link"] = lambda s: False
    wanted = {
        "ppocr/data/imaug/operators.py": ["DetResizeForTest", "NormalizeImage", "ToCHWImage"],
        "tools/infer/predict_rec.py": ["TextRecognizer"],
        "tools/infer/predict_cls.py": ["TextClassifier"],
        "ppocr/utils/utility.py": ["alpha_to_color", "check_and_read"],
        "paddleocr.py": ["check_img", "img_decode"],
        "ppocr/postprocess/cls_postprocess.py": ["ClsPostProcess"],
    }
    ns["paddle"] = types.SimpleNamespace(Tensor=type("Tensor", (), {}))
    for relpath, names in wanted.items():
        compile_paddleocr(root, relpath, names, ns)
    return ns


def _capture(obj, outputs):
    """Stand in for a Paddle predictor: record each input batch, answer with ``outputs``."""
    from types import SimpleNamespace

    seen = []
    obj.input_tensor = SimpleNamespace(copy_from_cpu=lambda x: seen.append(x.copy()))
    obj.predictor = SimpleNamespace(run=lambda: None, try_shrink_memory=lambda: None)
    obj.output_tensors = [SimpleNamespace(copy_to_cpu=lambda: outputs(seen[-1]))]
    obj.use_onnx = False
    obj.benchmark = False
    return seen


def test_parity_det_preprocess(paddle_ref, images_dir):
    rng = np.random.default_rng(0)
    images = [load_image(p) for p in sorted((images_dir / "scenes").glob("*.jpg"))]
    sizes = [(int(rng.integers(1, 1500)), int(rng.integers(1, 1500))) for _ in range(40)]
    # ("min" scales the short side up to 736: keep the long side of those modest)
    images += [_rand((h, w, 3), seed=i) for i, (h, w) in enumerate(sizes) if max(h, w) < 8 * min(h, w)]
    images += [_rand((5, 7, 3)), _rand((31, 32, 3)), _rand((48, 80, 3)), _rand((2, 40, 3))]
    for lsl, lt in [(960, "max"), (736, "min"), (960, "resize_long")]:
        ops = [
            paddle_ref["DetResizeForTest"](limit_side_len=lsl, limit_type=lt),
            paddle_ref["NormalizeImage"](
                std=[0.229, 0.224, 0.225], mean=[0.485, 0.456, 0.406], scale="1./255.", order="hwc"
            ),
            paddle_ref["ToCHWImage"](),
        ]
        for img in images:
            data = {"image": img}
            for op in ops:
                data = op(data)
            chw, info = DetPreprocess(limit_side_len=lsl, limit_type=lt)(img)
            assert chw.dtype == data["image"].dtype and np.array_equal(chw, data["image"])
            assert np.array_equal(np.array(info, dtype=np.float64), data["shape"])


def test_parity_rec_and_cls_batches(paddle_ref, images_dir):
    rng = np.random.default_rng(1)
    crops = [load_image(p) for p in sorted((images_dir / "words").glob("*/*"))]
    crops += [_rand((int(rng.integers(1, 120)), int(rng.integers(1, 900)), 3), seed=i) for i in range(30)]
    crops += [_rand((20, 60, 3), seed=100 + i) for i in range(10)]  # tied aspect ratios
    for shape, batch_size in [((3, 48, 320), 6), ((3, 32, 320), 6), ((3, 48, 320), 1)]:
        rec = paddle_ref["TextRecognizer"].__new__(paddle_ref["TextRecognizer"])
        rec.rec_image_shape, rec.rec_batch_num, rec.rec_algorithm = list(shape), batch_size, "SVTR_LCNet"
        rec.return_word_box, rec.postprocess_params = False, {"name": "CTCLabelDecode"}
        rec.postprocess_op = lambda preds, **kw: [("", 0.0)] * len(preds)
        seen = _capture(rec, lambda x: np.zeros((len(x), 1, 1), np.float32))
        rec(crops)
        ours = list(RecPreprocess(shape, batch_size, max_width=None).batches(crops))
        assert len(ours) == len(seen)
        assert all(np.array_equal(b, ref) for (_, b), ref in zip(ours, seen))

    def probs(x):  # deterministic "model": half the crops confidently upside down
        p = np.zeros((len(x), 2), np.float32)
        p[:, 1] = np.where(x[:, 0, 0, 0] > 0, 0.95, 0.3)
        p[:, 0] = 1 - p[:, 1]
        return p

    from ptocr.postprocess import ClsPostProcess, apply_cls_rotation

    cls = paddle_ref["TextClassifier"].__new__(paddle_ref["TextClassifier"])
    cls.cls_image_shape, cls.cls_batch_num, cls.cls_thresh = [3, 48, 192], 6, 0.9
    cls.postprocess_op = paddle_ref["ClsPostProcess"](label_list=["0", "180"])
    seen = _capture(cls, probs)
    ref_crops, ref_res, _ = cls(crops)
    pre, post = ClsPreprocess(), ClsPostProcess()
    results = [None] * len(crops)
    for (idx, batch), ref in zip(pre.batches(crops), seen):
        assert np.array_equal(batch, ref)
        for i, r in zip(idx, post(probs(batch))):
            results[i] = r
    assert results == [(label, float(score)) for label, score in ref_res]
    rotated = apply_cls_rotation(crops, results)
    assert all(np.array_equal(a, b) for a, b in zip(rotated, ref_crops))


def test_parity_image_loading(paddle_ref, images_dir, tmp_path):
    rng = np.random.default_rng(2)
    files = sorted((images_dir / "scenes").glob("*")) + sorted((images_dir / "words").glob("*/*"))
    for name, arr in [
        ("gray.png", rng.integers(0, 256, (30, 40), dtype=np.uint8)),
        ("bgra.png", rng.integers(0, 256, (30, 40, 4), dtype=np.uint8)),
        ("gray.jpg", rng.integers(0, 256, (30, 40), dtype=np.uint8)),
        ("bgr.bmp", rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)),
    ]:
        cv2.imwrite(str(tmp_path / name), arr)
        files.append(tmp_path / name)
    for f in files:
        ref, _, _ = paddle_ref["check_img"](str(f))
        assert np.array_equal(load_image(f), ref), f
        arr = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(load_image(arr), paddle_ref["check_img"](arr)[0]), f
