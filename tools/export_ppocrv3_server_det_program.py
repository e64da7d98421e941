"""Export PaddleOCR's PP-OCRv3_server_det network as a Paddle 3 (PIR) inference program, without weights.

    python -m tools.export_ppocrv3_server_det_program --paddleocr-src DIR [--out tests/fixtures/paddle_graphs/PP-OCRv3_server_det_infer]

Dev only: needs ``paddlepaddle`` (3.3.1 wrote the fixture) and PaddleOCR's Paddle sources: a
PaddleOCR checkout, or a partial copy holding ``ppocr/modeling/backbones/det_resnet_vd.py``,
``ppocr/modeling/necks/db_fpn.py`` and ``ppocr/modeling/heads/det_db_head.py`` at those paths.
PaddleX's official ``PP-OCRv3_server_det_infer`` program is not in ``../shared`` (PaddleOCR 2.x
released no v3 server detector); this writes the network ``configs/det/PP-OCRv3/PP-OCRv3_server_det.yml``
describes (``ResNet_vd`` of 50 layers, ``LKPAN`` of 256 channels, ``DBHead`` with kernel_list
[7, 2, 2]) as ``ppocr/modeling/architectures/base_model.py`` chains it, exported as PaddleOCR's
``tools/export_model.py`` exports a DB detector: eval mode (the head's shrink map), input
``[None, 3, -1, -1]``, ``paddle.jit.save`` of the PIR program. Only ``inference.json`` is kept,
with an ``inference.yml`` of PaddleX's form for a DB detector (the PP-OCRv5 mobile detector's,
``../shared``'s, under this model's name; PaddleX runs the model at 960 / max whatever its yml says,
it being one of ``_TEXT_DET_MAX_LIMIT_MODELS``) and ``SOURCE.json``: tests seed the weights
(``verification.seeding_pir``) and run the program with Paddle Inference.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

from tools.paddleocr_export import paddleocr_packages, save_weightless_program

REPO = Path(__file__).resolve().parents[1]
MODEL_NAME = "PP-OCRv3_server_det"
DEFAULT_OUT = REPO / "tests" / "fixtures" / "paddle_graphs" / f"{MODEL_NAME}_infer"
# PaddleX's inference.yml of a DB detector released with the same settings (960, max).
YML_TEMPLATE = "paddle_models/PP-OCRv5_mobile_det_infer/inference.yml"


def export(paddleocr_src: Path, out: Path, shared: Path) -> None:
    import paddle

    paddleocr_packages(paddleocr_src)
    backbones = importlib.import_module("ppocr.modeling.backbones.det_resnet_vd")
    necks = importlib.import_module("ppocr.modeling.necks.db_fpn")
    heads = importlib.import_module("ppocr.modeling.heads.det_db_head")

    class Program(paddle.nn.Layer):
        """base_model.py's chain for this config: backbone, neck, head; the head's eval "maps"."""

        def __init__(self):
            super().__init__()
            self.backbone = backbones.ResNet_vd(in_channels=3, layers=50)
            self.neck = necks.LKPAN(self.backbone.out_channels, out_channels=256)
            self.head = heads.DBHead(self.neck.out_channels, k=50, kernel_list=[7, 2, 2])

        def forward(self, x):
            return self.head(self.neck(self.backbone(x)))["maps"]

    model = Program()
    model.eval()
    yml = (shared / YML_TEMPLATE).read_text(encoding="utf-8")
    save_weightless_program(model, [None, 3, None, None], out,
                            yml.replace("model_name: PP-OCRv5_mobile_det", f"model_name: {MODEL_NAME}", 1), {
        "what": "PaddleOCR's PP-OCRv3_server_det network (configs/det/PP-OCRv3/PP-OCRv3_server_det.yml) exported "
                "by paddle.jit.save, without weights",
        "made_by": "python -m tools.export_ppocrv3_server_det_program",
    })


def main(argv=None) -> None:
    from verification.shared import default_shared

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--paddleocr-src", type=Path, required=True, help="a PaddleOCR checkout (or the partial copy)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--shared", type=Path, default=None, help="the shared data folder (default ../shared)")
    args = p.parse_args(argv)
    export(args.paddleocr_src, args.out, args.shared or default_shared())


if __name__ == "__main__":
    main()
