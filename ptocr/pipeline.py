"""The PP-OCR system, as PaddleOCR 2.10's ``TextSystem`` runs it:
detection -> reading order -> perspective crops -> direction (180 degree flip) -> recognition
-> drop lines scoring below ``drop_score``.

Every step is one of the predictors (each usable alone) or a function of ptocr.transforms /
ptocr.postprocess, so the numbers follow PaddleOCR's code step by step.
"""

from __future__ import annotations

import copy
import inspect
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from ptocr.bulk import BulkReading
from ptocr.bulk_steps import TextSystemSteps
from ptocr.errors import PtocrError, close_names
from ptocr.loading import load_predictor
from ptocr.manifest import load_manifest
from ptocr.inputs import read_inputs
from ptocr.pdf import document_pages
from ptocr.postprocess import ClsPostProcess, DBPostProcess, apply_cls_rotation, should_rotate
from ptocr.predictors import ClsPredictor, DetPredictor, Predictor, RecPredictor
from ptocr.result import Line, OCRResult
from ptocr.transforms import (DetPreprocess, RecPreprocess, cls_preprocess, get_rotate_crop_image, load_image,
                              sorted_boxes)
from ptocr.zoo import resolve

__all__ = ["OCR", "Line", "OCRResult", "official_model_files"]

# The bundle ``ptocr demo``, ``ptocr ocr`` without models and ``OCR.official()`` run: PaddleOCR
# 2.10's default (PP-OCRv4 mobile det / rec, v2.0 direction classifier).
DEFAULT_BUNDLE = "ch_PP-OCRv4"
# PaddleOCR 2.10's TextSystem default (``--drop_score``), the same for every generation.
DROP_SCORE = 0.5


def as_predictor(source, task: str, device=None, dtype=None, optimize: bool = True, compile: bool = False) -> Predictor:
    """A predictor, a converted .safetensors path or a Paddle model folder -> predictor of ``task``."""
    if isinstance(source, Predictor):
        p = source.to(device, dtype) if (device is not None or dtype is not None) else source
    elif isinstance(source, (str, os.PathLike)):
        p = load_predictor(source, device=device, dtype=dtype, optimize=optimize, compile=compile)
    else:
        raise PtocrError(f"{task}: expected a predictor, a .safetensors path or a Paddle model folder, "
                         f"got {type(source).__name__}")
    if p.task != task:
        raise PtocrError(f"{task}: {source} is a {p.task} model, not a {task} model")
    return p


_predictor = as_predictor  # the name this module's code used before the 3.x pipeline shared it


