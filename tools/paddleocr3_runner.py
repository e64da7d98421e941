"""Run PaddleOCR 3.x's general OCR pipeline on images and print its results as JSON.

Runs inside a separate virtual environment that has ``paddleocr==3.7.0`` and
``paddlepaddle==3.3.1`` (their dependencies clash with the test environment), started by
``python -m tools.make_pipeline_reference --paddleocr3 --python VENV/bin/python``. Uses only
the standard library and paddleocr, so it runs as a plain script there:

    VENV/bin/python tools/paddleocr3_runner.py [--pages NPZ] SETTINGS_JSON IMAGE...

SETTINGS_JSON holds the ``PaddleOCR(...)`` keyword arguments. Prints one JSON object:
``{"versions": {...}, "images": {name: result}}``. ``--pages NPZ``: also save each image's page as
the doc preprocessor leaves it (``doc_preprocessor_res["output_img"]``, by name; used by
``tools/check_uvdoc_pipeline.py``). Model folders must be local: with
``PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK=True`` nothing is fetched.
"""

import json
import os
import platform
import sys


def as_list(value):
    return value.tolist() if hasattr(value, "tolist") else list(value)


def main(argv):
    os.environ.setdefault("PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK", "True")
    pages_path = None
    if argv[0] == "--pages":
        pages_path, argv = argv[1], argv[2:]
    settings = json.loads(argv[0])
    import cv2
    import paddle
    import paddleocr
    import paddlex
    from paddleocr import PaddleOCR

    ocr = PaddleOCR(**settings)
    images, pages = {}, {}
    for path in argv[1:]:
        for res in ocr.predict(path):
            data = res.json["res"] if "res" in res.json else res.json
            name = os.path.basename(path)
            if data.get("page_index") is not None:  # a PDF page (0-based) -> file.pdf#N (1-based)
                name = f"{name}#{data['page_index'] + 1}"
            images[name] = {
                "dt_polys": as_list(data["dt_polys"]),
                "rec_polys": as_list(data["rec_polys"]),
                "rec_boxes": as_list(data["rec_boxes"]),
                "rec_texts": list(data["rec_texts"]),
                "rec_scores": [float(s) for s in data["rec_scores"]],
                "textline_orientation_angles": [int(a) for a in data.get("textline_orientation_angles", [])],
                "text_det_params": data["text_det_params"],
                "text_rec_score_thresh": data["text_rec_score_thresh"],
                "model_settings": data["model_settings"],
            }
            if settings.get("return_word_box"):  # per line: its words and their quads
                images[name]["text_word"] = [list(words) for words in res["text_word"]]
                images[name]["text_word_region"] = [[[as_list(p) for p in quad] for quad in line]
                                                    for line in res["text_word_region"]]
            if pages_path is not None:
                pages[name] = res["doc_preprocessor_res"]["output_img"]
            print(f"{name}: {len(data['rec_texts'])} lines", file=sys.stderr, flush=True)
    versions = {"paddleocr": paddleocr.__version__, "paddlex": paddlex.__version__,
                "paddlepaddle": paddle.__version__, "opencv": cv2.__version__,
                "python": platform.python_version()}
    if pages_path is not None:
        import numpy as np

        np.savez(pages_path, **pages)
    json.dump({"versions": versions, "images": images}, sys.stdout, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
