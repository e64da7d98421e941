"""UVDoc's head: bridge features -> the 2-channel sampling mesh (x, y in [-1, 1] for ``grid_sample``).

paddlex 3.7.2 (``UVDocHead``): a 1x1 conv + batch norm + ReLU joins the six bridges, then a 5x5
conv + batch norm + PReLU (one slope) and a biased 5x5 conv to 2 channels, both padding by
reflection. The mesh is applied by ``ptocr.postprocess.unwarp``.
"""

from __future__ import annotations

import torch.nn as nn

from ptocr.models.backbones.uvdoc import ConvNormAct
from ptocr.models.registry import register


class _PointPositions(nn.Module):
    def __init__(self, in_channels: int, mid_channels: int, kernel_size: int, padding_mode: str):
        super().__init__()
        pad = kernel_size // 2
        self.conv_down = ConvNormAct(in_channels, mid_channels, kernel_size, 1, pad, activation="prelu",
                                     padding_mode=padding_mode)
        self.conv_up = nn.Conv2d(mid_channels, 2, kernel_size, 1, pad, padding_mode=padding_mode)

    def forward(self, x):
        return self.conv_up(self.conv_down(x))


@register("head")
class UVDocHead(nn.Module):
    """N x C x h x w bridge features -> N x 2 x h x w mesh.

    Args:
        in_channels: the concatenated bridges' channels (768).
        hidden_channels: after the 1x1 join (128); mid_channels: before the last conv (32).
        kernel_size, padding_mode: of the two mesh convs (5, "reflect").
    """

    def __init__(self, in_channels: int, hidden_channels: int = 128, mid_channels: int = 32, kernel_size: int = 5,
                 padding_mode: str = "reflect"):
        super().__init__()
        self.bridge_connector = ConvNormAct(in_channels, hidden_channels, 1)
        self.out_point_positions2D = _PointPositions(hidden_channels, mid_channels, kernel_size, padding_mode)
        self.out_channels = 2

    def forward(self, x):
        return self.out_point_positions2D(self.bridge_connector(x))
