"""Regenerate tests/fixtures/ppocrv6_paddlex_names.json: how PaddleX's own converter names every
PP-OCRv6 training tensor in Hugging Face transformers.

    python -m tools.paddlex_v6_names --paddlex /work/venv-pocr3/lib/python3.11/site-packages/paddlex

PaddleX 3.7.2 ships PaddleOCR -> transformers rules for the v6 models
(``modules/base/utils/pdparams2safetensors``: mapping.py's PPOCRV6_* regexes and drop prefixes,
fusion.py's grouping of the rep branches it fuses). This tool loads those two files by path (no
PaddleX import, no install needed), names each ptocr training-form tensor as a PaddleOCR 3.7
training checkpoint does, adds the training-only tensors PaddleX drops, and runs its pipeline
(drop, batch-norm renames, fusion, regexes). Every name must land on a key of the transformers
model (transformers is needed here only) or be dropped; else the tool fails, naming the names.
Kept: stage blocks 0 and 1 only (the rest repeat them), so the fixture stays small. Also kept:
the pre- and post-processing PaddleX writes for each model (inference_meta.py).
tests/test_paddlex_v6_names.py checks ptocr's table chain against the result.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import re
import sys
import types
from pathlib import Path

from converter.tables.transformers_layout import layout_for_architecture
from converter.transformers_checkpoint import transformers_config
from ptocr.architectures import get_architecture
from ptocr.models.build import build_model

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "ppocrv6_paddlex_names.json"
V6 = [f"PP-OCRv6_{tier}_{task}" for task in ("det", "rec") for tier in ("tiny", "small", "medium")]
# (drop prefixes, fusion function, regex rules) by model, as PaddleX names them
PIPELINES = {
    "PP-OCRv6_tiny_det": ("PPOCRV6_DET_DROP_PREFIXES", "fuse_v6_small_det_state_dict", "PPOCRV6_SMALL_DET_MAPPING"),
    "PP-OCRv6_small_det": ("PPOCRV6_DET_DROP_PREFIXES", "fuse_v6_small_det_state_dict", "PPOCRV6_SMALL_DET_MAPPING"),
    "PP-OCRv6_medium_det": ("PPOCRV6_DET_DROP_PREFIXES", "fuse_v6_medium_det_state_dict", "PPOCRV6_MEDIUM_DET_MAPPING"),
    "PP-OCRv6_tiny_rec": ("PPOCRV6_REC_DROP_PREFIXES", "fuse_v6_rec_state_dict", "PPOCRV6_TINY_REC_MAPPING"),
    "PP-OCRv6_small_rec": ("PPOCRV6_REC_DROP_PREFIXES", "fuse_v6_rec_state_dict", "PPOCRV6_SMALL_REC_MAPPING"),
    "PP-OCRv6_medium_rec": ("PPOCRV6_REC_DROP_PREFIXES", "fuse_v6_rec_state_dict", "PPOCRV6_SMALL_REC_MAPPING"),
}
# fusion.py's group patterns: every name one matches is fused with its group into one conv
FUSED_GROUPS = ("_REP_DW_PATTERN", "_REP_DW_PATTERN_REC", "_NECK_INPUT_DW_PATTERN_SMALL", "_NECK_REPARAM_PATTERN_MEDIUM")
# Training-only tensors PaddleX drops, beyond those of ptocr's training form (one name each).
TRAINING_ONLY = {"det": ["head.aux_head.conv1.weight"],
                 "rec": ["head.before_gtc.1.fc.weight", "head.gtc_head.tgt_word_prj.weight"]}
# Spellings PaddleX also accepts for a tensor ptocr names otherwise.
ALIASES = {"det": ["head.binarize.bn1.weight", "head.binarize.bn2._variance"], "rec": []}
# tiny rec's CTC head in PaddleOCR: guide_layer = Sequential(Conv1D, BN, Hardswish, Conv1D, BN), fc1, fc2
TINY_HEAD = {"conv1": "guide_layer.0", "norm1": "guide_layer.1", "conv2": "guide_layer.3", "norm2": "guide_layer.4",
             "fc1": "fc1", "fc": "fc2"}
REPEATED_BLOCK = re.compile(r"^backbone\.blocks(_s)?\d+\.([2-9]|\d\d+)\.")


def load_paddlex(root: Path) -> dict[str, types.ModuleType]:
    """mapping.py, fusion.py and inference_meta.py of ``root``'s pdparams2safetensors, loaded by
    path under a stand-in package tree (inference_meta imports ``paddlex.utils.logging``)."""
    import logging

    parts = ["paddlex_v6_rules", "modules", "base", "utils", "pdparams2safetensors"]
    for depth in range(1, len(parts) + 1):
        package = types.ModuleType(".".join(parts[:depth]))
        package.__path__ = [str(root.joinpath(*parts[1:depth]))]
        sys.modules[package.__name__] = package
    stub = types.ModuleType("paddlex_v6_rules.utils")
    stub.logging = logging.getLogger("paddlex")
    sys.modules[stub.__name__] = stub
    loaded = {}
    for name in ("mapping", "fusion", "inference_meta"):
        spec = importlib.util.spec_from_file_location(f"{'.'.join(parts)}.{name}",
                                                      root.joinpath(*parts[1:], f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        loaded[name] = module
    return loaded


def settings(arch: str, meta) -> dict:
    """The pre- and post-processing PaddleX writes for ``arch``: inference.yml's (the Paddle
    release) and preprocessor_config.json's (the transformers release)."""
    inference = meta.build_inference_meta(arch)
    hf = meta.PREPROCESSOR_CONFIGS[arch]
    if get_architecture(arch)["task"] == "det":
        post = {k: v for k, v in inference["PostProcess"].items() if k != "name"}
        resize = next(op["DetResizeForTest"] for op in inference["PreProcess"]["transform_ops"] if "DetResizeForTest" in op)
        return {"inference.yml": {"postprocess": post, "DetResizeForTest": resize},
                "preprocessor_config.json": {k: hf.get(k) for k in ("limit_side_len", "limit_type", "max_side_limit")}}
    resize = next(op["RecResizeImg"] for op in inference["PreProcess"]["transform_ops"] if "RecResizeImg" in op)
    return {"inference.yml": {"RecResizeImg": resize},
            "preprocessor_config.json": {"size": hf["size"], "max_image_width": hf["max_image_width"]}}


