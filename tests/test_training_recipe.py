"""ptocr.training against the real Paddle: LR schedules, optimizer updates with ParamAttr, clipping;
and the per-architecture parameter attributes on every registered architecture."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import ptocr
from ptocr.errors import PtocrError
from ptocr.training import create_optimizer, paddle_lr_schedule, paddleclas_lr_schedule, param_groups

ADAM_COSINE = {"name": "Adam", "beta1": 0.9, "beta2": 0.999,
               "lr": {"name": "Cosine", "learning_rate": 1e-3, "warmup_epoch": 1},
               "regularizer": {"name": "L2", "factor": 3e-5}}
# PaddleClas's Optimizer section, as PaddleX's PP-LCNet_*_ori.yaml write it (coeff, not factor).
CLS_MOMENTUM = {"name": "Momentum", "momentum": 0.9,
                "lr": {"name": "Cosine", "learning_rate": 0.8, "warmup_epoch": 5},
                "regularizer": {"name": "L2", "coeff": 3e-5}}
REFUSED = {"UVDoc"}   # not trained by PaddleOCR
V6 = sorted(a for a in ptocr.list_architectures() if a.startswith("PP-OCRv6"))


def _section_for(arch):
    return CLS_MOMENTUM if arch.startswith("PP-LCNet") else ADAM_COSINE


# --------------------------------------------------------------------------------------------
# Parameter attributes per architecture: facts read from PaddleOCR's modeling sources.
# --------------------------------------------------------------------------------------------
def _attrs_by_name(net, config=ADAM_COSINE, architecture=None):
    """{parameter name: (lr_scale, weight_decay)}."""
    out = {}
    for group in param_groups(net, config, architecture):
        for name in group["param_names"]:
            out[name] = (group["lr_scale"], group["weight_decay"])
    return out


@pytest.mark.filterwarnings("ignore:the parameter attributes of:UserWarning")
@pytest.mark.parametrize("arch", sorted(set(ptocr.list_architectures()) - REFUSED))
def test_every_trainable_parameter_gets_one_group(arch):
    net = ptocr.create_model(arch)
    attrs = _attrs_by_name(net, _section_for(arch))
    assert sorted(attrs) == sorted(n for n, p in net.named_parameters() if p.requires_grad)


@pytest.mark.parametrize("arch", sorted(REFUSED))
def test_architectures_without_rules_are_refused_by_component(arch):
    with pytest.raises(PtocrError, match="no PaddleOCR parameter-attribute rules"):
        param_groups(ptocr.create_model(arch), ADAM_COSINE)


def _expected_pplcnetv3(name, lr_mults, lab_lr, fc_decay, l2):
    """rec_lcnetv3.py written out by hand: stage of conv1/blocksK, bn in ConvBNLayer decay 0,
    the rep identity BN and LAB keep the global L2, LAB at lab_lr of the stage."""
    if name.startswith("head.fc"):          # CTCHead; DBHead's convs are plain
        return 1.0, fc_decay
    if not name.startswith("backbone.") or ".layer_list." in name:
        return 1.0, l2
    part = name.split(".")[1]
    stage = 0 if part == "conv1" else int(part[-1]) - 1
    if ".lab." in name:
        return lr_mults[stage] * lab_lr, l2
    is_convbn_bn = ".bn." in name
    return lr_mults[stage], 0.0 if is_convbn_bn else l2


@pytest.mark.parametrize("arch", ["ch_PP-OCRv4_rec", "ch_PP-OCRv4_det"])
def test_pplcnetv3_stage_multipliers_lab_and_bn_decay(arch):
    net = ptocr.create_model(arch)
    mults = [0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
    arch_cfg = {"Backbone": {"name": "PPLCNetV3", "lr_mult_list": mults, "lab_lr": 0.25},
                "Head": {"name": "CTCHead", "fc_decay": 2e-5}}
    got = _attrs_by_name(net, architecture=arch_cfg)
    assert any(".identity." in n for n in got) and any(".lab." in n for n in got)
    for name, attr in got.items():
        expected = _expected_pplcnetv3(name, mults, 0.25, 2e-5, 3e-5)
        assert attr == pytest.approx(expected), name


def test_pphgnetv2_stages_and_bn_decay():
    net = ptocr.create_model("PP-OCRv5_server_rec")
    mults = [0.1, 0.2, 0.3, 0.4, 0.5]
    got = _attrs_by_name(net, architecture={"Backbone": {"lr_mult_list": mults}})
    for name, (lr, decay) in got.items():
        if name.startswith("backbone.stem."):
            assert lr == pytest.approx(0.1), name
        elif name.startswith("backbone.stages."):
            assert lr == pytest.approx(mults[int(name.split(".")[2]) + 1]), name
        assert decay == (0.0 if ".bn." in name else 0.0004 if name.startswith("head.") else 3e-5)


@pytest.mark.parametrize("arch, bn_marker", [
    ("ch_PP-OCRv3_rec", "._batch_norm."),        # MobileNetV1Enhance
    ("ch_PP-OCRv4_server_rec", ".bn."),          # PPHGNet
])
def test_backbones_with_batchnorm_l2decay_zero(arch, bn_marker):
    for name, (lr, decay) in _attrs_by_name(ptocr.create_model(arch)).items():
        assert lr == 1.0
        if name.startswith("backbone."):
            assert decay == (0.0 if bn_marker in name else 3e-5), name


@pytest.mark.parametrize("arch", ["ch_ppocr_mobile_v2.0_det", "ch_ppocr_mobile_v2.0_cls",
                                  "ch_ppocr_server_v2.0_det", "ch_PP-OCRv3_det"])
def test_plain_paramattr_architectures_take_the_optimizer_l2(arch):
    assert set(_attrs_by_name(ptocr.create_model(arch)).values()) == {(1.0, 3e-5)}


def test_config_file_supplies_architecture_fc_decay(tmp_path):
    yml = tmp_path / "rec.yml"
    yml.write_text("""
