"""What float32 islands (ptocr.precision.FLOAT32_MODULES) change in a 16-bit detector: boxes
identical to float32's on every scene of ../shared/images/scenes, per island choice and dtype.

    python -m tools.float32_islands [--device cpu] [--threads 2] [--islands '' head backbone]

Figures in doc/bulk.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

import ptocr
import ptocr.precision as precision
from ptocr.transforms import load_image
from verification.shared import default_shared


def identical_boxes(folder, images, device: str, dtype: str | None) -> list[set[bytes]]:
    det = ptocr.load(folder, device=device, dtype=dtype)
    return [{box.tobytes() for box in det(img).boxes} for img in images]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.float32_islands", description=__doc__.splitlines()[0])
    p.add_argument("--shared", type=Path, default=default_shared())
    p.add_argument("--model", default="ch_PP-OCRv4_det_infer")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--islands", nargs="*", default=["", "head", "backbone"],
                   help="island choices, each a comma-separated list of module paths ('' for none)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    folder = args.shared / "paddle_models" / args.model
    images = [load_image(path) for path in sorted((args.shared / "images" / "scenes").glob("*.jpg"))]
    ref = identical_boxes(folder, images, args.device, None)
    total = sum(map(len, ref))
    print(f"| float32 islands | dtype | boxes identical to float32's ({args.model}, {len(images)} scenes, {args.device}) |")
    print("|---|---|---|")
    for choice in args.islands:
        precision.FLOAT32_MODULES = tuple(m for m in choice.split(",") if m)
        for dtype in ("bfloat16", "float16"):
            got = identical_boxes(folder, images, args.device, dtype)
            same = sum(len(a & b) for a, b in zip(ref, got))
            print(f"| {choice or 'none'} | {dtype} | {same}/{total} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
