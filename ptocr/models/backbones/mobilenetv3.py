"""MobileNetV3 as PaddleOCR builds it, in both of its layouts.

PaddleOCR has two MobileNetV3 classes that share their blocks but differ in layout and
parameter names:

* rec / cls (``rec_mobilenet_v3.py``, ``det=False``): ``conv1 -> blocks.* -> conv2 -> 2x2
  max-pool``; downsampling blocks stride only the height (``(s, 1)``) so the width stays a
  sequence. The direction classifier ch_ppocr_mobile_v2.0_cls is this layout (small, x0.35).
* det (``det_mobilenet_v3.py``, ``det=True``): ``conv -> stage0..stage3``, every stride is 2 and
  the output is the list of the four stage outputs for an FPN neck.
"""

from __future__ import annotations

import torch.nn as nn

from ptocr.errors import ArchitectureError
from ptocr.models.layers import ConvBNAct, SEModule, make_divisible
from ptocr.models.registry import register

# k, expansion, out channels, SE, activation, det stride, rec stride slot. The rec slot is
# None (stride 1) or i: the block strides the height by large_stride[i] / small_stride[i].
_CFG = {
    "large": (
        [
            (3, 16, 16, False, "relu", 1, 0),
            (3, 64, 24, False, "relu", 2, 1),
            (3, 72, 24, False, "relu", 1, None),
            (5, 72, 40, True, "relu", 2, 2),
            (5, 120, 40, True, "relu", 1, None),
            (5, 120, 40, True, "relu", 1, None),
            (3, 240, 80, False, "hardswish", 2, None),
            (3, 200, 80, False, "hardswish", 1, None),
            (3, 184, 80, False, "hardswish", 1, None),
            (3, 184, 80, False, "hardswish", 1, None),
            (3, 480, 112, True, "hardswish", 1, None),
            (3, 672, 112, True, "hardswish", 1, None),
            (5, 672, 160, True, "hardswish", 2, 3),
            (5, 960, 160, True, "hardswish", 1, None),
            (5, 960, 160, True, "hardswish", 1, None),
        ],
        960,
    ),
    "small": (
        [
            (3, 16, 16, True, "relu", 2, 0),
            (3, 72, 24, False, "relu", 2, 1),
            (3, 88, 24, False, "relu", 1, None),
            (5, 96, 40, True, "hardswish", 2, 2),
            (5, 240, 40, True, "hardswish", 1, None),
            (5, 240, 40, True, "hardswish", 1, None),
            (5, 120, 48, True, "hardswish", 1, None),
            (5, 144, 48, True, "hardswish", 1, None),
            (5, 288, 96, True, "hardswish", 2, 3),
            (5, 576, 96, True, "hardswish", 1, None),
            (5, 576, 96, True, "hardswish", 1, None),
        ],
        576,
    ),
}
_SCALES = (0.35, 0.5, 0.75, 1.0, 1.25)


class ResidualUnit(nn.Module):
    def __init__(self, in_channels, mid_channels, out_channels, kernel_size, stride, use_se, act):
        super().__init__()
        # Paddle tests ``stride == 1``: a rec stride given as the tuple (1, 1) is NOT 1, so such
        # a block has no shortcut even when the channels match. Keep that quirk.
        self.if_shortcut = stride == 1 and in_channels == out_channels
        self.expand_conv = ConvBNAct(in_channels, mid_channels, 1, act=act)
        self.bottleneck_conv = ConvBNAct(mid_channels, mid_channels, kernel_size, stride,
                                         groups=mid_channels, act=act)
        self.mid_se = SEModule(mid_channels) if use_se else None
        self.linear_conv = ConvBNAct(mid_channels, out_channels, 1)

    def forward(self, inputs):
        x = self.bottleneck_conv(self.expand_conv(inputs))
        if self.mid_se is not None:
            x = self.mid_se(x)
        x = self.linear_conv(x)
        return inputs + x if self.if_shortcut else x


