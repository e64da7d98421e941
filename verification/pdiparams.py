"""Write Paddle's combined tensor stream (``*.pdiparams``): the inverse of
``converter.readers.pdiparams``.

Verification writes weights for Paddle to run: seeded weights beside a real program
(``verification.seeding``), a training checkpoint's tensors for its released program
(``verification.suite``), a program's weights promoted to float64
(``verification.paddle_runner``). The converter itself only reads such files.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from converter.readers.program import DTYPES

# numpy dtype -> Paddle dtype code (BF16 is read as float32, so float32 writes as FP32).
_CODES = {np.dtype(d): code for code, (_, d, _) in DTYPES.items() if d is not None and code != 22}


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int64 as protobuf writes it
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def encode_tensor(array: np.ndarray) -> bytes:
    """One LoDTensor record: version, no LoD, version, TensorDesc, raw data."""
    code = _CODES[array.dtype]
    desc = b"\x08" + varint(code) + b"".join(b"\x10" + varint(d) for d in array.shape)
    return (np.uint32(0).tobytes() + np.uint64(0).tobytes() + np.uint32(0).tobytes()
            + np.int32(len(desc)).tobytes() + desc + np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes())


def write_pdiparams(path: str | os.PathLike, tensors: dict[str, np.ndarray]) -> None:
    """Write tensors in Paddle's stream order (sorted by name), replacing ``path`` at once."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        for name in sorted(tensors):
            f.write(encode_tensor(tensors[name]))
    os.replace(tmp, path)
