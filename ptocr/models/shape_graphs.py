"""Per-shape graphs of a model, one per input shape it is called with often: frozen traces run by
oneDNN Graph (``fused=True``), or replays of its eager ops (``fused=False``,
``ptocr.models.op_replay``: the same values bit for bit, the detectors' and recognizers' default).
What follows is of the fused graphs; the bookkeeping (when a shape gets one, how many, changed
weights, threads, fork) is the same for both.

Eager, every op of a PP-OCR network pays a dispatch and a oneDNN primitive set-up (about 35 us a
conv on an Intel Xeon), which for small inputs costs more than the arithmetic: a direction
classifier's batch of 6 crops is a hundred such ops, a recognizer's line at batch 1 fifty convs
of which the depthwise ones compute in 60 us and take 100. A frozen TorchScript trace of the same
network, handed to oneDNN Graph (``torch.jit.enable_onednn_fusion``), runs as a few fused
partitions set up once (tools/bench.py, 2 threads: ch_ppocr_mobile_v2.0_cls at batch 6 5.0 ->
1.9 ms, ch_PP-OCRv4_rec at batch 1 12.2 -> 8.1 ms, ch_PP-OCRv4_det at 640x640 43.5 -> 34.3 ms).

Such a trace holds one input shape and the weights as they were, so ``ShapeGraphs`` builds one per
shape, only once that shape has come ``build_after`` times (a one-image run never pays for a
build: 0.3 to 9 seconds on 2 cores), keeps at most ``max_shapes`` (each holds a copy of the
weights and its compiled kernels), and drops them all when the weights change: a parameter
changed in place (``load_state_dict`` copies in place; an optimizer step), given other memory
(``model.to(dtype)`` and back) or replaced by another (``load_state_dict(..., assign=True)``).
Only an edit through ``.data``, which PyTorch's version counter does not see, is missed:
``ptocr.optimize.weights_changed(model)`` after such an edit. The process-wide fusion
switch is turned on only while a new trace's first calls compile it (under a lock), then set
back; builds take turns process-wide, since Python's ``warnings.catch_warnings`` (around
TorchScript's deprecation notices) is not thread-safe: two at once can leave the process
ignoring every warning. A forked child starts without its parent's graphs (their oneDNN kernels
hang there, whatever the thread count) and with fresh locks. Where tracing or fusing fails
(TorchScript is deprecated), or the fused graph does not reproduce the eager output on the call
that built it, the model stays eager for every shape, with one warning, until its weights change.

Graphs run only where they compute what eager does: eval mode, no autograd, float32 on the CPU,
oneDNN on, outside tracing, scripting and torch.compile.
"""

from __future__ import annotations

import os
import threading
import warnings
import weakref
from collections import Counter
from typing import Callable

import torch
import torch.nn as nn

from ptocr.errors import first_line
from ptocr.models import op_replay
from ptocr.models.conv_activation import weight_derived
from ptocr.models.layers import capturing_graph

__all__ = ["ShapeGraphs", "onednn_graph_available"]


def onednn_graph_available() -> bool:
    """TorchScript and its oneDNN Graph fuser are in this PyTorch build."""
    return (torch.backends.mkldnn.is_available() and hasattr(torch.jit, "enable_onednn_fusion")
            and hasattr(torch._C, "_jit_llga_enabled") and hasattr(torch.jit, "freeze"))


# Calls that compile a new trace: the profiling executor records shapes on the first, fuses on
# the second; the third runs the fused plan.
_WARMUP_CALLS = 3
# How far the fused graph's output may be from eager's on the call that built it, relative to the
# largest output value: rounding of the fused kernels, not a different function.
_AGREEMENT = 1e-4
# One build (a fused graph or a replay) at a time in the process: a fused build flips the
# process-wide fusion switch, and both change the warnings filters (catch_warnings saves and
# restores the global list: interleaved, it leaks a filter).
_BUILD_LOCK = threading.Lock()
_INSTANCES: weakref.WeakSet = weakref.WeakSet()  # what a forked child must reset

