"""Datasets in PaddleOCR's label format and PP-OCR's deterministic data transforms, for torch.

Facts from PaddleOCR 2.10 ``ppocr/data/simple_dataset.py`` (label files, ``ratio_list``,
delimiter, ``get_ext_data``), ``multi_scale_sampler.py``, ``imaug/label_ops.py`` (``DetLabelEncode``,
``ClsLabelEncode``), ``imaug/operators.py`` (``NormalizeImage``, ``ToCHWImage``,
``DetResizeForTest``), ``imaug/rec_img_aug.py`` (``RecResizeImg``, ``ClsResizeImg``) and the
PP-OCRv4 / v5 configs' transform lists. The random augmentations are in
:mod:`ptocr.training.augment`.

Every transform is a callable on PaddleOCR's data dict (``image``, ``label``, ``polys``,
``ignore_tags``, ...), so a config's ``transforms:`` list maps one to one onto a
:class:`Compose`. Label lines::

    det:  relative/path.jpg<TAB>[{"transcription": "...", "points": [[x, y], ...]}, ...]
    rec:  relative/path.jpg<TAB>text          cls:  relative/path.jpg<TAB>0 (or 180)

Where PaddleOCR logs a bad line or unreadable image and trains on a random other sample
instead, these raise :class:`~ptocr.errors.PtocrError` naming the label file and line, or, with
``on_error="redraw"`` (what ``ptocr train`` uses), do as PaddleOCR; labels can also be dropped at
construction with ``skip_invalid=True`` (listed in ``.skipped`` and warned about). Blank lines are no samples and are passed over. Images are decoded by
:func:`ptocr.transforms.image.load_image` (BGR as PaddleOCR's ``DecodeImage img_mode: BGR``;
transparent PNGs are composited on white where PaddleOCR drops the alpha).
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ptocr.errors import PtocrError
from ptocr.training.augment import CopyPaste, EastRandomCropData, IaaAugment, RecAug, RecConAug
from ptocr.training.labels import CTCLabelEncode, MakeBorderMap, MakeShrinkMap
from ptocr.transforms.cls import IMAGENET_MEAN, IMAGENET_STD
from ptocr.transforms.det import det_resize, normalize_hwc, parse_scale
from ptocr.transforms.image import load_image
from ptocr.transforms.rec import resize_norm_img

_log = logging.getLogger("ptocr.training")
_MAX_REDRAWS = 100  # failed samples in a row that stop a dataset (one that can make none)

__all__ = ["LabelLine", "read_label_files", "Compose", "DetLabelEncode", "NormalizeImage", "ToCHWImage",
           "DetResizeForTest", "RecResizeImg", "ClsResizeImg", "EncodeText", "ClsLabelEncode",
           "DetDataset", "RecDataset", "ClsDataset", "MultiScaleSampler", "DistributedBatchSampler", "collate",
           "det_train_transforms", "det_eval_transforms", "IGNORE_TAGS"]

IGNORE_TAGS = ("*", "###")  # transcriptions that mark a region to ignore (DetLabelEncode)

# The PP-OCRv4/v5 configs' settings (PP-OCRv4_mobile_det.yml, PP-OCRv5_mobile_det.yml,
# ch_PP-OCRv4_rec.yml, PP-OCRv5_mobile_rec.yml); the recognizers are evaluated by RecResizeImg
# with eval_mode (width grown to the image's ratio) in v4, padded to 320 in v5.
DET_TRAIN = {"iaa": {"flip_p": 0.5, "rotate": (-10, 10), "scale": (0.5, 3)},
             "crop": {"size": (640, 640), "max_tries": 50, "keep_ratio": True},
             "border": {"shrink_ratio": 0.4, "thresh_min": 0.3, "thresh_max": 0.7},
             "shrink": {"shrink_ratio": 0.4, "min_text_size": 8}}
# `CopyPaste: null` (its defaults) in PP-OCRv4_mobile_det, PP-OCRv4_server_det, PP-OCRv5_mobile_det and
# PP-OCRv5_server_det.yml, right after DetLabelEncode; the CML distillation and seal configs go without.
DET_COPY_PASTE = {"objects_paste_ratio": 0.2, "limit_paste": True}
DET_EVAL = {"limit_side_len": 736, "limit_type": "min"}
REC_DEFAULTS = {
    "PP-OCRv4": {"image_shape": (3, 48, 320), "con_aug": {"prob": 0.5, "ext_data_num": 2}, "eval_mode": True},
    "PP-OCRv5": {"image_shape": (3, 48, 320), "con_aug": {"prob": 0.5, "ext_data_num": 2}, "eval_mode": False},
}
MULTI_SCALES = ((320, 32), (320, 48), (320, 64))  # MultiScaleSampler's (width, height) in v4 / v5


# ---------------------------------------------------------------------------------------------
# Label files
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LabelLine:
    """One sample's line: where it is (for messages), the image path as written, its label."""

    file: str
    line: int
    path: str
    label: str

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


