"""PP-LCNetV4, the backbone of every PP-OCRv6 detector (``det=True``) and recognizer, in three
sizes (tiny, small, medium), as PaddleOCR 3.7's ``rec_lcnetv4.py`` builds it.

A MetaFormer-style block: a token mixer (a depthwise 3x3 conv, then squeeze-excitation in some
blocks) and a channel mixer (1x1 expand x2, GELU, 1x1 compress), with a residual where the
block keeps its shape. Each part exists in two forms:

* training (``reparam=False``): every conv is ``ConvBN`` (``conv`` + ``bn``, Paddle's
  ``Conv2D_BN``); a depthwise conv that keeps the shape is a ``RepDWConv`` of three branches
  (3x3 conv-BN ``conv``, 1x1 ``conv1``, identity) summed then normalized by ``bn``; the stem's
  convs are conv + ``bn`` + ReLU. These are a training checkpoint's names.
* inference (``reparam=True``, or after ``reparameterize()`` of the ``ptocr.models.reparam``
  protocol): PaddleOCR's ``rep()`` as its export runs it: each ``ConvBN`` becomes one biased
  conv under the same name, a ``RepDWConv`` one biased ``reparam_conv``, a stem conv a biased
  ``conv``. These are an inference program's tensors (the official ONNX files hold exactly them).

The recognizer's "simple" stem (tiny) is two ``ConvBN`` around a GELU in a ``Sequential``
(``conv1.0``, ``conv1.2``), which PaddleOCR never fuses: it keeps its batch norms in both forms.

Paddle quirks kept: the squeeze-excitation gate is Paddle's ``Hardsigmoid`` (slope 1/6 as the
float32 0.1666667); the stem's 2x2 convs and 2x2 max pool use ``padding="SAME"`` at stride 1
(one zero row/column after, none before; the pool's pad never wins after the ReLU); a stride
compares with the int 1, so a recognizer's (2, 1) stride never gets a residual.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ptocr.errors import ArchitectureError
from ptocr.models.layers import PADDLE_HARDSIGMOID_SLOPE, PaddleBatchNorm2d, SEModule, bn_scale_shift, folded_conv, int_pair
from ptocr.models.reparam import replace_submodule
from ptocr.models.registry import register

# Per size: the stem's (middle, out) channels, then each stage's blocks as
# (kernel, in channels, out channels, stride, squeeze-excitation).
NET_CONFIG_DET = {
    "tiny": {
        "stem": (16, 32),
        "blocks_s1": [(3, 32, 32, 1, True), (3, 32, 32, 1, False)],
        "blocks_s2": [(3, 32, 48, 2, False), (3, 48, 48, 1, True), (3, 48, 48, 1, False)],
        "blocks_s3": [(3, 48, 64, 2, False), (3, 64, 64, 1, True), (3, 64, 64, 1, False),
                      (3, 64, 64, 1, True), (3, 64, 64, 1, False)],
        "blocks_s4": [(3, 64, 160, 2, False), (3, 160, 160, 1, True), (3, 160, 160, 1, False)],
    },
    "small": {
        "stem": (24, 48),
        "blocks_s1": [(3, 48, 48, 1, True), (3, 48, 48, 1, False)],
        "blocks_s2": [(3, 48, 96, 2, False), (3, 96, 96, 1, True), (3, 96, 96, 1, False)],
        "blocks_s3": [(3, 96, 192, 2, False), (3, 192, 192, 1, True), (3, 192, 192, 1, False),
                      (3, 192, 192, 1, True), (3, 192, 192, 1, False)],
        "blocks_s4": [(3, 192, 384, 2, False), (3, 384, 384, 1, True), (3, 384, 384, 1, False)],
    },
    "medium": {
        "stem": (64, 128),
        "blocks_s1": [(3, 128, 128, 1, True), (3, 128, 128, 1, False)],
        "blocks_s2": [(3, 128, 256, 2, False), (3, 256, 256, 1, True), (3, 256, 256, 1, False)],
        "blocks_s3": [(3, 256, 512, 2, False), (3, 512, 512, 1, True), (3, 512, 512, 1, False),
                      (3, 512, 512, 1, True), (3, 512, 512, 1, False)],
        "blocks_s4": [(3, 512, 896, 2, False), (3, 896, 896, 1, True), (3, 896, 896, 1, False)],
    },
}
# The recognizer keeps width resolution: it downsamples with (2, 1) strides only.
NET_CONFIG_REC = {
    "tiny": {
        "stem": (24, 48), "stem_type": "simple",
        "blocks2": [(3, 48, 48, 1, True)],
        "blocks3": [(3, 48, 48, 1, False)],
        "blocks4": [(3, 48, 96, (2, 1), False), (3, 96, 96, 1, True), (3, 96, 96, 1, False)],
        "blocks5": [(3, 96, 160, (2, 1), False), (3, 160, 160, 1, True), (3, 160, 160, 1, False),
                    (3, 160, 160, 1, False)],
        "blocks6": [],
    },
    "small": {
        "stem": (48, 96), "stem_type": "branch",
        "blocks2": [(3, 96, 96, 1, True)],
        "blocks3": [(3, 96, 96, 1, False), (3, 96, 96, 1, False)],
        "blocks4": [(3, 96, 192, (2, 1), False), (3, 192, 192, 1, True), (3, 192, 192, 1, False),
                    (3, 192, 192, 1, True), (3, 192, 192, 1, False), (3, 192, 192, 1, True),
                    (3, 192, 192, 1, False)],
        "blocks5": [(3, 192, 384, (2, 1), False), (3, 384, 384, 1, True), (3, 384, 384, 1, False)],
        "blocks6": [],
    },
    "medium": {
        "stem": (64, 128), "stem_type": "branch",
        "blocks2": [(3, 128, 128, 1, True)],
        "blocks3": [(3, 128, 256, 1, False), (3, 256, 256, 1, False), (3, 256, 256, 1, True)],
        "blocks4": [(3, 256, 512, (2, 1), False), (3, 512, 512, 1, True), (3, 512, 512, 1, False),
                    (3, 512, 512, 1, True), (3, 512, 512, 1, False), (3, 512, 512, 1, True),
                    (3, 512, 512, 1, False)],
        "blocks5": [(3, 512, 768, (2, 1), False), (3, 768, 768, 1, True), (3, 768, 768, 1, False)],
        "blocks6": [],
    },
}
DET_STAGES = ("blocks_s1", "blocks_s2", "blocks_s3", "blocks_s4")
REC_STAGES = ("blocks2", "blocks3", "blocks4", "blocks5", "blocks6")
EXPAND_RATIO = 2


class ConvBN(nn.Sequential):
    """Paddle's ``Conv2D_BN``: a bias-free conv (``conv``) and a batch norm (``bn``)."""

    def __init__(self, in_channels, out_channels, kernel_size=1, stride=1, padding=0, groups=1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding,
                              groups=groups, bias=False)
        self.bn = PaddleBatchNorm2d(out_channels)


