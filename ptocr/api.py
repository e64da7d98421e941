"""ptocr's public entry points, in the habits of timm and docTR: list what exists, create a
network, load a ready predictor or pipeline by name, file or Paddle folder."""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path

import torch
import torch.nn as nn

from ptocr.atomic import OutputError, failure_reason
from ptocr.architectures import canonical_name, get_architecture, with_overrides
from ptocr.architectures import list_architectures as _registered
from ptocr.checkpoint import check_config, check_destination, model_from_state, write_model_file
from ptocr.dictionary import Dictionary, read_dictionary
from ptocr.errors import ArchitectureError, PtocrError
from ptocr.loading import is_name, load_predictor
from ptocr.manifest import list_models as _manifest_models
from ptocr.manifest import load_manifest
from ptocr.models.build import build_model
from ptocr.models.conv_activation import ConvActivation2d
from ptocr.models.heads.db_head import DBHead
from ptocr.models.model import OCRModel
from ptocr.bundles import load_bundle
from ptocr.pipeline import OCR
from ptocr.pipeline3 import OCR3
from ptocr.predictors import Predictor

__all__ = ["create_model", "list_architectures", "list_models", "load", "save_model"]


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
                 num_classes: int | None = None, expected_sha256: str | None = None) -> OCRModel:
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
        num_classes: the classifier's or recognizer's class count (a recognizer: blank +
            dictionary + space); with trained weights, their last Linear is replaced by a freshly
            initialised one of this size (a new dictionary: pass it to ``save_model``).
        expected_sha256: with trained weights, refuse a weights file with another sha256 (as
            ``ptocr.load``): a training checkpoint chosen by its hash, replaced since by a save.

    Returns:
        The model; ``model.train()`` to fine-tune it, ``ptocr.save_model`` to write it as a file
        ``ptocr.load`` reads. ``model.config`` / ``model.dictionary``: what that file will hold.
    """
    if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int)
                                    or num_classes < 2):
        raise PtocrError(f"num_classes must be an integer of at least 2 (a recognizer's blank and one character, "
                         f"a classifier's two labels), got {num_classes!r}")
    models = load_manifest().models
    if pretrained is False and expected_sha256 is not None:
        raise PtocrError(f"{name}: expected_sha256 checks a weights file, and pretrained=False reads none")
    if pretrained is False:
        entry = load_manifest().model_entry(name) if name in models else None
        cfg, dictionary = _zoo_settings(entry) if entry is not None else (get_architecture(name)["model"], None)
        if num_classes is not None:
            _head_classes(name, cfg)
            cfg["head"]["num_classes"] = int(num_classes)
            dictionary = None
        model = build_model(cfg).eval()
        model.config, model.dictionary = _fresh_config(name, cfg, entry), dictionary
        return model
    if pretrained is True:
        if name not in models:
            raise PtocrError(f"{name!r} is not a zoo model, so it has no pretrained weights; "
                             f"zoo models of this architecture: {_models_of(name, models) or 'none'}")
        predictor = load_predictor(name, fuse=False, optimize=False, expected_sha256=expected_sha256)
    else:
        predictor = load_predictor(pretrained, fuse=False, optimize=False, expected_sha256=expected_sha256)
        want = canonical_name(models[name]["architecture"] if name in models else name)
        got = canonical_name(predictor.config["architecture"])
        if got != want:
            raise ArchitectureError(f"{os.fspath(pretrained)} holds a {got} model, not {name} ({want})")
    model = _trainable(predictor.model, pretrained)  # its config and dictionary set by load_predictor
    if num_classes is not None:
        _reset_classifier(model, name, int(num_classes))
    return model


def _zoo_settings(entry) -> tuple[dict, Dictionary | None]:
    """The zoo model's network description (its architecture's, with the entry's arguments) and
    its dictionary; a recognizer's head sized by that dictionary (blank + characters + space),
    as converting the model's weights sizes it."""
    cfg = with_overrides(get_architecture(entry.architecture)["model"], entry.arguments)
    dictionary = entry.builtin_dictionary()
    if dictionary is not None:
        _head_classes(entry.name, cfg)
        cfg["head"]["num_classes"] = dictionary.num_classes
    return cfg, dictionary


