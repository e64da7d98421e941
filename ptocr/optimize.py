"""Inference-only rewrites of a model that compute the same function with fewer ops.

``for_inference(model, example)`` returns an optimized deep copy:

* re-parameterizable layers fused (branches -> one conv) and replaced by their inference
  form where they have one (e.g. a scalar affine folded into the fused conv), both through the
  ``ptocr.models.reparam`` protocol, so no network family is named here;
* every batch norm that directly and solely consumes a conv's output folded into that conv
  (the BN becomes ``nn.Identity``);
* squeeze-excitation convs (on a 1x1 map) run as matrix products on the pooled vector;
* every plain conv a ``ConvActivation2d`` (oneDNN with its weight packed once per input shape,
  and the activation that alone reads it as a post-op);
* transposed convs to one channel with kernel == stride (the DB head's last layer) as a 1x1
  conv and an interleave (``InterleavedConvTranspose2d``);
* linear layers with a large weight (a recognizer's dictionary head) with that weight packed for
  oneDNN once (``PackedLinear``);
* optionally (the classifiers' default; ``ptocr.load(..., shape_graphs=True)`` for the others)
  frozen oneDNN Graph traces of the input shapes the model sees often (``ptocr.models.shape_graphs``),
  or else (the detectors' and recognizers' default) replays of its eager ops for those shapes, the
  same values bit for bit (``ptocr.models.op_replay``);
* optionally channels-last memory format (``inference_settings`` turns it on by default; see
  TASK_SETTINGS).

Which conv feeds which BN is not read from attribute names: one forward pass on ``example``
records, per tensor, the ops that read it, so a BN is folded only when its input is the output
of exactly one ``Conv2d`` / ``ConvTranspose2d`` call and nothing else reads that output (no
residual, no in-place activation, no view). Modules called more than once are left alone.
Folded weights are computed in float64 and cast once to the model's dtype: in float64 the
optimized model equals the original to rounding; in float32 the outputs differ by rounding only
(the order of multiplications changes).
"""

from __future__ import annotations

import contextlib
import copy
import os
import threading
from collections import Counter

import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode

from ptocr.architectures import ARCHITECTURES, canonical_name
from ptocr.errors import ArchitectureError
from ptocr.models.conv_activation import ACTIVATIONS, ConvActivation2d, weight_derived
from ptocr.models.float64 import float64_members, model_dtype
from ptocr.models.interleaved_conv import InterleavedConvTranspose2d
from ptocr.models.layers import GlobalAvgPool, SEModule, bn_scale_shift
from ptocr.models.model import OCRModel
from ptocr.models.packed_linear import PackedLinear
from ptocr.models.reparam import fuse_reparameterizable, install_inference_forms, replace_submodule
from ptocr.models.shape_graphs import ShapeGraphs

__all__ = ["INFERENCE_OPTIONS", "TASK_SETTINGS", "inference_settings", "compile_for_inference", "for_inference",
           "fold_batch_norms", "onednn_convs", "interleaved_transposed_convs", "packed_linears", "se_as_matrices",
           "for_fixed_shape_graph", "example_input", "weights_changed"]

_CONVS = (nn.Conv2d, nn.ConvTranspose2d)
_ACTS = (nn.ReLU, nn.ReLU6, nn.Hardswish, nn.Hardsigmoid, nn.SiLU)
# Reads of metadata, not of values: they do not make a tensor "used elsewhere".
_METADATA = {"size", "dim", "ndimension", "numel", "__get__", "is_contiguous", "stride", "__len__"}


def example_input(config: dict, dtype=torch.float32, device=None) -> torch.Tensor:
    """A small 1-image input the model accepts: the pre-processing's height and half its width
    for rec / cls, 64 x 64 (a multiple of every detector's stride) for det."""
    shape = config.get("preprocess", {}).get("image_shape")
    c, h, w = shape if config["task"] != "det" and shape else (3, 64, 64)
    w = w // 2 if config["task"] != "det" else w
    return torch.zeros(1, int(c), int(h), int(w), dtype=dtype, device=device).uniform_(-1, 1)