def _fold_children(module: nn.Module, names) -> None:
    """Replace each ``ConvBN`` child among ``names`` by its folded conv (same name)."""
    for name in names:
        child = getattr(module, name, None)
        if isinstance(child, ConvBN):
            replace_submodule(module, name, folded_conv(child.conv, child.bn))


def _conv_bn(in_channels, out_channels, kernel_size, stride=1, padding=0, groups=1, *, fused: bool):
    """A ``ConvBN``, or (fused) the biased conv it folds into."""
    if fused:
        return nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=True)
    return ConvBN(in_channels, out_channels, kernel_size, stride, padding, groups)


class StemConv(nn.Module):
    """Paddle's stem ``ConvBNAct``: conv -> ``bn`` -> ReLU (fused: a biased ``conv``, ReLU).
    ``same``: Paddle's ``padding="SAME"`` for a 2x2 kernel at stride 1 (one zero after)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, *, same=False, fused=False):
        super().__init__()
        self.same = same
        padding = 0 if same else (kernel_size - 1) // 2
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=fused)
        self.bn = None if fused else PaddleBatchNorm2d(out_channels)

    def forward(self, x):
        if self.same:
            x = F.pad(x, (0, 1, 0, 1))
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x)

    def reparameterize(self) -> None:
        if self.bn is not None:
            self.conv = folded_conv(self.conv, self.bn)
            self.bn = None


class StemBlock(nn.Module):
    """The "branch" stem, total stride 4: ``stem1`` (3x3 s2), then a 2x2-conv pair
    (``stem2a``, ``stem2b``) beside a 2x2 max pool, concatenated [pool, convs], ``stem3``
    (3x3 s2) and ``stem4`` (1x1)."""

    def __init__(self, in_channels, mid_channels, out_channels, fused=False):
        super().__init__()
        self.stem1 = StemConv(in_channels, mid_channels, 3, 2, fused=fused)
        self.stem2a = StemConv(mid_channels, mid_channels // 2, 2, same=True, fused=fused)
        self.stem2b = StemConv(mid_channels // 2, mid_channels, 2, same=True, fused=fused)
        self.stem3 = StemConv(mid_channels * 2, mid_channels, 3, 2, fused=fused)
        self.stem4 = StemConv(mid_channels, out_channels, 1, fused=fused)

    def forward(self, x):
        x = self.stem1(x)
        branch = self.stem2b(self.stem2a(x))
        pooled = F.max_pool2d(F.pad(x, (0, 1, 0, 1)), 2, stride=1)  # x >= 0: zero pad never wins
        return self.stem4(self.stem3(torch.cat([pooled, branch], dim=1)))


class RepDWConv(nn.Module):
    """Re-parameterizable depthwise conv: ``bn(conv(x) + conv1(x) + x)`` with ``conv`` a 3x3
    ``ConvBN`` and ``conv1`` a bias-free 1x1; fused, one biased ``reparam_conv``."""

    def __init__(self, channels, kernel_size=3, fused=False):
        super().__init__()
        self.channels, self.kernel_size = channels, kernel_size
        padding = (kernel_size - 1) // 2
        if fused:
            self.reparam_conv = nn.Conv2d(channels, channels, kernel_size, 1, padding, groups=channels)
            return
        self.reparam_conv = None
        self.conv = ConvBN(channels, channels, kernel_size, 1, padding, channels)
        self.conv1 = nn.Conv2d(channels, channels, 1, groups=channels, bias=False)
        self.bn = PaddleBatchNorm2d(channels)

    def forward(self, x):
        if self.reparam_conv is not None:
            return self.reparam_conv(x)
        return self.bn(self.conv(x) + self.conv1(x) + x)

    @torch.no_grad()
    def reparameterize(self) -> None:
        if self.reparam_conv is not None:
            return
        k = self.kernel_size
        inner = folded_conv(self.conv.conv, self.conv.bn)
        kernel = inner.weight.double() + F.pad(self.conv1.weight.double(), [k // 2] * 4)
        kernel[:, 0, k // 2, k // 2] += 1.0  # the identity branch: its own channel, centre tap
        scale, shift = bn_scale_shift(self.bn)
        fused = inner  # reuse: shape, dtype and device are right
        fused.weight.copy_(kernel * scale.reshape(-1, 1, 1, 1))
        fused.bias.copy_(shift + inner.bias.double() * scale)
        for name in ("conv", "conv1", "bn"):
            delattr(self, name)
        self.reparam_conv = fused


class LCNetV4Block(nn.Module):
    """Token mixer (``rep_dw`` where the block keeps its shape, else a strided ``dw_conv``;
    then ``se``) and channel mixer (``expand`` x2, GELU, ``compress``), residual when the
    block keeps its shape."""

    def __init__(self, in_channels, out_channels, stride, dw_size, use_se=False, fused=False):
        super().__init__()
        keeps_shape = in_channels == out_channels and stride == 1  # a tuple stride never equals 1
        self.has_residual = keeps_shape
        self.token_mixer = nn.Sequential()
        if keeps_shape:
            self.token_mixer.add_module("rep_dw", RepDWConv(in_channels, dw_size, fused=fused))
        else:
            self.token_mixer.add_module("dw_conv", _conv_bn(
                in_channels, in_channels, dw_size, int_pair(stride), (dw_size - 1) // 2, in_channels, fused=fused))
        if use_se:
            self.token_mixer.add_module("se", SEModule(in_channels, slope=PADDLE_HARDSIGMOID_SLOPE))
        hidden = in_channels * EXPAND_RATIO
        self.channel_mixer = nn.Sequential()
        self.channel_mixer.add_module("expand", _conv_bn(in_channels, hidden, 1, fused=fused))
        self.channel_mixer.add_module("act", nn.GELU())
        self.channel_mixer.add_module("compress", _conv_bn(hidden, out_channels, 1, fused=fused))

    def forward(self, x):
        x = self.token_mixer(x)
        return x + self.channel_mixer(x) if self.has_residual else self.channel_mixer(x)

    @torch.no_grad()
    def reparameterize(self) -> None:
        # rep_dw fuses itself (it is re-parameterizable too); here the plain conv-BN pairs.
        _fold_children(self.token_mixer, ["dw_conv"])
        _fold_children(self.channel_mixer, ["expand", "compress"])


@register("backbone")
class PPLCNetV4(nn.Module):
    """PaddleOCR PPLCNetV4.

    Args:
        in_channels: image channels.
        model_size: "tiny", "small" or "medium" (``NET_CONFIG_DET`` / ``NET_CONFIG_REC``).
        det: True -> the four stage outputs (1/4 .. 1/32), ``out_channels`` a list; False ->
            the recognizer's map pooled over 3x2 cells (eval) or adaptively to 1 x 40
            (training), ``out_channels`` an int.
        reparam: build the inference form directly (what inference programs hold).
    """

    def __init__(self, in_channels: int = 3, model_size: str = "small", det: bool = False,
                 reparam: bool = False):
        super().__init__()
        configs = NET_CONFIG_DET if det else NET_CONFIG_REC
        if model_size not in configs:
            raise ArchitectureError(f"PPLCNetV4: model_size must be one of {sorted(configs)}, got {model_size!r}")
        cfg = configs[model_size]
        self.det = det
        mid, out = cfg["stem"]
        stages = DET_STAGES if det else REC_STAGES
        if det:
            self.stem = StemBlock(in_channels, mid, out, fused=reparam)
        elif cfg["stem_type"] == "branch":
            self.conv1 = StemBlock(in_channels, mid, out, fused=reparam)
        else:  # never fused by PaddleOCR: keeps its batch norms in both forms
            self.conv1 = nn.Sequential(ConvBN(in_channels, mid, 3, 2, 1), nn.GELU(), ConvBN(mid, out, 3, 2, 1))
        for stage in stages:
            setattr(self, stage, nn.Sequential(*(
                LCNetV4Block(cin, cout, s, k, se, fused=reparam) for k, cin, cout, s, se in cfg[stage]
            )))
        if det:
            self.out_channels = [cfg[s][-1][2] for s in stages]
        else:
            self.out_channels = [cfg[s][-1][2] for s in stages if cfg[s]][-1]
        self._stages = stages

    def forward(self, x):
        x = self.stem(x) if self.det else self.conv1(x)
        feats = []
        for stage in self._stages:
            x = getattr(self, stage)(x)
            feats.append(x)
        if self.det:
            return feats
        if self.training:
            return F.adaptive_avg_pool2d(x, (1, 40))
        # The stride spelled out: oneDNN Graph refuses a traced pool whose stride is left to
        # default ("could not set attribute to the op"). The same pool.
        return F.avg_pool2d(x, (3, 2), (3, 2))
