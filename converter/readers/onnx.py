"""An ONNX file exported from a PP-OCR Paddle program (paddle2onnx), as a graph to align.

paddle2onnx writes the Paddle program's ops as ONNX nodes in program order and its
parameters as initializers (newer exports) or ``Constant`` nodes (older ones), mostly under
their Paddle names. ``converter.alignment`` places them in the PyTorch model the way it
places a Paddle 3 program's: by the order in which the graph *first reads* each parameter
and the role of that read. What the exporter changes, found on the released files
(``tools/fetch_onnx_models.py``):

- A parameter may reach its op through data-movement nodes (``Reshape`` of a conv bias to
  ``[1, C, 1, 1]``, ``Identity``, ``Unsqueeze``...): the read that counts is the op that
  computes with it, and its position.
- Some parameters are constant-folded under generated names (``p2o.pd_op.reshape.3.0``, a
  conv bias already reshaped to ``[1, C, 1, 1]``; ``helper.reshape.2``, a layer-norm scale).
  Generated names also hold the exporter's own constants (epsilons, GELU's 1/sqrt(2), the
  attention scale ``p2o.pd_op.full.0.0``, resize scales, shapes): a generated name is a
  parameter only when it holds more than one number or sits in a weight slot (a conv's
  weight or bias, or the ``Add`` of a bias to a conv's output: a 1-channel conv's bias is one
  number).
- ``BatchNormalization`` reads scale, shift, mean, variance (Paddle and torch read mean,
  variance, scale, shift): its reads are taken in Paddle's order.
- Layer norm before opset 17 is spelt out (``ReduceMean``, ``Sub``, ``Pow``, ``Sqrt``,
  ``Div``, then ``Mul`` by the scale and ``Add`` of the shift): that ``Mul`` / ``Add`` gives
  the layer-norm roles.
- ``Gemm`` with ``transB`` holds a Linear weight as ``[out, in]``; it is presented as Paddle
  holds it (``[in, out]``).

Nothing here imports onnx or onnxruntime; the file is parsed by ``converter.readers.onnx_proto``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from converter.errors import FormatError
from converter.readers.onnx_proto import OnnxModel, OnnxNode, OnnxTensor, read_onnx_model

# Nodes that only move a value (the op that reads the result is the one that counts).
_MOVES = {"Identity": 0, "Reshape": 0, "Unsqueeze": 0, "Squeeze": 0, "Cast": 0, "Flatten": 0}
# Ops that compute with a parameter; a constant read by anything else is not one.
_COMPUTES = {"Conv", "ConvTranspose", "BatchNormalization", "MatMul", "Gemm", "Add", "Mul", "Sub", "Div", "PRelu"}
# op -> {input slot: role}; roles as converter.alignment names them
_ROLES: dict[str, dict[int, str]] = {
    "Conv": {1: "conv"},
    "ConvTranspose": {1: "conv_transpose"},
    "BatchNormalization": {1: "bn_scale", 2: "bn_shift", 3: "bn_mean", 4: "bn_var"},
    "Gemm": {1: "linear"},
}
# the order in which Paddle (and torch) read one op's parameters, by ONNX input slot
_READ_ORDER = {"BatchNormalization": (0, 3, 4, 1, 2)}
# weight slots: a constant there is a parameter whatever it is called
_WEIGHT_SLOTS = {"Conv": {1, 2}, "ConvTranspose": {1, 2}, "BatchNormalization": {1, 2, 3, 4}, "Gemm": {1, 2}}
# names paddle2onnx gives to values it creates (the program's own parameters keep theirs)
_GENERATED = re.compile(r"^(helper|p2o|auto)\.")
_STANDARD_DOMAINS = {"", "ai.onnx"}
MAX_NODES = 1_000_000


@dataclass(frozen=True)
class OnnxOp:
    """One node, as the alignment sees an op: type, its attributes in Paddle's spelling
    (``strides``, ``paddings``, ``dilations``, ``groups``, ``padding_algorithm``)."""

    type: str
    name: str
    index: int
    attrs: dict

    @property
    def struct_name(self) -> str:
        return f"node {self.name or self.index}"

    @property
    def layer(self) -> str:  # ONNX keeps no layer classes
        return ""


@dataclass(frozen=True)
class OnnxParam:
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype


@dataclass(frozen=True)
class ParamRead:
    param: OnnxParam
    role: str
    op: OnnxOp


@dataclass
class OnnxProgram:
    """The graph of an ONNX export: its parameters in first-read order, with their roles."""

    path: Path
    model: OnnxModel
    reads: list[ParamRead]
    tensors: dict[str, np.ndarray]  # parameter name -> array (Gemm transB weights as [in, out])
    inputs: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)

    @property
    def params(self) -> list[OnnxParam]:
        return [r.param for r in self.reads]

    def parameter_reads(self) -> list[ParamRead]:
        return list(self.reads)

    @property
    def character(self) -> list[str] | None:
        """The recognizer's characters from the ``character`` metadata (one per line)."""
        text = self.model.metadata.get("character")
        if not text:
            return None
        chars = text.split("\n")
        return chars[:-1] if chars and chars[-1] == "" else chars


