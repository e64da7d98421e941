"""Place the parameters of a Paddle 3 (PIR) program in a PyTorch model without names.

A PIR inference program names its parameters ``conv2d_31.w_0_deepcopy_143``: nothing says
which layer they belong to, so a mapping table cannot be used. The graph says it instead.
Both networks compute the same function in the same order, so the order in which their
operations *first read* each parameter is the same:

- Paddle: walk the program's ops in order; each operand that is a parameter, the first
  time it is read, is the next parameter. Its role comes from the op and operand slot that
  read it (``conv2d`` operand 1: a conv kernel; ``batch_norm_`` operands 1-4: mean,
  variance, scale, shift; ``matmul`` operand 1: a Linear weight; ``layer_norm`` 1-2; any
  other read, e.g. the ``reshape`` + ``add`` of a conv bias: "other").
- PyTorch: run the model once on a dummy input under a ``TorchFunctionMode`` that sees
  every torch function call; each state-dict tensor, the first time it is an argument, is
  the next one. Its role comes from the function and argument position in the same way
  (``conv2d`` argument 1, ``batch_norm`` arguments 1-4, ``linear`` 1, ``layer_norm`` 2-3).

The two sequences are then zipped, and every pair must agree, or nothing is placed:

- same length (the error lists the first surplus entries of the longer one);
- same role (a batch-norm variance never lands on a mean, a conv bias never on a BN shift);
- where the Paddle op's ``struct_name`` names a standard layer (``Conv2D``, ``BatchNorm2D``,
  ``Linear``, ``LayerNorm``...), the torch tensor belongs to a module of that kind;
- same shape, after the Linear transpose (Paddle ``[in, out]`` -> torch ``[out, in]``), which
  is chosen by the target module's type as in ``converter.mapping``;
- a dtype the target can hold.

The result is a ``MappingResult`` like the table mapping's, with one line per tensor
(``conv2d_3.w_0 -> backbone.conv1.conv.weight via aligned #3 (conv2d @ /PPLCNet/...)``).
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode

from converter.errors import MappingError
from converter.mapping import OPS, TARGET_DEFAULTS, Mapped, MappingResult, cast_dtype
from converter.readers.onnx import OnnxOp, OnnxProgram
from converter.readers.pir import PirOp, PirProgram
from ptocr.architectures import CLASS_COUNT_KEYS
from ptocr.models.build import build_model

MAX_LISTED = 8

# Paddle op -> {operand index: role}; any other read of a parameter is "other".
PADDLE_ROLES: dict[str, dict[int, str]] = {
    "conv2d": {1: "conv"},
    "depthwise_conv2d": {1: "conv"},
    "conv2d_transpose": {1: "conv_transpose"},
    "depthwise_conv2d_transpose": {1: "conv_transpose"},
    "batch_norm": {1: "bn_mean", 2: "bn_var", 3: "bn_scale", 4: "bn_shift"},
    "batch_norm_": {1: "bn_mean", 2: "bn_var", 3: "bn_scale", 4: "bn_shift"},
    "matmul": {1: "linear"},
    "layer_norm": {1: "ln_scale", 2: "ln_shift"},
}
# torch function name -> {argument index: role}
_TORCH_ROLES: dict[str, dict[int, str]] = {
    "conv1d": {1: "conv"},
    "conv2d": {1: "conv"},
    "conv_transpose2d": {1: "conv_transpose"},
    "batch_norm": {1: "bn_mean", 2: "bn_var", 3: "bn_scale", 4: "bn_shift"},
    "linear": {1: "linear"},
    "layer_norm": {2: "ln_scale", 3: "ln_shift"},
}
# Paddle layer class (last part of struct_name) -> the torch module kinds it may become
_LAYERS: dict[str, tuple[type, ...]] = {
    "Conv2D": (nn.Conv2d,),
    "Conv2DTranspose": (nn.ConvTranspose2d,),
    "BatchNorm": (nn.modules.batchnorm._BatchNorm,),
    "BatchNorm1D": (nn.modules.batchnorm._BatchNorm,),
    "BatchNorm2D": (nn.modules.batchnorm._BatchNorm,),
    "SyncBatchNorm": (nn.modules.batchnorm._BatchNorm,),
    "Linear": (nn.Linear,),
    "LayerNorm": (nn.LayerNorm,),
}
_STANDARD = tuple({t for ts in _LAYERS.values() for t in ts})


@dataclass(frozen=True)
class PaddleUse:
    name: str
    shape: tuple[int, ...]
    role: str
    op: PirOp | OnnxOp

    def where(self) -> str:
        return f"{self.op.type} @ {self.op.struct_name or '(no struct_name)'}"


@dataclass(frozen=True)
class TorchUse:
    key: str
    shape: tuple[int, ...]
    role: str
    func: str
    module: nn.Module


def paddle_sequence(program: PirProgram | OnnxProgram) -> list[PaddleUse]:
    """Parameters in the order the program's ops first read them, with their roles (an ONNX
    export's graph reader works them out itself: ``converter.readers.onnx``)."""
    if isinstance(program, OnnxProgram):
        return [PaddleUse(r.param.name, r.param.shape, r.role, r.op) for r in program.parameter_reads()]
    params = program.param_by_value()
    seen: set[int] = set()
    out: list[PaddleUse] = []
    for op in program.ops:
        roles = PADDLE_ROLES.get(op.type, {})
        for slot, v in enumerate(op.inputs):
            if v in params and v not in seen:
                seen.add(v)
                p = params[v]
                out.append(PaddleUse(p.name, p.shape, roles.get(slot, "other"), op))
    return out


