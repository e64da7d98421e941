"""PP-LCNet architectures: the PP-OCR text-line and document orientation classifiers
(released by PaddleX as Paddle 3 programs; converted by graph alignment)."""

from __future__ import annotations

# The text-line models halve only the height after the stem, keeping an 80 x 160 line's width.
_TEXTLINE_STRIDES = [2, [2, 1], [2, 1], [2, 1], [2, 1]]
_TEXTLINE = {
    "task": "cls",
    "family": "pplcnet_cls",
    # inference.yml: ResizeImage to 160 x 80 (w, h), ImageNet mean/std; labels 0_degree / 180_degree
    "preprocess": {"size": [160, 80]},
    "postprocess": {"labels": ["0", "180"], "thresh": 0.9},
}


def _textline(scale: float) -> dict:
    entry = dict(_TEXTLINE)
    entry["model"] = {
        "backbone": {"name": "PPLCNet", "scale": scale, "stride_list": _TEXTLINE_STRIDES},
        "neck": None,
        "head": {"name": "ClsHead", "num_classes": 2},
    }
    return entry


ARCHITECTURES: dict[str, dict] = {
    "PP-LCNet_x0_25_textline_ori": _textline(0.25),
    "PP-LCNet_x1_0_textline_ori": _textline(1.0),
    "PP-LCNet_x1_0_doc_ori": {
        "task": "cls",
        "family": "pplcnet_cls",
        "model": {
            "backbone": {"name": "PPLCNet", "scale": 1.0, "stride_list": [2, 2, 2, 2, 2]},
            "neck": None,
            "head": {"name": "ClsHead", "num_classes": 4},
        },
        # inference.yml: resize the short side to 256, centre-crop 224, ImageNet mean/std
        "preprocess": {"resize_short": 256, "crop_size": 224},
        "postprocess": {"labels": ["0", "90", "180", "270"], "thresh": 0.9},
    },
}
