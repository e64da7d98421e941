"""Seeded weights for a Paddle 2 program (``inference.pdmodel``): the program-specific part of
``verification.seeding``'s recipe.

Each persistable variable's role is read from the ops that use it (never from its name), its
initial value drawn by ``seeding_common.initial_value``; the weight producing the output
logits is found by following the fetched output back through the output activation.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from converter.errors import FormatError
from converter.readers.program import OpInfo, Program, read_program
from verification.pdiparams import write_pdiparams
from verification.seeding_common import LOGIT_STD, initial_value, write_record

PROGRAM_FILES = ("inference.pdmodel", "inference.pdiparams.info", "inference.json", "inference.yml")

_CONV_OPS = {"conv2d", "depthwise_conv2d", "conv2d_transpose", "conv2d_fusion", "fused_conv2d"}
_MATMUL_OPS = {"matmul", "matmul_v2", "mul", "fc"}
_BN_OPS = {"batch_norm", "sync_batch_norm"}


def roles(program: Program) -> dict[str, str]:
    """What each persistable variable is, from the ops that read it."""
    out: dict[str, str] = {}
    for op in program.ops:
        ins = op.inputs
        if op.type in _BN_OPS:
            for slot, role in (("Scale", "bn_scale"), ("Bias", "bn_bias"), ("Mean", "bn_mean"), ("Variance", "bn_var")):
                for n in ins.get(slot, []):
                    out[n] = role
        elif op.type in _CONV_OPS:
            for n in ins.get("Filter", []):
                out.setdefault(n, "conv_transpose" if op.type == "conv2d_transpose" else "conv")
            for n in ins.get("Bias", []):
                out.setdefault(n, "bias")
        elif op.type in _MATMUL_OPS:
            for n in ins.get("Y", []) + ins.get("W", []):
                out.setdefault(n, "matmul")
            for n in ins.get("Bias", []):
                out.setdefault(n, "bias")
        elif op.type in {"rnn", "lstm"}:
            for n in ins.get("WeightList", []) + ins.get("Weight", []) + ins.get("Bias", []):
                out[n] = f"rnn:{op.attrs.get('hidden_size', 0)}"
        elif op.type in {"layer_norm", "group_norm", "instance_norm"}:
            for n in ins.get("Scale", []):
                out.setdefault(n, "norm_scale")
            for n in ins.get("Bias", []):
                out.setdefault(n, "bias")
        elif op.type in {"elementwise_mul", "multiply"}:
            for n in ins.get("Y", []) + ins.get("X", []):
                out.setdefault(n, "multiplier")
        elif op.type in {"prelu"}:
            for n in ins.get("Alpha", []):
                out.setdefault(n, "prelu")
    return out


def initial_values(program: Program, seed: int) -> dict[str, np.ndarray]:
    """A seeded value for every parameter of ``program``, by role."""
    rng = np.random.default_rng(seed)
    role = roles(program)
    return {var.name: initial_value(var.name, var.shape, var.dtype, role.get(var.name, "other"), rng)
            for var in program.parameters()}


def seed_folder(program_dir: str | os.PathLike, dst: str | os.PathLike, *, seed: int = 0) -> Path:
    """Copy the program files of ``program_dir`` into ``dst`` and write seeded weights."""
    src, out = Path(program_dir), Path(dst)
    program_file = src / "inference.pdmodel"
    if not program_file.is_file():
        raise FormatError(f"{src}: no inference.pdmodel (a Paddle 2 program)")
    out.mkdir(parents=True, exist_ok=True)
    for name in PROGRAM_FILES:
        if (src / name).is_file():
            shutil.copyfile(src / name, out / name)
    program = read_program(program_file)
    write_pdiparams(out / "inference.pdiparams", initial_values(program, seed))
    write_record(out, {"program": str(src), "seed": seed, "calibrated": False})
    return out


def output_layers(program: Program) -> list[tuple[str, str]]:
    """(softmax|sigmoid, program name of the weight producing its logits) for each output
    activation the first fetched output is made of: one, or two whose maps are averaged, in
    the order the add names them. [] when the output is anything else."""
    params = {v.name for v in program.parameters()}
    return [(kind, _last_affine(program, logits, params)[0]) for kind, logits in _output_activations(program, params)]


_PASS_THROUGH = {"scale", "reshape2", "squeeze2", "unsqueeze2", "transpose2", "assign"}


def _output_activations(program: Program, params: set[str]) -> list[tuple[str, str]]:
    """(activation op type, its input logits var) for each activation the program's first
    fetched output is made of, through the scale/reshape ops save_inference_model appends and
    sums of maps; [] when it is made of anything else."""
    fetch = next((op for op in program.ops if op.type == "fetch"), None)
    if fetch is None:
        return []
    found, todo = [], [fetch.inputs["X"][0]]
    while todo:
        var = todo.pop(0)
        for _ in range(8):
            op = _producer(program, var)
            if op is None:
                return []
            if op.type in LOGIT_STD:
                found.append((op.type, op.inputs["X"][0]))
                break
            summed = op.inputs.get("X", []) + op.inputs.get("Y", [])
            if op.type in {"elementwise_add", "add"} and not any(n in params for n in summed):
                todo += summed
                break
            if op.type not in _PASS_THROUGH:
                return []
            var = op.inputs["X"][0]
        else:
            return []
    return found


def _producer(program: Program, var: str) -> OpInfo | None:
    for op in program.ops:
        if any(var in names for names in op.outputs.values()):
            return op
    return None


def _last_affine(program: Program, logits: str, params: set[str]) -> tuple[str, str | None]:
    """The weight (and bias) that produce ``logits``: follow back through a bias add."""
    op = _producer(program, logits)
    bias = None
    if op is not None and op.type in {"elementwise_add", "add"}:
        ys = op.inputs.get("Y", [])
        if ys and ys[0] in params:
            bias = ys[0]
            op = _producer(program, op.inputs["X"][0])
    if op is None:
        raise FormatError(f"cannot find the layer producing {logits}")
    for slot in ("Filter", "Y", "W"):
        names = [n for n in op.inputs.get(slot, []) if n in params]
        if names:
            if bias is None:
                bias = next((n for n in op.inputs.get("Bias", []) if n in params), None)
            return names[0], bias
    raise FormatError(f"the layer producing {logits} ({op.type}) has no weight to rescale")
