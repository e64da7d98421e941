"""RepSVTR, the backbone of PaddleX's ``ch_RepSVTR_rec`` recognizer, as PaddleOCR's
``ppocr/modeling/backbones/rec_repvit.py`` builds it (``RepSVTR()``: a ``RepViT`` of 13 blocks).

A RepViT network: a patch embedding (two 3x3 stride-2 conv-BN pairs around a GELU, ``features.0``),
then blocks of a token mixer and a residual channel mixer (1x1 expand x2, GELU, 1x1 compress,
``channel_mixer.m``). A block that keeps its shape mixes tokens with ``RepVGGDW`` (a depthwise
3x3 conv-BN, a biased depthwise 1x1 ``conv1`` and the identity, summed and normalized by ``bn``),
then squeeze-excitation in some blocks; a block with a (2, 1) stride mixes them with a strided depthwise
conv-BN, squeeze-excitation or an identity, and a 1x1 conv-BN to the new width. The map, 1/16 of
the height and 1/4 of the width, is average-pooled over its whole height and 2 columns: a
48 x 320 line gives 384 x 1 x 40.

Each part exists in two forms:

* training (``reparam=False``): every conv-BN pair is ``Conv2dBN`` (Paddle's ``Conv2D_BN``:
  children ``c`` and ``bn``), ``RepVGGDW`` keeps its three branches. These are a training
  checkpoint's names, and what PaddleOCR's ``tools/export_model.py`` saves: it fuses only a
  ``PPLCNetV3`` backbone's rep layers, so an exported RepSVTR program runs every branch and
  batch norm.
* fused (``reparam=True``, or after ``reparameterize()`` of the ``ptocr.models.reparam``
  protocol): what ``RepViT.rep()`` of later PaddleOCR sources leaves (``Conv2D_BN.fuse``,
  ``RepVGGDW.fuse``): every conv-BN pair and every ``RepVGGDW`` one biased conv under the same
  name (``features.0.0.weight``, ``features.1.token_mixer.0.bias``).

Paddle details kept: the squeeze-excitation (``SEModule``: ``fc1``, ReLU, ``fc2``, sigmoid gate on
the spatial mean) reduces to ``make_divisible(channels / 4, 8)``; ``nn.GELU`` is exact (erf);
batch norms use Paddle's eps 1e-5; a stride compares with the int 1, so the (2, 1) blocks take
the strided path.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ptocr.errors import ArchitectureError
from ptocr.models.layers import GlobalAvgPool, PaddleBatchNorm2d, folded_conv, int_pair, make_divisible
from ptocr.models.registry import register
from ptocr.models.reparam import fuse_reparameterizable

# RepSVTR's blocks (rec_repvit.py): kernel, expansion, out channels, SE, HS (unused: every
# block's activation is GELU), stride.
REPSVTR_CFGS = (
    (3, 2, 96, True, False, 1),
    (3, 2, 96, False, False, 1),
    (3, 2, 96, False, False, 1),
    (3, 2, 192, False, True, (2, 1)),
    (3, 2, 192, True, True, 1),
    (3, 2, 192, False, True, 1),
    (3, 2, 192, True, True, 1),
    (3, 2, 192, False, True, 1),
    (3, 2, 192, True, True, 1),
    (3, 2, 192, False, True, 1),
    (3, 2, 384, False, True, (2, 1)),
    (3, 2, 384, True, True, 1),
    (3, 2, 384, False, True, 1),
)


class Conv2dBN(nn.Sequential):
    """Paddle's ``Conv2D_BN``: a bias-free conv ``c`` and a batch norm ``bn``."""

    def __init__(self, in_channels, out_channels, kernel_size=1, stride=1, padding=0, groups=1):
        super().__init__()
        self.c = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=False)
        self.bn = PaddleBatchNorm2d(out_channels)

    def fused(self) -> nn.Conv2d:
        """``Conv2D_BN.fuse``: the biased conv computing ``bn(c(x))``."""
        return folded_conv(self.c, self.bn)


def _conv_bn(in_channels, out_channels, kernel_size=1, stride=1, padding=0, groups=1, *, fused: bool):
    """A ``Conv2dBN``, or (fused) the biased conv it folds into."""
    if fused:
        return nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=True)
    return Conv2dBN(in_channels, out_channels, kernel_size, stride, padding, groups)


class RepVGGDW(nn.Module):
    """rec_repvit.py's ``RepVGGDW``: ``bn(conv(x) + conv1(x) + x)``, ``conv`` a depthwise 3x3
    ``Conv2dBN``, ``conv1`` a depthwise 1x1 conv with a bias. ``fused()``: the biased depthwise
    3x3 conv ``RepVGGDW.fuse`` returns."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = Conv2dBN(channels, channels, 3, 1, 1, groups=channels)
        self.conv1 = nn.Conv2d(channels, channels, 1, 1, 0, groups=channels)
        self.bn = PaddleBatchNorm2d(channels)

    def forward(self, x):
        return self.bn((self.conv(x) + self.conv1(x)) + x)

    @torch.no_grad()
    def fused(self) -> nn.Conv2d:
        inner = self.conv.fused()  # float64 arithmetic, cast once below
        kernel = inner.weight.double() + F.pad(self.conv1.weight.double(), [1, 1, 1, 1])
        kernel[:, 0, 1, 1] += 1.0  # the identity: each channel's own input, centre tap
        bias = inner.bias.double() + self.conv1.bias.double()
        scale = self.bn.weight.double() / (self.bn.running_var.double() + self.bn.eps).sqrt()
        inner.weight.copy_(kernel * scale.reshape(-1, 1, 1, 1))
        inner.bias.copy_(self.bn.bias.double() + (bias - self.bn.running_mean.double()) * scale)
        return inner


def _fuse_children(seq: nn.Sequential) -> None:
    """Each ``Conv2dBN`` / ``RepVGGDW`` child of ``seq`` replaced by its fused conv (same index)."""
    for name, child in list(seq.named_children()):
        if isinstance(child, (Conv2dBN, RepVGGDW)):
            setattr(seq, name, child.fused())


class SqueezeExcite(nn.Module):
    """rec_repvit.py's ``SEModule``: spatial mean -> ``fc1`` (1x1 conv) -> ReLU -> ``fc2`` ->
    sigmoid, which scales the input's channels."""

    def __init__(self, channels: int, rd_ratio: float = 0.25):
        super().__init__()
        hidden = make_divisible(channels * rd_ratio, round_limit=0.0)  # rec_repvit.py's SE width
        self.avg_pool = GlobalAvgPool()
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.act = nn.ReLU()
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.fc2(self.act(self.fc1(self.avg_pool(x)))))


