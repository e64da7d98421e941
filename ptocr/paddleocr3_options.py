"""paddleocr 3.7's ``PaddleOCR(**options)`` as ``OCR3``'s arguments: which models its model-name,
model-folder, ``lang`` and ``ocr_version`` options pick, its ``device`` / ``precision``, the 2.x
names it still takes, and Paddle's engine options (taken where they change nothing read, else
refused with what to do instead). Sources: paddleocr/_pipelines/ocr.py and _common_args.py,
paddlex's OCR.yaml; the table in doc/pipeline.md ("Moving a PaddleOCR 3.x script").
"""

from __future__ import annotations

import functools
import numbers
import warnings

from ptocr.errors import PtocrError, close_names
from ptocr.languages import PPOCRV3_ONLY_LANGUAGES, PPOCRV6_LANGUAGES, bundle_parts, languages
from ptocr.manifest import load_manifest

__all__ = ["CONSTRUCTOR_OPTIONS", "DOC_ORIENTATION_MODEL", "DOC_UNWARPING_MODEL", "ENGINE_OPTIONS", "INPUT_SHAPE_OPTIONS",
           "MODEL_OPTIONS", "PRECISIONS", "cpu_threads_choice", "current_names", "engine_choice", "input_shapes",
           "model_parts", "paddleocr3_model_names", "torch_device"]

RULES = "paddleocr3"  # the pipeline rules of OCR3's zoo bundles (weights_manifest.json)
# The document preprocessor's models in paddlex 3.7's OCR.yaml.
DOC_ORIENTATION_MODEL = "PP-LCNet_x1_0_doc_ori"
DOC_UNWARPING_MODEL = "UVDoc"

# Each of OCR3's parts and the (model name, model folder) options that give it in 3.x.
MODEL_OPTIONS = {
    "det": ("text_detection_model_name", "text_detection_model_dir"),
    "rec": ("text_recognition_model_name", "text_recognition_model_dir"),
    "textline": ("textline_orientation_model_name", "textline_orientation_model_dir"),
    "doc_ori": ("doc_orientation_classify_model_name", "doc_orientation_classify_model_dir"),
    "doc_unwarp": ("doc_unwarping_model_name", "doc_unwarping_model_dir"),
}
# The models paddlex 3.7's OCR.yaml names for parts not given (det and rec when some model option
# is given; lang / ocr_version pick them otherwise).
YAML_MODELS = {"det": "PP-OCRv6_medium_det", "rec": "PP-OCRv6_medium_rec", "textline": "PP-LCNet_x1_0_textline_ori",
               "doc_ori": DOC_ORIENTATION_MODEL, "doc_unwarp": DOC_UNWARPING_MODEL}
# PaddleOCR 2.x names paddleocr 3.7 still takes, each for its 3.x name (with a deprecation warning).
DEPRECATED_NAMES = {
    "det_model_dir": "text_detection_model_dir", "det_limit_side_len": "text_det_limit_side_len",
    "det_limit_type": "text_det_limit_type", "det_db_thresh": "text_det_thresh",
    "det_db_box_thresh": "text_det_box_thresh", "det_db_unclip_ratio": "text_det_unclip_ratio",
    "rec_model_dir": "text_recognition_model_dir", "rec_batch_num": "text_recognition_batch_size",
    "use_angle_cls": "use_textline_orientation", "cls_model_dir": "textline_orientation_model_dir",
    "cls_batch_num": "textline_orientation_batch_size",
}
# paddleocr 3.7's ocr_version values, each with the zoo bundle whose det (and, for ch, rec) it runs.
VERSION_BUNDLES = {"PP-OCRv3": "PP-OCRv3_mobile", "PP-OCRv4": "PP-OCRv4_mobile", "PP-OCRv5": "PP-OCRv5_server",
                   "PP-OCRv6": "PP-OCRv6_medium"}
OCR_VERSIONS = tuple(VERSION_BUNDLES)

