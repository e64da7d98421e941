"""Parts of a model that compute in float64 while the rest runs in float32.

Some trained networks amplify float32 rounding far more than others: the v2.0 Russian
recognizer carries its 8-channel stem's rounding, magnified by orders of magnitude, into its
output probabilities, so every float32 implementation, Paddle's own runtimes included, lands
anywhere around the parity bound depending on its kernels' summation order. Those few small layers cost
little in float64 and take the scatter away. Which modules do is data: the model description's
``"float64_modules"`` (module paths), from the model's manifest entry.

A marked module keeps float64 weights and casts its input to them and its output back (so two
marked modules in a row round once between them). The folds of ``ptocr.optimize`` keep its
weights' type, and ``ptocr.precision.cast_model`` to float32 makes (or leaves) it float64; cast to a narrow
type (bfloat16, float16) or to float64, it goes along and computes in that type. A plain
``model.float()`` makes it float32 like the rest.
"""

from __future__ import annotations

import functools

import torch
import torch.nn as nn

from ptocr.errors import ArchitectureError

__all__ = ["Float64Compute", "compute_in_float64", "float64_members", "model_dtype"]


class Float64Compute:
    """Mixin put in front of a module's own class: forward in the weights' type, output in the
    input's type."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = next(self.parameters())
        # NCHW: PyTorch's float64 convolutions are several times slower channels-last.
        return super().forward(x.to(weight.dtype, memory_format=torch.contiguous_format)).to(x.dtype)

    def __reduce_ex__(self, protocol):
        # The class is made at run time, so pickle cannot find it by name (torch.save, spawned
        # workers): pickled as its base class, made again on load.
        return _float64_instance, (type(self).__bases__[1],), self.__getstate__()


@functools.cache
def _float64_class(cls: type) -> type:
    return type(f"Float64{cls.__name__}", (Float64Compute, cls), {"__module__": cls.__module__})


def _float64_instance(cls: type) -> nn.Module:
    """An empty ``Float64{cls}`` for pickle to fill with its state."""
    klass = _float64_class(cls)
    return klass.__new__(klass)


def compute_in_float64(model: nn.Module, paths) -> nn.Module:
    """Mark the modules at ``paths`` (``"backbone.blocks.0"``) to compute in float64 (in place;
    returns ``model``). An unknown path is an ArchitectureError naming it."""
    for path in paths or ():
        try:
            module = model.get_submodule(path)
        except AttributeError:
            raise ArchitectureError(f"float64_modules: the model has no module {path!r}") from None
        if next(module.parameters(), None) is None:
            raise ArchitectureError(f"float64_modules: {path!r} has no weights to compute with")
        if not isinstance(module, Float64Compute):
            module.__class__ = _float64_class(type(module))
        module.double()
    return model


def float64_members(model: nn.Module) -> set[nn.Module]:
    """Every module inside a marked one (the marked ones included)."""
    return {m for root in model.modules() if isinstance(root, Float64Compute) for m in root.modules()}


def model_dtype(model: nn.Module) -> torch.dtype:
    """The type the model computes in: that of its weights outside the float64 modules."""
    inside = {id(p) for m in float64_members(model) for p in m.parameters(recurse=False)}
    return next((p.dtype for p in model.parameters() if id(p) not in inside), torch.float32)