def unread_parameters(program: PirProgram | OnnxProgram) -> list[str]:
    if isinstance(program, OnnxProgram):
        return []  # its parameters are the constants the graph computes with
    read = {v for op in program.ops for v in op.inputs}
    return [p.name for p in program.params if p.value not in read]


class _Recorder(TorchFunctionMode):
    def __init__(self, ids: dict[int, str]):
        super().__init__()
        self.ids = ids
        self.order: list[tuple[str, str, str]] = []  # (key, role, function)
        self.seen: set[str] = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        roles = _TORCH_ROLES.get(name, {})
        for i, a in enumerate([*args, *kwargs.values()]):
            for t in (a if isinstance(a, (list, tuple)) else (a,)):
                key = self.ids.get(id(t)) if isinstance(t, torch.Tensor) else None
                if key is not None and key not in self.seen:
                    self.seen.add(key)
                    self.order.append((key, roles.get(i, "other"), name))
        return func(*args, **kwargs)


def torch_sequence(model: nn.Module, example: torch.Tensor) -> tuple[list[TorchUse], list[str]]:
    """State-dict tensors in the order the forward pass first reads them, and the keys it
    never reads (besides ``num_batches_tracked``)."""
    state = model.state_dict(keep_vars=True)
    owners: dict[str, nn.Module] = {}
    for mname, m in model.named_modules():
        for local, _ in [*m.named_parameters(recurse=False), *m.named_buffers(recurse=False)]:
            owners[f"{mname}.{local}" if mname else local] = m
    ids = {id(t): k for k, t in state.items() if not k.endswith("num_batches_tracked")}
    rec = _Recorder(ids)
    model.eval()
    with torch.no_grad(), rec:
        model(example)
    uses = [TorchUse(k, tuple(state[k].shape), role, func, owners.get(k, model)) for k, role, func in rec.order]
    unread = [k for k in ids.values() if k not in rec.seen]
    return uses, unread


def example_input(program: PirProgram | OnnxProgram) -> torch.Tensor:
    """A dummy input of the program's input shape (free sizes: batch 1, sides 64)."""
    if not program.inputs:
        raise MappingError(f"{program.path}: the program has no data (input) op")
    _, shape = program.inputs[0]
    if len(shape) != 4:
        raise MappingError(f"{program.path}: input shape {list(shape)} is not N x C x H x W")
    dims = [1 if i == 0 and d < 0 else (64 if d < 0 else d) for i, d in enumerate(shape)]
    return torch.zeros(dims).uniform_(-1, 1, generator=torch.Generator().manual_seed(0))


