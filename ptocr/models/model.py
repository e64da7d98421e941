"""The one network shape every PP-OCR model has: backbone -> (neck) -> head."""

from __future__ import annotations

import torch
import torch.nn as nn

from ptocr.models.shape_graphs import ShapeGraphs


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

    def __init__(self, backbone: nn.Module, neck: nn.Module | None, head: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.neck = neck
        self.head = head

    def forward(self, x: torch.Tensor):
        if self.shape_graphs is not None:
            return self.shape_graphs(self, x, self._eager)
        return self._eager(x)

    def _eager(self, x: torch.Tensor):
        x = self.backbone(x)
        if self.neck is not None:
            x = self.neck(x)
        return self.head(x)
