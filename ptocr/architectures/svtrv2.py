"""SVTRv2 recognizers: PaddleX's ``ch_SVTRv2_rec`` (``configs/rec/SVTRv2/ch_SVTRv2_rec.yml``).

The SVTRv2 backbone under PaddleOCR's MultiHead: its CTC branch (SVTR encoder of 256 channels,
CTC head) is the network; the NRTR branch only guides training. PaddleX releases it as a
Paddle 3 program (converted by graph alignment); its MultiHead names are the PP-OCRv4
recognizers', hence the ``svtr_lcnet_multihead`` table for named (training) sources. The
dictionary is ppocr_keys_v1.txt with the space (6625 classes); the input is 48 pixels high.
"""

from __future__ import annotations

from ptocr.architectures.common import SVTRV2_CTC_NECK, SVTRV2_GTC_HEAD

ARCHITECTURES: dict[str, dict] = {
    "ch_SVTRv2_rec": {
        "task": "rec",
        "family": "svtr_lcnet_multihead",
        "model": {
            "backbone": {
                "name": "SVTRv2",
                "dims": [128, 256, 384],
                "depths": [6, 6, 6],
                "num_heads": [4, 8, 12],
                "mixer": [["Conv"] * 6, ["Conv"] * 2 + ["Global"] * 4, ["Global"] * 6],
                "sub_k": [[2, 1], [2, 1]],
            },
            "neck": SVTRV2_CTC_NECK,
            "head": {"name": "CTCHead", "num_classes": 6625},
        },
        "preprocess": {"image_shape": [3, 48, 320]},
        "postprocess": {},
        "dictionary": {"builtin": "ppocr_keys_v1.txt", "use_space_char": True},
        "gtc_head": SVTRV2_GTC_HEAD,
    },
}
