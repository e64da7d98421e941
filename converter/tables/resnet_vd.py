"""ResNet-vd families (PP-OCR v2.0 server det and rec)."""

from __future__ import annotations

from converter.mapping import Rule

TABLES: dict[str, tuple[Rule, ...]] = {
    # ch_ppocr_server_v2.0_det: ResNet_vd + DBFPN + DBHead, names as in PaddleOCR.
    "resnet_vd_db": (),
    # ch_ppocr_server_v2.0_rec: ResNet (rec ResNet-vd) + SequenceEncoder(rnn) + CTCHead,
    # names as in PaddleOCR.
    "resnet_vd_crnn": (),
}
