"""Seeded weights for a Paddle 3 (PIR) program (``inference.json``): the program-specific
part of ``verification.seeding``'s recipe, as ``seeding_paddle2`` is for Paddle 2 programs.

Each parameter's role is read from the first PIR op that reads it (never from its name):
``conv2d``/``depthwise_conv2d`` kernels, ``batch_norm_`` operands (mean, variance, scale,
shift), ``matmul`` weights, ``layer_norm`` scale/shift, the ``multiply`` / ``add`` scalars of
learnable affine blocks, conv biases (``reshape`` + ``add``). Values come from
``seeding_common.initial_value``, so both program kinds are seeded alike; calibration is
``verification.seeding``'s, the one recipe for both.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from converter.alignment import PADDLE_ROLES
from converter.errors import FormatError
from converter.readers.pir import PirProgram, read_pir_program
from verification.pdiparams import write_pdiparams
from verification.seeding_common import LOGIT_STD, initial_value, write_record

PIR_FILES = ("inference.json", "inference.yml")

# The op slots converter.alignment reads a parameter's role from, under seeding_common's names,
# and two more seeding needs: learnable affines' scalars and PReLU slopes.
_SEEDING_NAMES = {"bn_shift": "bn_bias", "linear": "matmul", "ln_scale": "norm_scale", "ln_shift": "bias"}
_ROLES = {op: {slot: _SEEDING_NAMES.get(role, role) for slot, role in slots.items()}
          for op, slots in PADDLE_ROLES.items()}
_ROLES.update({"multiply": {0: "multiplier", 1: "multiplier"}, "prelu": {1: "prelu"}})


def pir_roles(program: PirProgram) -> dict[str, str]:
    """What each parameter is, from the first op that reads it."""
    params = program.param_by_value()
    out: dict[str, str] = {}
    for op in program.ops:
        for slot, v in enumerate(op.inputs):
            if v in params and params[v].name not in out:
                out[params[v].name] = _ROLES.get(op.type, {}).get(slot, "bias")
    return out


def initial_values(program: PirProgram, seed: int) -> dict[str, np.ndarray]:
    """A seeded value for every parameter of ``program``, by role."""
    rng = np.random.default_rng(seed)
    role = pir_roles(program)
    # Program order: stable across runs.
    return {p.name: initial_value(p.name, p.shape, p.dtype, role.get(p.name, "other"), rng) for p in program.params}


def seed_folder(program_dir: str | os.PathLike, dst: str | os.PathLike, *, seed: int = 0) -> Path:
    """Copy ``inference.json`` (+ ``.yml``) of ``program_dir`` into ``dst`` and write seeded weights."""
    src, out = Path(program_dir), Path(dst)
    if not (src / "inference.json").is_file():
        raise FormatError(f"{src}: no inference.json (a Paddle 3 PIR program)")
    out.mkdir(parents=True, exist_ok=True)
    for name in PIR_FILES:
        if (src / name).is_file():
            shutil.copyfile(src / name, out / name)
    program = read_pir_program(out / "inference.json")
    write_pdiparams(out / "inference.pdiparams", initial_values(program, seed))
    write_record(out, {"program": str(src), "seed": seed, "calibrated": False, "format": "paddle3_pir"})
    return out


_PASS_THROUGH = {"scale", "reshape", "squeeze", "unsqueeze", "transpose", "assign"}


def output_layers(program: PirProgram) -> list[tuple[str, str]]:
    """(softmax|sigmoid, name of the weight whose op produces its logits) for each output
    activation the first fetched output is made of: one, or two whose maps are averaged
    (PFHeadLocal: 0.5 * (base + cbn)), in the order the add names them. [] when the output is
    anything else."""
    producers = program.producers()
    params = program.param_by_value()
    fetch = next((op for op in program.ops if op.type == "fetch"), None)
    if fetch is None or not fetch.inputs:
        return []
    found, todo = [], [fetch.inputs[0]]
    while todo:
        v = todo.pop(0)
        for _ in range(32):
            op = producers.get(v)
            if op is None:
                return []
            if op.type in LOGIT_STD:
                weight = _logits_weight(op.inputs[0], producers, params)
                if weight is None:
                    return []
                found.append((op.type, weight))
                break
            if op.type == "add" and not any(i in params for i in op.inputs):  # two maps summed
                todo += list(op.inputs)
                break
            if op.type not in _PASS_THROUGH:
                return []
            v = op.inputs[0]
        else:
            return []
    return found


def _logits_weight(v, producers, params) -> str | None:
    """The weight of the conv or matmul producing ``v`` (through a bias add and reshapes)."""
    for _ in range(32):
        op = producers.get(v)
        if op is None:
            return None
        weights = [params[i] for i in op.inputs if i in params]
        if op.type in {"matmul", "conv2d", "conv2d_transpose", "depthwise_conv2d"} and weights:
            return weights[0].name
        if op.type not in {"add", "reshape", "transpose", "squeeze", "unsqueeze", "scale"}:
            return None
        v = op.inputs[0]
    return None
