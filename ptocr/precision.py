"""Casting a model to a float type, keeping batch-norm statistics where float16 can hold them.

``cast_model(model, dtype, device)`` is ``model.to(device, dtype)`` except that the modules a model
computes in float64 (``ptocr.models.float64``) stay so when it is cast to float32, and, for float16 and
bfloat16, batch norms keep float32 parameters and statistics (PyTorch runs them on float16 /
bfloat16 inputs and returns the input's type, on CPU and CUDA). The DB heads' first batch norm
has running variances up to 9.8e7 (v4; 9.1e6 in v2.0): infinity in float16 (largest finite 65504), which turned every
detection map to zero; bfloat16 would keep them to 3 significant digits only.

Half precision also keeps float32 islands (``FLOAT32_MODULES``): modules that compute in
float32 from their input cast up and hand on their output in the input's type, so a narrow
model still returns its own type. The default is each model's head: the DB head's transposed
convs and sigmoid make the map cut at 0.3, the CTC head's logits and softmax pick each
character. Measured on CPU (doc/bulk.md), the heads are not where 16 bits lose boxes: the
losses are spread over the backbone; the CUDA figures are still to be measured.
"""

from __future__ import annotations

import functools

import torch
import torch.nn as nn

from ptocr.models.float64 import float64_members
from ptocr.models.layers import is_narrow

__all__ = ["FLOAT32_MODULES", "Float32Compute", "cast_model", "float32_members", "is_narrow"]

# Module paths computed in float32 when a model is cast to float16 / bfloat16 (those a model
# lacks are skipped). What they change on the shared scenes: doc/bulk.md.
FLOAT32_MODULES = ("head",)


class Float32Compute:
    """Mixin put in front of a module's own class: forward in the weights' type (float32 in a
    narrow model), output in the input's type."""

    def forward(self, x):
        y = super().forward(_to(x, next(self.parameters()).dtype))
        return _to(y, _dtype_of(x))

    def __reduce_ex__(self, protocol):
        # The class is made at run time, so pickle cannot find it by name (torch.save, spawned
        # workers): pickled as its base class, made again on load.
        return _float32_instance, (type(self).__bases__[1],), self.__getstate__()


def _dtype_of(x) -> torch.dtype:
    return _dtype_of(x[0]) if isinstance(x, (list, tuple)) else x.dtype


def _to(x, dtype: torch.dtype):
    """A tensor, or the list / tuple of tensors an FPN neck takes, in ``dtype``."""
    if isinstance(x, (list, tuple)):
        return type(x)(_to(v, dtype) for v in x)
    return x.to(dtype)


@functools.cache
def _float32_class(cls: type) -> type:
    return type(f"Float32{cls.__name__}", (Float32Compute, cls), {"__module__": cls.__module__})


def _float32_instance(cls: type) -> nn.Module:
    """An empty ``Float32{cls}`` for pickle to fill with its state."""
    klass = _float32_class(cls)
    return klass.__new__(klass)


def float32_members(model: nn.Module) -> set[nn.Module]:
    """Every module inside a float32 island (the islands included)."""
    return {m for root in model.modules() if isinstance(root, Float32Compute) for m in root.modules()}


def _mark_float32_islands(model: nn.Module) -> None:
    for path in FLOAT32_MODULES:
        try:
            module = model.get_submodule(path)
        except AttributeError:
            continue
        if next(module.parameters(), None) is not None and not isinstance(module, Float32Compute):
            module.__class__ = _float32_class(type(module))


def cast_model(model: nn.Module, dtype: torch.dtype | None = None, device=None) -> nn.Module:
    """``model.to(device, dtype)`` in place (returns ``model``), batch norms kept float32 when
    ``dtype`` is narrow. Module by module, so their statistics never pass through ``dtype``."""
    if device is not None:
        model.to(device)
    if dtype is None:
        return model

    def cast(t: torch.Tensor, dtype: torch.dtype = dtype) -> torch.Tensor:
        return t.to(dtype) if t.is_floating_point() else t

    # float64 modules (ptocr.models.float64) are float64 under a float32 model, also when a
    # narrow cast took them along before (else they would go on computing in float16).
    wide = float64_members(model) if dtype == torch.float32 else set()
    islands: set[nn.Module] = set()
    if is_narrow(dtype):
        _mark_float32_islands(model)
        islands = float32_members(model)
    for m in model.modules():
        if m in wide:
            m._apply(lambda t: cast(t, torch.float64), recurse=False)
            continue
        if is_narrow(dtype) and (m in islands or isinstance(m, nn.modules.batchnorm._BatchNorm)):
            m.float()
        else:
            m._apply(cast, recurse=False)
    return model