def read_onnx_program(path: str | os.PathLike) -> OnnxProgram:
    model = read_onnx_model(path)
    return onnx_program(model)


def onnx_program(model: OnnxModel) -> OnnxProgram:
    path = model.path
    if len(model.nodes) > MAX_NODES:
        raise FormatError(f"{path}: {len(model.nodes)} nodes, more than {MAX_NODES}")
    foreign = sorted({n.domain for n in model.nodes if n.domain not in _STANDARD_DOMAINS})
    if foreign:
        raise FormatError(f"{path}: uses operators of domain {', '.join(foreign)}; a paddle2onnx export of a "
                          "PP-OCR program uses standard ONNX operators only")
    constants = dict(model.initializers)
    for node in model.nodes:
        if node.op_type == "Constant" and len(node.outputs) == 1 and isinstance(node.attrs.get("value"), OnnxTensor):
            constants[node.outputs[0]] = node.attrs["value"]
    inputs = [(v.name, v.shape) for v in model.inputs if v.name not in constants]
    _check_defined(model, constants, inputs)
    _check_image_input(path, inputs)

    alias = {}  # Identity output -> what it passes on
    for node in model.nodes:
        if node.op_type == "Identity" and node.inputs and node.outputs:
            alias[node.outputs[0]] = alias.get(node.inputs[0], node.inputs[0])
    producer = {o: n for n in model.nodes for o in n.outputs if o}
    consumers: dict[str, list[tuple[OnnxNode, int]]] = {}
    for node in model.nodes:
        if node.op_type == "Identity":
            continue
        for slot, name in enumerate(node.inputs):
            if name:
                consumers.setdefault(alias.get(name, name), []).append((node, slot))

    def made_by(value: str, op_type: str) -> OnnxNode | None:
        node = producer.get(alias.get(value, value))
        return node if node is not None and node.op_type == op_type else None

    def effective_reads(value: str, depth: int = 0) -> list[tuple[OnnxNode, int]]:
        out = []
        for node, slot in consumers.get(value, []):
            if node.op_type in _MOVES and slot == _MOVES[node.op_type] and depth < 8:
                out += effective_reads(node.outputs[0], depth + 1)
            else:
                out.append((node, slot))
        return out

    def conv_bias(node: OnnxNode, slot: int) -> bool:
        # Add(Conv(x, W), b): Paddle's conv bias (reshape + add), even of one channel
        return node.op_type == "Add" and len(node.inputs) == 2 and any(
            made_by(node.inputs[1 - slot], t) is not None for t in ("Conv", "ConvTranspose"))

    def is_ln_scale(node: OnnxNode, slot: int) -> bool:
        # Mul(normalized, scale) where normalized = Div(x - mean, Sqrt(var + eps))
        if node.op_type != "Mul" or len(node.inputs) != 2:
            return False
        div = made_by(node.inputs[1 - slot], "Div")
        return div is not None and len(div.inputs) == 2 and made_by(div.inputs[1], "Sqrt") is not None

    found: list[tuple[tuple[int, int], OnnxParam, str, OnnxNode]] = []
    tensors: dict[str, np.ndarray] = {}
    ln_scaled: set[str] = set()  # outputs of the layer-norm scale Muls
    for name, t in constants.items():
        if t.array.dtype.kind != "f" or t.array.ndim == 0:
            continue
        reads = effective_reads(name)
        if not reads or any(n.op_type not in _COMPUTES for n, _ in reads):
            continue
        node, slot = min(reads, key=lambda r: r[0].index)
        weight_slot = slot in _WEIGHT_SLOTS.get(node.op_type, ()) or conv_bias(node, slot)
        if _GENERATED.match(name) and not weight_slot and t.array.size <= 1:
            continue  # the exporter's own scalar (epsilon, GELU constant, attention scale)
        array = t.array
        role = _ROLES.get(node.op_type, {}).get(slot, "other")
        if node.op_type == "MatMul" and slot == 1 and array.ndim == 2:
            role = "linear"
        if node.op_type == "Gemm" and slot == 1 and node.attrs.get("transB"):
            array = np.ascontiguousarray(array.T)  # [out, in] -> Paddle's [in, out]
        if is_ln_scale(node, slot):
            role = "ln_scale"
            ln_scaled.add(node.outputs[0])
        order = _READ_ORDER.get(node.op_type)
        rank = order.index(slot) if order and slot in order else slot
        tensors[name] = array
        found.append(((node.index, rank), OnnxParam(name, tuple(array.shape), array.dtype), role, node))
    if not found:
        raise FormatError(f"{path}: an ONNX graph without parameters (weights); not a PP-OCR model export")

    reads_out = []
    for _, param, role, node in sorted(found, key=lambda f: f[0]):
        if role == "other" and node.op_type == "Add" and any(alias.get(i, i) in ln_scaled for i in node.inputs):
            role = "ln_shift"
        reads_out.append(ParamRead(param, role, _op_view(node, path)))
    return OnnxProgram(path, model, reads_out, {r.param.name: tensors[r.param.name] for r in reads_out}, inputs)


