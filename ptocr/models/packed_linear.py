"""A linear layer with a large weight, run by oneDNN with that weight packed once, on the CPU.

A recognizer's CTC head maps each of its 40-odd time steps to every character of the
dictionary: a 6625 x 120 weight (3.2 MB) for the Chinese models, 18385 x 120 for PP-OCRv5. The
network's other weights have pushed it out of the cache by the time the head runs, and
``F.linear`` (MKL's sgemm) re-packs the whole weight at each call, reading it twice. Against
oneDNN's matmul on a weight packed once (``torch.ops.mkldnn._linear_pointwise``), on an AMD EPYC
(Zen 3, 2 threads) with the weight out of cache: 0.63 against 0.26 ms for 4 rows (a short word),
0.93 against 0.63 ms for 40 (a 320-pixel line); 2.8 against 2.2 ms for 240 rows even in cache. Small weights stay with ``F.linear``: there oneDNN's
per-call set-up (20-40 us) costs more than the packing saves.

``ptocr.optimize.packed_linears`` swaps the class of the ``nn.Linear`` modules with at least
``PackedLinear.MIN_WEIGHT_ELEMENTS`` weights in place (parameter names unchanged). Everywhere
the packed path does not apply (CUDA, meta, bfloat16 / float16, autograd, graph capture, oneDNN
off, a weight made under ``torch.inference_mode``, which has no version counter to tell a packed
copy from a stale one) ``forward`` is ``F.linear``. The two differ by float32 rounding only.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ptocr.models.conv_activation import WeightDerived, eager_onednn
from ptocr.models.op_replay import is_recording, recorded_ops

__all__ = ["PackedLinear", "packed_linear_available"]


def packed_linear_available() -> bool:
    """oneDNN is built in and its linear op and weight packing are registered (x86 CPU builds)."""
    ops = torch.ops.mkldnn
    return torch.backends.mkldnn.is_available() and hasattr(ops, "_linear_pointwise") and hasattr(ops, "_reorder_linear_weight")


_KERNEL = packed_linear_available()


class _Packed(WeightDerived):
    """The weight packed for oneDNN's matmul: one layout for every row count (oneDNN asks for
    another only for a single row)."""

    __slots__ = ()

    def get(self, weight: torch.Tensor) -> torch.Tensor:
        return self.current(weight, lambda: _pack(weight))


@torch.no_grad()
def _pack(weight: torch.Tensor) -> torch.Tensor:
    return torch.ops.mkldnn._reorder_linear_weight(weight.detach())


class PackedLinear(nn.Linear):
    """``nn.Linear`` whose weight oneDNN holds packed, where that applies."""

    # 2**18 weights (1 MB in float32): the dictionary heads; a recognizer neck's largest
    # linear (120 x 360) is 43 200.
    MIN_WEIGHT_ELEMENTS = 1 << 18

    @classmethod
    def can_take(cls, module: nn.Module) -> bool:
        return type(module) is nn.Linear and module.weight.numel() >= cls.MIN_WEIGHT_ELEMENTS

    @classmethod
    def take_over(cls, linear: nn.Linear) -> "PackedLinear":
        """``linear`` itself, now with a packed weight on the CPU."""
        if type(linear) is not nn.Linear:
            raise ValueError(f"PackedLinear takes an nn.Linear, not {type(linear).__name__}")
        linear.__class__ = cls
        linear._packed = _Packed()
        return linear

    def _applies(self, x: torch.Tensor) -> bool:
        w = self.weight
        return (_KERNEL and eager_onednn(x, [w]) and w.dtype == torch.float32 and w.device.type == "cpu"
                and not w.is_inference())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._applies(x):
            return F.linear(x, self.weight, self.bias)
        weight = self._packed.get(self.weight)
        if is_recording():
            return recorded_ops().linear_pointwise(x, weight, self.bias)
        return torch.ops.mkldnn._linear_pointwise(x, weight, self.bias, "none", [], "")
