"""CPU latency of the converted PyTorch models against Paddle Inference and ONNX Runtime.

    python tools/bench.py [--threads 2] [--repeat 20] [--out doc/benchmarks.md]

One run, a fixed thread count for every engine. Each engine is timed in a child process
of its own, one after the other: Paddle's OpenMP runtime and torch's in one process
oversubscribe the cores (measured: PyTorch det 640x640 10x slower beside a loaded Paddle). Each stage gets the same
real input (a scene or word crops from ../shared/images, pre-processed), is warmed up,
then timed ``--repeat`` times; the table gives medians and the ratio PyTorch / the best
other engine (< 1: PyTorch is faster). ONNX models are exported from the same Paddle
folders with PyPI's paddle2onnx (1.3.1 reads Paddle 2 programs; 2.x only PIR ones).

Needs: paddlepaddle, onnxruntime, paddle2onnx==1.3.1 (pip install -e ".[bench]").
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from converter.convert import convert  # noqa: E402
from converter.parity_suite import default_shared  # noqa: E402
from ptocr.transforms import ClsPreprocess, RecPreprocess, load_image  # noqa: E402

MODELS = {"det": "ch_PP-OCRv4_det_infer", "rec": "ch_PP-OCRv4_rec_infer", "cls": "ch_ppocr_mobile_v2.0_cls_infer"}
_MEAN, _STD = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)


def det_input(image: np.ndarray, side: int) -> np.ndarray:
    x = cv2.resize(image, (side, side)).astype(np.float32)[:, :, ::-1] / 255.0  # BGR->RGB as DetResizeForTest+Normalize
    return np.ascontiguousarray(((x - _MEAN) / _STD).transpose(2, 0, 1)[None])


def stages(shared: Path) -> list[tuple[str, str, np.ndarray]]:
    scene = load_image(shared / "images" / "scenes" / "00056221.jpg")
    words = [load_image(p) for p in sorted((shared / "images" / "words" / "ch").iterdir())]
    words = (words * 6)[:6]
    rec, cls = RecPreprocess((3, 48, 320)), ClsPreprocess((3, 48, 192))
    return [
        ("det 640x640", "det", det_input(scene, 640)),
        ("det 960x960", "det", det_input(scene, 960)),
        ("rec batch 1 (48x320)", "rec", np.stack([rec(words[0], 320 / 48)])),
        ("rec batch 6 (48x320)", "rec", np.stack([rec(w, 320 / 48) for w in words])),
        ("cls batch 6 (48x192)", "cls", cls.batch(words)),
    ]


def median_ms(fn, x, repeat: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn(x)
    times = []
    for _ in range(repeat):
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
    from paddle2onnx import export

    path = workdir / f"{folder.name}.onnx"
    export(str(folder / "inference.pdmodel"), str(folder / "inference.pdiparams"), str(path),
           opset_version=14, enable_onnx_checker=True)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return lambda x: sess.run(None, {name: x})[0]


def torch_engine(folder: Path):
    from ptocr.models.backbones.pplcnetv3 import fuse_rep_layers

    model = convert(folder).model.eval()
    fuse_rep_layers(model)

    def run(x):
        with torch.inference_mode():
            return model(torch.from_numpy(x)).numpy()
    return run


ENGINES = ("PyTorch (ptocr)", "Paddle Inference oneDNN", "Paddle Inference no oneDNN", "ONNX Runtime")


def _engine(name: str, folder: Path, workdir: Path, threads: int):
    if name == "PyTorch (ptocr)":
        return torch_engine(folder)
    if name == "ONNX Runtime":
        return onnx_engine(folder, workdir, threads)
    return paddle_engine(folder, threads, mkldnn=name == "Paddle Inference oneDNN")


def worker(engine: str, shared: Path, threads: int, repeat: int) -> dict[str, float]:
    """Median ms per stage for one engine (run in its own process)."""
    torch.set_num_threads(threads)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        fns = {task: _engine(engine, shared / "paddle_models" / name, Path(tmp), threads) for task, name in MODELS.items()}
        for label, task, x in stages(shared):
            out[label] = median_ms(fns[task], x, repeat)
    return out


def main(argv=None) -> int:
    import json
    import subprocess

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shared", type=Path, default=default_shared())
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--out", type=Path, default=None, help="write the table as markdown here")
    p.add_argument("--worker", choices=ENGINES, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.shared, args.threads, args.repeat)))
        return 0

    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), GLOG_minloglevel="2")
    times: dict[str, dict[str, float]] = {}
    for engine in ENGINES:
        done = subprocess.run([sys.executable, __file__, "--worker", engine, "--shared", str(args.shared),
                               "--threads", str(args.threads), "--repeat", str(args.repeat)],
                              capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            print(f"{engine} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
            return 1
        times[engine] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{engine}: " + ", ".join(f"{k} {v:.1f} ms" for k, v in times[engine].items()), flush=True)

    ours_name, others = ENGINES[0], ENGINES[1:]
    lines = [f"| stage | {ours_name} ms | " + " | ".join(f"{o} ms" for o in others) + " | ratio (PyTorch / best other) |",
             "|---|---|" + "---|" * len(others) + "---|"]
    for label in times[ours_name]:
        ours = times[ours_name][label]
        best = min(others, key=lambda o: times[o][label])
        lines.append(f"| {label} | {ours:.1f} | " + " | ".join(f"{times[o][label]:.1f}" for o in others)
                     + f" | {ours / times[best][label]:.2f} ({best}) |")
    table = "\n".join(lines)
    import onnxruntime
    import paddle

    header = (f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {args.threads} threads; "
              f"torch {torch.__version__}, paddlepaddle {paddle.__version__}, onnxruntime {onnxruntime.__version__}; "
              f"median of {args.repeat} runs after 3 warm-ups, each engine in its own process.")
    print(header)
    print(table)
    if args.out:
        args.out.write_text(f"# CPU latency\n\nGenerated by `python tools/bench.py --out {args.out}`.\n\n{header}\n\n{table}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
