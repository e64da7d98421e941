"""The OCR pipeline of PaddleOCR 3.x (PaddleX's ``OCR`` pipeline, paddleocr 3.7 / paddlex 3.7),
step by step:

prepare (read; optional document orientation: PP-LCNet doc_ori, then an affine turn; optional
document unwarping: UVDoc's mesh, the page sampled through it) ->
detect (DB limited by the *shorter* side: 64, "min", longer side capped at 4000; box
threshold 0.6, unclip 1.5; PaddleX's DB scaling) -> sort (top-to-bottom, then left-to-right)
-> crop (minimum-area rectangle of each quad, perspective warp) -> orientation (PP-LCNet
textline model: class 1 turns the crop by 180 degrees with PaddleX's affine warp) ->
recognize (crops sorted by aspect ratio, batches of 6, each crop resized to its own width and
zero-padded to the batch's widest; Arabic texts through python-bidi) -> assemble (lines scoring
>= 0.0: ``rec_polys``, ``rec_boxes``, ``rec_texts``, ``rec_scores``,
``textline_orientation_angles``; with ``return_word_box``, each line's words and their boxes).

One deliberate difference: paddlex 3.7.0-3.7.2 give every line of a textline-orientation
batch the angle of the batch's first line; here each line gets its own at any batch size
(doc/pipeline.md). Each step is a method, so bulk reading can batch them across images.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Iterable, Iterator
from typing import NamedTuple

import numpy as np
import torch
from bidi.algorithm import get_display

from ptocr.bulk import BulkReading
from ptocr.bulk_steps import Pipeline3Steps
from ptocr.errors import ImageError, PtocrError, close_names
from ptocr.inputs import iter_inputs, read_inputs
from ptocr.languages import bundle_parts
from ptocr.manifest import load_manifest
from ptocr.paddleocr3_options import (CONSTRUCTOR_OPTIONS, DOC_ORIENTATION_MODEL, DOC_UNWARPING_MODEL, MODEL_OPTIONS,
                                      RULES, cpu_threads_choice, current_names, engine_choice, input_shapes,
                                      model_parts, paddleocr3_model_names, torch_device)
from ptocr.pdf import document_pages
from ptocr.pipeline import as_predictor
from ptocr.postprocess import CTCLabelDecode, DBPostProcess
from ptocr.postprocess.word_boxes import line_word_boxes, recognized_columns, word_groups
from ptocr.predictors import ClsPredictor, DetPredictor, RecPredictor, UnwarpPredictor, model_name_of
from ptocr.result import Line
from ptocr.result3 import ANGLE_OF_CLASS, OCR3Result
from ptocr.transforms import DetPreprocess, get_minarea_rect_crop, load_image, poly_crop, sort_poly_boxes, sorted_boxes
from ptocr.transforms.rec import pad_batch, resize_norm_img_own_width, resize_norm_img_static
from ptocr.transforms.rotate import rotate_image

__all__ = ["BIDI_RECOGNIZERS", "DOC_ORIENTATION_MODEL", "DOC_UNWARPING_MODEL", "OCR3", "PADDLEOCR3_DEFAULTS",
           "PreparedPage", "SEAL_DEFAULTS", "SEAL_MODELS", "STEP_SWITCHES", "TEXT_TYPE_DEFAULTS", "bundle_doc_parts",
           "paddleocr3_model_names", "seal_parts", "torch_device"]

# The pipeline's settings as paddlex 3.7's OCR.yaml gives them (text_type "general").
PADDLEOCR3_DEFAULTS = {
    "text_det_limit_side_len": 64,
    "text_det_limit_type": "min",
    "text_det_max_side_limit": 4000,
    "text_det_thresh": 0.3,
    "text_det_box_thresh": 0.6,
    "text_det_unclip_ratio": 1.5,
    "text_rec_score_thresh": 0.0,
    "textline_orientation_batch_size": 6,
    "text_recognition_batch_size": 6,
    # Each line's words and their boxes (result fields text_word, text_word_region, text_word_boxes).
    "return_word_box": False,
}
# text_type "seal" (paddlex's OCR pipeline for curved seal text, seal_recognition.yaml's SealOCR): the
# detection defaults its code gives that type; polygons sorted by their top, each crop rectified
# along its curve (ptocr.transforms.seal_crop), no rec_boxes.
SEAL_DEFAULTS = {**PADDLEOCR3_DEFAULTS, "text_det_limit_side_len": 736, "text_det_limit_type": "min",
                 "text_det_max_side_limit": 4000, "text_det_thresh": 0.2, "text_det_box_thresh": 0.6,
                 "text_det_unclip_ratio": 0.5, "text_recognition_batch_size": 1}  # SealOCR's: one crop at a time
TEXT_TYPE_DEFAULTS = {"general": PADDLEOCR3_DEFAULTS, "seal": SEAL_DEFAULTS}
# SealOCR's models for the parts not given (seal_recognition.yaml), without textline orientation.
SEAL_MODELS = ("PP-OCRv4_server_seal_det", "PP-OCRv4_server_rec")
# PaddleX's recognizer squeezes crops wider than this (at the model height) into it.
REC_MAX_WIDTH = 3200
# The recognizers whose texts paddlex 3.7 puts through python-bidi's get_display: its model names
# arabic_PP-OCRv3_mobile_rec and arabic_PP-OCRv5_mobile_rec (a Paddle 3 folder's inference.yml
# names its model so), and the zoo's name for the first, arabic_PP-OCRv3_rec. Every other
# recognizer's text is the CTC decoding as it comes, never reversed (2.x's rule).
BIDI_RECOGNIZERS = frozenset({"arabic_PP-OCRv3_rec", "arabic_PP-OCRv3_mobile_rec", "arabic_PP-OCRv5_mobile_rec"})
# The detection settings paddlex's models replace when given a false value (0, 0.0, ""): its
# text detector reads ``value or its own`` (text_detection/predictor.py, DBPostProcess).
FALSE_MEANS_MODEL_DEFAULT = ("text_det_limit_side_len", "text_det_limit_type", "text_det_thresh",
                             "text_det_box_thresh", "text_det_unclip_ratio")
# paddlex's detectors whose own limit is the longer side at 960 (_TEXT_DET_MAX_LIMIT_MODELS),
# with the zoo's names for the same releases (ch_PP-OCRv3_det is paddlex's PP-OCRv3_mobile_det,
# ch_PP-OCRv4_det its PP-OCRv4_mobile_det); any other model's is the shorter side at 736.
MAX_LIMIT_DETECTORS = frozenset({"PP-OCRv3_mobile_det", "PP-OCRv3_server_det", "PP-OCRv4_mobile_det",
                                 "PP-OCRv4_server_det", "PP-OCRv5_mobile_det", "PP-OCRv5_server_det",
                                 "PP-OCRv6_medium_det", "PP-OCRv6_small_det", "PP-OCRv6_tiny_det",
                                 "ch_PP-OCRv3_det", "ch_PP-OCRv4_det", "ch_PP-OCRv4_server_det"})
# PaddleOCR 3.x's switches of its optional steps: OCR3's parts (True needs the step's model).
STEP_SWITCHES = ("use_textline_orientation", "use_doc_orientation_classify", "use_doc_unwarping")


class PreparedPage(NamedTuple):
    """A page as the document preprocessor leaves it (paddlex's ``doc_preprocessor_res``):
    ``image`` what the later steps read (its ``output_img``), ``angle`` the orientation step's
    (-1 without it), ``input_img`` the page as read, ``rot_img`` after the orientation step."""

    image: np.ndarray
    angle: int
    input_img: np.ndarray
    rot_img: np.ndarray


class OCR3(BulkReading):
    """Image(s) or PDF pages in, PaddleOCR 3.x's results out (``OCR3Result`` per image / page).

    ``OCR3(**options)`` with paddleocr 3.7's ``PaddleOCR(**options)`` (no det / rec given) picks
    the models as 3.x does: ``text_detection_model_name`` / ``_dir`` and the like, else ``lang`` and
    ``ocr_version``; ``device="gpu:0"``, ``precision="fp16"`` and Paddle's engine options as
    doc/pipeline.md's table says. ``predict`` / ``predict_iter`` read as 3.x's.

    Args:
        det, rec: each a predictor, converted ``.safetensors``, Paddle model folder or zoo name.
        textline: the textline orientation classifier (PP-LCNet ``*_textline_ori``); None skips
            the step (PaddleOCR's ``use_textline_orientation=False``).
        doc_ori: the document orientation classifier (``PP-LCNet_x1_0_doc_ori``); None skips it.
        doc_unwarp: the document unwarping model (``UVDoc``); None skips the step. Loaded by name or
            path, it runs in float32 whatever ``dtype`` (its mesh holds pixel positions).
        use_textline_orientation, use_doc_orientation_classify, use_doc_unwarping: PaddleOCR 3.x's switches: False
            skips the step whatever model is given, True requires its model, None (default):
            the step runs when its model is given.
        device, dtype, optimize, compile: as ``OCR``'s.
        text_type: "general", or "seal" (paddlex's OCR pipeline for curved seal text: polygons, each
            crop rectified along its curve; ``SEAL_DEFAULTS``; the parts not given as PaddleOCR
            3.x's SealRecognition fills them, ``seal_parts``).
        **settings: overrides of ``TEXT_TYPE_DEFAULTS[text_type]`` (PaddleOCR 3.x's parameter names).
    """

    rules = RULES

    def __init__(self, det=None, rec=None, textline=None, doc_ori=None, doc_unwarp=None, *,
                 use_textline_orientation: bool | None = None, use_doc_orientation_classify: bool | None = None,
                 use_doc_unwarping: bool | None = None, device=None, dtype=None, optimize: bool = True,
                 compile: bool = False, text_type: str = "general", **settings):
        if not isinstance(text_type, str) or text_type not in TEXT_TYPE_DEFAULTS:
            raise PtocrError(f"text_type must be one of {', '.join(TEXT_TYPE_DEFAULTS)}, got {text_type!r}")
        self.text_type = text_type
        settings = current_names({"use_textline_orientation": use_textline_orientation, **settings})
        use_textline_orientation = settings.pop("use_textline_orientation")
        if text_type == "seal":
            det, rec, use_textline_orientation = seal_parts(det, rec, textline, use_textline_orientation, settings)
        device, dtype = engine_choice(settings, device, dtype)
        threads = cpu_threads_choice(settings)
        # paddlex's input_shape: fixed detector / recognizer input sizes (constructor only, as 3.x)
        self.input_shapes = input_shapes(settings)
        switches = {"textline": use_textline_orientation, "doc_ori": use_doc_orientation_classify,
                    "doc_unwarp": use_doc_unwarping}
        det, rec, textline, doc_ori, doc_unwarp = model_parts(
            dict(det=det, rec=rec, textline=textline, doc_ori=doc_ori, doc_unwarp=doc_unwarp), settings,
            switches).values()
        if set(settings) - set(PADDLEOCR3_DEFAULTS):  # before any model is loaded or fetched
            raise PtocrError(_unknown_settings(sorted(set(settings) - set(PADDLEOCR3_DEFAULTS))))
        _refuse_seal_word_boxes(text_type, settings)
        textline = _switched(textline, use_textline_orientation, "use_textline_orientation",
                             "a textline orientation model (textline=...)")
        doc_ori = _switched(doc_ori, use_doc_orientation_classify, "use_doc_orientation_classify",
                            "a document orientation model (doc_ori=...)")
        doc_unwarp = _switched(doc_unwarp, use_doc_unwarping, "use_doc_unwarping",
                               "a document unwarping model (doc_unwarp=...)")
        load = dict(device=device, dtype=dtype, optimize=optimize, compile=compile)
        self.det: DetPredictor = as_predictor(det, "det", **load)
        if text_type == "general" and self.det.post.box_type == "poly":
            raise PtocrError(f"{self.det!r} gives polygons (box_type 'poly', a seal text detector): text_type "
                             "'general' reads quadrilaterals; give text_type='seal' (ptocr ocr: --set text_type=seal)")
        self.rec: RecPredictor = as_predictor(rec, "rec", **load)
        # 3.x decodes as it comes, whatever the recognizer's own (2.x) settings say, and puts
        # the texts of BIDI_RECOGNIZERS through get_display after the word boxes are found.
        self.rec_decode = CTCLabelDecode(self.rec.dictionary.classes)
        self.bidi = model_name_of(self.rec.config) in BIDI_RECOGNIZERS
        self.textline: ClsPredictor | None = None if textline is None else as_predictor(textline, "cls", **load)
        self.doc_ori: ClsPredictor | None = None if doc_ori is None else as_predictor(doc_ori, "cls", **load)
        # UVDoc stays in float32 whatever ``dtype``: its output is a sampling position, which
        # float16 steps by half a pixel on a page 2,048 pixels wide, bfloat16 by 2 on one 1,000 wide.
        self.doc_unwarp: UnwarpPredictor | None = (None if doc_unwarp is None
                                                   else as_predictor(doc_unwarp, "unwarp", **{**load, "dtype": None}))
        self.made_settings = _merged(TEXT_TYPE_DEFAULTS[text_type], settings)
        self._configure(self.made_settings)
        if threads is not None and self.det.device.type == "cpu":
            # paddle's cpu_threads is per predictor, torch's count per process (doc/pipeline.md)
            torch.set_num_threads(threads)

    def _configure(self, settings: dict) -> None:
        """Check ``settings`` and build the detection steps they set. The result reports them as
        given; the detector reads a false value of ``FALSE_MEANS_MODEL_DEFAULT`` as the one the
        pipeline was made with, and a false one there as the model's own, as paddlex does."""
        for key in ("textline_orientation_batch_size", "text_recognition_batch_size"):
            if int(settings[key]) < 1:
                raise PtocrError(f"{key} must be >= 1, got {settings[key]!r}")
        fallback = self.detector_defaults()
        s = {**settings, **{k: settings[k] or self.made_settings[k] or fallback[k] for k in FALSE_MEANS_MODEL_DEFAULT}}
        pre, post = self.det.pre, self.det.post
        try:
            self.det_pre = DetPreprocess(s["text_det_limit_side_len"], s["text_det_limit_type"], pre.mean, pre.std,
                                         pre.scale, max_side_limit=s["text_det_max_side_limit"], normalize="paddlex",
                                         input_shape=self.input_shapes["det"])
            self.det_post = DBPostProcess(s["text_det_thresh"], s["text_det_box_thresh"], post.max_candidates,
                                          s["text_det_unclip_ratio"], post.use_dilation, post.score_mode,
                                          post.box_type, rules="paddlex")
        except ValueError as e:
            raise PtocrError(f"invalid detection settings: {e}") from None
        self.settings = settings

    def detector_defaults(self) -> dict:
        """The detection settings the detector model falls back on (paddlex: its inference.yml's
        DBPostProcess values, and a limit by its model name, MAX_LIMIT_DETECTORS)."""
        side, kind = (960, "max") if model_name_of(self.det.config) in MAX_LIMIT_DETECTORS else (736, "min")
        post = self.det.post
        return {"text_det_limit_side_len": side, "text_det_limit_type": kind, "text_det_thresh": post.thresh,
                "text_det_box_thresh": post.box_thresh, "text_det_unclip_ratio": post.unclip_ratio}

    def with_settings(self, **settings) -> OCR3:
        """This pipeline with ``settings`` in place, sharing its models: what PaddleOCR 3.x's
        per-call ``predict(image, text_det_box_thresh=0.5, use_textline_orientation=False, ...)``
        reads with (a step switched on needs its model here)."""
        other = copy.copy(self)
        other.textline = _switched(self.textline, settings.pop("use_textline_orientation", None),
                                   "use_textline_orientation", "a textline orientation model")
        ori, unwarp = settings.pop("use_doc_orientation_classify", None), settings.pop("use_doc_unwarping", None)
        if (ori, unwarp) != (None, None) and True not in (ori, unwarp):
            # paddlex's OCR get_model_settings: per call, document switches given and none True
            # turn the whole doc preprocessor off (use_doc_orientation_classify=False alone skips
            # unwarping too)
            ori = unwarp = False
        other.doc_ori = _switched(self.doc_ori, ori, "use_doc_orientation_classify", "a document orientation model")
        other.doc_unwarp = _switched(self.doc_unwarp, unwarp, "use_doc_unwarping", "a document unwarping model")
        _refuse_seal_word_boxes(self.text_type, settings)
        other._configure(_merged(self.settings, settings))
        return other

    @classmethod
    def from_pretrained(cls, name: str, *, lang: str | None = None, **kw) -> OCR3:
        """The zoo bundle ``name`` (``PP-OCRv5_server``, ``PP-OCRv5_mobile``), parts by name;
        ``lang``: PaddleOCR 3.x's language code, its recognizer in place of the bundle's."""
        manifest = load_manifest()
        if manifest.bundle_rules(name) != cls.rules:
            raise PtocrError(f"{name} follows {manifest.bundle_rules(name)}'s pipeline rules: load it with "
                             "ptocr.load(name)")
        parts = bundle_parts(name, lang)
        doc_ori, doc_unwarp = bundle_doc_parts(kw.pop("doc_ori", None), kw.pop("doc_unwarp", None), kw)
        return cls(parts["det"], parts["rec"], parts.get("cls"), doc_ori, doc_unwarp, **kw)

    # ---- the steps ----

    def prepare(self, image) -> PreparedPage:
        """Read ``image`` (BGR), turn it upright when a doc-orientation model is set, then unwarp it
        when a doc-unwarping model is set (PaddleX's doc preprocessor, in that order)."""
        img = rot = load_image(image)
        angle = -1
        if self.doc_ori is not None:
            label, _ = self.doc_ori(img)
            if str(label) not in ("0", "90", "180", "270"):
                raise PtocrError(f"the document orientation model answered {label!r}, not an angle of 0, 90, 180 "
                                 "or 270: is it a document orientation model (PP-LCNet_x1_0_doc_ori)?")
            angle = int(label)
            rot = rotate_image(img, angle)
        page = self.doc_unwarp.unwarp(rot) if self.doc_unwarp is not None else rot
        return PreparedPage(page, angle, img, rot)

    def detect(self, img: np.ndarray) -> list[np.ndarray]:
        """Text quads (int 4 x 2, source pixels; seal: polygons, int K x 2) in reading order."""
        x, info = self.det_pre(img)
        return self.quads(self.det.forward(x[None])[0], info)

    def quads(self, prob: np.ndarray, info) -> list[np.ndarray]:
        """One image's probability map (1 x H x W, network size) -> its quads in reading order
        (bulk reading calls the detector on a batch of images, then this per image)."""
        (boxes, _), = self.det_post(prob[None], [info])
        if self.text_type == "seal":  # top to bottom by each polygon's highest point
            return sort_poly_boxes([np.asarray(b, dtype=np.int32) for b in boxes], self._sort_dtype(boxes))
        # paddlex keeps int16 corners; int32 holds the same values without wrapping past 32767 px.
        return sorted_boxes(np.asarray(boxes, dtype=np.int32).reshape(-1, 4, 2))

    def _sort_dtype(self, boxes) -> type:
        """The dtype paddlex sorts seal boxes in (np.argsort's ties fall by dtype on SIMD CPUs):
        int64 polygons, int16 quads (int32 where a top would wrap int16)."""
        if self.det_post.box_type == "poly":
            return np.int64
        return np.int16 if all(np.asarray(b)[:, 1].min() <= np.iinfo(np.int16).max for b in boxes) else np.int32

    def crop(self, img: np.ndarray, polys: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(crops, their quads): each quad's minimum-area rectangle, warped upright (seal: each
        polygon's crop rectified along its curve). Empty crops are dropped with their polygon."""
        crop_one = poly_crop if self.text_type == "seal" else get_minarea_rect_crop
        pairs = [(crop_one(img, p), p) for p in polys]
        pairs = [(c, p) for c, p in pairs if c.size > 0]
        return [c for c, _ in pairs], [p for _, p in pairs]

    def orient(self, crops: list[np.ndarray]) -> tuple[list[np.ndarray], list[int]]:
        """(crops turned upright, class per crop: 0, 1 = 180 degrees, -1 without the model).
        Every crop gets its own class whatever the batch size."""
        if self.textline is None:
            return crops, [-1] * len(crops)
        classes = _per_crop(crops, self.orient_batches(crops), self.textline, self.orient_classes)
        return self.turn(crops, classes), classes

    def orient_batches(self, crops: list[np.ndarray]) -> list[tuple[list[int], np.ndarray]]:
        """The textline model's batches of one image's crops: (crop indices, input), in order,
        ``textline_orientation_batch_size`` at a time."""
        size = int(self.settings["textline_orientation_batch_size"])
        return [(list(range(start, min(start + size, len(crops)))), self.textline.pre.batch(crops[start:start + size]))
                for start in range(0, len(crops), size)]

    @staticmethod
    def orient_classes(probs: np.ndarray) -> list[int]:
        # PaddleX's Topk: the last index of an ascending argsort (ties go to the higher class).
        return [int(np.argsort(p, kind="stable")[-1]) for p in probs]

    @staticmethod
    def turn(crops: list[np.ndarray], classes: list[int]) -> list[np.ndarray]:
        return [rotate_image(c, 180 * k) for c, k in zip(crops, classes)]

    def recognize(self, crops: list[np.ndarray]) -> list[tuple[str, float]]:
        """(text, score) per crop: sorted by aspect ratio (stable), batched, each crop at its own
        width, zero-padded to the batch's widest."""
        return _per_crop(crops, self.rec_batches(crops), self.rec, self.rec_texts)

    def rec_groups(self, crops: list[np.ndarray]) -> list[list[int]]:
        """Which crops the recognizer reads together: sorted by aspect ratio (stable), in batches."""
        order = sorted(range(len(crops)), key=lambda i: crops[i].shape[1] / float(crops[i].shape[0]))
        size = int(self.settings["text_recognition_batch_size"])
        return [order[start:start + size] for start in range(0, len(order), size)]

    def rec_batches(self, crops: list[np.ndarray]) -> list[tuple[list[int], np.ndarray]]:
        """The recognizer's batches of one image's crops: (crop indices, input). The batch decides
        the padded width and so the numbers: bulk reading keeps each image's own batches."""
        return [(group, pad_batch([self.rec_input(crops[i]) for i in group])) for group in self.rec_groups(crops)]

    def rec_input(self, crop: np.ndarray) -> np.ndarray:
        """One crop as the recognizer reads it: at the model height and its own width, or at
        exactly ``text_rec_input_shape`` when the pipeline was made with one."""
        if self.input_shapes["rec"] is not None:
            return resize_norm_img_static(crop, self.input_shapes["rec"])
        return resize_norm_img_own_width(crop, self.rec.pre.image_shape, REC_MAX_WIDTH)

    def rec_texts(self, probs: np.ndarray) -> list[tuple]:
        """(text, score) per row; with ``return_word_box`` also (output length, words, their
        columns, their kinds), found on the text as decoded, before get_display (paddlex's order)."""
        words = bool(self.settings["return_word_box"])
        chosen = probs.argmax(axis=2) if words else None
        out = []
        for n, (text, score, steps) in enumerate(self.rec_decode(probs, return_positions=True)):
            shown = get_display(text) if self.bidi else text
            if not words:
                out.append((shown, score))
                continue
            # a dictionary entry of several code points: each of them was read at its step
            columns = [t for t in steps for _ in self.rec_decode.characters[chosen[n, t]]]
            out.append((shown, score, (probs.shape[1], *word_groups(text, columns))))
        return out

    def _word_boxes(self, crops, polys, texts, kept) -> tuple[list, list]:
        """(words, word quads) of the ``kept`` lines: each crop's share of its batch's padded
        width turns the output length into the columns that cover it (paddlex's wh_ratio /
        max_wh_ratio, the latter at least the recognizer's own input ratio)."""
        _, height, width = self.rec.pre.image_shape
        ratio = [c.shape[1] * 1.0 / c.shape[0] for c in crops]
        widest = [0.0] * len(crops)
        for group in self.rec_groups(crops):
            group_widest = max([width / height, *(ratio[i] for i in group)])
            for i in group:
                widest[i] = group_widest
        words, quads = [], []
        for i in kept:
            text, _, (steps, groups, cols, kinds) = texts[i]
            w, q = line_word_boxes(text, polys[i], recognized_columns(steps, ratio[i], widest[i]), groups, cols, kinds)
            words.append(w)
            quads.append(q)
        return words, quads

    def assemble(self, page: PreparedPage, polys, angles, texts, *, source=None, page_index=None,
                 dt_polys=None, crops=None) -> OCR3Result:
        """The result of the ``prepare``d ``page``; ``crops`` (as recognized) are needed for word
        boxes only."""
        thresh = float(self.settings["text_rec_score_thresh"])
        kept = [i for i, t in enumerate(texts) if t[1] >= thresh]
        lines = [Line([[float(x), float(y)] for x, y in polys[i]], texts[i][0], float(texts[i][1]),
                      ANGLE_OF_CLASS[angles[i]]) for i in kept]
        words = quads = None
        if self.settings["return_word_box"]:
            if crops is None:
                raise PtocrError("word boxes need the crops the lines were read from (assemble(..., crops=))")
            words, quads = self._word_boxes(crops, polys, texts, kept)
        s = self.settings
        doc = {"use_doc_orientation_classify": self.doc_ori is not None,
               "use_doc_unwarping": self.doc_unwarp is not None}
        settings = {
            "model_settings": {"use_doc_preprocessor": any(doc.values()),
                               "use_textline_orientation": self.textline is not None},
            "doc_preprocessor": doc,
            "text_det_params": {"limit_side_len": s["text_det_limit_side_len"],
                                "limit_type": s["text_det_limit_type"], "thresh": s["text_det_thresh"],
                                "max_side_limit": s["text_det_max_side_limit"],
                                "box_thresh": s["text_det_box_thresh"], "unclip_ratio": s["text_det_unclip_ratio"]},
            "text_rec_score_thresh": thresh,
        }
        return OCR3Result(lines, source=source, image=page.image, page_index=page_index, text_type=self.text_type,
                          dt_polys=list(polys if dt_polys is None else dt_polys),
                          textline_orientation_angles=list(angles), doc_angle=page.angle, settings=settings,
                          text_word=words, text_word_region=quads, input_img=page.input_img, rot_img=page.rot_img)

    # ---- whole images ----

    def read(self, image, *, source: str | None = None, page_index: int | None = None) -> OCR3Result:
        """One image (path, bytes, array, PIL image) through every step."""
        _refuse_url(image)
        if source is None and isinstance(image, (str, os.PathLike)):
            source = os.fspath(image)
        page = self.prepare(image)
        polys = self.detect(page.image)
        crops, polys = self.crop(page.image, polys)
        crops, angles = self.orient(crops)
        texts = self.recognize(crops) if crops else []
        return self.assemble(page, polys, angles, texts, source=source, page_index=page_index, crops=crops)

    def read_pdf(self, path, pages: Iterable[int] | None = None) -> list[OCR3Result]:
        """Every page of the PDF (or TIFF: each frame a page) ``path``, or the 1-based ``pages``,
        one result per page."""
        return list(self.iter_pages(path, pages))

    def iter_pages(self, path, pages: Iterable[int] | None = None) -> Iterator[OCR3Result]:
        """``read_pdf``'s results one page at a time: a long document is never held whole, and a
        page that cannot be read (a ``PageError``) comes after the pages before it."""
        _refuse_url(path)
        for index, page in document_pages(path, pages):
            yield self.read(page, source=os.fspath(path), page_index=index)

    def __call__(self, images, pages: Iterable[int] | None = None, **settings):
        """An image -> its result; a PDF or TIFF -> a list with one result per page (``pages``:
        1-based page numbers, default all; paddlex reads every frame of a TIFF); a folder or a
        list -> a flat list of results (``ptocr.inputs``). ``settings``: for this call only
        (``with_settings``)."""
        if settings:
            return self.with_settings(**settings)(images, pages)
        return read_inputs(self, images, pages)

    # ---- PaddleOCR 3.x's calls ----

    def predict_iter(self, input, **settings) -> Iterator[OCR3Result]:
        """PaddleOCR 3.x's ``predict_iter``: one result per image or PDF / TIFF page of ``input``
        (a path, array, folder or list of them), each read when asked for; ``settings`` as 3.x's
        per-call keywords (``use_textline_orientation=False``, ``text_det_thresh=...``)."""
        ocr = self.with_settings(**settings) if settings else self
        yield from iter_inputs(ocr, input)

    def predict(self, input, **settings) -> list[OCR3Result]:
        """PaddleOCR 3.x's ``predict``: ``predict_iter``'s results as a list, even for one image."""
        return list(self.predict_iter(input, **settings))

    def ocr(self, img, **settings) -> list[OCR3Result]:
        """PaddleOCR 3.x's deprecated ``ocr``: ``predict`` (3.7 warns the same way)."""
        warnings.warn("OCR3.ocr is deprecated as PaddleOCR 3.x's is: use predict", DeprecationWarning, stacklevel=2)
        return self.predict(img, **settings)

    def close(self) -> None:
        """PaddleOCR 3.x's ``close()``, which frees its Paddle predictors: here nothing to free (the
        models are PyTorch modules, released with the pipeline), so the pipeline stays usable."""

    def bulk_steps(self) -> Pipeline3Steps:
        return Pipeline3Steps(self)

    def __repr__(self) -> str:
        return (f"OCR3(det={self.det!r}, rec={self.rec!r}, textline={self.textline!r}, doc_ori={self.doc_ori!r}, "
                f"doc_unwarp={self.doc_unwarp!r}, settings={self.settings})")


def bundle_doc_parts(doc_ori, doc_unwarp, settings: dict) -> tuple:
    """A bundle's document parts (orientation, unwarping): each as given, else PaddleOCR 3.x's own
    model where the settings switch its step on (``use_doc_orientation_classify=True``,
    ``use_doc_unwarping=True``)."""
    if doc_ori is None and settings.get("use_doc_orientation_classify"):
        doc_ori = DOC_ORIENTATION_MODEL
    if doc_unwarp is None and settings.get("use_doc_unwarping"):
        doc_unwarp = DOC_UNWARPING_MODEL
    return doc_ori, doc_unwarp


def seal_parts(det, rec, textline, use_textline_orientation, options: dict) -> tuple:
    """(det, rec, textline switch) as SealRecognition fills them: ``SEAL_MODELS``' detector and
    recognizer where neither the part nor its model options are given, no textline step unless a
    textline model, its options or the switch are; lang / ocr_version pick general models only."""
    def given(part):
        return any(options.get(option) is not None for option in MODEL_OPTIONS[part])

    chosen = [key for key in ("lang", "ocr_version") if options.get(key) is not None]
    if chosen:
        raise PtocrError(f"text_type='seal' reads with SealRecognition's models; {' and '.join(chosen)} choose "
                         "general ones: give the recognizer instead (rec= or text_recognition_model_name=)")
    det = det if det is not None or given("det") else SEAL_MODELS[0]
    rec = rec if rec is not None or given("rec") else SEAL_MODELS[1]
    if use_textline_orientation is None and textline is None and not given("textline"):
        use_textline_orientation = False
    return det, rec, use_textline_orientation


def _refuse_seal_word_boxes(text_type: str, settings: dict) -> None:
    if text_type == "seal" and settings.get("return_word_box"):
        raise PtocrError("return_word_box places words along quadrilateral lines: text_type 'seal' has none")


def _merged(base: dict, given: dict) -> dict:
    """``base`` updated by the settings ``given``; one given as None keeps its ``base`` value, as
    PaddleOCR 3.x's ``PaddleOCR(...)`` and ``predict(...)`` take None as "unset" (paddlex's
    get_text_det_params and the like)."""
    unknown = set(given) - set(PADDLEOCR3_DEFAULTS)
    if unknown:
        raise PtocrError(_unknown_settings(sorted(unknown)))
    return {**base, **{k: v for k, v in given.items() if v is not None}}


def _switched(part, switch: bool | None, name: str, what: str):
    """``part`` as PaddleOCR 3.x's switch ``name`` leaves it: None when False, required when True."""
    if switch is None:
        return part
    if switch and part is None:
        raise PtocrError(f"{name}=True needs {what}")
    return part if switch else None


def _per_crop(crops: list, batches, model, post) -> list:
    """``post(model.forward(batch))`` of each batch, put back in crop order."""
    out: list = [None] * len(crops)
    for index, batch in batches:
        for i, res in zip(index, post(model.forward(batch))):
            out[i] = res
    return out


def _unknown_settings(names: list[str]) -> str:
    """The message for settings no pipeline call takes: close names, or where they belong."""
    misplaced = [n for n in names if n in CONSTRUCTOR_OPTIONS]
    if misplaced:
        return (f"unknown settings {names}: {', '.join(misplaced)} are taken when the pipeline is made "
                "(OCR3(...), as PaddleOCR(...)), not per call (predict(...))")
    known = [*PADDLEOCR3_DEFAULTS, *STEP_SWITCHES, *CONSTRUCTOR_OPTIONS]
    close = {n: close_names(n, known, cutoff=0.6) for n in names}
    hints = "; ".join(f"{n}: did you mean {', '.join(c)}?" for n, c in close.items() if c)
    return f"unknown settings {names}" + (f" ({hints})" if hints else f"; known: {sorted(PADDLEOCR3_DEFAULTS)}")


def _refuse_url(source) -> None:
    """paddlex downloads http(s) inputs; ptocr reads nothing from the network itself."""
    if isinstance(source, str) and source.lower().startswith(("http://", "https://")):
        raise ImageError(f"{source}: ptocr does not download inputs; fetch it first (e.g. "
                         "urllib.request.urlretrieve(url, path)) and give the file")
