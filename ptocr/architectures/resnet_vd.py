"""ResNet-vd architectures: the PP-OCR v2.0 server det (DB) and rec (CRNN) models, and PaddleX's
PP-OCRv3 server det."""

from __future__ import annotations

from ptocr.architectures.common import DB_HEAD_FORMS, DB_POSTPROCESS, RNN_NECK_INFERENCE

ARCHITECTURES: dict[str, dict] = {
    # configs/det/ch_ppocr_v2.0/ch_det_res18_db_v2.0.yml: ResNet18_vd + DBFPN(256) + DBHead(k=50).
    "ch_ppocr_server_v2.0_det": {
        "task": "det",
        "family": "resnet_vd_db",
        "forms": {"head": DB_HEAD_FORMS},
        "model": {
            "backbone": {"name": "ResNet_vd", "layers": 18},
            "neck": {"name": "DBFPN", "out_channels": 256},
            "head": {"name": "DBHead", "k": 50},
        },
        "preprocess": {"limit_side_len": 960, "limit_type": "max"},
        "postprocess": DB_POSTPROCESS,
    },
    # configs/det/PP-OCRv3/PP-OCRv3_server_det.yml (PaddleX's release; PaddleOCR 2.x had none):
    # ResNet50_vd + LKPAN(256, large, no IntraCL) + DBHead with a 7x7 first conv.
    "PP-OCRv3_server_det": {
        "task": "det",
        "family": "resnet_vd_db",
        "forms": {"head": DB_HEAD_FORMS},
        "model": {
            "backbone": {"name": "ResNet_vd", "layers": 50},
            "neck": {"name": "LKPAN", "out_channels": 256, "mode": "large"},
            "head": {"name": "DBHead", "k": 50, "kernel_list": [7, 2, 2]},
        },
        "preprocess": {"limit_side_len": 960, "limit_type": "max"},
        "postprocess": DB_POSTPROCESS,
    },
    # configs/rec/ch_ppocr_v2.0/rec_chinese_common_train_v2.0.yml: ResNet34_vd (rec layout)
    # + 2-layer BiLSTM (hidden 256) + CTC over ppocr_keys_v1 with space (6625 classes).
    "ch_ppocr_server_v2.0_rec": {
        "task": "rec",
        "family": "resnet_vd_crnn",
        "model": {
            "backbone": {"name": "ResNet_vd_rec", "layers": 34},
            "neck": {"name": "SequenceEncoder", "encoder_type": "rnn", "hidden_size": 256},
            "head": {"name": "CTCHead", "num_classes": 6625},
        },
        "preprocess": {"image_shape": [3, 32, 320]},
        "postprocess": {},
        "inference": RNN_NECK_INFERENCE,
        "dictionary": {"builtin": "ppocr_keys_v1.txt", "use_space_char": True},
    },
}
