"""PPLCNetV4 architectures: PP-OCRv6 tiny, small and medium detectors and recognizers
(PaddleOCR 3.7, ``configs/det/PP-OCRv6/*.yml`` and ``configs/rec/PP-OCRv6/*.yml``).

Detectors: PPLCNetV4 (det) + RepLKFPN (tiny: 64 channels, 5x5 depthwise; small: 96, 7x7) or
RepLKPAN with IntraCL (medium: 256) + DBHead. Recognizers: PPLCNetV4 (rec) + the CTC branch of
MultiHead: for small and medium the LightSVTR encoder (120 / 192 dims, MLP ratio 2 / 4, 1x7
local conv) and a one-Linear CTC head; for tiny no encoder and the CTC head with its guide
layer (mid 80). The NRTR branch and the detectors' auxiliary deep-supervision heads only train.

DB post-processing: every tier keeps the v4/v5 values (thresh 0.3, box_thresh 0.6, 1000
candidates, unclip 1.5), as each tier's PaddleOCR config and PaddleX 3.7.2's inference.yml for the
released v6 detectors set them.
"""

from __future__ import annotations

from ptocr.architectures.common import DB_HEAD_FORMS, DB_POSTPROCESS

# Training checkpoints hold the unfused branches, inference programs the fused convs.
_DET_FORMS = {
    "fused": {"backbone": {"reparam": True}, "neck": {"reparam": True}},
    "unfused": {"backbone": {"reparam": False}, "neck": {"reparam": False}},
}
_REC_FORMS = {
    "fused": {"backbone": {"reparam": True}},
    "unfused": {"backbone": {"reparam": False}},
}
# The released detector programs (the official ONNX files) hold the DB head's batch norms
# folded into its convs: conv1 with a bias, no conv_bn1 / conv_bn2.
_HEAD_FORMS = {**DB_HEAD_FORMS,
               "inference head, batch norms folded": {"head": {"with_thresh": False, "fold_bn": True}}}
_DET_PREPROCESS = {"limit_side_len": 960, "limit_type": "max"}
_REC_PREPROCESS = {"image_shape": [3, 48, 320]}
_V6_DICT = {"builtin": "ppocrv6_dict.txt", "use_space_char": True}  # 18708 characters


def _det(size: str, neck: dict) -> dict:
    return {
        "task": "det",
        "family": "pplcnetv4_db",
        "forms": {"rep": _DET_FORMS, "head": _HEAD_FORMS},
        "model": {
            "backbone": {"name": "PPLCNetV4", "model_size": size, "det": True},
            "neck": neck,
            "head": {"name": "DBHead", "k": 50},
        },
        "preprocess": _DET_PREPROCESS,
        "postprocess": DB_POSTPROCESS,
    }


def _rec(size: str, neck: dict | None, head: dict, dictionary: dict) -> dict:
    return {
        "task": "rec",
        "family": "pplcnetv4_rec",
        "forms": {"rep": _REC_FORMS},
        "model": {"backbone": {"name": "PPLCNetV4", "model_size": size}, "neck": neck, "head": head},
        "preprocess": _REC_PREPROCESS,
        "postprocess": {},
        "dictionary": dictionary,
    }


def _lightsvtr(dims: int, mlp_ratio: float) -> dict:
    return {"name": "LightSVTRSequenceEncoder", "dims": dims, "depth": 2, "mlp_ratio": mlp_ratio,
            "local_kernel": 7}


ARCHITECTURES: dict[str, dict] = {
    "PP-OCRv6_tiny_det": _det(
        "tiny", {"name": "RepLKFPN", "out_channels": 64, "dilated_kernel_size": 5, "shortcut": True}),
    "PP-OCRv6_small_det": _det(
        "small", {"name": "RepLKFPN", "out_channels": 96, "dilated_kernel_size": 7, "shortcut": True}),
    "PP-OCRv6_medium_det": _det(
        "medium", {"name": "RepLKPAN", "out_channels": 256, "intracl": True}),
    "PP-OCRv6_tiny_rec": _rec(
        "tiny", {"name": "SequenceEncoder", "encoder_type": "reshape"},
        {"name": "CTCGuideHead", "num_classes": 6906, "mid_channels": 80},
        {"builtin": "ppocrv6_tiny_dict.txt", "use_space_char": True}),  # 6904 characters
    "PP-OCRv6_small_rec": _rec(
        "small", _lightsvtr(120, 2.0), {"name": "CTCHead", "num_classes": 18710}, _V6_DICT),
    "PP-OCRv6_medium_rec": _rec(
        "medium", _lightsvtr(192, 4.0), {"name": "CTCHead", "num_classes": 18710}, _V6_DICT),
}