class Residual(nn.Module):
    """rec_repvit.py's ``Residual`` (drop 0, as RepSVTR builds it): ``x + m(x)``."""

    def __init__(self, m: nn.Module):
        super().__init__()
        self.m = m

    def forward(self, x):
        return x + self.m(x)


class PatchEmbed(nn.Sequential):
    """``features.0``: conv-BN 3x3 s2 -> GELU -> conv-BN 3x3 s2 (total stride 4)."""

    def __init__(self, in_channels: int, out_channels: int, fused: bool = False):
        super().__init__(
            _conv_bn(in_channels, out_channels // 2, 3, 2, 1, fused=fused),
            nn.GELU(),
            _conv_bn(out_channels // 2, out_channels, 3, 2, 1, fused=fused),
        )

    @torch.no_grad()
    def reparameterize(self) -> None:
        _fuse_children(self)


class RepViTBlock(nn.Module):
    """Token mixer then residual channel mixer (see the module docstring)."""

    def __init__(self, inp: int, hidden_dim: int, oup: int, kernel_size: int, stride, use_se: bool,
                 fused: bool = False):
        super().__init__()
        if hidden_dim != 2 * inp:
            raise ArchitectureError(f"RepViTBlock: hidden_dim must be 2 x {inp}, got {hidden_dim}")
        se = SqueezeExcite(inp) if use_se else nn.Identity()
        if stride != 1:  # Paddle compares with the int 1: a (2, 1) stride takes this path
            self.token_mixer = nn.Sequential(
                _conv_bn(inp, inp, kernel_size, int_pair(stride), (kernel_size - 1) // 2, inp, fused=fused),
                se,
                _conv_bn(inp, oup, fused=fused),
            )
        else:
            if inp != oup:
                raise ArchitectureError(f"RepViTBlock: a stride-1 block keeps its width, got {inp} -> {oup}")
            dw = (nn.Conv2d(inp, inp, 3, 1, 1, groups=inp, bias=True) if fused else RepVGGDW(inp))
            self.token_mixer = nn.Sequential(dw, se)
        self.channel_mixer = Residual(nn.Sequential(
            _conv_bn(oup, 2 * oup, fused=fused),
            nn.GELU(),
            _conv_bn(2 * oup, oup, fused=fused),
        ))

    def forward(self, x):
        return self.channel_mixer(self.token_mixer(x))

    @torch.no_grad()
    def reparameterize(self) -> None:
        _fuse_children(self.token_mixer)
        _fuse_children(self.channel_mixer.m)


@register("backbone")
class RepSVTR(nn.Module):
    """PaddleOCR's ``RepSVTR`` (rec_repvit.py): ``RepViT`` with ``REPSVTR_CFGS``, recognizer layout.

    Args:
        in_channels: image channels.
        reparam: build the fused form directly (each conv-BN pair and ``RepVGGDW`` one biased conv).
    """

    def __init__(self, in_channels: int = 3, reparam: bool = False):
        super().__init__()
        cfgs = REPSVTR_CFGS
        channels = cfgs[0][2]
        layers: list[nn.Module] = [PatchEmbed(in_channels, channels, fused=reparam)]
        for k, t, c, use_se, _use_hs, s in cfgs:
            out = make_divisible(c, 8)
            layers.append(RepViTBlock(channels, make_divisible(channels * t, 8), out, k, s, use_se, fused=reparam))
            channels = out
        self.features = nn.ModuleList(layers)
        self.out_channels = cfgs[-1][2]

    def forward(self, x):
        for f in self.features:
            x = f(x)
        # Paddle's avg_pool2d(x, [h, 2]) over the whole height. A constant in the program (its input
        # height is fixed at 48, so h is 3), and in a trace: int() makes it one (ONNX needs a
        # constant kernel). The stride spelled out: oneDNN Graph refuses a traced pool whose stride
        # is left to default ("could not set attribute to the op").
        h = int(x.shape[2])
        return F.avg_pool2d(x, (h, 2), (h, 2))

    def rep(self) -> "RepSVTR":
        """Fuse every conv-BN pair and ``RepVGGDW`` in place (training form -> fused); returns self."""
        return fuse_reparameterizable(self)

    @property
    def is_repped(self) -> bool:
        return not any(isinstance(m, (Conv2dBN, RepVGGDW)) for m in self.modules())