class OCR(BulkReading):
    """Image(s) in, text lines (box, text, score, angle) out.

    Args:
        det, rec, cls: each a predictor (``ptocr.load(...)``), a converted ``.safetensors``
            path, a Paddle model folder or a zoo model name. ``cls=None`` skips the direction
            classifier (PaddleOCR's ``use_angle_cls=False``).
        device, dtype: move all three models.
        drop_score: TextSystem's; lines scoring below it are dropped.
        optimize, compile: for paths and names, ``ptocr.load``'s inference rewrites (on by
            default) and ``torch.compile`` (off by default: the first images pay its
            compilation).
        det_limit_side_len, ..., use_angle_cls: PaddleOCR 2.10's options of the same names
            (``PaddleOCR(**options)``, ``tools/infer/utility.py``); None keeps the model's
            config. They apply to this pipeline's own copies of the predictors (the models
            are shared; predictors passed in are left as they were). Other PaddleOCR options
            are refused with the way to get the same here (doc/pipeline.md).

    Thresholds are the models' configs (PaddleOCR 2.10's defaults for their generation).
    ``OCR.from_pretrained(name)`` builds a bundle of the zoo (``ch_PP-OCRv4``);
    ``OCR.official()`` the default bundle, as ``ptocr demo`` runs it.
    """

    def __new__(pipeline_class, /, *args, **kwargs):  # positional-only: OCR takes a cls= argument
        # Other PaddleOCR options: one line saying what to do instead of a TypeError. Checked
        # here so that __init__'s signature stays the list of what OCR takes (bundles read it).
        _refuse_options({k: v for k, v in kwargs.items() if k not in _takes(pipeline_class)})
        return super().__new__(pipeline_class)

    def __init__(self, det, rec, cls=None, *, device=None, dtype=None, drop_score: float = DROP_SCORE,
                 optimize: bool = True, compile: bool = False,
                 det_limit_side_len: float | None = None, det_limit_type: str | None = None,
                 det_db_thresh: float | None = None, det_db_box_thresh: float | None = None,
                 det_db_unclip_ratio: float | None = None, use_dilation: bool | None = None,
                 det_db_score_mode: str | None = None, det_box_type: str | None = None,
                 use_angle_cls: bool | None = None, cls_thresh: float | None = None,
                 cls_batch_num: int | None = None, cls_image_shape=None, label_list=None,
                 rec_batch_num: int | None = None, rec_image_shape=None, use_space_char: bool | None = None,
                 max_text_length: int | None = None):
        if use_angle_cls is not None:
            _check_bool("use_angle_cls", use_angle_cls)
            if use_angle_cls and cls is None:
                raise PtocrError("use_angle_cls=True needs a direction classifier: give cls=")
            cls = cls if use_angle_cls else None  # PaddleOCR's use_angle_cls=False: no classifier
        self.det: DetPredictor = _predictor(det, "det", device, dtype, optimize, compile)
        self.rec: RecPredictor = _predictor(rec, "rec", device, dtype, optimize, compile)
        self.cls: ClsPredictor | None = (None if cls is None else
                                         _predictor(cls, "cls", device, dtype, optimize, compile))
        self.drop_score = _number("drop_score", drop_score)
        self.det = _with_det_options(self.det, det_limit_side_len=det_limit_side_len, det_limit_type=det_limit_type,
                                     det_db_thresh=det_db_thresh, det_db_box_thresh=det_db_box_thresh,
                                     det_db_unclip_ratio=det_db_unclip_ratio, use_dilation=use_dilation,
                                     det_db_score_mode=det_db_score_mode, det_box_type=det_box_type)
        self.rec = _with_rec_options(self.rec, rec_batch_num=rec_batch_num, rec_image_shape=rec_image_shape,
                                     use_space_char=use_space_char, max_text_length=max_text_length)
        cls_options = dict(cls_thresh=cls_thresh, cls_batch_num=cls_batch_num, cls_image_shape=cls_image_shape,
                           label_list=label_list)
        if self.cls is not None:
            self.cls = _with_cls_options(self.cls, **cls_options)

    @classmethod
    def from_pretrained(cls, name: str, *, lang: str | None = None, **kw) -> OCR:
        """The zoo bundle ``name`` (``ptocr list``: ``ch_PP-OCRv4``, ``ch_ptocr_server_v2``),
        each part loaded by name as ``ptocr.load`` loads it.

        Args:
            name: a bundle of the manifest.
            lang: refused: language codes pick PaddleOCR 3.x's recognizers.
            **kw: ``OCR``'s keyword arguments (device, dtype, drop_score, optimize, compile).
        """
        if lang is not None:
            raise PtocrError(f"lang picks PaddleOCR 3.x's recognizers; {name} is a PaddleOCR 2.x bundle")
        manifest = load_manifest()
        parts = manifest.bundle(name)  # unknown names: an error suggesting close ones
        if manifest.bundle_rules(name) != "paddleocr2":
            raise PtocrError(f"{name} follows PaddleOCR 3.x's pipeline rules (ptocr.pipeline3.OCR3): "
                             f"load it with ptocr.load({name!r})")
        return cls(parts["det"], parts["rec"], parts.get("cls"), **kw)

    @classmethod
    def official(cls, zoo: str | os.PathLike | None = None, *, log: Callable[[str], None] | None = None,
                 **kw) -> OCR:
        """The default bundle (``ch_PP-OCRv4``), its weights found as ``ptocr.load`` finds them
        (``ptocr.zoo.resolve``: local zoo folder ``zoo``, caches, official origins)."""
        files = official_model_files(zoo, log=log)
        return cls(files["det"], files["rec"], files.get("cls"), **kw)

    def __call__(self, images, pages=None) -> OCRResult | list[OCRResult]:
        """``images``: a path, encoded bytes, numpy array (BGR / gray / BGRA, 8 or 16 bit), PIL
        image, or a folder or list of them (-> a flat list of results). A PDF or TIFF path gives
        one result per page (``pages``: 1-based page numbers, default all), in place in the list
        (``ptocr.inputs``)."""
        return read_inputs(self, images, pages)

    def read_pdf(self, path, pages=None) -> list[OCRResult]:
        """One result per page of the PDF or TIFF ``path`` (``ptocr.pdf``: a TIFF's every frame,
        where PaddleOCR 2.x read its first only)."""
        return list(self.iter_pages(path, pages))

    def iter_pages(self, path, pages=None) -> Iterator[OCRResult]:
        """``read_pdf``'s results one page at a time: a long document is never held whole, and a
        page that cannot be read (a ``PageError``) comes after the pages before it."""
        for index, page in document_pages(path, pages):
            result = self.read(page)
            result.source, result.page_index = os.fspath(path), index
            yield result

    def read(self, image) -> OCRResult:
        source = os.fspath(image) if isinstance(image, (str, os.PathLike)) else None
        img = load_image(image)
        boxes = sorted_boxes(self.det(img).boxes)
        crops = [get_rotate_crop_image(img, b) for b in boxes]
        angles: list[int | None] = [None] * len(crops)
        if self.cls is not None and crops:
            # predict_cls: turn a crop over when its label contains "180" above cls_thresh.
            results = self.cls(crops)
            crops = apply_cls_rotation(crops, results, self.cls.thresh)
            angles = [180 if should_rotate(label, score, self.cls.thresh) else 0 for label, score in results]
        texts = self.rec(crops) if crops else []
        lines = [
            Line(box.tolist(), text, float(score), angle)
            for box, (text, score), angle in zip(boxes, texts, angles)
            if score >= self.drop_score  # TextSystem keeps score >= drop_score
        ]
        return OCRResult(lines, source=source, image=img)

    def bulk_steps(self) -> TextSystemSteps:
        return TextSystemSteps(self)

    def __repr__(self) -> str:
        return f"OCR(det={self.det!r}, rec={self.rec!r}, cls={self.cls!r}, drop_score={self.drop_score})"


