"""PP-HGNet (small), the backbone of the PP-OCRv4 server detector (``det=True``) and
recognizer (``det=False``), as PaddleOCR's ``rec_hgnet.py`` builds it.

Layout (names are PaddleOCR's, so Paddle structured names map unchanged):

* ``stem``: three 3x3 conv-BN-ReLU (64, 64, 128 channels), the first with stride 2.
  The detector follows it with a 3x3 stride-2 max pool (padding 1).
* ``stages.i``: an optional depthwise 3x3 conv-BN ``downsample`` (no activation), then
  ``blocks``: HG blocks. A block runs ``layer_num`` 3x3 conv-BN-ReLU layers in a chain,
  concatenates its input with every layer's output, mixes them with a 1x1 conv-BN-ReLU
  (``aggregation_conv``) and gates the result with ESE attention (``att``: global average
  pool, biased 1x1 conv, sigmoid, multiply). Every block after a stage's first adds its input.
* det: the four stage outputs (1/4 .. 1/32 of the input) go to the neck.
* rec: strides are (h, w) pairs that keep width resolution; the output is average-pooled
  with a 3x2 window (stride 3x2, no padding), so a 48 x W input gives 1 x W/8. (PaddleOCR
  pools adaptively to 1 x 40 while training; its inference programs hold the fixed pool.)

Batch norms use Paddle's default epsilon 1e-5 (as the programs store it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ptocr.errors import ArchitectureError
from ptocr.models.layers import GlobalAvgPool
from ptocr.models.registry import register

# Per stage: in channels, mid channels, out channels, blocks, downsample, stride.
STAGES_SMALL_DET = (
    (128, 128, 256, 1, False, 2),
    (256, 160, 512, 1, True, 2),
    (512, 192, 768, 2, True, 2),
    (768, 224, 1024, 1, True, 2),
)
STAGES_SMALL_REC = (
    (128, 128, 256, 1, True, (2, 1)),
    (256, 160, 512, 1, True, (1, 2)),
    (512, 192, 768, 2, True, (2, 1)),
    (768, 224, 1024, 1, True, (2, 1)),
)
SMALL = {"stem_channels": (64, 64, 128), "layer_num": 6}


class ConvBNAct(nn.Module):
    """kxk conv (no bias, 'same' padding for odd k) -> BN -> optional ReLU."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, groups=1, use_act=True):
        super().__init__()
        self.use_act = use_act
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride,
                              padding=(kernel_size - 1) // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x):
        x = self.bn(self.conv(x))
        return F.relu(x) if self.use_act else x


class ESEModule(nn.Module):
    """Effective squeeze-excitation: one biased 1x1 conv on the pooled map, sigmoid gate."""

    def __init__(self, channels: int):
        super().__init__()
        self.pool = GlobalAvgPool()
        self.conv = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.conv(self.pool(x)))


class HGBlock(nn.Module):
    def __init__(self, in_channels, mid_channels, out_channels, layer_num, identity=False):
        super().__init__()
        self.identity = identity
        self.layers = nn.ModuleList(
            ConvBNAct(in_channels if i == 0 else mid_channels, mid_channels, 3)
            for i in range(layer_num)
        )
        self.aggregation_conv = ConvBNAct(in_channels + layer_num * mid_channels, out_channels, 1)
        self.att = ESEModule(out_channels)

    def forward(self, x):
        feats = [x]
        y = x
        for layer in self.layers:
            y = layer(y)
            feats.append(y)
        y = self.att(self.aggregation_conv(torch.cat(feats, dim=1)))
        return y + x if self.identity else y


class HGStage(nn.Module):
    def __init__(self, in_channels, mid_channels, out_channels, block_num, layer_num,
                 downsample=True, stride=2):
        super().__init__()
        # Depthwise, stride 2 (det) or a (h, w) pair (rec); padding 1 either way.
        self.downsample = (ConvBNAct(in_channels, in_channels, 3, stride, groups=in_channels,
                                     use_act=False) if downsample else None)
        self.blocks = nn.Sequential(*[
            HGBlock(in_channels if i == 0 else out_channels, mid_channels, out_channels,
                    layer_num, identity=i > 0)
            for i in range(block_num)
        ])

    def forward(self, x):
        if self.downsample is not None:
            x = self.downsample(x)
        return self.blocks(x)


@register("backbone")
class PPHGNet(nn.Module):
    """Args:
        in_channels: image channels.
        det: detector layout (max-pool after the stem, stride-2 stages, four outputs)
            rather than the recognizer's.
        stem_channels, stage_config, layer_num: the network size; the defaults are
            PaddleOCR's ``PPHGNet_small`` (the only size its OCR configs use).
        out_indices: det only, which stages feed the neck.
    """

    def __init__(self, in_channels: int = 3, det: bool = False,
                 stem_channels=SMALL["stem_channels"], stage_config=None,
                 layer_num: int = SMALL["layer_num"], out_indices=(0, 1, 2, 3)):
        super().__init__()
        self.det = det
        if stage_config is None:
            stage_config = STAGES_SMALL_DET if det else STAGES_SMALL_REC
        stage_config = [tuple(s) for s in stage_config]
        self.out_indices = tuple(out_indices)
        if any(not 0 <= i < len(stage_config) for i in self.out_indices):
            raise ArchitectureError(f"PPHGNet: out_indices {self.out_indices} outside "
                                    f"{len(stage_config)} stages")
        chans = (in_channels, *stem_channels)
        self.stem = nn.Sequential(*[
            ConvBNAct(chans[i], chans[i + 1], 3, stride=2 if i == 0 else 1)
            for i in range(len(stem_channels))
        ])
        self.stages = nn.ModuleList(
            HGStage(cin, cmid, cout, blocks, layer_num, down, _stride(stride))
            for cin, cmid, cout, blocks, down, stride in stage_config
        )
        if det:
            self.out_channels = [stage_config[i][2] for i in self.out_indices]
        else:
            self.out_channels = stage_config[-1][2]

    def forward(self, x):
        x = self.stem(x)
        if self.det:
            x = F.max_pool2d(x, 3, stride=2, padding=1)
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if self.det and i in self.out_indices:
                outs.append(x)
        if self.det:
            return outs
        if self.training:
            return F.adaptive_avg_pool2d(x, (1, 40))
        return F.avg_pool2d(x, (3, 2))


def _stride(s):
    return tuple(s) if isinstance(s, (list, tuple)) else s
