"""PP-LCNetV3, the backbone of the PP-OCRv4 mobile detector (``det=True``, x0.75) and
recognizer (``det=False``, x0.95), as PaddleOCR's ``rec_lcnetv3.py`` builds it.

Every depthwise / pointwise conv is a ``LearnableRepLayer`` and exists in two forms:

* unfused (training): kxk conv-BN branches ``conv_kxk.*``, a 1x1 conv-BN branch ``conv_1x1``
  (kxk layers only), a BN ``identity`` branch (same channels, stride 1), a learnable affine
  ``lab`` (scalar scale/bias) and ``act`` = hardswish followed by its own learnable affine
  ``act.lab``. These are the names a PaddleOCR training checkpoint holds.
* fused (inference, ``reparam=True`` or after ``reparameterize()`` of the
  ``ptocr.models.reparam`` protocol): one biased conv ``reparam_conv``, the affine as the
  scalars ``w``/``b`` and the activation affine as ``activation.scale/.bias``.
  These are the names of the official ch_PP-OCRv4 det/rec inference programs, exported by a
  PaddleOCR build whose layer classes were ``MobileOneBlock`` (params ``w``, ``b``) and a
  learnable hardswish (``activation``); the program computes exactly
  ``act(w * reparam_conv(x) + b)`` with ``act(y) = activation.scale * hardswish(y) +
  activation.bias``. (Newer exports, e.g. en_PP-OCRv4_rec, name the same scalars
  ``lab.scale`` and ``act.lab.scale``: a rename for the mapping table.)

The ``.pdiparams.info`` of those programs lists tensors the program does not hold, which the
fused form therefore omits:

* ``*.id_tensor``: the identity kernel PaddleOCR caches while fusing; a constant, not a weight.
* ``activation.*`` of det layers with stride 2: PaddleOCR skips the activation when
  ``stride == 2`` (an int; the rec tuple strides such as ``(2, 1)`` keep it).
* ``conv1.hardswish.*``: the stem is conv + BN only; its activation module is never called.
* rec ``last_conv``, ``hardswish``, ``fc``: a classification tail the recognizer never runs
  (its backbone ends with an average pool).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ptocr.errors import ArchitectureError
from ptocr.models.layers import (PADDLE_HARDSIGMOID_SLOPE, ConvBNAct, LearnableAffineBlock, PaddleBatchNorm2d,
                                  SEModule, bn_scale_shift, capturing_graph, make_divisible)
from ptocr.models.reparam import fuse_reparameterizable
from ptocr.models.registry import register

# Per stage: kernel, in channels, out channels, stride, SE (before scaling).
NET_CONFIG_DET = {
    "blocks2": [(3, 16, 32, 1, False)],
    "blocks3": [(3, 32, 64, 2, False), (3, 64, 64, 1, False)],
    "blocks4": [(3, 64, 128, 2, False), (3, 128, 128, 1, False)],
    "blocks5": [(3, 128, 256, 2, False)] + [(5, 256, 256, 1, False)] * 4,
    "blocks6": [(5, 256, 512, 2, True), (5, 512, 512, 1, True),
                (5, 512, 512, 1, False), (5, 512, 512, 1, False)],
}
# The recognizer keeps width resolution: strides are (h, w) tuples where it downsamples.
NET_CONFIG_REC = {
    "blocks2": [(3, 16, 32, 1, False)],
    "blocks3": [(3, 32, 64, 1, False), (3, 64, 64, 1, False)],
    "blocks4": [(3, 64, 128, (2, 1), False), (3, 128, 128, 1, False)],
    "blocks5": [(3, 128, 256, (1, 2), False)] + [(5, 256, 256, 1, False)] * 4,
    "blocks6": [(5, 256, 512, (2, 1), True), (5, 512, 512, 1, True),
                (5, 512, 512, (2, 1), False), (5, 512, 512, 1, False)],
}
# Channels of the det 1x1 projections (``layer_list``) before scaling.
_DET_PROJ = (16, 24, 56, 480)
_STAGES = ("blocks2", "blocks3", "blocks4", "blocks5", "blocks6")


def _divisible(v: float) -> int:
    """PP-LCNetV3's channel rounding: nearest multiple of 16, never below 90% of ``v``."""
    return make_divisible(v, 16)


class Act(nn.Module):
    """Unfused-form activation: hardswish, then its own affine ``lab``."""

    def __init__(self):
        super().__init__()
        self.lab = LearnableAffineBlock()

    def forward(self, x):
        return self.lab(F.hardswish(x))


