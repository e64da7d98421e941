"""CPU latency of the converted PyTorch models against Paddle Inference and ONNX Runtime.

    python -m tools.bench [--threads 2] [--repeat 20] [--rounds 3] [--skip e2e ...] [--out doc/benchmarks.md]

One run, a fixed thread count for every engine. Each engine is timed in a child process
of its own, one after the other: Paddle's OpenMP runtime and torch's in one process
oversubscribe the cores and slow each other down. Each stage gets the same
real input (a scene or word crops from ../shared/images, pre-processed), is warmed up,
then timed ``--repeat`` times and for at least a second. The engines take turns for
``--rounds`` rounds, so a slow spell of a shared machine (or one slow process) hits one round
of one engine, not a whole column; the table gives the median over rounds
and the ratio PyTorch / the best other engine (< 1: PyTorch is faster). ONNX models are exported from the same Paddle
folders with PyPI's paddle2onnx (1.3.1 reads Paddle 2 programs; 2.x only PIR ones).

Also: the end-to-end pipeline against PaddleOCR 2.10 on every scene, conversion and load time
of the mobile models, and the bf16 / fp16 vs fp32 agreement of the trained models on CPU
(``tools.precision_agreement``). ``--out doc/benchmarks.md`` writes it all with the machine and versions.

Needs: paddlepaddle, onnxruntime, paddle2onnx==1.3.1 (pip install -e ".[bench]"), paddleocr==2.10.0
(``pip install --no-deps``) for the end-to-end row.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import cv2
import numpy as np
import torch

import ptocr
from converter.convert import convert
from converter.writer import write_converted
from ptocr.allocator import keep_freed_memory, malloc_in_use
from ptocr.export import ONEDNN_GRAPH_WARMUP, export
from ptocr.transforms import ClsPreprocess, RecPreprocess, load_image
from tools import bench_doc
from tools.make_pipeline_reference import bind_paddleocr_tools, official_pipeline
from tools.precision_agreement import markdown, rows
from verification.shared import default_shared, scene_files

REPO = Path(__file__).resolve().parents[1]

MODELS = {"det": "ch_PP-OCRv4_det_infer", "rec": "ch_PP-OCRv4_rec_infer", "cls": "ch_ppocr_mobile_v2.0_cls_infer"}
_MEAN, _STD = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)


def det_input(image: np.ndarray, side: int) -> np.ndarray:
    x = cv2.resize(image, (side, side)).astype(np.float32)[:, :, ::-1] / 255.0  # BGR->RGB as DetResizeForTest+Normalize
    return np.ascontiguousarray(((x - _MEAN) / _STD).transpose(2, 0, 1)[None])


def stages(shared: Path, only: list[str] | None = None) -> list[tuple[str, str, np.ndarray]]:
    """(label, task, input) per stage; ``only``: the stages whose label contains one of these."""
    scene = load_image(shared / "images" / "scenes" / "00056221.jpg")
    words = [load_image(p) for p in sorted((shared / "images" / "words" / "ch").iterdir())]
    words = (words * 6)[:6]
    rec, cls = RecPreprocess((3, 48, 320)), ClsPreprocess((3, 48, 192))
    every = [
        ("det 640x640", "det", det_input(scene, 640)),
        ("det 960x960", "det", det_input(scene, 960)),
        ("rec batch 1 (48x320)", "rec", np.stack([rec(words[0], 320 / 48)])),
        ("rec batch 6 (48x320)", "rec", np.stack([rec(w, 320 / 48) for w in words])),
        ("cls batch 6 (48x192)", "cls", cls.batch(words)),
    ]
    return [s for s in every if not only or any(o in s[0] for o in only)]


# A stage's calls go on past ``--repeat`` until they add up to this: ``--repeat`` calls of a
# fast stage alone last a fraction of a second, a sample one noisy spell of a shared machine
# can shift, while the slow stages take longer than this anyway.
MIN_STAGE_SECONDS = 1.0


# Calls before a stage is timed; more for a ptocr model that builds a graph or replay for a shape it
# has seen often (``run.warmup``): what a service reading that shape runs.
WARMUP = 3


def median_ms(fn, x, repeat: int, warmup: int | None = None, min_seconds: float = MIN_STAGE_SECONDS) -> float:
    for _ in range(getattr(fn, "warmup", WARMUP) if warmup is None else warmup):
        fn(x)
    times = []
    while len(times) < repeat or sum(times) < min_seconds:
        t0 = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def paddle_engine(folder: Path, threads: int, mkldnn: bool):
    import paddle.inference as pi

    config = pi.Config(str(folder / "inference.pdmodel"), str(folder / "inference.pdiparams"))
    config.disable_gpu()
    config.set_cpu_math_library_num_threads(threads)
    config.enable_mkldnn() if mkldnn else config.disable_mkldnn()
    config.switch_ir_optim(True)
    config.disable_glog_info()
    predictor = pi.create_predictor(config)
    inp = predictor.get_input_handle(predictor.get_input_names()[0])
    out = predictor.get_output_handle(predictor.get_output_names()[0])

    def run(x):
        inp.reshape(list(x.shape))
        inp.copy_from_cpu(x)
        predictor.run()
        return out.copy_to_cpu()
    return run


def onnx_engine(folder: Path, workdir: Path, threads: int):
    import onnxruntime as ort
    from paddle2onnx import export as paddle2onnx_export

    path = workdir / f"{folder.name}.onnx"
    paddle2onnx_export(str(folder / "inference.pdmodel"), str(folder / "inference.pdiparams"), str(path),
           opset_version=14, enable_onnx_checker=True)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return lambda x: sess.run(None, {name: x})[0]


def torch_engine(folder: Path, optimize: bool, dtype=torch.float32, compile: bool = False,
                 shape_graphs: bool | None = None):
    """ptocr.load as users get it: ``optimize=False`` is the converted model with its rep
    layers fused (the inference path before ptocr.optimize), True the default; ``compile``:
    ``ptocr.load(..., compile=True)``; ``shape_graphs``: ``ptocr.load(..., shape_graphs=...)``."""
    model = ptocr.load(folder, optimize=optimize, dtype=dtype, compile=compile, shape_graphs=shape_graphs).model

    def run(x):
        with torch.inference_mode():
            return model(torch.from_numpy(x).to(dtype)).float().numpy()
    graphs = getattr(model, "shape_graphs", None)
    if graphs is not None and dtype == torch.float32:  # timed once the stage's shape has its graph or replay
        run.warmup = max(WARMUP, graphs.build_after + 1)
    return run


TORCH_PLAIN, TORCH_OPT, TORCH_BF16 = "PyTorch plain", "PyTorch optimized", "PyTorch optimized bf16"
TORCH_COMPILED, TORCH_AOTI, TORCH_STATIC = "PyTorch compiled", "PyTorch AOTInductor", "PyTorch AOTInductor static"
TORCH_GRAPH, TORCH_SHAPE_GRAPHS = "PyTorch oneDNN Graph", "PyTorch shape graphs"
PADDLE_DNN, PADDLE_PLAIN, ORT = "Paddle Inference oneDNN", "Paddle Inference no oneDNN", "ONNX Runtime"
ENGINES = (TORCH_PLAIN, TORCH_OPT, TORCH_SHAPE_GRAPHS, TORCH_COMPILED, TORCH_AOTI, TORCH_STATIC, TORCH_GRAPH,
           PADDLE_DNN, PADDLE_PLAIN, ORT)
OURS = (TORCH_OPT, TORCH_SHAPE_GRAPHS, TORCH_COMPILED, TORCH_AOTI, TORCH_STATIC, TORCH_GRAPH)
OTHERS = (PADDLE_DNN, PADDLE_PLAIN, ORT)
E2E = ("ptocr plain", "ptocr optimized", "ptocr compiled", "PaddleOCR 2.10 (oneDNN)")
# The compiled worker also reports its first call (it compiles) per stage, the AOTInductor one
# the building of its package per model: listed below the stage table under these captions.
FIRST = "first call s: "
FAILED = "failed: "  # a worker's error per stage it could not run (the oneDNN Graph fuser refuses some)
_FIRST_CAPTIONS = {
    TORCH_COMPILED: "First call of the compiled model, which compiles it (s, fresh inductor cache)",
    TORCH_AOTI: "Building the AOTInductor package, ahead of time (s, export + compile, once per model)",
    TORCH_STATIC: "Building the static AOTInductor package (s, export + compile, once per stage's shape)",
    TORCH_GRAPH: "Static TorchScript export and the three calls that compile its oneDNN Graph partitions (s, per stage)",
}
WORKERS = (*ENGINES, TORCH_BF16, *E2E, "convert+load", "precision agreement", "bulk")


def aoti_engine(folder: Path, static_shape: tuple[int, ...] | None = None):
    """``ptocr export --format aoti`` of the optimized model (dynamic shapes; with
    ``static_shape``: ``--static --input-shape``, frozen weights), run by the AOTInductor runtime;
    returns (run, seconds spent building the package). The package is built once per bench run,
    beside the run's inductor cache, and reused by later rounds."""
    from torch._inductor import aoti_load_package  # only in the AOTInductor worker

    shape = "_static_" + "x".join(map(str, static_shape)) if static_shape else ""
    path = Path(os.environ["TORCHINDUCTOR_CACHE_DIR"]) / "ptocr_aoti" / f"{folder.name}{shape}.pt2"
    built = 0.0
    if not path.is_file():
        predictor = ptocr.load(folder)
        t0 = time.perf_counter()
        export(predictor.model, predictor.config, path, "aoti", dynamic=not static_shape, input_shape=static_shape)
        built = time.perf_counter() - t0
    package = aoti_load_package(str(path))

    def run(x):
        with torch.inference_mode():
            return package(torch.from_numpy(x)).numpy()
    return run, built