ANY = object()  # an engine option taken whatever its value
_FASTER = "for speed here: compile=True, or export the models (ptocr export)"
# Paddle engine options -> (values taken: they change nothing ptocr reads, what to do otherwise).
# enable_mkldnn / mkldnn_cache_capacity pick Paddle's CPU kernels: any value reads the same text.
ENGINE_OPTIONS = {
    "enable_mkldnn": (ANY, ""),
    "mkldnn_cache_capacity": (ANY, ""),
    "enable_hpi": ((None, False), f"high-performance inference is a PaddleX engine; {_FASTER}"),
    "use_tensorrt": ((None, False), f"TensorRT is a Paddle Inference subgraph engine; {_FASTER}"),
    "enable_cinn": ((None, False), f"CINN is Paddle's compiler; {_FASTER}"),
    "engine": ((None, "paddle", "paddle_static", "paddle_dynamic"), f"ptocr runs the models in PyTorch; {_FASTER}"),
    "engine_config": ((None,), "Paddle engine settings have no PyTorch counterpart: drop it"),
    "paddlex_config": ((None,), "give its settings as options: OCR3(text_det_thresh=..., "
                                "text_detection_model_dir=..., ...)"),
}
# paddleocr 3.7's precisions: the TensorRT engine's only (its pptrt_precision), so without
# use_tensorrt=True, which ptocr refuses, neither changes a number.
PRECISIONS = ("fp32", "fp16")
_PRECISION_NOTE = ("precision='fp16' changes nothing here, as in PaddleOCR 3.x without use_tensorrt=True (it is the "
                   "TensorRT engine's precision); for ptocr's half precision give dtype='float16'")
# paddleocr 3.7's (C, H, W) options that fix a model's input size (paddlex's input_shape).
INPUT_SHAPE_OPTIONS = {"det": "text_det_input_shape", "rec": "text_rec_input_shape"}
# Paddle's device kinds PyTorch has no backend for (Paddle's "xpu" is Kunlunxin, not torch's Intel XPU).
PADDLE_ONLY_DEVICES = frozenset({"npu", "xpu", "mlu", "dcu", "gcu", "iluvatar_gpu", "metax_gpu"})
# Options of PaddleOCR(...) only: predict(...) does not take them.
CONSTRUCTOR_OPTIONS = frozenset({*(n for pair in MODEL_OPTIONS.values() for n in pair), "lang", "ocr_version",
                                 "device", "precision", "cpu_threads", *ENGINE_OPTIONS, *INPUT_SHAPE_OPTIONS.values(),
                                 *DEPRECATED_NAMES})


def current_names(options: dict) -> dict:
    """``options`` with PaddleOCR 2.x's names that 3.7 still takes under their 3.x names (with 3.7's
    deprecation warning); an old and a new name both set is 3.7's "mutually exclusive" error."""
    out = dict(options)
    for old, new in DEPRECATED_NAMES.items():
        if old not in out:
            continue
        value = out.pop(old)
        warnings.warn(f"{old} is deprecated in PaddleOCR 3.x; use {new}", DeprecationWarning, stacklevel=3)
        if value is not None and out.get(new) is not None:
            raise PtocrError(f"{old} and {new} are mutually exclusive: give {new} only")
        if value is not None:
            out[new] = value
    return out


def engine_choice(options: dict, device, dtype) -> tuple:
    """(device, dtype) from 3.x's ``device``, Paddle's engine options taken where they change
    nothing and refused with what to do otherwise, ``precision`` checked as 3.x checks it and
    then without effect (all popped from ``options``)."""
    for name, (taken, instead) in ENGINE_OPTIONS.items():
        if name in options:
            value = options.pop(name)
            if taken is not ANY and value not in taken:
                raise PtocrError(f"OCR3 does not take PaddleOCR's {name}={value!r}: {instead}")
    precision = options.pop("precision", None)
    if precision is not None and precision not in PRECISIONS:
        raise PtocrError(f"precision={precision!r}: PaddleOCR 3.x's precisions are {', '.join(PRECISIONS)}")
    if precision == "fp16":
        _warn_once(_PRECISION_NOTE)
    return torch_device(device), dtype


@functools.cache
def _warn_once(message: str) -> None:
    """``message`` as a warning, the first time only in this process (a server building one
    pipeline per request would repeat it at every build)."""
    warnings.warn(message, stacklevel=4)


def cpu_threads_choice(options: dict) -> int | None:
    """3.x's ``cpu_threads`` (popped from ``options``): None when not given, else checked as a
    thread count for ``torch.set_num_threads``."""
    threads = options.pop("cpu_threads", None)
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or threads < 1:
        raise PtocrError(f"cpu_threads={threads!r}: give a number of threads, at least 1")
    return int(threads)  # numpy's integers too, as for the input shapes


def input_shapes(options: dict) -> dict:
    """3.x's ``text_det_input_shape`` / ``text_rec_input_shape`` (popped from ``options``) as
    ``{"det": (C, H, W) or None, "rec": ...}``, each checked to be 3 positive ints."""
    return {part: _input_shape(name, options.pop(name, None)) for part, name in INPUT_SHAPE_OPTIONS.items()}


def _input_shape(name: str, value) -> tuple[int, int, int] | None:
    if value is None:
        return None
    try:
        shape = tuple(value)
    except TypeError:
        shape = ()
    if (isinstance(value, (str, bytes)) or len(shape) != 3
            or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0 for v in shape)):
        raise PtocrError(f"{name}={value!r}: give (C, H, W), three positive ints")
    return tuple(int(v) for v in shape)