class AffineHardswish(LearnableAffineBlock):
    """Fused-form activation (``activation.scale/.bias``): ``scale * hardswish(x) + bias``."""

    def forward(self, x):
        return self.scale * F.hardswish(x) + self.bias


def _fold_bn(kernel: torch.Tensor, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """(kernel, bias) of ``bn(conv(x, kernel))`` as one biased conv, in float64."""
    scale, shift = bn_scale_shift(bn)
    return kernel.double() * scale.reshape(-1, 1, 1, 1), shift


class LearnableRepLayer(nn.Module):
    """MobileOne-style re-parameterizable conv of PP-LCNetV3 (see the module docstring).

    Implements the ``ptocr.models.reparam`` protocol: ``reparameterize()`` fuses the branches
    into ``reparam_conv``; ``inference_form()`` gives the fused layer with its scalar affine
    folded into that conv (``FoldedRepLayer``)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, groups=1,
                 num_conv_branches=1, reparam=False):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.groups = groups
        self.padding = (kernel_size - 1) // 2
        # Paddle compares with the int 2: rec tuple strides like (2, 1) keep the activation.
        self.use_act = stride != 2
        self.is_repped = False
        if reparam:
            self._build_fused()
            return
        # Paddle tests ``stride == 1`` literally, so a tuple stride never gets an identity.
        self.identity = (PaddleBatchNorm2d(in_channels)
                         if in_channels == out_channels and stride == 1 else None)
        # Branches: bias-free conv + BN, no activation (the sum gets the affine and activation).
        self.conv_kxk = nn.ModuleList(
            ConvBNAct(in_channels, out_channels, kernel_size, stride, groups=groups)
            for _ in range(num_conv_branches)
        )
        self.conv_1x1 = (ConvBNAct(in_channels, out_channels, 1, stride, groups=groups)
                         if kernel_size > 1 else None)
        self.lab = LearnableAffineBlock()
        self.act = Act()  # PaddleOCR builds it (and checkpoints hold it) even when unused

    def _build_fused(self, w=None, b=None, activation=None):
        self.reparam_conv = nn.Conv2d(self.in_channels, self.out_channels, self.kernel_size,
                                      self.stride, self.padding, groups=self.groups, bias=True)
        self.w = w if w is not None else nn.Parameter(torch.ones(1))
        self.b = b if b is not None else nn.Parameter(torch.zeros(1))
        if self.use_act:
            self.activation = activation if activation is not None else AffineHardswish()
        self.is_repped = True

    def forward(self, x):
        if self.is_repped:
            out = self.w * self.reparam_conv(x) + self.b
            return self.activation(out) if self.use_act else out
        out = 0
        if self.identity is not None:
            out = out + self.identity(x)
        if self.conv_1x1 is not None:
            out = out + self.conv_1x1(x)
        for conv in self.conv_kxk:
            out = out + conv(x)
        out = self.lab(out)
        return self.act(out) if self.use_act else out

    def _fused_kernel_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        k = self.kernel_size
        ref = self.conv_kxk[0].conv.weight
        kernel = torch.zeros(ref.shape, dtype=torch.float64, device=ref.device)
        bias = torch.zeros(self.out_channels, dtype=torch.float64, device=ref.device)
        for branch in self.conv_kxk:
            kk, bb = _fold_bn(branch.conv.weight, branch.bn)
            kernel += kk
            bias += bb
        if self.conv_1x1 is not None:
            kk, bb = _fold_bn(self.conv_1x1.conv.weight, self.conv_1x1.bn)
            p = k // 2
            kernel += F.pad(kk, [p, p, p, p])  # a 1x1 kernel is the centre tap of a kxk one
            bias += bb
        if self.identity is not None:
            # identity as a conv: channel i reads its own input at the kernel centre.
            ident = torch.zeros_like(kernel)
            per_group = self.in_channels // self.groups
            idx = torch.arange(self.in_channels, device=ref.device)
            ident[idx, idx % per_group, k // 2, k // 2] = 1.0
            kk, bb = _fold_bn(ident, self.identity)
            kernel += kk
            bias += bb
        return kernel, bias

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fuse the branches into ``reparam_conv`` in place; outputs are unchanged."""
        if self.is_repped:
            return
        kernel, bias = self._fused_kernel_bias()
        ref = self.conv_kxk[0].conv.weight
        activation = None
        if self.use_act:
            activation = AffineHardswish()  # takes over the trained scalars, not new ones
            activation.scale = self.act.lab.scale
            activation.bias = self.act.lab.bias
        w, b = self.lab.scale, self.lab.bias
        for name in ("identity", "conv_kxk", "conv_1x1", "lab", "act"):
            delattr(self, name)
        self._build_fused(w, b, activation)
        self.reparam_conv.to(device=ref.device, dtype=ref.dtype)
        self.reparam_conv.weight.copy_(kernel)
        self.reparam_conv.bias.copy_(bias)

    @torch.no_grad()
    def inference_form(self) -> "FoldedRepLayer | None":
        """The fused layer with ``w`` and ``b`` folded into its conv (two fewer full-size
        elementwise passes), taking over the conv; None before fusing, or when the activation is
        not a plain ``AffineHardswish`` (e.g. marked to compute in float64)."""
        if not self.is_repped or (self.use_act and type(self.activation) is not AffineHardswish):
            return None
        conv, dtype = self.reparam_conv, self.reparam_conv.weight.dtype
        w, b = self.w.double(), self.b.double()  # shape [1] scalars
        conv.weight = nn.Parameter((conv.weight.double() * w).to(dtype), requires_grad=False)
        conv.bias = nn.Parameter((conv.bias.double() * w + b).to(dtype), requires_grad=False)
        return FoldedRepLayer(conv, self.activation if self.use_act else None)


class FoldedRepLayer(nn.Module):
    """A fused ``LearnableRepLayer`` with ``w`` and ``b`` inside the conv, for inference only.
    Its activation ``scale * hardswish(y) + bias`` runs in place on the conv output, which
    nothing else reads: the same values, without allocating two more full-size tensors. The
    hardswish is a module, so ``ptocr.optimize`` fuses it into the conv's kernel (or, where it
    cannot, makes it in place); built out of place, so that pass sees the conv's output read by
    the hardswish alone and not by the in-place affine after it."""

    def __init__(self, conv: nn.Conv2d, activation: AffineHardswish | None):
        super().__init__()
        self.conv = conv
        self.act = None if activation is None else nn.Hardswish()
        self.act_scale = None if activation is None else activation.scale
        self.act_bias = None if activation is None else activation.bias

    def forward(self, x):
        x = self.conv(x)
        if self.act is None:
            return x
        x = self.act(x)
        if self.act_scale is None:  # the affine taken over by the next conv (LCNetV3Block)
            return x
        tracked = torch.is_grad_enabled() and any(t.requires_grad for t in (x, self.act_scale, self.act_bias))
        if capturing_graph() or tracked or x.device.type != "cpu" or x.dtype != torch.float32:
            # Graphs fuse these two into the conv's kernel; autograd needs them (grad mode alone
            # does not: a frozen model's output would depend on it); .item() would wait for a GPU; in
            # bfloat16 / float16 one rounding instead of two moves what those read (measured:
            # 88 against 91 of 102 bf16 detections and lines as float32's), so they keep theirs.
            return x.mul_(self.act_scale).add_(self.act_bias)
        # One pass over the map instead of two: 0.55x the time on a 240 x 12 x 80 map (AMD EPYC).
        return torch.add(self.act_bias, x, alpha=self.act_scale.item(), out=x)

    @torch.no_grad()
    def take_input_affine(self, scale: torch.Tensor, bias: torch.Tensor) -> None:
        """Make this layer's 1x1 conv compute ``conv(scale * x + bias)`` for scalar ``scale`` and
        ``bias`` (exact: a 1x1 conv pads nothing, so every input term is scaled and shifted)."""
        conv, dtype = self.conv, self.conv.weight.dtype
        w = conv.weight.double()
        conv.bias = nn.Parameter((conv.bias.double() + bias.double() * w.sum(dim=(1, 2, 3))).to(dtype),
                                 requires_grad=False)
        conv.weight = nn.Parameter((w * scale.double()).to(dtype), requires_grad=False)


class LCNetV3Block(nn.Module):
    """Depthwise rep conv -> optional SE -> pointwise rep conv."""

    def __init__(self, in_channels, out_channels, stride, dw_size, use_se=False,
                 conv_kxk_num=4, reparam=False):
        super().__init__()
        self.use_se = use_se
        self.dw_conv = LearnableRepLayer(in_channels, in_channels, dw_size, stride,
                                         groups=in_channels, num_conv_branches=conv_kxk_num,
                                         reparam=reparam)
        if use_se:
            self.se = SEModule(in_channels, slope=PADDLE_HARDSIGMOID_SLOPE)
        self.pw_conv = LearnableRepLayer(in_channels, out_channels, 1, 1,
                                         num_conv_branches=conv_kxk_num, reparam=reparam)

    def forward(self, x):
        x = self.dw_conv(x)
        if self.use_se:
            x = self.se(x)
        return self.pw_conv(x)

    @torch.no_grad()
    def inference_form(self) -> "LCNetV3Block | None":
        """This block with both rep layers in their folded form and, without SE, the depthwise
        layer's output affine (``scale * hardswish + bias``) taken over by the pointwise 1x1
        conv: two fewer elementwise passes over the block's widest map. None where a layer has
        no folded form (``LearnableRepLayer.inference_form``); checked before anything changes."""
        dw, pw = self.dw_conv, self.pw_conv
        if not all(isinstance(m, LearnableRepLayer) and m.is_repped
                   and (not m.use_act or type(m.activation) is AffineHardswish) for m in (dw, pw)):
            return None
        self.dw_conv, self.pw_conv = dw.inference_form(), pw.inference_form()
        folded = self.dw_conv
        pw_conv = self.pw_conv.conv
        if (not self.use_se and folded.act is not None and pw_conv.kernel_size == (1, 1)
                and pw_conv.padding == (0, 0) and pw_conv.bias is not None):
            self.pw_conv.take_input_affine(folded.act_scale, folded.act_bias)
            folded.act_scale = folded.act_bias = None
        return self


@register("backbone")
class PPLCNetV3(nn.Module):
    """PaddleOCR PPLCNetV3.

    Args:
        in_channels: image channels.
        scale: width multiplier (0.75 for the v4 mobile detector, 0.95 for the recognizer).
        det: True -> the 4 stage outputs (blocks3..6) projected by 1x1 convs ``layer_list``,
            ``out_channels`` a list; False -> rec layout, one map pooled over 3x2 cells
            (eval) or adaptively to 1 x 40 (training), ``out_channels`` an int.
        conv_kxk_num: kxk branches per rep layer in the unfused form.
        reparam: build the rep layers directly in fused form (what inference models hold).
    """

    def __init__(self, in_channels: int = 3, scale: float = 1.0, det: bool = False,
                 conv_kxk_num: int = 4, reparam: bool = False):
        super().__init__()
        if not scale > 0:
            raise ArchitectureError(f"PPLCNetV3: scale must be positive, got {scale!r}")
        if conv_kxk_num < 1:
            raise ArchitectureError(f"PPLCNetV3: conv_kxk_num must be >= 1, got {conv_kxk_num!r}")
        self.scale = scale
        self.det = det
        cfg = NET_CONFIG_DET if det else NET_CONFIG_REC

        self.conv1 = ConvBNAct(in_channels, _divisible(16 * scale), 3, 2)
        for stage in _STAGES:
            setattr(self, stage, nn.Sequential(*(
                LCNetV3Block(_divisible(cin * scale), _divisible(cout * scale), s, k,
                             se, conv_kxk_num, reparam)
                for k, cin, cout, s, se in cfg[stage]
            )))

        if det:
            taps = [_divisible(cfg[st][-1][2] * scale) for st in _STAGES[1:]]
            self.out_channels = [int(c * scale) for c in _DET_PROJ]
            self.layer_list = nn.ModuleList(
                nn.Conv2d(cin, cout, 1) for cin, cout in zip(taps, self.out_channels)
            )
        else:
            self.out_channels = _divisible(512 * scale)

    def forward(self, x):
        x = self.blocks2(self.conv1(x))
        feats = []
        for stage in _STAGES[1:]:
            x = getattr(self, stage)(x)
            feats.append(x)
        if self.det:
            return [proj(f) for proj, f in zip(self.layer_list, feats)]
        if self.training:
            return F.adaptive_avg_pool2d(x, (1, 40))
        # The stride spelled out: oneDNN Graph refuses a traced pool whose stride is left to
        # default ("could not set attribute to the op"). The same pool.
        return F.avg_pool2d(x, (3, 2), (3, 2))

    def rep(self) -> "PPLCNetV3":
        """Fuse every rep layer in place (training form -> inference form); returns self."""
        return fuse_reparameterizable(self)

    @property
    def is_repped(self) -> bool:
        return all(m.is_repped for m in self.modules() if isinstance(m, LearnableRepLayer))

