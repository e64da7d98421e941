"""A conv and the activation that alone reads its output, run as one oneDNN primitive on the CPU.

``ptocr.optimize.fused_conv_activations`` turns such pairs of an optimized model into a
``ConvActivation2d`` (the conv's class swapped in place, so its parameters keep their names) and
an ``nn.Identity``. In eager float32 on a CPU, ``forward`` calls oneDNN's convolution with the
activation as a post-op (``torch.ops.mkldnn._convolution_pointwise``, the kernel inductor's own
conv fusion calls): the activation is applied while the output is still in cache, instead of
another pass over a full-size tensor. PyTorch's own convolution also takes its slow im2col path
for 1x1 convs at one intra-op thread, which the bulk engine's lanes use; this kernel does not.

Everywhere else (CUDA, meta, bfloat16 / float16, autograd, TorchScript tracing, torch.compile
and torch.export, or oneDNN turned off with ``torch.backends.mkldnn.flags(enabled=False)``) it
is the plain conv followed by the activation, so exports and compiled graphs see ordinary ops.
The two differ by float32 rounding only (measured at most 3e-6 on the v4 recognizer's
probabilities).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["ACTIVATIONS", "ConvActivation2d", "fused_kernel_available"]

# activation module -> (oneDNN post-op name, the same function in PyTorch, in place)
ACTIVATIONS = {
    nn.ReLU: ("relu", lambda x: F.relu(x, inplace=True)),
    nn.Hardswish: ("hardswish", lambda x: F.hardswish(x, inplace=True)),
    nn.SiLU: ("swish", lambda x: F.silu(x, inplace=True)),
}
_PLAIN = {name: fn for name, fn in ACTIVATIONS.values()}
# Outputs smaller than this (elements) take the two plain ops: there the fused primitive's own
# set-up per call costs more than the activation's pass over the output saves (tools/bench.py).
FUSED_MIN_ELEMENTS = 1 << 18


def fused_kernel_available() -> bool:
    """oneDNN is built in and the fused conv op is registered (x86 and aarch64 CPU builds)."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")


_KERNEL = fused_kernel_available()


class ConvActivation2d(nn.Conv2d):
    """``activation(conv(x))`` for the ``activation`` names of ``ACTIVATIONS``."""

    activation: str

    @staticmethod
    def can_take(conv: nn.Module) -> bool:
        """A plain zero-padded ``Conv2d`` with numeric padding: what the fused kernel computes."""
        return type(conv) is nn.Conv2d and conv.padding_mode == "zeros" and not isinstance(conv.padding, str)

    @classmethod
    def take_over(cls, conv: nn.Conv2d, activation: str) -> "ConvActivation2d":
        """``conv`` itself, now computing ``activation`` after it."""
        if not cls.can_take(conv):
            raise ValueError(f"ConvActivation2d takes a plain zero-padded Conv2d, not {conv!r}")
        if activation not in _PLAIN:
            raise ValueError(f"no fused kernel for activation {activation!r}; known: {', '.join(_PLAIN)}")
        conv.__class__ = cls
        conv.activation = activation
        # an output of FUSED_MIN_ELEMENTS, counted on the input's map (the product of the strides)
        conv._fused_from = FUSED_MIN_ELEMENTS * conv.stride[0] * conv.stride[1]
        return conv

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, activation={self.activation}"

    def _fused(self, x: torch.Tensor) -> bool:
        # Graph capture first (a traced size test would be baked into the graph), then the size:
        # most calls of a small model stop there, at the cost of a product.
        if torch.jit.is_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling() or x.dim() != 4:
            return False
        if x.shape[0] * x.shape[2] * x.shape[3] * self.out_channels < self._fused_from:
            return False
        return (x.device.type == "cpu" and x.dtype == torch.float32 and _KERNEL and torch.backends.mkldnn.enabled
                and not (torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._fused(x):
            return torch.ops.mkldnn._convolution_pointwise(
                x, self.weight, self.bias, list(self.padding), list(self.stride), list(self.dilation), self.groups,
                self.activation, [], "")
        return _PLAIN[self.activation](super().forward(x))
