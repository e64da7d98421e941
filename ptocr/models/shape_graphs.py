"""Frozen traces of a model, one per input shape it is called with often, run by oneDNN Graph.

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
weights and its compiled kernels), and drops them all when a parameter is changed in place
(``load_state_dict`` copies in place). A parameter object replaced by another after the first
call is not seen: set ``model.shape_graphs = None`` before doing that. The process-wide fusion
switch is turned on only while a new trace's first calls compile it (under a lock), then set
back. Where tracing or fusing fails (TorchScript is deprecated), or the fused graph does not
reproduce the eager output on the call that built it, the model stays eager for every shape,
with one warning, until its weights change.

Graphs run only where they compute what eager does: eval mode, no autograd, float32 on the CPU,
oneDNN on, outside tracing, scripting and torch.compile.
"""

from __future__ import annotations

import threading
import warnings
from collections import Counter
from typing import Callable

import torch
import torch.nn as nn

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
_FUSION_SWITCH = threading.Lock()  # one build at a time flips the process-wide switch


class ShapeGraphs:
    """The per-shape graphs of one model, consulted by ``OCRModel.forward``.

    ``prepare``: makes the copy of the model that is traced (``ptocr.optimize.for_fixed_shape_graph``).
    """

    MAX_SHAPES = 8

    def __init__(self, prepare: Callable[[nn.Module], nn.Module], build_after: int = 8,
                 max_shapes: int = MAX_SHAPES):
        self.prepare = prepare
        self.build_after = build_after
        self.max_shapes = max_shapes
        self._graphs: dict[tuple, torch.jit.ScriptModule] = {}
        self._seen: Counter[tuple] = Counter()
        self._failed = False  # a build failed: what failed for one shape would for the others
        self._params: list[torch.Tensor] | None = None
        self._version: int | None = None
        self._lock = threading.Lock()

    def __deepcopy__(self, memo):  # a copy of the model starts without graphs
        return ShapeGraphs(self.prepare, self.build_after, self.max_shapes)

    def __reduce__(self):
        return ShapeGraphs, (self.prepare, self.build_after, self.max_shapes)

    def __len__(self) -> int:
        return len(self._graphs)

    @staticmethod
    def applies(model: nn.Module, x: torch.Tensor) -> bool:
        """A graph would compute what eager does here."""
        return (not torch.is_grad_enabled() and not model.training and x.dim() == 4 and x.dtype == torch.float32
                and x.device.type == "cpu" and torch.backends.mkldnn.enabled and not capturing_graph() and _AVAILABLE)

    def __call__(self, model: nn.Module, x: torch.Tensor, eager: Callable[[torch.Tensor], torch.Tensor]):
        """``model``'s output for ``x``: from its graph for ``x``'s shape where there is one (or
        this call builds it), else ``eager(x)``."""
        if not self.applies(model, x):
            return eager(x)
        if self._params is None:
            params = list(model.parameters())
            # Inference tensors have no version counter to watch: such a model stays eager (an
            # empty list, so that the walk over its parameters is not repeated at every call).
            self._params = [] if any(p.is_inference() for p in params) else params
        if not self._params:
            return eager(x)
        # Each in-place change of a parameter (load_state_dict's copy included) raises its version:
        # a sum over the list taken at the first call costs microseconds, model.parameters() 0.2 ms.
        version = sum(p._version for p in self._params)
        if version != self._version:
            with self._lock:
                self._graphs, self._seen, self._failed, self._version = {}, Counter(), False, version
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
            if key in self._graphs or self._failed:  # another thread built it (or failed) meanwhile
                graph = self._graphs.get(key)
                return graph(x) if graph is not None else eager(x)
            expected = eager(x)
            try:
                graph, got = self._build(model, x, expected)
            except Exception as e:  # whatever TorchScript or the fuser raise, the model still works
                self._failed = True
                warnings.warn(f"{type(model).__name__} runs eager: the oneDNN graph for input shape {tuple(x.shape)} "
                              f"could not be built ({type(e).__name__}: {str(e).splitlines()[0][:120]})",
                              RuntimeWarning, stacklevel=3)
                return expected
            self._graphs[key] = graph
            return got  # from here on, every call of this shape is the graph's

    def _build(self, model: nn.Module, x: torch.Tensor, expected: torch.Tensor):
        """The graph for ``x``'s shape and its output for ``x``."""
        copy = self.prepare(model)
        with warnings.catch_warnings():  # TorchScript's deprecation notice: our choice, not the user's concern
            warnings.simplefilter("ignore")
            graph = torch.jit.freeze(torch.jit.trace(copy, x, check_trace=False).eval())
        with _FUSION_SWITCH:
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


_AVAILABLE = onednn_graph_available()
