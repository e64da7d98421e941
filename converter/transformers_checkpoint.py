"""transformers checkpoints (``config.json`` + ``model.safetensors``) <-> ptocr state dicts, for
the model types of ``converter.tables.transformers_layout``.

``to_ptocr`` turns a transformers state dict into ptocr's fused form (the form PaddleOCR's
inference programs hold), Linear weights in Paddle's [in, out] layout as every reader hands
them to the mapping; ``to_transformers`` does the reverse from a fused ptocr state dict.
``transformers_config`` writes the ``config.json`` transformers builds the same network from.
numpy only: no transformers (nor torch) is needed to read or write these files.
"""

from __future__ import annotations

import re
import numpy as np

from converter.errors import MappingError
from converter.tables.transformers_layout import BN, LAYOUTS, WB, Group, Layout
from ptocr.models.backbones.pplcnetv4 import DET_STAGES, NET_CONFIG_DET, NET_CONFIG_REC, REC_STAGES
from ptocr.predictors import model_name_of

BN_EPS = 1e-5  # PaddleOCR's and transformers' BatchNorm2d default
# A running variance whose float32 sum with BN_EPS is 1: an identity batch norm (scale 1) that
# only adds its bias, which is how a folded conv's bias is written where transformers keeps a norm.
_UNIT_VAR = np.float32(1.0 - BN_EPS)
# A dense kernel is read as depthwise x pointwise only when its rank-one slices are that to
# float32 precision (relative residual).
_RANK_ONE_TOL = 1e-5
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _keys(group: Group, side: str) -> dict[str, str]:
    """Key templates of ``group`` on ``side`` ("ptocr" or "tf"), by role."""
    if group.kind in ("same", "linear"):
        prefix = group.ptocr if side == "ptocr" else group.tf[0]
        return {p: f"{prefix}.{p}" for p in group.params}
    if group.kind == "fold_bn":
        if side == "ptocr":
            return {"weight": f"{group.ptocr}.weight", "bias": f"{group.ptocr}.bias"}
        conv, bn = group.tf
        keys = {"weight": f"{conv}.weight", **{f"bn.{p}": f"{bn}.{p}" for p in BN}}
        if group.conv_bias:
            keys["bias"] = f"{conv}.bias"
        return keys
    if group.kind == "compose":
        if side == "ptocr":
            return {"dw.weight": f"{group.ptocr}.weight", "dw.bias": f"{group.ptocr}.bias",
                    "pw.weight": f"{group.ptocr_pw}.weight", "pw.bias": f"{group.ptocr_pw}.bias"}
        return {p: f"{group.tf[0]}.{p}" for p in WB}
    raise ValueError(f"unknown group kind {group.kind!r}")


def _pattern(template: str) -> re.Pattern:
    parts, last = [], 0
    for m in _PLACEHOLDER.finditer(template):
        parts.append(re.escape(template[last:m.start()]))
        parts.append(f"(?P<{m.group(1)}>\\d+)")
        last = m.end()
    parts.append(re.escape(template[last:]))
    return re.compile("".join(parts) + r"\Z")


def _bindings(templates: dict[str, str], keys) -> list[dict[str, str]]:
    """Every placeholder binding for which the group's first key exists among ``keys``."""
    anchor = _pattern(next(iter(templates.values())))
    found = [m.groupdict() for k in keys if (m := anchor.match(k))]
    return sorted(found, key=lambda b: [int(v) for v in b.values()])


def _convert(source: dict[str, np.ndarray], layout: Layout, src_side: str, what: str) -> dict[str, np.ndarray]:
    dst_side = "tf" if src_side == "ptocr" else "ptocr"
    out: dict[str, np.ndarray] = {}
    used: set[str] = set()
    missing: list[str] = []
    for group in layout.groups:
        src_t, dst_t = _keys(group, src_side), _keys(group, dst_side)
        for binding in _bindings(src_t, source):
            src_keys = {r: t.format(**binding) for r, t in src_t.items()}
            absent = [k for k in src_keys.values() if k not in source]
            if absent:
                missing += absent
                continue
            used.update(src_keys.values())
            values = {r: np.asarray(source[k]) for r, k in src_keys.items()}
            converted = _op(group, dst_side)(values, f"{what}: {src_keys[next(iter(src_keys))]}")
            for role, array in converted.items():
                out[dst_t[role].format(**binding)] = array
    stray = sorted(k for k in source if k not in used and not k.endswith("num_batches_tracked"))
    problems = []
    if missing:
        problems.append(f"{len(missing)} tensors the layout needs are absent: {', '.join(missing[:8])}")
    if stray:
        problems.append(f"{len(stray)} tensors have no place in the {dst_side} layout: {', '.join(stray[:8])}"
                        + (" ..." if len(stray) > 8 else ""))
    if problems:
        error = MappingError(f"{what}: " + "; ".join(problems))
        error.mismatches = len(missing) + len(stray)
        raise error
    return out


