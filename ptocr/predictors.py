"""Predictors: pre-processing -> PyTorch model -> post-processing, one per task.

Each takes images (path, numpy array, PIL image; BGR as OpenCV loads them) or crops,
and returns plain Python results. ``.model`` is the ``torch.nn.Module``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ptocr.cpu_features import warn_if_emulated
from ptocr.dictionary import Dictionary
from ptocr.errors import DictionaryError, ModelFileError, PtocrError
from ptocr.models.model import OCRModel
from ptocr.postprocess import (ClsPostProcess, CTCLabelDecode, DBPostProcess, filter_tag_det_res,
                               filter_tag_det_res_only_clip)
from ptocr.postprocess.unwarp import apply_mesh, page_input, to_image
from ptocr.precision import cast_model
from ptocr.transforms import DetPreprocess, RecPreprocess, cls_preprocess, load_image


@dataclass
class DetResult:
    # K x 4 x 2 float32, clockwise from top-left, original image pixels; with the post-processor's
    # box_type='poly', K x P x 2 int polygons (each padded to P points by repeating its last)
    boxes: np.ndarray
    scores: np.ndarray  # K


class Predictor:
    task = ""

    def __init__(self, model: OCRModel, config: dict, *, device=None, dtype=None):
        self.config = config
        self.device = as_device(device)
        self.dtype = as_dtype(dtype)
        self.model = cast_model(model, self.dtype, self.device).eval()
        self._check_dtype()

    def to(self, device=None, dtype=None) -> Predictor:
        """Move the model (in place) to ``device`` and/or ``dtype``; returns self. As with
        ``nn.Module.to``, a torch dtype alone may come first (``predictor.to(torch.float16)``)."""
        if isinstance(device, torch.dtype) and dtype is None:
            device, dtype = None, device
        # both checked before either changes: a refused argument leaves the predictor as it was
        device = self.device if device is None else as_device(device)
        dtype = self.dtype if dtype is None else as_dtype(dtype)
        self.device, self.dtype = device, dtype
        cast_model(self.model, self.dtype, self.device)
        self._check_dtype()
        return self

    def _check_dtype(self) -> None:
        if self.device.type == "cpu":  # a 16-bit type the CPU lacks instructions for is slow there
            warn_if_emulated(self.dtype)

    @torch.inference_mode()
    def forward(self, batch: np.ndarray, pin_memory: bool = False) -> np.ndarray:
        """Normalized float N x C x H x W -> the model's probabilities as float32 numpy."""
        return self.model(self.device_input(batch, pin_memory)).float().cpu().numpy()

    def device_input(self, batch: np.ndarray, pin_memory: bool = False) -> torch.Tensor:
        """A host batch as the model's input. ``pin_memory`` on CUDA: copied from page-locked
        memory without blocking (the host goes on preparing the next batch), then cast there."""
        x = torch.from_numpy(np.ascontiguousarray(batch))
        if pin_memory and self.device.type == "cuda":
            return x.pin_memory().to(self.device, non_blocking=True).to(self.dtype)
        return x.to(self.device, self.dtype)

    def __repr__(self) -> str:
        # the model's name says which weights these are; its architecture is shared by many
        # (PP-OCRv5_mobile_det is a ch_PP-OCRv4_det network)
        name = model_name_of(self.config) or self.config.get("architecture")
        return f"{type(self).__name__}({name!r}, device={self.device})"


def model_name_of(config: dict) -> str | None:
    """A converted model's name: the zoo model its weights or folder name identified
    (``model_name``), else the name its inference.yml states (``stated_model_name``, what paddlex
    goes by), else None."""
    return config.get("model_name") or config.get("stated_model_name")


_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16,
           "fp16": torch.float16, "half": torch.float16, "bfloat16": torch.bfloat16,
           "bf16": torch.bfloat16, "float64": torch.float64, "fp64": torch.float64}


