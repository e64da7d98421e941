"""ClsHead of PaddleOCR's text-direction classifier (ppocr/modeling/heads/cls_head.py)."""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F

from ptocr.models.registry import register


@register("head")
class ClsHead(nn.Module):
    """Global average pool -> Linear. Eval returns N x num_classes probabilities (softmax),
    training returns the logits.

    Args:
        in_channels: channels of the backbone's feature map.
        num_classes: number of classes (Paddle's ``class_dim``; 2 for 0/180 degrees).
    """

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes)
        self.out_channels = num_classes

    def forward(self, x):
        x = self.fc(self.pool(x).flatten(1))
        return x if self.training else F.softmax(x, dim=1)
