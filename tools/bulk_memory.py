"""Resident memory of a long CPU bulk run, per oneDNN primitive cache capacity.

    python -m tools.bulk_memory [--shared ../shared] [--rounds 30] [--capacities default 128 16] [--same-page]

Each round reads every scene of ``images/scenes`` at a random scale (0.6-1.4, seeded) with
``OCR.read_many`` (the v4 mobile pipeline of tools/bench.py, 2 threads, ``keep_freed_memory`` as
the ``ptocr`` command sets it), so detector sizes and recognizer widths keep changing as in a
real stream of pages; with ``--same-page`` each round reads the first scene as many times
instead, as a stream of same-size pages does (the same shapes every call). oneDNN keeps the
primitives it made for the last ``ONEDNN_PRIMITIVE_CACHE_CAPACITY`` shapes of an op (1024 by
default) and reads that variable once, at its first primitive, so each capacity runs in a
process of its own. Prints one row per capacity: the resident set after each fifth of the run,
and the run's seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from verification.shared import default_shared, scene_files


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run(shared: Path, rounds: int, threads: int, same_page: bool) -> dict:
    import cv2
    import numpy as np
    import torch

    import ptocr
    from tools.bench import MODELS

    torch.set_num_threads(threads)
    ptocr.keep_freed_memory()
    ocr = ptocr.OCR(*[shared / "paddle_models" / MODELS[t] for t in ("det", "rec", "cls")])
    scenes = [cv2.imread(str(p)) for p in scene_files(shared)]
    rng = np.random.default_rng(0)
    rss, started = [], time.perf_counter()
    for r in range(rounds):
        pages = [scenes[0]] * len(scenes) if same_page else \
            [cv2.resize(im, None, fx=s, fy=s) for im in scenes for s in [rng.uniform(0.6, 1.4)]]
        ocr.read_many(pages)
        rss.append(_rss_mb())
    return {"images": len(scenes) * rounds, "rss_mb": rss, "seconds": time.perf_counter() - started}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.bulk_memory", description=__doc__.splitlines()[0])
    p.add_argument("--shared", type=Path, default=default_shared())
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--capacities", nargs="*", default=["default", "128", "16"],
                   help="ONEDNN_PRIMITIVE_CACHE_CAPACITY values ('default': unset, oneDNN's 1024)")
    p.add_argument("--same-page", action="store_true", help="the first scene over and over, at its own size")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(run(args.shared, args.rounds, args.threads, args.same_page)))
        return 0
    repo = Path(__file__).resolve().parents[1]
    fifths = sorted({max(0, args.rounds * k // 5 - 1) for k in range(1, 6)})
    print("| primitive cache | " + " | ".join(f"RSS MB after {(k + 1)} rounds" for k in fifths) + " | seconds |")
    print("|---|" + "---|" * (len(fifths) + 1))
    for capacity in args.capacities:
        env = {k: v for k, v in os.environ.items() if k not in ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "DNNL_PRIMITIVE_CACHE_CAPACITY")}
        if capacity != "default":
            env["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = capacity
        env["PYTHONPATH"] = os.pathsep.join(x for x in (str(repo), env.get("PYTHONPATH")) if x)
        done = subprocess.run([sys.executable, "-m", "tools.bulk_memory", "--worker", "--shared", str(args.shared),
                               "--rounds", str(args.rounds), "--threads", str(args.threads),
                               *(["--same-page"] if args.same_page else [])],
                              capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            raise SystemExit(f"capacity {capacity} failed:\n{done.stderr[-3000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"| {capacity} | " + " | ".join(f"{result['rss_mb'][k]:.0f}" for k in fifths)
              + f" | {result['seconds']:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
