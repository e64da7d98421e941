"""PP-LCNet families (PP-OCR orientation classifiers).

Their official releases are Paddle 3 (PIR) programs without structured names, placed by
graph alignment (``converter.alignment``); the table serves training checkpoints
(PaddleX's ``PP-LCNet_*_pretrained.pdparams``, PaddleClas's ``best_model.pdparams``).

PaddleX trains these models with PaddleClas (``paddlex/repo_apis/PaddleClas_api/configs/
PP-LCNet_x0_25_textline_ori.yaml``, ``..._x1_0_textline_ori.yaml``, ``..._x1_0_doc_ori.yaml``:
``Arch: name: PPLCNet_x0_25 / PPLCNet_x1_0, class_num: 2 / 4``), whose ``build_model``
returns the backbone network itself (``ppcls/arch/backbone/legendary_models/pp_lcnet.py``,
``PPLCNetBaseNet``), so a checkpoint's names have no ``backbone.`` / ``head.`` prefix:
``conv1.conv.weight``, ``conv1.bn._mean``, ``blocks2.0.dw_conv.conv.weight``,
``blocks6.0.se.conv1.weight``, ``last_conv.weight`` (1x1 conv, no bias) and the classifier
``fc.weight`` ([in, out]) / ``fc.bias``. Below ``conv1``/``blocksN``/``last_conv`` our
backbone keeps PaddleClas's attribute names, so only the prefixes differ. PaddleClas's
distillation checkpoints (``DistillationModel``: ``Teacher.`` / ``Student.``) are split
by the reader as usual. Names already in PaddleOCR's form (``backbone.`` / ``head.``)
pass unchanged.
"""

from __future__ import annotations

from converter.mapping import Rule

TABLES: dict[str, tuple[Rule, ...]] = {
    "pplcnet_cls": (
        Rule(r"^fc\.", "head.fc.", "PaddleClas PPLCNet: the classifier fc is a top-level layer; ours is ClsHead's"),
        Rule(r"^(conv1|blocks[2-6]|last_conv)\.", r"backbone.\1.",
             "PaddleClas PPLCNet: the network is the model itself (no backbone. prefix)"),
    ),
}
