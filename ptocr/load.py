"""``ptocr.load``: a converted .safetensors file or a Paddle model folder -> predictor."""

from __future__ import annotations

import os
from pathlib import Path

from ptocr.checkpoint import model_from_state, read_converted
from ptocr.errors import PtocrError
from ptocr.models.backbones.pplcnetv3 import fuse_rep_layers
from ptocr.predictors import Predictor, make_predictor

PADDLE_SUFFIXES = (".pdparams", ".pdmodel", ".pdiparams", ".json")


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

    ``source``: a ``.safetensors`` written by ``ptocr-convert``, or a Paddle model folder /
    ``.pdparams`` file (converted in memory; ``arch`` as for ``ptocr-convert --arch``).
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
        raise PtocrError(
            f"{source!r} is neither a file nor a folder; model names are resolved by the zoo, "
            "which is not available yet: give a .safetensors file or a Paddle model folder"
        )
    else:
        raise PtocrError(f"{path}: expected a .safetensors file or a Paddle model folder")
    if fuse:
        fuse_rep_layers(model)
    return make_predictor(model.eval(), config, dictionary, device=device, dtype=dtype)