# PaddleOCR 2.10's options (tools/infer/utility.py) -> the pre/post-processing setting they set.
_DET_PRE = {"det_limit_side_len": "limit_side_len", "det_limit_type": "limit_type"}
_DET_POST = {"det_db_thresh": "thresh", "det_db_box_thresh": "box_thresh", "det_db_unclip_ratio": "unclip_ratio",
             "use_dilation": "use_dilation", "det_db_score_mode": "score_mode", "det_box_type": "box_type"}
_NUMBERS = {"det_limit_side_len", "det_db_thresh", "det_db_box_thresh", "det_db_unclip_ratio", "cls_thresh"}
_COUNTS = {"rec_batch_num", "cls_batch_num", "max_text_length"}

# The PaddleOCR 2.10 options OCR takes (for "did you mean").
_OPTIONS = (*_DET_PRE, *_DET_POST, "use_angle_cls", "cls_thresh", "cls_batch_num", "cls_image_shape", "label_list",
            "rec_batch_num", "rec_image_shape", "use_space_char", "max_text_length", "drop_score")

_RUNTIME = "a Paddle runtime setting with no effect on what is read; drop it"
# PaddleOCR options OCR does not take, and what to do instead.
REFUSED_OPTIONS = {
    "lang": "PaddleOCR 2.x's lang picks the det and rec models: give the language's recognizer as rec= "
            "(`ptocr list '*_rec'`)",
    "ocr_version": "the models are given: OCR.from_pretrained('ch_PP-OCRv4') or det=/rec=/cls=",
    "det_model_dir": "give the detector as det=", "rec_model_dir": "give the recognizer as rec=",
    "cls_model_dir": "give the direction classifier as cls=",
    "rec_char_dict_path": "the dictionary belongs to the converted recognizer: ptocr-convert --dict PATH",
    "det_algorithm": "the detector's own architecture decides it",
    "rec_algorithm": "the recognizer's own architecture decides it",
    "use_gpu": "give device='cuda'", "gpu_id": "give device='cuda:N'", "precision": "give dtype=",
    "return_word_box": "word boxes come from PaddleOCR 3.x's rules: ptocr.load('PP-OCRv5_server', "
                       "return_word_box=True)",
    "page_num": "read chosen pages with ocr(path, pages=[1, 2, ...])",
    **{name: _RUNTIME for name in ("show_log", "use_mp", "total_process_num", "process_id", "enable_mkldnn",
                                   "cpu_threads", "use_onnx", "ir_optim", "use_tensorrt", "min_subgraph_size",
                                   "gpu_mem", "use_xpu", "use_npu", "use_mlu", "benchmark", "warmup")},
}


def _takes(cls) -> set[str]:
    return set(inspect.signature(cls.__init__).parameters)