class _Uses(TorchFunctionMode):
    """Counts, for every tensor alive during the pass, the value-reading ops that take it."""

    def __init__(self):
        super().__init__()
        self.reads: Counter[int] = Counter()
        self.keep: list[torch.Tensor] = []  # keeps ids unique while the pass runs

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") not in _METADATA:
            for a in _flat([args, kwargs]):
                if isinstance(a, torch.Tensor) and not isinstance(a, nn.Parameter):
                    self.reads[id(a)] += 1
        out = func(*args, **kwargs)
        self.keep.extend(t for t in _flat([out]) if isinstance(t, torch.Tensor))
        return out


def _flat(x):
    if isinstance(x, (list, tuple)):
        for y in x:
            yield from _flat(y)
    elif isinstance(x, dict):
        for y in x.values():
            yield from _flat(y)
    else:
        yield x


class _Trace:
    """One forward pass: which conv made each tensor, which tensor each BN / activation
    module read, how many value-reading ops took each tensor, how often each module ran."""

    def __init__(self, model: nn.Module, example: torch.Tensor):
        names = {m: n for n, m in model.named_modules()}
        self.calls: Counter[str] = Counter()
        self.conv_out: dict[int, str] = {}
        self.input_of: dict[str, int] = {}

        def after_conv(m, _inp, out):
            self.calls[names[m]] += 1
            self.conv_out[id(out)] = names[m]

        def before(m, inp):
            self.calls[names[m]] += 1
            self.input_of[names[m]] = id(inp[0])

        hooks = [m.register_forward_hook(after_conv) for m in names if isinstance(m, _CONVS)]
        hooks += [m.register_forward_pre_hook(before) for m in names if isinstance(m, (nn.BatchNorm2d, *_ACTS))]
        self._uses = _Uses()
        try:
            with torch.no_grad(), self._uses:
                model(example)
        finally:
            for h in hooks:
                h.remove()

    def sole_reader_of_conv(self, name: str) -> str | None:
        """The conv whose output module ``name`` alone reads (each ran once), else None."""
        tid = self.input_of.get(name)
        conv = self.conv_out.get(tid)
        if conv is None or self._uses.reads[tid] != 1 or self.calls[conv] != 1 or self.calls[name] != 1:
            return None
        return conv


def _foldable_pairs(model: nn.Module, example: torch.Tensor) -> list[tuple[str, str]]:
    trace = _Trace(model, example)
    pairs = [(trace.sole_reader_of_conv(n), n) for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]
    return [(c, bn) for c, bn in pairs if c is not None]


def onednn_convs(model: nn.Module, example: torch.Tensor) -> int:
    """Every plain conv becomes a ``ConvActivation2d`` (oneDNN's convolution with the weight
    packed once per input shape, in eager float32 on the CPU; the plain ops elsewhere): with the
    ReLU / Hardswish / SiLU module that alone reads its output, which becomes an ``nn.Identity``,
    or with none.
    Returns how many activations were fused."""
    trace = _Trace(model, example)
    fused = 0
    for name, m in list(model.named_modules()):
        spec = ACTIVATIONS.get(type(m))
        conv_name = trace.sole_reader_of_conv(name) if spec is not None else None
        if conv_name is None:
            continue
        conv = model.get_submodule(conv_name)
        if not ConvActivation2d.can_take(conv):
            continue
        ConvActivation2d.take_over(conv, spec[0])
        replace_submodule(model, name, nn.Identity())
        fused += 1
    for m in model.modules():
        if ConvActivation2d.can_take(m):
            ConvActivation2d.take_over(m)
    return fused


def interleaved_transposed_convs(model: nn.Module) -> int:
    """Transposed convs to one channel with kernel == stride as a 1x1 conv and an interleave
    (``InterleavedConvTranspose2d``, the class swapped in place); returns how many."""
    convs = [m for m in model.modules() if InterleavedConvTranspose2d.can_take(m)]
    for m in convs:
        InterleavedConvTranspose2d.take_over(m)
    return len(convs)


def packed_linears(model: nn.Module) -> int:
    """Linear layers with at least ``PackedLinear.MIN_WEIGHT_ELEMENTS`` weights as
    ``PackedLinear`` (the class swapped in place); returns how many."""
    linears = [m for m in model.modules() if PackedLinear.can_take(m)]
    for m in linears:
        PackedLinear.take_over(m)
    return len(linears)


