"""The one network shape every PP-OCR model has: backbone -> (neck) -> head."""

from __future__ import annotations

import warnings

import torch
import torch.nn as nn

from ptocr.errors import ImageError
from ptocr.models.heads.db_head import NoThresholdBranch
from ptocr.models.shape_graphs import ShapeGraphs


class InputShapeError(ImageError, ValueError):
    """A model's input that is not N x C x H x W with the model's C."""


def _input_channels(backbone: nn.Module) -> int | None:
    """The channels the backbone's stem conv takes (3 for every PP-OCR network); None for a
    backbone without convs (a test's ``nn.Identity`` before a neck)."""
    stem = next((m for m in backbone.modules() if isinstance(m, nn.Conv2d)), None)
    return None if stem is None else stem.in_channels


class OCRModel(nn.Module):
    """Backbone, optional neck and head, named as PaddleOCR's ``BaseModel`` names them.

    In ``eval()`` mode the output is what the Paddle inference program outputs:
    det -> probability map N x 1 x H x W, rec -> class probabilities N x T x C,
    cls -> class probabilities N x C. Input is normalized float NCHW.
    """

    # Set by ptocr.optimize.for_inference where a model's settings ask for it: for the input shapes
    # it sees often, frozen oneDNN Graph traces (the direction classifiers) or replays of its eager
    # ops (the detectors and recognizers; ptocr.models.op_replay).
    shape_graphs: ShapeGraphs | None = None
    # Set by ptocr.create_model: what ptocr.save_model writes beside the weights (the model file's
    # config, and a recognizer's ptocr.dictionary.Dictionary); plain attributes, not state.
    config: dict | None = None
    dictionary = None
    # Set by ptocr.loading: the file, Paddle folder or zoo name the weights came from (for errors).
    source: str | None = None
    # Set by ptocr.optimize.for_inference: batch norms folded, parameters frozen, activations in
    # place. train() then warns (once): training it would train another network than Paddle's.
    inference_only: bool = False
    # The channels an input has (the stem conv's; None: not known); a class default for models
    # pickled before it.
    in_channels: int | None = 3
    _warned_training = False

    def __init__(self, backbone: nn.Module, neck: nn.Module | None, head: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.neck = neck
        self.head = head
        self.in_channels = _input_channels(backbone)

    def train(self, mode: bool = True):
        if mode and self.inference_only and not self._warned_training:
            self._warned_training = True
            # A warning, not an error: training mode for dropout at inference (MC dropout) still works.
            warnings.warn("this model is optimized for inference (ptocr.load's default): its parameters are "
                          "frozen, some activations overwrite their input and (unless its settings keep them) "
                          "its batch norms are folded into the convs, so training it trains another network "
                          f"than Paddle's; train {self._trainable_call()} gives, or ptocr.load(..., "
                          "optimize=False).model", UserWarning, stacklevel=2)
        return super().train(mode)

    def forward(self, x: torch.Tensor):
        # ~1 us a call; deep inside, a wrong rank or channel count fails as "Dimension out of range"
        # or a oneDNN descriptor error. Not while tracing: there the sizes are tensors (a
        # TracerWarning for each comparison) and the trace would keep the check as a constant.
        if not torch.jit.is_tracing() and (not isinstance(x, torch.Tensor) or x.dim() != 4
                                           or x.shape[1] != (self.in_channels or x.shape[1])):
            raise InputShapeError(self._input_problem(x))
        if self.training:  # never a shape graph's
            return self._training_forward(x)
        if self.shape_graphs is not None:
            return self.shape_graphs(self, x, self._eager)
        return self._eager(x)

    def _input_problem(self, x) -> str:
        c = self.in_channels or "C"
        expected = f"expected a float tensor N x {c} x H x W (batch, {c} channels, height, width)"
        if not isinstance(x, torch.Tensor):
            return f"{expected}, got {type(x).__name__}"
        hint = "; add the batch dimension: x[None] or x.unsqueeze(0)" if x.dim() == 3 else ""
        return f"{expected}, got shape {list(x.shape)}{hint}"

    def _training_forward(self, x: torch.Tensor):
        try:
            return self._eager(x)
        except NoThresholdBranch as e:  # the head cannot name the way to a model with the branch
            raise NoThresholdBranch(f"{e}; train the model {self._trainable_call()} gives (it adds one)") from None

    def _trainable_call(self) -> str:
        """The ``ptocr.create_model`` call giving this network with its training branches."""
        config = self.config or {}
        if self.source is not None and self.source == config.get("model_name"):  # loaded by zoo name
            return f"ptocr.create_model({self.source!r}, pretrained=True)"
        arch = repr(config["architecture"]) if "architecture" in config else "ARCH"
        weights = repr(self.source) if self.source is not None else "FILE"
        return f"ptocr.create_model({arch}, pretrained={weights})"

    def _eager(self, x: torch.Tensor):
        x = self.backbone(x)
        if self.neck is not None:
            x = self.neck(x)
        return self.head(x)