def _head_classes(name: str, cfg: dict) -> None:
    if "num_classes" not in cfg["head"]:
        raise ArchitectureError(f"{name} is a {cfg['head']['name']} model: it has no class count to change")


def _reset_classifier(model: OCRModel, name: str, num_classes: int) -> None:
    """timm's ``reset_classifier``: the head's last Linear (``fc``, or ``fc2`` after ``fc1``)
    freshly initialised with ``num_classes`` outputs; the trained dictionary no longer fits."""
    _head_classes(name, model.config["model"])
    head = model.head
    attr = "fc2" if isinstance(getattr(head, "fc2", None), nn.Linear) else "fc"
    old = getattr(head, attr, None)
    if not isinstance(old, nn.Linear):
        raise ArchitectureError(f"{name}: its head {type(head).__name__} has no last Linear to replace")
    if num_classes != old.out_features:
        setattr(head, attr, nn.Linear(old.in_features, num_classes).to(old.weight.device, old.weight.dtype))
        head.out_channels = num_classes
        model.config["model"]["head"]["num_classes"] = num_classes
        model.dictionary = None


def _fresh_config(name: str, cfg: dict, entry) -> dict:
    """The model-file config of a freshly built ``name`` (``ptocr-convert``'s, without a source)."""
    arch = canonical_name(entry.architecture if entry is not None else name)
    spec = get_architecture(arch)
    config = {"architecture": arch, "task": spec["task"], "model": copy.deepcopy(cfg),
              "preprocess": {**spec.get("preprocess", {}), **(entry.preprocess if entry else {})},
              "postprocess": {**spec.get("postprocess", {}), **(entry.postprocess if entry else {})}}
    if entry is not None:
        config["model_name"] = entry.name
        if entry.inference:
            config["inference"] = dict(entry.inference)
        if entry.dictionary and "use_space_char" in entry.dictionary:
            config["dictionary"] = {"use_space_char": bool(entry.dictionary["use_space_char"])}
    return config


def save_model(model: nn.Module, dst: str | os.PathLike, *, dictionary=None, use_space_char: bool | None = None,
               config: dict | None = None, force: bool = False) -> Path:
    """Write ``model`` (from ``create_model``, fine-tuned) as ``ptocr-convert`` writes a model:
    ``dst`` (.safetensors, with the config and dictionary in its metadata) and beside it
    ``<stem>.config.json`` and ``<stem>.dict.txt``. ``ptocr.load``, ``ptocr.OCR(rec=...)`` and
    ``ptocr export`` take the file.

    Args:
        model: an ``OCRModel`` in its training structure (or wrapped by ``torch.compile``,
            ``DataParallel`` or ``DistributedDataParallel``); not one ``ptocr.load`` optimized.
        dst: the ``.safetensors`` path; its folder must exist.
        dictionary: a recognizer's new dictionary: a file (one character a line), a list of
            characters or a ``ptocr.dictionary.Dictionary``; default ``model.dictionary``.
        use_space_char: whether " " is the last class; default the model's setting (else True).
        config: the model-file config; default ``model.config``, which ``create_model`` and
            ``ptocr.load`` set (with ``optimize=False``, the predictor's ``.model`` saves as it is).
            The file records the rep layers' form the weights are in: fused where ``ptocr.load``
            fused them (its default ``fuse=True``) or ``reparameterize()`` did, else the branches.
        force: overwrite existing files.
    """
    model = _unwrapped(model)
    config = copy.deepcopy(config if config is not None else getattr(model, "config", None))
    if not isinstance(model, OCRModel) or not isinstance(config, dict) or "model" not in config:
        raise PtocrError("save_model needs a model from ptocr.create_model or ptocr.load(..., optimize=False), "
                         "or config= (a predictor's .config)")
    if any(isinstance(m, ConvActivation2d) for m in model.modules()):
        raise PtocrError("an optimized model (ptocr.load's default) has its batch norms folded; save the one "
                         "create_model or ptocr.load(..., optimize=False) gives")
    _sync_structure(model, config)
    dic = _dictionary_for(model, config, dictionary, use_space_char)
    state = {k: (v.float() if v.dtype == torch.float64 else v).detach().to("cpu", copy=True).contiguous()
             for k, v in model.state_dict().items()}
    where, text = os.fspath(dst), (dic.text() if dic is not None else None)
    check_destination(dst, force=force)
    try:
        check_config(config, text)
    except ValueError as e:
        raise PtocrError(f"{where}: the config is not a model file's ({e})") from None
    model_from_state(config["model"], state, where=where)  # ptocr.load would refuse what fails here
    try:
        write_model_file(state, config, text, dst)
    except OutputError:
        raise
    except OSError as e:  # a folder that takes no files, a full disk: named, still an OSError
        raise OutputError(dst, failure_reason(e), e.errno) from e
    return Path(dst)


