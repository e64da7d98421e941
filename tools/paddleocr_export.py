"""What the tools exporting PaddleOCR's own networks as weightless Paddle 3 programs share
(``tools/export_*_program.py``, dev only: they need ``paddlepaddle`` and PaddleOCR's sources).

``paddleocr_packages`` makes ``ppocr.modeling.*`` importable from a PaddleOCR checkout or a partial
copy of the files a tool names, without running the packages' ``__init__`` files (a checkout's
import every model there is); ``save_weightless_program`` writes what ``verification.suite`` reads as
an "exported" entry: ``inference.json`` (``paddle.jit.save`` of the eval-mode network), the
``inference.yml`` PaddleX would ship beside it, and ``SOURCE.json`` saying how it was made.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import types
from pathlib import Path

PACKAGES = ("ppocr", "ppocr.modeling", "ppocr.modeling.backbones", "ppocr.modeling.necks", "ppocr.modeling.heads")


def paddleocr_packages(src: Path) -> None:
    """Empty ``ppocr`` packages whose modules are the files under ``src`` (PaddleOCR's layout)."""
    for name in PACKAGES:
        package = types.ModuleType(name)
        package.__path__ = [str(Path(src).joinpath(*name.split(".")))]
        sys.modules[name] = package


def save_weightless_program(model, input_shape: list, out: Path, inference_yml: str, source: dict) -> None:
    """``model`` (eval mode) traced for inputs of ``input_shape`` (None / -1: any) and saved by
    ``paddle.jit.save``; only its ``inference.json`` is kept (tests seed the weights)."""
    import paddle

    spec = [paddle.static.InputSpec(input_shape, "float32", "x")]
    with tempfile.TemporaryDirectory() as tmp:
        paddle.jit.save(paddle.jit.to_static(model, input_spec=spec, full_graph=True), f"{tmp}/inference")
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(f"{tmp}/inference.json", out / "inference.json")
    (out / "inference.yml").write_text(inference_yml, encoding="utf-8")
    (out / "SOURCE.json").write_text(json.dumps({**source, "paddle": paddle.__version__}, indent=1) + "\n")
