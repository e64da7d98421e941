"""PP-HGNetV2, the backbone of the PP-OCRv5 server detector (B4, ``det=True``) and
recognizer (B4, ``text_rec=True``), as PaddleOCR's ``rec_pphgnetv2.py`` builds it.

Layout (PaddleOCR's attribute names):

* ``stem`` (StemBlock): ``stem1`` 3x3 stride-2 conv-BN-ReLU; two branches on its output,
  ``stem2a`` -> ``stem2b`` (2x2 convs with Paddle's 'SAME' padding: 0 before, 1 after) and
  a 2x2 stride-1 max pool (also 'SAME': one -inf row/column after), concatenated
  [pool, convs]; ``stem3`` 3x3 conv-BN-ReLU (stride 2, or 1 for text recognition) and
  ``stem4`` 1x1 conv-BN-ReLU.
* ``stages.i``: optional depthwise 3x3 conv-BN ``downsample`` (no activation), then HGV2
  blocks: ``layer_num`` layers in a chain (plain kxk conv-BN-ReLU, or "light": 1x1 conv-BN
  ``conv1`` then depthwise kxk conv-BN-ReLU ``conv2``), the input and every layer's output
  concatenated, squeezed by 1x1 conv-BN-ReLU to out/2 (``aggregation_squeeze_conv``) and
  expanded by 1x1 conv-BN-ReLU to out (``aggregation_excitation_conv``); blocks after the
  first add their input.
* det: the four stage outputs go to the neck (B4: 128, 512, 1024, 2048 channels at
  1/4 .. 1/32). text_rec: (h, w) strides keep width, and a 3x2 average pool (stride 3x2)
  ends it in eval (a 48-high input gives height 1, width W/8); training pools adaptively
  to 1 x 40.

With ``use_lab`` (B0-B3), each activated ConvBNAct ends with a learnable affine ``lab``
(scalar scale and bias). B4 has none. PaddleOCR's classification tail (``last_conv``,
``fc``) is never run by the OCR models and not built here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ptocr.errors import ArchitectureError
from ptocr.models.layers import LearnableAffineBlock
from ptocr.models.registry import register

# Per stage: in, mid, out channels, blocks, downsample, light block, kernel, layer_num, stride.
B4_DET = (
    (48, 48, 128, 1, False, False, 3, 6, 2),
    (128, 96, 512, 1, True, False, 3, 6, 2),
    (512, 192, 1024, 3, True, True, 5, 6, 2),
    (1024, 384, 2048, 1, True, True, 5, 6, 2),
)
B4_REC = (
    (48, 48, 128, 1, True, False, 3, 6, (2, 1)),
    (128, 96, 512, 1, True, False, 3, 6, (1, 2)),
    (512, 192, 1024, 3, True, True, 5, 6, (2, 1)),
    (1024, 384, 2048, 1, True, True, 5, 6, (2, 1)),
)
B4_STEM = (32, 48)  # mid, out


class ConvBNAct(nn.Module):
    """Conv (no bias) -> BN -> optional ReLU (-> optional ``lab``).

    ``same=True`` is Paddle's ``padding="SAME"`` at stride 1: k - 1 pixels split with the
    smaller half before (for k = 2: none before, one after); otherwise ``(k - 1) // 2``."""

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, groups=1,
                 use_act=True, use_lab=False, same=False):
        super().__init__()
        self.use_act, self.use_lab = use_act, use_act and use_lab
        total = kernel_size - 1
        self.same_pad = (total // 2, total - total // 2) if same else None
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride,
                              padding=0 if same else total // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        if self.use_lab:
            self.lab = LearnableAffineBlock()

    def forward(self, x):
        if self.same_pad is not None:
            a, b = self.same_pad
            x = F.pad(x, (a, b, a, b))
        x = self.bn(self.conv(x))
        if self.use_act:
            x = F.relu(x)
            if self.use_lab:
                x = self.lab(x)
        return x


class LightConvBNAct(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, use_lab=False):
        super().__init__()
        self.conv1 = ConvBNAct(in_channels, out_channels, 1, use_act=False, use_lab=use_lab)
        self.conv2 = ConvBNAct(out_channels, out_channels, kernel_size, groups=out_channels,
                               use_act=True, use_lab=use_lab)

    def forward(self, x):
        return self.conv2(self.conv1(x))


class StemBlock(nn.Module):
    def __init__(self, in_channels, mid_channels, out_channels, use_lab=False, text_rec=False):
        super().__init__()
        self.stem1 = ConvBNAct(in_channels, mid_channels, 3, stride=2, use_lab=use_lab)
        self.stem2a = ConvBNAct(mid_channels, mid_channels // 2, 2, use_lab=use_lab, same=True)
        self.stem2b = ConvBNAct(mid_channels // 2, mid_channels, 2, use_lab=use_lab, same=True)
        self.stem3 = ConvBNAct(mid_channels * 2, mid_channels, 3, stride=1 if text_rec else 2,
                               use_lab=use_lab)
        self.stem4 = ConvBNAct(mid_channels, out_channels, 1, use_lab=use_lab)

    def forward(self, x):
        x = self.stem1(x)
        x2 = self.stem2b(self.stem2a(x))
        # 2x2 stride-1 max pool, 'SAME': one padded (ignored) row and column after.
        x1 = F.max_pool2d(F.pad(x, (0, 1, 0, 1), value=float("-inf")), 2, stride=1)
        return self.stem4(self.stem3(torch.cat([x1, x2], dim=1)))


class HGV2Block(nn.Module):
    def __init__(self, in_channels, mid_channels, out_channels, kernel_size=3, layer_num=6,
                 identity=False, light_block=True, use_lab=False):
        super().__init__()
        self.identity = identity
        self.layers = nn.ModuleList(
            (LightConvBNAct(c, mid_channels, kernel_size, use_lab=use_lab) if light_block
             else ConvBNAct(c, mid_channels, kernel_size, use_lab=use_lab))
            for c in [in_channels] + [mid_channels] * (layer_num - 1)
        )
        total = in_channels + layer_num * mid_channels
        self.aggregation_squeeze_conv = ConvBNAct(total, out_channels // 2, 1, use_lab=use_lab)
        self.aggregation_excitation_conv = ConvBNAct(out_channels // 2, out_channels, 1, use_lab=use_lab)

    def forward(self, x):
        feats = [x]
        y = x
        for layer in self.layers:
            y = layer(y)
            feats.append(y)
        y = self.aggregation_excitation_conv(self.aggregation_squeeze_conv(torch.cat(feats, dim=1)))
        return y + x if self.identity else y


class HGV2Stage(nn.Module):
    def __init__(self, in_channels, mid_channels, out_channels, block_num, layer_num=6,
                 is_downsample=True, light_block=True, kernel_size=3, use_lab=False, stride=2):
        super().__init__()
        self.downsample = (ConvBNAct(in_channels, in_channels, 3, stride, groups=in_channels,
                                     use_act=False, use_lab=use_lab) if is_downsample else None)
        self.blocks = nn.Sequential(*[
            HGV2Block(in_channels if i == 0 else out_channels, mid_channels, out_channels,
                      kernel_size, layer_num, identity=i > 0, light_block=light_block,
                      use_lab=use_lab)
            for i in range(block_num)
        ])

    def forward(self, x):
        if self.downsample is not None:
            x = self.downsample(x)
        return self.blocks(x)


@register("backbone")
class PPHGNetV2(nn.Module):
    """Args:
        in_channels: image channels.
        det: detector layout (four outputs).
        text_rec: recognizer layout (stride-1 ``stem3``, final 3x2 average pool).
        stem_channels: (mid, out) of the stem; stage_config: per stage (in, mid, out,
            blocks, downsample, light block, kernel, layer_num, stride). The defaults are
            PaddleOCR's ``PPHGNetV2_B4`` for the chosen layout.
        use_lab: learnable affine after every activation (B0-B3).
        out_indices: det only, which stages feed the neck.
    """

    def __init__(self, in_channels: int = 3, det: bool = False, text_rec: bool = False,
                 stem_channels=B4_STEM, stage_config=None, use_lab: bool = False,
                 out_indices=(0, 1, 2, 3)):
        super().__init__()
        if det and text_rec:
            raise ArchitectureError("PPHGNetV2: det and text_rec are exclusive")
        self.det, self.text_rec = det, text_rec
        if stage_config is None:
            stage_config = B4_DET if det else B4_REC
        stage_config = [tuple(s) for s in stage_config]
        self.out_indices = tuple(out_indices)
        mid, out = stem_channels
        self.stem = StemBlock(in_channels, mid, out, use_lab=use_lab, text_rec=text_rec)
        self.stages = nn.ModuleList(
            HGV2Stage(cin, cmid, cout, blocks, layers, down, light, k, use_lab,
                      tuple(s) if isinstance(s, (list, tuple)) else s)
            for cin, cmid, cout, blocks, down, light, k, layers, s in stage_config
        )
        if det:
            self.out_channels = [stage_config[i][2] for i in self.out_indices]
        else:
            self.out_channels = stage_config[-1][2]

    def forward(self, x):
        x = self.stem(x)
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if self.det and i in self.out_indices:
                outs.append(x)
        if self.det:
            return outs
        if self.text_rec:
            return F.adaptive_avg_pool2d(x, (1, 40)) if self.training else F.avg_pool2d(x, (3, 2))
        return x
