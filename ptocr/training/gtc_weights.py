"""The GTC branch's weights from a PaddleOCR training checkpoint (``.pdparams``).

A recognizer's checkpoint holds MultiHead's whole state: the CTC branch (``backbone.*``,
``head.ctc_encoder.*``, ``head.ctc_head.*``), which ``ptocr.create_model(arch, pretrained=path)``
converts, and the training-only GTC branch (``head.before_gtc.*`` + ``head.gtc_head.*``, or
``head.sar_head.*``), read here onto ``MultiHeadTraining.branch``. The file goes through the
converter's pickle-free reader (distillation checkpoints: the Student by default) and its
mapping engine, through ``ptocr.conversion`` (the runtime's one door to the converter): every
tensor placed, every shape checked, Linear weights transposed by the target module's type.
:data:`GTC_RULES` is the one mapping of the branch's PaddleOCR names (the SAR head's included).
"""

from __future__ import annotations

import os

import torch
from torch import nn

from ptocr.conversion import map_tensors, read_training_tensors
from ptocr.errors import PtocrError

# Paddle name -> branch name; None drops. Order matters: the first matching drop ends a name.
GTC_RULES = (
    # PositionalEncoding's sinusoid table is a persistable buffer in Paddle, recomputed here.
    (r"^head\.gtc_head\.positional_encoding\.pe$", None, "NRTR's sinusoid table: a constant, recomputed"),
    # paddle.nn.LSTM / GRU's state dict holds each weight twice: under torch's name (weight_ih_l0,
    # ..._reverse) and under its cell's (0.cell.weight_ih; 0.cell_fw. / 0.cell_bw. when
    # bidirectional), the same tensor. The first is the nn.LSTM / nn.GRU's own; the second is dropped.
    (r"^head\.sar_head\.(encoder\.rnn_encoder|decoder\.rnn_decoder)\.\d+\.cell(_fw|_bw)?\.", None,
     "SAR's RNNs: paddle's second name for each weight (its cell's), a copy of weight_ih_l0 etc."),
    (r"^head\.(before_gtc|gtc_head|sar_head)\.", r"\1.", "MultiHead's GTC branch keeps PaddleOCR's names"),
    (r"^(backbone|neck)\.", None, "the CTC network: ptocr.create_model(arch, pretrained=path) reads it"),
    (r"^head\.(ctc_encoder|ctc_head|encoder_reshape)\.", None, "the CTC network: ptocr.create_model reads it"),
)
_BRANCH_PREFIXES = ("head.before_gtc.", "head.gtc_head.", "head.sar_head.")


def load_gtc_branch(branch: nn.Module, path: str | os.PathLike, submodel: str | None = None) -> None:
    """Fill ``branch`` (``MultiHeadTraining.branch``) from the checkpoint at ``path``, or raise
    ``PtocrError`` naming what does not fit (a checkpoint without the branch, a head of another
    dictionary size, tensors of another architecture)."""
    try:
        tensors = read_training_tensors(path, submodel=submodel)
    except PtocrError as e:
        raise PtocrError(f"{e}; the GTC branch is only in PaddleOCR's training checkpoints") from None
    if not any(name.startswith(_BRANCH_PREFIXES) for name in tensors):
        raise PtocrError(f"{path}: holds no GTC branch (no head.before_gtc.* / head.gtc_head.* / head.sar_head.* "
                         "tensors): an inference export or a CTC-only model has none; train the branch from "
                         "scratch (MultiHeadTraining's fresh weights) instead")
    try:
        mapped = map_tensors(tensors, GTC_RULES, branch, what=f"{path}'s GTC branch")
    except PtocrError as e:
        raise PtocrError(f"{e}\n(a shape that differs in the class dimension means the checkpoint's dictionary "
                         "differs from the recognizer's head)") from None
    state = {k: torch.from_numpy(v.copy()) for k, v in mapped.items()}
    branch.load_state_dict(state, strict=True)
