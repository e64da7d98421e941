"""MobileNetV3 families."""

from __future__ import annotations

from converter.mapping import Rule

# Paddle's nn.LSTM registers each weight twice in a training state dict: once under the
# flat cuDNN-style name (``weight_ih_l0``, ``..._reverse`` for the backward direction) and
# once under the cell that owns it (``0.cell_fw.weight_ih``, ``0.cell_bw...``); both names
# are the same Parameter. Inference programs keep only the cell names, which our modules
# use, so the flat duplicates are dropped.
_LSTM_FLAT_DUPLICATES = Rule(
    r"\.lstm\.(weight|bias)_(ih|hh)_l\d+(_reverse)?$", None,
    "Paddle LSTM flat-name alias of a cell weight (same tensor, training checkpoints only)",
)

TABLES: dict[str, tuple[Rule, ...]] = {
    # ch_ppocr_mobile_v2.0_cls: MobileNetV3 + ClsHead, names as in PaddleOCR.
    "mobilenetv3_cls": (),
    # v2.0 / PP-OCRv2 / PP-OCRv3 mobile det: MobileNetV3 + DBFPN or RSEFPN + DBHead, names
    # as in PaddleOCR (the threshold branch of training checkpoints is a form of DBHead).
    "mobilenetv3_db": (),
    # v2.0 mobile rec (CRNN): MobileNetV3 + SequenceEncoder(rnn) + CTCHead.
    "mobilenetv3_crnn": (_LSTM_FLAT_DUPLICATES,),
}
