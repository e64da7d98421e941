"""safetensors files read into numpy, by the safetensors library (it checks the header's
offsets against the file): transformers folders' ``model.safetensors`` and the ``.pdparams``
that ``paddle.save(..., safetensors=True)`` writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from converter.errors import FormatError


def looks_like_safetensors(head: bytes) -> bool:
    """A header length (8 bytes) then the header's JSON object."""
    return len(head) >= 10 and head[8:10] == b'{"'


def read_safetensors(path: Path, data: bytes | bytearray, *, widen_bfloat16: bool) -> dict[str, np.ndarray]:
    """{name: array}. ``widen_bfloat16``: bfloat16 tensors become float32 (exactly, as Paddle
    reads its bfloat16 checkpoints); otherwise they are a FormatError."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        tensors = load(bytes(data))
    except (SafetensorError, ValueError, TypeError, KeyError) as e:
        raise FormatError(f"{path}: not a readable safetensors file ({e})") from None
    out = {}
    for name, t in tensors.items():
        if t.dtype == torch.bfloat16:
            if not widen_bfloat16:
                raise FormatError(f"{path}: holds BF16 tensors; ptocr reads float32 checkpoints")
            t = t.float()
        try:
            out[name] = t.numpy()
        except TypeError:  # a dtype numpy has no type for (float8 kinds)
            raise FormatError(f"{path}: tensor {name!r} is {t.dtype}, which ptocr does not read") from None
    return out
