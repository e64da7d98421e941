"""ptocr's public entry points, in the habits of timm and docTR: list what exists, create a
network, load a ready predictor or pipeline by name, file or Paddle folder."""

from __future__ import annotations

import copy
import os
import warnings

from ptocr.architectures import canonical_name, get_architecture
from ptocr.architectures import list_architectures as _registered
from ptocr.errors import ArchitectureError, PtocrError
from ptocr.loading import is_name, load_predictor
from ptocr.manifest import list_models as _manifest_models
from ptocr.manifest import load_manifest
from ptocr.models.build import build_model
from ptocr.models.heads.db_head import DBHead
from ptocr.models.model import OCRModel
from ptocr.bundles import load_bundle
from ptocr.pipeline import OCR
from ptocr.pipeline3 import OCR3
from ptocr.predictors import Predictor

__all__ = ["create_model", "list_architectures", "list_models", "load"]


def list_architectures(task: str | None = None) -> list[str]:
    """The registered architectures (``ptocr-convert --list``), sorted.

    Args:
        task: ``"det"``, ``"rec"`` or ``"cls"`` to list one task's only.
    """
    return _registered(task)


def list_models(pattern: str | None = None, *, task: str | None = None, include_bundles: bool = False) -> list[str]:
    """The zoo's model names (``weights_manifest.json``), sorted.

    Args:
        pattern: a glob (``"*_rec"``, ``"*PP-OCRv3*"``) or, without wildcards, a
            case-insensitive substring (``"french"``).
        task: ``"det"``, ``"rec"`` or ``"cls"`` to list one task's only.
        include_bundles: also list the pipeline bundles (``ch_PP-OCRv4``).
    """
    return _manifest_models(pattern, task=task, include_bundles=include_bundles)


def load(source: str | os.PathLike, *, device=None, dtype=None, fuse: bool = True, optimize: bool = True,
         compile: bool = False, arch: str | None = None, expected_sha256: str | None = None,
         shape_graphs: bool | None = None, lang: str | None = None, **settings) -> Predictor | OCR | OCR3:
    """A ready predictor, or a whole pipeline for a bundle name.

    Args:
        source: a converted ``.safetensors``, a Paddle model folder or ``.pdparams`` file
            (converted in memory), a zoo model name (``"ch_PP-OCRv4_rec"``) or a zoo bundle
            name (``"ch_PP-OCRv4"``).
        device, dtype, fuse, optimize, compile, arch, expected_sha256, shape_graphs: as
            ``ptocr.loading.load_predictor`` takes them (a bundle takes device, dtype,
            optimize and compile).
        lang: a bundle of PaddleOCR 3.x's rules only: the language code whose recognizer
            PaddleOCR 3.x runs (``lang="fr"``: latin_PP-OCRv5_mobile_rec).
        **settings: a bundle's pipeline settings, as PaddleOCR names them (3.x:
            ``return_word_box=True``, ``text_det_box_thresh=0.5``, ...; 2.x: ``drop_score``).

    Returns:
        For a bundle name, the pipeline its rules name: ``OCR`` (PaddleOCR 2.x, ``ch_PP-OCRv4``)
        or ``OCR3`` (PaddleOCR 3.x, ``PP-OCRv5_server``, ``PP-OCRv5_mobile``); for anything else
        a ``DetPredictor``, ``RecPredictor``, ``ClsPredictor`` or ``UnwarpPredictor`` (UVDoc).
    """
    if is_name(source) and os.fspath(source) in load_manifest().bundles:
        if shape_graphs is not None:  # a pipeline promises the same results whatever it read before
            raise PtocrError(f"{source}: shape_graphs is for one model; load the models with it and pass them to the pipeline")
        given = [k for k, v in (("fuse", fuse is not True), ("arch", arch), ("expected_sha256", expected_sha256)) if v]
        if given:  # a bundle would ignore them
            raise PtocrError(f"{source}: {', '.join(given)} are for one model; load the models with them and pass them "
                             "to the pipeline")
        return load_bundle(os.fspath(source), lang=lang, device=device, dtype=dtype, optimize=optimize,
                           compile=compile, **settings)
    if lang is not None or settings:
        given = sorted(settings) + (["lang"] if lang is not None else [])
        raise PtocrError(f"{source}: {', '.join(given)} are settings of a pipeline bundle, not of one model")
    return load_predictor(source, device=device, dtype=dtype, fuse=fuse, optimize=optimize, compile=compile,
                          arch=arch, expected_sha256=expected_sha256, shape_graphs=shape_graphs)


