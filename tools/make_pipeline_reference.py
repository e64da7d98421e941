"""Record what the official PaddleOCR 2.10 pipeline reads on the shared scene images.

    python -m tools.make_pipeline_reference [--shared ../shared] [--out tests/fixtures/pipeline_reference/ppocrv4_mobile.json]

Dev only: needs ``paddleocr==2.10.0`` importable (with its runtime dependencies) and
paddlepaddle. The JSON it writes is the fixture ``tests/test_pipeline.py`` compares ptocr's
``OCR`` against in CI, where no paddleocr runtime is available.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import logging
import platform
import sys
from pathlib import Path

from verification.shared import default_shared

REPO = Path(__file__).resolve().parents[1]

SCENES = "images/scenes"
MODELS = {  # PaddleOCR argument -> folder under <shared>/paddle_models
    "det_model_dir": "ch_PP-OCRv4_det_infer",
    "rec_model_dir": "ch_PP-OCRv4_rec_infer",
    "cls_model_dir": "ch_ppocr_mobile_v2.0_cls_infer",
}
# Everything else is PaddleOCR's default for ocr_version='PP-OCRv4' (recorded below).
SETTINGS = {
    "use_angle_cls": True,
    "lang": "ch",
    "ocr_version": "PP-OCRv4",
    "show_log": False,
    "use_gpu": False,
    "enable_mkldnn": False,
}
RECORDED_ARGS = (
    "det_algorithm", "det_limit_side_len", "det_limit_type", "det_db_thresh", "det_db_box_thresh",
    "det_db_unclip_ratio", "use_dilation", "det_db_score_mode", "det_box_type", "rec_algorithm",
    "rec_image_shape", "rec_batch_num", "use_space_char", "drop_score", "cls_image_shape",
    "cls_batch_num", "cls_thresh", "label_list",
)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def bind_paddleocr_tools() -> None:
    """Bind the top-level name ``tools`` to PaddleOCR's package, in a process about to import
    paddleocr.

    PaddleOCR 2.x imports its own top-level ``tools`` package (``from tools.infer import ...``);
    this repository's ``tools`` package, imported first when a script runs as
    ``python -m tools.NAME``, would shadow it. The modules of ours already imported keep
    working; importing another one afterwards would not, so call this only in a process that
    then runs PaddleOCR."""
    package = _paddleocr_tools_dir()
    bound = sys.modules.get("tools")
    if bound is not None and Path(getattr(bound, "__file__", "") or "").parent == package:
        return
    for name in [n for n in sys.modules if n == "tools" or n.startswith("tools.")]:
        del sys.modules[name]
    tools_spec = importlib.util.spec_from_file_location("tools", package / "__init__.py",
                                                        submodule_search_locations=[str(package)])
    module = importlib.util.module_from_spec(tools_spec)
    sys.modules["tools"] = module
    tools_spec.loader.exec_module(module)


@functools.cache
def _paddleocr_tools_dir() -> Path:
    # Located once, before any import of paddleocr: importing it edits sys.path, after which
    # the name paddleocr may resolve to its inner paddleocr.py module instead of the package.
    spec = importlib.util.find_spec("paddleocr")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("paddleocr is not installed (pip install --no-deps paddleocr==2.10.0)")
    return Path(list(spec.submodule_search_locations)[0]) / "tools"


def official_pipeline(shared: Path, **overrides):
    """PaddleOCR 2.10's pipeline on the shared model folders, with SETTINGS (``overrides``
    on top, e.g. ``tools.bench``'s fastest CPU settings)."""
    bind_paddleocr_tools()
    from paddleocr import PaddleOCR

    models = shared / "paddle_models"
    return PaddleOCR(**{k: str(models / v) for k, v in MODELS.items()},
                     rec_char_dict_path=str(REPO / "ptocr" / "dicts" / "ppocr_keys_v1.txt"),
                     **{**SETTINGS, **overrides})


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.make_pipeline_reference", description=__doc__.splitlines()[0])
    p.add_argument("--shared", type=Path, default=default_shared())
    p.add_argument("--out", type=Path,
                   default=REPO / "tests" / "fixtures" / "pipeline_reference" / "ppocrv4_mobile.json")
    args = p.parse_args(argv)

    ocr = official_pipeline(args.shared)  # imports paddleocr (with paddle) first
    import paddle
    import paddleocr

    logging.getLogger("ppocr").setLevel(logging.ERROR)

    images = sorted(p for p in (args.shared / SCENES).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    results = {}
    for path in images:
        (lines,) = ocr.ocr(str(path), cls=True)  # one image -> one page
        results[path.name] = [
            {"box": [[float(x), float(y)] for x, y in box], "text": text, "score": float(score)}
            for box, (text, score) in (lines or [])
        ]
        print(f"{path.name}: {len(results[path.name])} lines", flush=True)

    reference = {
        "generator": "tools/make_pipeline_reference.py",
        "paddleocr": paddleocr.__version__ if hasattr(paddleocr, "__version__") else "2.10.0",
        "paddlepaddle": paddle.__version__,
        "python": platform.python_version(),
        "call": "PaddleOCR(det_model_dir, rec_model_dir, cls_model_dir, rec_char_dict_path, **settings)"
                ".ocr(path, cls=True)",
        "models": MODELS,
        "rec_char_dict_path": "ptocr/dicts/ppocr_keys_v1.txt",
        "settings": SETTINGS,
        "effective_args": {k: getattr(ocr.args, k, None) for k in RECORDED_ARGS},
        "images_folder": SCENES,
        "images": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(_dump(reference), encoding="utf-8")
    print(f"wrote {args.out} ({sum(map(len, results.values()))} lines, {len(results)} images)")
    return 0


def _dump(reference: dict) -> str:
    """Indented JSON with one text line per row (small, diffable)."""
    head = json.dumps({k: v for k, v in reference.items() if k != "images"}, ensure_ascii=False, indent=1)
    blocks = []
    for name, lines in reference["images"].items():
        rows = ",".join("\n   " + json.dumps(line, ensure_ascii=False) for line in lines)
        blocks.append(f"\n  {json.dumps(name)}: [{rows}\n  ]" if lines else f"\n  {json.dumps(name)}: []")
    return head[:-2] + ',\n "images": {' + ",".join(blocks) + "\n }\n}\n"


if __name__ == "__main__":
    sys.exit(main())