def align(
    program: PirProgram | OnnxProgram,
    tensors: dict[str, np.ndarray],
    model: nn.Module,
    *,
    what: str = "the source",
) -> MappingResult:
    """Map ``tensors`` (program parameter name -> array) onto ``model``'s state dict by the
    graph, or raise MappingError saying where and why the two disagree."""
    pseq = paddle_sequence(program)
    unread = unread_parameters(program)
    if unread:
        raise _error(what, f"{len(unread)} parameters are never read by any op of the program "
                     f"(cannot place them by the graph): {', '.join(unread[:MAX_LISTED])}", len(unread))
    state = model.state_dict()
    wanted = [k for k in state if not k.endswith("num_batches_tracked")]
    if len(wanted) != len(pseq):
        raise _error(what, f"the program has {len(pseq)} parameters, the model {len(wanted)} tensors",
                     abs(len(wanted) - len(pseq)))
    try:
        tseq, never = torch_sequence(model, example_input(program))
    except MappingError:
        raise
    except Exception as e:  # a model that cannot run on this input is not this architecture
        raise _error(what, f"the model cannot run on the program's input shape: {type(e).__name__}: {e}", None) from None
    if never:
        raise _error(what, f"{len(never)} model tensors are never read by its forward pass, so the graph "
                     f"cannot place them: {', '.join(never[:MAX_LISTED])}", len(never))
    linear = {f"{n}.weight" if n else "weight" for n, m in model.named_modules() if isinstance(m, nn.Linear)}

    problems: list[str] = []
    out: dict[str, np.ndarray] = {}
    entries: list[Mapped] = []
    for i, (p, t) in enumerate(zip(pseq, tseq)):
        array = np.asarray(tensors[p.name])
        op = "linear_weight" if t.key in linear and array.ndim == 2 else None
        if op:
            array = OPS[op](array)
        elif _broadcast_form(array.shape, t.shape) and p.role not in ("conv", "conv_transpose", "linear"):
            # an exporter's constant-folded reshape (a conv bias held as [1, C, 1, 1])
            array, op = array.reshape(t.shape), "reshape"
        why = []
        if p.role != t.role:
            why.append(f"role {p.role} in Paddle, {t.role} in torch")
        layer = p.op.layer
        if layer in _LAYERS and isinstance(t.module, _STANDARD) and not isinstance(t.module, _LAYERS[layer]):
            why.append(f"Paddle layer {layer}, torch module {type(t.module).__name__}")
        why += _conv_settings(p, t)
        if tuple(array.shape) != t.shape:
            why.append(f"shape {list(p.shape)}" + (" (transposed for Linear)" if op == "linear_weight" else "")
                       + f" vs {list(t.shape)}")
        if why:
            problems.append(f"#{i}: {p.name} ({p.where()}) -> {t.key} ({t.func}): {'; '.join(why)}")
            if len(problems) >= MAX_LISTED:
                break
            continue
        try:
            out[t.key] = cast_dtype(array, str(state[t.key].dtype).removeprefix("torch."))
        except MappingError as e:
            problems.append(f"#{i}: {p.name} -> {t.key}: {e}")
            continue
        entries.append(Mapped(p.name, t.key, (f"aligned #{i} ({p.where()})",), op))
    if problems:
        raise _error(what, "the program's parameters and the model's tensors disagree in graph order "
                     "(first disagreements):\n" + "\n".join(f"    {s}" for s in problems), len(problems))
    defaults = []
    for key, value in state.items():
        if key in out:
            continue
        import re

        fill = next((f for pat, f in TARGET_DEFAULTS if re.search(pat, key)), None)
        if fill is None:  # pragma: no cover - excluded above
            raise _error(what, f"model tensor {key} is not filled", 1)
        out[key] = fill(tuple(value.shape))
        defaults.append(key)
    return MappingResult(out, entries, defaults)


