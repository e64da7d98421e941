"""MobileNetV3 architectures: the v2.0 direction classifier, the v2.0 / PP-OCRv2 / PP-OCRv3
mobile detectors and the v2.0 mobile (CRNN) recognizers.

Settings follow PaddleOCR's training configs (configs/det/ch_ppocr_v2.0/ch_det_mv3_db_v2.0.yml,
configs/det/ch_PP-OCRv2/ch_PP-OCRv2_det_cml.yml and configs/det/ch_PP-OCRv3/ch_PP-OCRv3_det_cml.yml
students, configs/rec/ch_ppocr_v2.0/rec_chinese_lite_train_v2.0.yml and
configs/rec/multi_language/rec_*_lite_train.yml) and were checked against the saved programs:
every detector here trains its backbone with ``disable_se: True`` (the programs hold no SE
weights in the backbone).
"""

from __future__ import annotations

from ptocr.architectures.common import DB_HEAD_FORMS, DB_POSTPROCESS, RNN_NECK_INFERENCE

_DET_BACKBONE = {"name": "MobileNetV3", "model_name": "large", "scale": 0.5, "det": True, "disable_se": True}

ARCHITECTURES: dict[str, dict] = {
    "ch_ppocr_mobile_v2.0_cls": {
        "task": "cls",
        "family": "mobilenetv3_cls",
        "model": {
            "backbone": {"name": "MobileNetV3", "model_name": "small", "scale": 0.35},
            "neck": None,
            "head": {"name": "ClsHead", "num_classes": 2},
        },
        "preprocess": {"image_shape": [3, 48, 192]},
        "postprocess": {"labels": ["0", "180"], "thresh": 0.9},
    },
    # v2.0 mobile det; PP-OCRv2's CML student is the same network (alias below).
    "ch_ppocr_mobile_v2.0_det": {
        "task": "det",
        "family": "mobilenetv3_db",
        "forms": {"head": DB_HEAD_FORMS},
        "model": {
            "backbone": dict(_DET_BACKBONE),
            "neck": {"name": "DBFPN", "out_channels": 96},
            "head": {"name": "DBHead", "k": 50},
        },
        "preprocess": {"limit_side_len": 960, "limit_type": "max"},
        "postprocess": DB_POSTPROCESS,
    },
    # PP-OCRv3 mobile det (CML student): the same backbone with the RSE FPN.
    "ch_PP-OCRv3_det": {
        "task": "det",
        "family": "mobilenetv3_db",
        "forms": {"head": DB_HEAD_FORMS},
        "model": {
            "backbone": dict(_DET_BACKBONE),
            "neck": {"name": "RSEFPN", "out_channels": 96, "shortcut": True},
            "head": {"name": "DBHead", "k": 50},
        },
        "preprocess": {"limit_side_len": 960, "limit_type": "max"},
        "postprocess": DB_POSTPROCESS,
    },
    # CRNN: MobileNetV3 small x0.5 with rec strides, a 2-layer BiLSTM (hidden 48), CTC.
    # The multilingual v2.0 recognizers (en_number, french, german, japan, korean, pu, ru, ...)
    # are this network with another class count: only the dictionary differs.
    "ch_ppocr_mobile_v2.0_rec": {
        "task": "rec",
        "family": "mobilenetv3_crnn",
        "model": {
            "backbone": {
                "name": "MobileNetV3", "model_name": "small", "scale": 0.5,
                "small_stride": [1, 2, 2, 2],
            },
            "neck": {"name": "SequenceEncoder", "encoder_type": "rnn", "hidden_size": 48},
            "head": {"name": "CTCHead", "num_classes": 6625},
        },
        "preprocess": {"image_shape": [3, 32, 320]},
        "postprocess": {},
        "inference": RNN_NECK_INFERENCE,
        "dictionary": {"builtin": "ppocr_keys_v1.txt", "use_space_char": True},
    },
}

ALIASES: dict[str, str] = {
    "ch_PP-OCRv2_det": "ch_ppocr_mobile_v2.0_det",
    "en_PP-OCRv3_det": "ch_PP-OCRv3_det",
    "ml_PP-OCRv3_det": "ch_PP-OCRv3_det",
}
