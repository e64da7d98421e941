"""Layers several PP-OCR networks share; their Paddle quirks are constructor arguments."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class SEModule(nn.Module):
    """Squeeze-excitation gated by Paddle's ``hard_sigmoid(slope, offset)``.

    PaddleOCR's MobileNetV3 and RSE layers call it with slope 0.2, PP-LCNetV3 with Paddle's
    default 0.1666667 (stored as float32 in the program), never torch's exact 1/6.
    """

    def __init__(self, channels: int, reduction: int = 4, slope: float = 0.2, offset: float = 0.5):
        super().__init__()
        self.slope, self.offset = slope, offset
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv1 = nn.Conv2d(channels, channels // reduction, 1)
        self.conv2 = nn.Conv2d(channels // reduction, channels, 1)

    def forward(self, x):
        s = self.conv2(F.relu(self.conv1(self.avg_pool(x))))
        return x * torch.clamp(s * self.slope + self.offset, 0.0, 1.0)


class LearnableAffineBlock(nn.Module):
    """``scale * x + bias`` with two learnable scalars (shape [1], as Paddle stores them)."""

    def __init__(self, scale_value: float = 1.0, bias_value: float = 0.0):
        super().__init__()
        self.scale = nn.Parameter(torch.full((1,), float(scale_value)))
        self.bias = nn.Parameter(torch.full((1,), float(bias_value)))

    def forward(self, x):
        return self.scale * x + self.bias
