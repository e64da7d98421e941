"""Seeded weights for a real Paddle program whose trained weights are out of reach.

Parity needs the Paddle original and the converted model to run on the same weights.
Where only the program exists (``../shared/paddle_graphs``), we write a ``.pdiparams``
beside a copy of it: one tensor per persistable variable, in the stream order Paddle
reads (names sorted), with the declared shape and dtype. Then Paddle runs the real
program, the converter converts the same folder, and the two are compared as for
trained weights.

Random weights alone make a poor test: activations blow up or vanish through a deep
network, and a saturated or uniform softmax makes any comparison trivially close. So
the values are chosen in two steps, both recorded in the ``seeding.json`` written beside:

1. **Initial values by role**, read from the ops that use each variable, never from its
   name: conv and matmul weights N(0, 1/fan_in) (unit gain), batch-norm scales U(0.5, 1.5),
   biases and shifts N(0, 0.1), variances positive, LSTM weights U(-1/sqrt(h), 1/sqrt(h)).
2. **Calibration on real inputs** (``calibrate``): the folder is converted and every
   batch norm's mean and variance are set on the converted model, layer by layer in
   forward order, to the per-channel statistics of its actual input (every variance raised
   by the layer's mean variance, so no near-constant channel amplifies rounding), then
   written back under the program's names. Normalized activations then have a scale
   near one, as in a trained network. Finally the logits feeding the output softmax or
   sigmoid are rescaled to a standard deviation of ``LOGIT_STD`` (sigmoid maps are also
   shifted so ``FOREGROUND`` of the pixels are text), so probabilities spread over
   (0, 1) like a trained model's instead of sitting at 1/num_classes or 0 and 1.
   The converted model only chooses the weights: parity then runs the Paddle program and
   the converted model on that one weights file, so a conversion error still shows there.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from converter.errors import FormatError
from converter.readers.program import DTYPES, OpInfo, Program, VarInfo, read_program

PROGRAM_FILES = ("inference.pdmodel", "inference.pdiparams.info", "inference.json", "inference.yml")
# Output logit spread: softmax logits of std 2 give trained-like peaked rows without the
# rounding sensitivity of larger ones (at 3, deep seeded recognizers' fp32 error passed 1e-4).
LOGIT_STD = {"softmax": 2.0, "sigmoid": 6.0}
FOREGROUND = 0.15  # share of det-map pixels above the DB threshold after calibration
DB_THRESH = 0.3
CALIBRATION_INPUTS = 4  # real images whose statistics set the batch norms (fewer if fewer given)
# Share of the layer's mean variance added to every channel's: no channel is amplified more
# than one of the layer's mean variance would be. (With layer-by-layer calibration 0.1 and 1.0
# give the seeded v3 recognizers the same fp32 error; the 500x growth once blamed on the floor
# came from statistics set on inputs that no longer occurred, see calibrate.)
VARIANCE_FLOOR = 1.0

_CONV_OPS = {"conv2d", "depthwise_conv2d", "conv2d_transpose", "conv2d_fusion", "fused_conv2d"}
_MATMUL_OPS = {"matmul", "matmul_v2", "mul", "fc"}
_BN_OPS = {"batch_norm", "sync_batch_norm"}


# ---- writing a .pdiparams stream (the inverse of converter.readers.pdiparams) ----

def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int64 as protobuf writes it
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


_CODES = {np.dtype(d): code for code, (_, d, _) in DTYPES.items() if d is not None and code != 22}


def encode_tensor(array: np.ndarray) -> bytes:
    """One LoDTensor record: version, no LoD, version, TensorDesc, raw data."""
    code = _CODES[array.dtype]
    desc = b"\x08" + _varint(code) + b"".join(b"\x10" + _varint(d) for d in array.shape)
    return (np.uint32(0).tobytes() + np.uint64(0).tobytes() + np.uint32(0).tobytes()
            + np.int32(len(desc)).tobytes() + desc + np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes())


def write_pdiparams(path: Path, tensors: dict[str, np.ndarray]) -> None:
    """Write tensors in Paddle's stream order (sorted by name)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        for name in sorted(tensors):
            f.write(encode_tensor(tensors[name]))
    os.replace(tmp, path)


# ---- step 1: initial values by role ----

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
    rng = np.random.default_rng(seed)
    role = roles(program)
    values: dict[str, np.ndarray] = {}
    for var in program.parameters():
        values[var.name] = _initial(var, role.get(var.name, "other"), rng)
    return values


