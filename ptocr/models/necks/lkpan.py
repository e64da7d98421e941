"""LKPAN, the large-kernel PAN neck of the PP-OCRv4 server detector (PaddleOCR
``ppocr/modeling/necks/db_fpn.py``), with its optional IntraCL blocks (``intracl.py``).

Four backbone levels c2..c5 (1/4 .. 1/32):

1. ``ins_conv``: 1x1 convs to ``out_channels``; top-down sum with nearest x2 upsampling.
2. ``inp_conv``: 9x9 convs to ``out_channels // 4`` (mode "large"; "lite" uses DSConv).
3. bottom-up PAN: ``pan_head_conv`` 3x3 stride-2 convs add each level to the next coarser.
4. ``pan_lat_conv``: 9x9 convs on every level; with ``intracl`` each then passes through an
   IntraCL block (``incl1`` on 1/4 .. ``incl4`` on 1/32).
5. nearest upsampling of the coarser levels to 1/4 (x8, x4, x2) and concatenation
   [p5, p4, p3, p2] -> ``out_channels`` channels at 1/4 of the input size.

No conv here has a bias, except inside IntraCL. Nearest upsampling by integer factors
matches Paddle's ``nearest_interp_v2`` (align_corners False) exactly.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from ptocr.errors import ArchitectureError
from ptocr.models.layers import PaddleBatchNorm2d, cat_upsampled, lateral_top_down
from ptocr.models.registry import register



class DSConv(nn.Module):
    """Depthwise kxk conv-BN, 1x1 expand x4 conv-BN-act, 1x1 project conv; a 1x1 shortcut
    conv (``conv_end``) when channels change. LKPAN's "lite" layer."""

    def __init__(self, in_channels, out_channels, kernel_size, padding, stride=1, act="relu"):
        super().__init__()
        if act not in ("relu", "hardswish"):
            raise ArchitectureError(f"DSConv: unknown activation {act!r}")
        self.act = act
        self.conv1 = nn.Conv2d(in_channels, in_channels, kernel_size, stride, padding,
                               groups=in_channels, bias=False)
        self.bn1 = PaddleBatchNorm2d(in_channels)
        self.conv2 = nn.Conv2d(in_channels, in_channels * 4, 1, bias=False)
        self.bn2 = PaddleBatchNorm2d(in_channels * 4)
        self.conv3 = nn.Conv2d(in_channels * 4, out_channels, 1, bias=False)
        self.conv_end = (nn.Conv2d(in_channels, out_channels, 1, bias=False)
                         if in_channels != out_channels else None)

    def forward(self, inputs):
        x = self.bn2(self.conv2(self.bn1(self.conv1(inputs))))
        x = F.relu(x) if self.act == "relu" else F.hardswish(x)
        x = self.conv3(x)
        return x + self.conv_end(inputs) if self.conv_end is not None else x


class IntraCLBlock(nn.Module):
    """Intra-instance collaborative learning block (I3CL): reduce channels by
    ``reduce_factor`` (biased 1x1), three rounds of summed square + vertical + horizontal
    convs (7, 5, 3), restore channels (biased 1x1), BN, ReLU, and add to the input."""

    def __init__(self, in_channels: int = 96, reduce_factor: int = 4):
        super().__init__()
        c = in_channels // reduce_factor
        self.conv1x1_reduce_channel = nn.Conv2d(in_channels, c, 1)
        self.conv1x1_return_channel = nn.Conv2d(c, in_channels, 1)
        for k in (7, 5, 3):
            p = k // 2
            setattr(self, f"v_layer_{k}x1", nn.Conv2d(c, c, (k, 1), padding=(p, 0)))
            setattr(self, f"q_layer_1x{k}", nn.Conv2d(c, c, (1, k), padding=(0, p)))
            setattr(self, f"c_layer_{k}x{k}", nn.Conv2d(c, c, k, padding=p))
        self.bn = PaddleBatchNorm2d(in_channels)

    def forward(self, x):
        y = self.conv1x1_reduce_channel(x)
        for k in (7, 5, 3):
            c = getattr(self, f"c_layer_{k}x{k}")(y)
            v = getattr(self, f"v_layer_{k}x1")(y)
            q = getattr(self, f"q_layer_1x{k}")(y)
            y = c + v + q  # summed in this order, as the program adds them
        y = F.relu(self.bn(self.conv1x1_return_channel(y)))
        return x + y


@register("neck")
class LKPAN(nn.Module):
    """Args:
        in_channels: channels of the four backbone levels (1/4 .. 1/32).
        out_channels: channels of the fused map (256 for PP-OCRv4 server det).
        mode: "large" (plain 9x9 convs) or "lite" (DSConv).
        intracl: add the IntraCL blocks ``incl1..incl4`` (channels ``out_channels // 4``,
            reduce factor 2), as the PP-OCRv4 server detector does.
    """

    def __init__(self, in_channels, out_channels: int, mode: str = "large", intracl: bool = False):
        super().__init__()
        if len(in_channels) != 4:
            raise ArchitectureError(f"LKPAN needs four input levels, got {list(in_channels)}")
        if out_channels % 4:
            raise ArchitectureError(f"LKPAN: out_channels must be a multiple of 4, got {out_channels}")
        mode = mode.lower()
        if mode == "large":
            def p_layer(cin, cout):
                return nn.Conv2d(cin, cout, 9, padding=4, bias=False)
        elif mode == "lite":
            def p_layer(cin, cout):
                return DSConv(cin, cout, 9, padding=4)
        else:
            raise ArchitectureError(f"LKPAN: mode must be 'large' or 'lite', got {mode!r}")
        self.out_channels = out_channels
        self.intracl = intracl
        q = out_channels // 4
        self.ins_conv = nn.ModuleList(nn.Conv2d(c, out_channels, 1, bias=False) for c in in_channels)
        self.inp_conv = nn.ModuleList(p_layer(out_channels, q) for _ in in_channels)
        self.pan_head_conv = nn.ModuleList(
            nn.Conv2d(q, q, 3, stride=2, padding=1, bias=False) for _ in range(len(in_channels) - 1)
        )
        self.pan_lat_conv = nn.ModuleList(p_layer(q, q) for _ in in_channels)
        if intracl:
            self.incl1 = IntraCLBlock(q, reduce_factor=2)
            self.incl2 = IntraCLBlock(q, reduce_factor=2)
            self.incl3 = IntraCLBlock(q, reduce_factor=2)
            self.incl4 = IntraCLBlock(q, reduce_factor=2)

    def forward(self, x):
        in5, out4, out3, out2 = lateral_top_down(self.ins_conv, x)

        f5 = self.inp_conv[3](in5)
        f4 = self.inp_conv[2](out4)
        f3 = self.inp_conv[1](out3)
        f2 = self.inp_conv[0](out2)

        pan3 = f3 + self.pan_head_conv[0](f2)
        pan4 = f4 + self.pan_head_conv[1](pan3)
        pan5 = f5 + self.pan_head_conv[2](pan4)

        p2 = self.pan_lat_conv[0](f2)
        p3 = self.pan_lat_conv[1](pan3)
        p4 = self.pan_lat_conv[2](pan4)
        p5 = self.pan_lat_conv[3](pan5)
        if self.intracl:
            p5 = self.incl4(p5)
            p4 = self.incl3(p4)
            p3 = self.incl2(p3)
            p2 = self.incl1(p2)

        return cat_upsampled([(p5, 8), (p4, 4), (p3, 2), (p2, 1)])
