"""The large-kernel necks of the PP-OCRv6 detectors (PaddleOCR 3.7 ``db_fpn.py``), built on
UniRepLKNet's dilated re-parameterizable depthwise conv.

* ``RepLKFPN`` (tiny, small): RSEFPN whose 3x3 output convs become a large depthwise
  ``DilatedReparamBlock`` (``inp_conv_dw``), a bias-free 1x1 (``inp_conv_pw``) to
  ``out_channels // 4`` and squeeze-excitation (``inp_conv_se``, residual with ``shortcut``).
* ``RepLKPAN`` (medium): LKPAN whose 9x9 convs (``inp_conv``, ``pan_lat_conv``) become a
  ``DilatedReparamConv`` (a 9x9 ``DilatedReparamBlock``, a 1x1 ``pw``, its ``bn``), with the
  IntraCL blocks.

Training form: each ``DilatedReparamBlock`` is a kxk depthwise conv ``lk_origin`` with its
``origin_bn`` plus parallel dilated depthwise conv-BN branches ``dil_conv_k{k}_{r}`` /
``dil_bn_k{k}_{r}`` (kernel k, dilation r); the inference form (``reparam=True`` or
``reparameterize()``) is one biased ``lk_origin`` that computes their sum, and a
``DilatedReparamConv``'s ``bn`` is folded into a biased ``pw``.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ptocr.errors import ArchitectureError
from ptocr.models.layers import (PaddleBatchNorm2d, SEModule, bn_scale_shift, cat_upsampled, folded_conv,
                                 lateral_top_down)
from ptocr.models.necks.lkpan import IntraCLBlock
from ptocr.models.necks.rsefpn import RSELayer
from ptocr.models.registry import register

# kernel size of the large conv -> its parallel branches as (kernel, dilation).
DILATED_BRANCHES = {
    5: ((3, 1), (3, 2)),
    7: ((5, 1), (3, 2), (3, 3)),
    9: ((5, 1), (5, 2), (3, 3), (3, 4)),
    11: ((5, 1), (5, 2), (3, 3), (3, 4), (3, 5)),
    13: ((5, 1), (7, 2), (3, 3), (3, 4), (3, 5)),
}


class DilatedReparamBlock(nn.Module):
    """A large depthwise conv trained with parallel dilated depthwise branches (see the
    module docstring); ``reparameterize()`` merges them into ``lk_origin``."""

    def __init__(self, channels: int, kernel_size: int, fused: bool = False):
        super().__init__()
        if kernel_size not in DILATED_BRANCHES:
            raise ArchitectureError(f"DilatedReparamBlock: kernel_size must be one of "
                                    f"{sorted(DILATED_BRANCHES)}, got {kernel_size!r}")
        self.kernel_size = kernel_size
        self.branches = DILATED_BRANCHES[kernel_size]
        self.fused = fused
        self.lk_origin = nn.Conv2d(channels, channels, kernel_size, 1, kernel_size // 2,
                                   groups=channels, bias=fused)
        if fused:
            return
        self.origin_bn = PaddleBatchNorm2d(channels)
        for k, r in self.branches:
            span = r * (k - 1) + 1
            self.add_module(f"dil_conv_k{k}_{r}", nn.Conv2d(channels, channels, k, 1, span // 2, dilation=r,
                                                            groups=channels, bias=False))
            self.add_module(f"dil_bn_k{k}_{r}", PaddleBatchNorm2d(channels))

    def forward(self, x):
        if self.fused:
            return self.lk_origin(x)
        out = self.origin_bn(self.lk_origin(x))
        for k, r in self.branches:
            out = out + getattr(self, f"dil_bn_k{k}_{r}")(getattr(self, f"dil_conv_k{k}_{r}")(x))
        return out

    @torch.no_grad()
    def reparameterize(self) -> None:
        if self.fused:
            return
        merged = folded_conv(self.lk_origin, self.origin_bn)
        kernel, bias = merged.weight.double(), merged.bias.double()
        big = self.kernel_size
        for k, r in self.branches:
            conv, bn = getattr(self, f"dil_conv_k{k}_{r}"), getattr(self, f"dil_bn_k{k}_{r}")
            scale, shift = bn_scale_shift(bn)
            small = conv.weight.double() * scale.reshape(-1, 1, 1, 1)
            span = r * (k - 1) + 1
            offset = big // 2 - span // 2
            # a dilated kxk kernel is a sparse span x span one: its taps every r pixels
            kernel[:, :, offset:offset + span:r, offset:offset + span:r] += small
            bias += shift
            delattr(self, f"dil_conv_k{k}_{r}")
            delattr(self, f"dil_bn_k{k}_{r}")
        del self.origin_bn
        merged.weight.copy_(kernel)
        merged.bias.copy_(bias)
        self.lk_origin = merged
        self.fused = True


class DilatedReparamConv(nn.Module):
    """A dense large-kernel conv replaced by ``dw`` (a ``DilatedReparamBlock``), a bias-free
    1x1 ``pw`` and its ``bn`` (fused: ``pw`` biased, no ``bn``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 9, fused: bool = False):
        super().__init__()
        self.dw = DilatedReparamBlock(in_channels, kernel_size, fused=fused)
        self.pw = nn.Conv2d(in_channels, out_channels, 1, bias=fused)
        self.bn = None if fused else PaddleBatchNorm2d(out_channels)

    def forward(self, x):
        x = self.pw(self.dw(x))
        return x if self.bn is None else self.bn(x)

    @torch.no_grad()
    def reparameterize(self) -> None:
        # dw merges its own branches (it is re-parameterizable too); here the pw-BN pair.
        if self.bn is not None:
            self.pw = folded_conv(self.pw, self.bn)
            self.bn = None