Optimizer:
  name: Adam
  beta1: 0.9
  beta2: 0.999
  lr: {name: Cosine, learning_rate: 0.0005, warmup_epoch: 5}
  regularizer: {name: L2, factor: 3.0e-05}
Architecture:
  Backbone: {name: PPLCNetV3, scale: 0.95}
  Head:
    name: MultiHead
    head_list:
      - CTCHead:
          Neck: {name: svtr, dims: 120}
          Head: {fc_decay: 0.00001}
      - NRTRHead: {nrtr_dim: 384}
""")
    recipe = create_optimizer(ptocr.create_model("ch_PP-OCRv4_rec"), str(yml), 75, 4)
    heads = [g for g in recipe.optimizer.param_groups if g["param_names"][0].startswith("head.")]
    assert [g["weight_decay"] for g in heads] == [1e-5]
    assert recipe.lr_at(0) == 0.0 and recipe.lr_at(20) == pytest.approx(5e-4)


# --------------------------------------------------------------------------------------------
# PP-OCRv6: rec_lcnetv4.py, db_fpn.py (RepLKFPN / RepLKPAN), rnn.py (lightsvtr), rec_ctc_head.py.
# --------------------------------------------------------------------------------------------
V6_MULTS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]


def _expected_v6(name, fc_decay, l2):
    """Written out from rec_lcnetv4.py: the recognizer's "branch" stem (conv1.stem*) and SE
    convs take lr_mult_list[stage], the stem's batch norms L2Decay(0.0) too; the detector's stem
    batch norms L2Decay(0.0) at lr 1, its lr_mult_list unread; Conv2D_BN / RepDWConv / the "simple"
    stem plain. Necks plain; the CTC head's Linears at fc_decay."""
    parts = name.split(".")
    if parts[0] == "head":
        return (1.0, fc_decay) if parts[1] in ("fc", "fc1") else (1.0, l2)
    if parts[0] != "backbone":
        return 1.0, l2
    is_bn = ".bn." in name
    if parts[1] == "stem":                                    # detector
        return 1.0, 0.0 if is_bn else l2
    if parts[1] == "conv1" and parts[2].startswith("stem"):  # recognizer, branch stem
        return V6_MULTS[0], 0.0 if is_bn else l2
    if parts[1] in ("blocks2", "blocks3", "blocks4", "blocks5", "blocks6") and ".se." in name:
        return V6_MULTS[int(parts[1][-1]) - 1], l2
    return 1.0, l2


@pytest.mark.filterwarnings("ignore:the parameter attributes of:UserWarning")
@pytest.mark.parametrize("arch", V6)
def test_ppocrv6_attributes(arch):
    net = ptocr.create_model(arch)
    arch_cfg = {"Backbone": {"name": "PPLCNetV4", "lr_mult_list": V6_MULTS},
                "Head": {"name": "MultiHead", "head_list": [
                    {"CTCHead": {"Neck": {"name": "reshape"}, "Head": {"fc_decay": 2e-5}}}]}}
    got = _attrs_by_name(net, architecture=arch_cfg)
    assert any(".se." in n for n in got)
    expected = {n: _expected_v6(n, 2e-5, 3e-5) for n in got}
    assert got == pytest.approx(expected)
    if arch.endswith("_det"):
        assert {v for v in got.values()} == {(1.0, 3e-5), (1.0, 0.0)}   # lr_mult_list unread
    else:
        assert {v[0] for v in got.values()} >= {0.2, 0.4, 0.5}           # SE in blocks2/4/5