def _split_line(text: str, file: str, number: int, delimiter: str) -> LabelLine:
    """PaddleOCR's split: the first field is the path, the second the label (later fields are
    ignored, so a delimiter inside the label cuts it as PaddleOCR does)."""
    fields = text.split(delimiter)
    if len(fields) < 2 or not fields[0]:
        raise PtocrError(f"{file}:{number}: expected 'image path{delimiter!r}label', got {text[:80]!r}")
    return LabelLine(file, number, fields[0], fields[1])


def _read_one(file, delimiter: str) -> list[LabelLine]:
    try:
        raw = Path(file).read_bytes()
    except OSError as e:
        raise PtocrError(f"label file {file}: {e.strerror or e}") from None
    out = []
    for number, line in enumerate(raw.split(b"\n"), start=1):
        try:
            text = line.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError:
            raise PtocrError(f"{file}:{number}: not UTF-8 text") from None
        if text.strip():
            out.append(_split_line(text, str(file), number, delimiter))
    return out


def _ratios(ratio_list, count: int) -> list[float]:
    ratios = [float(ratio_list)] * count if isinstance(ratio_list, (int, float)) else [float(r) for r in ratio_list]
    if len(ratios) != count:
        raise PtocrError(f"ratio_list has {len(ratios)} entries for {count} label files")
    if any(not 0 <= r <= 1 for r in ratios):
        raise PtocrError(f"ratio_list entries must be in [0, 1], got {ratios}")
    return ratios


def read_label_files(label_files, ratio_list=1.0, delimiter: str = "\t", seed=None) -> list[LabelLine]:
    """The lines of one or several label files; from a file whose ratio is under 1, a random
    ``round(lines * ratio)`` of them, drawn as PaddleOCR does (``random.sample`` after seeding
    with ``seed``, per file; here with a private ``random.Random``, leaving the global one alone).
    Shuffling is the DataLoader's job."""
    files = [label_files] if isinstance(label_files, (str, os.PathLike)) else list(label_files)
    lines = []
    for file, ratio in zip(files, _ratios(ratio_list, len(files))):
        entries = _read_one(file, delimiter)
        if ratio < 1.0:
            entries = random.Random(seed).sample(entries, round(len(entries) * ratio))
        lines.extend(entries)
    return lines