def _initial(var: VarInfo, role: str, rng: np.random.Generator) -> np.ndarray:
    shape = tuple(var.shape)
    if var.dtype is None or any(d < 0 for d in shape):
        raise FormatError(f"persistable variable {var.name} has no fixed shape/dtype: {shape}")
    if var.dtype.kind in "iub":
        return np.zeros(shape, var.dtype)
    if role == "conv":  # [out, in/groups, kh, kw]
        fan_in = int(np.prod(shape[1:])) or 1
        a = rng.normal(0.0, 1.0 / np.sqrt(fan_in), shape)
    elif role == "conv_transpose":  # [in, out/groups, kh, kw]: each output sums in*kh*kw/stride^2
        fan_in = max(1, shape[0] * int(np.prod(shape[2:])) // 4)
        a = rng.normal(0.0, 1.0 / np.sqrt(fan_in), shape)
    elif role == "matmul":  # Paddle Linear weight [in, out]
        a = rng.normal(0.0, 1.0 / np.sqrt(max(1, shape[0])), shape)
    elif role == "bn_scale":
        a = rng.uniform(0.5, 1.5, shape)
    elif role == "bn_var":
        a = rng.uniform(0.5, 1.5, shape)
    elif role == "norm_scale":
        a = rng.uniform(0.7, 1.3, shape)
    elif role == "multiplier" or role == "prelu":
        a = 1.0 + rng.normal(0.0, 0.1, shape) if role == "multiplier" else rng.uniform(0.1, 0.3, shape)
    elif role.startswith("rnn:"):
        h = int(role.split(":")[1]) or max(shape)
        a = rng.uniform(-1 / np.sqrt(h), 1 / np.sqrt(h), shape)
    else:  # biases, BN shifts and means, anything else small
        a = rng.normal(0.0, 0.1, shape)
    return a.astype(var.dtype)


def seed_folder(program_dir: str | os.PathLike, dst: str | os.PathLike, *, seed: int = 0) -> Path:
    """Copy the program files of ``program_dir`` into ``dst`` and write seeded weights
    (a Paddle 2 program; a Paddle 3 ``inference.json`` goes to ``converter.seeding_pir``)."""
    src, out = Path(program_dir), Path(dst)
    program_file = src / "inference.pdmodel"
    if not program_file.is_file():
        if (src / "inference.json").is_file():
            from converter.seeding_pir import seed_folder as seed_pir_folder

            return seed_pir_folder(src, out, seed=seed)
        raise FormatError(f"{src}: no inference.pdmodel or inference.json (a Paddle program to seed)")
    out.mkdir(parents=True, exist_ok=True)
    for name in PROGRAM_FILES:
        if (src / name).is_file():
            shutil.copyfile(src / name, out / name)
    program = read_program(program_file)
    write_pdiparams(out / "inference.pdiparams", initial_values(program, seed))
    write_record(out, {"program": str(src), "seed": seed, "calibrated": False})
    return out


def write_record(folder: Path, record: dict) -> None:
    (folder / "seeding.json").write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")


# ---- step 2: calibration on real inputs ----

def output_layer(program) -> tuple[str, str] | None:
    """(softmax|sigmoid, program name of the weight producing the output logits), for a
    Paddle 2 program or a Paddle 3 one (``converter.seeding_pir``)."""
    if not isinstance(program, Program):
        from converter.seeding_pir import output_layer as pir_output_layer

        return pir_output_layer(program)
    act = _output_activation(program)
    if act is None:
        return None
    kind, logits = act
    weight, _ = _last_affine(program, logits, {v.name for v in program.parameters()})
    return kind, weight


def _output_activation(program: Program) -> tuple[str, str] | None:
    """(activation op type, its input logits var) of the program's first fetched output."""
    fetch = next((op for op in program.ops if op.type == "fetch"), None)
    if fetch is None:
        return None
    var = fetch.inputs["X"][0]
    for _ in range(8):  # through the scale/reshape ops save_inference_model appends
        op = _producer(program, var)
        if op is None:
            return None
        if op.type in LOGIT_STD:
            return op.type, op.inputs["X"][0]
        if op.type not in {"scale", "reshape2", "squeeze2", "unsqueeze2", "transpose2", "assign"}:
            return None
        var = op.inputs["X"][0]
    return None


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


def calibrate(folder: str | os.PathLike, conversion, inputs: Sequence[np.ndarray],
              output: tuple[str, str] | None) -> dict:
    """Set batch-norm statistics and the output logit scale from ``inputs`` (pre-processed
    as the model expects) on ``conversion.model``, the converted ``folder``; rewrite
    ``folder/inference.pdiparams`` under the program's names. ``output``: (softmax|sigmoid,
    program name of the weight producing the logits), or None to leave the output alone."""
    import torch
    import torch.nn as nn

    folder = Path(folder)
    model = conversion.model.eval()
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    record: dict = {"bn_layers": len(bns)}
    xs = [torch.from_numpy(x) for x in inputs]
    # Layer by layer in forward order: each batch norm is set from its input as the layers
    # before it (already set) produce it, so one sweep is exact. (Setting several layers
    # from one run leaves later ones calibrated on inputs that no longer occur: their
    # statistics then squash real channels to near-constants that the next layer's
    # normalization amplifies, rounding with them.)
    _set_batch_norms_in_lockstep(model, bns, xs)
    src = conversion.source
    by_program = {src.program_names.get(e.source, e.source): e for e in conversion.mapping.entries}
    if output is not None and output[1] in by_program:
        kind, weight = output
        key = by_program[weight].target
        owner = model.get_submodule(key.rsplit(".", 1)[0]) if "." in key else model
        got: list[torch.Tensor] = []
        h = owner.register_forward_hook(lambda m, a, o: got.append(o.detach()))
        with torch.no_grad():
            for x in xs:
                model(x)
        h.remove()
        flat = torch.cat([g.double().flatten() for g in got]).numpy()
        k = LOGIT_STD[kind] / max(float(flat.std()), 1e-6)
        shift = 0.0
        if kind == "sigmoid":  # FOREGROUND of the pixels above the DB threshold
            shift = float(np.log(DB_THRESH / (1 - DB_THRESH)) - np.quantile(flat * k, 1 - FOREGROUND))
        with torch.no_grad():
            owner.weight.mul_(k)
            if getattr(owner, "bias", None) is not None:
                owner.bias.mul_(k).add_(shift)
            elif shift:
                raise FormatError(f"{folder}: the output layer has no bias to shift")
        record.update(output=kind, logits_std_before=float(flat.std()), logits_scale=k, logits_shift=shift)
    state = model.state_dict()
    values = {}
    for e in conversion.mapping.entries:
        if e.target is None:
            continue
        a = state[e.target].detach().cpu().numpy()
        values[e.source] = np.ascontiguousarray(a.T) if e.op == "linear_weight" else a
    original = src.tensors
    missing = set(original) - set(values)
    if missing:
        raise FormatError(f"{folder}: calibration lost parameters {sorted(missing)[:5]}")
    write_pdiparams(folder / "inference.pdiparams",
                    {src.program_names.get(k, k): values[k].astype(original[k].dtype) for k in original})
    return record


def _set_batch_norm(m, seen) -> None:
    """``m``'s running statistics from its inputs ``seen`` (N x C x ..., any N and size), in float64."""
    import torch

    c = m.num_features
    flat = torch.cat([t.double().transpose(0, 1).reshape(c, -1) for t in seen], dim=1)
    mean, var = flat.mean(1), flat.var(1, unbiased=False)
    # A nearly constant channel normalized by its own tiny variance would turn float
    # rounding into signal; trained networks silence such channels, so the variance is
    # raised relative to the layer's (VARIANCE_FLOOR).
    var = var + VARIANCE_FLOOR * float(var.mean()) + 1e-6
    with torch.no_grad():
        m.running_mean.copy_(mean.float())
        m.running_var.copy_(var.float())


def _set_batch_norms_in_lockstep(model, bns, xs) -> None:
    """Every batch norm of ``bns`` set from its inputs over all of ``xs``, in forward order.

    Each input runs through ``model`` in a thread of its own, and all halt at each batch norm
    until every one has reached it; the last to arrive sets it (in input order), then all go on.
    One forward per input, where rerunning the layers before each batch norm cost about one
    per batch norm (ch_PP-OCRv4_server_det: 107 forwards, 63 s). Each forward computes what it
    did alone: the same ops, shapes and thread count (PyTorch gives a new thread the process's)."""
    import threading

    import torch

    waiting: dict[int, tuple] = {}
    done: set = set()
    failures: list[BaseException] = []
    local = threading.local()

    def set_layer():
        layers = {id(m) for m, _ in waiting.values()}
        if len(layers) != 1:
            raise FormatError(f"calibration: inputs took different paths ({len(layers)} batch norms at once)")
        layer = waiting[0][0]
        _set_batch_norm(layer, [waiting[i][1] for i in range(len(xs))])
        done.add(layer)
        waiting.clear()

    barrier = threading.Barrier(len(xs), action=set_layer)

    def before(m, args):
        if m not in done:  # a batch norm called again in the same forward is set already
            waiting[local.index] = (m, args[0].detach())
            barrier.wait()

    def run(i):
        local.index = i
        try:
            with torch.no_grad():
                model(xs[i])
        except BaseException as e:  # noqa: BLE001 - re-raised below, in the caller's thread
            failures.append(e)
            barrier.abort()  # the others stop waiting

    hooks = [m.register_forward_pre_hook(before) for m in bns]
    try:
        threads = [threading.Thread(target=run, args=(i,), name=f"calibrate-{i}") for i in range(len(xs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for h in hooks:
            h.remove()
    first = [e for e in failures if not isinstance(e, threading.BrokenBarrierError)] or failures
    if first:
        raise first[0]
    unset = [m for m in bns if m not in done]
    if unset:
        raise FormatError(f"calibration: {len(unset)} batch norms never ran on the inputs")


def transplant(folder: Path, conv, donor: str | os.PathLike) -> dict:
    """Overwrite the seeded weights of ``folder`` (converted as ``conv``) with the trained
    weights of ``donor``, a Paddle model of the same network whose trained weights exist:
    every tensor whose PyTorch key and shape the donor has (typically all but the
    classifier of another language). The program runs trained, realistic activations;
    the comparison still reads the program's own names, layouts and graph."""
    from converter.convert import convert

    donor_state = {k: v.numpy() for k, v in convert(donor).state_dict.items()}
    src = conv.source
    values = {src.program_names.get(k, k): v for k, v in src.tensors.items()}
    taken = 0
    for e in conv.mapping.entries:
        var = src.program_names.get(e.source, e.source)
        if e.target is None or e.target not in donor_state or var not in values:
            continue
        d = donor_state[e.target]
        if e.op == "linear_weight":
            d = d.T  # back to Paddle's [in, out]
        if d.shape == values[var].shape:
            values[var] = np.ascontiguousarray(d).astype(values[var].dtype)
            taken += 1
    write_pdiparams(folder / "inference.pdiparams", values)
    record = json.loads((folder / "seeding.json").read_text())
    record.update(donor=Path(donor).name, donor_tensors=taken, seeded_tensors=len(values) - taken)
    write_record(folder, record)
    return record


def seed_and_calibrate(program_dir: str | os.PathLike, dst: str | os.PathLike, images: Sequence[str | os.PathLike],
                       *, arch: str | None = None, dictionary: str | os.PathLike | None = None,
                       seed: int = 0, max_inputs: int = CALIBRATION_INPUTS,
                       donor: str | os.PathLike | None = None) -> Path:
    """The whole recipe, for a Paddle 2 or a Paddle 3 (PIR) program: seeded weights (the
    trained ones of ``donor`` where they fit), converted to place the statistics and learn
    the model's pre-processing, then calibrated on up to ``max_inputs`` real images.

    Built in a temporary folder beside ``dst`` and moved in only when calibrated: a failure
    leaves no seeded but uncalibrated weights, which ``parity_suite.prepare`` would otherwise
    take for a finished folder (it reuses one holding ``inference.pdiparams``)."""
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{dst.name}.", dir=dst.parent) as tmp:
        out = _seed_and_calibrate(program_dir, Path(tmp) / dst.name, images, arch, dictionary, seed, max_inputs, donor)
        dst.mkdir(exist_ok=True)
        for f in sorted(out.iterdir(), key=lambda f: f.name == "inference.pdiparams"):  # the weights last
            os.replace(f, dst / f.name)
    return dst


def _seed_and_calibrate(program_dir, out: Path, images, arch, dictionary, seed, max_inputs, donor) -> Path:
    from converter.convert import convert
    from converter.parity import single_inputs

    # Same folder name as dst: conversion may know the model by its folder's name.
    out = seed_folder(program_dir, out, seed=seed)
    conv = convert(out, arch, dictionary=dictionary)
    if donor is not None:
        transplant(out, conv, donor)
        conv = convert(out, arch, dictionary=dictionary)
    inputs = [x for _, x in single_inputs(conv.config, [Path(p) for p in images][:max_inputs])]
    record = json.loads((out / "seeding.json").read_text())
    record.update(calibrated=True, calibration_inputs=len(inputs),
                  **calibrate(out, conv, inputs, output_layer(conv.source.program)))
    write_record(out, record)
    return out
