"""A minimal protobuf wire-format decoder (no protobuf dependency).

Only what Paddle's ProgramDesc and TensorDesc need: walk the fields of one message
and decode scalars. Every read is bounds-checked against the message's end, and any
malformation raises ``FormatError`` naming ``where`` (the file) and the byte offset.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from converter.errors import FormatError

VARINT, I64, LEN, I32 = 0, 1, 2, 5
_GROUP_START, _GROUP_END = 3, 4  # deprecated groups: never used by Paddle, refused

_F32 = struct.Struct("<f")
_F64 = struct.Struct("<d")
_MASK64 = (1 << 64) - 1


def _fail(where: str, pos: int, why: str) -> FormatError:
    return FormatError(f"{where}: malformed protobuf at byte {pos}: {why}")


def read_varint(buf: bytes | memoryview, pos: int, end: int, where: str) -> tuple[int, int]:
    """Decode one base-128 varint at ``pos``; return (value as uint64, next pos)."""
    result = 0
    shift = 0
    start = pos
    while True:
        if pos >= end:
            raise _fail(where, start, "varint runs past the end of its message")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result & _MASK64, pos
        shift += 7
        if shift >= 70:  # a uint64 takes at most 10 bytes
            raise _fail(where, start, "varint longer than 10 bytes")


def iter_fields(
    buf: bytes | memoryview, where: str, start: int = 0, end: int | None = None
) -> Iterator[tuple[int, int, object]]:
    """Yield (field number, wire type, value) for each field of the message in buf[start:end].

    Values: VARINT -> int (uint64); I64 / I32 -> raw little-endian bytes; LEN -> memoryview
    of the payload (zero-copy, decode it further with this module).
    """
    mv = buf if isinstance(buf, memoryview) else memoryview(buf)
    if end is None:
        end = len(mv)
    if not (0 <= start <= end <= len(mv)):
        raise _fail(where, start, "message bounds outside the buffer")
    pos = start
    while pos < end:
        tag_pos = pos
        b = mv[pos]
        if b < 0x80:  # fast path: one-byte tag
            key = b
            pos += 1
        else:
            key, pos = read_varint(mv, pos, end, where)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise _fail(where, tag_pos, "field number 0")
        if wire == VARINT:
            if pos < end and mv[pos] < 0x80:  # fast path: one-byte value
                value: object = mv[pos]
                pos += 1
            else:
                value, pos = read_varint(mv, pos, end, where)
        elif wire == LEN:
            n, pos = read_varint(mv, pos, end, where)
            if n > end - pos:
                raise _fail(where, tag_pos, f"field {field} claims {n} bytes, {end - pos} left")
            value = mv[pos : pos + n]
            pos += n
        elif wire == I64 or wire == I32:
            n = 8 if wire == I64 else 4
            if n > end - pos:
                raise _fail(where, tag_pos, f"field {field} truncated")
            value = bytes(mv[pos : pos + n])
            pos += n
        else:
            raise _fail(where, tag_pos, f"unsupported wire type {wire} (field {field})")
        yield field, wire, value


# --- scalar conversions -------------------------------------------------------------


def as_int64(v: int) -> int:
    """Two's-complement view of a uint64 varint (int32/int64 fields; negatives use 10 bytes)."""
    return v - (1 << 64) if v >= (1 << 63) else v


def as_int32(v: int, where: str) -> int:
    x = as_int64(v)
    if not -(1 << 31) <= x < (1 << 31):
        raise FormatError(f"{where}: malformed protobuf: int32 field holds {x}")
    return x


def as_str(v: object, where: str) -> str:
    if not isinstance(v, memoryview):
        raise FormatError(f"{where}: malformed protobuf: string field is not length-delimited")
    try:
        return bytes(v).decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(f"{where}: malformed protobuf: string field is not UTF-8 ({e})") from None


def as_float(v: object, wire: int, where: str) -> float:
    if wire == I32:
        return _F32.unpack(v)[0]  # type: ignore[arg-type]
    if wire == I64:
        return _F64.unpack(v)[0]  # type: ignore[arg-type]
    raise FormatError(f"{where}: malformed protobuf: float field has wire type {wire}")


def repeated_varints(v: object, wire: int, where: str) -> list[int]:
    """A repeated integer field occurrence: one varint, or a packed run of them."""
    if wire == VARINT:
        return [v]  # type: ignore[list-item]
    if wire != LEN:
        raise FormatError(f"{where}: malformed protobuf: integer field has wire type {wire}")
    mv: memoryview = v  # type: ignore[assignment]
    out = []
    pos, end = 0, len(mv)
    while pos < end:
        x, pos = read_varint(mv, pos, end, where)
        out.append(x)
    return out


def repeated_fixed(v: object, wire: int, size: int, where: str) -> list[float]:
    """A repeated float (size 4) / double (size 8) occurrence: one value or a packed run."""
    one = I32 if size == 4 else I64
    fmt = _F32 if size == 4 else _F64
    if wire == one:
        return [fmt.unpack(v)[0]]  # type: ignore[arg-type]
    if wire != LEN:
        raise FormatError(f"{where}: malformed protobuf: float field has wire type {wire}")
    mv: memoryview = v  # type: ignore[assignment]
    if len(mv) % size:
        raise FormatError(f"{where}: malformed protobuf: packed floats of {len(mv)} bytes")
    return [x[0] for x in struct.iter_unpack("<f" if size == 4 else "<d", mv)]
