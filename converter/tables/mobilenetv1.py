"""MobileNetV1Enhance families.

PP-OCRv3 rec (SVTR-LCNet on MobileNetV1Enhance) nests its CTC branch in a MultiHead exactly as
PP-OCRv4 rec does and uses that family's table (``svtr_lcnet_multihead``).
"""

from __future__ import annotations

from converter.mapping import Rule

TABLES: dict[str, tuple[Rule, ...]] = {
    # PP-OCRv2 rec: MobileNetV1Enhance + SequenceEncoder(rnn) + CTCHead(fc1, fc2). The student's
    # names are ptocr's names; a distillation checkpoint's ``Student.`` prefix is removed by
    # the reader (submodel selection), not here.
    "mobilenetv1_enhance_crnn": (),
}