def torch_device(device):
    """PaddleOCR 3.x's device names ("gpu", "gpu:1", "cpu") as PyTorch's ("cuda", "cuda:1", "cpu");
    anything else as given (a torch.device, "cuda:0", "mps")."""
    if not isinstance(device, str):
        return device
    if "," in device:
        raise PtocrError(f"device={device!r}: ptocr reads on one device; build one pipeline per device "
                         "(device='cuda:0', device='cuda:1')")
    kind, colon, index = device.partition(":")
    if kind == "gpu":
        return f"cuda{colon}{index}"
    if kind in PADDLE_ONLY_DEVICES:
        raise PtocrError(f"device={device!r} is a Paddle device PyTorch has no backend for; give 'cpu' or 'gpu:N'")
    return device


def model_parts(given: dict, options: dict, switches: dict) -> dict:
    """OCR3's parts (det, rec, textline, doc_ori, doc_unwarp): those given, else 3.x's model options
    (popped from ``options``). With neither det nor rec given, the rest as PaddleOCR 3.x fills it:
    det / rec by lang and ocr_version (or OCR.yaml's where some model option is set), the textline
    model unless switched off; the document models where their switch is True (ptocr's default
    leaves document preprocessing off, doc/pipeline.md)."""
    named = {part: _model_source(options.pop(n, None), options.pop(d, None), n)
             for part, (n, d) in MODEL_OPTIONS.items()}
    lang, version = options.pop("lang", None), options.pop("ocr_version", None)
    for part, source in named.items():
        if source is not None and given[part] is not None:
            raise PtocrError(f"{part} is given twice: as {part}= and as {' / '.join(MODEL_OPTIONS[part])}")
    parts = {part: given[part] if given[part] is not None else named[part] for part in given}
    by_paddleocr3 = given["det"] is None and given["rec"] is None
    if not by_paddleocr3 or named["det"] is not None or named["rec"] is not None:
        if lang is not None or version is not None:
            warnings.warn("lang and ocr_version are not used: the models are given (as in PaddleOCR 3.x)",
                          stacklevel=3)
    else:
        parts["det"], parts["rec"] = paddleocr3_model_names(lang, version)
    if not by_paddleocr3:
        return parts
    for part in ("det", "rec"):
        parts[part] = parts[part] or YAML_MODELS[part]
    if parts["textline"] is None and switches["textline"] is not False:
        parts["textline"] = YAML_MODELS["textline"]
    for part in ("doc_ori", "doc_unwarp"):
        if parts[part] is None and switches[part]:
            parts[part] = YAML_MODELS[part]
    return parts


def _model_source(name: str | None, folder, option: str):
    """What a part's (model name, model folder) options load: the folder where given (paddlex
    reads it whatever the name), else the zoo model of that name."""
    if folder is not None:
        return folder
    if name is None:
        return None
    known = load_manifest().models
    if name not in known:
        close = close_names(name, known)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise PtocrError(f"{option}={name!r} is not a model of ptocr's zoo{hint}; give the Paddle model folder as "
                         f"{option.replace('_name', '_dir')}=... (`ptocr list` shows the zoo)")
    return name


def paddleocr3_model_names(lang: str | None, ocr_version: str | None) -> tuple[str, str]:
    """(det, rec): the zoo models paddleocr 3.7's ``PaddleOCR(lang=, ocr_version=)`` runs
    (``_get_ocr_model_names``); a clear error where 3.x has none or ptocr's zoo lacks them."""
    if ocr_version is not None and ocr_version not in OCR_VERSIONS:
        close = close_names(str(ocr_version), OCR_VERSIONS)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise PtocrError(f"ocr_version={ocr_version!r} is not one of PaddleOCR 3.x's {', '.join(OCR_VERSIONS)}{hint}")
    version = ocr_version or _version_for(lang)
    parts = bundle_parts(VERSION_BUNDLES[version], lang)  # unknown or unsupported codes: its error
    return parts["det"], parts["rec"]


def _version_for(lang: str | None) -> str:
    """The generation paddleocr 3.7 picks for ``lang`` when ocr_version is not given."""
    if lang is None or lang in PPOCRV6_LANGUAGES:
        return "PP-OCRv6"
    if lang in PPOCRV3_ONLY_LANGUAGES:
        return "PP-OCRv3"
    if lang in languages():
        return "PP-OCRv5"
    bundle_parts(VERSION_BUNDLES["PP-OCRv5"], lang)  # raises: not a language code, with close ones
    raise PtocrError(f"lang {lang!r} is not one of PaddleOCR 3.x's language codes")
