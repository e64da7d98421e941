"""PPLCNetV3 families (PP-OCRv4 mobile det and rec)."""

from __future__ import annotations

from converter.mapping import Rule

# Later PaddleOCR releases (en_PP-OCRv4_rec's export) name the fused rep layer's learnable
# affine block ``lab`` (scale, bias) and its activation's ``act.lab``, where the ch v4
# releases (and our fused modules) have ``w``/``b`` and ``activation.scale``/``.bias``.
# Aliases: the unfused form has real ``lab``/``act.lab`` modules, which keep their names.
_LAB_RENAMES = (
    Rule(r"\.act\.lab\.(scale|bias)$", r".activation.\1", "newer rep-layer naming: act.lab -> activation", alias=True),
    Rule(r"\.lab\.scale$", ".w", "newer rep-layer naming: lab.scale -> w", alias=True),
    Rule(r"\.lab\.bias$", ".b", "newer rep-layer naming: lab.bias -> b", alias=True),
)

TABLES: dict[str, tuple[Rule, ...]] = {
    # PP-OCRv4 mobile det: PPLCNetV3 + RSEFPN + DBHead, names as in PaddleOCR.
    "pplcnetv3_db": _LAB_RENAMES,
    # PP-OCRv4 mobile rec: PaddleOCR's MultiHead holds the SVTR encoder and CTC head of
    # its CTC branch, plus the NRTR (GTC) branch that only guides training.
    "svtr_lcnet_multihead": (
        Rule(r"^head\.(gtc_head|before_gtc)\.", None, "NRTR/GTC branch of MultiHead: training only"),
        Rule(r"^head\.sar_head\.", None, "SAR branch of MultiHead: training only"),
        Rule(r"^head\.ctc_encoder\.", "neck.", "MultiHead's CTC-branch encoder is our neck"),
        Rule(r"^head\.ctc_head\.", "head.", "MultiHead's CTC head is our head"),
        *_LAB_RENAMES,
    ),
}
