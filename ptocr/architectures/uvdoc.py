"""UVDoc: PaddleOCR 3.x's document unwarping model (PaddleX ``UVDoc``, ``use_doc_unwarping=True``).

Released by PaddleX as a Paddle 3 program (converted by graph alignment) and by PaddlePaddle on
the Hugging Face Hub in transformers' layout (``UVDoc_safetensors``, ptocr's own names). Its
pre-processing is PaddleX's: the BGR page scaled to [0, 1] (``Normalize(mean=0, std=1,
scale=1/255)``), at its own size (the network resamples it); the post-processing samples the
page through the predicted mesh and scales back to 0-255 (``ptocr.postprocess.unwarp``).
"""

from __future__ import annotations

ARCHITECTURES: dict[str, dict] = {
    "UVDoc": {
        "task": "unwarp",
        "family": "uvdoc",
        "model": {
            "backbone": {"name": "UVDocBackbone"},
            "neck": None,
            "head": {"name": "UVDocHead"},
        },
        "preprocess": {},
        "postprocess": {},
    },
}
