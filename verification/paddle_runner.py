"""Run a Paddle inference model with Paddle Inference, in its own process.

Used only by the parity checks (paddlepaddle is an optional extra). Kept out of the
converter's and ptocr's processes so Paddle's runtime never shares one with torch's.

    python -m verification.paddle_runner MODEL_DIR INPUTS.npz OUTPUTS.npz [--threads N] --run RUN [--run RUN ...]

INPUTS.npz holds x0, x1, ... (float32 NCHW, run one by one); OUTPUTS.npz gets, for the j-th
``--run``, r{j}_y0, r{j}_y1, ... (the program's first output for each input). A run is one of
RUNS: Paddle Inference fp32 with or without its graph passes or oneDNN, or ``float64``. All
runs share one process (one Paddle import and model read instead of one per run); each gets
its own predictor, and their outputs are bit-identical to runs in separate processes.

``float64`` runs the same program with Paddle's static executor after promoting every
float32 variable and weight to float64: the program's exact result, free of float32
rounding, which separates conversion errors from Paddle's (and our) float32 error.
A Paddle 3 (PIR) program is promoted in its JSON text instead (every ``t_f32`` type and
``float32`` dtype attribute becomes float64, the weights are rewritten as float64 beside
it in a temporary folder) and run by Paddle Inference without graph passes.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

import numpy as np


# Paddle Inference's fp32 CPU runtimes: make_predictor's settings.
RUNS = {"graph passes": dict(mkldnn=False, ir_optim=True), "program as saved": dict(mkldnn=False, ir_optim=False),
        "oneDNN": dict(mkldnn=True, ir_optim=True), "float64": None}


def make_predictor(model_dir: Path, threads: int, mkldnn: bool, ir_optim: bool):
    import paddle.inference as pi  # only here: paddle is optional

    if (model_dir / "inference.pdmodel").is_file():
        config = pi.Config(str(model_dir / "inference.pdmodel"), str(model_dir / "inference.pdiparams"))
    elif (model_dir / "inference.json").is_file():
        config = pi.Config(str(model_dir / "inference.json"), str(model_dir / "inference.pdiparams"))
        mkldnn = False  # PIR programs run under Paddle Inference only without oneDNN here
    else:
        raise SystemExit(f"{model_dir}: no inference.pdmodel or inference.json")
    config.disable_gpu()
    config.set_cpu_math_library_num_threads(threads)
    config.switch_ir_optim(ir_optim)
    if mkldnn:
        config.enable_mkldnn()
    else:
        config.disable_mkldnn()
    config.disable_glog_info()
    return pi.create_predictor(config)


class Float64Program:
    """The Paddle 2 program run in float64 by the static executor (same interface as run())."""

    def __init__(self, model_dir: Path):
        import paddle  # with FLAGS_enable_pir_api=0 (main): a Paddle 2 ProgramDesc, not PIR
        from paddle.base import core

        if not (model_dir / "inference.pdmodel").is_file():
            raise SystemExit(f"{model_dir}: the float64 run needs a Paddle 2 inference.pdmodel")
        paddle.enable_static()
        place = paddle.CPUPlace()
        self.exe = paddle.static.Executor(place)
        self.scope = paddle.static.Scope()
        f32, f64 = core.VarDesc.VarType.FP32, core.VarDesc.VarType.FP64
        with paddle.static.scope_guard(self.scope):
            prog, feeds, fetches = paddle.static.load_inference_model(str(model_dir / "inference"), self.exe)
        block = prog.global_block()
        for var in block.vars.values():
            if var.type == core.VarDesc.VarType.LOD_TENSOR and var.dtype == f32:
                var.desc.set_dtype(f64)
        for op in block.ops:
            for attr in ("dtype", "out_dtype", "in_dtype"):
                if op.has_attr(attr) and op.attr(attr) == int(f32):
                    op._set_attr(attr, int(f64))
        for var in block.vars.values():
            if var.persistable and var.name not in ("feed", "fetch"):
                tensor = self.scope.find_var(var.name).get_tensor()
                value = np.array(tensor)
                if value.dtype == np.float32:
                    tensor.set(value.astype(np.float64), place)
        self.program, self.feed, self.fetch = prog, feeds[0], fetches

    def __call__(self, x: np.ndarray) -> np.ndarray:
        import paddle

        with paddle.static.scope_guard(self.scope):
            out = self.exe.run(self.program, feed={self.feed: x.astype(np.float64)}, fetch_list=self.fetch)
        return np.asarray(out[0])


class Float64PirProgram:
    """A PIR program (inference.json) promoted to float64 in a temporary copy."""

    def __init__(self, model_dir: Path, threads: int):
        # Imported here, not at the top: the converter imports ptocr and with it torch, which
        # a Paddle process otherwise never loads; only this run needs the converter's reader.
        from converter.readers import read_source
        from verification.pdiparams import write_pdiparams

        source = read_source(model_dir)
        self._tmp = tempfile.TemporaryDirectory()
        tmp = Path(self._tmp.name)
        text = (Path(source.program.path)).read_text(encoding="utf-8")
        text = text.replace('"0.t_f32"', '"0.t_f64"')
        text = re.sub(r'("#":\s*"1\.a_dtype",\s*"D":\s*)"float32"', r'\1"float64"', text)
        (tmp / "inference.json").write_text(text, encoding="utf-8")
        write_pdiparams(tmp / "inference.pdiparams", {
            k: (v.astype(np.float64) if v.dtype == np.float32 else v) for k, v in source.tensors.items()
        })
        import paddle.inference as pi

        config = pi.Config(str(tmp / "inference.json"), str(tmp / "inference.pdiparams"))
        config.disable_gpu()
        config.set_cpu_math_library_num_threads(threads)
        config.switch_ir_optim(False)
        config.disable_mkldnn()
        config.disable_glog_info()
        self.predictor = pi.create_predictor(config)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        p = self.predictor
        handle = p.get_input_handle(p.get_input_names()[0])
        handle.reshape(list(x.shape))
        handle.copy_from_cpu(np.ascontiguousarray(x, dtype=np.float64))
        p.run()
        return p.get_output_handle(p.get_output_names()[0]).copy_to_cpu()


def run(predictor, x: np.ndarray) -> np.ndarray:
    handle = predictor.get_input_handle(predictor.get_input_names()[0])
    handle.reshape(list(x.shape))
    handle.copy_from_cpu(np.ascontiguousarray(x, dtype=np.float32))
    predictor.run()
    return predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()


def make_forward(model_dir: Path, run_name: str, threads: int):
    """The callable (float32 NCHW array -> first output) for one of RUNS."""
    is_pir = (model_dir / "inference.json").is_file() and not (model_dir / "inference.pdmodel").is_file()
    if run_name == "float64":
        return Float64PirProgram(model_dir, threads) if is_pir else Float64Program(model_dir)
    predictor = make_predictor(model_dir, threads, **RUNS[run_name])
    return lambda x: run(predictor, x)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model_dir", type=Path)
    p.add_argument("inputs", type=Path)
    p.add_argument("outputs", type=Path)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--run", dest="runs", action="append", choices=list(RUNS), required=True,
                   help="a runtime to run every input with (repeat for several, in this order)")
    args = p.parse_args(argv)
    if "float64" in args.runs and (args.model_dir / "inference.pdmodel").is_file():
        # Before Paddle is imported: the float64 path edits a Paddle 2 ProgramDesc, not PIR.
        os.environ["FLAGS_enable_pir_api"] = "0"
    with np.load(args.inputs) as data:
        inputs = [data[f"x{i}"] for i in range(len(data.files))]
    outputs = {}
    for j, run_name in enumerate(args.runs):
        forward = make_forward(args.model_dir, run_name, args.threads)
        outputs.update({f"r{j}_y{i}": forward(x) for i, x in enumerate(inputs)})
    np.savez(args.outputs, **outputs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
