"""Read a Paddle 3 PIR inference program (``inference.json``) and its ``inference.yml``.

Paddle 3 saves programs as JSON (``paddle/fluid/pir/serialize_deserialize``), in a
compact form:

- ``{"base_code": {"magic": "pir", "version": N, ...}, "program": {"regions": [...]}}``;
  the top-level region's first block holds the ops, in program order.
- A parameter is a compact op ``{"#": "p", "A": [is_distributed, is_parameter, need_clip,
  name], "O": {"%": value id, "TT": type}, "OA": [persistable, stop_gradient, trainable]}``.
- Any other op is ``{"#": "<dialect id>.<op name>", "I": [{"%": id}, ...], "O": [{"%": id,
  "TT": type}, ...], "A": [{"N": attr name, "AT": {"#": attr type, "D": value}}, ...]}``;
  operand id 0 is the null value. Dialect ``1`` is ``pd_op``, ``0`` is ``builtin``.
- A dense tensor type is ``{"#": "0.t_dtensor", "D": [{"#": "0.t_f32"}, dims, layout,
  lod, offset]}``.

The weights (``inference.pdiparams``) hold no names: the tensors are the program's
parameters sorted by name, in the Paddle 2 stream format. There are no structured
(layer) names either; ops carry ``struct_name`` (the layer class path, e.g.
``/PPLCNet/Sequential_4/DepthwiseSeparable/SEModule/Conv2D/``), which the alignment
(``converter.alignment``) uses for its checks.

Nothing here executes anything: JSON and YAML (``yaml.safe_load``) are parsed as data,
sizes are bounded, every structural surprise is a ``FormatError`` naming the file.
"""

from __future__ import annotations

import json
import os
import reprlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from converter.errors import FormatError
from converter.readers.formats import describe_bytes

MAX_PROGRAM_BYTES = 256 * 1024 * 1024  # the largest PP-OCR program is a few MB
MAX_YML_BYTES = 32 * 1024 * 1024  # a recognizer's yml holds its whole dictionary
MAX_OPS = 1_000_000
MAX_RANK = 16
_MAX_ATTR_DEPTH = 16

# PIR element type -> (Paddle dtype code as in the tensor stream, numpy dtype)
PIR_DTYPES: dict[str, tuple[int, np.dtype]] = {
    "t_bool": (0, np.dtype(np.bool_)),
    "t_i16": (1, np.dtype(np.int16)),
    "t_i32": (2, np.dtype(np.int32)),
    "t_i64": (3, np.dtype(np.int64)),
    "t_f16": (4, np.dtype(np.float16)),
    "t_f32": (5, np.dtype(np.float32)),
    "t_f64": (6, np.dtype(np.float64)),
    "t_ui8": (20, np.dtype(np.uint8)),
    "t_i8": (21, np.dtype(np.int8)),
    "t_bf16": (22, np.dtype(np.float32)),
}
DIALECTS = {"0": "builtin", "1": "pd_op", "2": "cf"}


@dataclass(frozen=True)
class PirParam:
    """One parameter (``builtin.parameter``) of the program."""

    name: str
    value: int  # the value id ops refer to
    shape: tuple[int, ...]
    dtype: np.dtype
    dtype_code: int  # Paddle's code, as the tensor stream writes it
    persistable: bool = True
    trainable: bool = True
    position: int = 0  # index among the program's parameter ops


@dataclass(frozen=True)
class PirOp:
    """One (non-parameter) op, in program order."""

    type: str  # op name without dialect, e.g. "conv2d", "batch_norm_"
    dialect: str  # "pd_op", "builtin", ...
    inputs: tuple[int, ...]  # value ids (0: none)
    outputs: tuple[int, ...]
    output_shapes: tuple[tuple[int, ...] | None, ...]
    attrs: dict[str, Any]
    index: int  # position in the block (parameters included)

    @property
    def struct_name(self) -> str:
        return str(self.attrs.get("struct_name", ""))

    @property
    def layer(self) -> str:
        """The innermost layer class of ``struct_name`` (``Conv2D``, ``BatchNorm2D_1`` -> ``BatchNorm2D``)."""
        parts = [p for p in self.struct_name.split("/") if p]
        if not parts:
            return ""
        last = parts[-1]
        base, _, suffix = last.rpartition("_")
        return base if base and suffix.isdigit() else last


