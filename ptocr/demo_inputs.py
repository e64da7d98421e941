"""Real model inputs from the embedded demo scene (ptocr/assets), pre-processed as a model's
config says: what ``ptocr export`` compares an export with PyTorch on, where ../shared's images
are not at hand. Text-line crops for recognizers and classifiers come from fixed boxes
(``demo_scene_lines.json``), so no detector is needed."""

from __future__ import annotations

import json
from importlib import resources
from typing import Sequence

import cv2
import numpy as np

from ptocr.models.backbones.uvdoc import INPUT_SIZE
from ptocr.postprocess.unwarp import page_input
from ptocr.transforms import DetPreprocess, RecPreprocess, cls_preprocess, get_rotate_crop_image, load_image


def _asset(name: str):
    return resources.files("ptocr") / "assets" / name


def demo_scene() -> np.ndarray:
    """The demo scene, BGR uint8 H x W x 3."""
    return load_image(_asset("demo_scene.jpg").read_bytes())


def demo_crops() -> list[np.ndarray]:
    """Its text lines cut out as the pipeline cuts them (a tall one turned upright)."""
    boxes = json.loads(_asset("demo_scene_lines.json").read_text(encoding="utf-8"))["boxes"]
    scene = demo_scene()
    return [get_rotate_crop_image(scene, np.array(box, dtype=np.float32)) for box in boxes]


def demo_inputs(config: dict, shape: Sequence[int] | None = None) -> list[np.ndarray]:
    """float32 N x C x H x W inputs for a model of ``config``. Without ``shape``: inputs of several
    sizes and batch sizes, for a dynamic export (det: the scene at the detector's own size, a
    crop of it, and a batch of two; rec: each crop at its own width and a padded batch; cls: the
    crops and the crops turned 180 degrees, alone and in batches; unwarp: the scene and its mirror
    image at the network's input size, the scene at its own). With ``shape``: two inputs of
    exactly that shape, for a static export, each real input resized to its H x W and the batch
    filled from them in turn."""
    inputs = _inputs[config["task"]](config)
    if shape is None:
        return inputs
    n, _, h, w = (int(s) for s in shape)
    samples = [_resized(x, h, w) for batch in inputs for x in batch]
    return [np.stack([samples[(start + k) % len(samples)] for k in range(n)]) for start in (0, n)]


def _resized(chw: np.ndarray, h: int, w: int) -> np.ndarray:
    hwc = cv2.resize(np.ascontiguousarray(chw.transpose(1, 2, 0)), (w, h), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(hwc.reshape(h, w, -1).transpose(2, 0, 1))  # reshape: cv2 drops a lone channel


def _det(config: dict) -> list[np.ndarray]:
    x = DetPreprocess(**config["preprocess"])(demo_scene())[0]
    _, h, w = x.shape
    # Sizes stay multiples of 32, as the detector's pre-processing makes them.
    crop = np.ascontiguousarray(x[:, : max(32, h - 64), : max(32, w - 32)])
    return [x[None], crop[None], np.stack([x, np.ascontiguousarray(x[:, :, ::-1])])]


def _rec(config: dict) -> list[np.ndarray]:
    pre = RecPreprocess(**config["preprocess"])
    crops = demo_crops()
    return [pre(c)[None] for c in crops] + [pre.batch(crops[:3])]


def _cls(config: dict) -> list[np.ndarray]:
    pre = cls_preprocess(config["preprocess"])
    crops = demo_crops()
    turned = [cv2.rotate(c, cv2.ROTATE_180) for c in crops]
    return [pre.batch(crops + turned), pre(crops[0])[None], pre.batch(turned[:3])]


def _unwarp(config: dict) -> list[np.ndarray]:
    # The scene and its mirror image at the network's own input size (all that transformers'
    # UVDocModel takes: its image processor resamples pages first; ptocr's network resamples any
    # page, a copy at that size), then the scene at its own size.
    h, w = network_input_size(config)
    scene = demo_scene()
    return [page_input(cv2.resize(scene, (w, h))), page_input(cv2.resize(scene[:, ::-1], (w, h))), page_input(scene)]


def network_input_size(config: dict) -> tuple[int, int]:
    """UVDoc's (height, width): the size its network resamples every page to."""
    return tuple(config["model"]["backbone"].get("input_size", INPUT_SIZE))


_inputs = {"det": _det, "rec": _rec, "cls": _cls, "unwarp": _unwarp}