def onednn_graph_engine(folder: Path, x: np.ndarray, workdir: Path):
    """``ptocr export --format torchscript --static --input-shape`` of the optimized model (a
    frozen trace), run with ``torch.jit.enable_onednn_fusion(True)``: fused oneDNN partitions,
    compiled at the first calls; returns (run, seconds for the export and those calls)."""
    predictor = ptocr.load(folder)
    t0 = time.perf_counter()
    path = export(predictor.model, predictor.config, workdir / f"{folder.name}_{'x'.join(map(str, x.shape))}.pt",
                  "torchscript", dynamic=False, input_shape=x.shape)
    module = torch.jit.load(str(path))
    torch.jit.enable_onednn_fusion(True)  # this worker process runs nothing else

    def run(x):
        with torch.no_grad():
            return module(torch.from_numpy(x)).numpy()
    for _ in range(ONEDNN_GRAPH_WARMUP + 1):  # the last of these is the first fused call
        run(x)
    return run, time.perf_counter() - t0


def _engine(name: str, folder: Path, workdir: Path, threads: int):
    if name in (TORCH_PLAIN, TORCH_OPT, TORCH_SHAPE_GRAPHS, TORCH_BF16, TORCH_COMPILED):
        return torch_engine(folder, name != TORCH_PLAIN, torch.bfloat16 if name == TORCH_BF16 else torch.float32,
                            compile=name == TORCH_COMPILED, shape_graphs=True if name == TORCH_SHAPE_GRAPHS else None)
    if name == ORT:
        return onnx_engine(folder, workdir, threads)
    return paddle_engine(folder, threads, mkldnn=name == PADDLE_DNN)


