"""Parse a Paddle 2 ``ProgramDesc`` (``*.pdmodel``) without paddle.

Field numbers follow paddle/fluid/framework/framework.proto (ProgramDesc.blocks=1,
version=4; BlockDesc idx=1 parent_idx=2 vars=3 ops=4; VarDesc name=1 type=2
persistable=3; VarType type=1 selected_rows=2 dense_tensor=3 tensor_array=4;
TensorDesc data_type=1 dims=2; OpDesc inputs=1 outputs=2 type=3 attrs=4).
Unknown fields are skipped, as protobuf itself does, so newer writers still parse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from converter.errors import FormatError
from converter.readers import protobuf_wire as pw

# VarType.Type codes that are tensor element types: code -> (name, numpy dtype of the
# array the readers return, bytes per element on disk). BF16 has no numpy dtype: the
# readers widen it to float32 exactly. FP8 kinds have none either and are refused.
DTYPES: dict[int, tuple[str, np.dtype | None, int]] = {
    0: ("BOOL", np.dtype(np.bool_), 1),
    1: ("INT16", np.dtype(np.int16), 2),
    2: ("INT32", np.dtype(np.int32), 4),
    3: ("INT64", np.dtype(np.int64), 8),
    4: ("FP16", np.dtype(np.float16), 2),
    5: ("FP32", np.dtype(np.float32), 4),
    6: ("FP64", np.dtype(np.float64), 8),
    19: ("SIZE_T", np.dtype(np.uint64), 8),
    20: ("UINT8", np.dtype(np.uint8), 1),
    21: ("INT8", np.dtype(np.int8), 1),
    22: ("BF16", np.dtype(np.float32), 2),
    23: ("COMPLEX64", np.dtype(np.complex64), 8),
    24: ("COMPLEX128", np.dtype(np.complex128), 16),
    32: ("FP8_E4M3FN", None, 1),
    33: ("FP8_E5M2", None, 1),
    36: ("UINT16", np.dtype(np.uint16), 2),
    37: ("UINT32", np.dtype(np.uint32), 4),
    38: ("UINT64", np.dtype(np.uint64), 8),
}

# VarType.Type codes for variable kinds.
DENSE_TENSOR, SELECTED_ROWS, FEED_MINIBATCH, FETCH_LIST = 7, 8, 9, 10
TENSOR_ARRAY, READER = 13, 15
VAR_TYPE_NAMES = {
    7: "LOD_TENSOR", 8: "SELECTED_ROWS", 9: "FEED_MINIBATCH", 10: "FETCH_LIST",
    11: "STEP_SCOPES", 12: "LOD_RANK_TABLE", 13: "LOD_TENSOR_ARRAY", 14: "PLACE_LIST",
    15: "READER", 17: "RAW", 18: "TUPLE", 25: "STRING", 26: "STRINGS", 27: "VOCAB",
    28: "FEED_LIST", 29: "PSTRING", 30: "SPARSE_COO", 31: "SPARSE_CSR",
}  # fmt: skip
# Paddle's own is_persistable() never saves these kinds.
NOT_SAVED = (FEED_MINIBATCH, FETCH_LIST, READER)


def dtype_name(code: int | None) -> str:
    if code is None:
        return "none"
    return DTYPES[code][0] if code in DTYPES else f"unknown dtype code {code}"


@dataclass(frozen=True)
class VarInfo:
    name: str
    persistable: bool
    dtype: np.dtype | None  # numpy dtype the readers return (BF16 -> float32); None if not a tensor
    shape: tuple[int, ...]  # -1 marks a free (batch) dimension
    var_type: int = DENSE_TENSOR  # VarType.Type code of the variable
    dtype_code: int | None = None  # Paddle element-type code as stored
    block: int = 0


@dataclass
class OpInfo:
    type: str
    inputs: dict[str, list[str]]
    outputs: dict[str, list[str]]
    attrs: dict[str, object]
    block: int = 0


@dataclass
class Program:
    vars: list[VarInfo]  # every variable of every block, feed/fetch holders excluded
    ops: list[OpInfo]  # in block order, then program order
    version: int = 0  # ProgramDesc.version (e.g. 2004001 for Paddle 2.4.1; 0 if absent)
    num_blocks: int = 1
    unsaved_persistables: list[str] = field(default_factory=list)  # feed/fetch/reader holders

    def parameters(self) -> list[VarInfo]:
        """The persistable variables Paddle writes to ``.pdiparams``, in stream order
        (sorted by name; a name declared in several blocks counts once)."""
        seen: dict[str, VarInfo] = {}
        for v in self.vars:
            if v.persistable and v.name not in seen:
                seen[v.name] = v
        return [seen[k] for k in sorted(seen)]

    def var(self, name: str) -> VarInfo | None:
        for v in self.vars:
            if v.name == name:
                return v
        return None


# --- decoding ------------------------------------------------------------------------


def _tensor_desc(buf: memoryview, where: str) -> tuple[int | None, tuple[int, ...]]:
    """TensorDesc -> (data_type code, dims)."""
    code: int | None = None
    dims: list[int] = []
    for f, w, v in pw.iter_fields(buf, where):
        if f == 1 and w == pw.VARINT:
            code = pw.as_int32(v, where)  # type: ignore[arg-type]
        elif f == 2:
            dims.extend(pw.as_int64(x) for x in pw.repeated_varints(v, w, where))
    return code, tuple(dims)


def parse_tensor_desc(buf: bytes | memoryview, where: str) -> tuple[int | None, tuple[int, ...]]:
    """Public for the .pdiparams reader: decode a serialized TensorDesc."""
    return _tensor_desc(buf if isinstance(buf, memoryview) else memoryview(buf), where)


def _var(buf: memoryview, block: int, where: str) -> VarInfo:
    name = None
    persistable = False
    var_type: int | None = None
    code: int | None = None
    shape: tuple[int, ...] = ()
    for f, w, v in pw.iter_fields(buf, where):
        if f == 1 and w == pw.LEN:
            name = pw.as_str(v, where)
        elif f == 3 and w == pw.VARINT:
            persistable = bool(v)
        elif f == 2 and w == pw.LEN:
            for tf, tw, tv in pw.iter_fields(v, where):  # type: ignore[arg-type]
                if tf == 1 and tw == pw.VARINT:
                    var_type = pw.as_int32(tv, where)  # type: ignore[arg-type]
                elif tf == 2 and tw == pw.LEN and var_type == SELECTED_ROWS:
                    code, shape = _tensor_desc(tv, where)  # type: ignore[arg-type]
                elif tf in (3, 4) and tw == pw.LEN:  # dense_tensor / tensor_array: {tensor=1}
                    for lf, lw, lv in pw.iter_fields(tv, where):  # type: ignore[arg-type]
                        if lf == 1 and lw == pw.LEN:
                            code, shape = _tensor_desc(lv, where)  # type: ignore[arg-type]
    if name is None or var_type is None:
        raise FormatError(f"{where}: malformed program: a variable lacks its name or type")
    if var_type not in (DENSE_TENSOR, SELECTED_ROWS, TENSOR_ARRAY):
        code, shape = None, ()
    dtype = DTYPES[code][1] if code in DTYPES else None
    return VarInfo(name, persistable, dtype, shape, var_type, code, block)


def _attr(buf: memoryview, where: str) -> tuple[str, object]:
    name = None
    atype = None
    scalars: dict[int, object] = {}
    lists: dict[int, list] = {}
    for f, w, v in pw.iter_fields(buf, where):
        if f == 1 and w == pw.LEN:
            name = pw.as_str(v, where)
        elif f == 2 and w == pw.VARINT:
            atype = v
        elif f in (3, 10, 12, 13):  # i, b, block_idx, l
            if w != pw.VARINT:
                raise FormatError(f"{where}: malformed program: attribute field {f} not a varint")
            scalars[f] = v
        elif f in (4, 19):  # f (float), float64
            scalars[f] = pw.as_float(v, w, where)
        elif f in (5, 17):  # s, var_name
            scalars[f] = pw.as_str(v, where)
        elif f in (6, 11, 14, 15):  # ints, bools, blocks_idx, longs
            lists.setdefault(f, []).extend(pw.repeated_varints(v, w, where))
        elif f == 7:
            lists.setdefault(f, []).extend(pw.repeated_fixed(v, w, 4, where))
        elif f == 16:
            lists.setdefault(f, []).extend(pw.repeated_fixed(v, w, 8, where))
        elif f in (8, 18):  # strings, vars_name
            lists.setdefault(f, []).append(pw.as_str(v, where))
        elif f == 20 and w == pw.LEN:
            scalars[f] = _scalar(v, where)  # type: ignore[arg-type]
        elif f == 21 and w == pw.LEN:
            lists.setdefault(f, []).append(_scalar(v, where))  # type: ignore[arg-type]
    if name is None or atype is None:
        raise FormatError(f"{where}: malformed program: an op attribute lacks its name or type")
    i32 = lambda x: pw.as_int32(x, where)  # noqa: E731
    value: object
    if atype == 0:  # INT
        value = i32(scalars.get(3, 0))
    elif atype == 1:  # FLOAT (a float32, widened exactly)
        value = scalars.get(4, 0.0)
    elif atype == 2:  # STRING
        value = scalars.get(5, "")
    elif atype == 3:  # INTS
        value = [i32(x) for x in lists.get(6, [])]
    elif atype == 4:  # FLOATS
        value = lists.get(7, [])
    elif atype == 5:  # STRINGS
        value = lists.get(8, [])
    elif atype == 6:  # BOOLEAN
        value = bool(scalars.get(10, 0))
    elif atype == 7:  # BOOLEANS
        value = [bool(x) for x in lists.get(11, [])]
    elif atype == 8:  # BLOCK
        value = i32(scalars.get(12, 0))
    elif atype == 9:  # LONG
        value = pw.as_int64(scalars.get(13, 0))  # type: ignore[arg-type]
    elif atype == 10:  # BLOCKS
        value = [i32(x) for x in lists.get(14, [])]
    elif atype == 11:  # LONGS
        value = [pw.as_int64(x) for x in lists.get(15, [])]
    elif atype == 12:  # FLOAT64S
        value = lists.get(16, [])
    elif atype == 13:  # VAR
        value = scalars.get(17, "")
    elif atype == 14:  # VARS
        value = lists.get(18, [])
    elif atype == 15:  # FLOAT64
        value = scalars.get(19, 0.0)
    elif atype == 16:  # SCALAR
        value = scalars.get(20)
    elif atype == 17:  # SCALARS
        value = lists.get(21, [])
    else:  # a newer attribute kind: keep the op, lose the value
        value = None
    return name, value


def _scalar(buf: memoryview, where: str) -> object:
    """paddle.framework.proto.Scalar {type=1, b=2, i=3, r=4, c=5{r=1, i=2}} -> Python value."""
    vals: dict[int, object] = {}
    for f, w, v in pw.iter_fields(buf, where):
        if f in (2, 3) and w == pw.VARINT:
            vals[f] = v
        elif f == 4:
            vals[f] = pw.as_float(v, w, where)
        elif f == 5 and w == pw.LEN:
            c: dict[int, float] = {}
            for cf, cw, cv in pw.iter_fields(v, where):  # type: ignore[arg-type]
                if cf in (1, 2):
                    c[cf] = pw.as_float(cv, cw, where)
            vals[f] = complex(c.get(1, 0.0), c.get(2, 0.0))
    if 5 in vals:
        return vals[5]
    if 4 in vals:
        return vals[4]
    if 3 in vals:
        return pw.as_int64(vals[3])  # type: ignore[arg-type]
    if 2 in vals:
        return bool(vals[2])
    return None


def _io(buf: memoryview, where: str) -> tuple[str, list[str]]:
    param = None
    args: list[str] = []
    for f, w, v in pw.iter_fields(buf, where):
        if f == 1 and w == pw.LEN:
            param = pw.as_str(v, where)
        elif f == 2 and w == pw.LEN:
            args.append(pw.as_str(v, where))
    if param is None:
        raise FormatError(f"{where}: malformed program: an op input/output lacks its name")
    return param, args


def _op(buf: memoryview, block: int, where: str) -> OpInfo:
    otype = None
    inputs: dict[str, list[str]] = {}
    outputs: dict[str, list[str]] = {}
    attrs: dict[str, object] = {}
    for f, w, v in pw.iter_fields(buf, where):
        if w != pw.LEN:
            continue
        if f == 3:
            otype = pw.as_str(v, where)
        elif f == 1:
            k, a = _io(v, where)  # type: ignore[arg-type]
            inputs[k] = a
        elif f == 2:
            k, a = _io(v, where)  # type: ignore[arg-type]
            outputs[k] = a
        elif f == 4:
            k, val = _attr(v, where)  # type: ignore[arg-type]
            attrs[k] = val
    if otype is None:
        raise FormatError(f"{where}: malformed program: an op lacks its type")
    return OpInfo(otype, inputs, outputs, attrs, block)


def parse_program(data: bytes, where: str | Path = "<bytes>") -> Program:
    """Decode a serialized ProgramDesc. Raises FormatError if it is not one."""
    where = str(where)
    if not data:
        raise FormatError(f"{where}: empty file, expected a Paddle ProgramDesc protobuf")
    try:
        return _parse(memoryview(data), where)
    except (RecursionError, MemoryError) as e:  # cannot happen by design; belt and braces
        raise FormatError(f"{where}: cannot parse the program ({type(e).__name__})") from None


def _parse(mv: memoryview, where: str) -> Program:
    vars_: list[VarInfo] = []
    ops: list[OpInfo] = []
    unsaved: list[str] = []
    version = 0
    nblocks = 0
    for f, w, v in pw.iter_fields(mv, where):
        if f == 1 and w == pw.LEN:
            idx = nblocks
            for bf, bw, bv in pw.iter_fields(v, where):  # type: ignore[arg-type]
                if bf == 1 and bw == pw.VARINT:
                    idx = pw.as_int32(bv, where)  # type: ignore[arg-type]
                elif bf == 3 and bw == pw.LEN:
                    var = _var(bv, idx, where)  # type: ignore[arg-type]
                    if var.var_type in NOT_SAVED:
                        if var.persistable:
                            unsaved.append(var.name)
                    else:
                        vars_.append(var)
                elif bf == 4 and bw == pw.LEN:
                    ops.append(_op(bv, idx, where))  # type: ignore[arg-type]
            nblocks += 1
        elif f == 4 and w == pw.LEN:
            for vf, vw, vv in pw.iter_fields(v, where):  # type: ignore[arg-type]
                if vf == 1 and vw == pw.VARINT:
                    version = pw.as_int64(vv)  # type: ignore[arg-type]
        elif f == 1 or f == 4:
            raise FormatError(f"{where}: not a Paddle program: field {f} has wire type {w}")
    if nblocks == 0:
        raise FormatError(f"{where}: not a Paddle program: no blocks found")
    return Program(vars_, ops, version, nblocks, unsaved)


def read_program(path: str | Path) -> Program:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise FormatError(f"{path}: cannot read the program: {e.strerror or e}") from None
    return parse_program(data, path)
