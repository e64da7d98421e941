"""Export PaddleOCR's ch_SVTRv2_rec network as a Paddle 3 (PIR) inference program, without weights.

    python -m tools.export_ch_svtrv2_rec_program --paddleocr-src DIR [--out tests/fixtures/paddle_graphs/ch_SVTRv2_rec_infer]

Dev only: needs ``paddlepaddle`` (3.3.1 wrote the fixture) and PaddleOCR's Paddle sources, either a
PaddleOCR checkout or a partial copy holding, at the same relative paths,
``ppocr/modeling/backbones/rec_svtrv2.py`` and ``rec_svtrnet.py``, ``ppocr/modeling/necks/rnn.py``,
``ppocr/modeling/heads/rec_multi_head.py`` and ``rec_ctc_head.py``. PaddleX's official
``ch_SVTRv2_rec_infer`` program is not in ``../shared``; this writes the same network as
``configs/rec/SVTRv2/ch_SVTRv2_rec.yml`` describes it (backbone ``SVTRv2``, head ``MultiHead``
with the SVTR-neck CTC branch and the training-only NRTR branch), built as
``ppocr/modeling/architectures/base_model.py`` builds it (backbone, then head: the config has
no separate neck) and exported as ``tools/export_model.py`` (``ppocr/utils/export_model.py``)
exports an ``SVTR_HGNet`` recognizer: eval mode (MultiHead returns the CTC branch, CTCHead adds
the softmax), input ``[None, 3, 48, -1]`` (the width free), ``paddle.jit.save`` of the PIR
program. Nothing is re-parameterized at export (``rep()`` is called for PPLCNetV3 only; SVTRv2
has none). The NRTR branch is never read by the program; where the sources lack
``rec_nrtr_head.py`` / ``rec_sar_head.py`` (a partial copy), parameterless stand-ins take
their place.

Only ``inference.json`` is kept, with an ``inference.yml`` as PaddleX writes one for this
model (``Global.model_name``, the high-performance-inference shapes, the Eval pre-processing,
``CTCLabelDecode`` with ``ptocr/dicts/ppocr_keys_v1.txt``) and ``SOURCE.json``: tests seed the
weights (``verification.seeding_pir``) and run the program with Paddle Inference.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import sys
import types
from pathlib import Path

from tools.paddleocr_export import paddleocr_packages, read_characters, rec_inference_yml, save_weightless_program

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "tests" / "fixtures" / "paddle_graphs" / "ch_SVTRv2_rec_infer"
MODEL_NAME = "ch_SVTRv2_rec"
DICTIONARY = REPO / "ptocr" / "dicts" / "ppocr_keys_v1.txt"

# configs/rec/SVTRv2/ch_SVTRv2_rec.yml, Architecture
BACKBONE = {
    "use_pos_embed": False,
    "dims": [128, 256, 384],
    "depths": [6, 6, 6],
    "num_heads": [4, 8, 12],
    "mixer": [["Conv"] * 6, ["Conv", "Conv", "Global", "Global", "Global", "Global"], ["Global"] * 6],
    "local_k": [[5, 5], [5, 5], [-1, -1]],
    "sub_k": [[2, 1], [2, 1], [-1, -1]],
    "last_stage": False,
    "use_pool": True,
}
HEAD_LIST = [
    {"CTCHead": {
        "Neck": {"name": "svtr", "dims": 256, "depth": 2, "hidden_dims": 256, "kernel_size": [1, 3],
                 "use_guide": True},
        "Head": {"fc_decay": 0.00001},
    }},
    {"NRTRHead": {"nrtr_dim": 384, "max_text_length": 25, "num_decoder_layers": 2}},
]
# Eval.dataset.transforms of the config: what PaddleOCR's export writes as PreProcess.
TRANSFORM_OPS = [
    {"DecodeImage": {"img_mode": "BGR", "channel_first": False}},
    {"MultiLabelEncode": {"gtc_encode": "NRTRLabelEncode"}},
    {"RecResizeImg": {"image_shape": [3, 48, 320]}},
    {"KeepKeys": {"keep_keys": ["image", "label_ctc", "label_gtc", "length", "valid_ratio"]}},
]
def inference_yml() -> str:
    return rec_inference_yml(MODEL_NAME, copy.deepcopy(TRANSFORM_OPS), {"name": "CTCLabelDecode"},
                             read_characters(DICTIONARY))


def _paddleocr_modules(src: Path):
    """PaddleOCR's SVTRv2 and MultiHead classes from ``src``. The ``ppocr`` packages are put in
    place empty (a checkout's ``__init__`` files import every model there is); the modules
    themselves are PaddleOCR's files."""
    paddleocr_packages(src)
    import paddle.nn as nn

    heads = src / "ppocr" / "modeling" / "heads"
    for module, cls in (("rec_sar_head", "SARHead"), ("rec_nrtr_head", "Transformer")):
        if not (heads / f"{module}.py").exists():  # training-only branches: stand-ins without parameters
            stub = types.ModuleType(f"ppocr.modeling.heads.{module}")
            setattr(stub, cls, type(cls, (nn.Layer,), {"__init__": lambda self, **kw: nn.Layer.__init__(self)}))
            sys.modules[stub.__name__] = stub
    svtrv2 = importlib.import_module("ppocr.modeling.backbones.rec_svtrv2")
    multi_head = importlib.import_module("ppocr.modeling.heads.rec_multi_head")
    return svtrv2.SVTRv2, multi_head.MultiHead


def build(src: Path):
    """The network in eval mode, as base_model.BaseModel computes it (backbone, then head)."""
    import paddle

    SVTRv2, MultiHead = _paddleocr_modules(src)
    num_classes = len(read_characters(DICTIONARY)) + 2  # CTCLabelDecode: blank + characters + space

    class Program(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.backbone = SVTRv2(in_channels=3, **copy.deepcopy(BACKBONE))
            self.head = MultiHead(
                in_channels=self.backbone.out_channels,
                out_channels_list={"CTCLabelDecode": num_classes, "NRTRLabelDecode": num_classes + 1},
                head_list=copy.deepcopy(HEAD_LIST),
            )

        def forward(self, x):
            return self.head(self.backbone(x))

    model = Program()
    model.eval()
    return model


def export(src: Path, out: Path) -> None:
    save_weightless_program(build(src), [None, 3, 48, -1], out, inference_yml(), {
        "what": "PaddleOCR's SVTRv2 + MultiHead (configs/rec/SVTRv2/ch_SVTRv2_rec.yml) in eval mode, "
                "exported by paddle.jit.save with input [None, 3, 48, -1], without weights",
        "made_by": "python -m tools.export_ch_svtrv2_rec_program --paddleocr-src DIR",
        "paddleocr_files": ["ppocr/modeling/backbones/rec_svtrv2.py", "ppocr/modeling/backbones/rec_svtrnet.py",
                            "ppocr/modeling/necks/rnn.py", "ppocr/modeling/heads/rec_multi_head.py",
                            "ppocr/modeling/heads/rec_ctc_head.py"],
    })


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--paddleocr-src", type=Path, required=True,
                   help="a PaddleOCR checkout, or a copy of the files named above at the same paths")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    export(args.paddleocr_src.resolve(), args.out)


if __name__ == "__main__":
    main()
