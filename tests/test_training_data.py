"""ptocr.training.data / augment against PaddleOCR 2.10's own data classes (run from its sources)."""

from __future__ import annotations

import json
import math
import random

import cv2
import numpy as np
import pytest
from conftest import compile_paddleocr, det_label, seed_python_and_numpy
import torch

from ptocr.errors import PtocrError
from ptocr.training import augment
from ptocr.training.data import (ClsDataset, DetDataset, DetLabelEncode, DetResizeForTest, MultiScaleSampler,
                                 NormalizeImage, RecDataset, RecResizeImg, ToCHWImage, collate,
                                 read_label_files)
from ptocr.transforms.image import load_image
from tests.conftest import shared_path

IMAGES = shared_path() / "images"
SCENE = IMAGES / "scenes" / "img_12.jpg"
WORDS = sorted((IMAGES / "words" / "ch").glob("*.jpg"))
needs_images = pytest.mark.skipif(not SCENE.is_file() or len(WORDS) < 3, reason="shared images not found")


def _int(x=0, *base):
    """int() that takes a 1-element array as numpy < 2.4 did: PaddleOCR 2.10's
    region_wise_random_select calls int() on one (a TypeError on numpy 2.4)."""
    return int(x.item() if isinstance(x, np.ndarray) and x.size == 1 else x, *base)


@pytest.fixture(scope="module")
def paddle(paddleocr_src):
    ns = dict(np=np, cv2=cv2, math=math, random=random, json=json, sys=__import__("sys"), int=_int)
    imaug = "ppocr/data/imaug/"
    compile_paddleocr(paddleocr_src, imaug + "label_ops.py", ["DetLabelEncode"], ns)
    compile_paddleocr(paddleocr_src, imaug + "operators.py", ["NormalizeImage", "ToCHWImage", "DetResizeForTest"], ns)
    compile_paddleocr(paddleocr_src, imaug + "random_crop_data.py",
             ["is_poly_in_rect", "is_poly_outside_rect", "split_regions", "random_select",
              "region_wise_random_select", "crop_area", "EastRandomCropData"], ns)
    compile_paddleocr(paddleocr_src, imaug + "text_image_aug/warp_mls.py", ["WarpMLS"], ns)
    compile_paddleocr(paddleocr_src, imaug + "text_image_aug/augment.py", ["tia_distort", "tia_stretch", "tia_perspective"], ns)
    compile_paddleocr(paddleocr_src, imaug + "rec_img_aug.py",
             ["RecAug", "BaseDataAugmentation", "RecConAug", "RecResizeImg", "ClsResizeImg", "resize_norm_img",
              "resize_norm_img_chinese", "flag", "hsv_aug", "jitter", "add_gasuss_noise", "get_crop"], ns)
    return ns