def activations_in_place(model: nn.Module, example: torch.Tensor) -> int:
    """Set ``inplace=True`` on activation modules that alone read a conv's output (after BN
    folding, most of them): same values, one full-size tensor fewer allocated. Returns how many."""
    trace = _Trace(model, example)
    done = 0
    for name, m in model.named_modules():
        if isinstance(m, _ACTS) and not m.inplace and trace.sole_reader_of_conv(name) is not None:
            m.inplace = True
            done += 1
    return done


@torch.no_grad()
def _fold(conv: nn.Module, bn: nn.BatchNorm2d) -> None:
    """conv <- bn(conv(.)), computed in float64 and cast once."""
    dtype = conv.weight.dtype
    scale, shift = bn_scale_shift(bn)
    w = conv.weight.double()
    if isinstance(conv, nn.ConvTranspose2d):  # weight: in x out/groups x kh x kw
        g = conv.groups
        w = w.reshape(g, w.shape[0] // g, *w.shape[1:]) * scale.reshape(g, 1, -1, 1, 1)
        w = w.reshape(conv.weight.shape)
    else:  # weight: out x in/groups x kh x kw
        w = w * scale.reshape(-1, 1, 1, 1)
    b = shift if conv.bias is None else conv.bias.double() * scale + shift
    conv.weight = nn.Parameter(w.to(dtype), requires_grad=False)
    conv.bias = nn.Parameter(b.to(dtype), requires_grad=False)


def fold_batch_norms(model: nn.Module, example: torch.Tensor) -> int:
    """Fold (in place) every BN that solely consumes a conv output; returns how many.
    ``model`` must be in eval mode (running statistics are what gets folded)."""
    if model.training:
        raise ValueError("fold_batch_norms needs an eval() model")
    done = 0
    for conv, bn in _foldable_pairs(model, example):
        bn_mod = model.get_submodule(bn)
        if bn_mod.running_var is None:  # no running statistics: nothing constant to fold
            continue
        _fold(model.get_submodule(conv), bn_mod)
        replace_submodule(model, bn, nn.Identity())
        done += 1
    return done


def se_as_matrices(model: nn.Module) -> int:
    """Squeeze-excitation convs as matrix products (``SEModule.as_matrices``); returns how many."""
    modules = [m for m in model.modules() if isinstance(m, SEModule)]
    for m in modules:
        m.as_matrices = True
    return len(modules)


def for_fixed_shape_graph(model: nn.Module, *, inplace: bool = False) -> nn.Module:
    """A copy of ``model`` (``inplace=True``: ``model`` itself) for a trace fixed to one input size
    that oneDNN Graph runs (a static TorchScript export): global pools as average pooling over the
    traced map, squeeze-excitation as its 1x1 convs again, activations out of place. oneDNN Graph
    then runs each SE as three partitions (pool; conv + ReLU; conv + gate + product), where a mean
    and the matrix form leave a PyTorch op between partitions at every SE; without those the
    traced model runs faster. Eager, the matrix form stays faster (se_as_matrices). In place, an
    activation followed by another in-place op (the PP-LCNetV3 rep layers' affine) makes oneDNN
    Graph fail with "bad optional access"."""
    if not inplace:
        model = copy.deepcopy(model)
    for m in model.modules():
        if isinstance(m, SEModule):
            m.as_matrices = False
        elif isinstance(m, GlobalAvgPool):
            m.fixed_window = True
        elif isinstance(m, ConvActivation2d):
            m.activation_in_place = False
        elif isinstance(m, _ACTS):
            m.inplace = False
    return model


# The for_inference keywords a model's config may set under "inference" (from its manifest
# entry), each with the value a config may give it.
INFERENCE_OPTIONS = {"fold_batch_norms": bool, "channels_last": bool, "shape_graphs": bool, "max_shape_graphs": int,
                     "replays": bool}
# for_inference settings per task, below a model's own "inference". Channels-last: oneDNN's
# NHWC kernels skip the two layout reorders its NCHW path makes around every conv, which
# dominate the many small convs of these networks; and a recognizer's sequence (N x W x C) is
# then contiguous for its head's matmul (tools/bench.py; doc/benchmarks.md). Those kernels round
# differently: where that left the parity bound, the model's manifest entry turns it off.
# Shape graphs (ptocr.models.shape_graphs): a fixed-shape graph skips the per-op dispatch and
# oneDNN primitive set-up that cost a recognizer at batch 1 or a classifier more than its
# arithmetic, and fuses the detector's elementwise tails. Each holds a copy of the weights and
# its compiled kernels (the v4 recognizer about 45 MB a shape at batch 1, 120 MB at batch 6; the
# v4 server detector about 350 MB at 640x640), so fewer shapes get one where they cost more.
# On by default for the classifiers only: a graph rounds differently from eager, and a shape
# switches to it at its 8th call, so a detector's boxes and a recognizer's scores would depend on
# what the process read before (the pipelines promise bulk = per-image and resumed = uninterrupted
# bit for bit); a classifier's output is a label. ptocr.load(..., shape_graphs=True) opts in.
# Replays (ptocr.models.op_replay) run a shape's eager ops without the Python around them and
# equal eager bit for bit, so they need no such care: on for the detectors and recognizers (the
# shared ones in 0.91-0.95x eager's time at 960 x 736, the v4 recognizer's line in about 0.8x;
# AMD EPYC Zen 5, 2 threads). The classifiers keep their fused graphs, twice as fast again.
TASK_SETTINGS = {"det": {"channels_last": True, "shape_graphs": False, "max_shape_graphs": 2, "replays": True},
                 "rec": {"channels_last": True, "shape_graphs": False, "max_shape_graphs": 4, "replays": True},
                 "cls": {"channels_last": True, "shape_graphs": True, "max_shape_graphs": 8},
                 # UVDoc's network always runs at 712 x 488 (it resamples the page first).
                 "unwarp": {"channels_last": True, "shape_graphs": False, "max_shape_graphs": 1}}


def inference_settings(config: dict, *, shape_graphs: bool | None = None) -> dict:
    """The for_inference keywords for a model: its task's, then its architecture's (an entry's
    "inference" in ptocr.architectures), then its config's own "inference" (its manifest entry's).
    ``shape_graphs`` (``ptocr.load(..., shape_graphs=)``) overrides the task's default, but not an
    architecture or model that rules graphs out (their rounding leaves the parity bound there)."""
    own = {**_architecture_settings(config.get("architecture")), **config.get("inference", {})}
    settings = {**TASK_SETTINGS.get(config["task"], {}), **own}
    if shape_graphs is not None and own.get("shape_graphs") is not False:
        settings["shape_graphs"] = shape_graphs
    return settings


def _architecture_settings(name: str | None) -> dict:
    try:
        return ARCHITECTURES[canonical_name(name)].get("inference", {}) if name else {}
    except ArchitectureError:  # a file from a version that knew more architectures
        return {}


def for_inference(model: nn.Module, example: torch.Tensor, *, channels_last: bool = False,
                  fold_batch_norms: bool = True, shape_graphs: bool = False,
                  max_shape_graphs: int = ShapeGraphs.MAX_SHAPES, replays: bool = False,
                  inplace: bool = False) -> nn.Module:
    """An optimized eval-mode copy of ``model`` (``inplace=True``: ``model`` itself, rewritten);
    ``example`` is any valid input (``example_input(config)``), run once to find which BN
    follows which conv. ``channels_last``: NHWC weights, which oneDNN runs faster on CPU
    (the PP-OCR mobile models; doc/benchmarks.md). ``fold_batch_norms=False``
    keeps batch norms apart (a model's config says so under ``"inference"`` where folding moved
    it outside the parity bound). ``shape_graphs`` (an ``OCRModel`` only): input shapes the model
    sees often run as frozen oneDNN Graph traces (``ptocr.models.shape_graphs``), at most
    ``max_shape_graphs`` shapes. ``replays`` (an ``OCRModel``; where ``shape_graphs`` is off):
    input shapes the model sees often run as replays of its eager ops, the same values bit for bit
    (``ptocr.models.op_replay``), at most ``REPLAY_MAX_SHAPES``. The result is
    for inference only: no gradients, and some activations overwrite their input."""
    if (shape_graphs or replays) and not isinstance(model, OCRModel):
        raise ValueError(f"shape_graphs and replays need an OCRModel, not {type(model).__name__}")
    with _one_thread():
        model = _optimize(model if inplace else copy.deepcopy(model), example, channels_last, fold_batch_norms)
    if isinstance(model, OCRModel):
        model.inference_only = True
    if shape_graphs:
        model.shape_graphs = ShapeGraphs(_traceable_copy, max_shapes=max_shape_graphs)
    elif replays:
        model.shape_graphs = ShapeGraphs(None, build_after=REPLAY_BUILD_AFTER, max_shapes=REPLAY_MAX_SHAPES,
                                         fused=False)
    return model


# A replay holds no weights of its own, only the packed copies of its shape (shared with the
# model's where the layout is the same): more shapes than fused graphs, whose copies cost 45-350 MB.
REPLAY_MAX_SHAPES = 16
# Recording one takes 0.2-0.45 s and then saves 0.5-3.5 ms a call (the shared recognizers at
# batch 1 and 6, detectors at 960 x 736; AMD EPYC Zen 5, 2 threads): a shape pays back after a
# hundred calls or more, so only one that has come this often is recorded (a run of a few images
# records none; a detector's shape repeats where the pages have one size).
REPLAY_BUILD_AFTER = 32


# Loads take turns at one thread: two at once would each save the other's 1 and one restore it,
# leaving every thread started later at one thread (torch's count is process-wide).
_ONE_THREAD = threading.RLock()


def _after_fork_in_child() -> None:  # a lock held by a loading thread at the fork stays held
    global _ONE_THREAD
    _ONE_THREAD = threading.RLock()


os.register_at_fork(after_in_child=_after_fork_in_child)


@contextlib.contextmanager
def _one_thread():
    """torch's intra-op threads at one inside the block, then as they were. Small tensors and a tiny
    input: thread start-up costs more than it saves (loading the v4 recognizer on a busy machine is
    several times faster at one thread)."""
    with _ONE_THREAD:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)


