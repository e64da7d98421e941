"""A transposed conv whose kernel equals its stride, run as a 1x1 conv and an interleave.

With kernel == stride (and no padding), each input pixel writes its own kh x kw block of the
output and no two blocks overlap, so the transposed conv is a 1x1 conv to out*kh*kw channels
(one per output channel and block position) whose channels are then interleaved into the blocks.
oneDNN runs the DB head's last layer, a 2x2 stride-2 transposed conv from 24 channels to one, at
about 6 GFLOP/s: its one output channel leaves the vector lanes of a channel-blocked kernel
empty. The same sums as a 1x1 conv to 4 channels plus the interleave took 2.7 ms against 5.5 for
a 960 x 960 input on an AMD EPYC (AVX2, 2 threads), both timed side by side in one process,
with equal outputs. Each output value is the same sum of the same products; only a kernel's order of
accumulation could differ, which the parity suite bounds.

``ptocr.optimize`` swaps the class of such transposed convs with one output channel (where the
gain was measured; with 24 the transposed conv runs near the machine's peak and the interleave
of 4x more output would cost more than it saves), keeping the parameters and their names. Under
graph capture, autograd, or off the CPU it is the plain transposed conv, so exports see the
original op.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ptocr.models.layers import capturing_graph

__all__ = ["InterleavedConvTranspose2d"]


class InterleavedConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` with kernel == stride, computed as a 1x1 conv and an interleave."""

    @staticmethod
    def can_take(conv: nn.Module) -> bool:
        """A plain transposed conv with kernel == stride, no padding, dilation or groups, to one
        output channel."""
        return (type(conv) is nn.ConvTranspose2d and tuple(conv.kernel_size) == tuple(conv.stride)
                and tuple(conv.padding) == (0, 0) and tuple(conv.output_padding) == (0, 0)
                and tuple(conv.dilation) == (1, 1) and conv.groups == 1 and conv.padding_mode == "zeros"
                and conv.out_channels == 1)

    @classmethod
    def take_over(cls, conv: nn.ConvTranspose2d) -> "InterleavedConvTranspose2d":
        if not cls.can_take(conv):
            raise ValueError(f"InterleavedConvTranspose2d takes a transposed conv with kernel == stride "
                             f"to one channel, not {conv!r}")
        conv.__class__ = cls
        return conv

    def _interleaves(self, x: torch.Tensor) -> bool:
        return (not capturing_graph() and x.dim() == 4 and x.device.type == "cpu"
                and not (torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad)))

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if output_size is not None or not self._interleaves(x):
            return super().forward(x, output_size)
        kh, kw = self.kernel_size
        out = self.out_channels
        # weight: in x out x kh x kw -> (out, kh, kw) x in x 1 x 1, channel o*kh*kw + a*kw + b
        weight = self.weight.permute(1, 2, 3, 0).reshape(out * kh * kw, -1, 1, 1)
        bias = None if self.bias is None else self.bias.repeat_interleave(kh * kw)
        y = F.conv2d(x, weight, bias)
        n, _, h, w = y.shape
        # y[n, (o, a, b), i, j] -> output[n, o, i*kh + a, j*kw + b]
        return y.view(n, out, kh, kw, h, w).permute(0, 1, 4, 2, 5, 3).reshape(n, out, h * kh, w * kw)
