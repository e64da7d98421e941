"""Write calibrated seeded weights beside a copy of a real Paddle program.

    python -m tools.seed_weights ../shared/paddle_graphs/ch_ppocr_server_v2.0_rec_infer OUT_DIR \
        --images ../shared/images/words/ch [--arch NAME] [--seed 0] [--donor TRAINED_FOLDER]

The program may be a Paddle 2 one (``inference.pdmodel`` + ``.info``) or a Paddle 3 one
(``inference.json`` + ``.yml``). OUT_DIR then holds a copy of the program files, a seeded
and calibrated ``inference.pdiparams`` and ``seeding.json`` (how the values were chosen):
a Paddle model folder that Paddle Inference runs and ``ptocr-convert`` converts.
``--donor``: a Paddle model folder of the same network with trained weights, whose tensors
replace the seeded ones wherever name and shape fit. See ``verification/seeding.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ptocr.errors import PtocrError
from verification.seeding import seed_and_calibrate
from verification.shared import IMAGE_SUFFIXES


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.seed_weights", description=__doc__.splitlines()[0])
    p.add_argument("program_dir", type=Path)
    p.add_argument("out_dir", type=Path)
    p.add_argument("--images", type=Path, required=True, help="a folder of real images (or one image)")
    p.add_argument("--arch", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--donor", type=Path, default=None, help="a trained folder of the same network")
    args = p.parse_args(argv)
    images = ([args.images] if args.images.is_file() else
              sorted(q for q in args.images.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES))
    try:
        out = seed_and_calibrate(args.program_dir, args.out_dir, images, arch=args.arch, seed=args.seed,
                                 donor=args.donor)
    except PtocrError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(json.loads((out / "seeding.json").read_text()), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