# ---------------------------------------------------------------------------------------------
# Label files
# ---------------------------------------------------------------------------------------------
def test_ratio_list_samples_the_lines_paddleocr_samples(tmp_path):
    lines = [f"img_{i}.jpg\tword{i}" for i in range(40)]
    (tmp_path / "a.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp_path / "b.txt").write_text("x.jpg|text|extra\n", encoding="utf-8")
    random.seed(7)  # SimpleDataSet.get_image_info_list: random.seed(seed); random.sample(lines, round(n * r))
    expected = random.sample(lines, round(40 * 0.3))
    got = read_label_files([tmp_path / "a.txt"], ratio_list=[0.3], seed=7)
    assert [f"{g.path}\t{g.label}" for g in got] == expected
    assert [g.line for g in got] == [lines.index(e) + 1 for e in expected]
    other = read_label_files(tmp_path / "b.txt", delimiter="|")
    assert (other[0].path, other[0].label) == ("x.jpg", "text")
    with pytest.raises(PtocrError, match="ratio_list"):
        read_label_files([tmp_path / "a.txt", tmp_path / "b.txt"], ratio_list=[0.5])


def test_bad_lines_name_file_and_line(tmp_path):
    label = tmp_path / "det.txt"
    good = det_label([[[0, 0], [10, 0], [10, 10], [0, 10]]], ["a"])
    label.write_text(f"a.jpg\t{good}\n\nb.jpg\t[{{\"points\": [[0, 0]]}}]\nc.jpg\tnot json\n", encoding="utf-8")
    with pytest.raises(PtocrError, match=r"det\.txt:3: text 0: 'points'"):
        DetDataset(label, tmp_path)
    with pytest.warns(UserWarning, match="2 label lines skipped"):
        ds = DetDataset(label, tmp_path, skip_invalid=True)
    assert len(ds) == 1 and [w for w, _ in ds.skipped] == [f"{label}:3", f"{label}:4"]
    with pytest.raises(PtocrError, match=r"det\.txt:1: image file .*a\.jpg"):
        ds[0]
    (tmp_path / "nodelim.txt").write_text("just_a_path.jpg\n", encoding="utf-8")
    with pytest.raises(PtocrError, match=r"nodelim\.txt:1"):
        read_label_files(tmp_path / "nodelim.txt")


def test_rec_labels_the_encoder_refuses(tmp_path):
    label = tmp_path / "rec.txt"
    label.write_text("a.jpg\tabc\nb.jpg\t" + "a" * 30 + "\nc.jpg\t\n", encoding="utf-8")
    with pytest.raises(PtocrError, match=r"rec\.txt:2: .*over max_text_length"):
        RecDataset(label, tmp_path, list("abc"))
    with pytest.warns(UserWarning):
        ds = RecDataset(label, tmp_path, list("abc"), skip_invalid=True)
    assert len(ds) == 1 and len(ds.skipped) == 2


# ---------------------------------------------------------------------------------------------
# Deterministic transforms: bit-exact against PaddleOCR's classes
# ---------------------------------------------------------------------------------------------
def test_det_label_encode_matches(paddle):
    label = det_label([[[1, 2], [30, 2], [30, 15], [1, 15]], [[5, 5], [9, 5], [9, 9], [7, 11], [5, 9]],
                        [[0.5, 0.5], [3.25, 1], [2, 4]]], ["abc", "###", "*"])
    ours = DetLabelEncode()({"label": label})
    ref = paddle["DetLabelEncode"]()({"label": label})
    assert ours["polys"].dtype == ref["polys"].dtype and np.array_equal(ours["polys"], ref["polys"])
    assert np.array_equal(ours["ignore_tags"], ref["ignore_tags"]) and ours["texts"] == ref["texts"]
    assert ours["ignore_tags"].tolist() == [False, True, True]


@needs_images
def test_normalize_chw_and_eval_resize_match(paddle):
    image = load_image(str(SCENE))
    for kwargs in ({}, {"limit_side_len": 960, "limit_type": "max"}):
        ours = DetResizeForTest(**kwargs)({"image": image.copy()})
        ref = paddle["DetResizeForTest"](**kwargs)({"image": image.copy()})
        assert np.array_equal(ours["image"], ref["image"]) and np.array_equal(ours["shape"], ref["shape"])
    for order in ("hwc", "chw"):
        source = image if order == "hwc" else image.transpose(2, 0, 1)
        ours = NormalizeImage(scale="1./255.", order=order)({"image": source})["image"]
        ref = paddle["NormalizeImage"](scale="1./255.", order=order)({"image": source})["image"]
        assert ours.dtype == np.float32 and np.array_equal(ours, ref)
    chw = ToCHWImage()({"image": image})["image"]
    assert np.array_equal(chw, paddle["ToCHWImage"]()({"image": image})["image"])


@needs_images
@pytest.mark.parametrize("kwargs", [{}, {"padding": False}, {"eval_mode": True}, {"image_shape": (1, 32, 100)}])
def test_rec_resize_matches(paddle, kwargs):
    kwargs = {"image_shape": (3, 48, 320), **kwargs}
    for path in WORDS[:3]:
        image = load_image(str(path))
        if kwargs["image_shape"][0] == 1:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        wide = np.concatenate([image] * 4, axis=1)  # past 320 at height 48: the clamped / grown width
        for img in (image, wide):
            ours = RecResizeImg(**kwargs)({"image": img})
            ref = paddle["RecResizeImg"](**kwargs)({"image": img})
            assert ours["image"].shape == ref["image"].shape and np.array_equal(ours["image"], ref["image"])
            assert ours["valid_ratio"] == ref["valid_ratio"]


# ---------------------------------------------------------------------------------------------
# Random transforms: the same draws as PaddleOCR's under the same seeds
# ---------------------------------------------------------------------------------------------
def _crop_case(image):
    """Texts spread so the free columns form several runs (the region-wise branch) and not."""
    h, w = image.shape[:2]
    boxes = [[[x, y], [x + 60, y], [x + 60, y + 25], [x, y + 25]]
             for x, y in ((20, 30), (200, 120), (400, 300), (w - 90, h - 60))]
    return DetLabelEncode()({"label": det_label(boxes, ["a", "b", "###", "d"])})


@needs_images
@pytest.mark.parametrize("keep_ratio", [True, False])
def test_east_random_crop_matches(paddle, keep_ratio):
    image = load_image(str(SCENE))
    crops = set()
    for seed in range(12):
        data = _crop_case(image)
        ref_in = {**data, "image": image.copy(), "polys": data["polys"].copy()}
        seed_python_and_numpy(seed)
        ours = augment.EastRandomCropData((640, 640), max_tries=50, keep_ratio=keep_ratio)({**data, "image": image.copy()})
        seed_python_and_numpy(seed)
        ref = paddle["EastRandomCropData"]((640, 640), max_tries=50, keep_ratio=keep_ratio)(ref_in)
        assert np.array_equal(ours["image"], ref["image"])
        assert ours["polys"].dtype == ref["polys"].dtype and np.array_equal(ours["polys"], ref["polys"])
        assert list(ours["ignore_tags"]) == list(ref["ignore_tags"]) and ours["texts"] == ref["texts"]
        crops.add(len(ours["texts"]))
    assert len(crops) > 1  # the crops really differ between seeds


@needs_images
def test_rec_aug_matches(paddle):
    images = [load_image(str(p)) for p in WORDS[:3]]
    probabilities = [dict(tia_prob=1.0, crop_prob=1.0, reverse_prob=1.0, noise_prob=1.0, jitter_prob=1.0,
                          blur_prob=1.0, hsv_aug_prob=1.0), {}]
    for kwargs in probabilities:
        for seed, image in enumerate(images * 2):
            seed_python_and_numpy(seed)
            ours = augment.RecAug(**kwargs)({"image": image.copy()})["image"]
            after = (random.random(), np.random.random())
            seed_python_and_numpy(seed)
            ref = paddle["RecAug"](**kwargs)({"image": image.copy()})["image"]
            assert ours.shape == ref.shape and np.array_equal(ours, ref), (kwargs, seed)
            assert after == (random.random(), np.random.random())  # the same number of draws


@needs_images
def test_tia_warps_match(paddle):
    image = load_image(str(WORDS[0]))
    image = cv2.resize(image, (250, 130))  # more than one 100-pixel grid cell each way
    for name in ("tia_distort", "tia_stretch"):
        for segment in (3, 6):
            np.random.seed(segment)
            ours = getattr(augment, name)(image.copy(), segment)
            np.random.seed(segment)
            assert np.array_equal(ours, paddle[name](image.copy(), segment)), (name, segment)
    np.random.seed(1)
    ours = augment.tia_perspective(image.copy())
    np.random.seed(1)
    assert np.array_equal(ours, paddle["tia_perspective"](image.copy()))
    assert not np.array_equal(ours, image)


@needs_images
def test_rec_con_aug_matches(paddle):
    images = [load_image(str(p)) for p in WORDS[:3]]
    for seed in range(6):
        def sample():
            return {"image": images[0].copy(), "label": "ab",
                    "ext_data": [{"image": im.copy(), "label": "cd"} for im in images[1:]]}
        random.seed(seed)
        ours = augment.RecConAug(prob=0.5, image_shape=(48, 320, 3), max_text_length=25, ext_data_num=2)(sample())
        random.seed(seed)
        ref = paddle["RecConAug"](prob=0.5, image_shape=(48, 320, 3), max_text_length=25, ext_data_num=2)(sample())
        assert ours["label"] == ref["label"] and np.array_equal(ours["image"], ref["image"])


# ---------------------------------------------------------------------------------------------
# IaaAugment: cv2 geometry, the polygons move with the pixels
# ---------------------------------------------------------------------------------------------
def _painted(polys, shape):
    canvas = np.zeros(shape, np.uint8)
    cv2.fillPoly(canvas, [np.round(p).astype(np.int32) for p in polys], 255)
    return canvas


def test_iaa_augment_moves_polygons_with_pixels():
    polys = np.array([[[40, 30], [150, 40], [140, 90], [35, 80]], [[200, 100], [260, 100], [260, 170], [200, 170]]],
                     np.float32)
    image = cv2.cvtColor(_painted(polys, (200, 300)), cv2.COLOR_GRAY2BGR)
    flips, sizes = set(), set()
    for seed in range(8):
        np.random.seed(seed)
        out = augment.IaaAugment()({"image": image.copy(), "polys": polys.copy()})
        moved = out["image"][:, :, 0] > 127
        expected = _painted(out["polys"], moved.shape) > 0
        iou = (moved & expected).sum() / (moved | expected).sum()
        assert iou > 0.9, (seed, iou)
        flips.add(bool(out["polys"][1, 0, 0] < out["polys"][0, 0, 0]))
        sizes.add(out["image"].shape)
    assert flips == {True, False} and len(sizes) == 8
    config = [{"type": "Fliplr", "args": {"p": 1.0}}]
    out = augment.IaaAugment(config)({"image": image.copy(), "polys": polys.copy()})
    assert np.array_equal(out["image"], image[:, ::-1]) and np.allclose(out["polys"][..., 0], 300 - polys[..., 0])
    with pytest.raises(PtocrError, match="not supported"):
        augment.IaaAugment([{"type": "Crop"}])


# ---------------------------------------------------------------------------------------------
# Datasets, collate, sampler
# ---------------------------------------------------------------------------------------------
@needs_images
def test_det_dataset_train_and_eval(tmp_path):
    from ptocr.training import DBLoss, make_db_targets

    h, w = cv2.imread(str(SCENE)).shape[:2]
    boxes = [[[50, 60], [300, 60], [300, 120], [50, 120]], [[w // 2, h // 2], [w // 2 + 200, h // 2],
                                                             [w // 2 + 200, h // 2 + 40], [w // 2, h // 2 + 40]]]
    label = tmp_path / "train.txt"
    label.write_text(f"scenes/{SCENE.name}\t{det_label(boxes, ['one', '###'])}\n" * 2, encoding="utf-8")
    train = DetDataset(label, IMAGES, train=True)
    np.random.seed(0)
    random.seed(0)
    batch = collate([train[0], train[1]])
    assert batch["image"].shape == (2, 3, 640, 640) and batch["image"].dtype == torch.float32
    for key in ("threshold_map", "threshold_mask", "shrink_map", "shrink_mask"):
        assert batch[key].shape == (2, 640, 640)
    assert float(batch["shrink_map"].sum()) > 0  # the cared text survived the augmentation
    maps = torch.rand(2, 3, 640, 640)
    assert torch.isfinite(DBLoss()({"maps": maps}, batch)["loss"])

    evaluation = DetDataset(label, IMAGES, train=False)
    item = evaluation[0]
    assert set(item) == {"image", "shape", "polys", "ignore_tags"}
    src_h, src_w, ratio_h, ratio_w = item["shape"].tolist()
    assert (src_h, src_w) == (h, w) and item["image"].shape[1] == round(h * ratio_h)
    assert torch.equal(item["polys"], torch.tensor(boxes, dtype=torch.float32))
    assert item["ignore_tags"].tolist() == [False, True]
    # The training targets are make_db_targets of the cropped polygons: no augmentation, fixed crop.
    ident = DetDataset(label, IMAGES, transforms=lambda d: _no_aug(d), keep_keys=["threshold_map", "shrink_map", "polys"])
    out = ident[0]
    ref = make_db_targets(out["polys"].numpy(), 640, 640, [False])
    assert np.array_equal(out["shrink_map"].numpy(), ref["shrink_map"])


def _no_aug(data):
    from ptocr.training.data import det_train_transforms

    steps = det_train_transforms().transforms
    data = steps[0](data)
    keep = ~data["ignore_tags"]
    data["polys"], data["ignore_tags"], data["texts"] = data["polys"][keep], data["ignore_tags"][keep], ["one"]
    data["image"] = cv2.resize(data["image"], (640, 640))
    h, w = load_image(data["img_path"]).shape[:2]
    data["polys"] = data["polys"] * np.array([640 / w, 640 / h], np.float32)
    for step in steps[3:]:
        data = step(data)
    return data


@needs_images
def test_rec_dataset_with_multiscale_sampler(tmp_path):
    from ptocr.training import CTCLoss

    label = tmp_path / "rec.txt"
    texts = ["abc", "ba", "cab", "c", "aa"]
    label.write_text("".join(f"words/ch/{WORDS[i % 3].name}\t{t}\n" for i, t in enumerate(texts)), encoding="utf-8")
    train = RecDataset(label, IMAGES, list("abc"), train=True)
    np.random.seed(0)
    random.seed(0)
    item = train[0]
    assert item["image"].shape == (3, 48, 320) and item["label"].shape == (25,)
    assert item["length"].shape == () and 3 <= int(item["length"]) <= 25 and item["text"].startswith("abc")
    evaluation = RecDataset(label, IMAGES, list("abc"), train=False)
    assert evaluation[3]["label"][:2].tolist() == [3, 0] and evaluation[3]["text"] == "c"
    sampler = MultiScaleSampler(len(train), first_bs=2, seed=3)
    assert [s[:2] for s in sampler.scales] == [(320, 32), (320, 48), (320, 64)]
    assert [s[2] for s in sampler.scales] == [2, 1, 1]  # first_bs scaled by pixel count, floored
    loader = torch.utils.data.DataLoader(train, batch_sampler=sampler, collate_fn=collate)
    seen = []
    for batch in loader:
        n, _, height, width = batch["image"].shape
        assert width == 320 and height in (32, 48, 64)
        seen += batch["text"]
        assert batch["label"].shape == (n, 25) and batch["length"].shape == (n,)
        logits = torch.randn(n, 40, 5, requires_grad=True)
        CTCLoss()(logits, batch)["loss"].backward()
    assert len(seen) >= len(texts)
    assert sorted(set(i for b in sampler for _, _, i in b)) == list(range(len(texts)))
    first = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != first  # reshuffled per epoch


@needs_images
def test_cls_dataset(tmp_path):
    label = tmp_path / "cls.txt"
    label.write_text(f"words/ch/{WORDS[0].name}\t180\nwords/ch/{WORDS[1].name}\t0\n", encoding="utf-8")
    ds = ClsDataset(label, IMAGES)
    batch = collate([ds[0], ds[1]])
    assert batch["image"].shape == (2, 3, 48, 192) and batch["label"].tolist() == [1, 0]
    label.write_text(f"words/ch/{WORDS[0].name}\t90\n", encoding="utf-8")
    with pytest.raises(PtocrError, match=r"cls\.txt:1: label '90'"):
        ClsDataset(label, IMAGES)
