"""Record what the official PaddleOCR pipelines read on the shared scene images.

    python -m tools.make_pipeline_reference [--shared ../shared] [--out tests/fixtures/pipeline_reference/ppocrv4_mobile.json]
    python -m tools.make_pipeline_reference --paddleocr3 [--python /work/venv-pocr3/bin/python] [--no-textline] [--return-word-box]
    python -m tools.make_pipeline_reference --paddleocr3 --seal [--python ...]

Dev only. The 2.x reference needs ``paddleocr==2.10.0`` importable (with its runtime
dependencies) and paddlepaddle. The 3.x reference (``--paddleocr3``) runs
``tools/paddleocr3_runner.py`` under another Python that has ``paddleocr==3.7.0`` and
``paddlepaddle==3.3.1`` (a separate virtual environment: their dependencies clash with the
test environment's). The JSON written is the fixture ``tests/test_pipeline*.py`` compare
ptocr's pipelines against in CI, where no paddleocr runtime is available.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
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


# The PaddleOCR 3.x reference: PP-OCRv5 mobile det + rec (the trained folders of ../shared) and
# the x0.25 textline orientation model, named so paddlex picks each model's own settings.
PADDLEOCR3_MODELS = {  # PaddleOCR 3.x argument stem -> (model name, folder under <shared>/paddle_models)
    "text_detection": ("PP-OCRv5_mobile_det", "PP-OCRv5_mobile_det_infer"),
    "text_recognition": ("PP-OCRv5_mobile_rec", "PP-OCRv5_mobile_rec_infer"),
    "textline_orientation": ("PP-LCNet_x0_25_textline_ori", "PP-LCNet_x0_25_textline_ori_infer"),
}
PADDLEOCR3_SETTINGS = {
    "use_doc_orientation_classify": False,
    "use_doc_unwarping": False,  # UVDoc's weights are not in ../shared: tools/check_uvdoc_pipeline.py
    # paddlex 3.7.0-3.7.2 give every line of a textline-orientation batch the first line's
    # angle; one line per batch records each line's own angle (doc/pipeline.md).
    "textline_orientation_batch_size": 1,
    "device": "cpu",
    "enable_mkldnn": False,  # oneDNN off, as for every Paddle reference of this repository
}
DEFAULT_PADDLEOCR3_PYTHON = os.environ.get("PTOCR_PADDLEOCR3_PYTHON", "/work/venv-pocr3/bin/python")
# paddlex pins opencv-contrib-python 4.10.0.84, whose bicubic warpPerspective differs from the
# test environment's OpenCV 5.1 by a few levels on a third of a crop's pixels: enough to change
# 3 of 428 texts. The reference is recorded with the test environment's OpenCV put first on
# the path (``--opencv DIR``: ``pip install --no-deps --target DIR opencv-contrib-python==5.1.0.95``)
# so that it measures the pipeline, not OpenCV; the fixture records the version used.
DEFAULT_OPENCV_DIR = os.environ.get("PTOCR_PADDLEOCR3_OPENCV", "/work/venv-pocr3-opencv51")


# --seal: paddlex's OCR pipeline with text_type "seal" as seal_recognition.yaml's SealOCR runs it
# (recognition one crop at a time; the detection settings left to the seal defaults of paddlex's
# code), over the v5 mobile detector made to give polygons (verification/poly_detector.py:
# ../shared has no seal detector) and the v5 mobile recognizer.
SEAL_PADDLEX_CONFIG = {
    "pipeline_name": "OCR", "text_type": "seal", "use_doc_preprocessor": False, "use_textline_orientation": False,
    "SubModules": {
        "TextDetection": {"module_name": "text_detection"},
        "TextRecognition": {"module_name": "text_recognition", "batch_size": 1, "score_thresh": 0.0},
    },
}
SEAL_DETECTOR_FOLDER = "PP-OCRv5_mobile_det_infer (box_type: poly)"


def paddleocr3_reference(python: str, shared: Path, textline: bool, opencv: str | None = None,
                         inputs: list[Path] | None = None, word_box: bool = False, seal: bool = False) -> dict:
    """Run PaddleOCR 3.x (``tools/paddleocr3_runner.py`` under ``python``) on every scene image
    (or ``inputs``: files of this repository, e.g. a PDF); the fixture as a dict. ``opencv``: a
    folder put first on that Python's path. ``seal``: text_type "seal" (``SEAL_PADDLEX_CONFIG``)."""
    models = shared / "paddle_models"
    settings = {**PADDLEOCR3_SETTINGS, "use_textline_orientation": textline,
                **({"return_word_box": True} if word_box else {})}
    for stem, (name, folder) in PADDLEOCR3_MODELS.items():
        settings[f"{stem}_model_name"] = name
        settings[f"{stem}_model_dir"] = str(models / folder)
    if seal:
        from verification.poly_detector import poly_detector_folder

        work = tempfile.TemporaryDirectory()  # removed when the reference is made
        poly = poly_detector_folder(models / PADDLEOCR3_MODELS["text_detection"][1],
                                    Path(work.name) / PADDLEOCR3_MODELS["text_detection"][1])
        settings.update(paddlex_config=SEAL_PADDLEX_CONFIG, text_detection_model_dir=str(poly))
        del settings["textline_orientation_model_name"], settings["textline_orientation_model_dir"]
    images = inputs or sorted(p for p in (shared / SCENES).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    env = {**os.environ, "PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK": "True"}
    if opencv:
        env["PYTHONPATH"] = opencv
    done = subprocess.run([python, str(REPO / "tools" / "paddleocr3_runner.py"), json.dumps(settings),
                           *map(str, images)], env=env, check=True, stdout=subprocess.PIPE, text=True)
    out = json.loads(done.stdout)
    first = next(iter(out["images"].values()))
    results = {}
    for name, r in out["images"].items():
        angles = r["textline_orientation_angles"] or [-1] * len(r["rec_texts"])
        boxes = r["rec_boxes"] or [None] * len(r["rec_texts"])  # seal text: paddlex reports none
        results[name] = [
            {"poly": poly, "box": box, "text": text, "score": score, "angle": angle}
            for poly, box, text, score, angle in zip(r["rec_polys"], boxes, r["rec_texts"], r["rec_scores"], angles)
        ]
        for line, words, quads in zip(results[name], r.get("text_word", []), r.get("text_word_region", [])):
            line["words"], line["word_quads"] = words, quads
    return {
        "generator": "tools/make_pipeline_reference.py --paddleocr3" + (" --seal" if seal else "")
                     + ("" if textline or seal else " --no-textline")
                     + (" --return-word-box" if word_box else "")
                     + (" --inputs " + " ".join(p.resolve().relative_to(REPO).as_posix() for p in inputs) if inputs else ""),
        **out["versions"],
        "call": "PaddleOCR(**settings).predict(path); per line rec_polys, rec_boxes, rec_texts, rec_scores, "
                "textline_orientation_angles (-1: no textline orientation)"
                + ("; text_word and text_word_region as words and word_quads" if word_box else ""),
        "notes": "paddlex pins opencv-contrib-python==4.10.0.84; this reference ran with the OpenCV named above "
                 "(the test environment's, first on the path) because 4.10's bicubic warpPerspective makes crops "
                 "that differ by a few levels from 5.1's. "
                 + ("text_type seal: the detector folder is ../shared's PP-OCRv5_mobile_det_infer with box_type: poly "
                    "stated in its inference.yml (verification/poly_detector.py); recognition one crop at a time, "
                    "as seal_recognition.yaml's SealOCR." if seal else
                    "With 4.10, 425 of the 428 textline lines read the same. textline_orientation_batch_size=1: "
                    "paddlex 3.7.0-3.7.2 give every line of a batch its first line's angle (see doc/pipeline.md)."),
        "models": {stem: name for stem, (name, _) in PADDLEOCR3_MODELS.items() if f"{stem}_model_name" in settings},
        "model_folders": {stem: folder for stem, (_, folder) in PADDLEOCR3_MODELS.items()
                          if f"{stem}_model_name" in settings},
        **({"text_type": "seal", "detector_folder": SEAL_DETECTOR_FOLDER} if seal else {}),
        "settings": {k: v for k, v in settings.items() if not k.endswith("_model_dir")},
        "effective_args": {"text_det_params": first["text_det_params"],
                           "text_rec_score_thresh": first["text_rec_score_thresh"],
                           "model_settings": first["model_settings"]},
        **({"inputs": [p.resolve().relative_to(REPO).as_posix() for p in inputs]} if inputs
           else {"images_folder": SCENES}),
        "images": results,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.make_pipeline_reference", description=__doc__.splitlines()[0])
    p.add_argument("--shared", type=Path, default=default_shared())
    p.add_argument("--out", type=Path, default=None,
                   help="default: tests/fixtures/pipeline_reference/ppocrv4_mobile.json (2.x), "
                        "ppocrv5_mobile[_textline][_words].json (3.x)")
    p.add_argument("--paddleocr3", action="store_true", help="record PaddleOCR 3.x's pipeline (PP-OCRv5 mobile)")
    p.add_argument("--python", default=DEFAULT_PADDLEOCR3_PYTHON,
                   help="with --paddleocr3: a Python with paddleocr==3.7.0 and paddlepaddle==3.3.1")
    p.add_argument("--no-textline", dest="textline", action="store_false",
                   help="with --paddleocr3: without the textline orientation step")
    p.add_argument("--return-word-box", dest="word_box", action="store_true",
                   help="with --paddleocr3: record each line's words and word quads too")
    p.add_argument("--inputs", type=Path, nargs="+", default=None,
                   help="with --paddleocr3: these files of the repository (images, PDFs) instead of the scenes")
    p.add_argument("--seal", action="store_true",
                   help="with --paddleocr3: text_type 'seal' (polygons, rectified crops; no textline step)")
    p.add_argument("--opencv", default=DEFAULT_OPENCV_DIR,
                   help="with --paddleocr3: a folder holding the test environment's OpenCV, put first on the path "
                        "('' for paddlex's own pin)")
    args = p.parse_args(argv)
    fixtures = REPO / "tests" / "fixtures" / "pipeline_reference"
    if args.seal and (args.word_box or not args.paddleocr3):
        p.error("--seal goes with --paddleocr3 and without --return-word-box (seal lines have no word boxes)")
    if args.paddleocr3:
        textline = args.textline and not args.seal
        reference = paddleocr3_reference(args.python, args.shared, textline, args.opencv or None, args.inputs,
                                         args.word_box, args.seal)
        stem = ("ppocrv5_mobile" + ("_seal" if args.seal else "") + ("_textline" if textline else "")
                + ("_words" if args.word_box else ""))
        out = args.out or fixtures / f"{stem}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(_dump(reference), encoding="utf-8")
        print(f"wrote {out} ({sum(map(len, reference['images'].values()))} lines, {len(reference['images'])} images)")
        return 0
    args.out = args.out or fixtures / "ppocrv4_mobile.json"

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
