"""Layers several PP-OCR networks share; their Paddle quirks are constructor arguments."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ptocr.errors import ArchitectureError
from ptocr.models.op_replay import is_recording


def as_float32(value: float) -> float:
    """``value`` rounded to float32: a constant as a Paddle program stores it (op attributes
    and ``full`` values are float32). Used as is, a decimal like 0.1666667 differs from the
    program's number by ~1e-8, which float64 parity sees once a network amplifies it."""
    return float(np.float32(value))


# paddle.nn.Hardsigmoid's default slope (never torch's exact 1/6), as programs store it.
PADDLE_HARDSIGMOID_SLOPE = as_float32(0.1666667)


def bn_scale_shift(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """An eval-mode batch norm as ``scale * x + shift`` per channel, in float64: what folding
    it into the conv before it multiplies and adds (cast once, by the caller)."""
    scale = bn.weight.double() / (bn.running_var.double() + bn.eps).sqrt()
    return scale, bn.bias.double() - bn.running_mean.double() * scale



def is_narrow(dtype: torch.dtype) -> bool:
    """float16 / bfloat16: the types whose batch norms stay float32."""
    return dtype.is_floating_point and torch.finfo(dtype).bits < 32


class _PaddleRunningStats:
    """Batch norm whose training updates the running statistics as Paddle's ``BatchNorm2D`` /
    ``BatchNorm`` do: ``running_var`` takes the batch's biased variance (sum / n), where
    PyTorch takes the unbiased one (sum / (n - 1)). The normalization itself (biased batch
    variance), eps 1e-5 and the momentum (PyTorch's 0.1 is Paddle's 0.9) are already the same.

    Torch's kernel runs as is (cuDNN, autograd) on a copy of the running variance, which it
    updates its way; the buffer then takes Paddle's value, per channel: an O(C) step instead
    of a second pass over the batch. Eval, state dict keys and ``isinstance(m, nn.BatchNorm2d)``
    (BN folding) are unchanged."""

    def forward(self, x):
        if not (self.training and self.track_running_stats and self.running_var is not None):
            return super().forward(x)
        self._check_input_dim(x)
        self.num_batches_tracked.add_(1)
        f = self._update_factor()
        # A copy: autograd keeps the tensor the kernel was given and refuses a changed one.
        var = self.running_var.clone()
        y = F.batch_norm(x, self.running_mean, var, self.weight, self.bias, True, f, self.eps)
        self._set_biased_running_var(var, f, x.numel() // x.shape[1])
        return y

    def _apply(self, fn, recurse=True):
        """``.half()``, ``.bfloat16()``, ``.to(float16)`` leave this batch norm float32, as AMP and
        ``ptocr.precision.cast_model`` do: the DB heads' running variances reach 1e8, infinity in
        float16 (every map zero), and torch's kernel takes a narrow input with float32 parameters
        and statistics, returning the input's type. Other conversions are ``fn``'s own."""
        def wide_if_narrowed(t):
            out = fn(t)
            if isinstance(out, torch.Tensor) and is_narrow(out.dtype):
                return t.to(device=out.device, dtype=torch.float32)  # from t: its values, not out's infinities
            return out
        return super()._apply(wide_if_narrowed, recurse)

    def _update_factor(self) -> float:
        # torch's weight of the batch in the update (after it counted this batch).
        if self.momentum is None:
            return 1.0 / float(self.num_batches_tracked)
        return self.momentum

    @torch.no_grad()
    def _set_biased_running_var(self, torch_var: torch.Tensor, f: float, n: int) -> None:
        # torch: v = (1 - f) old + f * s * n / (n - 1); Paddle's (1 - f) old + f * s
        # is v * (n - 1) / n + (1 - f) old / n.
        self.running_var.mul_((1.0 - f) / n).add_(torch_var, alpha=(n - 1) / n)


class PaddleBatchNorm2d(_PaddleRunningStats, nn.BatchNorm2d):
    """``nn.BatchNorm2d`` training as Paddle's ``BatchNorm2D`` (``_PaddleRunningStats``)."""


class PaddleBatchNorm1d(_PaddleRunningStats, nn.BatchNorm1d):
    """``nn.BatchNorm1d`` training as Paddle's ``BatchNorm1D`` (``_PaddleRunningStats``)."""


def folded_conv(conv: nn.Conv2d, bn: nn.BatchNorm2d | None = None) -> nn.Conv2d:
    """A biased conv computing ``bn(conv(x))`` (``conv(x)`` plus its bias where ``bn`` is
    None), in ``conv``'s dtype and device; the arithmetic in float64."""
    ref = conv.weight
    new = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    conv.dilation, conv.groups, bias=True).to(device=ref.device, dtype=ref.dtype)
    with torch.no_grad():
        if bn is None:
            new.weight.copy_(ref)
            new.bias.copy_(conv.bias if conv.bias is not None else torch.zeros_like(new.bias))
            return new
        scale, shift = bn_scale_shift(bn)
        bias = conv.bias.double() * scale if conv.bias is not None else 0
        new.weight.copy_(ref.double() * scale.reshape(-1, 1, 1, 1))
        new.bias.copy_(shift + bias)
    return new


class DropPath(nn.Module):
    """Stochastic depth per sample; identity in eval."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x):
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        mask = torch.floor(keep + torch.rand(shape, dtype=x.dtype, device=x.device))
        return x / keep * mask


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None, round_limit: float = 0.9) -> int:
    """Channel rounding of the MobileNet papers, which PaddleOCR's width-scaled networks use:
    ``v`` to the nearest multiple of ``divisor`` (at least ``min_value``, by default
    ``divisor``), one step up where that would lose more than 10% of ``v`` (below
    ``round_limit * v``; 0: never, as RepSVTR's SE width). MobileNetV3 and PP-LCNet round to 8,
    PP-LCNetV3 to 16."""
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < round_limit * v:
        new_v += divisor
    return new_v


def int_pair(v, what: str = "a stride") -> tuple[int, int]:
    """``v`` (an int, or a pair from a config) as an (h, w) pair of ints; anything else is an
    ArchitectureError naming ``what``."""
    if isinstance(v, int):
        return (v, v)
    v = tuple(int(i) for i in v)
    if len(v) != 2:
        raise ArchitectureError(f"{what} is an int or (h, w), got {v!r}")
    return v  # type: ignore[return-value]


# Activation modules by the names the families' configs use. Paddle's hard_swish
# (threshold 6, scale 6, offset 3) is torch's Hardswish; its Swish is torch's SiLU.
ACTIVATIONS = {"relu": nn.ReLU, "hardswish": nn.Hardswish, "silu": nn.SiLU}


def activation(name: str) -> nn.Module:
    """A new activation module by name (one of ``ACTIVATIONS``)."""
    if name not in ACTIVATIONS:
        raise ArchitectureError(f"unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


class ConvBNAct(nn.Sequential):
    """Conv -> batch norm -> optional activation -> optional learnable affine: the conv block
    of every PP-OCR backbone, run in that order as a ``Sequential`` of named children.

    The families differ only in details, which are arguments here:

    * ``padding``: ``None`` is ``(k - 1) // 2`` (odd kernels keep the size); an int or pair
      is used as given; ``"same"`` is Paddle's ``padding="SAME"`` at stride 1, ``k - 1``
      zeros split with the smaller half before (for k = 2: none before, one after), added by
      a ``pad`` module since a torch conv pads symmetrically.
    * ``act``: an ``ACTIVATIONS`` name or None; ``lab``: a ``LearnableAffineBlock`` after the
      activation (PP-HGNetV2 B0-B3), only built with one.
    * ``pre``: ``(name, module)`` run on the input before the conv, e.g. ResNet-vd's
      average-pool shortcut (its conv then runs at stride 1).
    * ``conv_name`` / ``bn_name`` / ``act_name``: the children's names, which are Paddle's
      structured parameter names (``conv``/``bn``, ``_conv``/``_batch_norm``, ``conv``/``norm``),
      so converted state dicts keep their keys. Batch norms use Paddle's default eps 1e-5.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=None,
                 groups: int = 1, *, bias: bool = False, act: str | None = None, lab: bool = False,
                 pre: tuple[str, nn.Module] | None = None, conv_name: str = "conv",
                 bn_name: str = "bn", act_name: str = "act"):
        super().__init__()
        if lab and act is None:
            raise ArchitectureError("ConvBNAct: a learnable affine (lab) follows an activation; act is None")
        if pre is not None:
            self.add_module(*pre)
        if padding == "same":
            total = kernel_size - 1
            self.pad = nn.ZeroPad2d((total // 2, total - total // 2) * 2)
            padding = 0
        elif padding is None:
            padding = (tuple((k - 1) // 2 for k in kernel_size) if isinstance(kernel_size, (tuple, list))
                       else (kernel_size - 1) // 2)
        self.add_module(conv_name, nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding,
                                             groups=groups, bias=bias))
        self.add_module(bn_name, PaddleBatchNorm2d(out_channels))
        if act is not None:
            self.add_module(act_name, activation(act))
        if lab:
            self.lab = LearnableAffineBlock()


class GlobalAvgPool(nn.Module):
    """Mean over H and W: ``nn.AdaptiveAvgPool2d(1)``'s value.

    Eager, one mean: ATen sums a map pairwise, and on a channels-last map one reduction over
    (H, W) runs several times faster than two.
    Compiled, two means (W, then H): inductor's kernel sums the whole map in one sequential loop,
    and summing the many thousand values of an RSEFPN map that way moves ch_PP-OCRv4_det
    several times further from its exact output than the eager pairwise sum (as Paddle's own
    sequential sum does); two levels keep the rounding small.

    ``fixed_window`` (set by ``ptocr.optimize.for_fixed_shape_graph``, for a static trace): average
    pooling with the traced map's size as its window. oneDNN Graph fuses that pooling with the
    convs around it, where a mean stays a PyTorch op between partitions. oneDNN sums a window in
    one sequential pass, so a map of more than ONE_WINDOW_MAX values pools in two levels (rows,
    then the column of row means), as the compiled form does."""

    ONE_WINDOW_MAX = 1024

    def __init__(self):
        super().__init__()
        self.fixed_window = False

    def forward(self, x):
        if self.fixed_window:
            return self._fixed_window(x)
        if torch.compiler.is_compiling():
            return x.mean(3, keepdim=True).mean(2, keepdim=True)
        return x.mean((2, 3), keepdim=True)

    def _fixed_window(self, x):
        h, w = int(x.shape[2]), int(x.shape[3])  # constants of the trace: its one input size
        if h * w > self.ONE_WINDOW_MAX:
            x, w = _window_mean(x, (1, w)), 1
        return _window_mean(x, (h, w))


def _window_mean(x, window):
    # Stride and padding spelled out: traced with torch's defaults, oneDNN Graph refused the
    # pooling op ("could not set attribute to the op").
    return F.avg_pool2d(x, window, stride=window, padding=0, ceil_mode=False, count_include_pad=False)


class SEModule(nn.Module):
    """Squeeze-excitation gated by Paddle's ``hard_sigmoid(slope, offset)``.

    PaddleOCR's MobileNetV3 and RSE layers call it with slope 0.2, PP-LCNet(V3) and
    MobileNetV1Enhance with Paddle's default (PADDLE_HARDSIGMOID_SLOPE); both are float32
    attributes in the programs, so the gate uses them rounded to float32.
    """

    def __init__(self, channels: int, reduction: int = 4, slope: float = 0.2, offset: float = 0.5):
        super().__init__()
        self.slope, self.offset = as_float32(slope), as_float32(offset)
        self.avg_pool = GlobalAvgPool()
        self.conv1 = nn.Conv2d(channels, channels // reduction, 1)
        self.conv2 = nn.Conv2d(channels // reduction, channels, 1)
        # Set by ptocr.optimize.for_inference: the 1x1 convs see a 1x1 map, and as matrices on
        # the pooled N x C vector they skip oneDNN's per-call set-up, which dominates convs
        # this small. The converted model calls the convs, as the Paddle program does
        # (converter.alignment matches PIR programs to those calls).
        self.as_matrices = False

    def forward(self, x):
        s = self.avg_pool(x)
        if self.as_matrices:
            hidden = F.relu(F.linear(s.flatten(1), self.conv1.weight.flatten(1), self.conv1.bias))
            s = F.linear(hidden, self.conv2.weight.flatten(1), self.conv2.bias)[:, :, None, None]
        else:
            s = self.conv2(F.relu(self.conv1(s)))
        return x * torch.clamp(s * self.slope + self.offset, 0.0, 1.0)


class LearnableAffineBlock(nn.Module):
    """``scale * x + bias`` with two learnable scalars (shape [1], as Paddle stores them)."""

    def __init__(self, scale_value: float = 1.0, bias_value: float = 0.0):
        super().__init__()
        self.scale = nn.Parameter(torch.full((1,), float(scale_value)))
        self.bias = nn.Parameter(torch.full((1,), float(bias_value)))

    def forward(self, x):
        return self.scale * x + self.bias


def nearest_up(x, factor: int):
    """Paddle's nearest upsampling by an integer factor (source index floor(i / factor)),
    which is torch's "nearest"."""
    return F.interpolate(x, scale_factor=factor, mode="nearest")


# The FPN necks' upsampled sums and concatenation, eagerly, read each coarse value through a
# broadcast view (an N x C x h x 1 x w x 1 view of the coarse map against N x C x h x f x w x f
# of the fine one) instead of materializing the upsampled map first: the same additions and
# copies, so the same values bit for bit, with one full-size pass and tensor fewer each (with the
# DB head's in-place activations, the v4 mobile detector's 960 x 960 stage 4-7 % faster and its
# 640 x 640 one 2-3 % on an Intel Xeon, side by side).
# Graph capture (tracing, scripting, torch.compile / torch.export, ONNX export) records the
# plain upsample ops, which every runtime knows and whose sizes stay symbolic; training keeps
# them too (_plain_ops_only).


def capturing_graph() -> bool:
    """A trace, script, torch.compile / torch.export or ONNX export is recording the ops, other
    than a replay (``ptocr.models.op_replay``), which records the eager kernels as they run."""
    if is_recording():
        return False
    return torch.jit.is_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling()


def _plain_ops_only(tensors: list[torch.Tensor]) -> bool:
    """Graph capture, or autograd through these tensors: the backward of a broadcast view sums
    a coarse value's gradient in another order than upsampling's backward does."""
    return capturing_graph() or (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))


def _split_view(x: torch.Tensor, factor: int) -> torch.Tensor | None:
    """``x`` (N x C x H x W, sides multiples of ``factor``) as N x C x H/f x f x W/f x f, or None."""
    n, c, h, w = x.shape
    if h % factor or w % factor:
        return None
    try:
        return x.view(n, c, h // factor, factor, w // factor, factor)
    except RuntimeError:  # strides no view can split
        return None


def add_upsampled(x: torch.Tensor, y: torch.Tensor, factor: int) -> torch.Tensor:
    """``x + nearest_up(y, factor)``, in one pass over ``x`` where ``x`` is ``factor`` times
    ``y``'s size."""
    fine = None if _plain_ops_only([x, y]) or x.dim() != 4 else _split_view(x, factor)
    if fine is None or y.shape != (x.shape[0], x.shape[1], x.shape[2] // factor, x.shape[3] // factor):
        up = nearest_up(y, factor)
        if not capturing_graph() and up.shape[2:] != x.shape[2:]:  # torch's own error names no cause
            raise RuntimeError(f"an FPN level of {x.shape[2]} x {x.shape[3]} cannot take the level above, upsampled "
                               f"to {up.shape[2]} x {up.shape[3]}: a detector's input sides must be multiples of 32")
        return x + up
    n, c, h, w = y.shape
    # The sum's 6-d strides follow x's order (channels-last or not), so it views back as x's shape.
    return (fine + y.reshape(n, c, h, 1, w, 1)).reshape(x.shape)


def cat_upsampled(maps: list[tuple[torch.Tensor, int]]) -> torch.Tensor:
    """``torch.cat([nearest_up(m, f) for m, f in maps], dim=1)`` (``f`` 1: the map as it is),
    each map copied once, straight into its channels of the output."""
    if _plain_ops_only([m for m, _ in maps]):
        return _plain_cat(maps)
    first, f0 = maps[0]
    n, h, w = first.shape[0], first.shape[2] * f0, first.shape[3] * f0
    if any(m.dim() != 4 or m.shape[0] != n or m.shape[2] * f != h or m.shape[3] * f != w
           or m.dtype != first.dtype or m.device != first.device for m, f in maps):  # cat would promote
        return _plain_cat(maps)
    last = maps[-1][0]  # torch.cat's output takes its inputs' layout
    layout = (torch.channels_last if last.is_contiguous(memory_format=torch.channels_last) and not last.is_contiguous()
              else torch.contiguous_format)
    out = torch.empty(n, sum(m.shape[1] for m, _ in maps), h, w, dtype=first.dtype, device=first.device,
                      memory_format=layout)
    start = 0
    for m, f in maps:
        c = m.shape[1]
        out[:, start:start + c].view(n, c, h // f, f, w // f, f).copy_(m.reshape(n, c, h // f, 1, w // f, 1))
        start += c
    return out


def _plain_cat(maps: list[tuple[torch.Tensor, int]]) -> torch.Tensor:
    return torch.cat([m if f == 1 else nearest_up(m, f) for m, f in maps], dim=1)


def lateral_top_down(ins_conv, feats):
    """The FPN top-down path shared by DBFPN, RSEFPN and LKPAN: 1x1 laterals ``ins_conv[i]`` on
    (c2, c3, c4, c5), each level plus the level above upsampled x2.
    Returns (in5, out4, out3, out2), coarsest first."""
    c2, c3, c4, c5 = feats
    in5 = ins_conv[3](c5)
    out4 = add_upsampled(ins_conv[2](c4), in5, 2)  # 1/16
    out3 = add_upsampled(ins_conv[1](c3), out4, 2)  # 1/8
    out2 = add_upsampled(ins_conv[0](c2), out3, 2)  # 1/4
    return in5, out4, out3, out2


def _corner_aligned_axis(size_in, size_out, device) -> tuple[torch.Tensor, ...]:
    """Paddle's bilinear sampling positions along one axis, corners aligned: (lower index, upper
    index, upper weight, lower weight), the ratio, positions and weights in float32 (phi's CPU
    ``BilinearInterpolation``: ``ratio = float(in - 1) / (out - 1)``, 0 for one output,
    ``src = ratio * k``). Torch ops on the sizes only, so a traced export keeps them symbolic."""
    # scalar_tensor, not as_tensor: it keeps a traced size symbolic (torch.export, ONNX).
    n_in = torch.scalar_tensor(size_in, dtype=torch.int64, device=device)
    n_out = torch.scalar_tensor(size_out, dtype=torch.int64, device=device)
    span = (n_out - 1).to(torch.float32)
    ratio = torch.where(n_out > 1, (n_in - 1).to(torch.float32) / span.clamp(min=1), torch.zeros_like(span))
    src = ratio * torch.arange(size_out, device=device, dtype=torch.float32)
    lo = src.to(torch.int64).clamp(min=0)  # src >= 0: truncation is floor
    hi = torch.minimum(lo + 1, n_in - 1)
    upper = src - lo.to(torch.float32)
    return lo, hi, upper, 1.0 - upper


def paddle_bilinear_aligned(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``paddle.nn.functional.interpolate(x, size, mode="bilinear", align_corners=True)`` as
    Paddle computes it: sampling weights in float32 whatever ``x``'s dtype (PyTorch's own differ
    by up to 3e-5 in float64), then ``x * w_y * w_x`` summed over the four neighbours in
    Paddle's order. At the same size the weights are exactly 1 and 0: Paddle's copy."""
    h, w = x.shape[-2], x.shape[-1]
    y0, y1, wy1, wy0 = _corner_aligned_axis(h, size[0], x.device)
    x0, x1, wx1, wx0 = _corner_aligned_axis(w, size[1], x.device)
    wy0, wy1 = wy0.to(x.dtype)[:, None], wy1.to(x.dtype)[:, None]
    wx0, wx1 = wx0.to(x.dtype), wx1.to(x.dtype)
    rows0, rows1 = x.index_select(-2, y0), x.index_select(-2, y1)
    return (rows0.index_select(-1, x0) * wy0 * wx0 + rows1.index_select(-1, x0) * wy1 * wx0
            + rows0.index_select(-1, x1) * wy0 * wx1 + rows1.index_select(-1, x1) * wy1 * wx1)