def create_model(name: str, *, pretrained: bool | str | os.PathLike = False,
                 num_classes: int | None = None) -> OCRModel:
    """The network ``name`` as a ``torch.nn.Module`` (``OCRModel``: backbone, neck, head), in
    the structure Paddle trains it in (no inference rewrites), in eval mode.

    Args:
        name: a registered architecture (``list_architectures()``) or a zoo model name
            (``list_models()``: its architecture with that model's settings, e.g. the class
            count of its dictionary).
        pretrained: ``False``: freshly initialised weights; ``True``: the zoo model's trained
            weights, found and checked as ``ptocr.load`` finds them; a path: the weights of that
            ``.safetensors`` file or Paddle folder, which must be of this architecture. A
            detector from an inference program gets a freshly initialised threshold branch
            (the program has none; training runs it), with a warning.
        num_classes: with ``pretrained=False``, the classifier's or recognizer's class count
            (a recognizer: blank + dictionary + space).

    Returns:
        The model; ``model.train()`` to fine-tune it.
    """
    models = load_manifest().models
    if pretrained is False:
        if name in models:
            entry = load_manifest().model_entry(name)
            cfg = copy.deepcopy(get_architecture(entry.architecture)["model"])
            for part, args in entry.arguments.items():
                cfg[part].update(args)
        else:
            cfg = get_architecture(name)["model"]
        if num_classes is not None:
            if "num_classes" not in cfg["head"]:
                raise ArchitectureError(f"{name} is a detector: it has no class count")
            cfg["head"]["num_classes"] = int(num_classes)
        return build_model(cfg).eval()
    if num_classes is not None:
        raise PtocrError("num_classes goes with pretrained=False: trained weights fix the class count")
    if pretrained is True:
        if name not in models:
            raise PtocrError(f"{name!r} is not a zoo model, so it has no pretrained weights; "
                             f"zoo models of this architecture: {_models_of(name, models) or 'none'}")
        return _trainable(load_predictor(name, fuse=False, optimize=False).model, True)
    predictor = load_predictor(pretrained, fuse=False, optimize=False)
    want = canonical_name(models[name]["architecture"] if name in models else name)
    got = canonical_name(predictor.config["architecture"])
    if got != want:
        raise ArchitectureError(f"{os.fspath(pretrained)} holds a {got} model, not {name} ({want})")
    return _trainable(predictor.model, pretrained)


def _trainable(model: OCRModel, source) -> OCRModel:
    """``model`` with what training runs and an inference program leaves out: a DB head's
    threshold branch, freshly initialised (a training checkpoint holds a trained one)."""
    heads = [m for m in model.modules() if isinstance(m, DBHead) and m.thresh is None]
    for head in heads:
        head.add_threshold_branch()
    if heads:
        warnings.warn(f"{os.fspath(source) if source is not True else 'the zoo weights'}: an inference program "
                      "holds no threshold branch of the DB head; it starts freshly initialised (convert the "
                      "training checkpoint, best_accuracy.pdparams, for a trained one)", UserWarning, stacklevel=3)
    return model


def _models_of(arch: str, models: dict) -> str:
    try:
        arch = canonical_name(arch)
    except ArchitectureError:
        return ""
    return ", ".join(sorted(n for n, e in models.items() if canonical_name(e["architecture"]) == arch))
