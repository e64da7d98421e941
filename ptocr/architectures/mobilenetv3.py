"""MobileNetV3 architectures: the v2.0 direction classifier."""

from __future__ import annotations

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
}