def stage_worker(engine: str, shared: Path, threads: int, repeat: int, only: list[str] | None = None) -> dict[str, float]:
    """Median ms per stage for one engine (run in its own process)."""
    out = {}
    timed = stages(shared, only)
    models = {task: name for task, name in MODELS.items() if any(t == task for _, t, _ in timed)}
    with tempfile.TemporaryDirectory() as tmp:
        if engine == TORCH_AOTI:
            fns = {}
            for task, name in models.items():
                fns[task], out[FIRST + task] = aoti_engine(shared / "paddle_models" / name)
        elif engine == TORCH_STATIC:  # one package per stage: each is fixed to its input's shape
            for label, task, x in timed:
                fn, out[FIRST + label] = aoti_engine(shared / "paddle_models" / MODELS[task], x.shape)
                out[label] = median_ms(fn, x, repeat)
            return out
        elif engine == TORCH_GRAPH:  # one frozen trace per stage, as with the static packages
            for label, task, x in timed:
                try:
                    fn, out[FIRST + label] = onednn_graph_engine(shared / "paddle_models" / MODELS[task], x, Path(tmp))
                    out[label] = median_ms(fn, x, repeat)
                except RuntimeError as e:  # the fuser refuses some models: reported, not fatal
                    out[label] = out[FIRST + label] = float("nan")
                    out[FAILED + label] = f"{type(e).__name__}: {str(e).splitlines()[0][:80]}"
            return out
        else:
            fns = {task: _engine(engine, shared / "paddle_models" / name, Path(tmp), threads)
                   for task, name in models.items()}
        for label, task, x in timed:
            if engine == TORCH_COMPILED:
                t0 = time.perf_counter()
                fns[task](x)
                out[FIRST + label] = time.perf_counter() - t0
            out[label] = median_ms(fns[task], x, repeat)
    return out


# ---- end to end ------------------------------------------------------------------------------

def _import_paddleocr():
    """paddleocr 2.10 imports training-only packages at import time (skimage, albumentations,
    lmdb, docx, bs4) that the project installs without (``pip install --no-deps``). The OCR
    pipeline never calls them: stand-ins that fail if called let it import. From then on the
    name ``tools`` is PaddleOCR's package in this process (``bind_paddleocr_tools``)."""
    def stub(name):
        def missing(*_a, **_k):
            raise ImportError(f"{name} is not installed (a stand-in made by tools/bench.py)")

        def attr(key):
            if key.startswith("__"):
                raise AttributeError(key)
            return type(key, (), {"__init__": missing, "__call__": missing})
        m = types.ModuleType(name)
        m.__path__, m.__version__, m.__getattr__ = [], "1.4.0", attr
        return m

    stubbed: list[str] = []
    for _ in range(40):
        bind_paddleocr_tools()
        try:
            from paddleocr import PaddleOCR
            return PaddleOCR
        except ModuleNotFoundError as e:
            if not e.name or e.name in stubbed:
                raise
            stubbed.append(e.name)
            for k in [k for k in sys.modules if k.split(".")[0] in ("paddleocr", "ppocr", "tools", "ppstructure")]:
                del sys.modules[k]
            parts = e.name.split(".")
            for j in range(1, len(parts) + 1):
                sys.modules.setdefault(".".join(parts[:j]), stub(".".join(parts[:j])))
    raise ImportError(f"paddleocr still fails to import after stubbing {stubbed}")


