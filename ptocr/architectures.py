"""The architecture registry: every convertible PP-OCR architecture, as data.

An entry says which registered components make the network (``model``: backbone, neck,
head with their constructor arguments; ``forms``: alternative argument sets a source may
be saved in), which mapping table translates Paddle names
(``family``, see ``converter.tables``), and the pre/post-processing PaddleOCR 2.x uses
with it (its ``tools/infer`` defaults for that generation). Recognizers also name
their default dictionary; the head's class count follows from the dictionary.

New weights for a known architecture (another language, a fine-tune) need no entry
here: the converter takes the class count and dictionary from the source.
"""

from __future__ import annotations

import copy
import difflib

from ptocr.errors import ArchitectureError

TASKS = ("det", "rec", "cls")

# Forms a source may be saved in: groups of alternative arguments; the converter tries
# every combination and keeps the one the source's tensors fill exactly.
# PPLCNetV3 rep layers: training checkpoints hold the unfused branches, inference
# models exported after rep() only ``reparam_conv``.
_REP_FORMS = {
    "fused": {"backbone": {"reparam": True}},
    "unfused": {"backbone": {"reparam": False}},
}
# DB heads: inference programs hold only the probability branch, training checkpoints
# also the threshold branch.
_DB_HEAD_FORMS = {
    "inference head": {"head": {"with_thresh": False}},
    "training head": {"head": {"with_thresh": True}},
}

_DB_POSTPROCESS = {
    "thresh": 0.3,
    "box_thresh": 0.6,
    "max_candidates": 1000,
    "unclip_ratio": 1.5,
    "use_dilation": False,
    "score_mode": "fast",
}

ARCHITECTURES: dict[str, dict] = {
    "ch_PP-OCRv4_det": {
        "task": "det",
        "family": "pplcnetv3_db",
        "forms": {"rep": _REP_FORMS, "head": _DB_HEAD_FORMS},
        "model": {
            "backbone": {"name": "PPLCNetV3", "scale": 0.75, "det": True},
            "neck": {"name": "RSEFPN", "out_channels": 96, "shortcut": True},
            "head": {"name": "DBHead", "k": 50},
        },
        "preprocess": {"limit_side_len": 960, "limit_type": "max"},
        "postprocess": _DB_POSTPROCESS,
    },
    "ch_PP-OCRv4_rec": {
        "task": "rec",
        "family": "svtr_lcnet_multihead",
        "forms": {"rep": _REP_FORMS},
        "model": {
            "backbone": {"name": "PPLCNetV3", "scale": 0.95},
            "neck": {
                "name": "SequenceEncoder",
                "encoder_type": "svtr",
                "dims": 120,
                "depth": 2,
                "hidden_dims": 120,
                "kernel_size": [1, 3],
                "use_guide": True,
            },
            "head": {"name": "CTCHead", "num_classes": 6625},
        },
        "preprocess": {"image_shape": [3, 48, 320]},
        "postprocess": {},
        "dictionary": {"builtin": "ppocr_keys_v1.txt", "use_space_char": True},
    },
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

# Where each task's class count lives in the torch state dict (dim 0 of that tensor).
CLASS_COUNT_KEYS = {"rec": "head.fc.weight", "cls": "head.fc.weight"}


def list_architectures(task: str | None = None) -> list[str]:
    return sorted(n for n, a in ARCHITECTURES.items() if task is None or a["task"] == task)


def get_architecture(name: str) -> dict:
    """A deep copy of the entry (callers may edit it)."""
    try:
        return copy.deepcopy(ARCHITECTURES[name])
    except KeyError:
        close = difflib.get_close_matches(name, ARCHITECTURES, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        known = ", ".join(sorted(ARCHITECTURES))
        raise ArchitectureError(f"unknown architecture {name!r}{hint} (known: {known})") from None
