"""UVDoc's feature extractor: the document-unwarping network of PaddleOCR 3.x (PaddleX's ``UVDoc``).

The network samples the whole page to a fixed 712 x 488 (bilinear, corners aligned, with Paddle's
float32 sampling weights: ``ptocr.models.layers.paddle_bilinear_aligned``), runs a
ResNet of dilated 5x5 residual blocks (three stages, down to 1/16: 45 x 31), then six parallel
"bridges" of dilated 3x3 convs over that map, concatenated. ``UVDocHead`` turns them into the
2 x 45 x 31 sampling mesh.

Module names are PaddleX 3.7's and transformers' (``UVDocModel``: ``backbone.resnet.resnet_head.0``,
``backbone.resnet.resnet_down.1.layers.0.conv_down``, ``backbone.bridge.bridge.3.blocks.2``), so
their checkpoints need no renames. Facts from paddlex 3.7.2 ``image_unwarping/modeling``:
the ResNet's convs have biases and batch norms, the stem's and the bridges' have no bias; a
stage's first block (``dilation 1``) pads 2, the others dilate by 3 and pad 6; the residual
branch (``conv_down``) runs before the main one.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ptocr.models.layers import PaddleBatchNorm2d, paddle_bilinear_aligned
from ptocr.models.registry import register

# The (height, width) every page is resampled to; [in, out] per stem conv; per stage [in, out, dilation, downsample] per block; per bridge
# [channels, dilation] per conv (paddlex's and transformers' UVDoc defaults).
INPUT_SIZE = (712, 488)
RESNET_HEAD = [[3, 32], [32, 32]]
RESNET_STAGES = [
    [[32, 32, 1, False], [32, 32, 3, False], [32, 32, 3, False]],
    [[32, 64, 1, True], [64, 64, 3, False], [64, 64, 3, False], [64, 64, 3, False]],
    [[64, 128, 1, True]] + [[128, 128, 3, False]] * 5,
]
BRIDGES = [[[128, 1]], [[128, 2]], [[128, 5]], [[128, 8], [128, 3], [128, 2]],
           [[128, 12], [128, 7], [128, 4]], [[128, 18], [128, 12], [128, 6]]]


class ConvNormAct(nn.Module):
    """conv -> batch norm -> activation ("relu", "prelu" or None)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: int = 0, dilation: int = 1, bias: bool = False, activation: str | None = "relu",
                 padding_mode: str = "zeros"):
        super().__init__()
        self.convolution = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation,
                                     bias=bias, padding_mode=padding_mode)
        self.normalization = PaddleBatchNorm2d(out_channels)
        acts = {"relu": nn.ReLU, "prelu": nn.PReLU, None: nn.Identity}
        self.activation = acts[activation]()

    def forward(self, x):
        return self.activation(self.normalization(self.convolution(x)))


class ResidualBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, dilation: int, downsample: bool, kernel_size: int):
        super().__init__()
        stride = 2 if downsample else 1
        pad = dilation * (kernel_size // 2)
        self.conv_down = (ConvNormAct(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=True,
                                      activation=None) if downsample else None)
        self.conv_start = ConvNormAct(in_channels, out_channels, kernel_size, stride, pad, dilation, bias=True)
        self.conv_final = ConvNormAct(out_channels, out_channels, kernel_size, 1, pad, dilation, bias=True,
                                      activation=None)

    def forward(self, x):
        residual = x if self.conv_down is None else self.conv_down(x)
        return F.relu(self.conv_final(self.conv_start(x)) + residual)


class _Stage(nn.Module):
    def __init__(self, blocks: list, kernel_size: int):
        super().__init__()
        self.layers = nn.ModuleList(ResidualBlock(i, o, d, down, kernel_size) for i, o, d, down in blocks)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class _ResNet(nn.Module):
    def __init__(self, head: list, stages: list, kernel_size: int):
        super().__init__()
        self.resnet_head = nn.ModuleList(ConvNormAct(i, o, kernel_size, 2, kernel_size // 2) for i, o in head)
        self.resnet_down = nn.ModuleList(_Stage(blocks, kernel_size) for blocks in stages)

    def forward(self, x):
        for m in [*self.resnet_head, *self.resnet_down]:
            x = m(x)
        return x


class _BridgeBlock(nn.Module):
    def __init__(self, convs: list):
        super().__init__()
        self.blocks = nn.ModuleList(ConvNormAct(c, c, 3, 1, d, d) for c, d in convs)

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return x


class _Bridge(nn.Module):
    def __init__(self, bridges: list):
        super().__init__()
        self.bridge = nn.ModuleList(_BridgeBlock(convs) for convs in bridges)

    def forward(self, x):
        return torch.cat([b(x) for b in self.bridge], dim=1)


@register("backbone")
class UVDocBackbone(nn.Module):
    """Page (N x 3 x H x W, BGR / 255, any size) -> N x 768 x 45 x 31 bridge features.

    Args:
        in_channels: 3.
        input_size: (height, width) the page is resampled to (bilinear, corners aligned).
        resnet_head, resnet_stages, bridges, kernel_size: the layer plan (defaults: UVDoc's).
    """

    def __init__(self, in_channels: int = 3, input_size=INPUT_SIZE, resnet_head=None, resnet_stages=None,
                 bridges=None, kernel_size: int = 5):
        super().__init__()
        head = resnet_head or RESNET_HEAD
        if head[0][0] != in_channels:
            raise ValueError(f"the stem takes {head[0][0]} channels, not {in_channels}")
        self.input_size = tuple(int(v) for v in input_size)
        self.resnet = _ResNet(head, resnet_stages or RESNET_STAGES, kernel_size)
        self.bridge = _Bridge(bridges or BRIDGES)
        self.out_channels = sum(convs[-1][0] for convs in (bridges or BRIDGES))

    def forward(self, x):
        x = paddle_bilinear_aligned(x, self.input_size)
        return self.bridge(self.resnet(x))