def e2e_worker(kind: str, shared: Path, threads: int, repeat: int) -> dict[str, float]:
    """Seconds per pass over every scene (median of ``repeat`` passes after one warm-up pass)."""
    folders = {task: shared / "paddle_models" / name for task, name in MODELS.items()}
    images = scene_files(shared)
    if kind.startswith("ptocr"):
        ocr = ptocr.OCR(folders["det"], folders["rec"], folders["cls"], optimize=kind != "ptocr plain",
                        compile=kind == "ptocr compiled")
        read = ocr.read
    else:
        _import_paddleocr()
        paddle_ocr = official_pipeline(shared, enable_mkldnn=True, cpu_threads=threads)

        def read(img):
            return paddle_ocr.ocr(img, cls=True)
    images_np = [cv2.imread(str(p)) for p in images]  # decoding is not what is compared
    passes = []
    for k in range(repeat + 1):
        t0 = time.perf_counter()
        for img in images_np:
            read(img)
        passes.append(time.perf_counter() - t0)
    # The first pass warms up (oneDNN kernels per shape, allocator; compiling, for compiled models).
    return {"s_per_pass": statistics.median(passes[1:]), "first_pass": passes[0], "images": len(images)}


def convert_load_worker(shared: Path, repeat: int) -> dict[str, float]:
    """Seconds to convert each mobile model (Paddle folder -> .safetensors) and to ptocr.load it."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for task, name in MODELS.items():
            conv_t, load_t, load_plain_t = [], [], []
            for k in range(repeat):
                dst = Path(tmp) / f"{name}_{k}.safetensors"
                t0 = time.perf_counter()
                conv = convert(shared / "paddle_models" / name)
                write_converted(conv.state_dict, conv.config, conv.dictionary.text() if conv.dictionary else None, dst)
                conv_t.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                ptocr.load(dst)
                load_t.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                ptocr.load(dst, optimize=False)
                load_plain_t.append(time.perf_counter() - t0)
            out[name] = {"convert": statistics.median(conv_t), "load": statistics.median(load_t),
                         "load_first": load_t[0], "load_plain": statistics.median(load_plain_t)}
    return out


# ---- bulk ------------------------------------------------------------------------------------

# (label, read_many keywords) timed against the per-image loop; None: the loop itself.
# The loop at one intra-op thread shows how much of read_many's gain is its lanes' thread count.
BULK_MODES = (("per-image loop (read)", None), ("per-image loop, 1 intra-op thread", 1), ("read_many", {}),
              ("read_many lanes=1", {"lanes": 1}), ("read_many batch_size=8", {"batch_size": 8}),
              ("read_many merge=True", {"merge": True}))
# On CUDA there are no lanes and no intra-op threads to compare: the default (batches of 8,
# crops merged) against unmerged crops and larger windows.
BULK_MODES_CUDA = (("per-image loop (read)", None), ("read_many", {}), ("read_many merge=False", {"merge": False}),
                   ("read_many batch_size=32", {"batch_size": 32}))
# --bulk-pipeline: PaddleOCR 2.x's v4 mobile pipeline of MODELS (trained weights), or 3.x's v5
# server pipeline with seeded networks given real boxes (tools.bulk_stand_in).
BULK_PIPELINES = {"v4-mobile": "PaddleOCR 2.x pipeline, ch_PP-OCRv4 det + rec, ch_ppocr_mobile_v2.0 cls",
                  "v5-server": "PaddleOCR 3.x pipeline, PP-OCRv5 server det + rec (seeded weights, the trained "
                               "PP-OCRv5_mobile_det's boxes: tools/bulk_stand_in.py), PP-LCNet_x0_25_textline_ori"}


def bulk_modes(device: str) -> tuple:
    return BULK_MODES_CUDA if device.startswith("cuda") else BULK_MODES


def bulk_section(pipeline: str, device: str, dtype: str) -> str:
    """The doc section a bulk run writes: CPU float32 v4 mobile runs keep the name "bulk"; every
    other pipeline, device and dtype has its own, so one run does not replace another's table."""
    return "bulk" if (pipeline, device, dtype) == ("v4-mobile", "cpu", "float32") else f"bulk-{pipeline}-{dtype}"


