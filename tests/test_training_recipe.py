"""ptocr.training against the real Paddle: LR schedules, optimizer updates with ParamAttr, clipping;
and the per-architecture parameter attributes on every registered architecture."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import ptocr
from ptocr.errors import PtocrError
from ptocr.training import create_optimizer, paddle_lr_schedule, param_groups

ADAM_COSINE = {"name": "Adam", "beta1": 0.9, "beta2": 0.999,
               "lr": {"name": "Cosine", "learning_rate": 1e-3, "warmup_epoch": 1},
               "regularizer": {"name": "L2", "factor": 3e-5}}
# PP-OCRv6 (PPLCNetV4, RepLK necks, LightSVTR, CTCGuideHead) and UVDoc have no rules yet.
REFUSED = {"UVDoc"} | {a for a in ptocr.list_architectures() if a.startswith("PP-OCRv6")}


# --------------------------------------------------------------------------------------------
# Parameter attributes per architecture: facts read from PaddleOCR's modeling sources.
# --------------------------------------------------------------------------------------------
def _attrs_by_name(net, config=ADAM_COSINE, architecture=None):
    out = {}
    for group in param_groups(net, config, architecture):
        for name in group["param_names"]:
            out[name] = (group["lr_scale"], group["weight_decay"])
    return out


@pytest.mark.parametrize("arch", sorted(set(ptocr.list_architectures()) - REFUSED))
def test_every_trainable_parameter_gets_one_group(arch):
    net = ptocr.create_model(arch)
    attrs = _attrs_by_name(net)
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
    ("PP-LCNet_x0_25_textline_ori", ".bn."),     # PPLCNet
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


@pytest.mark.parametrize("section, message", [
    ({**ADAM_COSINE, "name": "SGD"}, "no SGD wrapper"),
    ({**ADAM_COSINE, "name": "Lamb"}, "not supported"),
    ({**ADAM_COSINE, "amsgrad": True}, "unknown Optimizer keys"),
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

    for g in grads:
        recipe.optimizer.zero_grad()
        sum((torch_params[_FakeNet.NAMES[k]] * torch.from_numpy(v)).sum() for k, v in g.items()).backward()
        recipe.step()
        opt.clear_grad()
        sum((params[k] * paddle.to_tensor(v)).sum() for k, v in g.items()).backward()
        opt.step()
        sched.step()

    for key, full in _FakeNet.NAMES.items():
        moved = np.abs(values[key] - params[key].numpy()).max()
        assert moved > 1e-4, key   # the comparison is not of untouched weights
        # float32 on both sides: the same formulas in a different operation order differ by a
        # few ulps per step (|w| <= ~4, ulp ~ 5e-7) over 12 steps.
        np.testing.assert_allclose(torch_params[full].detach().numpy(), params[key].numpy(),
                                   rtol=1e-5, atol=2e-6, err_msg=key)
