"""Text-direction classifier pre-processing.

``ClsPreprocess``: PaddleOCR 2.10's TextClassifier (predict_cls.py): like the recogniser's,
but always padded to the fixed width of ``image_shape`` (192), so batching does not change
the values.

``ImageClsPreprocess``: PaddleX's image classification (the PP-LCNet text-line and document
orientation models, Paddle 3 exports), as their ``inference.yml`` ``PreProcess`` lists it:
the image in RGB, ``ResizeImage`` (to a fixed ``size`` [w, h], or the short side to
``resize_short``; cv2 bilinear), ``CropImage`` (centre), ``NormalizeImage`` (ImageNet mean
and std, in float32 as ``x * (scale / std) + (-mean / std)``), ``ToCHWImage``."""

from __future__ import annotations

from typing import Iterator, Sequence

import cv2
import numpy as np

from ptocr.errors import ImageError
from ptocr.transforms.rec import aspect_order, check_crop, check_shape_and_batch, resize_norm_img

__all__ = ["ClsPreprocess", "ImageClsPreprocess", "cls_preprocess"]


class _Batches:
    """Batching shared by the classifier pre-processings: every output has the same shape, and
    batches follow predict_cls's order (crops sorted by aspect ratio)."""

    batch_size: int

    def batch(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        return np.stack([self(c) for c in crops])

    def batches(self, crops: Sequence[np.ndarray]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(indices, batch)``."""
        order = aspect_order(crops)
        for start in range(0, len(crops), self.batch_size):
            idx = order[start : start + self.batch_size]
            yield idx, self.batch([crops[i] for i in idx])


class ClsPreprocess(_Batches):
    """Crop (BGR uint8) -> float32 C x 48 x 192. ``batch_size`` is ``cls_batch_num``."""

    def __init__(self, image_shape: Sequence[int] = (3, 48, 192), batch_size: int = 6):
        self.image_shape, self.batch_size = check_shape_and_batch(image_shape, batch_size)

    def __call__(self, img: np.ndarray) -> np.ndarray:
        check_crop(img, self.image_shape[0], "classifier")
        return resize_norm_img(img, self.image_shape, self.image_shape[2])

    def __repr__(self) -> str:
        return f"ClsPreprocess(image_shape={self.image_shape}, batch_size={self.batch_size})"


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageClsPreprocess(_Batches):
    """Image (BGR uint8) -> float32 3 x H x W, as PaddleX's ClasPredictor prepares it.

    ``size`` = [w, h] resizes to exactly that (textline: [160, 80]); ``resize_short`` resizes
    the shorter side to it, the other by the same ratio (Python ``round``), and ``crop_size``
    then cuts the centre (doc orientation: 256, 224). ``batch_size`` as ClsPreprocess's."""

    def __init__(self, size: Sequence[int] | None = None, resize_short: int | None = None,
                 crop_size: int | Sequence[int] | None = None, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, scale: float = 1 / 255, batch_size: int = 6):
        if (size is None) == (resize_short is None):
            raise ValueError("give exactly one of size ([w, h]) and resize_short")
        if size is not None:
            size = tuple(int(v) for v in size)
            if len(size) != 2 or min(size) < 1:
                raise ValueError(f"size must be [w, h] of positive integers, got {size}")
        if resize_short is not None and int(resize_short) < 1:
            raise ValueError(f"resize_short must be positive, got {resize_short}")
        if crop_size is not None:
            crop_size = (int(crop_size),) * 2 if isinstance(crop_size, (int, float)) else tuple(int(v) for v in crop_size)
            if len(crop_size) != 2 or min(crop_size) < 1:
                raise ValueError(f"crop_size must be an integer or [w, h], got {crop_size}")
        if size is None and crop_size is None:
            raise ValueError("resize_short needs a crop_size: the output shape must be fixed")
        if len(mean) != 3 or len(std) != 3 or min(float(v) for v in std) <= 0:
            raise ValueError(f"mean and std must be three values, std positive; got {mean}, {std}")
        self.size, self.resize_short, self.crop_size = size, None if resize_short is None else int(resize_short), crop_size
        self.mean, self.std, self.scale = tuple(float(v) for v in mean), tuple(float(v) for v in std), float(scale)
        # As PaddleX's Normalize: the factors in Python floats, applied to float32 pixels.
        self._alpha = np.array([self.scale / v for v in self.std], np.float32)
        self._beta = np.array([-m / v for m, v in zip(self.mean, self.std)], np.float32)
        w, h = crop_size or size
        self.image_shape, self.batch_size = check_shape_and_batch((3, h, w), batch_size)

    @classmethod
    def from_transform_ops(cls, ops: Sequence[dict], batch_size: int = 6) -> "ImageClsPreprocess":
        """From ``inference.yml``'s ``PreProcess.transform_ops`` (a list of one-key dicts);
        anything this class does not do exactly is refused."""
        return cls(**cls.settings_from_transform_ops(ops), batch_size=batch_size)

    @staticmethod
    def settings_from_transform_ops(ops: Sequence[dict]) -> dict:
        """The constructor settings ``transform_ops`` describe (what a converted model's
        config carries); ValueError for anything this class does not do exactly."""
        kw: dict = {}
        for op in ops:
            if not isinstance(op, dict) or len(op) != 1:
                raise ValueError(f"a transform op is a one-key mapping, got {op!r}")
            (name, args), = op.items()
            args = dict(args or {})
            if name == "ResizeImage":
                if args.pop("interpolation", "LINEAR") not in ("LINEAR", None) or args.pop("backend", "cv2") != "cv2":
                    raise ValueError(f"ResizeImage {op[name]}: only cv2 bilinear resizing is supported")
                for key in ("size", "resize_short"):
                    if key in args:
                        kw[key] = args.pop(key)
            elif name == "CropImage":
                kw["crop_size"] = args.pop("size", 224)
            elif name == "NormalizeImage":
                if args.pop("order", "") not in ("", "hwc") or args.pop("channel_num", 3) != 3:
                    raise ValueError(f"NormalizeImage {op[name]}: only 3-channel HWC input is supported")
                for key in ("mean", "std", "scale"):
                    if key in args:
                        kw[key] = args.pop(key)
            elif name == "ToCHWImage":
                pass
            else:
                raise ValueError(f"unsupported pre-processing op {name}")
            if args:
                raise ValueError(f"{name}: unsupported settings {sorted(args)}")
        ImageClsPreprocess(**kw)  # refuses incomplete or invalid settings here, not at load time
        return kw

    def __call__(self, img: np.ndarray) -> np.ndarray:
        check_crop(img, 3, "classifier")
        img = np.ascontiguousarray(img[:, :, ::-1])  # BGR -> RGB (PaddleX reads RGB)
        h, w = img.shape[:2]
        if self.size is not None:
            tw, th = self.size
        else:
            ratio = self.resize_short / min(h, w)
            tw, th = round(w * ratio), round(h * ratio)
        if (tw, th) != (w, h):
            img = cv2.resize(img, (tw, th), interpolation=cv2.INTER_LINEAR)
        if self.crop_size is not None:
            cw, ch = self.crop_size
            if tw < cw or th < ch:
                raise ImageError(f"classifier input resized to {tw}x{th}, smaller than the crop {cw}x{ch}")
            x1, y1 = (tw - cw) // 2, (th - ch) // 2
            img = img[y1:y1 + ch, x1:x1 + cw]
        out = img.astype(np.float32)
        out *= self._alpha
        out += self._beta
        return np.ascontiguousarray(out.transpose(2, 0, 1))

    def __repr__(self) -> str:
        how = f"size={list(self.size)}" if self.size else f"resize_short={self.resize_short}"
        crop = f", crop_size={list(self.crop_size)}" if self.crop_size else ""
        return f"ImageClsPreprocess({how}{crop}, mean={list(self.mean)}, std={list(self.std)}, batch_size={self.batch_size})"


def cls_preprocess(settings: dict | None = None, **kw) -> ClsPreprocess | ImageClsPreprocess:
    """The pre-processing a classifier's config names: PaddleX's image classification where it
    gives ``size`` or ``resize_short`` (the PP-LCNet models), else PaddleOCR 2.x's text
    direction classifier. ``kw`` (e.g. ``batch_size``) overrides the settings."""
    settings = {**(settings or {}), **kw}
    image = "size" in settings or "resize_short" in settings
    return (ImageClsPreprocess if image else ClsPreprocess)(**settings)
