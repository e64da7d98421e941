"""PPLCNetV3 families (PP-OCRv4 mobile det and rec)."""

from __future__ import annotations

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
}
