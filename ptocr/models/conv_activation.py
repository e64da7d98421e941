"""A conv, and the activation that alone reads its output, run as one oneDNN primitive on the CPU.

``ptocr.optimize.onednn_convs`` turns the plain convs of an optimized model into
``ConvActivation2d`` (the conv's class swapped in place, so its parameters keep their names),
each with the activation that alone read it (that module becomes an ``nn.Identity``) or with
none. In eager float32 on a CPU, ``forward`` calls oneDNN's convolution with the activation as
a post-op (``torch.ops.mkldnn._convolution_pointwise``, the kernel inductor's own conv fusion
calls): the activation is applied while the output is still in cache, instead of another pass
over a full-size tensor.

On a channels-last input (the optimized models' default) the weight is handed over already in
oneDNN's blocked layout, reordered once and kept (``_PackedWeight``): ``F.conv2d`` reorders a
plain weight on every call, which costs 15-80 us a conv, the larger part of a small conv's time
(the direction classifier's 36 convs at batch 6, a recognizer at batch 1). oneDNN picks that
layout from the whole problem, input shape included, so a weight is packed per input shape: the
v4 recognizer's 960->60 neck conv wants 32-channel blocks at batch 1 and 24 at batch 6, and a
weight packed for the one, given at the other, was converted at every call (6 ms of an 89 ms
batch of 6 on an AMD EPYC, AVX2). Shapes are many, layouts few: shapes whose packed weights are
byte for byte the same share one tensor.

Each oneDNN call also pays a fixed 35-40 us to set its primitive up (a 16-channel 4 x 4 conv
takes 42 us, of which its kernel runs 7), whatever the number of threads. A 1x1 conv (stride 1,
no padding, one group) is a matrix product on a channels-last map, so one of fewer than
MATRIX_MAX_MACS multiply-adds runs as one (``torch.addmm`` on the N*H*W x C view, then the
activation in place): 7 against 42 us for that 4 x 4 conv, 18 against 52 us for the v4
recognizer's 60 -> 120 neck conv, 130 against 215 us for the direction classifier's 32 -> 200
at batch 6 (7.4 M multiply-adds); past 10 M, oneDNN's own kernel is 5-15 % faster than MKL's
(AMD EPYC, 2 threads). This replaces
ATen's rule that sent a small one-image input to its im2col path, which took the dense kxk convs
there too, where oneDNN is the faster (the v4 recognizer's 480 -> 60 1x3 neck conv: 90 against
175 us). A contiguous (NCHW) input keeps plain weights, as oneDNN then writes an NCHW output,
and takes the fused kernel only where the output is large (FUSED_MIN_ELEMENTS).

Everywhere else (CUDA, meta, bfloat16 / float16, autograd, TorchScript tracing, torch.compile
and torch.export, or oneDNN turned off with ``torch.backends.mkldnn.flags(enabled=False)``) it
is the plain conv followed by the activation, so exports and compiled graphs see ordinary ops.
The two differ by float32 rounding only (measured at most 1.5e-5 on a 480-channel 1x1 conv of
the v4 recognizer; the parity suite bounds whole models).
"""

from __future__ import annotations

import ctypes

import torch
import torch.nn as nn
import torch.nn.functional as F

from ptocr.models.layers import capturing_graph
from ptocr.models.op_replay import is_recording, recorded_ops

__all__ = ["ACTIVATIONS", "NO_ACTIVATION", "ConvActivation2d", "WeightDerived", "eager_onednn",
           "fused_kernel_available", "weight_derived"]

# activation module -> (oneDNN post-op name, the same function in PyTorch)
ACTIVATIONS = {
    nn.ReLU: ("relu", F.relu),
    nn.Hardswish: ("hardswish", F.hardswish),
    nn.SiLU: ("swish", F.silu),
}
NO_ACTIVATION = "none"  # oneDNN's name for a conv without post-op
# A 1x1 conv below this many multiply-adds runs as a matrix product (see above).
MATRIX_MAX_MACS = 1 << 23
_PLAIN = {name: (lambda x, fn=fn: fn(x, inplace=True)) for name, fn in ACTIVATIONS.values()} | {NO_ACTIVATION: lambda x: x}
# The same, out of place: what a traced copy for oneDNN Graph records (activation_in_place).
_OUT_OF_PLACE = {name: fn for name, fn in ACTIVATIONS.values()} | {NO_ACTIVATION: lambda x: x}
# On an NCHW input (plain weights, reordered by oneDNN at every call), outputs smaller than this
# (elements) take the two plain ops: there the fused primitive's set-up per call costs more than
# the activation's pass over the output saves (tools/bench.py).
FUSED_MIN_ELEMENTS = 1 << 18