def weights_changed(model: nn.Module) -> None:
    """Forget what the optimized ``model`` made from its weights (packed copies, shape graphs).
    Every change PyTorch tracks is seen without this (in-place ops, optimizer steps,
    ``load_state_dict``, a dtype round trip, parameters replaced); an edit through ``p.data``
    is not (PyTorch's version counter does not count it): call this after one, and after
    rewriting the model's modules in place (e.g. ``for_fixed_shape_graph(model, inplace=True)``):
    its graphs and replays hold the ops as they were."""
    for derived in weight_derived(model):
        derived.entry = None
    for m in model.modules():
        if isinstance(m, OCRModel) and m.shape_graphs is not None:
            m.shape_graphs.clear()


def _traceable_copy(model: nn.Module) -> nn.Module:
    """What ShapeGraphs traces: the fixed-shape form, without graphs of its own."""
    model = for_fixed_shape_graph(model)
    model.shape_graphs = None
    return model


def _optimize(model: nn.Module, example: torch.Tensor, channels_last: bool, fold_bns: bool) -> nn.Module:
    model.eval()
    fuse_reparameterizable(model)
    install_inference_forms(model)
    example = example.to(next(model.parameters()).device, model_dtype(model))
    if fold_bns:
        fold_batch_norms(model, example)
    onednn_convs(model, example)
    activations_in_place(model, example)
    interleaved_transposed_convs(model)
    packed_linears(model)
    se_as_matrices(model)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        for m in float64_members(model):  # they compute NCHW (ptocr.models.float64)
            m.to(memory_format=torch.contiguous_format)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def compile_for_inference(model: nn.Module) -> nn.Module:
    """``torch.compile`` (inductor), for ``ptocr.load(..., compile=True)``: the elementwise
    chains between convs fuse into generated kernels; convs stay oneDNN calls. Shapes are
    dynamic, but a batch of one and feature maps past a size threshold (a guard of the conv
    kernels) compile apart: a few compilations per model, each tens of seconds on a 2-core CPU,
    once per process. The result is for inference only, on the device and dtype it has now.
    Measured in doc/benchmarks.md; parity in tests/test_parity.py.

    ``freezing`` as a compile option makes the weights graph constants, but in torch 2.13 it
    does not turn on inductor's oneDNN weight packing and conv+activation fusion: those follow
    the process-wide ``torch._inductor.config.freezing`` only. We leave that global alone: with
    it, the direction classifier ran slower and the PP-OCRv4 recognizer at batch one failed to
    compile with dynamic shapes (a layout assertion in the fused conv lowering)."""
    return torch.compile(model, dynamic=True, options={"freezing": True})
