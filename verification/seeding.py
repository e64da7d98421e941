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
   biases and shifts N(0, 0.1), variances positive, LSTM weights U(-1/sqrt(h), 1/sqrt(h))
   (``seeding_common``; the roles come from the program's ops in ``seeding_paddle2`` for a
   Paddle 2 program, ``seeding_pir`` for a Paddle 3 one).
2. **Calibration on real inputs** (``calibrate``): the folder is converted and every
   batch norm's mean and variance are set on the converted model, layer by layer in
   forward order, to the per-channel statistics of its actual input (every variance raised
   by the layer's mean variance, so no near-constant channel amplifies rounding), then
   written back under the program's names. Normalized activations then have a scale
   near one, as in a trained network. Finally the logits feeding each output softmax or
   sigmoid (both maps of a head that averages two) are rescaled to a standard deviation of
   ``LOGIT_STD`` (sigmoid maps are also shifted so ``FOREGROUND`` of the pixels are text),
   so probabilities spread over (0, 1) like a trained model's instead of sitting at
   1/num_classes or 0 and 1 (or, averaged, everywhere near 0.5, all above the DB threshold).
   The converted model only chooses the weights: parity then runs the Paddle program and
   the converted model on that one weights file, so a conversion error still shows there.

This module is the recipe, for both program kinds; the modules it builds on never import it.
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn

from converter.convert import convert
from converter.errors import FormatError
from converter.readers.program import Program
from verification import seeding_paddle2, seeding_pir
from verification.parity import single_inputs
from verification.pdiparams import write_pdiparams
from verification.seeding_common import LOGIT_STD, read_record, write_record

FOREGROUND = 0.15  # share of det-map pixels above the DB threshold after calibration
DB_THRESH = 0.3
CALIBRATION_INPUTS = 4  # real images whose statistics set the batch norms (fewer if fewer given)
# Share of the layer's mean variance added to every channel's: no channel is amplified more
# than one of the layer's mean variance would be.
VARIANCE_FLOOR = 1.0


def seed_folder(program_dir: str | os.PathLike, dst: str | os.PathLike, *, seed: int = 0) -> Path:
    """Copy the program files of ``program_dir`` into ``dst`` and write seeded (uncalibrated)
    weights: a Paddle 2 program (``inference.pdmodel``) or a Paddle 3 one (``inference.json``)."""
    src = Path(program_dir)
    if (src / "inference.pdmodel").is_file():
        return seeding_paddle2.seed_folder(src, dst, seed=seed)
    if (src / "inference.json").is_file():
        return seeding_pir.seed_folder(src, dst, seed=seed)
    raise FormatError(f"{src}: no inference.pdmodel or inference.json (a Paddle program to seed)")


def output_layers(program) -> list[tuple[str, str]]:
    """(softmax|sigmoid, program name of the weight producing its logits) for each output
    activation the first fetched output is made of (two for a head averaging two maps), for a
    Paddle 2 program or a Paddle 3 one; [] when the output is neither activation's."""
    if isinstance(program, Program):
        return seeding_paddle2.output_layers(program)
    return seeding_pir.output_layers(program)


# ---- step 2: calibration on real inputs ----

def calibrate(folder: str | os.PathLike, conversion, inputs: Sequence[np.ndarray],
              outputs: Sequence[tuple[str, str]]) -> dict:
    """Set batch-norm statistics and the output logit scale from ``inputs`` (pre-processed
    as the model expects) on ``conversion.model``, the converted ``folder``; rewrite
    ``folder/inference.pdiparams`` under the program's names. ``outputs``: (softmax|sigmoid,
    program name of the weight producing its logits) for each output activation (none: the
    output is left alone)."""
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
    layers = [(kind, _owner(model, by_program[weight].target)) for kind, weight in outputs if weight in by_program]
    scaled = []
    for i, (kind, owner) in enumerate(_in_forward_order(model, layers, xs[0]) if len(layers) > 1 else layers):
        if i:  # an earlier output map feeds later layers (PFHeadLocal's second branch reads the first)
            _set_batch_norms_in_lockstep(model, bns, xs)
        scaled.append(_scale_logits(folder, model, owner, kind, xs))
    if scaled:
        record.update(output=scaled[0]["activation"], logits=scaled)
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


def _owner(model: nn.Module, key: str) -> nn.Module:
    """The module holding parameter ``key`` of ``model``'s state."""
    return model.get_submodule(key.rsplit(".", 1)[0]) if "." in key else model


def _in_forward_order(model: nn.Module, layers: list, x: torch.Tensor) -> list:
    """``layers`` ((kind, module) pairs) in the order a forward on ``x`` first calls their modules."""
    called: list[nn.Module] = []

    def note(mod, args, out):
        if mod not in called:
            called.append(mod)
    hooks = [m.register_forward_hook(note) for _, m in layers]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return sorted(layers, key=lambda layer: called.index(layer[1]) if layer[1] in called else len(called))


def _scale_logits(folder: Path, model: nn.Module, owner: nn.Module, kind: str, xs) -> dict:
    """Rescale ``owner`` (the layer producing one output activation's logits) so its logits over
    ``xs`` have a standard deviation of LOGIT_STD[kind]; a sigmoid map is also shifted so
    FOREGROUND of its pixels are above the DB threshold. Returns what was done (the record)."""
    got: list[torch.Tensor] = []
    def keep(mod, args, out):
        got.append(out.detach())
    h = owner.register_forward_hook(keep)
    try:
        with torch.no_grad():
            for x in xs:
                model(x)
    finally:
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
    return {"activation": kind, "std_before": float(flat.std()), "scale": k, "shift": shift}


def _set_batch_norm(m, seen) -> None:
    """``m``'s running statistics from its inputs ``seen`` (N x C x ..., any N and size), in float64."""
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
    One forward per input, where rerunning the layers before each batch norm would cost about
    one forward per batch norm. Each forward computes what it would alone: the same ops, shapes
    and thread count (PyTorch gives a new thread the process's)."""
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
    record = read_record(folder)
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
    leaves no seeded but uncalibrated weights, which ``verification.suite.prepare`` would otherwise
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
    # Same folder name as dst: conversion may know the model by its folder's name.
    out = seed_folder(program_dir, out, seed=seed)
    conv = convert(out, arch, dictionary=dictionary)
    if donor is not None:
        transplant(out, conv, donor)
        conv = convert(out, arch, dictionary=dictionary)
    inputs = [x for _, x in single_inputs(conv.config, [Path(p) for p in images][:max_inputs])]
    record = read_record(out)
    record.update(calibrated=True, calibration_inputs=len(inputs),
                  **calibrate(out, conv, inputs, output_layers(conv.source.program)))
    write_record(out, record)
    return out