def fused_kernel_available() -> bool:
    """oneDNN is built in and the fused conv op is registered (x86 and aarch64 CPU builds)."""
    return (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")
            and hasattr(torch._C._nn, "mkldnn_reorder_conv2d_weight"))


_KERNEL = fused_kernel_available()


def eager_onednn(x: torch.Tensor, params: list[torch.Tensor]) -> bool:
    """Eager float32 on the CPU with oneDNN on, no graph capture and no autograd through ``x``
    or ``params``: where an inference-only oneDNN call (ConvActivation2d, PackedLinear) may
    replace the plain op."""
    return (x.device.type == "cpu" and x.dtype == torch.float32 and torch.backends.mkldnn.enabled
            and not capturing_graph() and not (torch.is_grad_enabled() and any(t.requires_grad for t in (x, *params))))


class WeightDerived:
    """What a module made from its weight for oneDNN (a packed copy), with the (storage, version)
    of the weight it was made from, so that a weight changed in place or replaced is packed again.
    An opaque oneDNN tensor can be neither copied nor pickled: copies of a model start without one."""

    __slots__ = ("entry",)

    def __init__(self):
        # ((storage, version), what was made); replaced whole, never edited in place by one thread
        # while another reads it
        self.entry: tuple[tuple[int, int], object] | None = None

    def __deepcopy__(self, memo):
        return type(self)()

    def __reduce__(self):
        return type(self), ()

    def tensors(self) -> list[torch.Tensor]:
        """What is made now (a replay's trace must know these: ``ptocr.models.op_replay``)."""
        entry = self.entry
        return [] if entry is None else [entry[1]]

    def current(self, weight: torch.Tensor, make):
        """What ``make()`` made from ``weight`` as it is now (made again if it changed)."""
        key = (weight.data_ptr(), weight._version)
        entry = self.entry  # read once: another thread (a bulk lane) may replace it meanwhile
        if entry is None or entry[0] != key:
            entry = self.entry = (key, make())
        return entry[1]


def weight_derived(model: nn.Module) -> list[WeightDerived]:
    """What the modules of ``model`` made from their weights (each module keeps it as ``_packed``)."""
    return [d for m in model.modules() if isinstance(d := getattr(m, "_packed", None), WeightDerived)]


