"""PPLCNetV4 families (PP-OCRv6 tiny / small / medium det and rec).

Our modules keep PaddleOCR 3.7's attribute names (``rec_lcnetv4.py``, ``db_fpn.py``'s RepLKFPN /
RepLKPAN, ``rnn.py``'s EncoderWithLightSVTR), so the detector's names pass unchanged, in both
the training form and the fused one PaddleOCR's ``rep()`` leaves; the recognizer's table only
moves MultiHead's CTC branch to our neck and head and drops the NRTR branch.
"""

from __future__ import annotations

from converter.mapping import Rule

TABLES: dict[str, tuple[Rule, ...]] = {
    "pplcnetv4_db": (),
    "pplcnetv4_rec": (
        Rule(r"^head\.(gtc_head|before_gtc)\.", None, "NRTR/GTC branch of MultiHead: training only"),
        Rule(r"^head\.ctc_encoder\.", "neck.", "MultiHead's CTC-branch encoder is our neck"),
        Rule(r"^head\.ctc_head\.", "head.", "MultiHead's CTC head is our head"),
        Rule(r"^head\.fc2\.", "head.fc.",
             "tiny's CTC head (mid_channels): its class layer fc2 is our fc, where the class count is read"),
    ),
}
