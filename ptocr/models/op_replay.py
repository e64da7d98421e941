"""Replays: a model's eager ops for one input shape, recorded once and run by TorchScript.

At batch 1 a recognizer's ops are small: on an AMD EPYC (Zen 5, 2 threads) the v4 recognizer's
line takes 6.6 ms eager, of which its kernels run about 4 and the Python around them (module
calls, the optimized modules' choice of kernel, argument lists) most of the rest. A trace of the
ops as eager runs them, replayed by TorchScript's interpreter without Python, computes the same
thing in 0.77-0.85x the time (that line, side by side in one process; doc/design_figures.md).

A replay records what eager runs, bit for bit: while ``recording()`` is on (in this thread),
``ptocr.models.layers.capturing_graph`` answers False, so the optimized modules take their eager
CPU kernels (oneDNN with packed weights, the in-place affine of a folded rep layer) instead of
the plain ops they give other graph captures. oneDNN's fused-op calls take a list of optional
scalars the tracer cannot record, so while recording they go through the scripted wrappers of
``recorded_ops()``; the packed weights a trace reads must be known to the tracer, so the module
traced (``_Replayed``) holds them as buffers. Nothing is done to the trace, and it runs with
TorchScript's graph optimizations off (a per-thread switch), so nothing fuses or reorders an op.

Because a replay is exactly eager, a model can switch to it at any call without its outputs
depending on what it read before: ``ptocr.models.shape_graphs.ShapeGraphs(fused=False)`` builds
one per input shape seen often and checks, on the call that built it, that its output equals
eager's bit for bit (otherwise the model stays eager).
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from typing import Callable, List, Optional

import torch
import torch.nn as nn

__all__ = ["Replay", "is_recording", "record", "recorded_ops", "recording"]

_STATE = threading.local()


def is_recording() -> bool:
    """This thread is recording a replay (``recording()``)."""
    return getattr(_STATE, "on", False)


@contextlib.contextmanager
def recording():
    """Eager kernels for the ops this thread traces inside the block (see the module doc)."""
    before = is_recording()
    _STATE.on = True
    try:
        yield
    finally:
        _STATE.on = before


class _RecordedOps:
    """TorchScript functions calling oneDNN's fused conv / linear with no extra scalars: the form a
    trace can record (the tracer takes no ``List[Optional[Scalar]]`` argument)."""

    def __init__(self):
        with warnings.catch_warnings():  # TorchScript's deprecation notices: ours to handle
            warnings.simplefilter("ignore")
            self.convolution_pointwise = torch.jit.script(_convolution_pointwise)
            self.linear_pointwise = torch.jit.script(_linear_pointwise)


def _convolution_pointwise(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], padding: List[int],
                           stride: List[int], dilation: List[int], groups: int, attr: str) -> torch.Tensor:
    return torch.ops.mkldnn._convolution_pointwise(x, weight, bias, padding, stride, dilation, groups, attr, [], "")


def _linear_pointwise(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


_OPS: _RecordedOps | None = None
_OPS_LOCK = threading.Lock()


def _after_fork_in_child() -> None:  # a lock held by a scripting thread at the fork stays held
    global _OPS_LOCK
    _OPS_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def recorded_ops() -> _RecordedOps:
    """The scripted wrappers (scripted once per process, at the first recording)."""
    global _OPS
    with _OPS_LOCK:
        if _OPS is None:
            _OPS = _RecordedOps()
        return _OPS


class _Replayed(nn.Module):
    """What is traced: ``run`` (the model's eager forward) under a module that also holds, as
    buffers, every tensor the model's modules derived from their weights (packed copies)."""

    def __init__(self, model: nn.Module, run: Callable[[torch.Tensor], torch.Tensor], derived: list[torch.Tensor]):
        super().__init__()
        self.model = model
        object.__setattr__(self, "_run", run)  # a bound method, not a submodule
        for i, t in enumerate(derived):
            self.register_buffer(f"derived_{i}", t, persistent=False)

    def forward(self, x):
        return self._run(x)


class Replay:
    """One recorded shape: the trace, called like the model, with TorchScript's optimizations off.

    Not frozen: freezing (weights as graph constants, module calls inlined) made it 5-7 % faster,
    but a frozen module's graph stays in TorchScript's process-wide compilation unit, which would
    keep every replayed model's weights alive; inlining alone, or with the weights folded in as
    constants, gained nothing measurable (doc/design_figures.md)."""

    def __init__(self, script: torch.jit.ScriptModule):
        self.script = script

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.jit.optimized_execution(False):
            return self.script(x)


def record(model: nn.Module, run: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
           derived: list[torch.Tensor]) -> Replay:
    """The replay of ``run(x)`` (``run``: ``model``'s eager forward, which has just run on ``x``
    so that its modules' weight-derived tensors for this shape, ``derived``, exist)."""
    recorded_ops()
    with recording(), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings: sizes and scalars are this shape's constants
        script = torch.jit.trace(_Replayed(model, run, derived).eval(), x, check_trace=False)
    return Replay(script)
