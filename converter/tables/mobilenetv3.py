"""MobileNetV3 families."""

from __future__ import annotations

from converter.mapping import Rule

TABLES: dict[str, tuple[Rule, ...]] = {
    # ch_ppocr_mobile_v2.0_cls: MobileNetV3 + ClsHead, names as in PaddleOCR.
    "mobilenetv3_cls": (),
}
