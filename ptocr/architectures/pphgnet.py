"""PP-HGNet architectures: PP-OCRv4 server det and rec (PaddleOCR's PPHGNet_small), and
PP-OCRv5 server det and rec (PPHGNetV2_B4; Paddle 3 programs, converted by graph alignment).

The v5 server detector has the v4 server neck and head; its program outputs only the
average of the shrink and refined maps (PaddleOCR 3's PFHeadLocal), not the v4 program's
refined map, hence ``output: "mean"``. The v5 server recognizer's dictionary (18383
characters) comes from the model's own inference.yml.
"""

from __future__ import annotations

from ptocr.architectures.common import DB_HEAD_FORMS, DB_POSTPROCESS, NRTR_GTC_HEAD, SVTR_CTC_NECK

ARCHITECTURES: dict[str, dict] = {
    # configs/det/ch_PP-OCRv4/ch_PP-OCRv4_det_teacher.yml
    "ch_PP-OCRv4_server_det": {
        "task": "det",
        "family": "pphgnet_db",
        "forms": {"head": DB_HEAD_FORMS},
        "model": {
            "backbone": {"name": "PPHGNet", "det": True},
            "neck": {"name": "LKPAN", "out_channels": 256, "mode": "large", "intracl": True},
            # Eval returns the program's output 0 (the refined "cbn" map), the one
            # PaddleOCR 2.x's predict_det reads.
            "head": {"name": "PFHeadLocal", "k": 50, "mode": "large", "output": "cbn"},
        },
        "preprocess": {"limit_side_len": 960, "limit_type": "max"},
        "postprocess": DB_POSTPROCESS,
    },
    # configs/rec/PP-OCRv4/ch_PP-OCRv4_rec_hgnet.yml: MultiHead's CTC branch (SVTR
    # encoder + CTC head), with the same names as the mobile v4 recognizer.
    "ch_PP-OCRv4_server_rec": {
        "task": "rec",
        "family": "svtr_lcnet_multihead",
        "model": {
            "backbone": {"name": "PPHGNet", "det": False},
            "neck": SVTR_CTC_NECK,
            "head": {"name": "CTCHead", "num_classes": 6625},
        },
        "preprocess": {"image_shape": [3, 48, 320]},
        "postprocess": {},
        "dictionary": {"builtin": "ppocr_keys_v1.txt", "use_space_char": True},
        "gtc_head": NRTR_GTC_HEAD,
    },
    "PP-OCRv5_server_det": {
        "task": "det",
        "family": "pphgnet_db",
        "forms": {"head": DB_HEAD_FORMS},
        "model": {
            "backbone": {"name": "PPHGNetV2", "det": True},
            "neck": {"name": "LKPAN", "out_channels": 256, "mode": "large", "intracl": True},
            "head": {"name": "PFHeadLocal", "k": 50, "mode": "large", "output": "mean"},
        },
        "preprocess": {"limit_side_len": 960, "limit_type": "max"},
        "postprocess": DB_POSTPROCESS,
    },
    "PP-OCRv5_server_rec": {
        "task": "rec",
        "family": "svtr_lcnet_multihead",
        "model": {
            "backbone": {"name": "PPHGNetV2", "text_rec": True},
            "neck": SVTR_CTC_NECK,
            "head": {"name": "CTCHead", "num_classes": 18385},
        },
        "preprocess": {"image_shape": [3, 48, 320]},
        "postprocess": {},
        "dictionary": {"use_space_char": True},
        "gtc_head": NRTR_GTC_HEAD,
    },
}