def as_device(device) -> torch.device:
    """None -> cpu; refuses CUDA up front when this torch has none (instead of an assert deep in torch)."""
    try:
        dev = torch.device("cpu" if device is None else device)  # not `or`: device=0 is the first GPU
    except (RuntimeError, TypeError) as e:
        raise PtocrError(f"invalid device {device!r}: {e}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise PtocrError(f"device {device!r}: this torch build sees no CUDA device")
    if dev.type not in ("cpu", "cuda", "meta"):  # mps, xpu, xla...: usable only where this torch runs it
        try:
            torch.empty(1, device=dev)
        except (RuntimeError, AssertionError, NotImplementedError):
            raise PtocrError(f"device {device!r}: this torch build has no usable {dev.type} backend "
                             "(ptocr runs on cpu and cuda)") from None
    return dev


def as_dtype(dtype) -> torch.dtype:
    """None -> float32; a torch floating dtype or its name ("float16", "bf16", ...)."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, str):
        try:
            return _DTYPES[dtype.lower().removeprefix("torch.")]
        except KeyError:
            raise PtocrError(f"unknown dtype {dtype!r} (known: {', '.join(_DTYPES)})") from None
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise PtocrError(f"dtype must be a floating torch dtype or its name, got {dtype!r}")
    return dtype


def _as_list(images) -> tuple[list, bool]:
    if isinstance(images, (list, tuple)):
        return list(images), True
    return [images], False


class DetPredictor(Predictor):
    task = "det"

    def __init__(self, model, config, **kw):
        super().__init__(model, config, **kw)
        self.pre = DetPreprocess(**config.get("preprocess", {}))
        self.post = DBPostProcess(**config.get("postprocess", {}))

    def __call__(self, images) -> DetResult | list[DetResult]:
        items, many = _as_list(images)
        results = []
        for item in items:  # one at a time: each image has its own network size
            img = load_image(item)
            x, info = self.pre(img)
            results.append(self.boxes(self.forward(x[None])[0], info, img.shape))
        return results if many else results[0]

    def boxes(self, prob: np.ndarray, info, image_shape) -> DetResult:
        """One image's probability map (1 x H x W, at network size) -> its kept boxes: DB
        post-processing and predict_det's filter. Batches of same-size inputs (ptocr.bulk) call
        the model once and this per image."""
        (boxes, scores), = self.post(prob[None], [info])
        if self.post.box_type == "poly":  # predict_det: polygons are clipped, none dropped or reordered
            return DetResult(filter_tag_det_res_only_clip(boxes, image_shape), np.asarray(scores))
        kept, index = filter_tag_det_res(boxes, image_shape, return_index=True)
        return DetResult(kept, np.asarray(scores)[index])


class CropPredictor(Predictor):
    """Crops in, one result per crop: batched in the pre-processor's (aspect-sorted) order."""

    def __call__(self, crops) -> tuple[str, float] | list[tuple[str, float]]:
        items, many = _as_list(crops)
        imgs = [load_image(c) for c in items]
        out: list[Any] = [None] * len(imgs)
        for index, batch in self.pre.batches(imgs):
            for i, res in zip(index, self.post(self.forward(batch))):
                out[i] = res
        return out if many else out[0]


class RecPredictor(CropPredictor):
    task = "rec"

    def __init__(self, model, config, dictionary: Dictionary, **kw):
        super().__init__(model, config, **kw)
        if dictionary is None:
            raise DictionaryError("a recognizer needs its dictionary")
        dictionary.check_fits(config["model"]["head"]["num_classes"])
        self.dictionary = dictionary
        self.pre = RecPreprocess(**config.get("preprocess", {}))
        self.post = CTCLabelDecode(dictionary.classes, **config.get("postprocess", {}))



class ClsPredictor(CropPredictor):
    task = "cls"

    def __init__(self, model, config, **kw):
        super().__init__(model, config, **kw)
        post = dict(config.get("postprocess", {}))
        self.thresh = post.pop("thresh", 0.9)
        self.pre = cls_preprocess(config.get("preprocess"))
        self.post = ClsPostProcess(**post)
        classes = config["model"]["head"].get("num_classes")
        if self.post.labels is not None and classes is not None and len(self.post.labels) != classes:
            raise ValueError(f"{len(self.post.labels)} labels for a {classes}-class head")



class UnwarpPredictor(Predictor):
    """Pages in, unwarped pages out (BGR uint8, each at its own size): PaddleX's ``UVDoc``."""

    task = "unwarp"

    def __init__(self, model, config, **kw):
        super().__init__(model, config, **kw)
        if config.get("preprocess") or config.get("postprocess"):
            raise ValueError("an unwarping model takes no pre/post-processing settings")

    def __call__(self, images) -> np.ndarray | list[np.ndarray]:
        items, many = _as_list(images)
        out = [self.unwarp(load_image(item)) for item in items]  # each page at its own size
        return out if many else out[0]

    @torch.inference_mode()
    def unwarp(self, img: np.ndarray) -> np.ndarray:
        """One BGR uint8 page -> the page unwarped, same size."""
        page = torch.from_numpy(page_input(img)).to(self.device)
        mesh = self.model(page.to(self.dtype))
        return to_image(apply_mesh(page, mesh)[0].cpu().numpy())


PREDICTORS = {"det": DetPredictor, "rec": RecPredictor, "cls": ClsPredictor, "unwarp": UnwarpPredictor}


def make_predictor(model: OCRModel, config: dict, dictionary: Dictionary | None = None, *, where: str = "",
                   **kw) -> Predictor:
    """The task's predictor. Pre/post-processing settings come from the model's config:
    settings its constructors reject make a ModelFileError naming them."""
    cls = PREDICTORS[config["task"]]
    args = (model, config, dictionary) if cls is RecPredictor else (model, config)
    try:
        return cls(*args, **kw)
    except (TypeError, ValueError) as e:
        settings = {k: config.get(k) for k in ("preprocess", "postprocess")}
        prefix = f"{where}: " if where else ""
        raise ModelFileError(f"{prefix}the {config['task']} settings are invalid ({e}): {settings}"[:2000]) from None
