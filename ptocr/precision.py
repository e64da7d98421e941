"""Casting a model to a float type, keeping batch-norm statistics where float16 can hold them.

``cast_model(model, dtype, device)`` is ``model.to(device, dtype)`` except that the modules a model
computes in float64 (``ptocr.models.float64``) stay so when it is cast to float32, and, for float16 and
bfloat16, batch norms keep float32 parameters and statistics (PyTorch runs them on float16 /
bfloat16 inputs and returns the input's type, on CPU and CUDA). The DB heads' first batch norm
has running variances up to 9e6: infinity in float16 (largest finite 65504), which turned every
detection map to zero; bfloat16 would keep them to 3 significant digits only.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ptocr.models.float64 import float64_members

__all__ = ["cast_model", "is_narrow"]


def is_narrow(dtype: torch.dtype) -> bool:
    """float16 / bfloat16: the types whose batch norms stay float32."""
    return dtype.is_floating_point and torch.finfo(dtype).bits < 32


def cast_model(model: nn.Module, dtype: torch.dtype | None = None, device=None) -> nn.Module:
    """``model.to(device, dtype)`` in place (returns ``model``), batch norms kept float32 when
    ``dtype`` is narrow. Module by module, so their statistics never pass through ``dtype``."""
    if device is not None:
        model.to(device)
    if dtype is None:
        return model

    def cast(t: torch.Tensor) -> torch.Tensor:
        return t.to(dtype) if t.is_floating_point() else t

    # float64 modules (ptocr.models.float64) stay float64 under a float32 model.
    keep = float64_members(model) if dtype == torch.float32 else set()
    for m in model.modules():
        if m in keep:
            continue
        if is_narrow(dtype) and isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.float()
        else:
            m._apply(cast, recurse=False)
    return model
