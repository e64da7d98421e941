"""A model by name, converted file or Paddle folder -> a ready predictor (``load_predictor``)."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import torch

from ptocr.checkpoint import model_from_state, read_converted
from ptocr.conversion import convert_paddle, is_paddle_source
from ptocr.errors import PtocrError
from ptocr.manifest import PENDING, load_manifest
from ptocr.models.reparam import fuse_reparameterizable
from ptocr.optimize import compile_for_inference, example_input, for_inference, inference_settings
from ptocr.precision import is_narrow
from ptocr.predictors import Predictor, as_dtype, make_predictor
from ptocr.zoo import resolve

__all__ = ["load_predictor", "is_name"]


def is_name(source: str | os.PathLike) -> bool:
    """A zoo name rather than a path: nothing of that name exists here, no folder separator,
    no model-file suffix (``ch_ppocr_mobile_v2.0_det`` has the "suffix" ``.0_det``)."""
    text = os.fspath(source)
    path = Path(text)
    # os.path.exists, not Path.exists: False for a name too long for the file system, not OSError
    return (isinstance(text, str) and not os.path.exists(text) and "/" not in text and os.sep not in text
            and path.suffix != ".safetensors" and not is_paddle_source(path))


def _named_model_file(name: str) -> tuple[Path, str, str]:
    """(file, sha256, task) of the zoo model ``name``, its weights found and checked by
    ``ptocr.zoo.resolve`` (local zoo folder, Hugging Face cache, official origin)."""
    entry = load_manifest().model_entry(name)  # unknown names: an error suggesting close ones
    if entry.status == PENDING:
        raise PtocrError(f"{name} is listed in the zoo but not available yet: {entry.pending_reason}")
    found = resolve(entry)
    return found.path, found.sha256, entry.task


def load_predictor(
    source: str | os.PathLike,
    *,
    device=None,
    dtype=None,
    fuse: bool = True,
    optimize: bool = True,
    compile: bool = False,
    arch: str | None = None,
    expected_sha256: str | None = None,
    shape_graphs: bool | None = None,
) -> Predictor:
    """Load one model as a ready predictor (``.model`` is the ``torch.nn.Module``).

    Args:
        source: a ``.safetensors`` written by ``ptocr-convert``, a Paddle model folder or
            ``.pdparams`` file (converted in memory), or a model name of the zoo
            (``ptocr.list_models()``), whose weights are used only if their sha256 is the
            manifest's (see ``ptocr.zoo``).
        device, dtype: where and in which precision the model runs (default cpu, float32). On a CPU
            without bfloat16 or float16 instructions that type is emulated, several times slower: a
            warning says so once (``ptocr.cpu_features``).
        fuse, optimize, compile: see below.
        arch: for a Paddle source, as ``ptocr-convert --arch``; None detects it.
        expected_sha256: refuse a ``.safetensors`` file with another sha256.
        shape_graphs: with ``optimize``, run each input shape seen often as a frozen oneDNN
            Graph trace (``ptocr.models.shape_graphs``); None: the model's settings (on for
            the classifiers). Faster for repeated shapes (the v4 recognizer at batch 1 1.7x,
            the v4 detector 1.1-1.2x), but a shape's results change by float32 rounding when its
            graph takes over at its 8th call. Models whose settings rule graphs out (the LSTM
            recognizers, whose graphs leave the parity bound) get none. Without graphs, a
            detector or recognizer replays the eager ops of a shape seen often
            (``ptocr.models.op_replay``): the same values bit for bit, less Python per call.

    Returns:
        A ``DetPredictor``, ``RecPredictor``, ``ClsPredictor`` or ``UnwarpPredictor`` (by the model's task).

    ``fuse``: fuse re-parameterizable layers for inference (numerically equal, faster);
    ``fuse=False`` keeps the modules exactly as converted (and implies ``optimize=False``): a
    training checkpoint's rep-layer branches (PP-LCNetV3, PPLCNetV4), which Paddle trains, stay
    branches only with it (or ``ptocr.create_model(arch, pretrained=file)``).
    ``optimize``: also fold batch norms and rep-layer affines into their convs and run
    activations in place (``ptocr.optimize.for_inference``):
    the same function, float32 outputs equal up to rounding; ``.train()`` on it warns (its batch
    norms no longer normalize by the batch). ``optimize=False`` keeps the converted module
    structure (for training, inspection or parity against Paddle).
    ``compile``: then ``torch.compile`` it (``ptocr.optimize.compile_for_inference``): faster
    calls after a first one that compiles for tens of seconds.
    """
    if os.fspath(source) in ("", b""):  # Path("") is the current folder
        raise PtocrError("empty model name: give a zoo name (ptocr list), a .safetensors file or a Paddle model folder")
    if shape_graphs and not (fuse and optimize and not compile):  # graphs run in the optimized eager model only
        raise PtocrError(f"{source}: shape_graphs=True needs the optimized model (fuse and optimize, no compile)")
    path = Path(source)
    task = None
    if is_name(source):
        path, pinned, task = _named_model_file(os.fspath(source))
        if expected_sha256 is not None and pinned is not None and expected_sha256 != pinned:
            raise PtocrError(f"{source}: the zoo's file has sha256 {pinned}, expected {expected_sha256}")
        expected_sha256 = expected_sha256 or pinned
    if path.suffix == ".safetensors":
        if arch is not None:  # a converted file names its architecture: arch would be ignored
            raise PtocrError(f"{os.fspath(source)}: arch is for a Paddle source (converted on load), "
                             "not a converted model")
        conv = read_converted(path, expected_sha256=expected_sha256)
        model = model_from_state(conv.config["model"], conv.state_dict, where=str(path))
        config, dictionary = conv.config, conv.dictionary
    elif is_paddle_source(path):
        if expected_sha256 is not None:  # it would go unchecked
            raise PtocrError(f"{path}: expected_sha256 checks a .safetensors file, not a Paddle source")
        result = convert_paddle(path, arch)
        model, config, dictionary = result.model, result.config, result.dictionary
    else:
        missing = "" if os.path.exists(path) else "no such file or folder; "  # False, not OSError, for a name too long
        raise PtocrError(f"{path}: {missing}expected a .safetensors file, a Paddle model folder or file (.pdmodel, "
                         ".pdiparams, .json, .pdparams, .onnx, or Paddle's path prefix) or a zoo model name")
    if task is not None and config["task"] != task:
        raise PtocrError(f"{path}: a {config['task']} model, but {source} is a {task} model")
    # What ptocr.save_model writes for it (as create_model sets them): with optimize=False the
    # module is trainable, and a fine-tuned copy saves without repeating its config.
    model.config, model.dictionary = copy.deepcopy(config), dictionary
    model.source = os.fspath(source)  # named in errors: ptocr.create_model(arch, pretrained=source)
    dtype = as_dtype(dtype)
    if fuse and not optimize:
        if dtype == torch.float64:  # fused in float64, not in float32 and then widened
            model.double()
        fuse_reparameterizable(model)
    # The predictor first: it validates the settings and casts the weights to one dtype. Folding
    # for a float16 / bfloat16 model is done on the float32 weights, which are then rounded once.
    fold_wide = fuse and optimize and is_narrow(dtype)
    predictor = make_predictor(model.eval(), config, dictionary, device=device,
                               dtype=torch.float32 if fold_wide else dtype, where=str(path))
    if fuse and optimize:
        example = example_input(config, dtype=predictor.dtype, device=predictor.device)
        settings = inference_settings(config, shape_graphs=shape_graphs)
        predictor.model = for_inference(predictor.model, example, inplace=True, **settings)
    if fold_wide:
        predictor.to(dtype=dtype)
    if compile:
        predictor.model = compile_for_inference(predictor.model)
    return predictor
