"""PPLCNetV3 architectures: PP-OCRv4 mobile det and rec.

PP-OCRv5's mobile detector and recognizer (Paddle 3 programs) are the very same networks
(graph alignment places every tensor of their programs in these entries, strides and
shapes checked); they differ only in weights and, for the recognizer, in the dictionary
(18383 characters, from the model's own inference.yml), so they are aliases.
"""

from __future__ import annotations

from ptocr.architectures.common import DB_HEAD_FORMS, DB_POSTPROCESS, NRTR_GTC_HEAD, REP_FORMS, SVTR_CTC_NECK

ARCHITECTURES: dict[str, dict] = {
    "ch_PP-OCRv4_det": {
        "task": "det",
        "family": "pplcnetv3_db",
        "forms": {"rep": REP_FORMS, "head": DB_HEAD_FORMS},
        "model": {
            "backbone": {"name": "PPLCNetV3", "scale": 0.75, "det": True},
            "neck": {"name": "RSEFPN", "out_channels": 96, "shortcut": True},
            "head": {"name": "DBHead", "k": 50},
        },
        "preprocess": {"limit_side_len": 960, "limit_type": "max"},
        "postprocess": DB_POSTPROCESS,
    },
    "ch_PP-OCRv4_rec": {
        "task": "rec",
        "family": "svtr_lcnet_multihead",
        "forms": {"rep": REP_FORMS},
        "model": {
            "backbone": {"name": "PPLCNetV3", "scale": 0.95},
            "neck": SVTR_CTC_NECK,
            "head": {"name": "CTCHead", "num_classes": 6625},
        },
        "preprocess": {"image_shape": [3, 48, 320]},
        "postprocess": {},
        "dictionary": {"builtin": "ppocr_keys_v1.txt", "use_space_char": True},
        "gtc_head": NRTR_GTC_HEAD,
    },
}


ALIASES: dict[str, str] = {
    "PP-OCRv5_mobile_det": "ch_PP-OCRv4_det",
    "PP-OCRv5_mobile_rec": "ch_PP-OCRv4_rec",
}