def _check_defined(model: OnnxModel, constants: dict, inputs) -> None:
    """Every value a node reads is defined before it (ONNX requires topological order): a
    file cut at a message boundary still parses, but loses the nodes that define values."""
    defined = set(constants) | {n for n, _ in inputs}
    for node in model.nodes:
        for name in node.inputs:
            if name and name not in defined:
                raise FormatError(f"{model.path}: node #{node.index} {node.op_type} reads {name!r}, which nothing "
                                  "defines before it (truncated or corrupt file?)")
        defined.update(o for o in node.outputs if o)
    missing = [o.name for o in model.outputs if o.name not in defined]
    if not model.outputs or missing:
        raise FormatError(f"{model.path}: the graph's outputs {missing or '(none)'} are never computed "
                          "(truncated or corrupt file?)")


def _check_image_input(path: Path, inputs) -> None:
    shapes = [s for _, s in inputs]
    if len(inputs) != 1 or shapes[0] is None or len(shapes[0]) != 4 or shapes[0][1] != 3:
        got = ", ".join(f"{n} {list(s) if s is not None else '?'}" for n, s in inputs) or "none"
        raise FormatError(f"{path}: inputs {got}; a PP-OCR model takes one N x 3 x H x W image batch, "
                          "so this is not an export of a PP-OCR program")


def _op_view(node: OnnxNode, path: Path) -> OnnxOp:
    """Conv attributes in the Paddle program's spelling, for the alignment's checks."""
    try:
        return _conv_attrs(node)
    except (TypeError, ValueError):
        raise FormatError(f"{path}: node #{node.index} {node.op_type} has malformed attributes "
                          f"{ {k: v for k, v in node.attrs.items() if k != 'value'} }"[:400]) from None


def _conv_attrs(node: OnnxNode) -> OnnxOp:
    a = node.attrs
    attrs: dict = {}
    if node.op_type in ("Conv", "ConvTranspose"):
        attrs["strides"] = list(a.get("strides") or [1, 1])
        attrs["dilations"] = list(a.get("dilations") or [1, 1])
        attrs["groups"] = int(a.get("group") or 1)
        auto = a.get("auto_pad") or "NOTSET"
        pads = list(a.get("pads") or [0, 0, 0, 0])
        if auto != "NOTSET":
            attrs["padding_algorithm"] = auto
        elif len(pads) == 4 and pads[:2] == pads[2:]:
            attrs["paddings"] = pads[:2]
        else:
            attrs["paddings"] = pads  # asymmetric: no torch padding equals it
    return OnnxOp(node.op_type, node.name, node.index, attrs)


__all__ = ["OnnxOp", "OnnxParam", "OnnxProgram", "ParamRead", "onnx_program", "read_onnx_program"]
