"""Write calibrated seeded weights beside a copy of a real Paddle program.

    python tools/seed_weights.py ../shared/paddle_graphs/ch_ppocr_server_v2.0_rec_infer OUT_DIR \
        --images ../shared/images/words/ch [--arch NAME] [--seed 0]

OUT_DIR then holds the program, its ``.info``, a seeded and calibrated
``inference.pdiparams`` and ``seeding.json`` (how the values were chosen): a Paddle
model folder that Paddle Inference runs and ``ptocr-convert`` converts. See
``converter/seeding.py`` for the method.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from converter.parity_suite import IMAGE_SUFFIXES  # noqa: E402
from converter.seeding import seed_and_calibrate  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("program_dir", type=Path)
    p.add_argument("out_dir", type=Path)
    p.add_argument("--images", type=Path, required=True, help="a folder of real images (or one image)")
    p.add_argument("--arch", default=None)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    images = ([args.images] if args.images.is_file() else
              sorted(q for q in args.images.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES))
    out = seed_and_calibrate(args.program_dir, args.out_dir, images, arch=args.arch, seed=args.seed)
    print(json.dumps(json.loads((out / "seeding.json").read_text()), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