def to_ptocr(tensors: dict[str, np.ndarray], model_type: str, what: str = "the checkpoint") -> dict[str, np.ndarray]:
    """A transformers state dict of ``model_type`` as ptocr keys (fused form; Linear [in, out])."""
    return _convert(tensors, _layout(model_type, what), "tf", what)


def to_transformers(state: dict[str, np.ndarray], model_type: str, what: str = "the model", *,
                    unfused_shapes: dict[str, tuple] | None = None) -> dict[str, np.ndarray]:
    """A fused ptocr state dict (torch layouts) as the transformers state dict of ``model_type``.
    ``unfused_shapes``: the keys and shapes of the same network's unfused form, for the model
    types whose rep layers transformers keeps as branches (PP-OCRv5 mobile's PPLCNetV3)."""
    state = _db_head_with_norms(state)
    if unfused_shapes is not None:
        state = _rep_layers_as_branches(state, unfused_shapes)
    return _convert(state, _layout(model_type, what), "ptocr", what)


def _rep_layers_as_branches(state: dict[str, np.ndarray], shapes: dict[str, tuple]) -> dict[str, np.ndarray]:
    """Fused PPLCNetV3 rep layers (``reparam_conv``, ``w``, ``b``, ``activation``) in their
    training structure computing the same function: the fused conv as the first kxk branch with an
    identity norm carrying its bias, every other branch zero (zero kernels; the identity branch's
    norm scale 0), ``lab`` = (w, b), ``act.lab`` = the activation's affine (1, 0 where the layer has
    none). Layers already in branches pass unchanged."""
    state = dict(state)
    for key in [k for k in state if k.endswith(".reparam_conv.weight")]:
        x = key[: -len("reparam_conv.weight")]
        weight, bias = state.pop(key), state.pop(f"{x}reparam_conv.bias")
        lab = (state.pop(f"{x}w"), state.pop(f"{x}b"))
        act = (state.pop(f"{x}activation.scale", np.ones(1, weight.dtype)),
               state.pop(f"{x}activation.bias", np.zeros(1, weight.dtype)))
        for k in [k for k in shapes if k.startswith(x) and not k.endswith("num_batches_tracked")]:
            if k.endswith((".conv.weight",)):
                state[k] = weight if k == f"{x}conv_kxk.0.conv.weight" else np.zeros(shapes[k], weight.dtype)
            elif ".bn." in k or ".identity." in k:
                branch = k[: k.rindex(".")]
                unit = _unfold_bn({"weight": weight, "bias": bias if branch == f"{x}conv_kxk.0.bn"
                                   else np.zeros(shapes[k][0], weight.dtype)}, "")
                value = unit["bn." + k[k.rindex(".") + 1:]]
                state[k] = np.zeros_like(value) if branch == f"{x}identity" and k.endswith(".weight") else value
        state[f"{x}lab.scale"], state[f"{x}lab.bias"] = lab
        state[f"{x}act.lab.scale"], state[f"{x}act.lab.bias"] = act
    return state


