"""PPLCNetV3 families (PP-OCRv4 / PP-OCRv5 mobile det and rec; the rec table also serves the
server recognizers, whose MultiHead names are the same).

PP-OCRv5 mobile det/rec are the v4 networks (``configs/det/PP-OCRv5/PP-OCRv5_mobile_det.yml``:
PPLCNetV3 scale 0.75 + RSEFPN + DBHead; ``configs/rec/PP-OCRv5/PP-OCRv5_mobile_rec.yml``:
PPLCNetV3 scale 0.95 + MultiHead(CTCHead with svtr neck, NRTRHead)), neither distilled;
PaddleOCR 3's ``rec_lcnetv3.py`` names the rep layers' affine blocks ``lab`` / ``act.lab``
(the aliases below).
"""

from __future__ import annotations

from converter.mapping import Rule
from converter.tables.pphgnet import PPHGNETV2_CLASSIFIER_TAIL

# Later PaddleOCR releases (en_PP-OCRv4_rec's export) name the fused rep layer's learnable
# affine block ``lab`` (scale, bias) and its activation's ``act.lab``, where the ch v4
# releases (and our fused modules) have ``w``/``b`` and ``activation.scale``/``.bias``.
# Aliases: the unfused form has real ``lab``/``act.lab`` modules, which keep their names.
_LAB_RENAMES = (
    Rule(r"\.act\.lab\.(scale|bias)$", r".activation.\1", "newer rep-layer naming: act.lab -> activation", alias=True),
    Rule(r"\.lab\.scale$", ".w", "newer rep-layer naming: lab.scale -> w", alias=True),
    Rule(r"\.lab\.bias$", ".b", "newer rep-layer naming: lab.bias -> b", alias=True),
)

# The ch_PP-OCRv4 releases' PPLCNetV3 held modules its forward never calls (their
# .pdiparams.info lists them; the programs do not read them): the stem's activation
# ``conv1.hardswish`` (det and rec) and, in the recognizer, a classification tail
# ``hardswish`` / ``last_conv`` / ``fc``. A training checkpoint holds them too.
_V4_UNUSED = (
    Rule(r"^backbone\.conv1\.hardswish\.", None, "PPLCNetV3 stem activation module: never called"),
)
_V4_REC_TAIL = (
    Rule(r"^backbone\.hardswish\.", None, "PPLCNetV3 rec classification tail (hardswish): never run"),
)

TABLES: dict[str, tuple[Rule, ...]] = {
    # PP-OCRv4 mobile det: PPLCNetV3 + RSEFPN + DBHead, names as in PaddleOCR.
    "pplcnetv3_db": (*_V4_UNUSED, *_LAB_RENAMES),
    # PP-OCRv4 mobile rec: PaddleOCR's MultiHead holds the SVTR encoder and CTC head of
    # its CTC branch, plus the NRTR (GTC) branch that only guides training.
    "svtr_lcnet_multihead": (
        Rule(r"^head\.(gtc_head|before_gtc)\.", None, "NRTR/GTC branch of MultiHead: training only"),
        Rule(r"^head\.sar_head\.", None, "SAR branch of MultiHead: training only"),
        Rule(r"^head\.ctc_encoder\.", "neck.", "MultiHead's CTC-branch encoder is our neck"),
        Rule(r"^head\.ctc_head\.", "head.", "MultiHead's CTC head is our head"),
        # PPHGNetV2 (v5 server) and the v4 PPLCNetV3 both carry last_conv / fc.
        *PPHGNETV2_CLASSIFIER_TAIL,
        *_V4_UNUSED,
        *_V4_REC_TAIL,
        *_LAB_RENAMES,
    ),
}