def bulk_worker(shared: Path, repeat: int, device: str, dtype: str, batch_size: int | None,
                pipeline: str = "v4-mobile") -> dict[str, dict]:
    """Seconds per pass over every scene file (decoding included) per mode; the modes take turns
    pass by pass, so a slow spell of a shared machine hits every mode alike."""
    images = [str(p) for p in scene_files(shared)]
    if pipeline == "v5-server":
        from tools.bulk_stand_in import v5_server_pipeline

        with tempfile.TemporaryDirectory(prefix="ptocr_bench_seeded_") as seeded:  # loaded: no longer read
            ocr = v5_server_pipeline(shared, Path(seeded), images, device=device, dtype=dtype)
    else:
        ocr = ptocr.OCR(*[shared / "paddle_models" / MODELS[t] for t in ("det", "rec", "cls")], device=device, dtype=dtype)

    def run(kw):
        if isinstance(kw, dict):
            return ocr.read_many(images, **{"batch_size": batch_size, **kw})
        threads = torch.get_num_threads()
        torch.set_num_threads(kw or threads)
        try:
            return [ocr.read(p) for p in images]
        finally:
            torch.set_num_threads(threads)

    modes = bulk_modes(device)
    times: dict[str, list[float]] = {label: [] for label, _ in modes}
    for k in range(repeat + 1):
        for label, kw in modes:
            t0 = time.perf_counter()
            run(kw)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            if k:  # the first pass warms up
                times[label].append(time.perf_counter() - t0)
    return {label: {"s_per_pass": statistics.median(t), "images": len(images)} for label, t in times.items()}


# Issue #28's read_many targets on one GPU, float16 at the pipeline's own limits (scenes/s).
GPU_TARGETS = {"v4-mobile": 200, "v5-server": 60}


def bulk_table(bulk: dict[str, dict], device: str = "cpu", pipeline: str = "v4-mobile") -> str:
    loop = bulk[BULK_MODES[0][0]]["s_per_pass"]  # the per-image loop, first in both mode lists
    n = bulk[BULK_MODES[0][0]]["images"]
    cuda = device.startswith("cuda")
    rate = f"scenes/s (target >= {GPU_TARGETS[pipeline]} in float16)" if cuda else "scenes/s"
    gain = "speed-up over the loop" + ("" if cuda else " (target >= 1.3 on CPU)")
    lines = [f"| mode | s per pass ({n} scenes) | {rate} | {gain} |", "|---|---|---|---|"]
    for label, t in bulk.items():
        lines.append(f"| {label} | {t['s_per_pass']:.2f} | {n / t['s_per_pass']:.1f} | {loop / t['s_per_pass']:.2f} |")
    return "\n".join(lines)