def _refuse_options(options: dict) -> None:
    """A PtocrError for the first option OCR does not take: PaddleOCR's with what to do instead,
    others with the close names OCR knows."""
    for name in options:
        if name in REFUSED_OPTIONS:
            raise PtocrError(f"OCR does not take PaddleOCR's {name}: {REFUSED_OPTIONS[name]}")
        close = close_names(name, _OPTIONS, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else f"; it takes {', '.join(_OPTIONS)}"
        raise PtocrError(f"OCR has no option {name}{hint}")


def _check_bool(name: str, value) -> None:
    if not isinstance(value, bool):
        raise PtocrError(f"{name} must be True or False, got {value!r}")


def _number(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise PtocrError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _count(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PtocrError(f"{name} must be a positive integer, got {value!r}")
    return value


def _checked(options: dict) -> dict:
    """The options given (not None), each checked for its kind of value."""
    given = {k: v for k, v in options.items() if v is not None}
    for name, value in given.items():
        if name in _NUMBERS:
            _number(name, value)
        elif name in _COUNTS:
            _count(name, value)
        elif name in ("use_dilation", "use_space_char"):
            _check_bool(name, value)
    return given


def _image_shape(name: str, value) -> tuple[int, ...]:
    """PaddleOCR's "3, 48, 320" (or a sequence of three ints) -> (C, H, W)."""
    try:
        parts = value.split(",") if isinstance(value, str) else list(value)
        shape = tuple(int(v) for v in parts)
    except (TypeError, ValueError):
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise PtocrError(f"{name} must be 'C, H, W' (e.g. '3, 48, 320'), got {value!r}")
    return shape


def _rebuilt(make, settings: dict, given: dict):
    """``make(**settings)``; an invalid value is a PtocrError naming the options given."""
    try:
        return make(**settings)
    except (TypeError, ValueError) as e:
        raise PtocrError(f"{', '.join(f'{k}={v!r}' for k, v in given.items())}: {e}") from None


def _with_det_options(det: DetPredictor, **options) -> DetPredictor:
    """``det``, or a copy sharing its model, with PaddleOCR's det_* options applied."""
    given = _checked(options)
    if given.get("det_box_type", "quad") != "quad" or det.post.box_type != "quad":
        raise PtocrError("det_box_type='poly': ptocr's PaddleOCR 2.x pipeline reads quadrilateral boxes only "
                         "(det_box_type='quad')")
    if not given:
        return det
    det = copy.copy(det)
    pre = {_DET_PRE[k]: v for k, v in given.items() if k in _DET_PRE}
    post = {_DET_POST[k]: v for k, v in given.items() if k in _DET_POST}
    det.pre = _rebuilt(DetPreprocess, {**det.config.get("preprocess", {}), **pre}, given)
    det.post = _rebuilt(DBPostProcess, {**det.config.get("postprocess", {}), **post}, given)
    return det


def _with_rec_options(rec: RecPredictor, **options) -> RecPredictor:
    """``rec``, or a copy sharing its model, with rec_batch_num / rec_image_shape applied.
    ``use_space_char`` must agree with the converted dictionary; ``max_text_length`` is
    accepted as PaddleOCR accepts it: CTC decoding never reads it."""
    given = _checked(options)
    space = given.pop("use_space_char", None)
    if space is not None and space != rec.dictionary.use_space_char:
        raise PtocrError(f"use_space_char={space}: this recognizer's dictionary was converted "
                         f"{'with' if rec.dictionary.use_space_char else 'without'} the space class "
                         "(ptocr-convert --use-space-char decides it)")
    given.pop("max_text_length", None)
    if not given:
        return rec
    pre = dict(rec.config.get("preprocess", {}))
    if "rec_batch_num" in given:
        pre["batch_size"] = given["rec_batch_num"]
    if "rec_image_shape" in given:
        pre["image_shape"] = _image_shape("rec_image_shape", given["rec_image_shape"])
    rec = copy.copy(rec)
    rec.pre = _rebuilt(RecPreprocess, pre, given)
    return rec


def _with_cls_options(cls: ClsPredictor, **options) -> ClsPredictor:
    """``cls``, or a copy sharing its model, with cls_thresh / cls_batch_num / cls_image_shape /
    label_list applied."""
    given = _checked(options)
    if not given:
        return cls
    cls = copy.copy(cls)
    if "cls_thresh" in given:
        cls.thresh = float(given["cls_thresh"])
    kw = {}
    if "cls_batch_num" in given:
        kw["batch_size"] = given["cls_batch_num"]
    if "cls_image_shape" in given:
        kw["image_shape"] = _image_shape("cls_image_shape", given["cls_image_shape"])
    if kw:
        cls.pre = _rebuilt(lambda **k: cls_preprocess(cls.config.get("preprocess"), **k), kw, given)
    if "label_list" in given:
        cls.post = _rebuilt(ClsPostProcess, {"labels": given["label_list"]}, given)
        if len(cls.post.labels) != cls.config["model"]["head"].get("num_classes", len(cls.post.labels)):
            raise PtocrError(f"label_list {given['label_list']!r}: the classifier has "
                             f"{cls.config['model']['head']['num_classes']} classes")
    return cls


def official_model_files(zoo: str | os.PathLike | None = None, *,
                         log: Callable[[str], None] | None = None) -> dict[str, Path]:
    """The checked converted files of the default bundle's parts, through the one resolver
    (``ptocr.zoo.resolve``), kept in the local zoo folder ``zoo`` (default ``$PTOCR_ZOO``).
    Returns ``{"det"|"rec"|"cls": path}``."""
    files = {}
    for task, name in load_manifest().bundle(DEFAULT_BUNDLE).items():
        found = resolve(name, zoo=Path(zoo) if zoo is not None else None)
        if log is not None:
            log(f"{name}: {found.path} (from {found.where})")
        files[task] = found.path
    return files