def _broadcast_form(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    """``shape`` is ``target`` with size-1 axes added (and is not ``target`` itself)."""
    return tuple(shape) != tuple(target) and [d for d in shape if d != 1] == [d for d in target if d != 1] \
        and int(np.prod(shape)) == int(np.prod(target))


def _conv_settings(p: PaddleUse, t: TorchUse) -> list[str]:
    """Strides, paddings, dilations and groups of a conv kernel's op and module agree
    (two networks with equal shapes may still differ there, e.g. (2, 1) strides)."""
    m = t.module
    if p.role not in ("conv", "conv_transpose") or not isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        return []
    a = p.op.attrs
    out = []

    def pair(v):
        return tuple(int(x) for x in v) if isinstance(v, list) and len(v) == 2 else None

    for attr, mine in (("strides", m.stride), ("dilations", m.dilation)):
        theirs = pair(a.get(attr))
        if theirs is not None and theirs != tuple(mine):
            out.append(f"{attr} {list(theirs)} in Paddle, {list(mine)} in torch")
    pads = pair(a.get("paddings"))
    # A reflect / replicate / circular conv pads in an op of its own before it, in both
    # frameworks: the conv itself pads nothing.
    mine_pads = tuple(m.padding) if m.padding_mode == "zeros" or isinstance(m.padding, str) else (0, 0)
    if a.get("padding_algorithm", "EXPLICIT") == "EXPLICIT" and pads is not None and not isinstance(m.padding, str) \
            and pads != mine_pads:
        out.append(f"paddings {list(pads)} in Paddle, {list(mine_pads)} in torch")
    groups = a.get("groups")
    if isinstance(groups, int) and groups != m.groups:
        out.append(f"groups {groups} in Paddle, {m.groups} in torch")
    return out


def class_count(program: PirProgram | OnnxProgram, model: nn.Module, key: str) -> int | None:
    """The class count the program's classifier has: the parameter the graph aligns with
    ``key`` (the head's class weight), read without building the whole mapping."""
    pseq = paddle_sequence(program)
    state = model.state_dict()
    if len([k for k in state if not k.endswith("num_batches_tracked")]) != len(pseq) or key not in state:
        return None
    try:
        tseq, _ = torch_sequence(model, example_input(program))
    except Exception:
        return None
    index = next((i for i, t in enumerate(tseq) if t.key == key), None)
    if index is None or index >= len(pseq):
        return None
    shape = pseq[index].shape
    is_linear = any(isinstance(m, nn.Linear) and (f"{n}.weight" if n else "weight") == key for n, m in model.named_modules())
    return int(shape[-1] if is_linear else shape[0]) if shape else None


def align_source(source, cfg: dict, task: str, *, what: str) -> MappingResult:
    """Size the head from the program and align: the PIR counterpart of the table mapping.
    Updates ``cfg["head"]["num_classes"]`` in place when the program's head differs."""
    program = source.program
    if not isinstance(program, (PirProgram, OnnxProgram)):
        raise MappingError(f"{source.path}: graph alignment needs a Paddle 3 (PIR) program or an ONNX export's graph")
    with _quiet_init():
        model = build_model(cfg)
    key = CLASS_COUNT_KEYS.get(task)
    if key is not None and "num_classes" in cfg.get("head", {}):
        count = class_count(program, model, key)
        if count is not None and count != cfg["head"]["num_classes"]:
            cfg["head"]["num_classes"] = count
            with _quiet_init():
                model = build_model(copy.deepcopy(cfg))
    return align(program, source.tensors, model, what=what)


@contextlib.contextmanager
def _quiet_init():
    # Values are overwritten by the alignment; a fixed seed keeps the dry run reproducible.
    state = torch.random.get_rng_state()
    torch.manual_seed(0)
    try:
        yield
    finally:
        torch.random.set_rng_state(state)


def _error(what: str, why: str, mismatches: int | None) -> MappingError:
    e = MappingError(f"{what} does not match the target architecture by graph alignment: {why}")
    e.mismatches = mismatches
    return e
