"""What the tools exporting PaddleOCR's own networks as weightless Paddle 3 programs share
(``tools/export_*_program.py``, dev only: they need ``paddlepaddle`` and PaddleOCR's sources).

``paddleocr_packages`` makes ``ppocr.modeling.*`` importable from a PaddleOCR checkout or a partial
copy of the files a tool names, without running the packages' ``__init__`` files (a checkout's
import every model there is); ``rec_inference_yml`` writes a recognizer's ``inference.yml`` as
PaddleOCR's ``dump_infer_config`` does; ``save_weightless_program`` writes what ``verification.suite``
reads as an "exported" entry: ``inference.json`` (``paddle.jit.save`` of the eval-mode network), the
``inference.yml`` beside it, and ``SOURCE.json`` saying how it was made.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import types
from pathlib import Path

PACKAGES = ("ppocr", "ppocr.modeling", "ppocr.modeling.backbones", "ppocr.modeling.necks", "ppocr.modeling.heads")
# dump_infer_config's high-performance-inference shapes for the SVTR_LCNet / SVTR_HGNet recognizers.
REC_HPI_SHAPES = {"x": [[1, 3, 48, 160], [1, 3, 48, 320], [8, 3, 48, 3200]]}


def paddleocr_packages(src: Path) -> None:
    """Empty ``ppocr`` packages whose modules are the files under ``src`` (PaddleOCR's layout)."""
    for name in PACKAGES:
        package = types.ModuleType(name)
        package.__path__ = [str(Path(src).joinpath(*name.split(".")))]
        sys.modules[name] = package


def read_characters(path: Path) -> list[str]:
    """A dictionary's lines as PaddleOCR's export reads them (each without its newline)."""
    with open(path, encoding="utf-8") as f:
        return [line.strip("\n") for line in f.readlines()]


def rec_inference_yml(model_name: str, transform_ops: list, postprocess: dict, characters: list[str]) -> str:
    """``dump_infer_config``'s file for a CTC recognizer: its sections in its order, each dumped as
    ``yaml.dump`` does (keys sorted)."""
    import yaml

    sections = {
        "Global": {"model_name": model_name},
        "Hpi": {"backend_configs": {"paddle_infer": {"trt_dynamic_shapes": REC_HPI_SHAPES},
                                    "tensorrt": {"dynamic_shapes": REC_HPI_SHAPES}}},
        "PreProcess": {"transform_ops": transform_ops},
        "PostProcess": {**postprocess, "character_dict": characters},
    }
    return "".join(yaml.dump({k: v}, default_flow_style=False, allow_unicode=True) for k, v in sections.items())


def save_weightless_program(model, input_shape: list, out: Path, inference_yml: str, source: dict,
                            full_graph: bool = True) -> None:
    """``model`` (eval mode) traced for inputs of ``input_shape`` (None / -1: any) and saved by
    ``paddle.jit.save``; only its ``inference.json`` is kept (tests seed the weights). The same
    ops either way of ``full_graph``; PaddleOCR's own export leaves it out."""
    import paddle

    spec = [paddle.static.InputSpec(input_shape, "float32", "x")]
    with tempfile.TemporaryDirectory() as tmp:
        paddle.jit.save(paddle.jit.to_static(model, input_spec=spec, full_graph=full_graph), f"{tmp}/inference")
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(f"{tmp}/inference.json", out / "inference.json")
    (out / "inference.yml").write_text(inference_yml, encoding="utf-8")
    (out / "SOURCE.json").write_text(json.dumps({**source, "paddle": paddle.__version__}, indent=1) + "\n")
