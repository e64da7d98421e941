"""Per-family mapping tables: Paddle structured names -> ptocr state-dict keys.

ptocr's modules use PaddleOCR's attribute names, so most names pass unchanged and a
table holds only what differs: where PaddleOCR nests a part elsewhere than our
backbone -> neck -> head, and the training-only branches an inference model never
runs. The shared rules (batch-norm statistics, Linear layout) are in
``converter.mapping`` and apply after these.
"""

from __future__ import annotations

from converter.errors import ArchitectureError
from converter.mapping import Rule

TABLES: dict[str, tuple[Rule, ...]] = {
    # PP-OCRv4 mobile det: PPLCNetV3 + RSEFPN + DBHead, names as in PaddleOCR.
    "pplcnetv3_db": (),
    # PP-OCRv4 mobile rec: PaddleOCR's MultiHead holds the SVTR encoder and CTC head of
    # its CTC branch, plus the NRTR (GTC) branch that only guides training.
    "svtr_lcnet_multihead": (
        Rule(r"^head\.(gtc_head|before_gtc)\.", None, "NRTR/GTC branch of MultiHead: training only"),
        Rule(r"^head\.sar_head\.", None, "SAR branch of MultiHead: training only"),
        Rule(r"^head\.ctc_encoder\.", "neck.", "MultiHead's CTC-branch encoder is our neck"),
        Rule(r"^head\.ctc_head\.", "head.", "MultiHead's CTC head is our head"),
    ),
    # ch_ppocr_mobile_v2.0_cls: MobileNetV3 + ClsHead, names as in PaddleOCR.
    "mobilenetv3_cls": (),
}


def get_table(family: str) -> tuple[Rule, ...]:
    try:
        return TABLES[family]
    except KeyError:
        raise ArchitectureError(f"no mapping table for family {family!r}") from None
