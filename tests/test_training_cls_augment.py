"""The direction classifier's augmentations (cls_mv3.yml's BaseDataAugmentation, RandAugment)
against PaddleOCR 2.10's own classes, run from its sources, on real word crops; and cls_mv3.yml
as PaddleOCR ships it building and training with them."""

from __future__ import annotations

import math
import random
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import compile_paddleocr, intra_op_threads, seed_python_and_numpy
from PIL import Image, ImageEnhance, ImageOps

from ptocr.training import augment
from ptocr.training.trainer import Trainer
from ptocr.transforms.image import load_image

CLS_MV3 = Path(__file__).parent / "fixtures" / "paddleocr_configs" / "cls_mv3.yml"
# Small (15 x 51: no crop), mid-sized, and two at least 100 pixels a side (jitter moves pixels).
WORD_CROPS = ("en/word_2.png", "en2/word_10.png", "ch/word_1.jpg", "en2/word_116.png")
SEEDS = range(40)
BDA_PROBS = ("crop_prob", "reverse_prob", "noise_prob", "jitter_prob", "blur_prob", "hsv_aug_prob")
RAND_OPS = {"shearX", "shearY", "translateX", "translateY", "rotate", "color", "posterize", "solarize", "contrast",
            "sharpness", "brightness", "autocontrast", "equalize", "invert"}


@pytest.fixture(scope="module")
def paddle(paddleocr_src):
    ns = dict(np=np, cv2=cv2, math=math, random=random, Image=Image, ImageEnhance=ImageEnhance, ImageOps=ImageOps)
    imaug = "ppocr/data/imaug/"
    compile_paddleocr(paddleocr_src, imaug + "rec_img_aug.py",
                      ["BaseDataAugmentation", "ClsResizeImg", "resize_norm_img", "flag", "hsv_aug", "jitter",
                       "add_gasuss_noise", "get_crop"], ns)
    compile_paddleocr(paddleocr_src, imaug + "randaugment.py", ["RawRandAugment", "RandAugment"], ns)
    return ns


@pytest.fixture(scope="module")
def images(shared_dir):
    return [load_image(str(shared_dir / "images" / "words" / name)) for name in WORD_CROPS]


def _same_as_paddleocr(ours, theirs, images, seeds=SEEDS) -> None:
    """``ours`` and ``theirs`` (op instances) give the same image from every seed and image, and
    leave python's and numpy's generators in the same state (the same draws)."""
    for seed in seeds:
        for i, image in enumerate(images):
            seed_python_and_numpy(seed)
            got = ours({"image": image.copy()})["image"]
            after = (random.random(), np.random.random())
            seed_python_and_numpy(seed)
            want = theirs({"image": image.copy()})["image"]
            assert got.dtype == want.dtype and got.shape == want.shape and np.array_equal(got, want), (seed, i)
            assert after == (random.random(), np.random.random()), (seed, i)


def _bda_settings():
    """PaddleOCR's defaults, every probability 1, every one 0, and each alone at 1."""
    return [{}, dict.fromkeys(BDA_PROBS, 1.0), dict.fromkeys(BDA_PROBS, 0.0),
            *({**dict.fromkeys(BDA_PROBS, 0.0), name: 1.0} for name in BDA_PROBS)]


@pytest.mark.parametrize("kwargs", _bda_settings(),
                         ids=lambda k: ",".join(f"{n}={v}" for n, v in k.items()) or "defaults")
def test_base_data_augmentation_matches_paddleocr(kwargs, paddle, images):
    _same_as_paddleocr(augment.BaseDataAugmentation(**kwargs), paddle["BaseDataAugmentation"](**kwargs), images)


def test_rec_aug_is_tia_then_base_data_augmentation():
    assert issubclass(augment.RecAug, augment.BaseDataAugmentation)
    assert augment.RecAug.__call__ is not augment.BaseDataAugmentation.__call__


@pytest.mark.parametrize("kwargs", [{}, {"prob": 1.0}, {"prob": 0.0},
                                    {"prob": 1.0, "num_layers": 3, "magnitude": 10, "fillcolor": (0, 60, 250)},
                                    {"prob": 1.0, "num_layers": 1, "magnitude": 3}])
def test_rand_augment_matches_paddleocr(kwargs, paddle, images):
    ours = augment.RandAugment(**kwargs)
    seen = []
    for name, op in list(ours.ops.items()):  # record the ops drawn, without touching the draws
        ours.ops[name] = lambda img, level, fill, name=name, op=op: seen.append(name) or op(img, level, fill)
    _same_as_paddleocr(ours, paddle["RandAugment"](**kwargs), images)
    if kwargs.get("prob") == 1.0 and kwargs.get("num_layers", 2) > 1:
        assert set(seen) == RAND_OPS  # every operation was compared
    if kwargs.get("prob") == 0.0:
        assert not seen


def test_rand_augment_takes_a_yaml_fillcolor(paddle, images):
    """A config's ``fillcolor: [0, 60, 250]`` is a list, which PIL's transform (and so PaddleOCR's
    RandAugment) refuses; ptocr takes it as the tuple."""
    _same_as_paddleocr(augment.RandAugment(prob=1.0, fillcolor=[0, 60, 250]),
                       paddle["RandAugment"](prob=1.0, fillcolor=(0, 60, 250)), images, range(10))


def test_cls_mv3_config_trains_with_its_augmentations(paddle, shared_dir, tmp_path):
    """PaddleOCR's cls_mv3.yml, only the data overridden: its Train samples are PaddleOCR's
    (BaseDataAugmentation, RandAugment, ClsResizeImg under the same seeds), and it trains a step."""
    words = shared_dir / "images" / "words"
    label = tmp_path / "cls.txt"
    label.write_text("en2/word_10.png\t0\nen2/word_116.png\t180\n", encoding="utf-8")
    overrides = ["Global.use_gpu=false", f"Global.save_model_dir={tmp_path / 'out'}"]
    for section in ("Train", "Eval"):
        overrides += [f"{section}.dataset.data_dir={words}", f"{section}.dataset.label_file_list=[{label}]",
                      f"{section}.loader.batch_size_per_card=2", f"{section}.loader.num_workers=0"]
    trainer = Trainer.from_config(CLS_MV3, overrides)
    dataset = trainer.train_loader.dataset
    bda, rand = dataset.transforms.transforms[1].transforms
    assert type(bda) is augment.BaseDataAugmentation and type(rand) is augment.RandAugment
    assert (bda.crop_prob, rand.prob, rand.num_layers, rand.magnitude) == (0.4, 0.5, 2, 5)
    reference = [paddle["BaseDataAugmentation"](), paddle["RandAugment"](), paddle["ClsResizeImg"]([3, 48, 192])]
    for seed in range(8):
        for index, name in enumerate(("en2/word_10.png", "en2/word_116.png")):
            seed_python_and_numpy(seed)
            got = dataset[index]["image"]
            seed_python_and_numpy(seed)
            data = {"image": load_image(str(words / name))}
            for op in reference:
                data = op(data)
            assert torch.equal(got, torch.from_numpy(data["image"])), (seed, name)
    with intra_op_threads(1):
        _, losses = trainer.step(next(iter(trainer.train_loader)))
    assert torch.isfinite(losses["loss"])