@dataclass
class PirProgram:
    path: Path
    version: int
    params: list[PirParam]
    ops: list[PirOp]
    inputs: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)  # data ops: (name, shape)

    def param_by_value(self) -> dict[int, PirParam]:
        return {p.value: p for p in self.params}

    def stream_order(self) -> list[PirParam]:
        """The parameters in the order ``.pdiparams`` holds them (sorted by name)."""
        return sorted((p for p in self.params if p.persistable), key=lambda p: p.name)

    def consumers(self) -> dict[int, list[tuple[PirOp, int]]]:
        """value id -> [(op, operand index)] in program order."""
        out: dict[int, list[tuple[PirOp, int]]] = {}
        for op in self.ops:
            for i, v in enumerate(op.inputs):
                if v:
                    out.setdefault(v, []).append((op, i))
        return out

    def producers(self) -> dict[int, PirOp]:
        return {v: op for op in self.ops for v in op.outputs if v}


@dataclass
class PirConfig:
    """What ``inference.yml`` says (PaddleX's export), as plain data."""

    path: Path
    model_name: str | None
    data: dict
    character_dict: list[str] | None = None


def _fail(path: Path, why: str) -> FormatError:
    return FormatError(f"{path}: {why}")


def _read_bounded(path: Path, limit: int, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > limit:
                raise _fail(path, f"{size} bytes, more than any {what} ({limit} bytes); refusing to read it")
            data = f.read(limit + 1)
    except OSError as e:
        raise FormatError(f"{path}: cannot read: {e.strerror or e}") from None
    if len(data) > limit:
        raise _fail(path, f"grew beyond {limit} bytes while being read")
    return data


# ---- inference.json ----

def read_pir_program(path: str | os.PathLike) -> PirProgram:
    path = Path(path)
    data = _read_bounded(path, MAX_PROGRAM_BYTES, "PIR program")
    return parse_pir_program(data, path)


def parse_pir_program(data: bytes, path: Path) -> PirProgram:
    if not data.strip():
        raise _fail(path, "empty file, expected a Paddle 3 PIR program (JSON)")
    if data.lstrip()[:1] != b"{":
        raise _fail(path, "expected a Paddle 3 PIR program (a JSON object), but it looks like "
                          f"{describe_bytes(data[:512], len(data))}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _fail(path, f"not UTF-8 text (byte {e.start}); not a PIR program") from None
    try:
        doc = json.loads(text)
    except RecursionError:
        raise _fail(path, "JSON nested too deeply") from None
    except ValueError as e:
        raise _fail(path, f"not valid JSON ({e}); truncated or corrupt?") from None
    if not isinstance(doc, dict):
        raise _fail(path, f"expected a JSON object, found a {type(doc).__name__}")
    base = doc.get("base_code")
    if not isinstance(base, dict) or base.get("magic") != "pir":
        raise _fail(path, "JSON without base_code.magic == 'pir': not a Paddle 3 PIR program")
    version = base.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise _fail(path, f"base_code.version is {version!r}, expected an integer")
    program = doc.get("program")
    regions = program.get("regions") if isinstance(program, dict) else None
    if not isinstance(regions, list) or not regions:
        raise _fail(path, "program.regions is missing or empty")
    if len(regions) != 1:
        raise _fail(path, f"program has {len(regions)} top-level regions, expected 1")
    blocks = regions[0].get("blocks") if isinstance(regions[0], dict) else None
    if not isinstance(blocks, list) or len(blocks) != 1 or not isinstance(blocks[0], dict):
        raise _fail(path, "the top-level region must hold exactly one block")
    raw_ops = blocks[0].get("ops")
    if not isinstance(raw_ops, list) or not raw_ops:
        raise _fail(path, "the program's block has no ops")
    if len(raw_ops) > MAX_OPS:
        raise _fail(path, f"{len(raw_ops)} ops, more than {MAX_OPS}")

    params: list[PirParam] = []
    ops: list[PirOp] = []
    inputs: list[tuple[str, tuple[int, ...]]] = []
    defined: set[int] = set()
    names: dict[str, int] = {}
    for index, raw in enumerate(raw_ops):
        where = f"op #{index}"
        if not isinstance(raw, dict) or not isinstance(raw.get("#"), str):
            raise _fail(path, f"{where} is not an op object")
        if raw["#"] == "p":
            p = _param(raw, path, where, len(params))
            if p.name in names:
                raise _fail(path, f"parameter {p.name} defined twice (ops #{names[p.name]} and #{index})")
            if p.value in defined:
                raise _fail(path, f"{where}: value %{p.value} defined twice")
            names[p.name] = index
            defined.add(p.value)
            params.append(p)
            continue
        op = _op(raw, path, where, index)
        if "regions" in raw:
            raise _fail(path, f"{where} ({op.type}) holds nested regions (control flow), which this reader does not support")
        for v in op.inputs:
            if v and v not in defined:
                raise _fail(path, f"{where} ({op.type}) reads value %{v} before any op defines it")
        for v in op.outputs:
            if v:
                if v in defined:
                    raise _fail(path, f"{where} ({op.type}): value %{v} defined twice")
                defined.add(v)
        if op.type == "data":
            shape = op.output_shapes[0] if op.output_shapes else None
            inputs.append((str(op.attrs.get("name", "")), tuple(shape or ())))
        ops.append(op)
    if not params:
        raise _fail(path, "the program has no parameters")
    return PirProgram(path, version, params, ops, inputs)


def _param(raw: dict, path: Path, where: str, position: int) -> PirParam:
    a, out, oa = raw.get("A"), raw.get("O"), raw.get("OA", [1, 0, 1])
    if not (isinstance(a, list) and len(a) == 4 and isinstance(a[3], str) and a[3]):
        raise _fail(path, f"{where}: parameter attributes {str(a)[:80]} are not [is_distributed, is_parameter, need_clip, name]")
    name = a[3]
    if len(name) > 1024:
        raise _fail(path, f"{where}: parameter name of {len(name)} characters")
    if not isinstance(out, dict):
        raise _fail(path, f"{where} (parameter {name}): no result value")
    value = _value_id(out.get("%"), path, f"{where} (parameter {name})")
    shape, code, dtype = _dense_type(out.get("TT"), path, f"{where} (parameter {name})")
    if shape is None or any(d < 0 for d in shape):
        raise _fail(path, f"{where}: parameter {name} has no fixed shape ({shape})")
    if not isinstance(oa, list) or len(oa) != 3 or not all(isinstance(x, int) for x in oa):
        raise _fail(path, f"{where}: parameter {name} flags {str(oa)[:60]} are not [persistable, stop_gradient, trainable]")
    return PirParam(name, value, shape, dtype, code, bool(oa[0]), bool(oa[2]), position)


def _op(raw: dict, path: Path, where: str, index: int) -> PirOp:
    full = raw["#"]
    dialect_id, dot, name = full.partition(".")
    if not dot or not name:
        dialect_id, name = "", full
    dialect = DIALECTS.get(dialect_id, dialect_id)
    where = f"{where} ({name})"
    ins = raw.get("I", [])
    outs = raw.get("O", [])
    if not isinstance(ins, list) or not isinstance(outs, list):
        raise _fail(path, f"{where}: operands/results are not lists")
    inputs = tuple(_value_id(i.get("%") if isinstance(i, dict) else None, path, where, null_ok=True) for i in ins)
    outputs, shapes = [], []
    for o in outs:
        if not isinstance(o, dict):
            raise _fail(path, f"{where}: a result is not an object")
        outputs.append(_value_id(o.get("%"), path, where, null_ok=True))
        tt = o.get("TT")
        shape = None
        if isinstance(tt, dict) and tt.get("#") == "0.t_dtensor":
            shape = _dense_type(tt, path, where)[0]
        shapes.append(shape)
    attrs: dict[str, Any] = {}
    raw_attrs = raw.get("A", [])
    if not isinstance(raw_attrs, list):
        raise _fail(path, f"{where}: attributes are not a list")
    for a in raw_attrs:
        if not isinstance(a, dict) or not isinstance(a.get("N"), str):
            raise _fail(path, f"{where}: an attribute has no name")
        attrs[a["N"]] = _attr(a.get("AT"), path, f"{where} attribute {a['N']}", 0)
    return PirOp(name, dialect, inputs, tuple(outputs), tuple(shapes), attrs, index)


def _value_id(v: Any, path: Path, where: str, null_ok: bool = False) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < 0 or (v == 0 and not null_ok):
        raise _fail(path, f"{where}: value id {v!r} is not a positive integer")
    return v


def _dense_type(tt: Any, path: Path, where: str) -> tuple[tuple[int, ...] | None, int, np.dtype]:
    if not isinstance(tt, dict) or tt.get("#") != "0.t_dtensor" or not isinstance(tt.get("D"), list) or len(tt["D"]) < 2:
        raise _fail(path, f"{where}: type {str(tt)[:80]} is not a dense tensor type")
    elem, dims = tt["D"][0], tt["D"][1]
    kind = elem.get("#", "") if isinstance(elem, dict) else ""
    kind = kind.partition(".")[2] if "." in kind else kind
    if kind not in PIR_DTYPES:
        raise _fail(path, f"{where}: element type {kind or elem!r} is not supported")
    if not isinstance(dims, list) or len(dims) > MAX_RANK or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= -1 for d in dims
    ):
        raise _fail(path, f"{where}: dims {str(dims)[:80]} are not a list of at most {MAX_RANK} sizes")
    code, dtype = PIR_DTYPES[kind]
    return tuple(dims), code, dtype


def _attr(at: Any, path: Path, where: str, depth: int) -> Any:
    """An attribute as plain Python data (arrays as lists)."""
    if depth > _MAX_ATTR_DEPTH:
        raise _fail(path, f"{where}: attribute nested too deeply")
    if not isinstance(at, dict) or "#" not in at:
        raise _fail(path, f"{where}: malformed attribute {str(at)[:80]}")
    value = at.get("D")
    if isinstance(value, list):
        return [_attr(v, path, where, depth + 1) if isinstance(v, dict) and "#" in v else v for v in value]
    return value


# ---- inference.yml ----

# Values (mappings, lists and scalars) an inference.yml may hold once its aliases are expanded:
# a recognizer's has its dictionary's 18,000 characters, a "billion laughs" of nine nested
# aliases in ten lines a billion.
MAX_YML_VALUES = 500_000


def _expanded_values(node: Any, limit: int) -> int:
    """How many values ``node`` holds with every alias expanded, counted up to just past ``limit``."""
    count, stack = 0, [node]
    while stack and count <= limit:
        value = stack.pop()
        count += 1
        if isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return count


def _brief(value: Any) -> str:
    """A YAML value for a message, a few dozen characters at most."""
    return f"{type(value).__name__} {reprlib.repr(value)}"


def read_pir_config(path: str | os.PathLike) -> PirConfig:
    import yaml  # PyYAML; safe_load builds plain data only

    path = Path(path)
    data = _read_bounded(path, MAX_YML_BYTES, "inference.yml")
    try:
        doc = yaml.safe_load(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise _fail(path, f"not UTF-8 text (byte {e.start})") from None
    except (yaml.YAMLError, RecursionError) as e:
        raise _fail(path, f"not valid YAML: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    if not isinstance(doc, dict):
        raise _fail(path, f"expected a YAML mapping, found {type(doc).__name__}")
    if _expanded_values(doc, MAX_YML_VALUES) > MAX_YML_VALUES:
        # aliases of aliases: a few lines that every use (a message, the config written) expands
        raise _fail(path, f"its YAML aliases expand to more than {MAX_YML_VALUES:,} values; not a PaddleX export")
    glob = doc.get("Global")
    model_name = glob.get("model_name") if isinstance(glob, dict) else None
    if model_name is not None and not isinstance(model_name, str):
        raise _fail(path, f"Global.model_name is {_brief(model_name)}, expected text")
    chars = None
    post = doc.get("PostProcess")
    if isinstance(post, dict) and "character_dict" in post:
        raw = post["character_dict"]
        if not isinstance(raw, list) or not raw:
            raise _fail(path, "PostProcess.character_dict is not a non-empty list")
        chars = []
        for i, c in enumerate(raw):
            # YAML turns digit-only entries into numbers; PaddleX reads them back as text
            if isinstance(c, bool) or not isinstance(c, (str, int, float)):
                raise _fail(path, f"PostProcess.character_dict[{i}] is {_brief(c)}, expected a character")
            chars.append(c if isinstance(c, str) else str(c))
    return PirConfig(path, model_name, doc, chars)
