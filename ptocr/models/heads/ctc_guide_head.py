"""The CTC head with its guide layer, PP-OCRv6 tiny's recognizer head (``CTCHead`` with
``use_guide: true`` and ``mid_channels``, behind a "reshape" neck).

Before the two Linears, a local "guide" block runs along the sequence: a depthwise conv of
width 5 (``conv1``, no bias) -> batch norm ``norm1`` -> hardswish -> a 1x1 conv (``conv2``, no
bias) -> ``norm2`` -> hardswish (PaddleOCR's ``guide_layer`` Sequential: its indices 0, 1, 3, 4
hold conv1, norm1, conv2, norm2). Without it a port of the tiny recognizer reads badly: its
classifier was trained on these features, not on the backbone's.

The classifier is ``fc1`` (C -> mid) then ``fc`` (mid -> classes; PaddleOCR's ``fc2``), no
activation between them, softmax in eval.
"""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F

from ptocr.models.layers import PaddleBatchNorm1d
from ptocr.models.registry import register


@register("head")
class CTCGuideHead(nn.Module):
    """Args:
        in_channels: C of the N x T x C sequence.
        num_classes: blank + dictionary (+ space).
        mid_channels: the first Linear's width.
        guide_kernel: width of the guide block's depthwise conv.
    """

    def __init__(self, in_channels: int, num_classes: int, mid_channels: int, guide_kernel: int = 5):
        super().__init__()
        self.conv1 = nn.Conv1d(in_channels, in_channels, guide_kernel, padding=guide_kernel // 2,
                               groups=in_channels, bias=False)
        self.norm1 = PaddleBatchNorm1d(in_channels)
        self.conv2 = nn.Conv1d(in_channels, in_channels, 1, bias=False)
        self.norm2 = PaddleBatchNorm1d(in_channels)
        self.fc1 = nn.Linear(in_channels, mid_channels)
        self.fc = nn.Linear(mid_channels, num_classes)
        self.out_channels = num_classes

    def forward(self, x):  # N x T x C
        g = x.transpose(1, 2)
        g = F.hardswish(self.norm1(self.conv1(g)))
        g = F.hardswish(self.norm2(self.conv2(g)))
        x = self.fc(self.fc1(g.transpose(1, 2)))
        return x if self.training else F.softmax(x, dim=2)