class _PackedWeight(WeightDerived):
    """A conv weight in oneDNN's blocked layout for each input shape it was called with (at most
    ``MAX_SHAPES``, the oldest dropped first)."""

    __slots__ = ()
    MAX_SHAPES = 16

    def tensors(self) -> list[torch.Tensor]:
        entry = self.entry
        return [] if entry is None else list(entry[1].values())

    def get(self, conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
        # {input shape: packed weight}: the dict is edited by one thread while another may read
        # it, which is atomic under the GIL
        shapes = self.current(conv.weight, dict)
        shape = torch.Size(map(int, x.shape)) if is_recording() else x.shape  # traced sizes are tensors
        packed = shapes.get(shape)
        if packed is None:
            packed = pack_for(conv, shape)
            packed = next((p for p in list(shapes.values()) if _same_bytes(p, packed)), packed)
            if len(shapes) >= self.MAX_SHAPES:
                shapes.pop(next(iter(list(shapes)), None), None)  # a copy: another thread may insert
            shapes[shape] = packed
        return packed


@torch.no_grad()
def pack_for(conv: nn.Conv2d, shape) -> torch.Tensor:
    """``conv``'s weight in the blocked layout oneDNN picks for an input of ``shape``."""
    return torch._C._nn.mkldnn_reorder_conv2d_weight(
        conv.weight.detach().contiguous().to_mkldnn(), list(conv.padding), list(conv.stride), list(conv.dilation),
        conv.groups, list(shape))


def _same_bytes(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Two packed (opaque oneDNN) weights hold the same bytes, i.e. the same layout of one weight.
    False where this PyTorch cannot say: then each shape keeps its own copy."""
    ops = torch.ops.mkldnn
    if not (hasattr(ops, "data_ptr") and hasattr(ops, "_nbytes")):
        return False
    n = ops._nbytes(a)
    if n != ops._nbytes(b):
        return False
    view = [torch.frombuffer((ctypes.c_char * n).from_address(ops.data_ptr(t)), dtype=torch.uint8) for t in (a, b)]
    return torch.equal(*view)


class ConvActivation2d(nn.Conv2d):
    """``activation(conv(x))`` for the ``activation`` names of ``ACTIVATIONS``, or the conv
    alone (``NO_ACTIVATION``)."""

    activation: str
    # False in a copy made for a fixed-shape graph (ptocr.optimize.for_fixed_shape_graph): there
    # the plain ops are traced, and oneDNN Graph fails ("bad optional access") on an in-place
    # activation whose output another in-place op then changes (the rep layers' affine).
    activation_in_place = True

    @staticmethod
    def can_take(conv: nn.Module) -> bool:
        """A plain zero-padded ``Conv2d`` with numeric padding: what the fused kernel computes."""
        return type(conv) is nn.Conv2d and conv.padding_mode == "zeros" and not isinstance(conv.padding, str)

    @classmethod
    def take_over(cls, conv: nn.Conv2d, activation: str = NO_ACTIVATION) -> "ConvActivation2d":
        """``conv`` itself, now computing ``activation`` after it."""
        if not cls.can_take(conv):
            raise ValueError(f"ConvActivation2d takes a plain zero-padded Conv2d, not {conv!r}")
        if activation not in _PLAIN:
            raise ValueError(f"no fused kernel for activation {activation!r}; known: {', '.join(_PLAIN)}")
        conv.__class__ = cls
        conv.activation = activation
        # an output of FUSED_MIN_ELEMENTS, counted on the input's map (the product of the strides)
        conv._fused_from = FUSED_MIN_ELEMENTS * conv.stride[0] * conv.stride[1]
        conv._packed = _PackedWeight()
        conv._matrix_product = (conv.kernel_size == (1, 1) and conv.stride == (1, 1) and conv.padding == (0, 0)
                                and conv.groups == 1)
        return conv

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, activation={self.activation}"

    def _kernel(self, x: torch.Tensor) -> str | None:
        """How ``x`` is computed: oneDNN with the "packed" or the "plain" weight, a "matrix"
        product, or None: the plain ops."""
        # Graph capture first (a traced size test would be baked into the graph).
        if capturing_graph() or x.dim() != 4:
            return None
        if not (_KERNEL and eager_onednn(x, [self.weight])):
            return None
        if x.shape[0] * x.shape[2] * x.shape[3] * self.out_channels >= self._fused_from:
            return None if self.activation == NO_ACTIVATION else "plain"
        if x.is_contiguous(memory_format=torch.channels_last):
            if self._matrix_product and x.numel() * self.out_channels < MATRIX_MAX_MACS:
                return "matrix"
            # A weight made under inference_mode has no version counter to tell a packed copy
            # from a stale one: it goes to oneDNN as it is, reordered at each call.
            return "plain" if self.weight.is_inference() else "packed"
        return None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel = self._kernel(x)
        if kernel is None:
            plain = _PLAIN if self.activation_in_place else _OUT_OF_PLACE
            return plain[self.activation](super().forward(x))
        if kernel == "matrix":
            return self._matrix_forward(x)
        weight = self._packed.get(self, x) if kernel == "packed" else self.weight
        args = (x, weight, self.bias, list(self.padding), list(self.stride), list(self.dilation), self.groups,
                self.activation)
        if is_recording():
            return recorded_ops().convolution_pointwise(*args)
        return torch.ops.mkldnn._convolution_pointwise(*args, [], "")

    def _matrix_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The 1x1 conv of a channels-last ``x`` as (N*H*W x C) @ (C x O): views both ways, no copy."""
        n, c, h, w = map(int, x.shape)  # a replay's constants, not size ops (eager: ints already)
        rows = x.permute(0, 2, 3, 1).reshape(n * h * w, c)
        weight = self.weight.reshape(self.out_channels, c).t()
        y = torch.mm(rows, weight) if self.bias is None else torch.addmm(self.bias, rows, weight)
        return _PLAIN[self.activation](y).view(n, h, w, self.out_channels).permute(0, 3, 1, 2)
