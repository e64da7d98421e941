"""Where Hugging Face transformers keeps each tensor of a PP-OCRv6 (or PP-OCRv5 mobile or server)
model, against ptocr's keys.

transformers (5.25.0: ``pp_lcnet_v4``, ``pp_ocrv6_small_det`` (also tiny det), ``pp_ocrv6_medium_det``,
``pp_ocrv6_small_rec`` (also medium rec), ``pp_ocrv6_tiny_rec``) stores the networks in their
inference structure, with three differences from ptocr's fused form (the one PaddleOCR's
``rep()`` leaves), each a named operation of ``converter.transformers_checkpoint``:

* ``fold_bn``: a conv followed by its batch norm, where PaddleOCR folds the pair into one biased
  conv (the stem, the strided depthwise convs, every expand / compress 1x1). Reading folds it;
  writing writes the biased conv's weight and an identity batch norm carrying its bias.
* ``compose``: the medium detector's RepLKPAN large-kernel convs, a depthwise 9x9 then a 1x1 in
  PaddleOCR and ptocr, one dense 9x9 conv in transformers (the product of the two). Writing
  multiplies them out; reading factors each input channel's rank-one slice back (exact for a
  kernel that is such a product, refused for one that is not).
* plain renames (``same``), including the Linear layers (``linear``: the reader hands them
  over in Paddle's [in, out] layout, as every reader does).

UVDoc (``uvdoc``: PaddleOCR 3.x's document unwarping) has transformers' own module names in ptocr.

PP-OCRv5 mobile (``pp_lcnet_v3``, ``pp_ocrv5_mobile_det`` / ``_rec``: ptocr's ch_PP-OCRv4 det / rec)
keeps the rep layers' training branches, ptocr's unfused form. PP-OCRv5 server (``hgnet_v2``,
``pp_ocrv5_server_det``: PPHGNetV2_B4, LKPAN with IntraCL, PFHeadLocal; ``pp_ocrv5_server_rec``:
PPHGNetV2_B4, the SVTR encoder and CTC head; ptocr's PP-OCRv5_server_det / _rec) has no rep layers:
ptocr's one form keeps every batch norm as transformers does, and its groups are renames only.

A table is data: groups of keys with placeholders such as ``{i}`` (an index; ``{s}``, ``{b}``,
``{l}`` for stage, block, layer where the lists nest) that both directions expand. ``TABLES`` is
empty: these are not Paddle-name tables (``converter.tables`` collects every module's ``TABLES``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ptocr.models.backbones.pplcnetv4 import DET_STAGES, REC_STAGES

TABLES: dict = {}

WEIGHT = ("weight",)
WB = ("weight", "bias")
BN = ("weight", "bias", "running_mean", "running_var")


@dataclass(frozen=True)
class Group:
    """One ptocr module and where transformers keeps it.

    ``kind``: "same" (``ptocr`` and ``tf`` prefixes hold the ``params`` as they are), "linear"
    (the same, a Linear layer), "fold_bn" (ptocr's biased conv ``ptocr`` <-> transformers' conv
    ``tf[0]``, with a bias when ``conv_bias``, and batch norm ``tf[1]``), "compose" (ptocr's
    ``ptocr`` depthwise and ``ptocr_pw`` pointwise convs <-> transformers' dense conv ``tf[0]``)."""

    kind: str
    ptocr: str
    tf: tuple[str, ...]
    params: tuple[str, ...] = WB
    conv_bias: bool = False
    ptocr_pw: str = ""


def same(ptocr: str, tf: str, params=WB) -> Group:
    return Group("same", ptocr, (tf,), params)


def linear(ptocr: str, tf: str) -> Group:
    return Group("linear", ptocr, (tf,))


def fold_bn(ptocr: str, tf_conv: str, tf_bn: str, conv_bias: bool = False) -> Group:
    return Group("fold_bn", ptocr, (tf_conv, tf_bn), conv_bias=conv_bias)


def _lcnetv4(ptocr_stages, stem: list[Group]) -> list[Group]:
    """PPLCNetV4's blocks, stage by stage (transformers counts stages from 0)."""
    groups = list(stem)
    for index, stage in enumerate(ptocr_stages):
        p = f"backbone.{stage}.{{b}}"
        t = f"model.backbone.encoder.blocks.{index}.blocks.{{b}}"
        groups += [
            same(f"{p}.token_mixer.rep_dw.reparam_conv", f"{t}.token_conv"),
            fold_bn(f"{p}.token_mixer.dw_conv", f"{t}.token_conv.convolution", f"{t}.token_conv.normalization"),
            same(f"{p}.token_mixer.se.conv1", f"{t}.token_squeeze_excitation.convolutions.0"),
            same(f"{p}.token_mixer.se.conv2", f"{t}.token_squeeze_excitation.convolutions.2"),
            fold_bn(f"{p}.channel_mixer.expand", f"{t}.channel_conv1.convolution", f"{t}.channel_conv1.normalization"),
            fold_bn(f"{p}.channel_mixer.compress", f"{t}.channel_conv2.convolution", f"{t}.channel_conv2.normalization"),
        ]
    return groups


def _branch_stem(ptocr: str) -> list[Group]:
    t = "model.backbone.encoder.convolution"
    return [fold_bn(f"{ptocr}.{n}.conv", f"{t}.{n}.convolution", f"{t}.{n}.normalization")
            for n in ("stem1", "stem2a", "stem2b", "stem3", "stem4")]


# The "simple" stem keeps its batch norms in ptocr too (PaddleOCR never fuses it).
_SIMPLE_STEM = [
    same(f"backbone.conv1.{i}.{part}", f"model.backbone.encoder.convolution.conv{n}.{tf_part}", params)
    for i, n in ((0, 1), (2, 2))
    for part, tf_part, params in (("conv", "convolution", WEIGHT), ("bn", "normalization", BN))
]

_DB_HEAD = [
    same("head.binarize.conv1", "head.conv_down.convolution", WEIGHT),
    same("head.binarize.conv_bn1", "head.conv_down.norm", BN),
    same("head.binarize.conv2", "head.conv_up.convolution"),
    same("head.binarize.conv_bn2", "head.conv_up.norm", BN),
    same("head.binarize.conv3", "head.conv_final"),
]

_REPLKFPN = [
    same("neck.ins_conv.{i}.in_conv", "model.neck.insert_conv.{i}.in_conv", WEIGHT),
    same("neck.ins_conv.{i}.se_block.conv1", "model.neck.insert_conv.{i}.squeeze_excitation_block.conv1"),
    same("neck.ins_conv.{i}.se_block.conv2", "model.neck.insert_conv.{i}.squeeze_excitation_block.conv2"),
    same("neck.inp_conv_dw.{i}.lk_origin", "model.neck.input_conv.{i}.depthwise_convolution"),
    same("neck.inp_conv_pw.{i}", "model.neck.input_conv.{i}.pointwise_convolution", WEIGHT),
    same("neck.inp_conv_se.{i}.conv1", "model.neck.input_conv.{i}.squeeze_excitation_module.conv1"),
    same("neck.inp_conv_se.{i}.conv2", "model.neck.input_conv.{i}.squeeze_excitation_module.conv2"),
]

def _intracl(level: int) -> list[Group]:
    p, t = f"neck.incl{level + 1}", f"model.neck.intraclass_blocks.{level}"
    kernels = {"c_layer": "{k}x{k}", "v_layer": "{k}x1", "q_layer": "1x{k}"}
    groups = [same(f"{p}.conv1x1_reduce_channel", f"{t}.conv_reduce_channel"),
              same(f"{p}.conv1x1_return_channel", f"{t}.conv_final.convolution"),
              same(f"{p}.bn", f"{t}.conv_final.norm", BN)]
    for k, ratio in ((7, "long"), (5, "mid"), (3, "short")):
        for ours, theirs in (("c_layer", "symmetric_conv_long"), ("v_layer", "vertical_long_to_small_conv"),
                             ("q_layer", "horizontal_small_to_long_conv")):
            groups.append(same(f"{p}.{ours}_{kernels[ours].format(k=k)}", f"{t}.{theirs}_{ratio}ratio"))
    return groups


_REPLKPAN = [
    same("neck.ins_conv.{i}", "model.neck.input_channel_adjustment_convolution.{i}", WEIGHT),
    Group("compose", "neck.inp_conv.{i}.dw.lk_origin", ("model.neck.input_feature_projection_convolution.{i}",),
          ptocr_pw="neck.inp_conv.{i}.pw"),
    same("neck.pan_head_conv.{i}", "model.neck.path_aggregation_head_convolution.{i}", WEIGHT),
    Group("compose", "neck.pan_lat_conv.{i}.dw.lk_origin", ("model.neck.path_aggregation_lateral_convolution.{i}",),
          ptocr_pw="neck.pan_lat_conv.{i}.pw"),
    *(g for level in range(4) for g in _intracl(level)),
]

_LIGHTSVTR = [
    same("neck.encoder.skip_conv.conv", "head.encoder.conv_block.0.convolution", WEIGHT),
    same("neck.encoder.skip_conv.norm", "head.encoder.conv_block.0.normalization", BN),
    same("neck.encoder.conv_reduce.conv", "head.encoder.conv_block.1.convolution", WEIGHT),
    same("neck.encoder.conv_reduce.norm", "head.encoder.conv_block.1.normalization", BN),
    same("neck.encoder.local_conv.0", "head.encoder.conv_block.2.convolution", WEIGHT),
    same("neck.encoder.local_conv.1", "head.encoder.conv_block.2.normalization", BN),
    same("neck.encoder.svtr_block.{i}.norm1", "head.encoder.svtr_block.{i}.layer_norm1"),
    linear("neck.encoder.svtr_block.{i}.mixer.qkv", "head.encoder.svtr_block.{i}.self_attn.qkv"),
    linear("neck.encoder.svtr_block.{i}.mixer.proj", "head.encoder.svtr_block.{i}.self_attn.projection"),
    same("neck.encoder.svtr_block.{i}.norm2", "head.encoder.svtr_block.{i}.layer_norm2"),
    linear("neck.encoder.svtr_block.{i}.mlp.fc1", "head.encoder.svtr_block.{i}.mlp.fc1"),
    linear("neck.encoder.svtr_block.{i}.mlp.fc2", "head.encoder.svtr_block.{i}.mlp.fc2"),
    same("neck.encoder.norm", "head.encoder.norm"),
    linear("head.fc", "head.head"),
]

_GUIDE_HEAD = [
    same("head.conv1", "head.conv1", WEIGHT),
    same("head.norm1", "head.norm1", BN),
    same("head.conv2", "head.conv2", WEIGHT),
    same("head.norm2", "head.norm2", BN),
    linear("head.fc1", "head.fc1"),
    linear("head.fc", "head.fc2"),
]


# ---- PP-OCRv5 mobile (PPLCNetV3; ptocr's ch_PP-OCRv4 det / rec): transformers keeps the training
# structure of the rep layers (every branch), which is ptocr's unfused form.

_REP_BRANCHES = [("identity", "identity", BN), ("lab", "lab", ("scale", "bias")), ("act.lab", "act.lab", ("scale", "bias")),
                 ("conv_1x1.conv", "conv_small_symmetric.convolution", WEIGHT),
                 ("conv_1x1.bn", "conv_small_symmetric.normalization", BN),
                 ("conv_kxk.{k}.conv", "conv_symmetric.{k}.convolution", WEIGHT),
                 ("conv_kxk.{k}.bn", "conv_symmetric.{k}.normalization", BN)]


def _lcnetv3(stages: int = 5) -> list[Group]:
    groups = [same("backbone.conv1.conv", "model.backbone.encoder.convolution.convolution", WEIGHT),
              same("backbone.conv1.bn", "model.backbone.encoder.convolution.normalization", BN)]
    for index in range(stages):
        p = f"backbone.blocks{index + 2}.{{b}}"
        t = f"model.backbone.encoder.blocks.{index}.layers.{{b}}"
        for ours, theirs in (("dw_conv", "depthwise_convolution"), ("pw_conv", "pointwise_convolution")):
            groups += [same(f"{p}.{ours}.{a}", f"{t}.{theirs}.{b}", params) for a, b, params in _REP_BRANCHES]
        groups += [same(f"{p}.se.conv1", f"{t}.squeeze_excitation_module.convolutions.0"),
                   same(f"{p}.se.conv2", f"{t}.squeeze_excitation_module.convolutions.2")]
    return groups


_RSEFPN = [
    same("backbone.layer_list.{i}", "model.layer.{i}"),
    same("neck.ins_conv.{i}.in_conv", "model.neck.insert_conv.{i}.in_conv", WEIGHT),
    same("neck.ins_conv.{i}.se_block.conv1", "model.neck.insert_conv.{i}.squeeze_excitation_block.conv1"),
    same("neck.ins_conv.{i}.se_block.conv2", "model.neck.insert_conv.{i}.squeeze_excitation_block.conv2"),
    same("neck.inp_conv.{i}.in_conv", "model.neck.input_conv.{i}.in_conv", WEIGHT),
    same("neck.inp_conv.{i}.se_block.conv1", "model.neck.input_conv.{i}.squeeze_excitation_block.conv1"),
    same("neck.inp_conv.{i}.se_block.conv2", "model.neck.input_conv.{i}.squeeze_excitation_block.conv2"),
]

# EncoderWithSVTR's convs in transformers' order: conv1, conv2, conv3, conv4, conv1x1.
_SVTR = [g for i, name in enumerate(("conv1", "conv2", "conv3", "conv4", "conv1x1"))
         for g in (same(f"neck.encoder.{name}.conv", f"head.encoder.conv_block.{i}.convolution", WEIGHT),
                   same(f"neck.encoder.{name}.norm", f"head.encoder.conv_block.{i}.normalization", BN))] + [
    g for g in _LIGHTSVTR if "svtr_block" in g.ptocr or g.ptocr in ("neck.encoder.norm", "head.fc")]


# ---- PP-OCRv5 server (PPHGNetV2_B4): no rep layers and no folded norms in ptocr's network (its only
# form: every conv keeps its batch norm, as PaddleOCR's programs and transformers' hgnet_v2 do), so
# every group is a rename.

def _conv_bn(ptocr: str, tf: str) -> list[Group]:
    """A ConvBNAct: bias-free conv and its batch norm. (No learnable affines: B4 has none, and
    transformers' stem could not hold a network with them, see ``transformers_config``.)"""
    return [same(f"{ptocr}.conv", f"{tf}.convolution", WEIGHT), same(f"{ptocr}.bn", f"{tf}.normalization", BN)]


def _hgnetv2() -> list[Group]:
    t = "model.backbone"
    groups = [g for n in ("stem1", "stem2a", "stem2b", "stem3", "stem4")
              for g in _conv_bn(f"backbone.stem.{n}", f"{t}.embedder.{n}")]
    p, s = "backbone.stages.{s}", f"{t}.encoder.stages.{{s}}"
    groups += _conv_bn(f"{p}.downsample", f"{s}.downsample")
    block, tf_block = f"{p}.blocks.{{b}}", f"{s}.blocks.{{b}}"
    groups += _conv_bn(f"{block}.layers.{{l}}", f"{tf_block}.layers.{{l}}")  # plain layers
    for half in ("conv1", "conv2"):  # light layers
        groups += _conv_bn(f"{block}.layers.{{l}}.{half}", f"{tf_block}.layers.{{l}}.{half}")
    for i, ours in enumerate(("aggregation_squeeze_conv", "aggregation_excitation_conv")):
        groups += _conv_bn(f"{block}.{ours}", f"{tf_block}.aggregation.{i}")
    return groups


# LKPAN ("large": plain 9x9 convs) with its IntraCL blocks, and PFHeadLocal (a DB head whose map
# a local module refines).
_LKPAN = [
    same("neck.ins_conv.{i}", "model.neck.input_channel_adjustment_convolution.{i}", WEIGHT),
    same("neck.inp_conv.{i}", "model.neck.input_feature_projection_convolution.{i}", WEIGHT),
    same("neck.pan_head_conv.{i}", "model.neck.path_aggregation_head_convolution.{i}", WEIGHT),
    same("neck.pan_lat_conv.{i}", "model.neck.path_aggregation_lateral_convolution.{i}", WEIGHT),
    *(g for level in range(4) for g in _intracl(level)),
]

_PFHEAD_LOCAL = [
    *(Group(g.kind, g.ptocr, (g.tf[0].replace("head.", "head.binarize_head.", 1),), g.params) for g in _DB_HEAD),
    same("head.cbn_layer.last_3.conv", "head.local_refinement_module.convolution_backbone.convolution", WEIGHT),
    same("head.cbn_layer.last_3.bn", "head.local_refinement_module.convolution_backbone.norm", BN),
    same("head.cbn_layer.last_1", "head.local_refinement_module.convolution_final"),
]


def _conv_norm(prefix: str, conv_params=WEIGHT) -> list[Group]:
    return [same(f"{prefix}.convolution", f"{prefix}.convolution", conv_params),
            same(f"{prefix}.normalization", f"{prefix}.normalization", BN)]


# UVDoc: ptocr keeps transformers' (and PaddleX 3.7's) module names, so every group is itself.
_UVDOC = [
    *_conv_norm("backbone.resnet.resnet_head.{i}"),
    *(g for part in ("conv_down", "conv_start", "conv_final")
      for g in _conv_norm(f"backbone.resnet.resnet_down.{{s}}.layers.{{b}}.{part}", WB)),
    *_conv_norm("backbone.bridge.bridge.{i}.blocks.{j}"),
    *_conv_norm("head.bridge_connector"),
    *_conv_norm("head.out_point_positions2D.conv_down"),
    same("head.out_point_positions2D.conv_down.activation", "head.out_point_positions2D.conv_down.activation", WEIGHT),
    same("head.out_point_positions2D.conv_up", "head.out_point_positions2D.conv_up"),
]


@dataclass(frozen=True)
class Layout:
    """A transformers model type: its classes, the ptocr architectures it holds, its groups."""

    model_class: str
    architectures: tuple[str, ...]
    groups: tuple[Group, ...]


LAYOUTS: dict[str, Layout] = {
    "pp_ocrv6_small_det": Layout(
        "PPOCRV6SmallDetForObjectDetection", ("PP-OCRv6_tiny_det", "PP-OCRv6_small_det"),
        tuple(_lcnetv4(DET_STAGES, _branch_stem("backbone.stem")) + _REPLKFPN + _DB_HEAD)),
    "pp_ocrv6_medium_det": Layout(
        "PPOCRV6MediumDetForObjectDetection", ("PP-OCRv6_medium_det",),
        tuple(_lcnetv4(DET_STAGES, _branch_stem("backbone.stem")) + _REPLKPAN + _DB_HEAD)),
    "pp_ocrv6_small_rec": Layout(
        "PPOCRV6SmallRecForTextRecognition", ("PP-OCRv6_small_rec", "PP-OCRv6_medium_rec"),
        tuple(_lcnetv4(REC_STAGES[:4], _branch_stem("backbone.conv1")) + _LIGHTSVTR)),
    "pp_ocrv6_tiny_rec": Layout(
        "PPOCRV6TinyRecForTextRecognition", ("PP-OCRv6_tiny_rec",),
        tuple(_lcnetv4(REC_STAGES[:4], _SIMPLE_STEM) + _GUIDE_HEAD)),
    "pp_ocrv5_mobile_det": Layout(
        "PPOCRV5MobileDetForObjectDetection", ("ch_PP-OCRv4_det",), tuple(_lcnetv3() + _RSEFPN + _DB_HEAD)),
    "pp_ocrv5_mobile_rec": Layout(
        "PPOCRV5MobileRecForTextRecognition", ("ch_PP-OCRv4_rec",), tuple(_lcnetv3() + _SVTR)),
    "pp_ocrv5_server_det": Layout(
        "PPOCRV5ServerDetForObjectDetection", ("PP-OCRv5_server_det",), tuple(_hgnetv2() + _LKPAN + _PFHEAD_LOCAL)),
    "pp_ocrv5_server_rec": Layout(
        "PPOCRV5ServerRecForTextRecognition", ("PP-OCRv5_server_rec",), tuple(_hgnetv2() + _SVTR)),
    "uvdoc": Layout("UVDocModel", ("UVDoc",), tuple(_UVDOC)),
}


def layout_for_architecture(arch: str) -> tuple[str, Layout] | None:
    """(model type, layout) of the transformers class that holds ``arch`` (or an architecture it
    is an alias of: PP-OCRv5_mobile_det is ch_PP-OCRv4_det's network), or None."""
    from ptocr.architectures import ALIASES

    arch = ALIASES.get(arch, arch)
    return next(((t, lay) for t, lay in LAYOUTS.items() if arch in lay.architectures), None)