def _four_levels(neck: str, in_channels, out_channels: int) -> list[int]:
    """The four backbone levels' channels; each level's branch gets a quarter of ``out_channels``."""
    in_channels = list(in_channels)
    if len(in_channels) != 4:
        raise ArchitectureError(f"{neck} needs 4 input levels, got in_channels={in_channels}")
    if out_channels % 4:
        raise ArchitectureError(f"{neck}: out_channels must be a multiple of 4, got {out_channels}")
    return in_channels


@register("neck")
class RepLKFPN(nn.Module):
    """Args:
        in_channels: the 4 backbone channels, finest level first.
        out_channels: channels of the fused map (64 tiny, 96 small).
        dilated_kernel_size: the depthwise kernel of the output convs (5 tiny, 7 small).
        shortcut: residual around each squeeze-excitation.
        reparam: build the inference form.
    """

    def __init__(self, in_channels, out_channels: int, dilated_kernel_size: int = 7,
                 shortcut: bool = True, reparam: bool = False):
        super().__init__()
        in_channels = _four_levels("RepLKFPN", in_channels, out_channels)
        self.out_channels = out_channels
        self.shortcut = shortcut
        q = out_channels // 4
        self.ins_conv = nn.ModuleList(RSELayer(c, out_channels, 1, shortcut) for c in in_channels)
        self.inp_conv_dw = nn.ModuleList(
            DilatedReparamBlock(out_channels, dilated_kernel_size, fused=reparam) for _ in in_channels)
        self.inp_conv_pw = nn.ModuleList(nn.Conv2d(out_channels, q, 1, bias=False) for _ in in_channels)
        self.inp_conv_se = nn.ModuleList(SEModule(q) for _ in in_channels)

    def _inp(self, x, i: int):
        x = self.inp_conv_pw[i](self.inp_conv_dw[i](x))
        return x + self.inp_conv_se[i](x) if self.shortcut else self.inp_conv_se[i](x)

    def forward(self, x):
        in5, out4, out3, out2 = lateral_top_down(self.ins_conv, x)
        return cat_upsampled([(self._inp(in5, 3), 8), (self._inp(out4, 2), 4), (self._inp(out3, 1), 2),
                              (self._inp(out2, 0), 1)])


@register("neck")
class RepLKPAN(nn.Module):
    """Args:
        in_channels: channels of the four backbone levels (1/4 .. 1/32).
        out_channels: channels of the fused map (256 for medium).
        intracl: the IntraCL blocks ``incl1..incl4`` (reduce factor 2).
        reparam: build the inference form.
    """

    def __init__(self, in_channels, out_channels: int, intracl: bool = True, reparam: bool = False):
        super().__init__()
        in_channels = _four_levels("RepLKPAN", in_channels, out_channels)
        self.out_channels = out_channels
        self.intracl = intracl
        q = out_channels // 4
        self.ins_conv = nn.ModuleList(nn.Conv2d(c, out_channels, 1, bias=False) for c in in_channels)
        self.inp_conv = nn.ModuleList(DilatedReparamConv(out_channels, q, 9, fused=reparam) for _ in in_channels)
        self.pan_head_conv = nn.ModuleList(
            nn.Conv2d(q, q, 3, stride=2, padding=1, bias=False) for _ in range(len(in_channels) - 1))
        self.pan_lat_conv = nn.ModuleList(DilatedReparamConv(q, q, 9, fused=reparam) for _ in in_channels)
        if intracl:
            for i in range(1, 5):
                self.add_module(f"incl{i}", IntraCLBlock(q, reduce_factor=2))

    def forward(self, x):
        in5, out4, out3, out2 = lateral_top_down(self.ins_conv, x)
        f5, f4, f3, f2 = (self.inp_conv[i](v) for i, v in ((3, in5), (2, out4), (1, out3), (0, out2)))
        pan3 = f3 + self.pan_head_conv[0](f2)
        pan4 = f4 + self.pan_head_conv[1](pan3)
        pan5 = f5 + self.pan_head_conv[2](pan4)
        p = [self.pan_lat_conv[0](f2), self.pan_lat_conv[1](pan3), self.pan_lat_conv[2](pan4),
             self.pan_lat_conv[3](pan5)]
        if self.intracl:
            p = [getattr(self, f"incl{i + 1}")(v) for i, v in enumerate(p)]
        return cat_upsampled([(p[3], 8), (p[2], 4), (p[1], 2), (p[0], 1)])