# ---------------------------------------------------------------------------------------------
# Deterministic transforms on the data dict
# ---------------------------------------------------------------------------------------------
class Compose:
    """Apply the transforms in order (a config's ``transforms:`` list)."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, data: dict) -> dict:
        for transform in self.transforms:
            data = transform(data)
        return data

    def __repr__(self) -> str:
        return f"Compose({[type(t).__name__ for t in self.transforms]})"


def _polygon_points(entry, index: int) -> list:
    points = entry.get("points") if isinstance(entry, dict) else None
    if not isinstance(points, list) or len(points) < 3:
        raise PtocrError(f"text {index}: 'points' must be a list of at least 3 [x, y] points")
    for point in points:
        if not (isinstance(point, list) and len(point) == 2
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in point)):
            raise PtocrError(f"text {index}: point {point!r} is not [x, y]")
    return points


def _padded(polygons: list[list]) -> list[list]:
    """Every polygon repeated at its last point up to the most points any has (one array)."""
    most = max(len(p) for p in polygons)
    return [p + [p[-1]] * (most - len(p)) for p in polygons]


def parse_det_label(label: str, *, allow_empty: bool = False) -> tuple[np.ndarray, list[str], np.ndarray]:
    """``(polys N x P x 2 float32, texts, ignore_tags bool)`` from a detection label's JSON;
    ``allow_empty``: ``[]`` is an image without text (evaluation), else an error."""
    try:
        entries = json.loads(label)
    except json.JSONDecodeError as e:
        raise PtocrError(f"the label is not JSON: {e}") from None
    if not isinstance(entries, list):
        raise PtocrError("the label must be a JSON list of {\"transcription\", \"points\"} objects")
    if not entries:
        if allow_empty:
            return np.zeros((0, 0, 2), dtype=np.float32), [], np.zeros(0, dtype=np.bool_)
        raise PtocrError("the label lists no text (PaddleOCR never trains on such an image)")
    polygons = [_polygon_points(entry, i) for i, entry in enumerate(entries)]
    texts = [entry.get("transcription") for entry in entries]  # DetLabelEncode: a KeyError without one
    if not all(isinstance(t, str) for t in texts):
        raise PtocrError("every text needs its 'transcription' (a string)")
    ignore = np.array([t in IGNORE_TAGS for t in texts], dtype=np.bool_)
    return np.array(_padded(polygons), dtype=np.float32), texts, ignore


class DetLabelEncode:
    """``label`` (the JSON text) -> ``polys``, ``texts``, ``ignore_tags`` (``*`` / ``###``)."""

    def __call__(self, data: dict) -> dict:
        data["polys"], data["texts"], data["ignore_tags"] = parse_det_label(data["label"])
        return data


class NormalizeImage:
    """float32 ``(image * scale - mean) / std`` per channel; ``order`` says where the channels
    are (``"hwc"`` in the PP-OCR det configs). ``scale`` may be PaddleOCR's string ``"1./255."``."""

    def __init__(self, scale=1.0 / 255.0, mean=IMAGENET_MEAN, std=IMAGENET_STD, order: str = "chw"):
        self.scale = np.float32(parse_scale(scale))
        shape = (3, 1, 1) if order == "chw" else (1, 1, 3)
        self.order = order
        self.mean = np.array(mean).reshape(shape).astype(np.float32)
        self.std = np.array(std).reshape(shape).astype(np.float32)

    def __call__(self, data: dict) -> dict:
        if self.order == "hwc":
            data["image"] = normalize_hwc(data["image"], self.mean.ravel(), self.std.ravel(), self.scale)
        else:
            data["image"] = (data["image"].astype(np.float32) * self.scale - self.mean) / self.std
        return data


class ToCHWImage:
    def __call__(self, data: dict) -> dict:
        data["image"] = data["image"].transpose((2, 0, 1))
        return data


class DetResizeForTest:
    """Evaluation resize: sides scaled by the ``limit_side_len`` rule and rounded to multiples of
    32 (PaddleOCR's type 0), or with ``image_shape=[h, w]`` (type 1, the v2.0 det configs' Eval)
    stretched to h x w (``keep_ratio``: w from the image's ratio at height h, rounded up to a
    multiple of 32); adds ``shape = [src_h, src_w, ratio_h, ratio_w]`` (float64). Polygons stay
    in source pixels, as the metric expects."""

    def __init__(self, limit_side_len: float = DET_EVAL["limit_side_len"], limit_type: str = DET_EVAL["limit_type"],
                 image_shape=None, keep_ratio: bool = False):
        self.limit_side_len, self.limit_type = limit_side_len, limit_type
        self.image_shape = None if image_shape is None else tuple(int(v) for v in image_shape)
        self.keep_ratio = bool(keep_ratio)

    def __call__(self, data: dict) -> dict:
        src_h, src_w = data["image"].shape[:2]
        if self.image_shape is None:
            data["image"], ratio_h, ratio_w = det_resize(data["image"], self.limit_side_len, self.limit_type)
        else:
            height, width = self.image_shape
            if self.keep_ratio:
                width = math.ceil(src_w * height / src_h / 32) * 32
            data["image"] = cv2.resize(data["image"], (int(width), height))
            ratio_h, ratio_w = height / src_h, width / src_w
        data["shape"] = np.array([src_h, src_w, ratio_h, ratio_w])
        return data


def rec_resize_normalize(image: np.ndarray, image_shape, padding: bool = True, keep_ratio_width: bool = False):
    """``(C x H x W float32 in [-1, 1], valid_ratio)``: the image resized to height H keeping its
    ratio (width ``ceil(H * ratio)`` at most W) and zero-padded on the right, or stretched to
    W without ``padding``. ``keep_ratio_width`` (RecResizeImg's eval_mode): W grows to the
    image's own ratio when it is wider."""
    channels, height, width = image_shape
    ratio = image.shape[1] / float(image.shape[0])
    if keep_ratio_width:
        width = int(height * max(width * 1.0 / height, ratio))
    if padding or keep_ratio_width:  # the inference resize (ptocr.transforms.rec), at this width
        resized_w = min(width, int(math.ceil(height * ratio)))
        return resize_norm_img(image, image_shape, width), min(1.0, float(resized_w / width))
    resized = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    resized = resized[np.newaxis] / 255 if channels == 1 else resized.transpose((2, 0, 1)) / 255
    resized -= 0.5
    resized /= 0.5
    return resized, 1.0


class RecResizeImg:
    """Recognition resize and normalisation to ``image_shape`` (C, H, W); adds ``valid_ratio``."""

    def __init__(self, image_shape=(3, 48, 320), padding: bool = True, eval_mode: bool = False):
        self.image_shape, self.padding, self.eval_mode = tuple(image_shape), padding, eval_mode

    def __call__(self, data: dict) -> dict:
        data["image"], data["valid_ratio"] = rec_resize_normalize(data["image"], self.image_shape, self.padding,
                                                                  self.eval_mode)
        return data


class ClsResizeImg(RecResizeImg):
    """The orientation classifier's resize: padded to ``image_shape`` (3, 48, 192 in PP-OCR)."""

    def __init__(self, image_shape=(3, 48, 192)):
        super().__init__(image_shape, padding=True, eval_mode=False)

    def __call__(self, data: dict) -> dict:
        data["image"], _ = rec_resize_normalize(data["image"], self.image_shape, True)
        return data


class TextRefused(PtocrError):
    """The label encoder refused a sample's text after the augmentations (RecConAug's joined
    text can be too long for MultiHead's NRTR / SAR labels): PaddleOCR's label op returns None
    there and its dataset draws another sample, as :class:`RecDataset` does."""


class EncodeText:
    """``label`` (text) -> CTC ``label`` and ``length`` by a :class:`CTCLabelEncode` (or
    ``label_ctc``, ``label_gtc`` / ``label_sar``, ``length`` by a ``MultiLabelEncode``); the text
    is kept as ``text``. A refused text raises :class:`TextRefused`."""

    def __init__(self, encoder):
        self.encoder = encoder

    def __call__(self, data: dict) -> dict:
        data["text"] = data["label"]
        try:
            data.update(self.encoder(data["label"]))
        except PtocrError as e:
            raise TextRefused(str(e)) from None
        return data


class ClsLabelEncode:
    """``label`` (one of ``label_list``) -> its index (int64)."""

    def __init__(self, label_list=("0", "180")):
        self.label_list = list(label_list)

    def __call__(self, data: dict) -> dict:
        if data["label"] not in self.label_list:
            raise PtocrError(f"label {data['label']!r} is not one of {self.label_list}")
        data["label"] = np.array(self.label_list.index(data["label"]), dtype=np.int64)
        return data


def det_train_transforms(settings: dict = DET_TRAIN, copy_paste=None) -> Compose:
    """PP-OCRv4 / v5 detection training. ``copy_paste``: ``True`` (``DET_COPY_PASTE``, as the
    v4 / v5 mobile and server configs have it) or :class:`CopyPaste`'s keyword arguments puts
    CopyPaste after DetLabelEncode, where the configs do; the dataset then draws one other sample
    per item for it (:class:`DetDataset` does). Off by default (``None`` / ``False``)."""
    steps = [DetLabelEncode()]
    if copy_paste is not None and copy_paste is not False:
        steps.append(CopyPaste(**(DET_COPY_PASTE if copy_paste is True else copy_paste)))
    return Compose(steps + [IaaAugment(**settings["iaa"]), EastRandomCropData(**settings["crop"]),
                            MakeBorderMap(**settings["border"]), MakeShrinkMap(**settings["shrink"]),
                            NormalizeImage(order="hwc"), ToCHWImage()])


def det_eval_transforms(settings: dict = DET_EVAL) -> Compose:
    return Compose([DetLabelEncode(), DetResizeForTest(**settings), NormalizeImage(order="hwc"), ToCHWImage()])


# ---------------------------------------------------------------------------------------------
# Datasets
# ---------------------------------------------------------------------------------------------
def _as_output(value):
    if isinstance(value, np.ndarray):  # (np.ascontiguousarray would make a 0-d array 1-d)
        return torch.from_numpy(value.copy() if value.ndim == 0 or not value.flags.c_contiguous else value)
    if isinstance(value, (np.bool_, np.number)):
        return torch.tensor(value.item())
    return value


def _no_samples_message(label_files, skipped: list) -> str:
    """PaddleOCR's trainer stops on an empty data set ("No Images in train dataset"); torch would
    fail later, in the sampler or at ``steps_per_epoch=0``, without naming the files."""
    files = [label_files] if isinstance(label_files, (str, os.PathLike)) else list(label_files)
    names = ", ".join(str(f) for f in files) or "no label files given"
    if skipped:
        return f"no samples: all {len(skipped)} label lines of {names} were skipped, first: {skipped[0]}"
    return f"no samples: the label files hold no lines ({names})"


class _LabelledImages(Dataset):
    """Label lines + images under ``data_dir`` + transforms -> dicts of ``keep_keys``.

    ``on_error``: what a sample that cannot be made does (a missing or corrupt image, a label the
    transforms refuse). ``"raise"`` (the default): a ``PtocrError`` naming the line. ``"redraw"``:
    PaddleOCR's dataset: the error logged (logger ``ptocr.training``) and another sample drawn, a
    random one in training (``train``), the next one otherwise; label lines that cannot make a
    sample are kept for that (counted in a warning, listed in ``.invalid``), as PaddleOCR finds
    them only when drawn. Either way a text refused after the augmentations (RecConAug's join)
    is redrawn, and 100 failures in a row raise (PaddleOCR would draw forever).
    """

    keep_keys: tuple = ()

    def __init__(self, label_files, data_dir, transforms, keep_keys=None, ratio_list=1.0, delimiter="\t",
                 seed=None, skip_invalid: bool = False, on_error: str = "raise", train: bool = True):
        if on_error not in ("raise", "redraw"):
            raise PtocrError(f"on_error must be 'raise' or 'redraw', not {on_error!r}")
        self.data_dir = Path(data_dir)
        self.transforms = transforms
        self.on_error, self.train = on_error, train
        if keep_keys is not None:
            self.keep_keys = tuple(keep_keys)
        self.skipped: list[tuple[str, str]] = []
        self.invalid: list[tuple[str, str]] = []
        self.lines = self._checked(read_label_files(label_files, ratio_list, delimiter, seed), skip_invalid)
        if not self.lines or len(self.invalid) == len(self.lines):
            raise PtocrError(_no_samples_message(label_files, self.skipped or self.invalid))

    def check_label(self, line: LabelLine) -> None:
        """Raise PtocrError when the label cannot make a sample (subclasses)."""

    def _checked(self, lines: list[LabelLine], skip_invalid: bool) -> list[LabelLine]:
        kept = []
        for line in lines:
            try:
                self.check_label(line)
            except PtocrError as e:
                if self.on_error == "redraw" and not skip_invalid:
                    self.invalid.append((line.where, str(e)))
                elif not skip_invalid:
                    raise PtocrError(f"{line.where}: {e}") from None
                else:
                    self.skipped.append((line.where, str(e)))
                    continue
            kept.append(line)
        if self.skipped:
            warnings.warn(f"{len(self.skipped)} label lines skipped (see .skipped), first: {self.skipped[0]}",
                          stacklevel=3)
        if self.invalid:
            warnings.warn(f"{len(self.invalid)} of {len(lines)} label lines cannot make a sample and will be redrawn "
                          f"when drawn (see .invalid), first: {self.invalid[0]}", stacklevel=3)
        return kept

    def __len__(self) -> int:
        return len(self.lines)

    def image_path(self, line: LabelLine) -> Path:
        """The image of a line; PaddleOCR's ``["a.jpg", "b.jpg"]`` form picks one (python's random)."""
        name = line.path
        if name.startswith("["):
            try:
                name = random.choice(json.loads(name))
            except (ValueError, TypeError, IndexError):
                pass
        return self.data_dir / name

    def load(self, line: LabelLine) -> dict:
        path = self.image_path(line)
        try:
            image = load_image(str(path))
        except PtocrError as e:
            raise PtocrError(f"{line.where}: {e}") from None
        return {"image": image, "label": line.label, "img_path": str(path)}

    def transformed(self, data: dict, line: LabelLine, transforms) -> dict:
        try:
            return transforms(data)
        except TextRefused:
            raise  # the dataset draws another sample
        except PtocrError as e:
            raise PtocrError(f"{line.where} ({data['img_path']}): {e}") from None

    def output(self, data: dict) -> dict:
        missing = [k for k in self.keep_keys if k not in data]
        if missing:
            raise PtocrError(f"keep_keys {missing} not made by the transforms")
        return {k: _as_output(data[k]) for k in self.keep_keys}

    def ext_data(self) -> list[dict]:
        """The other samples the first transform that takes them (``ext_data_num``: CopyPaste,
        RecConAug) gets, drawn as PaddleOCR's ``get_ext_data``: an index from numpy's global RNG
        (after the item's own image is chosen), that sample decoded and put through the
        transforms before that one, drawn again while its polygons do not have 4 points."""
        position, count = ext_data_step(self.transforms)
        before = Compose(self.transforms.transforms[:position]) if count else None
        extra = []
        while len(extra) < count:
            line = self.lines[np.random.randint(len(self))]
            data = self.transformed(self.load(line), line, before)
            if "polys" in data and data["polys"].shape[1] != 4:
                continue
            extra.append(data)
        return extra

    def sample(self, line: LabelLine) -> dict:
        """``line``'s image through the transforms, with the other samples they take as ``ext_data``."""
        data = self.load(line)
        extra = self.ext_data()
        if extra:
            data["ext_data"] = extra
        return self.transformed(data, line, self.transforms)

    def draw(self, index: int, next_on_failure: bool = False) -> dict:
        """:meth:`sample` of line ``index``, or of the line drawn in its place where it fails (see
        ``on_error``): random in training, else the next (``next_on_failure``: always the next,
        as PaddleOCR's MultiScaleDataSet)."""
        for _ in range(_MAX_REDRAWS):
            try:
                return self.sample(self.lines[index])
            except Exception as e:  # PaddleOCR's dataset redraws on any exception; raise mode re-raises
                if not isinstance(e, TextRefused):
                    if self.on_error == "raise":
                        raise
                    _log.warning("%s: %s; drawing another sample", type(e).__name__, e)
                failure = e
            index = np.random.randint(len(self)) if self.train and not next_on_failure else (index + 1) % len(self)
        raise PtocrError(f"{_MAX_REDRAWS} samples in a row could not be made; the last: {failure}")

    def __getitem__(self, index: int) -> dict:
        return self.output(self.draw(index))


def ext_data_step(transforms) -> tuple[int, int]:
    """``(position, count)`` of the first transform asking for other samples (``ext_data_num``)
    in a :class:`Compose`, as PaddleOCR's ``get_ext_data`` finds it; ``(0, 0)`` when none does."""
    for position, step in enumerate(getattr(transforms, "transforms", [])):
        if getattr(step, "ext_data_num", 0):
            return position, int(step.ext_data_num)
    return 0, 0


class DetDataset(_LabelledImages):
    """Detection samples. Training (``train=True``, PP-OCRv4 / v5 transforms; ``copy_paste``:
    see :func:`det_train_transforms`): ``image`` 3 x 640 x 640 float32 and the four DB targets
    ``DBLoss`` takes. Evaluation: ``image`` at the DetResizeForTest size, ``shape``, ``polys``
    (source pixels), ``ignore_tags``. Pass ``transforms`` (a callable on the data dict) and
    ``keep_keys`` to change either. With CopyPaste, each item draws the other sample it takes
    (``ext_data``)."""

    TRAIN_KEYS = ("image", "threshold_map", "threshold_mask", "shrink_map", "shrink_mask")
    EVAL_KEYS = ("image", "shape", "polys", "ignore_tags")

    def __init__(self, label_files, data_dir, train: bool = True, transforms=None, keep_keys=None, copy_paste=None,
                 **options):
        if copy_paste is not None and (transforms is not None or not train):
            raise PtocrError("copy_paste sets the default training transforms: put CopyPaste in transforms instead")
        if transforms is None:
            transforms = det_train_transforms(copy_paste=copy_paste) if train else det_eval_transforms()
        self.keep_keys = self.TRAIN_KEYS if train else self.EVAL_KEYS
        self._quads = None
        super().__init__(label_files, data_dir, transforms, keep_keys, train=train, **options)

    def check_label(self, line: LabelLine) -> None:
        parse_det_label(line.label)

    def ext_data(self) -> list[dict]:
        if not ext_data_step(self.transforms)[1]:
            return []
        if self._quads is None:  # PaddleOCR would draw forever without one
            self._quads = any(parse_det_label(line.label)[0].shape[1] == 4 for line in self.lines)
        if not self._quads:
            raise PtocrError("CopyPaste takes other samples whose polygons have 4 points; no label line has them")
        return super().ext_data()


class RecDataset(_LabelledImages):
    """Recognition samples: ``image`` 3 x 48 x W float32, ``label`` / ``length`` (what
    ``CTCLoss`` takes), ``valid_ratio``, ``text``, ``num_classes`` (the dictionary's class count:
    ``CTCLoss`` refuses a head of another size on the first batch, where a dictionary that does
    not fit would otherwise train silently on the wrong classes). ``dictionary``: ``net.dictionary``, a file or
    characters (see :class:`CTCLabelEncode`). Training adds PaddleOCR's RecConAug (two other
    samples drawn per item, numpy's global RNG, as PaddleOCR's dataset draws them) and RecAug
    before the resize. ``generation`` picks the defaults (``REC_DEFAULTS``); ``resize`` (a
    :class:`RecResizeImg`) replaces its resize.

    An index may also be ``(width, height, index)`` as :class:`MultiScaleSampler` yields: the
    image is then resized to that size (PaddleOCR's MultiScaleDataSet). Texts the encoder
    refuses (empty, too long, no known character), which PaddleOCR replaces by random samples,
    raise at construction, or are skipped with ``skip_invalid=True``; a text refused after the
    augmentations (RecConAug's join) is replaced as PaddleOCR replaces it.

    ``dictionary`` may also be an encoder: MultiHead training's ``MultiLabelEncode`` makes the
    samples carry ``label_ctc``, ``label_gtc`` (or ``label_sar``) and ``length`` instead of
    ``label`` / ``length``, what ``MultiHeadTraining`` and ``MultiLoss`` read.
    """

    KEYS = ("image", "label", "length", "valid_ratio", "text", "num_classes")

    def __init__(self, label_files, data_dir, dictionary, train: bool = True, max_text_length: int = 25,
                 generation: str = "PP-OCRv4", transforms=None, keep_keys=None, resize=None, **options):
        if generation not in REC_DEFAULTS:
            raise PtocrError(f"generation {generation!r}: expected one of {sorted(REC_DEFAULTS)}")
        settings = REC_DEFAULTS[generation]
        # An encoder is taken as it is: CTCLabelEncode, or MultiHead's MultiLabelEncode (its .keys).
        self.encoder = dictionary if hasattr(dictionary, "encode") else CTCLabelEncode(dictionary, max_text_length)
        if transforms is None:
            transforms = self._default_transforms(settings, train)
        # resize: a config's own RecResizeImg (e.g. the v2.0 recognizers' 3 x 32 x 320)
        self.resize = resize or RecResizeImg(settings["image_shape"], eval_mode=settings["eval_mode"] and not train)
        self.image_shape = self.resize.image_shape
        labels = getattr(self.encoder, "keys", ("label", "length"))
        self.keep_keys = ("image", *labels, *self.KEYS[3:])
        super().__init__(label_files, data_dir, transforms, keep_keys, train=train, **options)

    def _default_transforms(self, settings: dict, train: bool) -> Compose:
        steps = []
        if train:
            height, width = settings["image_shape"][1:]
            steps += [RecConAug(image_shape=(height, width, 3), max_text_length=self.encoder.max_text_length,
                                **settings["con_aug"]), RecAug()]
        return Compose(steps + [EncodeText(self.encoder)])

    def check_label(self, line: LabelLine) -> None:
        self.encoder.encode(line.label)

    def ext_data(self) -> list[dict]:
        """The other samples RecConAug may append (decoded only: it comes first), in training."""
        return super().ext_data() if self.train else []

    def __getitem__(self, index) -> dict:
        width, height = self.image_shape[2], self.image_shape[1]
        multi_scale = isinstance(index, (tuple, list))
        if multi_scale:
            width, height, index = int(index[0]), int(index[1]), int(index[2])
        data = self.draw(index, next_on_failure=multi_scale)
        data.pop("ext_data", None)  # RecConAug leaves it where it appends nothing, as PaddleOCR's
        resize = self.resize if (width, height) == tuple(self.image_shape[:0:-1]) else \
            RecResizeImg((self.image_shape[0], height, width))
        data = resize(data)
        data["num_classes"] = np.array(self.encoder.num_classes, dtype=np.int64)
        return self.output(data)


class ClsDataset(_LabelledImages):
    """Orientation samples (``path<TAB>0`` or ``180``): ``image`` 3 x 48 x 192, ``label``
    int64. No augmentation by default (PaddleOCR's cls config adds ``augment.BaseDataAugmentation``
    and ``augment.RandAugment``: pass them as ``transforms``, run before the resize)."""

    def __init__(self, label_files, data_dir, label_list=("0", "180"), image_shape=(3, 48, 192), transforms=None,
                 **options):
        self.encode = ClsLabelEncode(label_list)
        steps = [] if transforms is None else [transforms]
        self.keep_keys = ("image", "label")
        super().__init__(label_files, data_dir, Compose([self.encode, *steps, ClsResizeImg(image_shape)]),
                         **options)

    def check_label(self, line: LabelLine) -> None:
        self.encode({"label": line.label})


# ---------------------------------------------------------------------------------------------
# Batching
# ---------------------------------------------------------------------------------------------
def _stackable(values) -> bool:
    return all(isinstance(v, torch.Tensor) for v in values) and len({tuple(v.shape) for v in values}) == 1


def collate(samples: list[dict]) -> dict:
    """A batch dict: tensors of one shape stacked (N x ...), anything else (texts, polygons of
    different counts, ``shape``s of different images stacked anyway) kept as a list."""
    batch = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        batch[key] = torch.stack(values) if _stackable(values) else values
    return batch


class MultiScaleSampler(Sampler):
    """A batch sampler for :class:`RecDataset` (``DataLoader(ds, batch_sampler=...)``) that yields
    PaddleOCR 2.10's ``MultiScaleSampler`` batches (``ppocr/data/multi_scale_sampler.py``) in its
    order: lists of ``(width, height, index)``, one scale per batch.

    ``scales``: (width, height) pairs (PP-OCRv4 / v5's by default) or ints for squares, sides
    floored to multiples of ``divided_factor`` (w, h); batch sizes ``first_bs`` for every scale
    (``fix_bs``) or ``max(1, int(w0 * h0 * first_bs / (w * h)))``, (w0, h0) the first scale
    before flooring. ``is_training=False``: one scale, the first, unfloored, indices in order.
    ``num_replicas`` / ``rank``: PaddleOCR's split across cards (its ``dist.get_world_size()`` /
    ``dist.get_rank()``), each replica with ``num_samples // num_replicas`` indices.

    As PaddleOCR's, the batches are laid out once, at construction: rounds over the scales until
    the indices are used up (the last round finishing with batches filled from the first
    indices), that list of (scale, size) shuffled, then the shuffled indices cut into it. A pass
    only reorders those same batches: it shuffles the previous pass's order after reseeding.
    ``seed`` is PaddleOCR's dataset ``seed`` (``Global.seed`` of ``tools/train.py``, 1024 when
    unset, as in the v4 / v5 configs):

    * an int: every pass reseeds with ``seed``, so pass k applies one fixed permutation k times
      (a loop without ``set_epoch`` reshuffles, cyclically); ``set_epoch`` changes nothing, as in
      PaddleOCR. The layout's shuffle, drawn by PaddleOCR from the global ``random`` as train.py
      leaves it (``set_seed``, then the dataset's ``random.seed(seed)`` and shuffle of its
      lines), is drawn here from a private ``random.Random`` put in that same state, so the
      default gives train.py's batches without touching the global generator.
    * ``None``: PaddleOCR's unseeded branch: pass k reseeds with the epoch (0, 1, ... or what
      ``set_epoch`` set), and every draw, the layout's included, is from python's global
      ``random`` (which is reseeded, as PaddleOCR does): seed it before construction as
      ``tools/train.py`` does to get PaddleOCR's batches.

    ``rng`` (a ``random.Random``, or the ``random`` module for the global one) overrides where
    the draws come from, the layout's taken from its current state: for PaddleOCR's order when
    its global generator is in another state at construction (e.g. ``loader: shuffle: false``).
    With a ``ratio_list`` under 1, PaddleOCR's train loop rebuilds dataset and sampler every
    epoch with ``seed=epoch``: build one per epoch likewise. Indices are the dataset's:
    PaddleOCR's ``MultiScaleDataSet`` also shuffles its lines at construction, which
    :class:`RecDataset` does not. Not reproduced: ``ds_width`` batches
    (``MultiScaleDataSet``'s width-from-ratio mode with ``ratio_wh`` / ``max_w``), which the
    PP-OCRv4 / v5 rec configs leave off (``ds_width: false``)."""

    def __init__(self, num_samples: int, scales=MULTI_SCALES, first_bs: int = 128, fix_bs: bool = False,
                 divided_factor=(8, 16), seed: int | None = 1024, is_training: bool = True,
                 num_replicas: int = 1, rank: int = 0, rng=None):
        if num_samples < 1:
            raise PtocrError("MultiScaleSampler needs at least one sample")
        if not 0 <= rank < num_replicas or num_samples < num_replicas:
            raise PtocrError(f"MultiScaleSampler: rank {rank} of {num_replicas} replicas over {num_samples} samples")
        self.num_samples, self.seed, self.epoch = int(num_samples), seed, 0
        self.num_replicas, self.rank, self.is_training = int(num_replicas), int(rank), is_training
        # None stands for the global generator (a module would not pickle or deepcopy).
        self._rng = None if rng is None or rng is random else rng
        if rng is None and seed is not None:
            self._rng = random.Random(seed)
            self._rng.shuffle([None] * self.num_samples)  # the dataset's line shuffle in train.py
        pairs = [(s, s) if isinstance(s, int) else tuple(s) for s in scales]
        base_w, base_h = pairs[0]
        if is_training:
            self.scales = []
            for w, h in pairs:
                w, h = int(w // divided_factor[0] * divided_factor[0]), int(h // divided_factor[1] * divided_factor[1])
                size = first_bs if fix_bs else int(max(1, base_w * base_h * first_bs / (h * w)))
                self.scales.append((w, h, size))
        else:
            self.scales = [(base_w, base_h, first_bs)]
        per = self.num_samples // self.num_replicas
        layout, start = [], 0
        while start < per:
            for w, h, size in self.scales:  # a round is always finished, past the end included
                taken = max(0, min(start + size, per) - start)
                layout.append((w, h, taken + min(size - taken, per)))  # fill is cut at `per` too
                start += size
        rand = self._generator()
        rand.shuffle(layout)
        self._batches = self._cut(layout, per)
        self._order = list(range(len(self._batches)))

    def _generator(self):
        return random if self._rng is None else self._rng

    def _cut(self, layout, per: int) -> list[list[tuple[int, int, int]]]:
        indices = list(range(self.num_samples))
        if self.is_training:
            rand = self._generator()
            rand.seed(self.epoch if self.seed is None else self.seed)
            rand.shuffle(indices)
            rand.shuffle(list(self.scales))  # PaddleOCR shuffles its scale list here; only the draws matter
        mine = indices[self.rank::self.num_replicas]
        batches, start = [], 0
        for w, h, size in layout:
            chunk = mine[start:min(start + size, per)]
            chunk += mine[:size - len(chunk)]
            batches.append([(w, h, i) for i in chunk])
            start += size
        return batches

    def set_epoch(self, epoch: int) -> None:
        """The epoch the next pass reseeds with when ``seed`` is None (no effect otherwise)."""
        self.epoch = int(epoch)

    def __iter__(self):
        # A generator, as PaddleOCR's: the reshuffle happens when a pass starts, not when
        # DataLoader makes an iterator it drops (its worker iterator calls iter() twice).
        rand = self._generator()
        if self.seed is None:
            rand.seed(self.epoch)
            self.epoch += 1
        else:
            rand.seed(self.seed)
        rand.shuffle(self._order)  # in place: each pass builds on the last one's order
        for k in list(self._order):
            yield list(self._batches[k])

    def __len__(self) -> int:
        return len(self._batches)


class DistributedBatchSampler(Sampler):
    """Paddle's ``paddle.io.DistributedBatchSampler``, which PaddleOCR's ``build_dataloader``
    gives every Train loader without a sampler: the batches of replica ``rank`` of
    ``num_replicas``, ``batch_size`` samples each, over ``num_samples`` indices.

    As Paddle's: the indices ``0..N-1`` are padded with their first ones to a multiple of
    ``num_replicas`` (``ceil(N / num_replicas)`` each), then shuffled (``shuffle``) by
    ``np.random.RandomState(epoch)``, the same on every replica; replica r takes the r-th block of
    ``batch_size`` in every ``batch_size * num_replicas``, and an even share of the incomplete
    last round; a last short batch is dropped with ``drop_last``. ``epoch`` starts at 0 and a
    shuffled pass moves it on by one; :meth:`set_epoch` sets it."""

    def __init__(self, num_samples: int, batch_size: int, num_replicas: int = 1, rank: int = 0,
                 shuffle: bool = False, drop_last: bool = False):
        if num_samples < 1 or batch_size < 1 or not 0 <= rank < num_replicas:
            raise PtocrError(f"DistributedBatchSampler: rank {rank} of {num_replicas} replicas, batch size "
                             f"{batch_size}, {num_samples} samples")
        self.dataset_size, self.batch_size = int(num_samples), int(batch_size)
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.shuffle, self.drop_last, self.epoch = bool(shuffle), bool(drop_last), 0
        self.num_samples = math.ceil(self.dataset_size / self.num_replicas)  # this replica's share
        self.total_size = self.num_samples * self.num_replicas

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _mine(self, indices: list[int]) -> list[int]:
        bs, reps = self.batch_size, self.num_replicas
        last = self.total_size % (bs * reps)  # the incomplete last round, shared evenly
        mine = []
        for start in range(self.rank * bs, len(indices) - last, bs * reps):
            mine.extend(indices[start:start + bs])
        share = last // reps
        tail = indices[len(indices) - last:]
        return mine + tail[self.rank * share:(self.rank + 1) * share]

    def __iter__(self):
        # A generator: the pass (and its epoch) starts when the DataLoader reads the first batch.
        indices = list(range(self.dataset_size))
        padding = self.total_size - len(indices)
        indices += (indices * math.ceil(padding / len(indices)))[:padding]
        if self.shuffle:
            np.random.RandomState(self.epoch).shuffle(indices)
            self.epoch += 1
        if self.num_replicas > 1:
            indices = self._mine(indices)
        for start in range(0, len(indices), self.batch_size):
            batch = indices[start:start + self.batch_size]
            if len(batch) == self.batch_size or not self.drop_last:
                yield batch

    def __len__(self) -> int:
        return (self.num_samples + (0 if self.drop_last else self.batch_size - 1)) // self.batch_size
