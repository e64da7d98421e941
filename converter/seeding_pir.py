"""Seeded weights for Paddle 3 (PIR) programs whose trained weights are out of reach.

The recipe is ``converter.seeding``'s (read its docstring), adapted to PIR:

1. **Initial values by role**, from the ops that read each parameter (never its name):
   ``conv2d``/``depthwise_conv2d`` kernels, ``batch_norm_`` operands (mean, variance,
   scale, shift), ``matmul`` weights, ``layer_norm`` scale/shift, the ``multiply`` /
   ``add`` scalars of learnable affine blocks, conv biases (``reshape`` + ``add``).
   Values come from ``converter.seeding._initial`` so both program kinds are seeded alike.
2. **Calibration on real inputs**: ``converter.seeding.seed_and_calibrate``, the one recipe
   for both program kinds (graph alignment places the statistics on the converted model;
   they are written back under the program's names).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from converter.errors import FormatError
from converter.readers.pir import PirProgram, read_pir_program
from converter.seeding import LOGIT_STD, _initial, write_pdiparams, write_record

PIR_FILES = ("inference.json", "inference.yml")

_ROLES = {
    "conv2d": {1: "conv"},
    "depthwise_conv2d": {1: "conv"},
    "conv2d_transpose": {1: "conv_transpose"},
    "batch_norm_": {1: "bn_mean", 2: "bn_var", 3: "bn_scale", 4: "bn_bias"},
    "batch_norm": {1: "bn_mean", 2: "bn_var", 3: "bn_scale", 4: "bn_bias"},
    "matmul": {1: "matmul"},
    "layer_norm": {1: "norm_scale", 2: "bias"},
    "multiply": {0: "multiplier", 1: "multiplier"},
}


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
    rng = np.random.default_rng(seed)
    role = pir_roles(program)
    values = {}
    for p in program.params:  # program order: stable across runs
        var = SimpleNamespace(name=p.name, shape=p.shape, dtype=p.dtype)
        values[p.name] = _initial(var, role.get(p.name, "other"), rng)
    return values


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


def output_layer(program: PirProgram) -> tuple[str, str] | None:
    """(softmax|sigmoid, name of the weight whose op produces the logits)."""
    producers = program.producers()
    params = program.param_by_value()
    fetch = next((op for op in program.ops if op.type == "fetch"), None)
    if fetch is None or not fetch.inputs:
        return None
    v = fetch.inputs[0]
    kind = None
    for _ in range(32):
        op = producers.get(v)
        if op is None:
            return None
        if kind is None:
            if op.type in LOGIT_STD:
                kind = op.type
            elif op.type not in {"scale", "reshape", "squeeze", "unsqueeze", "transpose", "assign"}:
                return None
            v = op.inputs[0]
            continue
        weights = [params[i] for i in op.inputs if i in params]
        if op.type in {"matmul", "conv2d", "conv2d_transpose", "depthwise_conv2d"} and weights:
            return kind, weights[0].name
        if op.type not in {"add", "reshape", "transpose", "squeeze", "unsqueeze", "scale"}:
            return None
        v = op.inputs[0]
    return None
