"""RSEFPN, the FPN neck of the PP-OCRv3/v4 mobile detectors (PaddleOCR ``db_fpn.py``).

Four levels (1/4 .. 1/32) are projected to ``out_channels`` by 1x1 RSE layers (``ins_conv``),
merged top-down with nearest x2 upsampling, reduced to ``out_channels // 4`` by 3x3 RSE layers
(``inp_conv``), brought to 1/4 scale by nearest upsampling and concatenated: the output has
``out_channels`` channels at 1/4 of the input size.
"""

from __future__ import annotations

import torch.nn as nn

from ptocr.errors import ArchitectureError
from ptocr.models.layers import SEModule, cat_upsampled, lateral_top_down
from ptocr.models.registry import register


class RSELayer(nn.Module):
    """Bias-free conv followed by SE, with an optional residual around the SE."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, shortcut: bool = True):
        super().__init__()
        self.out_channels = out_channels
        self.in_conv = nn.Conv2d(in_channels, out_channels, kernel_size,
                                 padding=kernel_size // 2, bias=False)
        self.se_block = SEModule(out_channels)
        self.shortcut = shortcut

    def forward(self, x):
        x = self.in_conv(x)
        return x + self.se_block(x) if self.shortcut else self.se_block(x)



@register("neck")
class RSEFPN(nn.Module):
    """Args:
        in_channels: the 4 backbone channels, finest level first.
        out_channels: channels of the fused map (96 for PP-OCRv4 mobile det).
        shortcut: residual around each SE.
    """

    def __init__(self, in_channels, out_channels: int, shortcut: bool = True):
        super().__init__()
        in_channels = list(in_channels)
        if len(in_channels) != 4:
            raise ArchitectureError(f"RSEFPN needs 4 input levels, got in_channels={in_channels}")
        if out_channels % 4:
            raise ArchitectureError(f"RSEFPN: out_channels must be a multiple of 4, got {out_channels}")
        self.out_channels = out_channels
        self.ins_conv = nn.ModuleList(
            RSELayer(c, out_channels, 1, shortcut) for c in in_channels
        )
        self.inp_conv = nn.ModuleList(
            RSELayer(out_channels, out_channels // 4, 3, shortcut) for _ in in_channels
        )

    def forward(self, x):
        in5, out4, out3, out2 = lateral_top_down(self.ins_conv, x)

        return cat_upsampled([(self.inp_conv[3](in5), 8), (self.inp_conv[2](out4), 4),
                              (self.inp_conv[1](out3), 2), (self.inp_conv[0](out2), 1)])
