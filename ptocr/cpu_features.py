"""Which 16-bit float types the CPU this process runs on computes natively.

oneDNN runs bfloat16 convolutions on AVX512-BF16 or AMX and float16 ones on AVX512-FP16 or AMX-FP16;
on a CPU without them PyTorch emulates the type, and a model cast to it runs several times slower
than in float32 (ch_PP-OCRv4_rec at batch 1 on an Ice Lake Xeon, 2 threads: float32 10.4 ms,
bfloat16 31 ms, float16 307 ms). Read from ``/proc/cpuinfo`` (Linux on x86), where the instruction
sets have names; elsewhere nothing is known and nothing is said.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import torch

__all__ = ["cpu_flags", "cpuinfo_fields", "emulates", "warn_if_emulated"]

# The instruction sets on which oneDNN computes each type natively (any one suffices).
NATIVE = {torch.bfloat16: ("avx512_bf16", "amx_bf16"), torch.float16: ("avx512_fp16", "amx_fp16")}
X86_VENDORS = ("GenuineIntel", "AuthenticAMD")


def cpuinfo_fields(text: str) -> dict[str, str]:
    """``/proc/cpuinfo``'s fields of its first processor (``{"vendor_id": ..., "flags": ...}``)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    return fields


@functools.cache
def cpu_flags() -> frozenset[str] | None:
    """The x86 instruction-set flags of this CPU, or None where they cannot be read."""
    try:
        fields = cpuinfo_fields(Path("/proc/cpuinfo").read_text(errors="replace"))
    except OSError:
        return None
    if fields.get("vendor_id") not in X86_VENDORS:
        return None
    return frozenset(fields.get("flags", "").split())


def emulates(dtype: torch.dtype, flags: frozenset[str] | None = None) -> bool:
    """Whether a CPU with ``flags`` (this one's by default) runs ``dtype`` without native
    instructions; False where its flags are unknown or ``dtype`` is not a 16-bit float type."""
    flags = cpu_flags() if flags is None else flags
    return flags is not None and dtype in NATIVE and not flags & set(NATIVE[dtype])


@functools.cache
def warn_if_emulated(dtype: torch.dtype) -> None:
    """Once per process and type: a model cast to ``dtype`` on this CPU runs emulated kernels."""
    if emulates(dtype):
        name = str(dtype).removeprefix("torch.")
        warnings.warn(f"{name} on this CPU (none of {', '.join(NATIVE[dtype])}): PyTorch emulates it, several "
                      f"times slower than float32 (e.g. 3x for bfloat16 and 30x for float16 on an Ice Lake "
                      f"Xeon); float32 is faster here, and it reads what the Paddle model reads", stacklevel=3)
