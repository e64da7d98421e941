"""PP-LCNet (the classification network of PaddleClas / PaddleX), as the PP-OCR
orientation classifiers use it: ``PP-LCNet_x0_25_textline_ori``, ``PP-LCNet_x1_0_textline_ori``
(0 / 180 degrees, 80 x 160 input) and ``PP-LCNet_x1_0_doc_ori`` (0 / 90 / 180 / 270, 224 x 224).

Structure (read from the exported programs): a 3x3 stride-2 ConvBN-hardswish stem, five
stages of depthwise-separable blocks (depthwise kxk ConvBN-hardswish, optional SE,
pointwise ConvBN-hardswish), global average pool, a bias-free 1x1 "class expand" conv to
1280 channels, hardswish, dropout, flatten. The classifier Linear is the head (``ClsHead``).

Paddle quirks kept as arguments:

* ``stride_list``: the stem and the first block of stages 3-6; the text-line models use
  ``(2, 1)`` (halve the height only) so an 80 x 160 line keeps its width.
* the SE gate is Paddle's ``hardsigmoid`` default (slope 0.1666667 stored as float32, offset 0.5).
* dropout is Paddle's ``mode="downscale_in_infer"``: at inference the features are
  multiplied by ``1 - p`` (not an identity as in torch), which changes the logits.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ptocr.errors import ArchitectureError
from ptocr.models.layers import PADDLE_HARDSIGMOID_SLOPE, ConvBNAct, SEModule, int_pair, make_divisible
from ptocr.models.registry import register

# Per stage: (kernel, in channels, out channels, stride index or 1, SE), before scaling.
# "s" marks the stage's downsampling block, whose stride comes from ``stride_list``.
NET_CONFIG = {
    "blocks2": [(3, 16, 32, 1, False)],
    "blocks3": [(3, 32, 64, "s", False), (3, 64, 64, 1, False)],
    "blocks4": [(3, 64, 128, "s", False), (3, 128, 128, 1, False)],
    "blocks5": [(3, 128, 256, "s", False)] + [(5, 256, 256, 1, False)] * 5,
    "blocks6": [(5, 256, 512, "s", True), (5, 512, 512, 1, True)],
}
_STAGES = ("blocks2", "blocks3", "blocks4", "blocks5", "blocks6")


def _conv_bn_hardswish(in_channels: int, out_channels: int, kernel_size: int, stride=1,
                       groups: int = 1) -> ConvBNAct:
    """PP-LCNet's ConvBNLayer: bias-free conv -> BN -> hardswish (named ``hardswish``)."""
    return ConvBNAct(in_channels, out_channels, kernel_size, int_pair(stride), groups=groups,
                     act="hardswish", act_name="hardswish")


class DepthwiseSeparable(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride, use_se: bool):
        super().__init__()
        self.dw_conv = _conv_bn_hardswish(in_channels, in_channels, kernel_size, stride, groups=in_channels)
        self.se = SEModule(in_channels, reduction=4, slope=PADDLE_HARDSIGMOID_SLOPE, offset=0.5) if use_se else None
        self.pw_conv = _conv_bn_hardswish(in_channels, out_channels, 1)

    def forward(self, x):
        x = self.dw_conv(x)
        if self.se is not None:
            x = self.se(x)
        return self.pw_conv(x)


class DownscaleDropout(nn.Module):
    """Paddle's ``Dropout(p, mode="downscale_in_infer")``: training drops without
    rescaling, inference multiplies by ``1 - p``."""

    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ArchitectureError(f"dropout probability must be in [0, 1), got {p}")
        self.p = float(p)

    def forward(self, x):
        if self.training:
            return x * (torch.rand_like(x) >= self.p).to(x.dtype)
        return x * (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}, mode=downscale_in_infer"


@register("backbone")
class PPLCNet(nn.Module):
    """PP-LCNet feature extractor up to the 1280-channel "class expand" features.

    Args:
        scale: width multiplier (0.25, 0.35, 0.5, 0.75, 1.0, ...).
        stride_list: strides of the stem and of the first block of stages 3-6; an int or
            an (h, w) pair each. ImageNet-style models: ``[2, 2, 2, 2, 2]``; PP-OCR's
            text-line orientation models: ``[2, [2, 1], [2, 1], [2, 1], [2, 1]]``.
        class_expand: channels of the last 1x1 conv (1280).
        dropout_prob: Paddle's dropout before the classifier (0.2, ``downscale_in_infer``).
        in_channels: image channels (3).
    """

    def __init__(self, scale: float = 1.0, stride_list=(2, 2, 2, 2, 2), class_expand: int = 1280,
                 dropout_prob: float = 0.2, in_channels: int = 3):
        super().__init__()
        if len(stride_list) != 5:
            raise ArchitectureError(f"stride_list needs 5 strides (stem + stages 3-6), got {stride_list!r}")
        self.scale = scale
        strides = [int_pair(s) for s in stride_list]
        self.conv1 = _conv_bn_hardswish(in_channels, make_divisible(16 * scale), 3, strides[0])
        for i, stage in enumerate(_STAGES):
            blocks = []
            for k, cin, cout, s, se in NET_CONFIG[stage]:
                stride = strides[i] if s == "s" else (1, 1)
                blocks.append(DepthwiseSeparable(make_divisible(cin * scale), make_divisible(cout * scale), k, stride, se))
            setattr(self, stage, nn.Sequential(*blocks))
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        last = make_divisible(NET_CONFIG["blocks6"][-1][2] * scale)
        self.last_conv = nn.Conv2d(last, class_expand, 1, bias=False)
        self.hardswish = nn.Hardswish()
        self.dropout = DownscaleDropout(dropout_prob)
        self.out_channels = class_expand

    def forward(self, x):
        x = self.conv1(x)
        for stage in _STAGES:
            x = getattr(self, stage)(x)
        x = self.hardswish(self.last_conv(self.avg_pool(x)))
        return self.dropout(x)  # N x class_expand x 1 x 1 (the head pools and flattens)