@pytest.mark.filterwarnings("ignore:the parameter attributes of:UserWarning")
@pytest.mark.parametrize("arch, yml, head_decays", [
    # configs/rec/PP-OCRv6/PP-OCRv6_tiny_rec.yml: Optimizer and Architecture as written there.
    ("PP-OCRv6_tiny_rec", """
Optimizer:
  name: Adam
  beta1: 0.9
  beta2: 0.999
  lr:
    name: Cosine
    learning_rate: 0.001
    warmup_epoch: 5
  regularizer:
    name: L2
    factor: 3.0e-05
Architecture:
  model_type: rec
  algorithm: SVTR_LCNet
  Transform:
  Backbone:
    name: PPLCNetV4
    model_size: tiny
  Head:
    name: MultiHead
    head_list:
      - CTCHead:
          Neck:
            name: reshape
          Head:
            mid_channels: 80
            use_guide: true
            fc_decay: 0.00001
      - NRTRHead:
          nrtr_dim: 384
          max_text_length: 25
""", {"head.fc1.weight": 1e-5, "head.fc.bias": 1e-5, "head.norm1.weight": 3e-5,
      "head.conv2.weight": 3e-5}),
    # configs/det/PP-OCRv6/PP-OCRv6_small_det.yml.
    ("PP-OCRv6_small_det", """
Architecture:
  model_type: det
  algorithm: DB
  Transform: null
  Backbone:
    name: PPLCNetV4
    det: true
    model_size: small
  Neck:
    name: RepLKFPN
    out_channels: 96
    dilated_kernel_size: 7
    shortcut: true
  Head:
    name: DBHead
    k: 50
    fix_nan: true
    aux_in_channels: 96
Optimizer:
  name: Adam
  beta1: 0.9
  beta2: 0.999
  lr:
    name: Cosine
    learning_rate: 0.001 #(8*8c)
    warmup_epoch: 2
  regularizer:
    name: L2
    factor: 1.0e-05
""", {"head.binarize.conv_bn1.weight": 1e-5, "neck.inp_conv_dw.0.origin_bn.bias": 1e-5}),
])
def test_ppocrv6_config_files(tmp_path, arch, yml, head_decays):
    path = tmp_path / "v6.yml"
    path.write_text(yml)
    recipe = create_optimizer(ptocr.create_model(arch), str(path), 10, 4)
    attrs = {n: (g["lr_scale"], g["weight_decay"]) for g in recipe.optimizer.param_groups
             for n in g["param_names"]}
    l2 = 3e-5 if arch.endswith("_rec") else 1e-5
    for name, decay in head_decays.items():
        assert attrs[name] == (1.0, pytest.approx(decay)), name
    stem_bn = "backbone.conv1.0.bn.weight" if arch == "PP-OCRv6_tiny_rec" else "backbone.stem.stem1.bn.weight"
    # tiny's "simple" stem is Conv2D_BN (plain); the branch stem's ConvBNAct has L2Decay(0.0)
    assert attrs[stem_bn] == (1.0, l2 if arch == "PP-OCRv6_tiny_rec" else 0.0)
    warmup = 5 * 4 if arch.endswith("_rec") else 2 * 4
    assert recipe.lr_at(warmup // 2) == pytest.approx(0.0005) and recipe.lr_at(warmup) == pytest.approx(1e-3)


# --------------------------------------------------------------------------------------------
# PP-LCNet classifiers: PaddleClas's pp_lcnet.py and Optimizer dialect.
# --------------------------------------------------------------------------------------------
def test_pplcnet_paddleclas_stages_and_bn_decay():
    """pp_lcnet.py: ConvBNLayer conv and bn and SEModule at lr_mult_list[stage] (conv1 stage 0,
    blocksK stage K-1), bn L2Decay(0.0); last_conv and fc plain."""
    net = ptocr.create_model("PP-LCNet_x1_0_doc_ori")
    mults = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    got = _attrs_by_name(net, CLS_MOMENTUM, {"name": "PPLCNet_x1_0", "lr_mult_list": str(mults)})
    assert any(".se." in n for n in got)
    for name, attr in got.items():
        part = name.split(".")[1]
        if part in ("last_conv", "fc"):
            expected = (1.0, 3e-5)
        else:
            stage = 0 if part == "conv1" else int(part[-1]) - 1
            expected = (mults[stage], 0.0 if ".bn." in name else 3e-5)
        assert attr == pytest.approx(expected), name


def test_paddlex_textline_ori_config_file(tmp_path):
    # PaddleX paddlex/repo_apis/PaddleClas_api/configs/PP-LCNet_x0_25_textline_ori.yaml
    # (Global.epochs 20).
    yml = tmp_path / "ori.yaml"
    yml.write_text("""
Arch:
  name: PPLCNet_x0_25
  class_num: 2
  pretrained: False
  use_ssld: False
  stride_list: [2, [2, 1], [2, 1], [2, 1], [2, 1]]
Optimizer:
  name: Momentum
  momentum: 0.9
  lr:
    name: Cosine
    learning_rate: 0.8
    warmup_epoch: 5
  regularizer:
    name: 'L2'
    coeff: 0.00001
""")
    steps = 10
    recipe = create_optimizer(ptocr.create_model("PP-LCNet_x0_25_textline_ori"), str(yml), 20, steps)
    decays = {n: g["weight_decay"] for g in recipe.optimizer.param_groups for n in g["param_names"]}
    assert decays["backbone.conv1.bn.weight"] == 0.0
    assert decays["backbone.conv1.conv.weight"] == decays["head.fc.weight"] == pytest.approx(1e-5)
    assert isinstance(recipe.optimizer, torch.optim.SGD)
    # warmup 50 steps 0 -> 0.8, then a cosine over the other 15 epochs (PaddleClas's T_max)
    assert recipe.lr_at(25) == pytest.approx(0.4)
    assert recipe.lr_at(50 + 75) == pytest.approx(0.4)
    assert recipe.lr_at(200) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("arch, config, message", [
    ("PP-LCNet_x0_25_textline_ori", ADAM_COSINE, "PaddleClas optimizer 'Adam' is not supported"),
    ("PP-LCNet_x0_25_textline_ori", {**CLS_MOMENTUM, "regularizer": {"name": "L2", "factor": 1e-5}},
     r"L2 takes coeff"),
    ("PP-LCNet_x0_25_textline_ori", {**CLS_MOMENTUM, "clip_norm_global": 1.0}, "unknown PaddleClas"),
    ("PP-LCNet_x0_25_textline_ori", {**CLS_MOMENTUM, "lr": {"name": "Piecewise", "decay_epochs": [1],
                                                           "values": [0.1, 0.01]}}, "Piecewise"),
    ("PP-LCNet_x0_25_textline_ori", {**CLS_MOMENTUM, "weight_decay": 1e-4}, "not both"),
    ("PP-LCNet_x0_25_textline_ori", {"Optimizer": CLS_MOMENTUM, "Architecture": {}},
     "trained with PaddleClas, but this is a PaddleOCR config"),
    ("ch_ppocr_mobile_v2.0_cls", {"Optimizer": ADAM_COSINE, "Arch": {"name": "PPLCNet_x1_0"}},
     "trained with PaddleOCR, but this is a PaddleClas config"),
])
def test_suite_mismatches_are_refused(arch, config, message):
    with pytest.raises(PtocrError, match=message):
        create_optimizer(ptocr.create_model(arch), config, 10, 3)


@pytest.mark.parametrize("section, message", [
    ({**ADAM_COSINE, "name": "SGD"}, "no SGD wrapper"),
    ({**ADAM_COSINE, "name": "Lamb"}, "not supported"),
    ({**ADAM_COSINE, "amsgrad": True}, "unknown PaddleOCR Optimizer keys"),
    ({**ADAM_COSINE, "lr": {"name": "OneCycle", "max_lr": 0.1}}, "not supported; supported: Cosine"),
    ({**ADAM_COSINE, "lr": {"name": "Cosine", "learning_rate": 1e-3, "cycle": 2}}, "unknown keys"),
    ({**ADAM_COSINE, "regularizer": {"name": "L1", "factor": 1e-4}}, "only L2"),
    ({**ADAM_COSINE, "clip_norm": 1.0, "clip_norm_global": 1.0}, "not both"),
])
def test_unsupported_settings_are_refused(section, message):
    with pytest.raises(PtocrError, match=message):
        create_optimizer(ptocr.create_model("ch_ppocr_mobile_v2.0_cls"), section, 2, 3)


# --------------------------------------------------------------------------------------------
# Against paddle 3.3.1.
# --------------------------------------------------------------------------------------------
paddle = pytest.importorskip("paddle")
plr = paddle.optimizer.lr
EPOCHS, STEPS = 3, 4   # 12 iterations


def _paddle_schedule(cfg):
    """ppocr/optimizer/learning_rate.py's construction, with paddle's own classes."""
    cfg = dict(cfg)
    name, warmup = cfg.pop("name"), round(cfg.pop("warmup_epoch", 0) * STEPS)
    if name == "Cosine":
        sched, end = plr.CosineAnnealingDecay(cfg["learning_rate"], T_max=EPOCHS * STEPS), cfg["learning_rate"]
    elif name == "Piecewise":
        sched = plr.PiecewiseDecay([STEPS * e for e in cfg["decay_epochs"]], cfg["values"])
        end = cfg["values"][0]
    elif name == "Linear":
        sched = plr.PolynomialDecay(cfg["learning_rate"], decay_steps=EPOCHS * STEPS,
                                    end_lr=cfg.get("end_lr", 0.0), power=cfg.get("power", 1.0))
        end = cfg["learning_rate"]
    else:
        sched = end = cfg["learning_rate"]
    if warmup > 0:
        sched = plr.LinearWarmup(sched, warmup_steps=warmup, start_lr=0.0, end_lr=end)
    return sched


LR_CONFIGS = [
    {"name": "Cosine", "learning_rate": 1e-3, "warmup_epoch": 1},
    {"name": "Cosine", "learning_rate": 1e-3, "warmup_epoch": 0.6},   # round(2.4) = 2 steps
    {"name": "Cosine", "learning_rate": 1e-3},
    {"name": "Piecewise", "decay_epochs": [1, 2], "values": [1e-3, 1e-4, 1e-5], "warmup_epoch": 1},
    {"name": "Linear", "learning_rate": 1e-3, "end_lr": 1e-5, "power": 0.9, "warmup_epoch": 1},
    {"name": "Const", "learning_rate": 1e-3, "warmup_epoch": 1},
]


@pytest.mark.parametrize("cfg", LR_CONFIGS, ids=lambda c: f"{c['name']}-{c.get('warmup_epoch', 0)}")
def test_lr_schedule_per_iteration_matches_paddle(cfg):
    mine = paddle_lr_schedule(cfg, EPOCHS, STEPS)
    sched = _paddle_schedule(cfg)
    theirs = []
    for _ in range(EPOCHS * STEPS + 3):   # a few past the end too
        theirs.append(sched() if callable(sched) else sched)
        if callable(sched):
            sched.step()
    # Python floats both sides; paddle's no-warmup cosine is the recursive form (rounding only).
    np.testing.assert_allclose([mine(i) for i in range(len(theirs))], theirs, rtol=1e-12, atol=1e-18)


class _FakeNet(torch.nn.Module):
    """A ptocr-shaped network whose parameter names hit the PPLCNetV3 / CTCHead rules."""

    NAMES = {"conv": "backbone.conv1.conv.weight",             # lr_mult_list[0]
             "bn": "backbone.conv1.bn.weight",                 # + L2Decay(0.0)
             "lab": "backbone.blocks2.0.dw_conv.lab.scale",    # lr_mult_list[1] * lab_lr, 1-D
             "fc": "head.fc.weight"}                           # L2Decay(fc_decay)

    def __init__(self, values):
        super().__init__()
        self.config = {"model": {"backbone": {"name": "PPLCNetV3"}, "neck": None,
                                 "head": {"name": "CTCHead"}}}
        self.backbone, self.head = torch.nn.Module(), torch.nn.Module()
        for key, full in self.NAMES.items():
            module = self
            for part in full.split(".")[:-1]:
                if not hasattr(module, part):
                    module.add_module(part, torch.nn.Module())
                module = getattr(module, part)
            module.register_parameter(full.split(".")[-1], torch.nn.Parameter(torch.tensor(values[key])))


ARCH = {"Backbone": {"name": "PPLCNetV3", "lr_mult_list": [0.5, 2.0, 1, 1, 1, 1], "lab_lr": 0.1},
        "Head": {"name": "CTCHead", "fc_decay": 0.02}}


_PADDLE_NAMES = itertools.count()


def _paddle_params(values):
    from paddle import ParamAttr
    from paddle.regularizer import L2Decay

    uid = next(_PADDLE_NAMES)   # paddle refuses a parameter name twice in one process
    attrs = {"conv": ParamAttr(name=f"conv_{uid}", learning_rate=0.5),
             "bn": ParamAttr(name=f"bn_{uid}", learning_rate=0.5, regularizer=L2Decay(0.0)),
             "lab": ParamAttr(name=f"lab_{uid}", learning_rate=2.0 * 0.1),
             "fc": ParamAttr(name=f"fc_{uid}", regularizer=L2Decay(0.02))}
    params = {}
    for key, value in values.items():
        value = np.asarray(value, np.float32)
        params[key] = paddle.create_parameter(
            value.shape, "float32", attr=attrs[key],
            default_initializer=paddle.nn.initializer.Assign(value))
    return params


def _paddle_optimizer(section, params, sched):
    reg = section.get("regularizer", {}).get("factor")
    grad_clip = (paddle.nn.ClipGradByNorm(section["clip_norm"]) if "clip_norm" in section else
                 paddle.nn.ClipGradByGlobalNorm(section["clip_norm_global"])
                 if "clip_norm_global" in section else None)
    plist, name = list(params.values()), section["name"]
    if name == "Adam":
        return paddle.optimizer.Adam(sched, beta1=0.9, beta2=0.999, epsilon=1e-8, parameters=plist,
                                     weight_decay=reg, grad_clip=grad_clip)
    if name == "AdamW":
        # ppocr's AdamW wrapper: decay off for no_weight_decay_name substrings and 1-D params.
        excluded = {"lab", "bn"}   # "lab" matched by substring and 1-D; "bn" 1-D
        return paddle.optimizer.AdamW(sched, beta1=0.9, beta2=0.999, epsilon=1e-8, parameters=plist,
                                      weight_decay=0.01 if reg is None else reg, grad_clip=grad_clip,
                                      apply_decay_param_fun=lambda n: n.split("_")[0] not in excluded)
    if name == "Momentum":
        return paddle.optimizer.Momentum(sched, momentum=section["momentum"], parameters=plist,
                                         weight_decay=reg, grad_clip=grad_clip)
    return paddle.optimizer.RMSProp(sched, rho=section["rho"], epsilon=section["epsilon"],
                                    momentum=section["momentum"], parameters=plist,
                                    weight_decay=reg, grad_clip=grad_clip)


def _values(rng):
    return {"conv": rng.standard_normal((3, 2, 3, 3)).astype(np.float32),
            "bn": rng.standard_normal(3).astype(np.float32) + 1,
            "lab": np.array([1.0], np.float32),
            "fc": rng.standard_normal((4, 5)).astype(np.float32)}


WARMUP_COSINE = {"name": "Cosine", "learning_rate": 0.05, "warmup_epoch": 1}
OPTIMIZERS = [
    {"name": "Adam", "beta1": 0.9, "beta2": 0.999, "lr": WARMUP_COSINE,
     "regularizer": {"name": "L2", "factor": 0.01}},
    {"name": "AdamW", "beta1": 0.9, "beta2": 0.999, "lr": WARMUP_COSINE,
     "regularizer": {"name": "L2", "factor": 0.05}, "no_weight_decay_name": "lab",
     "one_dim_param_no_weight_decay": True},
    {"name": "AdamW", "lr": WARMUP_COSINE},   # no regularizer: PaddleOCR's 0.01, all decayed
    {"name": "Momentum", "momentum": 0.9, "lr": {**WARMUP_COSINE, "learning_rate": 0.1},
     "regularizer": {"name": "L2", "factor": 0.01}},
    {"name": "RMSProp", "momentum": 0.9, "rho": 0.95, "epsilon": 1e-6,
     "lr": {"name": "Piecewise", "decay_epochs": [2], "values": [0.01, 0.001], "warmup_epoch": 1},
     "regularizer": {"name": "L2", "factor": 0.01}},
    {"name": "Adam", "lr": WARMUP_COSINE, "clip_norm": 0.5,
     "regularizer": {"name": "L2", "factor": 0.01}},
    {"name": "Momentum", "momentum": 0.9, "lr": WARMUP_COSINE, "clip_norm_global": 1.0,
     "regularizer": {"name": "L2", "factor": 0.01}},
]


def _step_both(recipe, torch_params, names, opt, sched, params, grads) -> None:
    """The same gradients (each step's loss: sum of parameter * fixed tensor) through the torch
    recipe and paddle's optimizer and schedule, step by step."""
    for g in grads:
        recipe.optimizer.zero_grad()
        sum((torch_params[names[k]] * torch.from_numpy(v)).sum() for k, v in g.items()).backward()
        recipe.step()
        opt.clear_grad()
        sum((params[k] * paddle.to_tensor(v)).sum() for k, v in g.items()).backward()
        opt.step()
        sched.step()


@pytest.mark.parametrize("section", OPTIMIZERS, ids=lambda s: "-".join(
    [s["name"]] + [k for k in ("clip_norm", "clip_norm_global", "regularizer") if k in s]))
def test_updates_match_paddle_across_the_warmup_boundary(section):
    rng = np.random.default_rng(0)
    values = _values(rng)
    steps = EPOCHS * STEPS           # warmup_epoch 1 = 4 steps, then the decay
    grads = [{k: (rng.standard_normal(v.shape) * 3).astype(np.float32) for k, v in values.items()}
             for _ in range(steps)]

    net = _FakeNet(values)
    if section["name"] == "AdamW" and "no_weight_decay_name" not in section:
        section = {**section, "one_dim_param_no_weight_decay": True, "no_weight_decay_name": "lab"}
    recipe = create_optimizer(net, section, EPOCHS, STEPS, architecture=ARCH)
    torch_params = dict(net.named_parameters())

    params = _paddle_params(values)
    sched = _paddle_schedule(section["lr"])
    opt = _paddle_optimizer(section, params, sched)

    _step_both(recipe, torch_params, _FakeNet.NAMES, opt, sched, params, grads)

    for key, full in _FakeNet.NAMES.items():
        moved = np.abs(values[key] - params[key].numpy()).max()
        assert moved > 1e-4, key   # the comparison is not of untouched weights
        # float32 on both sides: the same formulas in a different operation order differ by a
        # few ulps per step (|w| <= ~4, ulp ~ 5e-7) over 12 steps.
        np.testing.assert_allclose(torch_params[full].detach().numpy(), params[key].numpy(),
                                   rtol=1e-5, atol=2e-6, err_msg=key)


# --------------------------------------------------------------------------------------------
# PaddleClas's schedule and Momentum against paddle, built as ppcls/optimizer/ builds them.
# --------------------------------------------------------------------------------------------
def _paddleclas_schedule(cfg, epochs):
    """learning_rate.py Cosine: LRBase caps warmup_epoch at epochs; T_max = (epochs - warmup) *
    steps; LinearWarmup from warmup_start_lr; Constant when T_max is 0."""
    warmup_epoch = min(cfg.get("warmup_epoch", 0), epochs)
    t_max = (epochs - warmup_epoch) * STEPS
    sched = (plr.CosineAnnealingDecay(cfg["learning_rate"], T_max=t_max, eta_min=cfg.get("eta_min", 0.0))
             if t_max > 0 else cfg["learning_rate"])
    warmup = round(warmup_epoch * STEPS)
    if warmup > 0:
        sched = plr.LinearWarmup(sched, warmup_steps=warmup, start_lr=cfg.get("warmup_start_lr", 0.0),
                                 end_lr=cfg["learning_rate"])
    return sched


@pytest.mark.parametrize("cfg", [
    {"name": "Cosine", "learning_rate": 0.8, "warmup_epoch": 1},
    {"name": "Cosine", "learning_rate": 0.8, "warmup_epoch": 2, "eta_min": 0.01, "warmup_start_lr": 0.1},
    {"name": "Cosine", "learning_rate": 0.8, "eta_min": 0.05},
    {"name": "Cosine", "learning_rate": 0.8, "warmup_epoch": 5},      # >= epochs: all warmup
], ids=["warmup", "eta_min-start_lr", "no-warmup", "warmup-capped"])
def test_paddleclas_schedule_matches_paddle(cfg):
    mine = paddleclas_lr_schedule(cfg, EPOCHS, STEPS)
    sched = _paddleclas_schedule(cfg, EPOCHS)
    theirs = []
    for _ in range(EPOCHS * STEPS + 3):
        theirs.append(sched())
        sched.step()
    np.testing.assert_allclose([mine(i) for i in range(len(theirs))], theirs, rtol=1e-12, atol=1e-15)


class _FakeLCNet(torch.nn.Module):
    """A PPLCNet-shaped network: conv1 (stage 0), its bn (L2Decay(0.0)), an SE bias in blocks2
    (stage 1, 1-D) and the classifier."""

    NAMES = {"conv": "backbone.conv1.conv.weight", "bn": "backbone.conv1.bn.weight",
             "se": "backbone.blocks2.0.se.conv1.bias", "fc": "head.fc.weight"}

    def __init__(self, values):
        super().__init__()
        self.config = {"model": {"backbone": {"name": "PPLCNet"}, "neck": None,
                                 "head": {"name": "ClsHead"}}}
        for key, full in self.NAMES.items():
            module = self
            for part in full.split(".")[:-1]:
                if not hasattr(module, part):
                    module.add_module(part, torch.nn.Module())
                module = getattr(module, part)
            module.register_parameter(full.split(".")[-1], torch.nn.Parameter(torch.tensor(values[key])))


CLS_MULTS = [0.5, 2.0, 1, 1, 1, 1]


def _paddleclas_params(values):
    from paddle import ParamAttr
    from paddle.regularizer import L2Decay

    uid = next(_PADDLE_NAMES)
    attrs = {"conv": ParamAttr(name=f"conv_{uid}", learning_rate=0.5),
             "bn": ParamAttr(name=f"bn_{uid}", learning_rate=0.5, regularizer=L2Decay(0.0)),
             "se": ParamAttr(name=f"se_{uid}", learning_rate=2.0),
             "fc": ParamAttr(name=f"fc_{uid}")}
    return {k: paddle.create_parameter(np.shape(v), "float32", attr=attrs[k],
                                       default_initializer=paddle.nn.initializer.Assign(np.asarray(v)))
            for k, v in values.items()}


@pytest.mark.parametrize("extra", [
    {},
    {"use_nesterov": True, "clip_norm": 0.5},
    # PaddleClas's Momentum: two groups, the 1-D and "fc" ones at weight_decay 0.0
    {"no_weight_decay_name": "fc", "one_dim_param_no_weight_decay": True},
    {"one_dim_param_no_weight_decay": True},   # ignored without no_weight_decay_name
], ids=["plain", "nesterov-clip", "no-decay-groups", "one-dim-alone"])
def test_paddleclas_momentum_matches_paddle(extra):
    from paddle.regularizer import L2Decay

    rng = np.random.default_rng(1)
    values = {"conv": rng.standard_normal((3, 2, 3, 3)).astype(np.float32),
              "bn": rng.standard_normal(3).astype(np.float32) + 1,
              "se": rng.standard_normal(4).astype(np.float32),
              "fc": rng.standard_normal((4, 5)).astype(np.float32)}
    grads = [{k: (rng.standard_normal(v.shape) * 3).astype(np.float32) for k, v in values.items()}
             for _ in range(EPOCHS * STEPS)]
    lr_cfg = {"name": "Cosine", "learning_rate": 0.1, "warmup_epoch": 1, "eta_min": 0.01}
    section = {"name": "Momentum", "momentum": 0.9, "lr": lr_cfg,
               "regularizer": {"name": "L2", "coeff": 0.01}, **extra}

    net = _FakeLCNet(values)
    recipe = create_optimizer(net, section, EPOCHS, STEPS, architecture={"lr_mult_list": CLS_MULTS})
    torch_params = dict(net.named_parameters())

    params = _paddleclas_params(values)
    sched = _paddleclas_schedule(lr_cfg, EPOCHS)
    reg = L2Decay(0.01)
    plist = list(params.values())
    if extra.get("no_weight_decay_name"):   # the wrapper's split, written out for these names
        plist = [{"params": [params["conv"]], "weight_decay": reg},
                 {"params": [params["bn"], params["se"], params["fc"]], "weight_decay": 0.0}]
    clip = paddle.nn.ClipGradByNorm(extra["clip_norm"]) if "clip_norm" in extra else None
    opt = paddle.optimizer.Momentum(sched, momentum=0.9, parameters=plist, weight_decay=reg,
                                    grad_clip=clip, use_nesterov=extra.get("use_nesterov", False))
    _step_both(recipe, torch_params, _FakeLCNet.NAMES, opt, sched, params, grads)
    for key, full in _FakeLCNet.NAMES.items():
        assert np.abs(values[key] - params[key].numpy()).max() > 1e-4, key
        np.testing.assert_allclose(torch_params[full].detach().numpy(), params[key].numpy(),
                                   rtol=1e-5, atol=2e-6, err_msg=key)


@pytest.mark.parametrize("arch", V6)
def test_v6_rules_taken_by_analogy_say_so(arch, recwarn):
    # The v6 recognizer's CTCGuideHead / LightSVTR rules were not read from PaddleOCR's source.
    param_groups(ptocr.create_model(arch), ADAM_COSINE)
    said = [str(w.message) for w in recwarn if "parameter attributes of" in str(w.message)]
    assert bool(said) == arch.endswith("_rec"), said
