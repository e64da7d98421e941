"""Decode an ONNX ``ModelProto`` with the repository's own protobuf wire reader.

Only the messages a PP-OCR export uses are decoded, field numbers from ONNX's public
``onnx.proto`` (IR version 3 and later): ``ModelProto`` (ir_version 1, producer_name 2,
producer_version 3, graph 7, opset_import 8, metadata_props 14), ``GraphProto`` (node 1,
name 2, initializer 5, input 11, output 12, sparse_initializer 15), ``NodeProto`` (input 1,
output 2, name 3, op_type 4, attribute 5, domain 7), ``AttributeProto`` (name 1, f 2, i 3,
s 4, t 5, g 6, floats 7, ints 8, strings 9, tensors 10, graphs 11, type 20) and
``TensorProto`` (dims 1, data_type 2, float_data 4, int32_data 5, int64_data 7, name 8,
raw_data 9, double_data 10, external_data 13, data_location 14).

No ``onnx`` package and no ONNX Runtime: the file is bytes, parsed into plain data. Weights
stored outside the file (external data, as ``onnx.save(..., save_as_external_data=True)``
writes) are read from files inside the model's folder only (a relative location without
``..``), their offsets and lengths checked against the file. Sparse initializers and
subgraphs (control flow) are refused: a PP-OCR export has none. Every malformation is a ``FormatError``
naming the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np

from converter.errors import FormatError
from converter.readers.protobuf_wire import (
    LEN,
    VARINT,
    as_float,
    as_int64,
    as_str,
    iter_fields,
    repeated_fixed,
    repeated_varints,
)

MAX_MODEL_BYTES = 2 * 1024**3  # protobuf's own limit for one message
MAX_RANK = 16

# TensorProto.DataType -> numpy dtype (the types a model's constants may have)
DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<f4"),
    2: np.dtype(np.uint8),
    3: np.dtype(np.int8),
    5: np.dtype("<i2"),
    6: np.dtype("<i4"),
    7: np.dtype("<i8"),
    9: np.dtype(np.bool_),
    10: np.dtype("<f2"),
    11: np.dtype("<f8"),
}
# typed repeated field of TensorProto holding each type when raw_data is not used
_TYPED_FIELD = {1: 4, 2: 5, 3: 5, 5: 5, 6: 5, 9: 5, 10: 5, 7: 7, 11: 10}

# AttributeProto.AttributeType
_ATTR_GRAPH_TYPES = {5, 10}  # GRAPH, GRAPHS
_FLOATS, _INTS, _STRINGS = 6, 7, 8


@dataclass
class OnnxTensor:
    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    array: np.ndarray | None  # None only until its external data is read (parse_onnx_model)
    external: dict[str, str] | None = None  # external_data entries (location, offset, length)


@dataclass
class OnnxNode:
    op_type: str
    domain: str
    name: str
    inputs: tuple[str, ...]  # "" for an omitted optional input
    outputs: tuple[str, ...]
    attrs: dict[str, object]  # ints, floats, strings, int/float lists; tensors as OnnxTensor
    index: int


@dataclass
class OnnxValueInfo:
    name: str
    elem_type: int | None
    shape: tuple[int, ...] | None  # -1 for a symbolic or unknown dimension


@dataclass
class OnnxModel:
    path: Path
    ir_version: int
    producer: str
    producer_version: str
    opsets: dict[str, int]
    metadata: dict[str, str]
    graph_name: str
    nodes: list[OnnxNode]
    initializers: dict[str, OnnxTensor]
    inputs: list[OnnxValueInfo]
    outputs: list[OnnxValueInfo]
    external_files: list[Path] = field(default_factory=list)  # external data files read


def read_onnx_model(path: str | os.PathLike) -> OnnxModel:
    path = Path(path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_MODEL_BYTES:
                raise FormatError(f"{path}: {size} bytes, more than one ONNX protobuf can hold")
            data = f.read()
    except OSError as e:
        raise FormatError(f"{path}: cannot read: {e.strerror or e}") from None
    return parse_onnx_model(data, path)


def parse_onnx_model(data: bytes, path: Path) -> OnnxModel:
    where = str(path)
    if not data:
        raise FormatError(f"{path}: empty file, expected an ONNX model")
    ir_version = None
    producer = producer_version = ""
    graph = None
    opsets: dict[str, int] = {}
    metadata: dict[str, str] = {}
    for fnum, wire, v in iter_fields(data, where):
        if fnum == 1 and wire == VARINT:
            ir_version = as_int64(v)
        elif fnum == 2:
            producer = as_str(v, where)
        elif fnum == 3:
            producer_version = as_str(v, where)
        elif fnum == 7:
            graph = _need_len(v, wire, where, "graph")
        elif fnum == 8:
            domain, version = _opset(_need_len(v, wire, where, "opset_import"), where)
            opsets[domain] = version
        elif fnum == 14:
            key, value = _string_entry(_need_len(v, wire, where, "metadata_props"), where)
            metadata[key] = value
        elif fnum in (20, 25):
            raise FormatError(f"{path}: holds training info or local functions, which a PP-OCR inference export never has")
    if ir_version is None or graph is None or not opsets:
        missing = [n for n, x in (("ir_version", ir_version), ("graph", graph), ("opset_import", opsets)) if not x]
        raise FormatError(f"{path}: not a complete ONNX model (no {', '.join(missing)}); truncated, or not an ONNX file")
    name, nodes, inits, inputs, outputs = _graph(graph, where)
    attrs = [a for n in nodes for a in n.attrs.values() if isinstance(a, OnnxTensor)]
    external = _read_external(path, [*inits.values(), *attrs])
    return OnnxModel(path, ir_version, producer, producer_version, opsets, metadata, name, nodes, inits, inputs,
                     outputs, external)


def _read_external(model: Path, tensors: list[OnnxTensor]) -> list[Path]:
    """Fill the arrays of tensors kept in external data files; -> the files read."""
    claimed: dict[Path, int] = {}  # bytes of each file given to tensors so far
    for t in tensors:
        if t.external is not None:
            f = _external_path(model, t)
            t.array = _external_array(model, f, t, claimed)
    return list(claimed)


def _external_path(model: Path, t: OnnxTensor) -> Path:
    """The data file of ``t``: a relative path inside the model's folder, or an error (a location
    is attacker-chosen text: never absolute, never climbing out with '..')."""
    loc = t.external.get("location", "")
    parts = loc.replace("\\", "/").split("/")
    if (not loc or "\0" in loc or ".." in parts or PurePosixPath(loc).is_absolute()
            or PureWindowsPath(loc).is_absolute() or PureWindowsPath(loc).drive):
        raise FormatError(f"{model}: tensor {t.name} keeps its data in {loc!r:.100}, which is not a "
                          "relative path inside the model's folder; refusing to read it")
    f = model.parent.joinpath(*[p for p in parts if p not in ("", ".")])
    if not f.is_file():
        raise FormatError(f"{f}: missing: {model.name} keeps tensor {t.name}'s data in it (ONNX external data); "
                          "copy it beside the .onnx file")
    return f


def _external_array(model: Path, f: Path, t: OnnxTensor, claimed: dict[Path, int]) -> np.ndarray:
    """``t``'s array from ``f``. The tensors of one file together may take no more bytes than it
    has: onnx.save writes each once, and a few bytes of graph pointing many tensors at one
    region would otherwise read gigabytes."""
    def number(key: str) -> int | None:
        v = t.external.get(key)
        if v is not None and not (v.isascii() and v.isdigit()):
            raise FormatError(f"{model}: tensor {t.name}: external data {key} {v!r:.40} is not a number")
        return None if v is None else int(v)

    offset, length = number("offset") or 0, number("length")
    need = int(np.prod(t.shape, dtype=object)) * t.dtype.itemsize if t.shape else t.dtype.itemsize
    try:
        with open(f, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            length = size - offset if length is None else length
            if length != need:
                raise FormatError(f"{f}: tensor {t.name} of shape {list(t.shape)} needs {need} bytes, "
                                  f"{model.name} gives it {length}")
            if offset + length > size:
                raise FormatError(f"{f}: truncated: tensor {t.name} needs bytes {offset}..{offset + length}, "
                                  f"the file has {size}")
            claimed[f] = claimed.get(f, 0) + length
            if claimed[f] > size:
                raise FormatError(f"{model}: its tensors claim more bytes of {f.name} than its {size}: they "
                                  f"overlap (tensor {t.name}), which an ONNX export never does")
            fh.seek(offset)
            data = fh.read(length)
    except OSError as e:
        raise FormatError(f"{f}: cannot read: {e.strerror or e}") from None
    if len(data) != length:
        raise FormatError(f"{f}: truncated while reading tensor {t.name}")
    return np.frombuffer(data, dtype=t.dtype).reshape(t.shape)


def _need_len(v, wire, where: str, what: str) -> memoryview:
    if wire != LEN:
        raise FormatError(f"{where}: malformed ONNX: {what} is not a message")
    return v


def _opset(buf: memoryview, where: str) -> tuple[str, int]:
    domain, version = "", None
    for fnum, wire, v in iter_fields(buf, where):
        if fnum == 1:
            domain = as_str(v, where)
        elif fnum == 2 and wire == VARINT:
            version = as_int64(v)
    if version is None:
        raise FormatError(f"{where}: malformed ONNX: opset_import without a version")
    return domain, version


def _string_entry(buf: memoryview, where: str) -> tuple[str, str]:
    key = value = ""
    for fnum, _, v in iter_fields(buf, where):
        if fnum == 1:
            key = as_str(v, where)
        elif fnum == 2:
            value = as_str(v, where)
    return key, value


def _graph(buf: memoryview, where: str):
    name = ""
    nodes: list[OnnxNode] = []
    inits: dict[str, OnnxTensor] = {}
    inputs: list[OnnxValueInfo] = []
    outputs: list[OnnxValueInfo] = []
    for fnum, wire, v in iter_fields(buf, where):
        if fnum == 1:
            nodes.append(_node(_need_len(v, wire, where, "node"), where, len(nodes)))
        elif fnum == 2:
            name = as_str(v, where)
        elif fnum == 5:
            t = tensor(_need_len(v, wire, where, "initializer"), where)
            if t.name in inits:
                raise FormatError(f"{where}: initializer {t.name} defined twice")
            inits[t.name] = t
        elif fnum == 11:
            inputs.append(_value_info(_need_len(v, wire, where, "input"), where))
        elif fnum == 12:
            outputs.append(_value_info(_need_len(v, wire, where, "output"), where))
        elif fnum == 15:
            raise FormatError(f"{where}: holds sparse initializers, which a PP-OCR export never has")
    return name, nodes, inits, inputs, outputs


def _node(buf: memoryview, where: str, index: int) -> OnnxNode:
    ins: list[str] = []
    outs: list[str] = []
    name = op_type = domain = ""
    raw_attrs: list[memoryview] = []
    for fnum, wire, v in iter_fields(buf, where):
        if fnum == 1:
            ins.append(as_str(v, where))
        elif fnum == 2:
            outs.append(as_str(v, where))
        elif fnum == 3:
            name = as_str(v, where)
        elif fnum == 4:
            op_type = as_str(v, where)
        elif fnum == 5:
            raw_attrs.append(_need_len(v, wire, where, "attribute"))
        elif fnum == 7:
            domain = as_str(v, where)
    if not op_type:
        raise FormatError(f"{where}: node #{index} ({name or 'unnamed'}) has no op_type")
    node_where = f"{where}: node #{index} {op_type} {name!r}"
    attrs = dict(_attribute(a, node_where) for a in raw_attrs)
    return OnnxNode(op_type, domain, name, tuple(ins), tuple(outs), attrs, index)


def _attribute(buf: memoryview, where: str) -> tuple[str, object]:
    name = ""
    kind = None
    scalar: object = None
    ints: list[int] = []
    floats: list[float] = []
    strings: list[str] = []
    for fnum, wire, v in iter_fields(buf, where):
        if fnum == 1:
            name = as_str(v, where)
        elif fnum == 20 and wire == VARINT:
            kind = v
        elif fnum == 2:
            scalar = as_float(v, wire, where)
        elif fnum == 3 and wire == VARINT:
            scalar = as_int64(v)
        elif fnum == 4:
            scalar = bytes(_need_len(v, wire, where, "string attribute"))
        elif fnum == 5:
            scalar = tensor(_need_len(v, wire, where, "tensor attribute"), where)
        elif fnum in (6, 11):
            kind = 5
        elif fnum == 7:
            floats += repeated_fixed(v, wire, 4, where)
        elif fnum == 8:
            ints += [as_int64(x) for x in repeated_varints(v, wire, where)]
        elif fnum == 9:
            strings.append(bytes(_need_len(v, wire, where, "strings attribute")).decode("utf-8", "replace"))
    if kind in _ATTR_GRAPH_TYPES:
        raise FormatError(f"{where}: attribute {name} holds a subgraph (control flow), which a PP-OCR export never has")
    if kind == _FLOATS or (kind is None and floats):
        return name, floats
    if kind == _INTS or (kind is None and ints):
        return name, ints
    if kind == _STRINGS:
        return name, strings
    if isinstance(scalar, bytes):
        scalar = scalar.decode("utf-8", "replace")
    return name, scalar


def _value_info(buf: memoryview, where: str) -> OnnxValueInfo:
    name = ""
    elem: int | None = None
    shape: tuple[int, ...] | None = None
    for fnum, wire, v in iter_fields(buf, where):
        if fnum == 1:
            name = as_str(v, where)
        elif fnum == 2 and wire == LEN:
            for f2, w2, v2 in iter_fields(v, where):
                if f2 == 1 and w2 == LEN:  # TypeProto.tensor_type
                    elem, shape = _tensor_type(v2, where)
    return OnnxValueInfo(name, elem, shape)


def _tensor_type(buf: memoryview, where: str) -> tuple[int | None, tuple[int, ...] | None]:
    elem, dims, has_shape = None, [], False
    for fnum, wire, v in iter_fields(buf, where):
        if fnum == 1 and wire == VARINT:
            elem = v
        elif fnum == 2 and wire == LEN:
            has_shape = True
            for f2, w2, v2 in iter_fields(v, where):
                if f2 == 1 and w2 == LEN:
                    size = -1
                    for f3, w3, v3 in iter_fields(v2, where):
                        if f3 == 1 and w3 == VARINT:
                            size = as_int64(v3)
                    dims.append(size if size > 0 else -1)
    return elem, tuple(dims) if has_shape else None


def tensor(buf: memoryview, where: str) -> OnnxTensor:
    """A TensorProto as a numpy array (little-endian, copied out of the file's bytes)."""
    dims: list[int] = []
    dtype_code = None
    name = ""
    raw: memoryview | None = None
    typed: dict[int, list] = {}
    external: dict[str, str] = {}
    location = 0  # TensorProto.DataLocation: 0 DEFAULT, 1 EXTERNAL
    for fnum, wire, v in iter_fields(buf, where):
        if fnum == 1:
            dims += [as_int64(x) for x in repeated_varints(v, wire, where)]
        elif fnum == 2 and wire == VARINT:
            dtype_code = v
        elif fnum == 8:
            name = as_str(v, where)
        elif fnum == 9:
            raw = _need_len(v, wire, where, "raw_data")
        elif fnum == 4:
            typed.setdefault(4, []).extend(repeated_fixed(v, wire, 4, where))
        elif fnum == 10:
            typed.setdefault(10, []).extend(repeated_fixed(v, wire, 8, where))
        elif fnum in (5, 7):
            typed.setdefault(fnum, []).extend(as_int64(x) for x in repeated_varints(v, wire, where))
        elif fnum == 13:
            key, value = _string_entry(_need_len(v, wire, where, "external_data"), where)
            external[key] = value
        elif fnum == 14 and wire == VARINT:
            location = v
        elif fnum == 3:
            raise FormatError(f"{where}: tensor {name or '(unnamed)'} is split into segments, which this reader does not support")
    label = f"{where}: tensor {name or '(unnamed)'}"
    if location not in (0, 1):
        raise FormatError(f"{label} has data location {location}, which this reader does not support")
    if dtype_code not in DTYPES:
        raise FormatError(f"{label} has data type {dtype_code}, which this reader does not support")
    if len(dims) > MAX_RANK or any(d < 0 for d in dims):
        raise FormatError(f"{label} has dims {dims[:MAX_RANK + 1]}, not a tensor shape")
    dtype = DTYPES[dtype_code]
    count = int(np.prod(dims, dtype=np.int64)) if dims else 1
    if location == 1:  # read by parse_onnx_model, which knows the model's folder
        if "location" not in external:
            raise FormatError(f"{label} keeps its data in an external file but does not name it")
        return OnnxTensor(name, dtype, tuple(dims), None, external)
    if raw is not None:
        if len(raw) != count * dtype.itemsize:
            raise FormatError(f"{label}: raw_data holds {len(raw)} bytes, dims {dims} of {dtype} need {count * dtype.itemsize}")
        array = np.frombuffer(bytes(raw), dtype=dtype).reshape(dims)
    else:
        values = typed.get(_TYPED_FIELD[dtype_code], [])
        if len(values) != count:
            raise FormatError(f"{label}: holds {len(values)} values, dims {dims} need {count}")
        if dtype_code == 10:  # float16 travels as its bits in int32_data
            array = np.array(values, dtype=np.uint16).view(np.float16).reshape(dims)
        else:
            array = np.array(values, dtype=dtype).reshape(dims)
    return OnnxTensor(name, dtype, tuple(dims), array)


__all__ = ["DTYPES", "OnnxModel", "OnnxNode", "OnnxTensor", "OnnxValueInfo", "parse_onnx_model",
           "read_onnx_model", "tensor"]
