"""Read Paddle's combined tensor stream (``*.pdiparams``) without paddle.

Per tensor Paddle writes (lod_tensor.cc SerializeToStream + TensorToStream):
uint32 LoDTensor version (0) | uint64 lod_level | per level: uint64 byte size + that many
bytes of size_t offsets | uint32 tensor version (0) | int32 TensorDesc size | TensorDesc
protobuf {data_type=1, dims=2} | raw little-endian data. Tensors follow each other with
nothing between and nothing after; the file does not name them: the program's
persistable variables, sorted by name, give the order.

Every size is checked against the bytes actually left before anything is allocated, so a
corrupt header claiming terabytes is a FormatError, not a MemoryError.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from converter.errors import FormatError
from converter.readers.formats import describe_bytes
from converter.readers.program import DTYPES, dtype_name, parse_tensor_desc

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_I32 = struct.Struct("<i")
_MAX_LOD_LEVEL = 64  # Paddle uses 0-2; anything large is corruption


@dataclass(frozen=True)
class TensorRecord:
    """One tensor of the stream, located but not yet copied."""

    dtype_code: int
    shape: tuple[int, ...]
    offset: int  # of the raw data in the file
    nbytes: int


def parse_stream(buf: bytes | bytearray | memoryview, where: str, count: int | None = None,
                 names: Sequence[str] | None = None) -> list[TensorRecord]:
    """Locate the tensors of a stream (all of them, or the first ``count``)."""
    mv = memoryview(buf)
    size = len(mv)
    pos = 0
    out: list[TensorRecord] = []

    def fail(why: str, at: int) -> FormatError:
        i = len(out)
        who = f"tensor #{i}" + (f" ({names[i]})" if names is not None and i < len(names) else "")
        return FormatError(f"{where}: {who} at byte {at}: {why}")

    def need(n: int, what: str, at: int) -> None:
        if n > size - pos:
            raise fail(f"truncated: {what} needs {n} bytes, only {size - pos} left", at)

    while pos < size and (count is None or len(out) < count):
        start = pos
        need(12, "the LoDTensor header", start)
        (version,) = _U32.unpack_from(mv, pos)
        (lod_level,) = _U64.unpack_from(mv, pos + 4)
        if version != 0:
            looks = describe_bytes(bytes(mv[start : start + 64])) if start == 0 else "corrupt data"
            raise fail(f"LoDTensor version {version}, expected 0 (not a Paddle tensor stream; "
                       f"looks like {looks})", start)
        if lod_level > _MAX_LOD_LEVEL:
            raise fail(f"absurd LoD level count {lod_level}", start)
        pos += 12
        for _ in range(lod_level):
            need(8, "a LoD level size", pos)
            (n,) = _U64.unpack_from(mv, pos)
            pos += 8
            need(n, "LoD offsets", pos)  # contents are irrelevant for parameters
            pos += n
        need(8, "the tensor header", pos)
        (tversion,) = _U32.unpack_from(mv, pos)
        (desc_size,) = _I32.unpack_from(mv, pos + 4)
        if tversion != 0:
            raise fail(f"tensor version {tversion}, expected 0", pos)
        if desc_size < 0:
            raise fail(f"negative TensorDesc size {desc_size}", pos)
        pos += 8
        need(desc_size, "the TensorDesc", pos)
        code, dims = parse_tensor_desc(mv[pos : pos + desc_size], f"{where}: tensor #{len(out)} TensorDesc")
        pos += desc_size
        if code is None:
            raise fail("TensorDesc has no data type", start)
        if code not in DTYPES:
            raise fail(f"unknown Paddle dtype code {code}", start)
        if DTYPES[code][1] is None:
            raise fail(f"dtype {dtype_name(code)} is not supported", start)
        if any(d < 0 for d in dims):
            raise fail(f"negative dimension in shape {dims}", start)
        numel = 1
        for d in dims:
            numel *= d
        nbytes = numel * DTYPES[code][2]  # Python int: cannot overflow
        need(nbytes, f"data of shape {dims} {dtype_name(code)}", pos)
        out.append(TensorRecord(code, dims, pos, nbytes))
        pos += nbytes
    return out


def _to_array(mv: memoryview, rec: TensorRecord) -> np.ndarray:
    """Copy one tensor out of the file buffer: owned, aligned, native-endian."""
    raw = mv[rec.offset : rec.offset + rec.nbytes]
    if rec.dtype_code == 22:  # BF16: the upper half of a float32, widened exactly
        bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return bits.view(np.float32).reshape(rec.shape)
    if rec.dtype_code == 0:  # BOOL: normalise any non-zero byte to True
        return (np.frombuffer(raw, dtype=np.uint8) != 0).reshape(rec.shape)
    dt = DTYPES[rec.dtype_code][1]
    assert dt is not None
    return np.frombuffer(raw, dtype=dt.newbyteorder("<")).astype(dt, copy=True).reshape(rec.shape)


def _dtype_matches(expected: object, code: int) -> bool:
    if expected is None:
        return True
    if isinstance(expected, (int, np.integer)) and not isinstance(expected, bool):
        return int(expected) == code
    return np.dtype(expected) == DTYPES[code][1]  # type: ignore[arg-type]


def _dtype_text(expected: object) -> str:
    if isinstance(expected, (int, np.integer)) and not isinstance(expected, bool):
        return dtype_name(int(expected))
    return str(np.dtype(expected))  # type: ignore[arg-type]


def _shape_matches(expected: Sequence[int] | None, got: tuple[int, ...]) -> bool:
    if expected is None:
        return True
    exp = tuple(expected)
    return len(exp) == len(got) and all(e == -1 or e == g for e, g in zip(exp, got))


def read_file_bytes(path: Path) -> bytearray:
    """The whole file in one buffer (one read, no double copy)."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            buf = bytearray(size)
            n = f.readinto(buf)
    except OSError as e:
        raise FormatError(f"{path}: cannot read: {e.strerror or e}") from None
    if n != size:
        raise FormatError(f"{path}: file changed while being read ({n} of {size} bytes)")
    return buf