@register("backbone")
class MobileNetV3(nn.Module):
    """PaddleOCR MobileNetV3.

    Args:
        in_channels: image channels.
        model_name: "small" or "large".
        scale: width multiplier, one of 0.35, 0.5, 0.75, 1.0, 1.25.
        det: False -> rec/cls layout (one N x C x H' x W' map, ``out_channels`` an int);
            True -> det layout (list of 4 maps, ``out_channels`` a list).
        large_stride / small_stride: rec only, the 4 height strides of the downsampling blocks
            (Paddle defaults [1, 2, 2, 2] / [2, 2, 2, 2]).
        disable_se: drop every SE module.
    """

    def __init__(
        self,
        in_channels: int = 3,
        model_name: str = "small",
        scale: float = 0.5,
        det: bool = False,
        large_stride: list[int] | None = None,
        small_stride: list[int] | None = None,
        disable_se: bool = False,
    ):
        super().__init__()
        if model_name not in _CFG:
            raise ArchitectureError(
                f"MobileNetV3: model_name must be 'small' or 'large', got {model_name!r}"
            )
        if scale not in _SCALES:
            raise ArchitectureError(f"MobileNetV3: scale must be one of {_SCALES}, got {scale!r}")
        if det and (large_stride is not None or small_stride is not None):
            raise ArchitectureError("MobileNetV3: large_stride/small_stride are rec-only")
        large_stride = [1, 2, 2, 2] if large_stride is None else list(large_stride)
        small_stride = [2, 2, 2, 2] if small_stride is None else list(small_stride)
        if len(large_stride) != 4 or len(small_stride) != 4:
            raise ArchitectureError("MobileNetV3: large_stride and small_stride need 4 entries")
        self.det = det
        cfg, last_ch = _CFG[model_name]
        user_strides = large_stride if model_name == "large" else small_stride

        def rec_stride(i, slot):
            if slot is None:
                return 1
            s = user_strides[slot]
            # rec strides only the height, except the first block of "large" (an int stride).
            return s if (model_name == "large" and i == 0) else (s, 1)

        stem_ch = make_divisible(16 * scale)
        stem = ConvBNAct(in_channels, stem_ch, 3, 2, act="hardswish")
        inplanes = stem_ch
        units = []
        strides = []
        for i, (k, exp, c, se, act, det_stride, slot) in enumerate(cfg):
            strides.append(det_stride if det else rec_stride(i, slot))
            out = make_divisible(scale * c)
            units.append(
                ResidualUnit(inplanes, make_divisible(scale * exp), out, k, strides[-1],
                             se and not disable_se, act)
            )
            inplanes = out
        last = ConvBNAct(inplanes, make_divisible(scale * last_ch), 1, act="hardswish")

        if not det:
            self.conv1 = stem
            self.blocks = nn.Sequential(*units)
            self.conv2 = last
            self.pool = nn.MaxPool2d(2, 2)
            self.out_channels = last.conv.out_channels
            return

        # det: a new stage starts at every stride-2 block after the first one(s), as Paddle
        # splits them (``s == 2 and i > start_idx``); conv_last closes the final stage.
        self.conv = stem
        start_idx = 2 if model_name == "large" else 0
        stages, current, self.out_channels = [], [], []
        in_ch = stem_ch
        for i, unit in enumerate(units):
            if strides[i] == 2 and i > start_idx:
                stages.append(nn.Sequential(*current))
                self.out_channels.append(in_ch)
                current = []
            current.append(unit)
            in_ch = unit.linear_conv.conv.out_channels
        current.append(last)
        stages.append(nn.Sequential(*current))
        self.out_channels.append(last.conv.out_channels)
        self.num_stages = len(stages)
        for i, stage in enumerate(stages):
            self.add_module(f"stage{i}", stage)

    def forward(self, x):
        if not self.det:
            return self.pool(self.conv2(self.blocks(self.conv1(x))))
        x = self.conv(x)
        outs = []
        for i in range(self.num_stages):
            x = getattr(self, f"stage{i}")(x)
            outs.append(x)
        return outs
