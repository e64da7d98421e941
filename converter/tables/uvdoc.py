"""UVDoc (document unwarping).

PaddleX 3.7 trains and saves UVDoc with transformers' module names
(``image_unwarping/modeling/uvdoc.py``: ``backbone.resnet.resnet_head.0.convolution.weight``,
``head.out_point_positions2D.conv_up.bias``), which ptocr's network keeps; only Paddle's own
parameter names differ: the batch-norm statistics (``SHARED_RULES``) and the PReLU slope,
``_weight`` in Paddle (PaddleX's ``_get_forward_key_rules`` renames the same one). Its official
inference program has no structured names and is placed by graph alignment.
"""

from __future__ import annotations

from converter.mapping import Rule

TABLES: dict[str, tuple[Rule, ...]] = {
    "uvdoc": (
        Rule(r"\.activation\._weight$", ".activation.weight", "Paddle's PReLU names its slope _weight"),
    ),
}
