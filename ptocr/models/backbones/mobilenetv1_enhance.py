"""MobileNetV1Enhance, the recognition backbone of PP-OCRv2 (CRNN-style, with a BiLSTM neck)
and PP-OCRv3 (SVTR-LCNet, with the SVTR encoder of a MultiHead), as PaddleOCR's
``rec_mv1_enhance.py`` builds it.

The network is MobileNetV1 made for text lines: a stride-2 stem, 13 depthwise-separable blocks
(depthwise kxk conv-BN-hardswish, optional squeeze-excitation, pointwise 1x1 conv-BN-hardswish)
that downsample only the height (strides (2, 1)) after the stem, and a final 2x2 pooling.
For a 3 x 32 x W input (PP-OCRv2) the map is 512 x 1 x W/4; PP-OCRv3 feeds 3 x 48 x W and sets
``last_conv_stride=(1, 2)`` and ``last_pool_type="avg"``, giving 512 x 1 x W/8.

Facts read from the real inference programs (ch_PP-OCRv2_rec, PP-OCRv3 rec in all languages):

* every conv is bias-free and followed by a Paddle ``BatchNorm(act="hard_swish")``, i.e. a
  batch norm with eps 1e-5 fused with hardswish (threshold 6, scale 6, offset 3: torch's
  ``Hardswish``);
* the two SE blocks (the last two blocks) gate with Paddle's default ``hard_sigmoid``
  (slope 0.1666667 as float32, offset 0.5), not the 0.2 of MobileNetV3;
* the classifier-free tail: the backbone ends with the pooling; nothing else is stored.

Attribute names follow PaddleOCR so structured names map 1:1: ``conv1._conv``,
``conv1._batch_norm``, ``block_list.<i>._depthwise_conv``, ``block_list.<i>._se.conv1``,
``block_list.<i>._pointwise_conv``.
"""

from __future__ import annotations

import torch.nn as nn

from ptocr.errors import ArchitectureError
from ptocr.models.layers import PADDLE_HARDSIGMOID_SLOPE, ConvBNAct, SEModule, int_pair
from ptocr.models.registry import register

# The 13 depthwise-separable blocks before width scaling:
# (depthwise channels, pointwise out channels, stride, kernel, SE).
# The last block's stride is the ``last_conv_stride`` argument (None here).
BLOCKS = (
    (32, 64, 1, 3, False),
    (64, 128, 1, 3, False),
    (128, 128, 1, 3, False),
    (128, 256, (2, 1), 3, False),
    (256, 256, 1, 3, False),
    (256, 512, (2, 1), 3, False),
    *[(512, 512, 1, 5, False)] * 5,
    (512, 1024, (2, 1), 5, True),
    (1024, 1024, None, 5, True),
)


def _conv_bn_hardswish(in_channels: int, out_channels: int, kernel_size: int, stride=1,
                       groups: int = 1) -> ConvBNAct:
    """Bias-free conv, then batch norm with hardswish (Paddle's ``BatchNorm(act=...)``), under
    Paddle's names ``_conv`` / ``_batch_norm``."""
    return ConvBNAct(in_channels, out_channels, kernel_size, stride, groups=groups, act="hardswish",
                     conv_name="_conv", bn_name="_batch_norm")


class DepthwiseSeparable(nn.Module):
    """Depthwise kxk (stride here) -> optional SE -> pointwise 1x1."""

    def __init__(self, in_channels: int, dw_channels: int, out_channels: int, stride,
                 kernel_size: int, use_se: bool):
        super().__init__()
        if in_channels != dw_channels:
            raise ArchitectureError(
                f"MobileNetV1Enhance: a depthwise conv needs equal in/out channels, got {in_channels} -> {dw_channels}"
            )
        self.use_se = use_se
        self._depthwise_conv = _conv_bn_hardswish(in_channels, dw_channels, kernel_size, stride,
                                                  groups=dw_channels)
        if use_se:
            self._se = SEModule(dw_channels, reduction=4, slope=PADDLE_HARDSIGMOID_SLOPE, offset=0.5)
        self._pointwise_conv = _conv_bn_hardswish(dw_channels, out_channels, 1)

    def forward(self, x):
        x = self._depthwise_conv(x)
        if self.use_se:
            x = self._se(x)
        return self._pointwise_conv(x)


@register("backbone")
class MobileNetV1Enhance(nn.Module):
    """Args:
        in_channels: image channels (3).
        scale: width multiplier (PP-OCRv2 and v3 use 0.5); channels are ``int(c * scale)``.
        last_conv_stride: stride of the last block's depthwise conv (v2: 1, v3: (1, 2)).
        last_pool_type: "max" (v2) or "avg" (v3) for the final pooling.
        last_pool_kernel_size: kernel and stride of the final pooling ((2, 2)).

    Output: N x int(1024 * scale) x H/32 x W/4 (v2), halved again in width by a stride-2 last
    conv (v3). The height must end at 1 for the sequence neck: 32 (v2) or 48 (v3) pixels.
    """

    def __init__(self, in_channels: int = 3, scale: float = 0.5, last_conv_stride=1,
                 last_pool_type: str = "max", last_pool_kernel_size=(2, 2)):
        super().__init__()
        if last_pool_type not in ("max", "avg"):
            raise ArchitectureError(f"MobileNetV1Enhance: last_pool_type must be 'max' or 'avg', got {last_pool_type!r}")
        self.scale = scale
        c = int(32 * scale)
        self.conv1 = _conv_bn_hardswish(in_channels, c, 3, stride=2)
        blocks = []
        for dw, out, stride, k, se in BLOCKS:
            stride = int_pair(last_conv_stride if stride is None else stride, "MobileNetV1Enhance: a stride")
            dw, out = int(dw * scale), int(out * scale)
            blocks.append(DepthwiseSeparable(c, dw, out, stride, k, se))
            c = out
        self.block_list = nn.Sequential(*blocks)
        kernel = int_pair(last_pool_kernel_size, "MobileNetV1Enhance: last_pool_kernel_size")
        pool = nn.AvgPool2d if last_pool_type == "avg" else nn.MaxPool2d
        self.pool = pool(kernel_size=kernel, stride=kernel, padding=0)
        self.out_channels = c

    def forward(self, x):
        return self.pool(self.block_list(self.conv1(x)))
