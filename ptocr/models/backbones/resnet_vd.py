"""ResNet-vd as PaddleOCR builds it: two networks with the same blocks and parameter names.

"vd" (Bag of Tricks for Image Classification, He et al. 2019) means a stem of three 3x3
convs instead of one 7x7, and downsampling shortcuts that average-pool first and then
apply a stride-1 1x1 conv, instead of a strided 1x1 conv that drops 3/4 of the input.

* ``ResNet_vd`` (det; PaddleOCR ``det_resnet_vd.py``, config name ``ResNet_vd``): the stem's
  first conv has stride 2 and each stage after the first halves height and width, so the four
  stage outputs are at 1/4, 1/8, 1/16, 1/32 of the input; ``forward`` returns them as a list
  for an FPN neck. ch_ppocr_server_v2.0_det is ResNet18_vd.
* ``ResNet_vd_rec`` (rec; PaddleOCR ``rec_resnet_vd.py``, config name ``ResNet``): the stem
  keeps the size, stages after the first stride only the height ``(2, 1)`` (their vd shortcut
  pools with a (2, 1) window), and a final 2x2 max-pool brings a 32-high line to height 1:
  a 3 x 32 x W input gives C x 1 x W/4. ch_ppocr_server_v2.0_rec is ResNet34_vd.

Parameter names follow Paddle's: ``conv1_1..conv1_3`` for the stem, blocks registered as
``bb_<stage>_<index>`` directly on the backbone (Paddle keeps the stages in a plain list, so
the blocks' names carry no stage container), inside each block ``conv0``, ``conv1``
(``conv2`` for bottlenecks) and ``short``, each a ``_conv`` + ``_batch_norm`` pair.
"""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F

from ptocr.errors import ArchitectureError
from ptocr.models.layers import ConvBNAct
from ptocr.models.registry import register

# layers -> blocks per stage; 50 and deeper use bottleneck blocks (4x channel expansion).
_DEPTHS = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
    200: (3, 12, 48, 3),
}
_WIDTHS = (64, 128, 256, 512)


def _conv_bn(in_channels, out_channels, kernel_size, stride=1, act=None, pool=None) -> ConvBNAct:
    """(optional vd average pool) -> bias-free conv -> BN -> (optional ReLU), under Paddle's
    names ``_pool2d_avg`` / ``_conv`` / ``_batch_norm``.

    With ``pool`` set (a stride: int or (h, w)) the input is first average-pooled with that
    window and stride, ceil mode, and the conv runs at stride 1. Paddle pools "exclusive"
    (a window hanging over the edge averages only its in-bounds cells); with no padding,
    torch's ceil-mode divisor is clipped to the input the same way.
    """
    pre = None
    if pool is not None:
        pre = ("_pool2d_avg", nn.AvgPool2d(pool, pool, padding=0, ceil_mode=True, count_include_pad=False))
        stride = 1
    return ConvBNAct(in_channels, out_channels, kernel_size, stride, act=act, pre=pre,
                     conv_name="_conv", bn_name="_batch_norm")


def _shortcut(in_channels, out_channels, stride, vd_pool):
    """The projection of a stage's first block: a plain 1x1 conv for the network's very first
    block (``vd_pool=None``), else the vd form, average pool ``vd_pool`` then 1x1 conv."""
    if vd_pool is None:
        return _conv_bn(in_channels, out_channels, 1, stride=stride)
    return _conv_bn(in_channels, out_channels, 1, pool=vd_pool)


class BasicBlock(nn.Module):
    """Two 3x3 convs (the first strided) plus identity or projected shortcut, then ReLU."""

    expansion = 1

    def __init__(self, in_channels, channels, stride, project, vd_pool):
        super().__init__()
        self.conv0 = _conv_bn(in_channels, channels, 3, stride=stride, act="relu")
        self.conv1 = _conv_bn(channels, channels, 3)
        self.short = _shortcut(in_channels, channels, stride, vd_pool) if project else None

    def forward(self, x):
        y = self.conv1(self.conv0(x))
        return F.relu(y + (x if self.short is None else self.short(x)))


