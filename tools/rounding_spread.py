"""How far float32 runs of a model land from its exact output, kernel mix by kernel mix.

    python -m tools.rounding_spread ru_mobile_v2.0_rec [--shared ../shared]

For a manifest model whose Paddle folder ../shared holds: the Paddle program run in float64 is
the exact output (as in tests/test_parity.py); each PyTorch float32 run is compared with it, as
converted and as optimized, with oneDNN's and PyTorch's native convolutions, NCHW and
channels-last, at each thread count: equally valid kernels that sum in different orders. Paddle
Inference's own float32 runtimes (at the last thread count) are shown beside them. Where the
manifest entry names ``float64_modules``, the same runs without them show what they take away,
and a latency table what they cost (median of 30 calls, both forms timed in turns, in this
process). Needs paddlepaddle (pip install -e ".[parity]").
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from converter.convert import convert
from ptocr.checkpoint import model_from_state
from ptocr.optimize import example_input, for_inference, inference_settings
from verification.parity import TOLERANCE, max_abs, paddle_outputs, paddle_runtimes, task_inputs, torch_outputs
from verification.shared import default_shared
from verification.suite import images_of, prepare, suite


def _all_float32(conv) -> torch.nn.Module:
    """The converted model built without its float64 modules."""
    cfg = {k: v for k, v in conv.config["model"].items() if k != "float64_modules"}
    return model_from_state(cfg, conv.state_dict)


def _runs(model, config, optimized) -> dict[str, tuple[torch.nn.Module, bool]]:
    """Kernel mixes: name -> (module, oneDNN on). ``optimized``: ``model`` as ptocr.load runs it."""
    settings = inference_settings(config)
    other = for_inference(model, example_input(config), **{**settings, "channels_last": not settings["channels_last"]})
    layout = "channels-last" if settings["channels_last"] else "NCHW"
    other_layout = "NCHW" if settings["channels_last"] else "channels-last"
    return {"converted, oneDNN": (model, True), "converted, native convs": (model, False),
            f"optimized ({layout}), oneDNN": (optimized, True),
            f"optimized ({other_layout}), oneDNN": (other, True),
            f"optimized ({other_layout}), native convs": (other, False)}


def _distance(model, onednn: bool, inputs, ref64) -> float:
    with torch.backends.mkldnn.flags(enabled=onednn):
        return max(max_abs(g, r) for g, r in zip(torch_outputs(model, inputs), ref64))


def _latency(models: dict, x: torch.Tensor, calls: int = 30) -> dict[str, float]:
    times = {name: [] for name in models}
    with torch.inference_mode():
        for m in models.values():
            m(x)
        for _ in range(calls):
            for name, m in models.items():
                t = time.perf_counter()
                m(x)
                times[name].append(time.perf_counter() - t)
    return {name: statistics.median(t) * 1e3 for name, t in times.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.rounding_spread", description=__doc__.splitlines()[0])
    p.add_argument("model", help="a manifest model of the parity suite")
    p.add_argument("--shared", type=Path, default=default_shared())
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                   help="thread counts to run at: oneDNN blocks its kernels by them, so each sums in its "
                        "own order (latency at the last)")
    args = p.parse_args(argv)
    entry = next((e for e in suite() if e.model == args.model), None)
    if entry is None:
        p.error(f"{args.model} is not in the parity suite: {', '.join(e.model for e in suite())}")
    with tempfile.TemporaryDirectory() as work:
        folder = prepare(entry, args.shared, Path(work))
        conv = convert(folder, None)
        named = task_inputs(conv.config, images_of(args.shared, entry))
        inputs = [x for _, x in named]
        refs = paddle_outputs(folder, inputs, ["float64", *paddle_runtimes(folder)], threads=args.threads[-1])
    ref64 = refs.pop("float64")
    marked = conv.config["model"].get("float64_modules") or []
    forms = {"as the zoo runs it": conv.model} | ({"all float32": _all_float32(conv)} if marked else {})
    settings = inference_settings(conv.config)
    optimized = {n: for_inference(m, example_input(conv.config), **settings) for n, m in forms.items()}

    print(f"{entry.model}: max |output - exact output| over {len(inputs)} inputs ({', '.join(n for n, _ in named)}); "
          f"tolerance {TOLERANCE:.0e}; float64 modules: {', '.join(marked) or 'none'}\n")
    print("| run | " + " | ".join(forms) + " |")
    print("|---|" + "---|" * len(forms))
    runs = {form: _runs(model, conv.config, optimized[form]) for form, model in forms.items()}
    for threads in args.threads:
        torch.set_num_threads(threads)
        for name in runs["as the zoo runs it"]:
            cells = [f"{_distance(*runs[form][name], inputs, ref64):.2e}" for form in forms]
            print(f"| {name}, {threads} thread{'s' if threads > 1 else ''} | " + " | ".join(cells) + " |")
    for runtime, outs in refs.items():
        own = max(max_abs(o, r) for o, r in zip(outs, ref64))
        print(f"| Paddle Inference: {runtime} | {own:.2e}" + " | " * (len(forms) - 1) + " |")

    if marked:
        print(f"\nLatency of the optimized model, ms (median of 30, {args.threads[-1]} threads):\n")
        print("| batch | " + " | ".join(forms) + " | ratio |")
        print("|---|" + "---|" * (len(forms) + 1))
        for batch in (1, 6):
            x = example_input(conv.config).expand(batch, -1, -1, -1).contiguous()
            if settings["channels_last"]:
                x = x.contiguous(memory_format=torch.channels_last)
            ms = _latency(optimized, x)
            a, b = ms.values()
            print(f"| {batch} | {a:.2f} | {b:.2f} | {a / b:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