def worker(kind: str, shared: Path, threads: int, repeat: int, only: list[str] | None = None, bulk_args=None):
    torch.set_num_threads(threads)
    # The process setting the ptocr command makes, given to every engine alike (ONNX Runtime and
    # Paddle keep their own memory arenas, so it does not change their times).
    keep_freed_memory()
    if kind in E2E:
        return e2e_worker(kind, shared, threads, max(1, repeat // 10))
    if kind == "convert+load":
        return convert_load_worker(shared, 5)
    if kind == "precision agreement":
        return rows(shared)
    if kind == "bulk":
        return bulk_worker(shared, max(1, repeat // 10), *bulk_args)
    return stage_worker(kind, shared, threads, repeat, only)


def _run_worker(kind: str, args, env, inductor_cache: str | None = None) -> object:
    """One worker process. Compiled models compile afresh (an empty inductor cache), as in a new
    deployment, unless ``inductor_cache`` names the cache of an earlier round."""
    # ``python -m tools.bench`` wherever the parent runs: the repository root on its path.
    pythonpath = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    with tempfile.TemporaryDirectory(prefix="ptocr_bench_inductor_") as fresh:
        done = subprocess.run([sys.executable, "-m", "tools.bench", "--worker", kind, "--shared", str(args.shared),
                               "--threads", str(args.threads), "--repeat", str(args.repeat),
                               *(["--stages", *args.stages] if args.stages else []),
                               "--device", args.device, "--dtype", args.dtype, "--bulk-pipeline", args.bulk_pipeline,
                               *(["--batch-size", str(args.batch_size)] if args.batch_size else [])],
                              capture_output=True, text=True, check=False,
                              env=dict(env, TORCHINDUCTOR_CACHE_DIR=inductor_cache or fresh, PYTHONPATH=pythonpath))
    if done.returncode != 0:
        raise RuntimeError(f"{kind} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _memory_note() -> str:
    """What the header says of malloc: the workers inherit the environment, LD_PRELOAD included."""
    malloc = malloc_in_use()
    if malloc == "glibc":
        return ("malloc: glibc, every worker keeping freed memory for reuse (`ptocr.keep_freed_memory()`, "
                "as the `ptocr` command does).")
    return f"malloc: {malloc} (`ptocr.keep_freed_memory()` leaves it as it is)."


def _versions() -> str:
    parts = []
    for pkg in ("torch", "paddlepaddle", "onnxruntime", "paddle2onnx", "paddleocr"):
        try:
            parts.append(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            parts.append(f"{pkg} (not installed)")
    return ", ".join(parts)


def progress(result: dict[str, float | str]) -> str:
    """One worker's result as a line: times, and the errors of the stages it failed."""
    return ", ".join(f"{k} {v}" if isinstance(v, str) else f"{k} {_cell(v, '.1f')}" for k, v in result.items())


def stage_rounds(args, env, engines) -> dict[str, dict[str, float]]:
    """Every engine once per round, in turn; per stage the median over rounds (the compiled
    model's first, compiling call: round 1's, with an empty inductor cache)."""
    rounds: list[dict[str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory(prefix="ptocr_bench_inductor_") as cache:
        for r in range(args.rounds):
            rounds.append({})
            for engine in engines:  # round 1 compiles into the empty cache, later rounds reuse it
                rounds[r][engine] = _run_worker(engine, args, env, inductor_cache=cache)
                print(f"round {r + 1} {engine}: {progress(rounds[r][engine])}", flush=True)
    return {e: {k: (rounds[0][e][k] if k.startswith((FIRST, FAILED)) else statistics.median(rd[e][k] for rd in rounds))
                for k in rounds[0][e]} for e in engines}


def _cell(value: float, fmt: str) -> str:
    return "fails" if value != value else format(value, fmt)  # NaN: the engine failed on that stage


def stage_table(times: dict[str, dict[str, float]]) -> str:
    engines = [e for e in (*ENGINES, TORCH_BF16) if e in times]
    ours = [e for e in OURS if e in times]
    lines = ["| stage | " + " | ".join(f"{e} ms" for e in engines)
             + " | optimized / plain | " + " | ".join(f"{e.removeprefix('PyTorch ')} / best other (target <= 1.0)" for e in ours) + " |",
             "|---|" + "---|" * (len(engines) + 1 + len(ours))]
    for label in times[TORCH_OPT]:
        best = min((o for o in OTHERS if o in times), key=lambda o: times[o][label])
        lines.append(f"| {label} | " + " | ".join(_cell(times[e][label], ".1f") for e in engines)
                     + (f" | {times[TORCH_OPT][label] / times[TORCH_PLAIN][label]:.2f} | " if TORCH_PLAIN in times else " | | ")
                     + " | ".join(_cell(times[e][label] / times[best][label], ".2f") + f" ({best})" for e in ours) + " |")
    for engine, caption in _FIRST_CAPTIONS.items():
        if engine in times:
            firsts = {k[len(FIRST):]: v for k, v in times[engine].items() if k.startswith(FIRST)}
            lines += ["", f"{caption}: " + ", ".join(f"{k} {_cell(v, '.1f')}" for k, v in firsts.items()) + "."]
    for e in engines:
        failures = {k[len(FAILED):]: v for k, v in times[e].items() if k.startswith(FAILED)}
        if failures:
            lines += ["", f"{e} fails on: " + "; ".join(f"{k} ({v})" for k, v in failures.items()) + "."]
    return "\n".join(lines)


def e2e_table(e2e: dict[str, dict]) -> str:
    ref = e2e[E2E[-1]]["s_per_pass"]
    n = e2e[E2E[-1]]["images"]
    lines = [f"| pipeline | s per pass ({n} scenes) | ms per image | / PaddleOCR 2.10 (target <= 0.8) "
             "| first pass (s, warm-up) |", "|---|---|---|---|---|"]
    for kind in E2E:
        t = e2e[kind]["s_per_pass"]
        lines.append(f"| {kind} | {t:.2f} | {1000 * t / n:.0f} | {t / ref:.2f} | {e2e[kind]['first_pass']:.1f} |")
    return "\n".join(lines)


def load_table(cl: dict[str, dict]) -> str:
    lines = ["| model | convert (s, target < 2) | ptocr.load optimized (s, target < 0.5) | first load in the process (s) "
             "| ptocr.load optimize=False (s) |", "|---|---|---|---|---|"]
    for name, t in cl.items():
        lines.append(f"| {name} | {t['convert']:.2f} | {t['load']:.3f} | {t['load_first']:.3f} | {t['load_plain']:.3f} |")
    return "\n".join(lines)


# The import name of each peer engine's package: (the end-to-end part needs it, the stage engines that do).
PEER_PACKAGES = {"paddle": (True, (PADDLE_DNN, PADDLE_PLAIN)), "onnxruntime": (False, (ORT,)),
                 "paddle2onnx": (False, (ORT,)), "paddleocr": (True, ())}


def missing_packages(args) -> list[str]:
    """The peer packages this run's parts and engines need that do not import here."""
    from importlib.util import find_spec

    def needed(e2e: bool, engines: tuple) -> bool:
        if e2e and "e2e" not in args.skip:
            return True
        return "stages" not in args.skip and any(args.engines is None or e in args.engines for e in engines)
    return [name for name, (e2e, engines) in PEER_PACKAGES.items() if needed(e2e, engines) and find_spec(name) is None]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__.splitlines()[0])
    p.add_argument("--shared", type=Path, default=default_shared())
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=20, help="timed runs per stage (end to end: repeat // 10 passes)")
    p.add_argument("--rounds", type=int, default=3, help="times every stage engine runs, in turn")
    p.add_argument("--bf16-latency", action="store_true", help="also time the bf16 model per stage")
    p.add_argument("--skip", nargs="*", default=[], choices=["stages", "e2e", "load", "precision", "bulk"],
                   help="parts to leave out")
    p.add_argument("--device", default="cpu", help="bulk section: the device the pipeline runs on (cpu, cuda)")
    p.add_argument("--dtype", default="float32", help="bulk section: the pipeline's dtype")
    p.add_argument("--batch-size", type=int, default=None,
                   help="bulk section: read_many's batch_size (default: its own, 8 on CUDA, 1 on the CPU)")
    p.add_argument("--bulk-pipeline", choices=BULK_PIPELINES, default="v4-mobile",
                   help="bulk section: the pipeline timed: " + "; ".join(f"{k}: {v}" for k, v in BULK_PIPELINES.items()))
    p.add_argument("--stages", nargs="*", default=None, metavar="TEXT",
                   help="time only the stages whose label contains one of these (e.g. cls, 'rec batch 6')")
    p.add_argument("--engines", nargs="*", default=None, choices=ENGINES, metavar="ENGINE",
                   help="stages section: time only these engines (PyTorch optimized and one other at least); "
                        f"default all: {', '.join(ENGINES)}")
    p.add_argument("--out", type=Path, default=None, help="write doc/benchmarks.md-style markdown here")
    p.add_argument("--worker", choices=WORKERS, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.engines is not None and (TORCH_OPT not in args.engines or not set(args.engines) & set(OTHERS)):
        p.error(f"--engines needs {TORCH_OPT!r} and one of {', '.join(OTHERS)} (the ratios compare them)")
    if args.worker:
        print(json.dumps(worker(args.worker, args.shared, args.threads, args.repeat, args.stages,
                                (args.device, args.dtype, args.batch_size, args.bulk_pipeline))))
        return 0

    missing = missing_packages(args)
    if missing:  # before any round: a worker would fail on it only after the engines before it ran
        p.error(f"the engines need {', '.join(missing)}: pip install -e \".[bench]\" (and paddleocr==2.10.0 "
                "--no-deps for the end-to-end part)")

    # Every engine gets the same thread count, through its own API and through OpenMP/MKL.
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads), GLOG_minloglevel="2")
    sections = []
    started = time.perf_counter()
    if "stages" not in args.skip:
        engines = [e for e in ENGINES if args.engines is None or e in args.engines]
        times = stage_rounds(args, env, (*engines, *((TORCH_BF16,) if args.bf16_latency else ())))
        sections.append(("stages", "Stages (median ms per call)", stage_table(times)))
        print(sections[-1][2], flush=True)
    if "e2e" not in args.skip:
        e2e = {}
        for kind in E2E:
            e2e[kind] = _run_worker(kind, args, env)
            print(f"{kind}: {e2e[kind]['s_per_pass']:.2f} s per pass", flush=True)
        sections.append(("e2e", "End to end: det + cls + rec on every scene of ../shared/images/scenes", e2e_table(e2e)))
        print(sections[-1][2], flush=True)
    if "load" not in args.skip:
        sections.append(("load", "Conversion and loading (median of 5, mobile models)", load_table(_run_worker("convert+load", args, env))))
        print(sections[-1][2], flush=True)
    if "precision" not in args.skip:
        sections.append(("precision", "bfloat16 and float16 on CPU: agreement with float32 on the real images",
                         markdown(_run_worker("precision agreement", args, env))))
        print(sections[-1][2], flush=True)

    if "bulk" not in args.skip:
        sections.append((bulk_section(args.bulk_pipeline, args.device, args.dtype),
                         f"Bulk: read_many against the per-image loop ({BULK_PIPELINES[args.bulk_pipeline]}; "
                         f"{args.device}, {args.dtype}, batch_size {args.batch_size or 'default'}, files decoded in the timing)",
                         bulk_table(_run_worker("bulk", args, env), args.device, args.bulk_pipeline)))
        print(sections[-1][2], flush=True)

    cpu = bench_doc.cpu_info()
    header = (f"Machine: {cpu.describe()}. Threads: {args.threads} for every engine. "
              f"{_memory_note()} "
              f"Versions: {_versions()}. "
              f"Stages: median of at least {args.repeat} calls and {MIN_STAGE_SECONDS:g} s of calls after {WARMUP} warm-ups (ptocr's models: after the calls that build the stage's graph or replay), each engine in its own process, the engines "
              f"in turn for {args.rounds} rounds, the median over rounds. "
              f"Total bench time {time.perf_counter() - started:.0f} s.")
    print(header)
    if args.out:
        # Each section replaces only its own block of this CPU family's part of the file.
        command = " ".join(["python -m tools.bench", *(sys.argv[1:] if argv is None else argv)])
        gpu = bench_doc.gpu_info(args.device, cpu) if args.device.startswith("cuda") else None
        for key, title, table in sections:
            # A bulk run on a GPU goes to that GPU's part: it is the GPU's figure, not the CPU's.
            machine, text = (gpu, header.replace(cpu.describe(), gpu.describe())) if gpu and key.startswith("bulk") else (cpu, header)
            bench_doc.write_section(args.out, machine, key, f"### {title}\n\nGenerated by `{command}`. {text}\n\n{table}", NOTES)
    return 0


NOTES = """\
*PyTorch plain*: the converted model with its rep layers fused (`ptocr.load(..., optimize=False)`).
*PyTorch optimized*: `ptocr.load(...)` by default, i.e. `ptocr.optimize.for_inference`: batch norms and
the rep layers' scalar affines folded into their convs (computed in float64), activations in place on
conv outputs nothing else reads, squeeze-excitation convs as matrix products on the pooled vector,
channels-last weights (oneDNN then skips its NCHW layout reorders around every conv, and the
recognizer's head reads a contiguous sequence), every conv a oneDNN call (`ptocr.models.conv_activation`, eager float32 on the CPU) with the ReLU /
Hardswish / SiLU that alone reads its output as a post-op where the output is large, and with its
weight packed for oneDNN once where the map is small (rec batch 1 0.94x, cls 0.96-0.98x, det and
rec batch 6 unchanged, side by side), except the 1x1 convs of under 8 M multiply-adds, which are
one matrix product each (oneDNN's set-up, 35-40 us a call, outweighs their arithmetic: a 48x32
word 0.94x, side by side on an AMD EPYC), the recognizers' dictionary heads with their weight
packed for oneDNN once (`ptocr.models.packed_linear`), and for the direction classifiers frozen traces of the input
shapes they see often, run by oneDNN Graph (`ptocr.models.shape_graphs`: built at a shape's 8th
call, about half a second; cls batch 6 about 2 ms against 5 eager), and for the detectors and
recognizers replays of their eager ops for the shapes they see often (`ptocr.models.op_replay`:
recorded at a shape's 32nd call, 0.2-0.45 s, then run by TorchScript; equal to eager bit for bit;
in the tables from the runs of 2026-12-07 on, not in earlier ones). A stage is timed once its shape
has its graph or replay; the end-to-end and bulk passes include the recording of the replays of the
shapes they reach 32 times.
*PyTorch shape graphs*: the same with `ptocr.load(..., shape_graphs=True)`, which gives detectors and
recognizers their graphs too (at most 2 and 4 shapes; not the default, as a shape's results change by
float32 rounding when its graph takes over). Same function; float32 outputs differ by rounding only.
*PyTorch compiled*: `ptocr.load(..., compile=True)`: the optimized model through `torch.compile`
(inductor, weights as constants, dynamic shapes); timed after its first call, which compiles (listed below the
table). *PyTorch AOTInductor*: `ptocr export NAME --format aoti` of the optimized model (dynamic
shapes), compiled ahead of time into a shared library and run by `torch._inductor.aoti_load_package`:
no per-op Python overhead. *PyTorch AOTInductor static*: the same, exported per stage with
`--static --input-shape` at that stage's input shape, as a deployment whose input shape is fixed
(e.g. the classifier at the pipeline's batch of 6) exports it: the weights frozen into the graph,
which lets inductor pack them for oneDNN once and fuse each conv with the activation or residual
add after it; such a package takes that one shape only, while the other engines' models take any.
*PyTorch oneDNN Graph*: `ptocr export NAME --format torchscript --static --input-shape` per stage (a
frozen trace) run with `torch.jit.enable_onednn_fusion(True)`: PyTorch hands the graph to oneDNN
Graph, which runs it as fused oneDNN partitions compiled at the first calls, without PyTorch's
per-op oneDNN setup (where the fuser refuses a model, its cells say *fails*).
*PyTorch optimized bf16* (`--bf16-latency`): the optimized model loaded
with `dtype="bfloat16"`; not the same function (its agreement with float32 is the last section), so
not in the ratios. Paddle Inference runs the same Paddle folders with IR optimizations on; ONNX models are
exported from them with paddle2onnx (opset 14). End to end: `ptocr.OCR` against PaddleOCR 2.10's
`PaddleOCR(..., enable_mkldnn=True, cpu_threads=threads)` with the same three model folders, both on
decoded images (reading files is not timed), PP-OCRv4 settings, direction classifier on."""


if __name__ == "__main__":
    sys.exit(main())
