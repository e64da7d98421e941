"""Compare ptocr's document unwarping with PaddleOCR 3.x's own pipeline on the same UVDoc weights.

    python -m tools.check_uvdoc_pipeline [--program tests/fixtures/paddle_graphs/UVDoc_infer] [--python VENV/bin/python]

Dev only, like ``tools/make_pipeline_reference.py --paddleocr3``: paddleocr 3.7.0 (paddlex 3.7.2,
paddlepaddle 3.3.1) runs in its own virtual environment. The UVDoc program (PaddleX's network
exported by ``tools/export_uvdoc_program.py``) gets seeded, calibrated weights; PaddleOCR 3.x reads
the scenes with ``use_doc_unwarping=True`` (document orientation and textline orientation off) and
its doc preprocessor's ``output_img`` is compared with ``OCR3.prepare``'s page, as ptocr.load
runs UVDoc and without its optimizations. Prints, per scene, how many uint8 values differ and by
how much. This checks what the parity test cannot: PaddleX's pre- and post-processing around the
program (scaling, channel order, the truncating cast) as its pipeline composes them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from tools.make_pipeline_reference import DEFAULT_OPENCV_DIR, DEFAULT_PADDLEOCR3_PYTHON, PADDLEOCR3_MODELS
from verification.shared import default_shared

REPO = Path(__file__).resolve().parents[1]
SCENES = ("00009282.jpg", "ger_1.jpg", "1.jpg")

def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--program", type=Path, default=REPO / "tests" / "fixtures" / "paddle_graphs" / "UVDoc_infer")
    p.add_argument("--shared", type=Path, default=default_shared())
    p.add_argument("--python", default=DEFAULT_PADDLEOCR3_PYTHON)
    p.add_argument("--opencv", default=DEFAULT_OPENCV_DIR)
    args = p.parse_args(argv)

    import ptocr
    from ptocr.pipeline3 import OCR3
    from verification.seeding import seed_and_calibrate

    scenes = [args.shared / "images" / "scenes" / n for n in SCENES]
    models = args.shared / "paddle_models"
    with tempfile.TemporaryDirectory() as tmp:
        folder = seed_and_calibrate(args.program, Path(tmp) / "UVDoc_infer", scenes[:2], arch="UVDoc")
        settings = {"doc_unwarping_model_name": "UVDoc", "doc_unwarping_model_dir": str(folder),
                    "use_doc_orientation_classify": False, "use_doc_unwarping": True,
                    "use_textline_orientation": False, "device": "cpu", "enable_mkldnn": False}
        for stem in ("text_detection", "text_recognition"):
            name, sub = PADDLEOCR3_MODELS[stem]
            settings.update({f"{stem}_model_name": name, f"{stem}_model_dir": str(models / sub)})
        out = Path(tmp) / "pages.npz"
        env = {**os.environ, **({"PYTHONPATH": args.opencv} if args.opencv else {})}
        subprocess.run([args.python, str(REPO / "tools" / "paddleocr3_runner.py"), "--pages", str(out),
                        json.dumps(settings), *map(str, scenes)], check=True, env=env, stdout=subprocess.DEVNULL)
        theirs = dict(np.load(out))
        print("| scene | size | ptocr.load: values differing | max | optimize=False: values differing | max |")
        print("|---|---|---|---|---|---|")
        pipelines = [OCR3(models / "PP-OCRv5_mobile_det_infer", models / "PP-OCRv5_mobile_rec_infer",
                          doc_unwarp=ptocr.load(folder, optimize=opt)) for opt in (True, False)]
        for scene in scenes:
            ref = theirs[scene.name].astype(int)
            cells = []
            for ocr in pipelines:
                d = np.abs(ocr.prepare(scene)[0].astype(int) - ref)
                cells += [f"{np.count_nonzero(d) / d.size:.1%}", str(d.max())]
            print(f"| {scene.name} | {ref.shape[1]} x {ref.shape[0]} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
