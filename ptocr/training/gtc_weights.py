"""The GTC branch's weights from a PaddleOCR training checkpoint (``.pdparams``).

A recognizer's checkpoint holds MultiHead's whole state: the CTC branch (``backbone.*``,
``head.ctc_encoder.*``, ``head.ctc_head.*``), which ``ptocr.create_model(arch, pretrained=path)``
converts, and the training-only GTC branch (``head.before_gtc.*`` + ``head.gtc_head.*``, or
``head.sar_head.*``), read here onto ``MultiHeadTraining.branch``. The file goes through the
converter's pickle-free reader (distillation checkpoints: the Student by default) and its
mapping engine (every tensor placed, every shape checked, Linear weights transposed by the
target module's type).
"""

from __future__ import annotations

import os

import torch
from torch import nn

from ptocr.errors import PtocrError

# Paddle name -> branch name; None drops. Order matters: the first matching drop ends a name.
GTC_RULES = (
    # PositionalEncoding's sinusoid table is a persistable buffer in Paddle, recomputed here.
    (r"^head\.gtc_head\.positional_encoding\.pe$", None, "NRTR's sinusoid table: a constant, recomputed"),
    (r"^head\.(before_gtc|gtc_head|sar_head)\.", r"\1.", "MultiHead's GTC branch keeps PaddleOCR's names"),
    (r"^(backbone|neck)\.", None, "the CTC network: ptocr.create_model(arch, pretrained=path) reads it"),
    (r"^head\.(ctc_encoder|ctc_head|encoder_reshape)\.", None, "the CTC network: ptocr.create_model reads it"),
)
_BRANCH_PREFIXES = ("head.before_gtc.", "head.gtc_head.", "head.sar_head.")


def load_gtc_branch(branch: nn.Module, path: str | os.PathLike, submodel: str | None = None) -> None:
    """Fill ``branch`` (``MultiHeadTraining.branch``) from the checkpoint at ``path``, or raise
    ``PtocrError`` naming what does not fit (a checkpoint without the branch, a head of another
    dictionary size, tensors of another architecture)."""
    from converter.mapping import Rule, Target, apply
    from converter.readers import read_source
    from converter.readers.formats import PADDLE_TRAIN

    source = read_source(path, submodel=submodel)
    if source.format != PADDLE_TRAIN:
        raise PtocrError(f"{path}: not a training checkpoint; the GTC branch is only in PaddleOCR's .pdparams")
    tensors = source.tensors
    if not any(name.startswith(_BRANCH_PREFIXES) for name in tensors):
        raise PtocrError(f"{path}: holds no GTC branch (no head.before_gtc.* / head.gtc_head.* / head.sar_head.* "
                         "tensors): an inference export or a CTC-only model has none; train the branch from "
                         "scratch (MultiHeadTraining's fresh weights) instead")
    rules = [Rule(pattern, replacement, reason) for pattern, replacement, reason in GTC_RULES]
    try:
        mapped = apply(tensors, rules, Target.from_module(branch), what=f"{path}'s GTC branch")
    except PtocrError as e:
        raise PtocrError(f"{e}\n(a shape that differs in the class dimension means the checkpoint's dictionary "
                         "differs from the recognizer's head)") from None
    state = {k: torch.from_numpy(v.copy()) for k, v in mapped.state_dict.items()}
    branch.load_state_dict(state, strict=True)
