"""The runtime's one door to the converter: a Paddle source (model folder, ``.pdparams``)
becomes a model here, in memory or as a converted file.

Everything else in ``ptocr`` reads converted files. The converter (``converter``) builds its
models from the runtime's architectures, so the runtime imports it only here, and only when a
Paddle source is actually given: the dependency points one way, conversion -> runtime.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for annotations only: no import of the converter at run time
    from converter.convert import Conversion

__all__ = ["PADDLE_SUFFIXES", "convert_paddle", "convert_once", "is_paddle_source", "write_transformers_checkpoint",
           "read_training_tensors", "map_tensors"]

# Files that name a source model converted on load (a folder names one too): Paddle's and
# ONNX files exported from Paddle programs. The converter's reader takes each (or, for
# .pdopt / .states, says which file to give instead).
PADDLE_SUFFIXES = (".pdparams", ".pdmodel", ".pdiparams", ".json", ".onnx", ".pdopt", ".states")


def is_paddle_source(path: Path) -> bool:
    """``path`` is what the converter reads (``converter.readers.formats.detect_format``): a model
    folder, one of its files (``inference.pdiparams.info`` and ``inference.yml`` included, any
    file prefix), an ONNX export, or Paddle's path prefix (``dir/inference`` for
    ``dir/inference.pdmodel`` / ``.json``)."""
    # os.path's checks, not pathlib's: a name too long for the file system is no source, not an OSError
    path = Path(path)
    if os.path.isdir(path) or path.suffix in PADDLE_SUFFIXES or path.name.endswith(".pdiparams.info"):
        return True
    if path.suffix == ".yml" and os.path.isfile(path.with_suffix(".json")):  # inference.yml beside its program
        return True
    return any(os.path.isfile(path.with_name(path.name + s)) for s in (".pdmodel", ".json")) if path.name else False


def convert_paddle(src: str | os.PathLike, arch: str | None = None) -> Conversion:
    """Convert the Paddle model ``src`` in memory (``converter.convert.convert``): its model,
    config and dictionary. ``arch`` as for ``ptocr-convert --arch``; None detects it."""
    from converter.convert import convert

    return convert(src, arch)


def convert_once(src: str | os.PathLike, dst: str | os.PathLike, *, arch: str | None = None,
                 log: Callable[[str], None] | None = None) -> Path:
    """Convert the Paddle model ``src`` to the file ``dst`` (.safetensors, with config and
    dictionary beside it) unless ``dst`` exists; returns ``dst``. ``arch`` as for
    ``convert_paddle`` (a manifest model name gives its dictionary and settings)."""
    from converter.writer import write_converted

    dst = Path(dst)
    if not dst.exists():
        conv = convert_paddle(src, arch)  # first: a source that fails leaves no folder behind
        dst.parent.mkdir(parents=True, exist_ok=True)
        dic = conv.dictionary.text() if conv.dictionary is not None else None
        written = write_converted(conv.state_dict, conv.config, dic, dst)
        if log is not None:
            log(f"converted {Path(src).name} ({conv.arch_name}) -> {dst} sha256 {written.sha256[:12]}")
    return dst


def write_transformers_checkpoint(state: dict, config: dict, classes: list[str] | None,
                                  dst: str | os.PathLike, *, force: bool = False) -> Path:
    """Write a fused converted model (its state dict and ptocr config; a recognizer's classes:
    blank, characters, space) as the Hugging Face transformers checkpoint folder ``dst``
    (``converter.transformers_checkpoint``)."""
    from converter.transformers_checkpoint import write_transformers_folder

    return write_transformers_folder(state, config, classes, dst, force=force)


def read_training_tensors(src: str | os.PathLike, submodel: str | None = None) -> dict:
    """``{name: numpy array}`` of the PaddleOCR training checkpoint ``src`` (``.pdparams``, read
    without pickle by the converter's reader; a distillation checkpoint's ``submodel``, the
    Student by default), or ``PtocrError`` where ``src`` is another kind of Paddle model."""
    from converter.readers import read_source
    from converter.readers.formats import PADDLE_TRAIN
    from ptocr.errors import PtocrError

    source = read_source(src, submodel=submodel)
    if source.format != PADDLE_TRAIN:
        raise PtocrError(f"{src}: not a PaddleOCR training checkpoint (.pdparams)")
    return source.tensors


def map_tensors(tensors: dict, rules, module, what: str) -> dict:
    """``tensors`` renamed by ``rules`` (``(pattern, replacement or None to drop, reason)``) onto
    ``module``'s state dict by the converter's mapping engine: every tensor placed, every shape
    checked, Linear weights transposed by the target module's type; ``PtocrError`` naming what
    does not fit."""
    from converter.mapping import Rule, Target, apply

    mapped = apply(tensors, [Rule(*rule) for rule in rules], Target.from_module(module), what=what)
    return mapped.state_dict
