"""RepSVTR: PaddleX's ``ch_RepSVTR_rec`` (PaddleOCR 3.x ``text_recognition_model_name="ch_RepSVTR_rec"``).

PaddleOCR's ``configs/rec/SVTRv2/ch_RepSVTR_rec.yml``: backbone ``RepSVTR`` with its defaults
(``ppocr/modeling/backbones/rec_repvit.py``), head ``MultiHead`` whose CTC branch is the SVTR
encoder (dims 256, depth 2, hidden_dims 256, kernel [1, 3], use_guide) and a CTC head; its NRTR
branch (nrtr_dim 384, 2 decoder layers) only trains. Chinese dictionary ``ppocr_keys_v1.txt`` with
the space (6625 classes), lines resized to 48 x 320 (PaddleX's ``OCRReisizeNormImg``, as the other
recognizers).

Forms (``ptocr.models.backbones.repsvtr``): the training structure, which is also what PaddleOCR's
exporter saves for this backbone (it calls ``rep()`` for PPLCNetV3 only), and the fused one that
``RepViT.rep()`` leaves.

The names under MultiHead are the PP-OCRv4 recognizers' (``head.ctc_encoder`` -> neck,
``head.ctc_head`` -> head, ``head.before_gtc`` / ``head.gtc_head`` dropped), so the family reuses
that mapping table; its other rules (PPLCNetV3 / PPHGNetV2 tails) name nothing RepSVTR has.
"""

from __future__ import annotations

from ptocr.architectures.common import REP_FORMS, SVTRV2_CTC_NECK, SVTRV2_GTC_HEAD

ARCHITECTURES: dict[str, dict] = {
    "ch_RepSVTR_rec": {
        "task": "rec",
        "family": "svtr_lcnet_multihead",
        "forms": {"rep": REP_FORMS},
        "model": {
            "backbone": {"name": "RepSVTR"},
            "neck": SVTRV2_CTC_NECK,  # on RepSVTR's 384 channels
            "head": {"name": "CTCHead", "num_classes": 6625},
        },
        "preprocess": {"image_shape": [3, 48, 320]},
        "postprocess": {},
        "dictionary": {"builtin": "ppocr_keys_v1.txt", "use_space_char": True},
        # MultiHead's NRTRHead entry in the same config (training only).
        "gtc_head": SVTRV2_GTC_HEAD,
    },
}