def paddle_name(key: str, task: str, tiny_head: bool) -> str:
    """A ptocr training-form key as PaddleOCR 3.7's training checkpoint names it."""
    name = key.replace(".running_mean", "._mean").replace(".running_var", "._variance")
    if task == "det":
        return name
    if name.startswith("neck."):
        return "head.ctc_encoder." + name[len("neck."):]
    if name.startswith("head."):
        module, _, param = name[len("head."):].partition(".")
        return f"head.ctc_head.{TINY_HEAD[module] if tiny_head else module}.{param}"
    return name


def paddlex_names(arch: str, mapping, fusion) -> dict:
    entry = get_architecture(arch)
    task = entry["task"]
    cfg = copy.deepcopy(entry["model"])
    if task == "det":
        cfg["head"]["with_thresh"] = True  # the training head; PaddleX drops its threshold branch
    model = build_model(cfg)
    tiny_head = hasattr(model.head, "fc1")
    ckpt = {paddle_name(k, task, tiny_head): v.numpy() for k, v in model.state_dict().items()
            if not k.endswith("num_batches_tracked")}
    extra = TRAINING_ONLY[task] + ALIASES[task]
    drop_name, fuse_name, rules_name = PIPELINES[arch]
    drop, fuse, rules = getattr(mapping, drop_name), getattr(fusion, fuse_name), getattr(mapping, rules_name)

    fused, renamed, dropped = {}, {}, []
    groups: dict[tuple, list[str]] = {}
    for name in list(ckpt) + extra:
        if any(name.startswith(p) for p in drop):
            dropped.append(name)
            continue
        bn_name = next(iter(mapping.rename_bn_keys({name: None})))
        match = next((m for p in FUSED_GROUPS if (m := getattr(fusion, p).match(bn_name))), None)
        if match:
            groups.setdefault((match.re.pattern, match.groups()[:-1]), []).append(name)
        else:
            renamed[name] = next(iter(mapping.apply_key_mapping({bn_name: None}, rules)))
    for members in groups.values():
        out = fuse(mapping.rename_bn_keys({n: ckpt[n] for n in members}))
        modules = {k.rsplit(".", 1)[0] for k in out}
        assert len(modules) == 1, (members, out.keys())
        fused.update(dict.fromkeys(members, modules.pop()))

    import transformers

    fused_cfg = copy.deepcopy(entry["model"])
    fused_cfg["backbone"]["reparam"] = True
    _, layout = layout_for_architecture(arch)
    config = transformers.AutoConfig.for_model(**transformers_config(arch, fused_cfg))
    tf_keys = {k for k in getattr(transformers, layout.model_class)(config).state_dict()
               if not k.endswith("num_batches_tracked")}
    tf_modules = {k.rsplit(".", 1)[0] for k in tf_keys}
    unknown = sorted(n for n, t in renamed.items() if t not in tf_keys)
    unknown += sorted(n for n, t in fused.items() if t not in tf_modules)
    if unknown:
        raise SystemExit(f"{arch}: PaddleX maps {len(unknown)} names to no transformers key: {unknown[:10]}")
    missing = tf_keys - set(renamed.values()) - {f"{m}.{p}" for m in fused.values() for p in ("weight", "bias")}
    if missing:
        raise SystemExit(f"{arch}: no PaddleX name fills {sorted(missing)[:10]}")
    keep = lambda n: not REPEATED_BLOCK.match(n)  # noqa: E731
    return {"dropped": sorted(filter(keep, dropped)),
            "renamed": {n: t for n, t in sorted(renamed.items()) if keep(n)},
            "fused": {n: t for n, t in sorted(fused.items()) if keep(n)}}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paddlex", type=Path, required=True, help="the installed paddlex package folder")
    ap.add_argument("--out", type=Path, default=FIXTURE)
    args = ap.parse_args(argv)
    paddlex = load_paddlex(args.paddlex)
    mapping, fusion = paddlex["mapping"], paddlex["fusion"]
    dist = sorted(args.paddlex.parent.glob("paddlex-*.dist-info"))
    version = dist[-1].name[len("paddlex-"):-len(".dist-info")] if dist else "unknown"
    data = {"made_by": "python -m tools.paddlex_v6_names --paddlex PADDLEX_PACKAGE_DIR",
            "paddlex": version,
            "models": {arch: paddlex_names(arch, mapping, fusion) for arch in V6},
            "settings": {arch: settings(arch, paddlex["inference_meta"]) for arch in V6}}
    args.out.write_text(json.dumps(data, indent=0, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{args.out}: {sum(len(v) for m in data['models'].values() for v in m.values())} names")
    print(json.dumps(data["settings"], indent=1))


if __name__ == "__main__":
    main()
