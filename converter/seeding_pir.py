"""Seeded weights for Paddle 3 (PIR) programs whose trained weights are out of reach.

The recipe is ``converter.seeding``'s (read its docstring), adapted to PIR:

1. **Initial values by role**, from the ops that read each parameter (never its name):
   ``conv2d``/``depthwise_conv2d`` kernels, ``batch_norm_`` operands (mean, variance,
   scale, shift), ``matmul`` weights, ``layer_norm`` scale/shift, the ``multiply`` /
   ``add`` scalars of learnable affine blocks, conv biases (``reshape`` + ``add``).
   Values come from ``converter.seeding._initial`` so both program kinds are seeded alike.
2. **Calibration on real inputs**: ``converter.seeding.calibrate``, on the converted model
   (graph alignment places the statistics), written back under the program's names.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Sequence

import numpy as np

from converter.errors import FormatError
from converter.readers.pir import PirProgram, read_pir_program
from converter.seeding import LOGIT_STD, _initial, calibrate, write_pdiparams

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
    _write_record(out, {"program": str(src), "seed": seed, "calibrated": False, "format": "paddle3_pir"})
    return out


def _write_record(folder: Path, record: dict) -> None:
    (folder / "seeding.json").write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")


def _output_layer(program: PirProgram) -> tuple[str, str] | None:
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


def seed_and_calibrate(program_dir: str | os.PathLike, dst: str | os.PathLike, images: Sequence[str | os.PathLike],
                       *, arch: str | None = None, seed: int = 0, max_inputs: int = 4,
                       dictionary: str | os.PathLike | None = None, donor: str | os.PathLike | None = None) -> Path:
    """Seeded weights, converted once (graph alignment) to learn the pre-processing and
    place the statistics, calibrated on up to ``max_inputs`` real images."""
    from converter.convert import convert
    from converter.parity import single_inputs

    out = seed_folder(program_dir, dst, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        conv = convert(out, arch, dictionary=dictionary or _yml_dictionary(out, Path(tmp)))
        if donor is not None:  # trained weights of the same network where they fit
            from converter.seeding import transplant

            transplant(out, conv, donor)
            conv = convert(out, arch, dictionary=dictionary or _yml_dictionary(out, Path(tmp)))
    inputs = [x for _, x in single_inputs(conv.config, [Path(p) for p in images][:max_inputs])]
    record = json.loads((out / "seeding.json").read_text())
    record.update(calibrated=True, calibration_inputs=len(inputs),
                  **calibrate(out, conv, inputs, _output_layer(conv.source.program)))
    _write_record(out, record)
    return out


def _yml_dictionary(folder: Path, tmp: Path) -> Path | None:
    """inference.yml's character_dict as a dictionary file (until convert reads it itself)."""
    from converter.readers import read_source

    chars = read_source(folder).dictionary
    if not chars:
        return None
    path = tmp / "yml_dict.txt"
    path.write_text("".join(c + "\n" for c in chars), encoding="utf-8")
    return path
