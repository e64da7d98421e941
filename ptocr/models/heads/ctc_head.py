"""CTCHead of PaddleOCR's recognizers (ppocr/modeling/heads/rec_ctc_head.py).

In the PP-OCRv3/v4 ``MultiHead`` this is the ``ctc_head`` branch; here it is the model's head.
"""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F

from ptocr.models.registry import register


@register("head")
class CTCHead(nn.Module):
    """Per-step classifier over a N x T x C sequence.

    Eval returns N x T x num_classes probabilities (softmax over classes, what the Paddle
    inference program outputs); training returns the logits for the CTC loss.

    Args:
        in_channels: C of the sequence.
        num_classes: blank + dictionary (+ space), Paddle's ``out_channels``.
        mid_channels: if set, two Linears ``fc1`` (C -> mid) and ``fc2`` (mid -> classes)
            with no activation between them, as in Paddle; else one Linear ``fc``.
    """

    def __init__(self, in_channels: int, num_classes: int, mid_channels: int | None = None):
        super().__init__()
        self.mid_channels = mid_channels
        if mid_channels is None:
            self.fc = nn.Linear(in_channels, num_classes)
        else:
            self.fc1 = nn.Linear(in_channels, mid_channels)
            self.fc2 = nn.Linear(mid_channels, num_classes)
        self.out_channels = num_classes

    def forward(self, x):
        x = self.fc(x) if self.mid_channels is None else self.fc2(self.fc1(x))
        return x if self.training else F.softmax(x, dim=2)
