"""DBFPN, the plain FPN neck of PaddleOCR's v2.0 / PP-OCRv2 detectors (``db_fpn.py``).

The four backbone levels (strides 4, 8, 16, 32) are projected to ``out_channels`` by bias-free
1x1 convs (``in2_conv`` .. ``in5_conv``), merged top-down (nearest x2 upsample, then add), each
merged level is reduced to ``out_channels // 4`` by a bias-free 3x3 conv (``p2_conv`` ..
``p5_conv``), brought to stride 4 by nearest upsampling (x8, x4, x2, x1) and the four are
concatenated coarsest first: ``[p5, p4, p3, p2]``, ``out_channels`` channels at 1/4 scale.

PaddleOCR's optional ASF block (DBNet++, ``use_asf=True``) is used by none of the PP-OCR
models this project converts and is not implemented.
"""

from __future__ import annotations

import torch.nn as nn

from ptocr.errors import ArchitectureError
from ptocr.models.layers import cat_upsampled, lateral_top_down
from ptocr.models.registry import register



@register("neck")
class DBFPN(nn.Module):
    """Args:
        in_channels: the 4 backbone channels, finest level (stride 4) first.
        out_channels: channels of the fused map (96 for ch_ppocr_mobile_v2.0_det and
            ch_PP-OCRv2_det, 256 for the server detector); a multiple of 4.
        use_asf: must be False (see the module docstring).
    """

    def __init__(self, in_channels, out_channels: int, use_asf: bool = False):
        super().__init__()
        in_channels = list(in_channels)
        if len(in_channels) != 4:
            raise ArchitectureError(f"DBFPN needs 4 input levels, got in_channels={in_channels}")
        if out_channels % 4:
            raise ArchitectureError(f"DBFPN: out_channels must be a multiple of 4, got {out_channels}")
        if use_asf:
            raise ArchitectureError("DBFPN: the ASF block (use_asf=True) is not implemented")
        self.out_channels = out_channels
        c = out_channels
        self.in2_conv = nn.Conv2d(in_channels[0], c, 1, bias=False)
        self.in3_conv = nn.Conv2d(in_channels[1], c, 1, bias=False)
        self.in4_conv = nn.Conv2d(in_channels[2], c, 1, bias=False)
        self.in5_conv = nn.Conv2d(in_channels[3], c, 1, bias=False)
        self.p5_conv = nn.Conv2d(c, c // 4, 3, padding=1, bias=False)
        self.p4_conv = nn.Conv2d(c, c // 4, 3, padding=1, bias=False)
        self.p3_conv = nn.Conv2d(c, c // 4, 3, padding=1, bias=False)
        self.p2_conv = nn.Conv2d(c, c // 4, 3, padding=1, bias=False)

    def forward(self, x):
        in5, out4, out3, out2 = lateral_top_down((self.in2_conv, self.in3_conv, self.in4_conv, self.in5_conv), x)
        return cat_upsampled([(self.p5_conv(in5), 8), (self.p4_conv(out4), 4), (self.p3_conv(out3), 2),
                              (self.p2_conv(out2), 1)])