class BottleneckBlock(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand x4, plus shortcut, then ReLU."""

    expansion = 4

    def __init__(self, in_channels, channels, stride, project, vd_pool):
        super().__init__()
        self.conv0 = _conv_bn(in_channels, channels, 1, act="relu")
        self.conv1 = _conv_bn(channels, channels, 3, stride=stride, act="relu")
        self.conv2 = _conv_bn(channels, channels * 4, 1)
        self.short = _shortcut(in_channels, channels * 4, stride, vd_pool) if project else None

    def forward(self, x):
        y = self.conv2(self.conv1(self.conv0(x)))
        return F.relu(y + (x if self.short is None else self.short(x)))


class _ResNetVdBase(nn.Module):
    """Stem, 3x3/2 max-pool and four stages of blocks registered as ``bb_<stage>_<i>``.

    ``stem_stride``: stride of the first stem conv. ``down``: the stride of the first block
    of stages 2..4 (2 for det, (2, 1) for rec); their shortcut average-pools with that same
    window. The first block of every stage projects its shortcut (Paddle builds ``short``
    there even when the channels already match, as in ResNet18/34's first block); the
    network's very first block does it without pooling.
    """

    def __init__(self, in_channels, layers, stem_stride, down):
        super().__init__()
        if layers not in _DEPTHS:
            raise ArchitectureError(
                f"{type(self).__name__}: layers must be one of {sorted(_DEPTHS)}, got {layers!r}"
            )
        self.layers = layers
        block_cls = BottleneckBlock if layers >= 50 else BasicBlock
        self.conv1_1 = _conv_bn(in_channels, 32, 3, stride=stem_stride, act="relu")
        self.conv1_2 = _conv_bn(32, 32, 3, act="relu")
        self.conv1_3 = _conv_bn(32, 64, 3, act="relu")
        self.pool2d_max = nn.MaxPool2d(3, 2, padding=1)

        self.stage_names: list[list[str]] = []
        self.stage_channels: list[int] = []
        ch = 64
        for s, (depth, width) in enumerate(zip(_DEPTHS[layers], _WIDTHS)):
            names = []
            for i in range(depth):
                first = i == 0
                stride = down if first and s > 0 else 1
                block = block_cls(
                    ch, width, stride, project=first, vd_pool=down if s > 0 else None
                )
                name = f"bb_{s}_{i}"
                self.add_module(name, block)
                names.append(name)
                ch = width * block_cls.expansion
            self.stage_names.append(names)
            self.stage_channels.append(ch)

    def _stem(self, x):
        return self.pool2d_max(self.conv1_3(self.conv1_2(self.conv1_1(x))))

    def _stage(self, s, x):
        for name in self.stage_names[s]:
            x = getattr(self, name)(x)
        return x


@register("backbone")
class ResNet_vd(_ResNetVdBase):
    """Detection ResNet-vd (PaddleOCR ``det_resnet_vd.py``).

    Args:
        in_channels: image channels.
        layers: 18, 34, 50, 101, 152 or 200.
        out_indices: which stage outputs to return (default all four); ``out_channels`` is
            the list of their channels (ResNet18/34: [64, 128, 256, 512]).

    Returns the list of the chosen stage outputs (1/4, 1/8, 1/16, 1/32 of the input).
    PaddleOCR's deformable-conv option (``dcn_stage``) is not supported.
    """

    def __init__(self, in_channels: int = 3, layers: int = 50, out_indices: list[int] | None = None):
        super().__init__(in_channels, layers, stem_stride=2, down=2)
        self.out_indices = list(out_indices) if out_indices is not None else [0, 1, 2, 3]
        if not self.out_indices or any(i not in range(4) for i in self.out_indices):
            raise ArchitectureError(f"ResNet_vd: out_indices must be within 0..3, got {out_indices!r}")
        self.out_channels = [self.stage_channels[i] for i in self.out_indices]

    def forward(self, x):
        x = self._stem(x)
        outs = []
        for s in range(4):
            x = self._stage(s, x)
            if s in self.out_indices:
                outs.append(x)
        return outs


@register("backbone")
class ResNet_vd_rec(_ResNetVdBase):
    """Recognition ResNet-vd (PaddleOCR ``rec_resnet_vd.py``, registered there as ``ResNet``).

    Args:
        in_channels: image channels.
        layers: 18, 34, 50, 101, 152 or 200.

    N x 3 x H x W -> N x C x H/32 x W/4 (C = 512, or 2048 from 50 layers on; PaddleOCR's own
    ``out_channels`` says 512 for every depth, which only holds below 50).
    """

    def __init__(self, in_channels: int = 3, layers: int = 34):
        super().__init__(in_channels, layers, stem_stride=1, down=(2, 1))
        self.out_pool = nn.MaxPool2d(2, 2, padding=0)
        self.out_channels = self.stage_channels[-1]

    def forward(self, x):
        x = self._stem(x)
        for s in range(4):
            x = self._stage(s, x)
        return self.out_pool(x)