def _unwrapped(model: nn.Module) -> nn.Module:
    while True:  # torch.compile's OptimizedModule, DataParallel, DistributedDataParallel
        inner = getattr(model, "_orig_mod", None)
        inner = getattr(model, "module", None) if inner is None else inner
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def _sync_structure(model: OCRModel, config: dict) -> None:
    """The config told what the module is now: a threshold branch added, a head resized, rep
    layers fused."""
    head_cfg = config["model"]["head"]
    if isinstance(model.head, DBHead):
        head_cfg["with_thresh"] = model.head.thresh is not None
    if "num_classes" in head_cfg:
        head_cfg["num_classes"] = int(model.head.out_channels)
    config["model"] = _rep_form_of(model, config)


def _rep_form_of(model: OCRModel, config: dict) -> dict:
    """``config["model"]`` in the rep form (the architecture's ``forms["rep"]``: fused as an
    inference program, or the training branches) whose weights are the module's: ``ptocr.load``
    fuses by default, and ``reparameterize()`` fuses in place, neither rewriting the config."""
    try:
        forms = get_architecture(config.get("architecture") or "")["forms"]["rep"]
    except (ArchitectureError, KeyError):  # no rep layers, or an architecture of no registered name
        return config["model"]
    keys = set(model.state_dict())
    for overrides in forms.values():
        described = with_overrides(config["model"], overrides)
        if set(build_model(described, device="meta").state_dict()) == keys:
            return described
    return config["model"]  # neither form: model_from_state names the keys that do not fit


def _dictionary_for(model: OCRModel, config: dict, dictionary, use_space_char: bool | None):
    """A recognizer's dictionary, checked against its head; the config's entry describing it."""
    if config.get("task") != "rec":
        if dictionary is not None:
            raise PtocrError(f"a {config.get('task')} model has no dictionary")
        return None
    space = (config.get("dictionary") or {}).get("use_space_char", True) if use_space_char is None else use_space_char
    if isinstance(dictionary, Dictionary):
        dic = dictionary if use_space_char is None else Dictionary(dictionary.characters, space, dictionary.source)
    elif isinstance(dictionary, (str, os.PathLike)):
        dic = read_dictionary(dictionary, bool(space))
    elif isinstance(dictionary, (list, tuple)):
        dic = Dictionary(tuple(str(c) for c in dictionary), bool(space), "<list>")
    elif dictionary is None and model.dictionary is not None:
        dic = Dictionary(model.dictionary.characters, bool(space), model.dictionary.source)
    else:
        raise PtocrError("a recognizer needs its dictionary: save_model(..., dictionary=<file or list of characters>)")
    dic.check_fits(int(model.head.out_channels))
    config["dictionary"] = {"use_space_char": dic.use_space_char, "num_characters": len(dic.characters),
                            "sha256": dic.sha256(), "source": Path(dic.source).name}
    return dic


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