# Parameters and buffers registered on any module of the process (a module built, a parameter
# assigned): a model's tensor list is walked again (0.2 ms) only after this moved.
_registrations = 0


def _count_registration(module, name, tensor):
    global _registrations
    _registrations += 1


torch.nn.modules.module.register_module_parameter_registration_hook(_count_registration)
torch.nn.modules.module.register_module_buffer_registration_hook(_count_registration)


def _weights_key(params: list[torch.Tensor]) -> tuple[int, int]:
    """Moves when a parameter is changed in place (its version) or given other memory (its
    address): 10-20 us for a hundred parameters."""
    versions = addresses = 0
    for p in params:
        versions += p._version
        addresses += p.data_ptr()
    return versions, addresses


class ShapeGraphs:
    """The per-shape graphs of one model, consulted by ``OCRModel.forward``.

    ``fused=True``: oneDNN Graph traces of the copy ``prepare`` makes
    (``ptocr.optimize.for_fixed_shape_graph``), which round differently from eager. ``fused=False``:
    replays of the model's own eager ops (``ptocr.models.op_replay``), equal to eager bit for bit;
    ``prepare`` is not used.
    """

    MAX_SHAPES = 8

    def __init__(self, prepare: Callable[[nn.Module], nn.Module] | None, build_after: int = 8,
                 max_shapes: int = MAX_SHAPES, fused: bool = True):
        if fused and prepare is None:
            raise ValueError("fused graphs need prepare (the copy of the model to trace)")
        self.prepare = prepare
        self.build_after = build_after
        self.max_shapes = max_shapes
        self.fused = fused
        self._graphs: dict[tuple, torch.jit.ScriptModule] = {}
        self._seen: Counter[tuple] = Counter()
        self._failed = False  # a build failed: what failed for one shape would for the others
        self._params: list[torch.Tensor] | None = None
        self._identity: tuple[int, ...] = ()  # the ids of _params
        self._walked_at = -1  # _registrations when _params was taken
        self._weights: tuple | None = None  # what the graphs were built from
        self._lock = threading.Lock()
        _INSTANCES.add(self)

    def __deepcopy__(self, memo):  # a copy of the model starts without graphs
        return ShapeGraphs(self.prepare, self.build_after, self.max_shapes, self.fused)

    def __reduce__(self):
        return ShapeGraphs, (self.prepare, self.build_after, self.max_shapes, self.fused)

    def __len__(self) -> int:
        return len(self._graphs)

    def applies(self, model: nn.Module, x: torch.Tensor) -> bool:
        """A graph would compute what eager does here."""
        return (not torch.is_grad_enabled() and not model.training and x.dim() == 4 and x.dtype == torch.float32
                and x.device.type == "cpu" and torch.backends.mkldnn.enabled and not capturing_graph()
                and not op_replay.is_recording() and not torch.is_autocast_enabled("cpu")
                and (_AVAILABLE if self.fused else _TRACEABLE))

    def __call__(self, model: nn.Module, x: torch.Tensor, eager: Callable[[torch.Tensor], torch.Tensor]):
        """``model``'s output for ``x``: from its graph for ``x``'s shape where there is one (or
        this call builds it), else ``eager(x)``."""
        if not self.applies(model, x):
            return eager(x)
        if self._walked_at != _registrations:  # the first call, or a parameter may have been replaced
            params = [*model.parameters(), *model.buffers()]  # a graph holds the buffers as they were too
            # Inference tensors have no version counter to watch: such a model stays eager (an
            # empty list, so that the walk over its parameters is not repeated at every call).
            self._params = [] if any(p.is_inference() for p in params) else params
            self._identity = tuple(map(id, self._params))
            self._walked_at = _registrations
        if not self._params:
            return eager(x)
        weights = (self._identity, _weights_key(self._params))
        if weights != self._weights:
            self.clear(weights)
        key = (tuple(x.shape), x.stride())
        graph = self._graphs.get(key)
        if graph is not None:
            return graph(x)
        if self._failed or len(self._graphs) >= self.max_shapes:
            return eager(x)
        self._seen[key] += 1
        if self._seen[key] < self.build_after:
            return eager(x)
        with self._lock:
            # another thread built it, failed, or filled the last place meanwhile
            if key in self._graphs or self._failed or len(self._graphs) >= self.max_shapes:
                graph = self._graphs.get(key)
                return graph(x) if graph is not None else eager(x)
            expected = eager(x)
            try:
                graph, got = self._build(model, x, expected) if self.fused else self._record(model, x, expected, eager)
            except Exception as e:  # whatever TorchScript or the fuser raise, the model still works
                self._failed = True
                what = "oneDNN graph" if self.fused else "replay"
                warnings.warn(f"{type(model).__name__} runs eager: the {what} for input shape {tuple(x.shape)} "
                              f"could not be built ({type(e).__name__}: {first_line(e)[:120]})",
                              RuntimeWarning, stacklevel=3)
                return expected
            self._graphs[key] = graph
            return got  # from here on, every call of this shape is the graph's

    def clear(self, weights: tuple | None = None) -> None:
        """Drop every graph (they hold the weights as they were): the next calls count again."""
        with self._lock:
            self._graphs, self._seen, self._failed, self._weights = {}, Counter(), False, weights

    def _build(self, model: nn.Module, x: torch.Tensor, expected: torch.Tensor):
        """The graph for ``x``'s shape and its output for ``x``."""
        copy = self.prepare(model)
        with _BUILD_LOCK:
            with warnings.catch_warnings():  # TorchScript's deprecation notice: our choice, not the user's concern
                warnings.simplefilter("ignore")
                graph = torch.jit.freeze(torch.jit.trace(copy, x, check_trace=False).eval())
            before = torch._C._jit_llga_enabled()
            torch.jit.enable_onednn_fusion(True)
            try:
                for _ in range(_WARMUP_CALLS):
                    got = graph(x)
            finally:
                torch.jit.enable_onednn_fusion(before)
        off = (got - expected).abs().max().item()
        scale = expected.abs().max().item()
        if not off <= _AGREEMENT * max(scale, 1.0):
            raise RuntimeError(f"the fused graph is {off:.2e} from the eager output")
        return graph, got

    @staticmethod
    def _record(model: nn.Module, x: torch.Tensor, expected: torch.Tensor,
                eager: Callable[[torch.Tensor], torch.Tensor]):
        """The replay for ``x``'s shape (``eager(x)`` has just run, packing its weights for this
        shape) and its output for ``x``, which must be eager's bit for bit."""
        derived = {id(t): t for d in weight_derived(model) for t in d.tensors()}  # a layout's shapes share one
        with _BUILD_LOCK:  # builds take turns: catch_warnings is process-wide
            replay = op_replay.record(model, eager, x, list(derived.values()))
        got = replay(x)
        if not (isinstance(got, torch.Tensor) and isinstance(expected, torch.Tensor) and _same_bits(got, expected)):
            raise RuntimeError("the replay's output is not eager's bit for bit")
        return replay, got


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """The same dtype, shape and bits (torch.equal takes -0.0 for 0.0 and no NaN for itself)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.is_floating_point():
        bits = {2: torch.int16, 4: torch.int32, 8: torch.int64}[a.element_size()]
        a, b = a.view(bits), b.view(bits)
    return torch.equal(a, b)


def _after_fork_in_child() -> None:
    """Runs in a forked child, alone: the parent's graphs would hang there (their compiled oneDNN
    kernels), and a lock another parent thread held at the fork would never be released."""
    global _BUILD_LOCK
    _BUILD_LOCK = threading.Lock()
    for graphs in list(_INSTANCES):
        graphs._lock = threading.Lock()
        graphs.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)

_AVAILABLE = onednn_graph_available()
_TRACEABLE = hasattr(torch.jit, "trace") and hasattr(torch.jit, "optimized_execution")