def read_pdiparams(
    path: str | os.PathLike,
    expected: Sequence[tuple[str, object, Sequence[int] | None]],
    data: bytes | bytearray | None = None,
) -> dict[str, np.ndarray]:
    """Read a combined ``.pdiparams`` holding exactly ``expected`` = [(name, dtype, shape)] in
    stream order; dtype is a Paddle dtype code, a numpy dtype or None (unchecked); shape may
    use -1 for any size. Returns {name: array}. ``data`` skips reading the file (tests)."""
    path = Path(path)
    where = str(path)
    buf = read_file_bytes(path) if data is None else data
    names = [e[0] for e in expected]
    if not buf and expected:
        raise FormatError(f"{where}: empty file, expected {len(expected)} tensors")
    recs = parse_stream(buf, where, count=len(expected), names=names)
    consumed = recs[-1].offset + recs[-1].nbytes if recs else 0
    if len(recs) < len(expected):
        raise FormatError(
            f"{where}: holds {len(recs)} tensors, the program expects {len(expected)} "
            f"(first missing: {names[len(recs)]})"
        )
    if consumed != len(buf):
        try:
            extra = parse_stream(memoryview(buf)[consumed:], where, count=1)
        except FormatError:
            extra = []
        what = f"at least one more tensor of shape {extra[0].shape}" if extra else "trailing bytes"
        raise FormatError(
            f"{where}: {len(buf) - consumed} bytes left after the {len(expected)} tensors the "
            f"program names ({what}); the weights do not belong to this program"
        )
    mv = memoryview(buf)
    out: dict[str, np.ndarray] = {}
    for (name, exp_dtype, exp_shape), rec in zip(expected, recs):
        if not _dtype_matches(exp_dtype, rec.dtype_code):
            raise FormatError(
                f"{where}: tensor {name} is {dtype_name(rec.dtype_code)} in the weights, "
                f"but {_dtype_text(exp_dtype)} in the program"
            )
        if not _shape_matches(exp_shape, rec.shape):
            raise FormatError(
                f"{where}: tensor {name} has shape {list(rec.shape)} in the weights, "
                f"but {list(exp_shape or ())} in the program"
            )
        out[name] = _to_array(mv, rec)
    return out
