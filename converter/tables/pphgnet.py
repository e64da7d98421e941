"""PP-HGNet families: PP-OCRv4 server det (PPHGNet_small) and PP-OCRv5 server det
(PPHGNetV2_B4). The server recognizers (v4 PPHGNet_small, v5 PPHGNetV2_B4) use
``svtr_lcnet_multihead`` (``converter/tables/pplcnetv3.py``), their MultiHead names being
those of the mobile recognizer; they take ``PPHGNETV2_CLASSIFIER_TAIL`` from here.

Names are PaddleOCR's (``ppocr/modeling/architectures/base_model.py``: ``backbone.``,
``neck.``, ``head.``), and below those prefixes our modules keep PaddleOCR's attribute
names: PPHGNetV2 (``ppocr/modeling/backbones/rec_pphgnetv2.py``) ``stem.stem1`` ..
``stem.stem4``, ``stages.i.downsample``, ``stages.i.blocks.j.layers.k`` (``conv``/``bn``,
or ``conv1``/``conv2`` for light blocks), ``aggregation_squeeze_conv``,
``aggregation_excitation_conv``; LKPAN (``ppocr/modeling/necks/db_fpn.py``) ``ins_conv``,
``inp_conv``, ``pan_head_conv``, ``pan_lat_conv``, ``incl1``..``incl4``; PFHeadLocal
(``ppocr/modeling/heads/det_db_head.py``) ``binarize``, ``thresh``, ``cbn_layer.last_3``,
``cbn_layer.last_1``.
"""

from __future__ import annotations

from converter.mapping import Rule

# PaddleOCR's PPHGNetV2 keeps PaddleClas's classification tail: with ``use_last_conv``
# (default True, not changed by the PP-OCRv5 server det/rec configs) it builds ``last_conv``
# (1x1 conv, no bias) whatever ``det``, and an ``fc`` Linear when not ``det``; the OCR
# forward returns before either, so a training checkpoint holds them and no program reads
# them. (``lab`` of the tail exists only with ``use_lab``: B0-B3, not B4.)
PPHGNETV2_CLASSIFIER_TAIL = (
    Rule(r"^backbone\.(last_conv|fc)\.", None,
         "PPHGNetV2's classification tail (last_conv, fc): built by PaddleOCR, never run by OCR"),
)

TABLES: dict[str, tuple[Rule, ...]] = {
    # PP-OCRv4 / v5 server det: PPHGNet_small or PPHGNetV2_B4 + LKPAN (IntraCL) +
    # PFHeadLocal. The threshold branch (head.thresh) is in training checkpoints only; the
    # architecture's "training head" form holds it.
    "pphgnet_db": PPHGNETV2_CLASSIFIER_TAIL,
}