def _db_head_with_norms(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A DB head whose batch norms are folded into its convs (``DBHead(fold_bn=True)``, as the
    official PP-OCRv6 ONNX files hold it) in the form with norms (the layout's): ``conv1``'s bias
    becomes an identity ``conv_bn1``'s shift, ``conv_bn2`` an identity norm. The same function."""
    p = "head.binarize."
    if f"{p}conv1.bias" not in state or f"{p}conv_bn1.weight" in state:
        return state
    state = dict(state)
    bias = state.pop(f"{p}conv1.bias")
    for bn, shift in (("conv_bn1", bias), ("conv_bn2", np.zeros_like(state[f"{p}conv2.bias"]))):
        unit = _unfold_bn({"weight": state[f"{p}conv1.weight"], "bias": shift}, "")
        state.update({f"{p}{bn}.{k[3:]}": v for k, v in unit.items() if k.startswith("bn.")})
    return state


def _layout(model_type: str, what: str) -> Layout:
    if model_type not in LAYOUTS:
        raise MappingError(f"{what}: transformers model type {model_type!r} is not one ptocr reads "
                           f"(known: {', '.join(sorted(LAYOUTS))})")
    return LAYOUTS[model_type]


# ---- the named operations: (group kind, destination side) -> values by role -> values by role ----


def _cast(a, like: np.ndarray) -> np.ndarray:
    """``a`` (computed in float64) in the dtype of the tensor it comes from (float32 files;
    float64 where a caller compares in float64)."""
    return np.ascontiguousarray(np.asarray(a, dtype=np.float64).astype(like.dtype))


def _fold_bn(v: dict, what: str) -> dict:
    scale = v["bn.weight"].astype(np.float64) / np.sqrt(v["bn.running_var"].astype(np.float64) + BN_EPS)
    bias = v["bias"].astype(np.float64) if "bias" in v else 0.0
    weight = v["weight"].astype(np.float64) * scale.reshape(-1, *([1] * (v["weight"].ndim - 1)))
    return {"weight": _cast(weight, v["weight"]),
            "bias": _cast(v["bn.bias"].astype(np.float64) + (bias - v["bn.running_mean"].astype(np.float64)) * scale,
                          v["weight"])}


def _unfold_bn(v: dict, what: str) -> dict:
    c, dtype = v["bias"].shape[0], v["weight"].dtype
    unit_var = _UNIT_VAR if dtype == np.float32 else 1.0 - BN_EPS
    return {"weight": v["weight"], "bias": np.zeros(c, dtype),  # kept where transformers' conv has one
            "bn.weight": np.ones(c, dtype), "bn.bias": v["bias"],
            "bn.running_mean": np.zeros(c, dtype), "bn.running_var": np.full(c, unit_var, dtype)}


def _compose(v: dict, what: str) -> dict:
    dw, pw = v["dw.weight"].astype(np.float64), v["pw.weight"].astype(np.float64)[:, :, 0, 0]
    dense = pw[:, :, None, None] * dw[None, :, 0]
    bias = pw @ v["dw.bias"].astype(np.float64) + v["pw.bias"].astype(np.float64)
    return {"weight": _cast(dense, v["dw.weight"]), "bias": _cast(bias, v["dw.weight"])}


def _factorize(v: dict, what: str) -> dict:
    """Each input channel's out x k*k slice of the dense kernel as pointwise column x depthwise
    kernel: the depthwise kernel is the slice's largest row, the column its least-squares
    weights; then the slice must be that product (to float32 precision)."""
    dense = v["weight"].astype(np.float64)  # out x in x k x k
    out_c, in_c, kh, kw = dense.shape
    slices = dense.transpose(1, 0, 2, 3).reshape(in_c, out_c, kh * kw)
    rows = np.linalg.norm(slices, axis=2)  # in x out
    dw = slices[np.arange(in_c), rows.argmax(axis=1)]  # in x k*k
    energy = np.maximum((dw * dw).sum(axis=1), np.finfo(np.float64).tiny)
    pw = np.einsum("cok,ck->co", slices, dw) / energy[:, None]  # in x out
    residual = np.linalg.norm(slices - pw[:, :, None] * dw[:, None, :], axis=(1, 2))
    bad = np.flatnonzero(residual > _RANK_ONE_TOL * np.linalg.norm(rows, axis=1))
    if bad.size:
        raise MappingError(f"{what}: input channel {int(bad[0])} of this dense {kh}x{kw} kernel is not a depthwise "
                           "kernel times a pointwise one, which is all ptocr's RepLKPAN can hold")
    like = v["weight"]
    return {"dw.weight": _cast(dw.reshape(in_c, 1, kh, kw), like), "dw.bias": np.zeros(in_c, like.dtype),
            "pw.weight": _cast(pw.T[:, :, None, None], like), "pw.bias": _cast(v["bias"], like)}


def _same(v: dict, what: str) -> dict:
    return dict(v)


def _linear_to_ptocr(v: dict, what: str) -> dict:
    return {k: np.ascontiguousarray(a.T) if a.ndim == 2 else a for k, a in v.items()}  # Paddle [in, out]


_OPS = {
    ("same", "ptocr"): _same, ("same", "tf"): _same,
    ("linear", "ptocr"): _linear_to_ptocr, ("linear", "tf"): _same,
    ("fold_bn", "ptocr"): _fold_bn,
    ("compose", "ptocr"): _factorize, ("compose", "tf"): _compose,
}


def _unfold_for(group_conv_bias: bool):
    def op(v: dict, what: str) -> dict:
        out = _unfold_bn(v, what)
        if not group_conv_bias:
            del out["bias"]
        return out
    return op


def _op(group: Group, dst_side: str):
    if (group.kind, dst_side) == ("fold_bn", "tf"):
        return _unfold_for(group.conv_bias)
    return _OPS[(group.kind, dst_side)]


# ---- config.json ----

def transformers_config(arch_name: str, model_cfg: dict) -> dict:
    """The ``config.json`` (as a dict) of the transformers model holding ``arch_name``."""
    from converter.tables.transformers_layout import layout_for_architecture

    found = layout_for_architecture(arch_name)
    if found is None:
        raise MappingError(f"{arch_name}: no transformers model type holds this architecture "
                           f"(these do: {', '.join(a for lay in LAYOUTS.values() for a in lay.architectures)})")
    model_type, layout = found
    if model_type == "uvdoc":
        return _uvdoc_config(layout, model_cfg)
    if model_type.startswith("pp_ocrv5_mobile"):
        return _v5_mobile_config(model_type, layout, model_cfg)
    if model_type.startswith("pp_ocrv5_server"):
        return _v5_server_config(arch_name, model_type, layout, model_cfg)
    bb = model_cfg["backbone"]
    det = bool(bb.get("det"))
    size = bb["model_size"]
    net = (NET_CONFIG_DET if det else NET_CONFIG_REC)[size]
    stages = DET_STAGES if det else [s for s in REC_STAGES if net[s]]
    blocks = [[[k, cin, cout, list(s) if isinstance(s, tuple) else s, se] for k, cin, cout, s, se in net[st]]
              for st in stages]
    mid, out = net["stem"]
    simple = not det and net["stem_type"] == "simple"
    backbone = {"model_type": "pp_lcnet_v4", "block_configs": blocks, "stem_channels": [3, mid, out],
                "stem_type": "small" if simple else "large", "hidden_act": "relu", "reduction": 4,
                "out_features": [f"stage{i + 1}" for i in range(len(stages))] if det else [f"stage{len(stages)}"]}
    config = {"model_type": model_type, "architectures": [layout.model_class], "backbone_config": backbone,
              "torch_dtype": "float32"}
    neck, head = model_cfg.get("neck") or {}, model_cfg["head"]
    if model_type == "pp_ocrv6_small_det":
        config.update(neck_out_channels=neck["out_channels"], dilated_kernel_size=neck["dilated_kernel_size"],
                      layer_list_out_channels=[b[-1][2] for b in blocks], kernel_list=[3, 2, 2], reduction=4,
                      interpolate_mode="nearest")
    elif model_type == "pp_ocrv6_medium_det":
        config.update(neck_out_channels=neck["out_channels"], reduce_factor=2, intraclass_block_number=4,
                      intraclass_block_config=INTRACL_CONFIG, scale_factor_list=[1, 2, 4, 8], kernel_list=[3, 2, 2],
                      interpolate_mode="nearest")
    elif model_type == "pp_ocrv6_small_rec":
        config.update(hidden_size=neck["dims"], mlp_ratio=neck["mlp_ratio"], depth=neck.get("depth", 2),
                      head_out_channels=head["num_classes"], conv_kernel_size=[1, neck.get("local_kernel", 7)],
                      num_attention_heads=8, qkv_bias=True, hidden_act="silu", layer_norm_eps=1e-6)
    elif model_type == "pp_ocrv6_tiny_rec":
        config.update(hidden_size=head["mid_channels"], head_out_channels=head["num_classes"])
    return config


def _uvdoc_config(layout: Layout, model_cfg: dict) -> dict:
    """transformers' UVDoc config for ptocr's UVDoc: its layer plan, every bridge an output; the
    sizes read from the network as built (its defaults where the config names none)."""
    from ptocr.models.backbones import uvdoc
    from ptocr.models.build import build_model

    bb = model_cfg["backbone"]
    model = build_model(model_cfg, device="meta")
    if tuple(model.backbone.input_size) != uvdoc.INPUT_SIZE:
        raise MappingError(f"transformers' UVDoc resamples pages to {uvdoc.INPUT_SIZE} (its image processor's "
                           f"size) only, not {tuple(model.backbone.input_size)}")
    bridges = bb.get("bridges") or uvdoc.BRIDGES
    join = model.head.bridge_connector.convolution
    mesh = model.head.out_point_positions2D.conv_down.convolution
    backbone = {"model_type": "uvdoc_backbone", "resnet_head": bb.get("resnet_head") or uvdoc.RESNET_HEAD,
                "resnet_configs": bb.get("resnet_stages") or uvdoc.RESNET_STAGES, "stage_configs": bridges,
                "kernel_size": model.backbone.resnet.resnet_head[0].convolution.kernel_size[0],
                "out_features": [f"stage{i + 1}" for i in range(len(bridges))]}
    return {"model_type": "uvdoc", "architectures": [layout.model_class], "backbone_config": backbone,
            "hidden_act": "prelu", "padding_mode": mesh.padding_mode, "kernel_size": mesh.kernel_size[0],
            "bridge_connector": [join.in_channels // len(bridges), join.out_channels],
            "out_point_positions2D": [[mesh.in_channels, mesh.out_channels], [mesh.out_channels, 2]],
            "torch_dtype": "float32"}


def _meta_backbone(model_cfg: dict):
    """The backbone ``model_cfg`` describes, built without weights (its channels are read)."""
    import torch

    from ptocr.models.registry import get_component

    args = {k: v for k, v in model_cfg["backbone"].items() if k != "name"}
    with torch.device("meta"):
        return get_component("backbone", model_cfg["backbone"]["name"])(**args)


def _v5_mobile_config(model_type: str, layout: Layout, model_cfg: dict) -> dict:
    from ptocr.models.backbones import pplcnetv3 as v3

    bb = model_cfg["backbone"]
    det = bool(bb.get("det"))
    net = v3.NET_CONFIG_DET if det else v3.NET_CONFIG_REC
    blocks = [[[k, cin, cout, list(st) if isinstance(st, tuple) else st, se] for k, cin, cout, st, se in net[s]]
              for s in ("blocks2", "blocks3", "blocks4", "blocks5", "blocks6")]
    backbone = {"model_type": "pp_lcnet_v3", "scale": bb["scale"], "block_configs": blocks, "stem_channels": 16,
                "stem_stride": 2, "reduction": 4, "divisor": 16, "hidden_act": "hardswish",
                "conv_symmetric_num": bb.get("conv_kxk_num", 4),
                "out_features": ["stage2", "stage3", "stage4", "stage5"] if det else ["stage5"]}
    config = {"model_type": model_type, "architectures": [layout.model_class], "backbone_config": backbone,
              "torch_dtype": "float32"}
    neck, head = model_cfg.get("neck") or {}, model_cfg["head"]
    if det:
        config.update(neck_out_channels=neck["out_channels"], reduction=4, interpolate_mode="nearest",
                      kernel_list=[3, 2, 2], layer_list_out_channels=list(_meta_backbone(model_cfg).out_channels))
    else:
        config.update(_svtr_config(neck, head))
    return config


def _svtr_config(neck: dict, head: dict) -> dict:
    """The SVTR encoder (``EncoderWithSVTR``) and CTC head of a PP-OCRv5 recognizer."""
    return dict(hidden_size=neck["hidden_dims"], mlp_ratio=2.0, depth=neck["depth"], qkv_bias=True,
                head_out_channels=head["num_classes"], conv_kernel_size=list(neck["kernel_size"]),
                num_attention_heads=8, hidden_act="silu", layer_norm_eps=1e-6)


def _stride(s):
    """A conv stride as transformers' config takes it: an int, or [h, w] where they differ."""
    h, w = (s, s) if isinstance(s, int) else s
    return h if h == w else [h, w]


def _v5_server_config(arch: str, model_type: str, layout: Layout, model_cfg: dict) -> dict:
    """PPHGNetV2 as transformers' ``hgnet_v2`` backbone, then LKPAN + PFHeadLocal (det) or the
    SVTR encoder + CTC head (rec). What transformers cannot hold is refused by name."""
    from ptocr.models.backbones import hgnet

    bb = model_cfg["backbone"]
    det = bool(bb.get("det"))
    net = _meta_backbone(model_cfg)  # strides and outputs as the network has them
    if bb.get("use_lab"):
        # transformers pads the stem's 2x2 max pool with zeros, Paddle's 'SAME' pool (and ptocr) with
        # -inf: the same only on ReLU outputs (>= 0), not on a learnable affine's (B0-B3).
        raise MappingError(f"{arch}: transformers' hgnet_v2 stem pools over zero padding, which differs from "
                           "PaddleOCR's once learnable affines (use_lab) make the stem's output negative")
    if not det and not net.rec_pool:
        raise MappingError(f"{arch}: transformers' {model_type} ends the backbone with the recognizer's 3x2 pool; "
                           "this PPHGNetV2 has neither det nor text_rec")
    # PPHGNetV2's stage table (as it takes it), the stem's channels and strides as built
    stages = [tuple(s) for s in (bb.get("stage_config") or (hgnet.B4_DET if det else hgnet.B4_REC))]
    stem = [getattr(net.stem, n).conv for n in ("stem1", "stem2a", "stem2b", "stem3", "stem4")]
    column = {name: [s[i] for s in stages] for i, name in enumerate(
        ("in", "mid", "out", "blocks", "downsample", "light", "kernel", "layers", "stride"))}
    backbone = {"model_type": "hgnet_v2", "num_channels": stem[0].in_channels,
                "stem_channels": [stem[0].in_channels, stem[0].out_channels, stem[4].out_channels],
                "stem_strides": [_stride(c.stride) for c in stem], "embedding_size": stem[4].out_channels,
                "stage_in_channels": column["in"], "stage_mid_channels": column["mid"],
                "stage_out_channels": column["out"], "stage_num_blocks": column["blocks"],
                "depths": column["blocks"], "hidden_sizes": column["out"],
                "stage_downsample": column["downsample"],
                "stage_downsample_strides": [_stride(s) for s in column["stride"]],
                "stage_light_block": column["light"], "stage_kernel_size": column["kernel"],
                "stage_numb_of_layers": column["layers"], "hidden_act": "relu",
                "use_learnable_affine_block": False,
                "out_features": [f"stage{i + 1}" for i in net.out_indices] if det else [f"stage{len(stages)}"]}
    config = {"model_type": model_type, "architectures": [layout.model_class], "backbone_config": backbone,
              "torch_dtype": "float32"}
    neck, head = model_cfg.get("neck") or {}, model_cfg["head"]
    if det:
        # transformers' neck is LKPAN "large" (plain 9x9 convs) with its four IntraCL blocks over four
        # backbone levels, its head PFHeadLocal "large" (a local module C/4 wide) returning the mean map.
        import torch

        from ptocr.models.build import build_model

        model = build_model(model_cfg, device="meta")
        held = {"neck": (type(model.neck).__name__, "LKPAN"), "head": (type(model.head).__name__, "PFHeadLocal")}
        if held["neck"][0] == "LKPAN" and held["head"][0] == "PFHeadLocal":
            held.update({"neck mode": ("large" if isinstance(model.neck.inp_conv[0], torch.nn.Conv2d) else "lite",
                                       "large"),
                         "neck intracl": (model.neck.intracl, True), "head mode": (model.head.mode, "large"),
                         "head output": (model.head.output, "mean"), "backbone outputs": (len(net.out_indices), 4)})
        odd = [f"{k} {v!r} (transformers holds {want!r})" for k, (v, want) in held.items() if v != want]
        if odd:
            raise MappingError(f"{arch}: transformers' {model_type} cannot hold this network: {'; '.join(odd)}")
        config.update(neck_out_channels=neck["out_channels"], reduce_factor=2, intraclass_block_number=4,
                      intraclass_block_config=INTRACL_CONFIG, scale_factor=2, scale_factor_list=[1, 2, 4, 8],
                      kernel_list=[3, 2, 2], hidden_act="relu", interpolate_mode="nearest")
    else:
        if neck.get("dims") != neck["hidden_dims"]:
            raise MappingError(f"{arch}: transformers' {model_type} needs the SVTR encoder's dims "
                               f"({neck.get('dims')}) equal to its hidden_dims ({neck['hidden_dims']})")
        config.update(_svtr_config(neck, head))
    return config


# transformers' IntraCL convs as (kernel, stride, padding), PaddleOCR's IntraCLBlock's.
INTRACL_CONFIG = {
    "reduce_channel": [1, 1, 0],
    "return_channel": [1, 1, 0],
    **{f"{name}_{ratio}ratio": [kernel(k), 1, pad(k)]
       for k, ratio in ((7, "long"), (5, "mid"), (3, "short"))
       for name, kernel, pad in (
           ("vertical_long_to_small_conv", lambda k: [k, 1], lambda k: [k // 2, 0]),
           ("horizontal_small_to_long_conv", lambda k: [1, k], lambda k: [0, k // 2]),
           ("symmetric_conv_long", lambda k: k, lambda k: k // 2))},
}


# ---- the folder ----

def write_transformers_folder(state: dict, config: dict, classes: list[str] | None, dst, *,
                              force: bool = False):
    """Write the fused ptocr state dict ``state`` (arrays or tensors) of the converted model
    ``config`` (ptocr's config: architecture, model) as the transformers checkpoint folder
    ``dst``: ``config.json``, ``model.safetensors`` and, for a recognizer, ``classes`` (blank,
    characters, space) as ``preprocessor_config.json``'s ``character_list``. Written in a
    temporary folder beside ``dst`` and renamed into place: nothing half-written is left."""
    import json
    import shutil
    from pathlib import Path

    from safetensors.numpy import save_file

    from converter.errors import ConversionError
    from converter.tables.transformers_layout import layout_for_architecture
    from ptocr.atomic import give_output_permissions, replace_folder, temp_folder_beside

    dst = Path(dst)
    arch = config["architecture"]
    found = layout_for_architecture(arch)
    if found is None:
        raise ConversionError(f"{arch}: no transformers model type holds this architecture")
    model_type, _ = found
    if dst.exists() and not (force and dst.is_dir()):
        raise ConversionError(f"{dst} already exists; pass --force to overwrite it")
    if not dst.parent.is_dir():
        raise ConversionError(f"{dst}: {dst.parent} is a file, not a folder" if dst.parent.exists()
                              else f"{dst}: the folder {dst.parent} does not exist")
    arrays = {k: np.ascontiguousarray(v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v))
              for k, v in state.items() if not k.endswith("num_batches_tracked")}
    unfused = None
    if model_type.startswith("pp_ocrv5_mobile"):  # transformers keeps PPLCNetV3's rep branches
        from ptocr.models.build import build_model

        cfg = {**config["model"], "backbone": {**config["model"]["backbone"], "reparam": False}}
        unfused = {k: tuple(v.shape) for k, v in build_model(cfg, device="meta").state_dict().items()}
    tf_state = to_transformers(arrays, model_type, f"{arch} ({model_name_of(config) or 'converted model'})",
                               unfused_shapes=unfused)
    tf_config = transformers_config(arch, config["model"])
    tmp = temp_folder_beside(dst)
    try:
        save_file(tf_state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        give_output_permissions(tmp / "model.safetensors")  # safetensors writes 0600
        (tmp / "config.json").write_text(json.dumps(tf_config, indent=2) + "\n", encoding="utf-8")
        if classes is not None:
            processor = {"image_processor_type": tf_config["architectures"][0].replace(
                "ForTextRecognition", "ImageProcessor"), "character_list": list(classes)}
            (tmp / "preprocessor_config.json").write_text(json.dumps(processor, ensure_ascii=False, indent=2) + "\n",
                                                          encoding="utf-8")
        replace_folder(tmp, dst)  # an existing dst (force) is renamed away, not removed first
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dst
